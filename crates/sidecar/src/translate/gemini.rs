//! The Gemini API family: a [`Conversation`] written as a `generateContent` request, and
//! Gemini's answers read back as OpenAI chat completions and chunks — from there the existing
//! writers serve OpenAI, Anthropic and Responses clients alike.
//!
//! Gemini is only ever an upstream: no client speaks it, so there is no reader of its requests.
//! The model goes in the URL (see [`crate::upstream::url`]), not in the body.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::completion::{ChatCompletion, FunctionCall};
use crate::event::gemini::{self, Finish};
use crate::event::openai::{Choice, Chunk, Delta, FunctionDelta, ToolCallDelta, Usage};
use crate::translate::conversation::{
    Conversation, Image, Part, Role, Tool, ToolChoice, Untranslatable, object,
};

/// Gemini takes at most this many stop sequences.
const MAX_STOP_SEQUENCES: usize = 5;

/// The thought signature Google documents for function calls it did not sign: a trace from
/// another model, or one whose signature the client's API family had no field to carry back
/// (none of them has). Gemini 3 refuses a model turn's function call without a signature, with
/// a 400 that would otherwise read as the caller's mistake and stop the failover.
const UNSIGNED_CALL: &str = "skip_thought_signature_validator";

/// A `generateContent` request, as written for a target.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Outgoing<'a> {
    contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolsOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<ToolConfig<'a>>,
    #[serde(skip_serializing_if = "GenerationConfig::is_empty")]
    generation_config: GenerationConfig<'a>,
}

#[derive(Serialize)]
struct ContentOut<'a> {
    role: &'static str,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
struct SystemOut {
    parts: Vec<TextOut>,
}

#[derive(Serialize)]
struct TextOut {
    text: String,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PartOut<'a> {
    Text {
        text: &'a str,
    },
    InlineData {
        #[serde(rename = "inlineData")]
        inline_data: Blob<'a>,
    },
    FileData {
        #[serde(rename = "fileData")]
        file_data: FileData<'a>,
    },
    FunctionCall {
        #[serde(rename = "functionCall")]
        function_call: CallOut<'a>,
        #[serde(rename = "thoughtSignature", skip_serializing_if = "Option::is_none")]
        thought_signature: Option<&'static str>,
    },
    FunctionResponse {
        #[serde(rename = "functionResponse")]
        function_response: ResponseOut<'a>,
    },
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Blob<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileData<'a> {
    mime_type: &'static str,
    file_uri: &'a str,
}

#[derive(Serialize)]
struct CallOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    name: &'a str,
    args: &'a Value,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    name: &'a str,
    response: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolsOut<'a> {
    function_declarations: Vec<DeclarationOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeclarationOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    /// Full JSON Schema, as the client wrote it (`parameters` takes only an OpenAPI subset).
    parameters_json_schema: &'a Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ToolConfig<'a> {
    function_calling_config: CallingConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CallingConfig<'a> {
    mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_function_names: Option<[&'a str; 1]>,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerationConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    response_mime_type: Option<&'static str>,
    /// Full JSON Schema, as the client wrote it (`responseSchema` takes only an OpenAPI
    /// subset).
    #[serde(skip_serializing_if = "Option::is_none")]
    response_json_schema: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking_config: Option<ThinkingConfig>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ThinkingConfig {
    thinking_budget: u64,
}

impl GenerationConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_output_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
            && self.response_mime_type.is_none()
            && self.thinking_config.is_none()
    }
}

/// What an OpenAI reasoning effort asks of Gemini's thinking.
enum Thinking {
    /// The least the model allows: left to the model, since the floor is model-specific
    /// (Gemini 2.5 Pro refuses a budget of 0, Flash-Lite any budget under 512).
    Least,
    /// A budget of output tokens, within what every thinking model takes (up to 24,576).
    Budget(u64),
}

