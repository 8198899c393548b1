//! The OpenAI Chat Completions and Embeddings wire format (also spoken by Azure OpenAI).

use base64::Engine as _;
use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Finish, content_text};
use crate::embed;
use crate::wire::{Event, EventKind};

/// Reads a Chat Completions request. `deployment` is the Azure deployment, which names the
/// model when the body does not.
pub fn parse_chat(body: &Value, deployment: Option<&str>) -> Result<ChatRequest, String> {
    let model = match (body.get("model").and_then(Value::as_str), deployment) {
        (_, Some(d)) => d.to_owned(),
        (Some(m), None) => m.to_owned(),
        (None, None) => return Err("you must provide a model parameter".to_owned()),
    };
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("'messages' must be a non-empty array")?;
    // vLLM's `continue_final_message`: a final assistant message is continued (a prefill),
    // and is not part of the question. Without it, Chat Completions answers afresh.
    let continues = body
        .get("continue_final_message")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (prefill, asked) = if continues {
        crate::chat::split_prefill(messages)
    } else {
        (None, &messages[..])
    };
    let mut prompt = String::new();
    for m in messages {
        if m.get("role").and_then(Value::as_str).is_none() {
            return Err("each message needs a 'role'".to_owned());
        }
    }
    for m in asked {
        if let Some(c) = m.get("content") {
            content_text(c, &mut prompt);
        }
    }
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let max_tokens = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64)
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let format = body.get("response_format");
    let schema = format
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("json_schema"))
        .and_then(|f| f.pointer("/json_schema/schema"))
        .cloned();
    let json_object =
        format.and_then(|f| f.get("type")).and_then(Value::as_str) == Some("json_object");
    let last_role = messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str);
    let tool_call = choose_tool(body, last_role == Some("user"));
    Ok(ChatRequest {
        model,
        stream,
        include_usage,
        max_tokens,
        prompt,
        messages: messages.len(),
        schema,
        json_object,
        tool_call,
        prefill,
        store: false,
        background: false,
        previous_response_id: None,
    })
}

/// The tool the answer calls, if any: a named `tool_choice`, or `required`, or `auto` (the
/// default) when the conversation ends with a user turn rather than a tool result.
fn choose_tool(body: &Value, user_turn: bool) -> Option<(String, Value)> {
    let tools = body.get("tools")?.as_array()?;
    let function = |t: &Value| -> Option<(String, Value)> {
        let f = t.get("function")?;
        Some((
            f.get("name")?.as_str()?.to_owned(),
            f.get("parameters")
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        ))
    };
    match body.get("tool_choice") {
        Some(Value::String(s)) if s == "none" => None,
        Some(Value::String(s)) if s == "required" => tools.iter().find_map(function),
        Some(Value::Object(o)) => {
            let name = o.get("function")?.get("name")?.as_str()?;
            tools.iter().filter_map(function).find(|(n, _)| n == name)
        }
        _ if user_turn => tools.iter().find_map(function),
        _ => None,
    }
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "stop",
        Finish::Length => "length",
        Finish::ToolCall => "tool_calls",
    }
}

fn usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.prompt_tokens,
        "completion_tokens": a.completion_tokens(),
        "total_tokens": a.prompt_tokens + a.completion_tokens(),
    })
}

/// A complete (non-streamed) `chat.completion` object.
pub fn completion(a: &Answer, id: &str, created: u64) -> Value {
    let message = match &a.content {
        Content::Text(t) if !a.thinking.is_empty() => json!({"role": "assistant",
            "content": t, "refusal": null, "reasoning_content": a.thinking.concat()}),
        Content::Text(t) => json!({"role": "assistant", "content": t, "refusal": null}),
        Content::Tool {
            id,
            name,
            arguments,
        } => json!({
            "role": "assistant",
            "content": null,
            "refusal": null,
            "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}],
        }),
    };
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": a.model,
        "system_fingerprint": "fp_plumb_sim",
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(a.finish)}],
        "usage": usage(a),
    })
}

/// The events of a streamed answer, `[DONE]` included.
pub fn stream(a: &Answer, id: &str, created: u64, include_usage: bool) -> Vec<Event> {
    let chunk = |delta: Value, finish: Option<&str>| {
        let mut c = json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": a.model,
            "system_fingerprint": "fp_plumb_sim",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if include_usage {
            c["usage"] = Value::Null;
        }
        c
    };
    let mut events = Vec::with_capacity(a.pieces.len() + a.thinking.len() + 4);
    match &a.content {
        Content::Text(_) => {
            events.push(Event::data(
                &chunk(
                    json!({"role": "assistant", "content": "", "refusal": null}),
                    None,
                ),
                EventKind::Preamble,
            ));
            // As DeepSeek-R1, QwQ behind vLLM and OpenRouter stream it.
            for t in &a.thinking {
                events.push(Event::data(
                    &chunk(json!({"reasoning_content": t}), None),
                    EventKind::Thinking,
                ));
            }
            for p in &a.pieces {
                events.push(Event::data(
                    &chunk(json!({"content": p}), None),
                    EventKind::Token,
                ));
            }
        }
        Content::Tool {
            id: call_id, name, ..
        } => {
            events.push(Event::data(
                &chunk(
                    json!({"role": "assistant", "content": null, "tool_calls": [
                        {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}
                    ]}),
                    None,
                ),
                EventKind::Preamble,
            ));
            for p in &a.pieces {
                events.push(Event::data(
                    &chunk(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}),
                        None,
                    ),
                    EventKind::Token,
                ));
            }
        }
    }
    events.push(Event::data(
        &chunk(json!({}), Some(finish_reason(a.finish))),
        EventKind::Tail,
    ));
    if include_usage {
        events.push(Event::data(
            &json!({
                "id": id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": a.model,
                "system_fingerprint": "fp_plumb_sim",
                "choices": [],
                "usage": usage(a),
            }),
            EventKind::Tail,
        ));
    }
    events.push(Event {
        bytes: bytes::Bytes::from_static(b"data: [DONE]\n\n"),
        kind: EventKind::Terminator,
    });
    events
}

