use serde_json::{Value, json};

use super::*;

fn conversation(openai: Value) -> Conversation {
    let Value::Object(map) = openai else {
        panic!("not an object")
    };
    Conversation::from_openai(&map).unwrap_or_else(|e| panic!("{e}"))
}

const CLAUDE: &str = "anthropic.claude-sonnet-4-20250514-v1:0";

#[test]
fn an_openai_request_becomes_a_converse_request() {
    let c = conversation(json!({
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"q\":1}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ],
        "tools": [{"type": "function", "function": {"name": "look", "description": "Looks", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "stop": ["END"]
    }));
    let out = Value::Object(c.to_bedrock(CLAUDE).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(
        out,
        json!({
            "messages": [
                {"role": "user", "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
                ]},
                {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "call_1", "name": "look", "input": {"q": 1}}}
                ]},
                {"role": "user", "content": [
                    {"toolResult": {"toolUseId": "call_1", "content": [{"text": "a cat"}]}}
                ]}
            ],
            "system": [{"text": "Be brief."}],
            "toolConfig": {
                "tools": [{"toolSpec": {"name": "look", "description": "Looks", "inputSchema": {"json": {"type": "object"}}}}],
                "toolChoice": {"any": {}}
            },
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.5, "topP": 0.9, "stopSequences": ["END"]}
        })
    );
}

#[test]
fn a_named_tool_choice_and_claude_thinking_are_written_as_converse_takes_them() {
    let c = conversation(json!({
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}
    }));
    let out = c.to_bedrock(CLAUDE).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "f"}})
    );
    let mut c = conversation(json!({
        "model": "m", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]
    }));
    c.reasoning_effort = Some("low".to_owned());
    let out = c
        .to_bedrock(&format!("us.{CLAUDE}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out["additionalModelRequestFields"],
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
    );
    assert_eq!(out["inferenceConfig"]["maxTokens"], json!(1034));
    let err = c.to_bedrock("amazon.nova-pro-v1:0").unwrap_err();
    assert!(err.field.starts_with("reasoning_effort"), "{err}");
}

#[test]
fn what_converse_cannot_say_is_refused_by_name() {
    let refused = |body: Value| conversation(body).to_bedrock(CLAUDE).unwrap_err().field;
    assert!(refused(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}}))
        .starts_with("response_format"));
    assert!(
        refused(
            json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})
        )
        .starts_with("an image URL")
    );
    assert!(
        refused(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"},
        {"role": "assistant", "content": "partial"}]})
        )
        .starts_with("messages")
    );
    assert!(
        refused(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "stop": ["a", "b", "c", "d", "e"]})
        )
        .starts_with("stop")
    );
    assert!(
        refused(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "user": "u"}))
            .starts_with("user")
    );
}

#[test]
fn a_converse_answer_becomes_a_chat_completion() {
    let b: bedrock::Response = serde_json::from_value(json!({
        "output": {"message": {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s"}}},
            {"text": "Hello"},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "f", "input": {"a": 1}}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 5, "outputTokens": 7, "totalTokens": 12}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    let c = serde_json::to_value(to_chat(&b, CLAUDE, 1)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c["model"], json!(CLAUDE));
    assert_eq!(c["choices"][0]["finish_reason"], json!("tool_calls"));
    assert_eq!(c["choices"][0]["message"]["content"], json!("Hello"));
    assert_eq!(
        c["choices"][0]["message"]["reasoning_content"],
        json!("hmm")
    );
    assert_eq!(
        c["choices"][0]["message"]["tool_calls"][0],
        json!({"id": "tooluse_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}})
    );
    assert_eq!(c["usage"]["total_tokens"], json!(12));
}

#[test]
fn converse_stream_events_become_openai_chunks() {
    let events: Vec<StreamEvent> = [
        json!({"messageStart": {"role": "assistant"}}),
        json!({"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "Hi"}}}),
        json!({"contentBlockStop": {"contentBlockIndex": 0}}),
        json!({"contentBlockStart": {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}}),
        json!({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}}}),
        json!({"contentBlockDelta": {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}}),
        json!({"messageStop": {"stopReason": "tool_use"}}),
        json!({"metadata": {"usage": {"inputTokens": 3, "outputTokens": 4}}}),
    ]
    .into_iter()
    .map(|v| serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}")))
    .collect();
    let mut t = ToChunks::new(7);
    let chunks: Vec<Value> = events
        .iter()
        .flat_map(|e| t.event(e))
        .map(|c| serde_json::to_value(c).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], json!("assistant"));
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], json!("Hi"));
    assert_eq!(
        chunks[2]["choices"][0]["delta"]["tool_calls"][0]["id"],
        json!("t1")
    );
    assert_eq!(
        chunks[3]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
        json!("{\"a\":")
    );
    assert_eq!(
        chunks[5]["choices"][0]["finish_reason"],
        json!("tool_calls")
    );
    assert_eq!(chunks[6]["usage"]["completion_tokens"], json!(4));
    assert!(events[7].is_terminal() && !events[6].is_terminal());
}