/// The thinking an OpenAI reasoning effort asks for; `None` for an effort Gemini has no
/// budget for.
fn thinking(effort: &str) -> Option<Thinking> {
    match effort {
        "none" | "minimal" => Some(Thinking::Least),
        "low" => Some(Thinking::Budget(1024)),
        "medium" => Some(Thinking::Budget(8192)),
        "high" | "xhigh" => Some(Thinking::Budget(24_576)),
        _ => None,
    }
}

impl Conversation {
    /// Writes a Gemini `generateContent` request (the same body streams, at another URL).
    pub fn to_gemini(&self) -> Result<Map<String, Value>, Untranslatable> {
        if self.turns.last().is_some_and(|t| t.role == Role::Assistant) {
            return Err(Untranslatable::new(
                "messages (a final assistant message to continue: Gemini takes no prefill)",
            ));
        }
        if self.parallel_tool_calls == Some(false) {
            return Err(Untranslatable::new(
                "parallel_tool_calls (Gemini cannot be told to call one tool at a time)",
            ));
        }
        if self.user.is_some() {
            return Err(Untranslatable::new("user (Gemini has no end-user id)"));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(Untranslatable::new(format!(
                "stop (more than {MAX_STOP_SEQUENCES} sequences)"
            )));
        }
        let thinking_config = match self.reasoning_effort.as_deref().map(|e| (e, thinking(e))) {
            None | Some((_, Some(Thinking::Least))) => None,
            Some((_, Some(Thinking::Budget(thinking_budget)))) => {
                Some(ThinkingConfig { thinking_budget })
            }
            Some((effort, None)) => {
                return Err(Untranslatable::new(format!("reasoning_effort {effort:?}")));
            }
        };
        let mut contents = Vec::with_capacity(self.turns.len());
        for (i, turn) in self.turns.iter().enumerate() {
            let mut parts = Vec::with_capacity(turn.parts.len());
            let mut signed = false;
            for part in &turn.parts {
                let mut out = self.part_out(i, part)?;
                // Only a turn's first function call carries the signature, as Gemini's own.
                if let PartOut::FunctionCall {
                    thought_signature, ..
                } = &mut out
                    && !signed
                {
                    *thought_signature = Some(UNSIGNED_CALL);
                    signed = true;
                }
                parts.push(out);
            }
            contents.push(ContentOut {
                role: match turn.role {
                    Role::User => "user",
                    Role::Assistant => "model",
                },
                parts,
            });
        }
        let tools = if self.tools.is_empty() {
            Vec::new()
        } else {
            vec![ToolsOut {
                function_declarations: self.tools.iter().map(DeclarationOut::from).collect(),
            }]
        };
        object(&Outgoing {
            contents,
            system_instruction: (!self.system.is_empty()).then(|| SystemOut {
                parts: vec![TextOut {
                    text: self.system.join("\n\n"),
                }],
            }),
            tools,
            tool_config: self.tool_choice.as_ref().map(|c| ToolConfig {
                function_calling_config: match c {
                    ToolChoice::Auto => CallingConfig {
                        mode: "AUTO",
                        allowed_function_names: None,
                    },
                    ToolChoice::None => CallingConfig {
                        mode: "NONE",
                        allowed_function_names: None,
                    },
                    ToolChoice::Required => CallingConfig {
                        mode: "ANY",
                        allowed_function_names: None,
                    },
                    ToolChoice::Named(name) => CallingConfig {
                        mode: "ANY",
                        allowed_function_names: Some([name]),
                    },
                },
            }),
            generation_config: GenerationConfig {
                max_output_tokens: self.max_tokens,
                temperature: self.temperature,
                top_p: self.top_p,
                stop_sequences: &self.stop,
                response_mime_type: self.format.as_ref().map(|_| "application/json"),
                response_json_schema: self.format.as_ref().map(|f| &f.schema),
                thinking_config,
            },
        })
    }