/// Reads the `input` of an embeddings request: a string, strings, or token arrays (which are
/// embedded as their numbers' text).
pub fn parse_embedding_input(body: &Value) -> Result<Vec<String>, String> {
    let input = body.get("input").ok_or("'input' is required")?;
    let as_tokens = |v: &Value| -> Option<String> {
        let a = v.as_array()?;
        Some(
            a.iter()
                .map(|t| t.as_i64().map(|n| n.to_string()))
                .collect::<Option<Vec<_>>>()?
                .join(" "),
        )
    };
    match input {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if items.is_empty() => Err("'input' must not be empty".to_owned()),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()),
        Value::Array(items) if items.iter().all(Value::is_number) => Ok(vec![
            as_tokens(input).ok_or("token arrays must hold integers")?,
        ]),
        Value::Array(items) => items
            .iter()
            .map(|i| {
                as_tokens(i)
                    .ok_or_else(|| "'input' items must be strings or token arrays".to_owned())
            })
            .collect(),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            Err("'input' must be a string or an array".to_owned())
        }
    }
}

/// An embeddings response, as floats or (when asked) base64 little-endian f32.
pub fn embeddings(body: &Value, model: &str, inputs: &[String]) -> Value {
    let dims = body
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(embed::DEFAULT_DIMENSIONS, |d| d.clamp(1, 4096) as usize);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += crate::catalog::estimate_tokens(text);
            let v = embed::embed(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// `GET /v1/models`.
pub fn models<'a>(names: impl Iterator<Item = &'a String>, created: u64) -> Value {
    let data: Vec<Value> = names
        .map(|n| json!({"id": n, "object": "model", "created": created, "owned_by": "plumb-simulator"}))
        .collect();
    json!({"object": "list", "data": data})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_request_reads_what_decides_the_answer() {
        let body = json!({
            "model": "sim-gpt",
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": [{"type": "text", "text": "hello"}]}],
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_completion_tokens": 50,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        });
        let r = parse_chat(&body, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.model, "sim-gpt");
        assert!(r.stream && r.include_usage);
        assert_eq!(r.max_tokens, Some(50));
        assert_eq!(r.prompt, "be brief\nhello\n");
        assert_eq!(r.schema, Some(json!({"type": "object"})));
        assert!(r.tool_call.is_none());
    }

    #[test]
    fn tool_choice_is_honoured() {
        let tools = json!([{"type": "function", "function": {"name": "a", "parameters": {}}},
                           {"type": "function", "function": {"name": "b"}}]);
        let mut body =
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools});
        assert_eq!(
            parse_chat(&body, None).map(|r| r.tool_call.map(|t| t.0)),
            Ok(Some("a".into()))
        );
        body["tool_choice"] = json!({"type": "function", "function": {"name": "b"}});
        assert_eq!(
            parse_chat(&body, None).map(|r| r.tool_call.map(|t| t.0)),
            Ok(Some("b".into()))
        );
        body["tool_choice"] = json!("none");
        assert_eq!(parse_chat(&body, None).map(|r| r.tool_call), Ok(None));
        body["tool_choice"] = json!("auto");
        body["messages"] = json!([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "1", "content": "sunny"}]);
        assert_eq!(parse_chat(&body, None).map(|r| r.tool_call), Ok(None));
    }

    #[test]
    fn bad_chat_requests_say_what_is_wrong() {
        assert!(parse_chat(&json!({"messages": []}), None).is_err());
        assert!(parse_chat(&json!({"model": "m"}), None).is_err());
        assert!(parse_chat(&json!({"model": "m", "messages": [{"content": "x"}]}), None).is_err());
        assert_eq!(
            parse_chat(
                &json!({"messages": [{"role": "user", "content": "x"}]}),
                Some("dep")
            )
            .map(|r| r.model),
            Ok("dep".into())
        );
    }

    #[test]
    fn a_final_assistant_message_is_continued_only_when_asked_as_vllm_is() {
        let mut body = json!({"model": "m", "messages": [
            {"role": "user", "content": "what is six times seven"},
            {"role": "assistant", "content": "On \"what"}]});
        let r = parse_chat(&body, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.prefill, None, "Chat Completions answers afresh");
        body["continue_final_message"] = json!(true);
        let r = parse_chat(&body, None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.prefill.as_deref(), Some("On \"what"));
        assert!(!r.prompt.contains("On \"what"), "not part of the question");
    }

    #[test]
    fn embedding_inputs_in_every_form() {
        assert_eq!(
            parse_embedding_input(&json!({"input": "a"})),
            Ok(vec!["a".into()])
        );
        assert_eq!(
            parse_embedding_input(&json!({"input": ["a", "b"]})).map(|v| v.len()),
            Ok(2)
        );
        assert_eq!(
            parse_embedding_input(&json!({"input": [1, 2]})),
            Ok(vec!["1 2".into()])
        );
        assert_eq!(
            parse_embedding_input(&json!({"input": [[1], [2]]})).map(|v| v.len()),
            Ok(2)
        );
        assert!(parse_embedding_input(&json!({"input": []})).is_err());
        assert!(parse_embedding_input(&json!({})).is_err());
    }
}
