//! The OpenAI Responses wire format (`POST /v1/responses`): a request read as the chat request
//! it amounts to, and the answer as a `response` object or the typed event sequence.

use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Finish};
use crate::wire::{Event, EventKind};

/// Reads a Responses request: `input` (a string or items), `instructions`, function `tools`,
/// `tool_choice`, `text.format`, `max_output_tokens` and `stream`, as the Chat Completions
/// request with the same meaning.
pub fn parse(body: &Value) -> Result<ChatRequest, String> {
    let mut messages = Vec::new();
    if let Some(i) = body.get("instructions").and_then(Value::as_str) {
        messages.push(json!({"role": "system", "content": i}));
    }
    match body.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for item in items {
                match item.get("type").and_then(Value::as_str) {
                    None | Some("message") => {
                        let role = item.get("role").and_then(Value::as_str).unwrap_or("user");
                        let mut text = String::new();
                        crate::chat::content_text(
                            item.get("content").unwrap_or(&Value::Null),
                            &mut text,
                        );
                        messages.push(json!({"role": role, "content": text}));
                    }
                    Some("function_call") => messages.push(json!({"role": "assistant",
                        "content": null, "tool_calls": [{"id": item.get("call_id"), "type": "function",
                        "function": {"name": item.get("name"), "arguments": item.get("arguments")}}]})),
                    Some("function_call_output") => messages.push(json!({"role": "tool",
                        "tool_call_id": item.get("call_id"), "content": item.get("output")})),
                    Some(_) => {}
                }
            }
        }
        Some(_) | None => return Err("'input' must be a string or an array of items".to_owned()),
    }
    let mut chat = json!({
        "model": body.get("model"),
        "messages": messages,
        "stream": body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    });
    if let Some(n) = body.get("max_output_tokens") {
        chat["max_tokens"] = n.clone();
    }
    if let Some(tools) = body.get("tools").and_then(Value::as_array) {
        chat["tools"] = tools
            .iter()
            .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .map(|t| json!({"type": "function", "function": {"name": t.get("name"), "parameters": t.get("parameters")}}))
            .collect();
    }
    match body.get("tool_choice") {
        Some(Value::Object(o)) => {
            chat["tool_choice"] = json!({"type": "function", "function": {"name": o.get("name")}});
        }
        Some(v) => chat["tool_choice"] = v.clone(),
        None => {}
    }
    if let Some(f) = body.pointer("/text/format") {
        match f.get("type").and_then(Value::as_str) {
            Some("json_schema") => {
                chat["response_format"] = json!({"type": "json_schema", "json_schema": {
                    "name": f.get("name"), "schema": f.get("schema"), "strict": f.get("strict")}});
            }
            Some("json_object") => chat["response_format"] = json!({"type": "json_object"}),
            Some(_) | None => {}
        }
    }
    let mut req = crate::openai::parse_chat(&chat, None)?;
    req.store = body.get("store").and_then(Value::as_bool).unwrap_or(true);
    req.background = body
        .get("background")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    req.previous_response_id = body
        .get("previous_response_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(req)
}

/// Responses kept for `GET /v1/responses/{id}`, as OpenAI keeps them (the newest 1,000).
#[derive(Debug, Default)]
pub struct Store {
    entries: parking_lot::Mutex<std::collections::VecDeque<(String, Value)>>,
}

impl Store {
    /// Keeps `response` under its id.
    pub fn keep(&self, response: Value) {
        let Some(id) = response["id"].as_str().map(str::to_owned) else {
            return;
        };
        let mut e = self.entries.lock();
        if e.len() >= 1000 {
            e.pop_front();
        }
        e.push_back((id, response));
    }

    /// Whether a response of this id is kept.
    pub fn has(&self, id: &str) -> bool {
        self.entries.lock().iter().any(|(i, _)| i == id)
    }

    /// Answers `GET`, `DELETE`, `POST …/cancel` or `GET …/input_items` of `/v1/responses/`
    /// followed by `rest`: the status and body.
    pub fn serve(&self, method: &http::Method, rest: &str) -> (u16, Value) {
        let (path, _query) = rest.split_once('?').unwrap_or((rest, ""));
        let (id, sub) = path.split_once('/').unwrap_or((path, ""));
        let mut entries = self.entries.lock();
        let Some(pos) = entries.iter().position(|(i, _)| i == id) else {
            return (
                404,
                json!({"error": {"message": format!("Response with id '{id}' not found."),
                    "type": "invalid_request_error", "param": null, "code": null}}),
            );
        };
        match (method.as_str(), sub) {
            ("GET", "") => (200, entries[pos].1.clone()),
            ("GET", "input_items") => (
                200,
                json!({"object": "list", "data": [], "first_id": null, "last_id": null, "has_more": false}),
            ),
            ("DELETE", "") => {
                entries.remove(pos);
                (
                    200,
                    json!({"id": id, "object": "response", "deleted": true}),
                )
            }
            ("POST", "cancel") => (
                400,
                json!({"error": {"message": "Only responses created with background=true can be cancelled, and this one has completed.",
                    "type": "invalid_request_error", "param": null, "code": null}}),
            ),
            _ => (
                404,
                json!({"error": {"message": format!("Invalid URL ({method} /v1/responses/{rest})"),
                    "type": "invalid_request_error", "param": null, "code": null}}),
            ),
        }
    }
}

fn usage(a: &Answer) -> Value {
    json!({
        "input_tokens": a.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": a.completion_tokens(),
        "output_tokens_details": {"reasoning_tokens": a.thinking.len()},
        "total_tokens": a.prompt_tokens + a.completion_tokens(),
    })
}