    /// One part of turn `turn`.
    fn part_out<'a>(&'a self, turn: usize, part: &'a Part) -> Result<PartOut<'a>, Untranslatable> {
        Ok(match part {
            Part::Text(text) => PartOut::Text { text },
            Part::Image(image) => image_out(image)?,
            // Gemini's `args` is a JSON object (a protobuf Struct), nothing else.
            Part::ToolCall { input, .. } if !input.is_object() => {
                return Err(Untranslatable::new(
                    "a tool call whose arguments are not a JSON object",
                ));
            }
            Part::ToolCall { id, name, input } => PartOut::FunctionCall {
                function_call: CallOut {
                    id,
                    name,
                    args: input,
                },
                thought_signature: None,
            },
            Part::ToolResult {
                id,
                content,
                is_error,
            } => {
                // Gemini matches a result to its call by name: find the call it answers.
                let name = self.called(turn, id).ok_or_else(|| {
                    Untranslatable::new(format!(
                        "a tool result for call {id:?}, which no earlier assistant message makes"
                    ))
                })?;
                let mut text = String::new();
                for p in content {
                    match p {
                        Part::Text(t) => text.push_str(t),
                        Part::Image(_) | Part::ToolCall { .. } | Part::ToolResult { .. } => {
                            return Err(Untranslatable::new(
                                "a tool result that is not text (Gemini's function responses are JSON)",
                            ));
                        }
                    }
                }
                PartOut::FunctionResponse {
                    function_response: ResponseOut {
                        id,
                        name,
                        response: if *is_error {
                            json!({"error": text})
                        } else {
                            json!({"output": text})
                        },
                    },
                }
            }
        })
    }

    /// The name of the tool call `id` made before turn `before`, the latest one if ids repeat.
    fn called(&self, before: usize, id: &str) -> Option<&str> {
        self.turns[..before.min(self.turns.len())]
            .iter()
            .rev()
            .flat_map(|t| t.parts.iter().rev())
            .find_map(|p| match p {
                Part::ToolCall { id: i, name, .. } if i == id => Some(name.as_str()),
                Part::ToolCall { .. }
                | Part::Text(_)
                | Part::Image(_)
                | Part::ToolResult { .. } => None,
            })
    }
}

/// An image: inline data, or a URL whose type its extension tells (Gemini needs the type).
fn image_out(image: &Image) -> Result<PartOut<'_>, Untranslatable> {
    match image {
        Image::Base64 { media_type, data } => Ok(PartOut::InlineData {
            inline_data: Blob {
                mime_type: media_type,
                data,
            },
        }),
        Image::Url(url) => {
            let path = url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let mime_type = [
                (".png", "image/png"),
                (".jpg", "image/jpeg"),
                (".jpeg", "image/jpeg"),
                (".webp", "image/webp"),
                (".gif", "image/gif"),
                (".heic", "image/heic"),
                (".heif", "image/heif"),
            ]
            .into_iter()
            .find_map(|(ext, mime)| path.ends_with(ext).then_some(mime));
            match mime_type {
                Some(mime_type) if url.starts_with("https://") || url.starts_with("http://") => {
                    Ok(PartOut::FileData {
                        file_data: FileData {
                            mime_type,
                            file_uri: url,
                        },
                    })
                }
                Some(_) | None => Err(Untranslatable::new(
                    "an image URL whose type its name does not tell (Gemini needs the MIME type)",
                )),
            }
        }
    }
}

impl<'a> From<&'a Tool> for DeclarationOut<'a> {
    fn from(t: &'a Tool) -> DeclarationOut<'a> {
        DeclarationOut {
            name: &t.name,
            description: t.description.as_deref(),
            parameters_json_schema: &t.schema,
        }
    }
}

/// The id a function call goes by: Gemini's own when it gives one, else one made from the
/// response id and the call's place in the answer (stable across a stream's events).
fn call_id(call: &gemini::FunctionCall, response_id: Option<&str>, n: usize) -> String {
    match (&call.id, response_id) {
        (Some(id), _) if !id.is_empty() => id.clone(),
        (_, Some(r)) if !r.is_empty() => format!("call_{r}_{n}"),
        (_, _) => format!("call_{n}"),
    }
}

