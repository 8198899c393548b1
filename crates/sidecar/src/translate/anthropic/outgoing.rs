//! A [`Conversation`] written as an Anthropic Messages request.

use serde::Serialize;
use serde_json::{Map, Value};

use super::DEFAULT_MAX_TOKENS;
use crate::translate::conversation::{
    Conversation, Image, Part, Role, Tool, ToolChoice, Untranslatable, object,
};

/// A Messages request, as written for a target.
#[derive(Serialize)]
struct Outgoing<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_format: Option<OutputFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<Metadata<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<Thinking>,
}

/// Extended thinking, with its budget of output tokens.
#[derive(Serialize)]
struct Thinking {
    #[serde(rename = "type")]
    kind: &'static str,
    budget_tokens: u64,
}

/// The thinking budget for an OpenAI reasoning effort; `None` for no thinking.
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16_384),
        "xhigh" => Some(32_768),
        _ => None,
    }
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
enum Message<'a> {
    User { content: Content<'a> },
    Assistant { content: Content<'a> },
}

#[derive(Serialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(&'a str),
    Blocks(Vec<Block<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    Image {
        source: Source<'a>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    ToolResult {
        tool_use_id: &'a str,
        content: Vec<Block<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        is_error: Option<bool>,
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Source<'a> {
    Url { url: &'a str },
    Base64 { media_type: &'a str, data: &'a str },
}

#[derive(Serialize)]
struct ToolOut<'a> {
    name: &'a str,
    input_schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolChoiceOut<'a> {
    #[serde(flatten)]
    mode: Mode<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Mode<'a> {
    Auto,
    None,
    Any,
    Tool { name: &'a str },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputFormat<'a> {
    JsonSchema { schema: &'a Value },
}

#[derive(Serialize)]
struct Metadata<'a> {
    user_id: &'a str,
}

impl Conversation {
    /// Writes an Anthropic Messages request for `model`.
    pub fn to_anthropic(&self, model: &str) -> Result<Map<String, Value>, Untranslatable> {
        if self
            .turns
            .first()
            .is_some_and(|t| t.role == Role::Assistant)
        {
            return Err(Untranslatable::new(
                "messages (a conversation that starts with the assistant)",
            ));
        }
        if self.temperature.is_some_and(|t| t > 1.0) {
            return Err(Untranslatable::new("temperature above 1"));
        }
        // Anthropic counts thinking in max_tokens: the budget comes on top of the answer's.
        // Thinking is asked only where Anthropic takes it: not to continue a partial answer,
        // not in a tool loop whose earlier calls came without their thinking blocks (it would
        // refuse an assistant turn that does not start with one), not with top_p below 0.95.
        let calls_before = self.turns.iter().any(|t| {
            t.role == Role::Assistant && t.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }))
        });
        let prefill = self.turns.last().is_some_and(|t| t.role == Role::Assistant);
        let budget = self
            .reasoning_effort
            .as_deref()
            .and_then(thinking_budget)
            .filter(|_| !calls_before && !prefill && self.top_p.is_none_or(|p| p >= 0.95));
        if budget.is_some() {
            if self.temperature.is_some_and(|t| t != 1.0) {
                return Err(Untranslatable::new(
                    "reasoning with a temperature (extended thinking takes none)",
                ));
            }
            if matches!(
                self.tool_choice,
                Some(ToolChoice::Required | ToolChoice::Named(_))
            ) {
                return Err(Untranslatable::new(
                    "reasoning with a forced tool_choice (extended thinking allows auto or none)",
                ));
            }
        }
        let answer = self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        object(&Outgoing {
            model,
            messages: self
                .turns
                .iter()
                .map(|t| message_out(t.role, &t.parts))
                .collect(),
            max_tokens: answer.saturating_add(budget.unwrap_or(0)),
            system: (!self.system.is_empty()).then(|| self.system.join("\n\n")),
            temperature: self.temperature,
            top_p: self.top_p,
            stop_sequences: &self.stop,
            stream: self.stream.then_some(true),
            tools: self.tools.iter().map(ToolOut::from).collect(),
            tool_choice: tool_choice_out(self.tool_choice.as_ref(), self.parallel_tool_calls),
            output_format: self
                .format
                .as_ref()
                .map(|f| OutputFormat::JsonSchema { schema: &f.schema }),
            metadata: self.user.as_deref().map(|user_id| Metadata { user_id }),
            thinking: budget.map(|budget_tokens| Thinking {
                kind: "enabled",
                budget_tokens,
            }),
        })
    }
}

/// A turn; a lone text goes as a plain string.
fn message_out(role: Role, parts: &[Part]) -> Message<'_> {
    let content = match parts {
        [Part::Text(s)] => Content::Text(s),
        [..] => Content::Blocks(parts.iter().map(Block::from).collect()),
    };
    match role {
        Role::User => Message::User { content },
        Role::Assistant => Message::Assistant { content },
    }
}

/// The tool choice, carrying OpenAI's `parallel_tool_calls: false` (which alone means `auto`).
fn tool_choice_out(
    choice: Option<&ToolChoice>,
    parallel_tool_calls: Option<bool>,
) -> Option<ToolChoiceOut<'_>> {
    let mode = choice.map(|c| match c {
        ToolChoice::Auto => Mode::Auto,
        ToolChoice::None => Mode::None,
        ToolChoice::Required => Mode::Any,
        ToolChoice::Named(name) => Mode::Tool { name },
    });
    let disable_parallel_tool_use = (parallel_tool_calls == Some(false)).then_some(true);
    if mode.is_none() && disable_parallel_tool_use.is_none() {
        return None;
    }
    Some(ToolChoiceOut {
        mode: mode.unwrap_or(Mode::Auto),
        disable_parallel_tool_use,
    })
}

impl<'a> From<&'a Part> for Block<'a> {
    fn from(p: &'a Part) -> Block<'a> {
        match p {
            Part::Text(text) => Block::Text { text },
            Part::Image(Image::Url(url)) => Block::Image {
                source: Source::Url { url },
            },
            Part::Image(Image::Base64 { media_type, data }) => Block::Image {
                source: Source::Base64 { media_type, data },
            },
            Part::ToolCall { id, name, input } => Block::ToolUse { id, name, input },
            Part::ToolResult {
                id,
                content,
                is_error,
            } => Block::ToolResult {
                tool_use_id: id,
                content: content.iter().map(Block::from).collect(),
                is_error: is_error.then_some(true),
            },
        }
    }
}

impl<'a> From<&'a Tool> for ToolOut<'a> {
    fn from(t: &'a Tool) -> ToolOut<'a> {
        ToolOut {
            name: &t.name,
            input_schema: &t.schema,
            description: t.description.as_deref(),
        }
    }
}
