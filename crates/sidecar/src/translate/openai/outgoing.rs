//! A [`Conversation`] written as an OpenAI Chat Completions request.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::translate::conversation::{
    Conversation, JsonFormat, Part, Role, Tool, ToolChoice, Untranslatable, object,
};

/// A Chat Completions request, as written for a target.
#[derive(Serialize)]
struct Outgoing<'a> {
    model: &'a str,
    messages: Vec<Message<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
enum Message<'a> {
    System {
        content: String,
    },
    User {
        content: UserContent<'a>,
    },
    Assistant {
        /// `null` when the turn only calls tools.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: String,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<ContentPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl },
}

#[derive(Serialize)]
struct ImageUrl {
    url: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToolCall<'a> {
    Function { id: &'a str, function: Call<'a> },
}

#[derive(Serialize)]
struct Call<'a> {
    name: &'a str,
    /// The input, as a JSON string.
    arguments: String,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ToolOut<'a> {
    Function { function: Function<'a> },
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum ToolChoiceOut<'a> {
    Auto,
    None,
    Required,
    #[serde(untagged)]
    Named(NamedFunction<'a>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum NamedFunction<'a> {
    Function { function: Name<'a> },
}

#[derive(Serialize)]
struct Name<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResponseFormat<'a> {
    JsonSchema { json_schema: JsonSchema<'a> },
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

impl Conversation {
    /// Writes an OpenAI Chat Completions request for `model`.
    pub fn to_openai(&self, model: &str) -> Result<Map<String, Value>, Untranslatable> {
        object(&Outgoing {
            model,
            messages: messages(self)?,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            stop: &self.stop,
            stream: self.stream.then_some(true),
            // Always ask: the answer's usage must reach the client whatever its family.
            stream_options: self.stream.then_some(StreamOptions {
                include_usage: true,
            }),
            tools: self.tools.iter().map(ToolOut::from).collect(),
            tool_choice: self.tool_choice.as_ref().map(ToolChoiceOut::from),
            parallel_tool_calls: self.parallel_tool_calls,
            response_format: self.format.as_ref().map(ResponseFormat::from),
            user: self.user.as_deref(),
            reasoning_effort: self.reasoning_effort.as_deref(),
        })
    }
}

fn messages(c: &Conversation) -> Result<Vec<Message<'_>>, Untranslatable> {
    let mut out = Vec::new();
    if !c.system.is_empty() {
        out.push(Message::System {
            content: c.system.join("\n\n"),
        });
    }
    for turn in &c.turns {
        match turn.role {
            Role::User => user_messages(&turn.parts, &mut out)?,
            Role::Assistant => out.push(assistant_message(&turn.parts)?),
        }
    }
    Ok(out)
}

/// A user turn: a `tool` message per tool result, as it comes, then one user message with the
/// rest.
fn user_messages<'a>(parts: &'a [Part], out: &mut Vec<Message<'a>>) -> Result<(), Untranslatable> {
    let mut content = Vec::new();
    for p in parts {
        match p {
            Part::Text(text) => content.push(ContentPart::Text { text }),
            Part::Image(image) => content.push(ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: super::image_url(image),
                },
            }),
            Part::ToolResult {
                id,
                content,
                is_error,
            } => out.push(Message::Tool {
                tool_call_id: id,
                content: tool_result_text(content, *is_error)?,
            }),
            Part::ToolCall { .. } => return Err(Untranslatable::new("tool_use in a user turn")),
        }
    }
    let content = match content.as_slice() {
        [] => return Ok(()),
        [ContentPart::Text { text }] => UserContent::Text(text),
        [..] => UserContent::Parts(content),
    };
    out.push(Message::User { content });
    Ok(())
}

/// OpenAI tool results are text only; a failure says so in the text.
fn tool_result_text(content: &[Part], is_error: bool) -> Result<String, Untranslatable> {
    let mut text = String::new();
    for c in content {
        match c {
            Part::Text(t) => text.push_str(t),
            Part::Image(_) | Part::ToolCall { .. } | Part::ToolResult { .. } => {
                return Err(Untranslatable::new("tool_result content other than text"));
            }
        }
    }
    Ok(if is_error {
        format!("Error: {text}")
    } else {
        text
    })
}

/// An assistant turn: its text, run together, and its tool calls.
fn assistant_message(parts: &[Part]) -> Result<Message<'_>, Untranslatable> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for p in parts {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall { id, name, input } => tool_calls.push(ToolCall::Function {
                id,
                function: Call {
                    name,
                    arguments: input.to_string(),
                },
            }),
            Part::Image(_) | Part::ToolResult { .. } => {
                return Err(Untranslatable::new(
                    "images or tool results in an assistant turn",
                ));
            }
        }
    }
    let only_calls = text.is_empty() && !tool_calls.is_empty();
    Ok(Message::Assistant {
        content: (!only_calls).then_some(text),
        tool_calls,
    })
}

impl<'a> From<&'a Tool> for ToolOut<'a> {
    fn from(t: &'a Tool) -> ToolOut<'a> {
        ToolOut::Function {
            function: Function {
                name: &t.name,
                parameters: &t.schema,
                description: t.description.as_deref(),
            },
        }
    }
}

impl<'a> From<&'a ToolChoice> for ToolChoiceOut<'a> {
    fn from(c: &'a ToolChoice) -> ToolChoiceOut<'a> {
        match c {
            ToolChoice::Auto => ToolChoiceOut::Auto,
            ToolChoice::None => ToolChoiceOut::None,
            ToolChoice::Required => ToolChoiceOut::Required,
            ToolChoice::Named(name) => ToolChoiceOut::Named(NamedFunction::Function {
                function: Name { name },
            }),
        }
    }
}

impl<'a> From<&'a JsonFormat> for ResponseFormat<'a> {
    fn from(f: &'a JsonFormat) -> ResponseFormat<'a> {
        ResponseFormat::JsonSchema {
            json_schema: JsonSchema {
                name: &f.name,
                schema: &f.schema,
                strict: f.strict,
            },
        }
    }
}