/// The OpenAI id of an answer: Gemini's response id behind OpenAI's prefix.
fn chat_id(response_id: Option<&str>) -> String {
    format!(
        "chatcmpl-{}",
        response_id.filter(|r| !r.is_empty()).unwrap_or("gemini")
    )
}

/// A whole Gemini answer as an OpenAI chat completion (typed, so the Anthropic and Responses
/// writers take it as they take OpenAI's own).
pub fn to_chat(g: &gemini::Response, created: u64) -> ChatCompletion {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in g.parts() {
        match (&part.function_call, &part.text) {
            (Some(call), _) => calls.push(crate::completion::ToolCall {
                id: Value::String(call_id(call, g.response_id.as_deref(), calls.len())),
                function: FunctionCall {
                    name: Value::String(call.name.clone()),
                    arguments: Some(call.args.as_ref().map_or("{}".to_owned(), Value::to_string)),
                },
                rest: Map::from_iter([("type".to_owned(), json!("function"))]),
            }),
            (None, Some(t)) if part.thought => reasoning.push_str(t),
            (None, Some(t)) => text.push_str(t),
            (None, None) => {}
        }
    }
    let finish = g.finish().unwrap_or(Finish::Stop).openai(!calls.is_empty());
    let (input, output) = g.usage();
    crate::translate::Assembled {
        id: chat_id(g.response_id.as_deref()),
        model: g.model_version.clone(),
        created,
        text,
        reasoning,
        calls,
        finish,
        usage: (input.unwrap_or(0), output.unwrap_or(0)),
    }
    .completion()
}

/// Gemini stream events as OpenAI chunks: a role chunk first, a chunk per text, thought and
/// function call, then the finish reason, then (when Gemini counted them) the usage alone —
/// the shape of an OpenAI stream asked for its usage.
#[derive(Debug, Default)]
pub struct ToChunks {
    created: u64,
    id: String,
    model: Option<String>,
    started: bool,
    calls: usize,
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

    /// The chunks one Gemini event makes.
    pub fn event(&mut self, g: &gemini::Response) -> Vec<Chunk> {
        if self.id.is_empty() {
            self.id = chat_id(g.response_id.as_deref());
        }
        if g.model_version.is_some() {
            self.model.clone_from(&g.model_version);
        }
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
        for part in g.parts() {
            let delta = match (&part.function_call, &part.text) {
                (Some(call), _) => {
                    let index = self.calls as u64;
                    let id = call_id(call, g.response_id.as_deref(), self.calls);
                    self.calls = self.calls.saturating_add(1);
                    let mut rest = Map::new();
                    rest.insert("type".to_owned(), json!("function"));
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index,
                            id: Some(id),
                            function: Some(FunctionDelta {
                                name: Some(call.name.clone()),
                                arguments: Some(
                                    call.args.as_ref().map_or("{}".to_owned(), Value::to_string),
                                ),
                            }),
                            rest: rest.into(),
                        }]),
                        ..Delta::default()
                    }
                }
                (None, Some(t)) if t.is_empty() => continue,
                (None, Some(t)) if part.thought => Delta {
                    reasoning_content: Some(t.clone()),
                    ..Delta::default()
                },
                (None, Some(t)) => Delta {
                    content: Some(t.clone()),
                    ..Delta::default()
                },
                (None, None) => continue,
            };
            out.push(self.chunk(delta, None));
        }
        if let Some(finish) = g.finish().filter(|_| !self.finished) {
            self.finished = true;
            out.push(self.chunk(Delta::default(), Some(finish.openai(self.calls > 0))));
            let (input, output) = g.usage();
            if input.is_some() || output.is_some() {
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
        }
        out
    }

    fn chunk(&self, delta: Delta, finish: Option<&str>) -> Chunk {
        let mut rest = Map::new();
        rest.insert("id".to_owned(), json!(self.id));
        rest.insert("object".to_owned(), json!("chat.completion.chunk"));
        rest.insert("created".to_owned(), json!(self.created));
        Chunk {
            model: self.model.clone(),
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
