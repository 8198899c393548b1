//! The AWS Bedrock Converse family: a [`Conversation`] written as a `Converse` request, and
//! Bedrock's answers read back as OpenAI chat completions and chunks — from there the existing
//! writers serve OpenAI, Anthropic and Responses clients alike (as for Gemini).
//!
//! Bedrock is only ever an upstream. The model id goes in the URL (see
//! [`crate::upstream::url`]), not in the body.
//!
//! What Converse cannot say is refused by name, so the target is skipped: structured output
//! (`response_format: json_schema`; Converse has no native JSON-schema output, and forcing a
//! tool would change the answer's shape on the way back), image URLs (Converse takes image
//! bytes only), a final assistant turn to continue, `parallel_tool_calls: false`, `user`, and
//! reasoning for a model that is not Anthropic's Claude (the only family whose thinking is
//! asked the same way on every Bedrock account).

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::completion::{ChatCompletion, FunctionCall};
use crate::event::bedrock::{self, StreamEvent, openai_finish};
use crate::event::openai::{Choice, Chunk, Delta, FunctionDelta, ToolCallDelta, Usage};
use crate::translate::conversation::{
    Conversation, Image, Part, Role, Tool, ToolChoice, Untranslatable, object,
};

/// Converse takes at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 4;

/// A `Converse` request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Outgoing<'a> {
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    system: Vec<TextOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_model_request_fields: Option<Value>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Vec<BlockOut<'a>>,
}

#[derive(Serialize)]
struct TextOut<'a> {
    text: &'a str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum BlockOut<'a> {
    Text {
        text: &'a str,
    },
    Image {
        image: ImageOut<'a>,
    },
    ToolUse {
        #[serde(rename = "toolUse")]
        tool_use: ToolUseOut<'a>,
    },
    ToolResult {
        #[serde(rename = "toolResult")]
        tool_result: ToolResultOut<'a>,
    },
}

#[derive(Serialize)]
struct ImageOut<'a> {
    format: &'a str,
    source: ImageSource<'a>,
}

#[derive(Serialize)]
struct ImageSource<'a> {
    /// Base64, as the JSON protocol carries blobs.
    bytes: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseOut<'a> {
    tool_use_id: &'a str,
    name: &'a str,
    input: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolResultOut<'a> {
    tool_use_id: &'a str,
    content: Vec<BlockOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolOut<'a> {
    tool_spec: ToolSpec<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolSpec<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    input_schema: InputSchema<'a>,
}

#[derive(Serialize)]
struct InputSchema<'a> {
    json: &'a Value,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

/// The thinking budget of a reasoning effort, as Anthropic's models take it.
fn thinking_budget(effort: &str) -> Option<u64> {
    match effort {
        "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16_384),
        "xhigh" => Some(32_768),
        _ => None,
    }
}

/// Whether `model` (a model id, an inference profile or an ARN) is one of Anthropic's.
fn is_claude(model: &str) -> bool {
    model.contains("anthropic.")
}

impl Conversation {
    /// Writes a Bedrock `Converse` request for `model` (the same body streams, at
    /// `/converse-stream`).
    pub fn to_bedrock(&self, model: &str) -> Result<Map<String, Value>, Untranslatable> {
        if self.turns.last().is_some_and(|t| t.role == Role::Assistant) {
            return Err(Untranslatable::new(
                "messages (a final assistant message to continue: Converse takes no prefill)",
            ));
        }
        if self.format.is_some() {
            return Err(Untranslatable::new(
                "response_format json_schema (Bedrock Converse has no structured output)",
            ));
        }
        if self.parallel_tool_calls == Some(false) {
            return Err(Untranslatable::new(
                "parallel_tool_calls (Converse cannot be told to call one tool at a time)",
            ));
        }
        if self.user.is_some() {
            return Err(Untranslatable::new("user (Converse has no end-user id)"));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(Untranslatable::new(format!(
                "stop (more than {MAX_STOP_SEQUENCES} sequences)"
            )));
        }
        let budget = match self.reasoning_effort.as_deref() {
            None | Some("none" | "minimal") => None,
            Some(effort) => match (thinking_budget(effort), is_claude(model)) {
                (Some(b), true) => Some(b),
                (Some(_), false) => {
                    return Err(Untranslatable::new(format!(
                        "reasoning_effort {effort:?} (only Claude models on Bedrock take a thinking budget)"
                    )));
                }
                (None, _) => {
                    return Err(Untranslatable::new(format!("reasoning_effort {effort:?}")));
                }
            },
        };
        if budget.is_some() && self.temperature.is_some_and(|t| t != 1.0) {
            return Err(Untranslatable::new(
                "reasoning with a temperature (extended thinking takes none)",
            ));
        }
        let mut messages = Vec::with_capacity(self.turns.len());
        for turn in &self.turns {
            let mut content = Vec::with_capacity(turn.parts.len());
            for part in &turn.parts {
                content.push(block_out(part)?);
            }
            messages.push(MessageOut {
                role: match turn.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content,
            });
        }
        let tool_choice = match &self.tool_choice {
            None | Some(ToolChoice::Auto) => None,
            Some(ToolChoice::Required) => Some(json!({"any": {}})),
            Some(ToolChoice::Named(name)) => Some(json!({"tool": {"name": name}})),
            // Converse has no "none": the tools are left out instead.
            Some(ToolChoice::None) => None,
        };
        let tools_off = self.tool_choice == Some(ToolChoice::None);
        let tool_config = (!self.tools.is_empty() && !tools_off).then(|| ToolConfig {
            tools: self.tools.iter().map(ToolOut::from).collect(),
            tool_choice,
        });
        // Claude counts thinking in maxTokens: the budget comes on top of the answer's.
        let max_tokens = match (self.max_tokens, budget) {
            (Some(m), Some(b)) => Some(m.saturating_add(b)),
            (None, Some(b)) => {
                Some(crate::translate::anthropic::DEFAULT_MAX_TOKENS.saturating_add(b))
            }
            (m, None) => m,
        };
        object(&Outgoing {
            messages,
            system: self.system.iter().map(|t| TextOut { text: t }).collect(),
            tool_config,
            inference_config: InferenceConfig {
                max_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                stop_sequences: &self.stop,
            },
            additional_model_request_fields: budget
                .map(|b| json!({"thinking": {"type": "enabled", "budget_tokens": b}})),
        })
    }
}

