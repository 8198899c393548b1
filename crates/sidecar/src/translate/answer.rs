//! Complete answers: an Anthropic `message` as an OpenAI `chat.completion`, and back. The model
//! and usage are the ones of the target that answered.

use serde_json::{Value, json};

use crate::completion::{Block, ChatCompletion, Message};

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An Anthropic message as an OpenAI chat completion.
pub fn anthropic_to_openai(m: &Message, created: u64) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for b in m.content.iter().flatten() {
        match b {
            Block::Text { text: t } => text.push_str(t),
            Block::Thinking { thinking } => reasoning.push_str(thinking),
            Block::ToolUse { id, name, input } => calls.push(json!({
                // OpenAI's types require a string: anything else from a provider is dropped.
                "id": id.as_str().unwrap_or(""),
                "type": "function",
                "function": {"name": name, "arguments": input.as_ref().map_or("{}".to_owned(), Value::to_string)},
            })),
            Block::Other => {}
        }
    }
    let mut message = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }, "refusal": null});
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    // As OpenAI-compatible servers of reasoning models give it (DeepSeek, vLLM).
    if !reasoning.is_empty() {
        message["reasoning_content"] = json!(reasoning);
    }
    let input = m.usage.and_then(|u| u.input_tokens).unwrap_or(0);
    let output = m.usage.and_then(|u| u.output_tokens).unwrap_or(0);
    json!({
        "id": m.id.as_str().unwrap_or(""),
        "object": "chat.completion",
        "created": created,
        "model": m.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(m.stop_reason.as_deref().unwrap_or("end_turn")),
        }],
        "usage": {"prompt_tokens": input, "completion_tokens": output, "total_tokens": input.saturating_add(output)},
    })
}

/// An OpenAI chat completion as an Anthropic message.
pub fn openai_to_anthropic(c: &ChatCompletion) -> Value {
    let message = c.message();
    let mut content = Vec::new();
    // A reasoning model's thinking, as an Anthropic thinking block before the answer.
    if let Some(r) = message
        .and_then(|m| m.rest.get("reasoning_content").or(m.rest.get("reasoning")))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
    {
        content.push(json!({"type": "thinking", "thinking": r, "signature": ""}));
    }
    let text = message
        .and_then(|m| m.content.as_deref().or(m.refusal.as_deref()))
        .unwrap_or("");
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in message.map(|m| m.tool_calls.as_slice()).unwrap_or_default() {
        let args = call.function.arguments.as_deref().unwrap_or("{}");
        let input: Value = serde_json::from_str(args).unwrap_or(json!({}));
        content.push(
            json!({"type": "tool_use", "id": call.id, "name": call.function.name, "input": input}),
        );
    }
    let finish = c
        .choices
        .first()
        .and_then(|ch| ch.finish_reason.as_deref())
        .unwrap_or("stop");
    let usage = c.usage.unwrap_or_default();
    json!({
        "id": c.id,
        "type": "message",
        "role": "assistant",
        "model": c.model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": {
            "input_tokens": usage.prompt_tokens.unwrap_or(0),
            "output_tokens": usage.completion_tokens.unwrap_or(0),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_at_the_edge_of_u64_saturates_instead_of_overflowing() {
        // Found by fuzzing translate_answer: a provider's usage of u64::MAX tokens each.
        let m: Message = serde_json::from_value(json!({
            "content": [{"type": "text", "text": "hi"}],
            "usage": {"input_tokens": u64::MAX, "output_tokens": u64::MAX}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = anthropic_to_openai(&m, 0);
        assert_eq!(c["usage"]["total_tokens"], json!(u64::MAX));
    }

    #[test]
    fn ids_that_are_not_strings_do_not_reach_an_openai_client() {
        // Found by fuzzing translate_answer: `{"id": 0}` passed through, and OpenAI's types
        // require a string.
        let m: Message = serde_json::from_value(json!({
            "id": 0,
            "content": [{"type": "tool_use", "id": {"x": 1}, "name": "f", "input": {}}]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let c = anthropic_to_openai(&m, 0);
        assert_eq!(c["id"], json!(""));
        assert_eq!(c["choices"][0]["message"]["tool_calls"][0]["id"], json!(""));
        let typed: crate::completion::ChatCompletion =
            serde_json::from_value(c).unwrap_or_else(|e| panic!("{e}"));
        assert!(typed.id.is_some());
    }
}
