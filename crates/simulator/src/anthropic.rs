//! The Anthropic Messages wire format.

use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Finish, content_text};
use crate::wire::{Event, EventKind};

/// Reads a Messages request.
pub fn parse_messages(body: &Value) -> Result<ChatRequest, String> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or("model: Field required")?
        .to_owned();
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or("max_tokens: Field required")?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("messages: at least one message is required")?;
    let mut prompt = String::new();
    if let Some(system) = body.get("system") {
        content_text(system, &mut prompt);
    }
    // A final assistant message is a prefill: the answer continues it, and it is not part of
    // the question.
    let (prefill, asked) = crate::chat::split_prefill(messages);
    for m in messages {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => return Err("messages: roles must be 'user' or 'assistant'".to_owned()),
        }
    }
    for m in asked {
        if let Some(c) = m.get("content") {
            content_text(c, &mut prompt);
        }
    }
    let last = messages.last();
    let user_turn = last.and_then(|m| m.get("role")).and_then(Value::as_str) == Some("user")
        && !last
            .and_then(|m| m.get("content"))
            .and_then(Value::as_array)
            .is_some_and(|blocks| {
                blocks
                    .iter()
                    .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
            });
    let schema = body
        .get("output_format")
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.get("schema"))
        .cloned();
    Ok(ChatRequest {
        model,
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: true,
        max_tokens: Some(max_tokens.min(u64::from(u32::MAX)) as u32),
        prompt,
        messages: messages.len(),
        schema,
        json_object: false,
        tool_call: choose_tool(body, user_turn),
        prefill,
        store: false,
        background: false,
        previous_response_id: None,
    })
}

fn choose_tool(body: &Value, user_turn: bool) -> Option<(String, Value)> {
    let tools = body.get("tools")?.as_array()?;
    let tool = |t: &Value| -> Option<(String, Value)> {
        Some((
            t.get("name")?.as_str()?.to_owned(),
            t.get("input_schema")
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        ))
    };
    let choice = body.get("tool_choice");
    match choice.and_then(|c| c.get("type")).and_then(Value::as_str) {
        Some("none") => None,
        Some("any") => tools.iter().find_map(tool),
        Some("tool") => {
            let name = choice?.get("name")?.as_str()?;
            tools.iter().filter_map(tool).find(|(n, _)| n == name)
        }
        _ if user_turn => tools.iter().find_map(tool),
        _ => None,
    }
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCall => "tool_use",
    }
}

fn block(a: &Answer) -> Value {
    match &a.content {
        Content::Text(t) => json!({"type": "text", "text": t}),
        Content::Tool {
            id,
            name,
            arguments,
        } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or(json!({}));
            json!({"type": "tool_use", "id": id, "name": name, "input": input})
        }
    }
}

/// The signature the simulator's thinking blocks carry (opaque, as the provider's are).
const SIGNATURE: &str = "c2ltdWxhdGVkLXRoaW5raW5n";

/// A complete (non-streamed) `message` object.
pub fn message(a: &Answer, id: &str) -> Value {
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": a.model,
        "content": if a.thinking.is_empty() {
            json!([block(a)])
        } else {
            json!([{"type": "thinking", "thinking": a.thinking.concat(), "signature": SIGNATURE}, block(a)])
        },
        "stop_reason": stop_reason(a.finish),
        "stop_sequence": null,
        "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.completion_tokens()},
    })
}

/// The events of a streamed answer, from `message_start` to `message_stop`.
pub fn stream(a: &Answer, id: &str) -> Vec<Event> {
    let mut events = Vec::with_capacity(a.pieces.len() + 6);
    events.push(Event::named(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": a.model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1},
        }}),
        EventKind::Preamble,
    ));
    // A thinking block first, as extended thinking streams it; the answer's block follows.
    let index = u32::from(!a.thinking.is_empty());
    if !a.thinking.is_empty() {
        events.push(Event::named(
            "content_block_start",
            &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
            EventKind::Preamble,
        ));
        for t in &a.thinking {
            events.push(Event::named(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": t}}),
                EventKind::Thinking,
            ));
        }
        events.push(Event::named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": SIGNATURE}}),
            EventKind::Preamble,
        ));
        events.push(Event::named(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": 0}),
            EventKind::Preamble,
        ));
    }
    let (start_block, delta) = match &a.content {
        Content::Text(_) => (json!({"type": "text", "text": ""}), "text"),
        Content::Tool { id, name, .. } => (
            json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
            "tool",
        ),
    };
    events.push(Event::named(
        "content_block_start",
        &json!({"type": "content_block_start", "index": index, "content_block": start_block}),
        EventKind::Preamble,
    ));
    events.push(Event::named(
        "ping",
        &json!({"type": "ping"}),
        EventKind::Preamble,
    ));
    for p in &a.pieces {
        let d = if delta == "text" {
            json!({"type": "text_delta", "text": p})
        } else {
            json!({"type": "input_json_delta", "partial_json": p})
        };
        events.push(Event::named(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": d}),
            EventKind::Token,
        ));
    }
    events.push(Event::named(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
        EventKind::Tail,
    ));
    events.push(Event::named(
        "message_delta",
        &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(a.finish), "stop_sequence": null},
                "usage": {"output_tokens": a.completion_tokens()}}),
        EventKind::Tail,
    ));
    events.push(Event::named(
        "message_stop",
        &json!({"type": "message_stop"}),
        EventKind::Terminator,
    ));
    events
}

/// `GET /v1/models` in Anthropic's shape.
pub fn models<'a>(names: impl Iterator<Item = &'a String>) -> Value {
    let data: Vec<Value> = names
        .map(|n| json!({"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"}))
        .collect();
    let first = data.first().and_then(|d| d.get("id")).cloned();
    let last = data.last().and_then(|d| d.get("id")).cloned();
    json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_request_needs_max_tokens_and_reads_the_system_prompt() {
        let body = json!({"model": "sim-claude", "max_tokens": 100, "system": "be brief",
                          "messages": [{"role": "user", "content": "hi"}]});
        let r = parse_messages(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.prompt, "be brief\nhi\n");
        assert_eq!(r.max_tokens, Some(100));
        let mut no_max = body.clone();
        no_max.as_object_mut().map(|o| o.remove("max_tokens"));
        assert_eq!(
            parse_messages(&no_max).err().as_deref(),
            Some("max_tokens: Field required")
        );
    }

    #[test]
    fn tool_result_turn_answers_in_text() {
        let body = json!({"model": "m", "max_tokens": 10,
            "tools": [{"name": "w", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "x"},
                         {"role": "assistant", "content": [{"type": "tool_use", "id": "1", "name": "w", "input": {}}]},
                         {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "1", "content": "sunny"}]}]});
        assert_eq!(parse_messages(&body).map(|r| r.tool_call), Ok(None));
    }
}