/// One part of a turn.
fn block_out(part: &Part) -> Result<BlockOut<'_>, Untranslatable> {
    Ok(match part {
        Part::Text(text) => BlockOut::Text { text },
        Part::Image(image) => image_out(image)?,
        Part::ToolCall { input, .. } if !input.is_object() => {
            return Err(Untranslatable::new(
                "a tool call whose arguments are not a JSON object",
            ));
        }
        Part::ToolCall { id, name, input } => BlockOut::ToolUse {
            tool_use: ToolUseOut {
                tool_use_id: id,
                name,
                input,
            },
        },
        Part::ToolResult {
            id,
            content,
            is_error,
        } => {
            let mut out = Vec::with_capacity(content.len());
            for p in content {
                match p {
                    Part::Text(text) => out.push(BlockOut::Text { text }),
                    Part::Image(image) => out.push(image_out(image)?),
                    Part::ToolCall { .. } | Part::ToolResult { .. } => {
                        return Err(Untranslatable::new("a tool result inside a tool result"));
                    }
                }
            }
            BlockOut::ToolResult {
                tool_result: ToolResultOut {
                    tool_use_id: id,
                    content: out,
                    status: is_error.then_some("error"),
                },
            }
        }
    })
}

/// An image: Converse takes bytes (base64 in JSON) of png, jpeg, gif or webp.
fn image_out(image: &Image) -> Result<BlockOut<'_>, Untranslatable> {
    match image {
        Image::Base64 { media_type, data } => {
            let format = match media_type.as_str() {
                "image/png" => "png",
                "image/jpeg" | "image/jpg" => "jpeg",
                "image/gif" => "gif",
                "image/webp" => "webp",
                _ => {
                    return Err(Untranslatable::new(format!(
                        "an image of type {media_type} (Converse takes png, jpeg, gif, webp)"
                    )));
                }
            };
            Ok(BlockOut::Image {
                image: ImageOut {
                    format,
                    source: ImageSource { bytes: data },
                },
            })
        }
        Image::Url(_) => Err(Untranslatable::new(
            "an image URL (Converse takes image bytes only)",
        )),
    }
}

impl<'a> From<&'a Tool> for ToolOut<'a> {
    fn from(t: &'a Tool) -> ToolOut<'a> {
        ToolOut {
            tool_spec: ToolSpec {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: InputSchema { json: &t.schema },
            },
        }
    }
}

/// A whole Converse answer as an OpenAI chat completion; `model` is the target's model id
/// (Converse does not name the model in its answer).
pub fn to_chat(b: &bedrock::Response, model: &str, created: u64) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in b.blocks() {
        if let Some(t) = &block.text {
            text.push_str(t);
        }
        if let Some(r) = block
            .reasoning_content
            .as_ref()
            .and_then(|r| r.reasoning_text.as_ref())
        {
            reasoning.push_str(&r.text);
        }
        if let Some(call) = &block.tool_use {
            calls.push(crate::completion::ToolCall {
                id: Value::String(call.tool_use_id.clone()),
                function: FunctionCall {
                    name: Value::String(call.name.clone()),
                    arguments: Some(if call.input.is_null() {
                        "{}".to_owned()
                    } else {
                        call.input.to_string()
                    }),
                },
                rest: Map::from_iter([("type".to_owned(), json!("function"))]),
            });
        }
    }
    let finish = openai_finish(b.stop_reason.as_deref(), !calls.is_empty());
    let (input, output) = b.usage();
    crate::translate::Assembled {
        id: format!("chatcmpl-bedrock-{created}"),
        model: Some(model.to_owned()),
        created,
        text,
        reasoning,
        calls,
        finish,
        usage: (input.unwrap_or(0), output.unwrap_or(0)),
    }
    .completion()
}

