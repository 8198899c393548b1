//! Answers written for a Responses client: a whole Chat Completions or Anthropic answer as a
//! `response` object, and a stream of either as the Responses event sequence.
//!
//! [`Writer`] is the client's side of a translated stream: it is told what the upstream said
//! (thinking, text, a function call and its arguments, the end and the usage) and writes the
//! typed events the official SDKs expect, in order, with their sequence numbers and the ids
//! that tie deltas to items. One writer lives for the client's whole stream, so a continuation
//! from another target goes on in the same message item. It and [`PassthroughState`] live in
//! `writer`; this module keeps the Responses vocabulary they share and the whole answers.

use serde_json::{Map, Value, json};

use crate::completion::{Block, ChatCompletion, Message};

mod writer;

pub use writer::{PassthroughState, Writer};

/// What a Responses answer repeats of its request (`instructions`, `tools`, `text`, …), with
/// the API's defaults for what the client left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Echo(Map<String, Value>);

impl Echo {
    /// The fields of `request` the response object repeats.
    pub fn of(request: &Map<String, Value>) -> Echo {
        let mut m = Map::new();
        let get = |k: &str, default: Value| {
            request
                .get(k)
                .filter(|v| !v.is_null())
                .cloned()
                .unwrap_or(default)
        };
        m.insert("instructions".into(), get("instructions", Value::Null));
        m.insert(
            "max_output_tokens".into(),
            get("max_output_tokens", Value::Null),
        );
        m.insert(
            "parallel_tool_calls".into(),
            get("parallel_tool_calls", json!(true)),
        );
        m.insert(
            "reasoning".into(),
            get("reasoning", json!({"effort": null, "summary": null})),
        );
        m.insert("temperature".into(), get("temperature", json!(1.0)));
        m.insert(
            "text".into(),
            get("text", json!({"format": {"type": "text"}})),
        );
        m.insert("tool_choice".into(), get("tool_choice", json!("auto")));
        m.insert("tools".into(), get("tools", json!([])));
        m.insert("top_p".into(), get("top_p", json!(1.0)));
        m.insert("user".into(), get("user", Value::Null));
        m.insert("metadata".into(), get("metadata", json!({})));
        Echo(m)
    }
}

/// A new id of `kind` (`resp`, `msg`, `fc`, `rs`, `call`), marked as Plumb's: `resp_plumb_…`.
/// Nothing stores what Plumb wrote, so a later `previous_response_id` naming such a response
/// is refused with a clear error, and such items sent back are not shown to OpenAI as its own
/// (see [`is_plumbs`]).
pub fn new_id(kind: &str) -> String {
    format!(
        "{kind}_plumb_{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

/// Whether `id` is one Plumb made up ([`new_id`]).
pub fn is_plumbs(id: &str) -> bool {
    id.split_once('_')
        .is_some_and(|(_, rest)| rest.starts_with("plumb_"))
}

/// The prefix of the ids of responses Plumb translated.
pub const TRANSLATED_ID_PREFIX: &str = "resp_plumb_";

/// Why the answer stopped, in the Responses terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// It finished (or called its tools).
    Completed,
    /// It reached its output limit.
    MaxOutputTokens,
    /// A content filter stopped it.
    ContentFilter,
}

impl Stop {
    /// From Chat Completions' `finish_reason`.
    pub fn from_finish_reason(reason: &str) -> Stop {
        match reason {
            "length" => Stop::MaxOutputTokens,
            "content_filter" => Stop::ContentFilter,
            _ => Stop::Completed,
        }
    }

    /// From Anthropic's `stop_reason`.
    pub fn from_stop_reason(reason: &str) -> Stop {
        match reason {
            "max_tokens" | "model_context_window_exceeded" => Stop::MaxOutputTokens,
            "refusal" => Stop::ContentFilter,
            _ => Stop::Completed,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Stop::Completed => "completed",
            Stop::MaxOutputTokens | Stop::ContentFilter => "incomplete",
        }
    }

    fn details(self) -> Value {
        match self {
            Stop::Completed => Value::Null,
            Stop::MaxOutputTokens => json!({"reason": "max_output_tokens"}),
            Stop::ContentFilter => json!({"reason": "content_filter"}),
        }
    }
}

/// One output item.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    /// Thinking, as a reasoning item with its text.
    Reasoning { id: String, text: String },
    /// The answer's text (or a refusal).
    Message {
        id: String,
        text: String,
        refusal: bool,
    },
    /// A function call.
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
    /// An item some earlier upstream streamed as it was (a continuation's prefix).
    Done(Value),
}

impl Item {
    /// The item as JSON: complete, or as it starts (`in_progress`, its content parts to come).
    fn json(&self, status: &str) -> Value {
        let started = status == "in_progress";
        match self {
            Item::Reasoning { id, text } => json!({
                "id": id, "type": "reasoning", "summary": [],
                "content": if started { json!([]) } else { json!([{"type": "reasoning_text", "text": text}]) },
                "status": status,
            }),
            Item::Message { id, text, refusal } => {
                let part = if *refusal {
                    json!({"type": "refusal", "refusal": text})
                } else {
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
                };
                let content = if started { json!([]) } else { json!([part]) };
                json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
            }
            Item::FunctionCall {
                id,
                call_id,
                name,
                arguments,
            } => json!({
                "id": id, "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": arguments,
            }),
            Item::Done(v) => v.clone(),
        }
    }
}