/// The ids of a response's items.
struct Ids {
    response: String,
    reasoning: String,
    message: String,
    call: String,
}

impl Ids {
    fn new(id: &str) -> Ids {
        Ids {
            response: format!("resp_{id}"),
            reasoning: format!("rs_{id}"),
            message: format!("msg_{id}"),
            call: format!("fc_{id}"),
        }
    }
}

fn response(a: &Answer, ids: &Ids, created: u64, status: &str, output: Value) -> Value {
    let incomplete = (a.finish == Finish::Length && status != "in_progress")
        .then(|| json!({"reason": "max_output_tokens"}));
    json!({
        "id": ids.response, "object": "response", "created_at": created,
        "status": if incomplete.is_some() { "incomplete" } else { status },
        "error": null, "incomplete_details": incomplete, "model": a.model, "output": output,
        "parallel_tool_calls": true, "store": true, "temperature": 1.0, "top_p": 1.0,
        "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}},
        "usage": if status == "in_progress" { Value::Null } else { usage(a) },
    })
}

fn reasoning_item(a: &Answer, ids: &Ids) -> Value {
    json!({"id": ids.reasoning, "type": "reasoning", "summary": [],
        "content": [{"type": "reasoning_text", "text": a.thinking.concat()}]})
}

fn answer_item(a: &Answer, ids: &Ids, status: &str, whole: bool) -> Value {
    match &a.content {
        Content::Text(t) => json!({"id": ids.message, "type": "message", "status": status,
            "role": "assistant", "content": if whole {
                json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}])
            } else { json!([]) }}),
        Content::Tool {
            id,
            name,
            arguments,
        } => json!({"id": ids.call, "type": "function_call", "status": status,
            "call_id": id, "name": name, "arguments": if whole { arguments.as_str() } else { "" }}),
    }
}

/// A complete (non-streamed) `response` object.
pub fn whole(a: &Answer, id: &str, created: u64) -> Value {
    let ids = Ids::new(id);
    let mut output = Vec::new();
    if !a.thinking.is_empty() {
        output.push(reasoning_item(a, &ids));
    }
    output.push(answer_item(a, &ids, "completed", true));
    response(a, &ids, created, "completed", Value::Array(output))
}

/// The events of a streamed answer, from `response.created` to `response.completed`.
pub fn stream(a: &Answer, id: &str, created: u64) -> Vec<Event> {
    let ids = Ids::new(id);
    let mut seq = 0u64;
    let mut events = Vec::new();
    let mut push = |kind: &str, mut v: Value, at: EventKind| {
        v["type"] = json!(kind);
        v["sequence_number"] = json!(seq);
        seq += 1;
        events.push(Event::named(kind, &v, at));
    };
    let started = response(a, &ids, created, "in_progress", json!([]));
    push(
        "response.created",
        json!({"response": started}),
        EventKind::Preamble,
    );
    push(
        "response.in_progress",
        json!({"response": started}),
        EventKind::Preamble,
    );
    let mut index = 0;
    let mut output = Vec::new();
    if !a.thinking.is_empty() {
        let item = reasoning_item(a, &ids);
        push(
            "response.output_item.added",
            json!({"output_index": index, "item": {"id": ids.reasoning, "type": "reasoning", "summary": [], "content": []}}),
            EventKind::Preamble,
        );
        for t in &a.thinking {
            push(
                "response.reasoning_text.delta",
                json!({"item_id": ids.reasoning, "output_index": index, "content_index": 0, "delta": t}),
                EventKind::Thinking,
            );
        }
        push(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
            EventKind::Thinking,
        );
        output.push(item);
        index += 1;
    }
    push(
        "response.output_item.added",
        json!({"output_index": index, "item": answer_item(a, &ids, "in_progress", false)}),
        EventKind::Preamble,
    );
    match &a.content {
        Content::Text(t) => {
            push(
                "response.content_part.added",
                json!({"item_id": ids.message, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
                EventKind::Preamble,
            );
            for p in &a.pieces {
                push(
                    "response.output_text.delta",
                    json!({"item_id": ids.message, "output_index": index, "content_index": 0, "delta": p, "logprobs": []}),
                    EventKind::Token,
                );
            }
            push(
                "response.output_text.done",
                json!({"item_id": ids.message, "output_index": index, "content_index": 0, "text": t, "logprobs": []}),
                EventKind::Tail,
            );
            push(
                "response.content_part.done",
                json!({"item_id": ids.message, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": t, "annotations": [], "logprobs": []}}),
                EventKind::Tail,
            );
        }
        Content::Tool {
            name, arguments, ..
        } => {
            for p in &a.pieces {
                push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": ids.call, "output_index": index, "delta": p}),
                    EventKind::Token,
                );
            }
            push(
                "response.function_call_arguments.done",
                json!({"item_id": ids.call, "output_index": index, "name": name, "arguments": arguments}),
                EventKind::Tail,
            );
        }
    }
    let item = answer_item(a, &ids, "completed", true);
    push(
        "response.output_item.done",
        json!({"output_index": index, "item": item}),
        EventKind::Tail,
    );
    output.push(item);
    let done = response(a, &ids, created, "completed", Value::Array(output));
    let kind = if a.finish == Finish::Length {
        "response.incomplete"
    } else {
        "response.completed"
    };
    push(kind, json!({"response": done}), EventKind::Terminator);
    events
}

/// An error as a Responses stream's `error` event.
pub fn error_event(code: &str, message: &str) -> Value {
    json!({"type": "error", "code": code, "message": message, "param": null, "sequence_number": 0})
}