/// ConverseStream events as OpenAI chunks: a role chunk at `messageStart`, a chunk per text,
/// reasoning and tool-call piece, the finish reason at `messageStop`, and the usage alone at
/// `metadata` — the shape of an OpenAI stream asked for its usage.
#[derive(Debug, Default)]
pub struct ToChunks {
    created: u64,
    model: String,
    started: bool,
    /// The content-block index of each tool call, in order (its place is the OpenAI index).
    calls: Vec<u64>,
    finished: bool,
}

impl ToChunks {
    /// A translation whose chunks say they were created at `created`.
    pub fn new(created: u64) -> ToChunks {
        ToChunks {
            created,
            ..ToChunks::default()
        }
    }

    /// The chunks one ConverseStream event makes.
    pub fn event(&mut self, e: &StreamEvent) -> Vec<Chunk> {
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(self.chunk(
                Delta {
                    role: Some("assistant".to_owned()),
                    ..Delta::default()
                },
                None,
            ));
        }
        if let Some(start) = &e.content_block_start
            && let Some(call) = start.start.as_ref().and_then(|s| s.tool_use.as_ref())
        {
            let index = self.calls.len() as u64;
            self.calls.push(start.content_block_index);
            let mut rest = Map::new();
            rest.insert("type".to_owned(), json!("function"));
            out.push(self.chunk(
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index,
                        id: Some(call.tool_use_id.clone()),
                        function: Some(FunctionDelta {
                            name: Some(call.name.clone()),
                            arguments: Some(String::new()),
                        }),
                        rest: rest.into(),
                    }]),
                    ..Delta::default()
                },
                None,
            ));
        }
        if let Some(d) = &e.content_block_delta {
            let delta = &d.delta;
            if let Some(t) = delta.text.as_deref().filter(|t| !t.is_empty()) {
                out.push(self.chunk(
                    Delta {
                        content: Some(t.to_owned()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            if let Some(t) = delta
                .reasoning_content
                .as_ref()
                .and_then(|r| r.text.as_deref())
                .filter(|t| !t.is_empty())
            {
                out.push(self.chunk(
                    Delta {
                        reasoning_content: Some(t.to_owned()),
                        ..Delta::default()
                    },
                    None,
                ));
            }
            if let Some(piece) = &delta.tool_use {
                let index =
                    self.calls
                        .iter()
                        .position(|b| *b == d.content_block_index)
                        .unwrap_or(self.calls.len().saturating_sub(1)) as u64;
                out.push(self.chunk(
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index,
                            id: None,
                            function: Some(FunctionDelta {
                                name: None,
                                arguments: Some(piece.input.clone()),
                            }),
                            rest: Default::default(),
                        }]),
                        ..Delta::default()
                    },
                    None,
                ));
            }
        }
        if let Some(stop) = e.message_stop.as_ref().filter(|_| !self.finished) {
            self.finished = true;
            let finish = openai_finish(stop.stop_reason.as_deref(), !self.calls.is_empty());
            out.push(self.chunk(Delta::default(), Some(finish)));
        }
        if e.metadata.is_some() {
            let (input, output) = e.usage();
            let (input, output) = (input.unwrap_or(0), output.unwrap_or(0));
            let mut usage = self.chunk(Delta::default(), None);
            usage.choices.clear();
            usage.usage = Some(Usage {
                prompt_tokens: Some(input),
                completion_tokens: Some(output),
                total_tokens: Some(input.saturating_add(output)),
            });
            out.push(usage);
        }
        out
    }

    /// The model the chunks name (Converse does not say: the target's model id).
    pub fn with_model(mut self, model: &str) -> ToChunks {
        model.clone_into(&mut self.model);
        self
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> Chunk {
        let mut rest = Map::new();
        rest.insert(
            "id".to_owned(),
            json!(format!("chatcmpl-bedrock-{}", self.created)),
        );
        rest.insert("object".to_owned(), json!("chat.completion.chunk"));
        rest.insert("created".to_owned(), json!(self.created));
        Chunk {
            model: (!self.model.is_empty()).then(|| self.model.clone()),
            choices: vec![Choice {
                index: 0,
                delta,
                finish_reason: finish.map(str::to_owned),
                rest: Default::default(),
            }],
            usage: None,
            error: None,
            rest: rest.into(),
        }
    }
}

#[cfg(test)]
mod tests;