/// What names a response: its id, when it was made and the model that answers.
struct Head<'a> {
    id: &'a str,
    created: u64,
    model: &'a str,
}

/// The response object.
fn response(
    head: &Head<'_>,
    echo: &Echo,
    status: &str,
    output: Option<Vec<Value>>,
    usage: Option<(u64, u64)>,
    details: Value,
) -> Value {
    let mut r = Map::new();
    r.insert("id".into(), json!(head.id));
    r.insert("object".into(), json!("response"));
    r.insert("created_at".into(), json!(head.created));
    r.insert("status".into(), json!(status));
    r.insert("background".into(), json!(false));
    r.insert("error".into(), Value::Null);
    r.insert("incomplete_details".into(), details);
    r.insert("model".into(), json!(head.model));
    if let Some(output) = output {
        r.insert("output".into(), Value::Array(output));
    }
    r.insert("previous_response_id".into(), Value::Null);
    r.insert("store".into(), json!(false));
    r.insert("truncation".into(), json!("disabled"));
    r.extend(echo.0.iter().map(|(k, v)| (k.clone(), v.clone())));
    r.insert(
        "usage".into(),
        usage.map_or(Value::Null, |(input, output)| {
            json!({
                "input_tokens": input,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input.saturating_add(output),
            })
        }),
    );
    Value::Object(r)
}

/// A whole Chat Completions answer as a `response`.
pub fn from_chat(c: &ChatCompletion, echo: &Echo, created: u64) -> Value {
    let mut items = Vec::new();
    let message = c.message();
    if let Some(r) = message
        .and_then(|m| m.rest.get("reasoning_content").or(m.rest.get("reasoning")))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        items.push(Item::Reasoning {
            id: new_id("rs"),
            text: r.to_owned(),
        });
    }
    if let Some(m) = message {
        let (text, refusal) = match (&m.content, &m.refusal) {
            (Some(t), _) if !t.is_empty() => (t.clone(), false),
            (_, Some(r)) if !r.is_empty() => (r.clone(), true),
            (Some(_) | None, Some(_) | None) => (String::new(), false),
        };
        if !text.is_empty() {
            items.push(Item::Message {
                id: new_id("msg"),
                text,
                refusal,
            });
        }
        for call in &m.tool_calls {
            items.push(Item::FunctionCall {
                id: new_id("fc"),
                call_id: call
                    .id
                    .as_str()
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| new_id("call"), str::to_owned),
                name: call.function.name.as_str().unwrap_or("").to_owned(),
                arguments: call
                    .function
                    .arguments
                    .clone()
                    .unwrap_or_else(|| "{}".into()),
            });
        }
    }
    let stop = Stop::from_finish_reason(
        c.choices
            .first()
            .and_then(|ch| ch.finish_reason.as_deref())
            .unwrap_or("stop"),
    );
    let usage = c.usage.unwrap_or_default();
    whole(
        &items,
        c.model.as_deref().unwrap_or(""),
        echo,
        created,
        stop,
        (
            usage.prompt_tokens.unwrap_or(0),
            usage.completion_tokens.unwrap_or(0),
        ),
    )
}

/// A whole Anthropic message as a `response`.
pub fn from_anthropic(m: &Message, echo: &Echo, created: u64) -> Value {
    let mut items = Vec::new();
    for b in m.content.iter().flatten() {
        match b {
            Block::Thinking { thinking } => items.push(Item::Reasoning {
                id: new_id("rs"),
                text: thinking.clone(),
            }),
            Block::Text { text } => match items.last_mut() {
                Some(Item::Message { text: t, .. }) => t.push_str(text),
                Some(_) | None => items.push(Item::Message {
                    id: new_id("msg"),
                    text: text.clone(),
                    refusal: false,
                }),
            },
            Block::ToolUse { id, name, input } => items.push(Item::FunctionCall {
                id: new_id("fc"),
                call_id: id
                    .as_str()
                    .filter(|i| !i.is_empty())
                    .map_or_else(|| new_id("call"), str::to_owned),
                name: name.as_str().unwrap_or("").to_owned(),
                arguments: input.as_ref().map_or("{}".to_owned(), Value::to_string),
            }),
            Block::Other => {}
        }
    }
    let stop = Stop::from_stop_reason(m.stop_reason.as_deref().unwrap_or("end_turn"));
    whole(
        &items,
        m.model.as_deref().unwrap_or(""),
        echo,
        created,
        stop,
        (
            m.usage.and_then(|u| u.input_tokens).unwrap_or(0),
            m.usage.and_then(|u| u.output_tokens).unwrap_or(0),
        ),
    )
}

fn whole(
    items: &[Item],
    model: &str,
    echo: &Echo,
    created: u64,
    stop: Stop,
    usage: (u64, u64),
) -> Value {
    let output = items.iter().map(|i| i.json("completed")).collect();
    response(
        &Head {
            id: &new_id("resp"),
            created,
            model,
        },
        echo,
        stop.status(),
        Some(output),
        Some(usage),
        stop.details(),
    )
}

#[cfg(test)]
mod tests;
