//! Golden translations: requests of every client family written for Gemini, and Gemini's
//! answers and a recorded stream read back for every client family.

use bytes::Bytes;
use serde_json::{Value, json};

use crate::event::{Event, SseReader};
use crate::payload::Api;
use crate::translate::Conversation;
use crate::translate::events::Translator;
use crate::translate::responses::Echo;

fn gemini(c: Result<Conversation, crate::translate::Untranslatable>) -> Value {
    Value::Object(
        c.and_then(|c| c.to_gemini())
            .unwrap_or_else(|e| panic!("{e}")),
    )
}

fn from_openai(body: Value) -> Value {
    gemini(Conversation::from_openai(body.as_object().unwrap()))
}

fn refused(body: Value) -> String {
    Conversation::from_openai(body.as_object().unwrap())
        .and_then(|c| c.to_gemini())
        .unwrap_err()
        .field
}

#[test]
fn an_openai_request_with_tools_and_a_tool_round_becomes_gemini_contents() {
    let body = json!({
        "model": "gpt",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather in Paris? See"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/map.JPG?v=1"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "description": "Weather now",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stop": ["END"]
    });
    assert_eq!(
        from_openai(body),
        json!({
            "contents": [
                {"role": "user", "parts": [
                    {"text": "Weather in Paris? See"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBO"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/map.JPG?v=1"}}
                ]},
                {"role": "model", "parts": [
                    {"functionCall": {"id": "call_1", "name": "weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "skip_thought_signature_validator"}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "call_1", "name": "weather", "response": {"output": "18C"}}}
                ]}
            ],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": [{"functionDeclarations": [{"name": "weather", "description": "Weather now",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
            "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]}
        })
    );
}

#[test]
fn structured_output_asks_gemini_for_json_with_the_schema() {
    let schema =
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]});
    let out = from_openai(
        json!({"model": "gpt", "messages": [{"role": "user", "content": "n?"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
    );
    assert_eq!(
        out["generationConfig"],
        json!({"responseMimeType": "application/json", "responseJsonSchema": schema})
    );
    let anthropic = gemini(Conversation::from_anthropic(
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "n?"}],
            "output_format": {"type": "json_schema", "schema": schema}})
        .as_object()
        .unwrap(),
    ));
    assert_eq!(
        anthropic["generationConfig"],
        json!({"maxOutputTokens": 10, "responseMimeType": "application/json", "responseJsonSchema": schema})
    );
}

#[test]
fn anthropic_and_responses_requests_become_the_same_gemini_request() {
    let anthropic = gemini(Conversation::from_anthropic(
        json!({"model": "c", "max_tokens": 10, "system": "S",
            "tool_choice": {"type": "auto"},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "messages": [{"role": "user", "content": "hi"}]})
        .as_object()
        .unwrap(),
    ));
    let responses = gemini(Conversation::from_responses(
        json!({"model": "g", "max_output_tokens": 10, "instructions": "S", "input": "hi",
            "tool_choice": "auto",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}]})
        .as_object()
        .unwrap(),
    ));
    let expected = json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "S"}]},
        "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
        "generationConfig": {"maxOutputTokens": 10}
    });
    assert_eq!(anthropic, expected);
    assert_eq!(responses, expected);
}

#[test]
fn what_gemini_cannot_express_is_refused_by_name() {
    let msgs = json!([{"role": "user", "content": "hi"}]);
    assert!(refused(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "The"}]})).contains("prefill"));
    assert!(refused(json!({"model": "m", "messages": msgs, "parallel_tool_calls": false, "tools": [{"type": "function", "function": {"name": "f"}}]})).starts_with("parallel_tool_calls"));
    assert!(refused(json!({"model": "m", "messages": msgs, "user": "u1"})).starts_with("user"));
    assert!(
        refused(json!({"model": "m", "messages": msgs, "stop": ["a", "b", "c", "d", "e", "f"]}))
            .starts_with("stop")
    );
    assert!(refused(json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x.test/img"}}]}]})).contains("MIME type"));
    assert!(refused(json!({"model": "m", "messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]})).contains("nope"));
    assert!(refused(json!({"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "x"}
    ]})).contains("not a JSON object"));
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget() {
    let out = gemini(Conversation::from_responses(
        json!({"model": "o", "input": "hi", "reasoning": {"effort": "low"}})
            .as_object()
            .unwrap(),
    ));
    assert_eq!(
        out["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 1024})
    );
    // The least thinking is the model's own floor: no budget some model would refuse.
    let minimal = gemini(Conversation::from_responses(
        json!({"model": "o", "input": "hi", "reasoning": {"effort": "minimal"}})
            .as_object()
            .unwrap(),
    ));
    assert!(
        minimal.get("generationConfig").is_none(),
        "left to the model: {minimal}"
    );
}

/// A recorded whole answer of gemini-2.5-flash, with a thought and a function call.
fn recorded_answer() -> crate::event::gemini::Response {
    serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Let me check.", "thought": true},
            {"text": "Checking the weather."},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 8, "thoughtsTokenCount": 4, "totalTokenCount": 24},
        "modelVersion": "gemini-2.5-flash",
        "responseId": "r1"
    }))
    .unwrap()
}

#[test]
fn a_whole_answer_becomes_an_openai_completion_with_its_model_usage_and_tool_call() {
    let c = serde_json::to_value(super::to_chat(&recorded_answer(), 7)).unwrap();
    assert_eq!(
        c,
        json!({
            "id": "chatcmpl-r1", "object": "chat.completion", "created": 7, "model": "gemini-2.5-flash",
            "choices": [{"index": 0, "logprobs": null, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Checking the weather.", "refusal": null,
                "reasoning_content": "Let me check.",
                "tool_calls": [{"id": "call_r1_0", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]
            }}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 12, "total_tokens": 24}
        })
    );
}

#[test]
fn a_truncated_answer_finishes_with_length_and_a_filtered_one_with_content_filter() {
    let with = |reason: &str| {
        let g = serde_json::from_value(json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": reason}]})).unwrap();
        super::to_chat(&g, 0).choices[0].finish_reason.clone()
    };
    assert_eq!(with("MAX_TOKENS").as_deref(), Some("length"));
    assert_eq!(with("SAFETY").as_deref(), Some("content_filter"));
    assert_eq!(with("STOP").as_deref(), Some("stop"));
}

/// A recorded `streamGenerateContent?alt=sse` stream: text in two events, then a function
/// call with the finish reason and the usage.
const RECORDED: &str = concat!(
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hello\"}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"totalTokenCount\": 9},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \" there\"}],\"role\": \"model\"},\"index\": 0}],\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n",
    "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"weather\",\"args\": {\"city\": \"Paris\"}}}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 9,\"candidatesTokenCount\": 5,\"totalTokenCount\": 14},\"modelVersion\": \"gemini-2.5-flash\",\"responseId\": \"abc\"}\r\n\r\n",
);

/// Feeds the recorded stream and ends it; everything the client gets, as text.
fn relay(mut t: Translator) -> String {
    let mut r = SseReader::default();
    r.push(RECORDED.as_bytes());
    let mut out: Vec<Bytes> = Vec::new();
    while let Some(raw) = r.next_event() {
        let event = Event::parse(t.upstream(), &raw);
        out.extend(t.event(&raw, &event).unwrap_or_else(|e| panic!("{e:?}")));
    }
    out.extend(t.finish().unwrap_or_else(|_| panic!("incomplete")));
    assert_eq!(t.text(), "Hello there");
    out.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

fn data(out: &str) -> Vec<Value> {
    out.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[test]
fn a_recorded_stream_reaches_an_openai_client_as_chunks_with_usage_and_done() {
    let out = relay(Translator::new(Api::Gemini, Api::Openai, true, 5));
    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
    let chunks = data(&out);
    let base = json!({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 5, "model": "gemini-2.5-flash"});
    let with = |choices: Value| {
        let mut c = base.clone();
        c["choices"] = choices;
        c
    };
    assert_eq!(
        chunks,
        vec![
            with(json!([{"index": 0, "delta": {"role": "assistant"}, "finish_reason": null}])),
            with(json!([{"index": 0, "delta": {"content": "Hello"}, "finish_reason": null}])),
            with(json!([{"index": 0, "delta": {"content": " there"}, "finish_reason": null}])),
            with(
                json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_abc_0", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]}, "finish_reason": null}])
            ),
            with(json!([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])),
            {
                let mut u = with(json!([]));
                u["usage"] =
                    json!({"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14});
                u
            },
        ]
    );
    // Without asking for usage, the usage chunk stays behind.
    let out = relay(Translator::new(Api::Gemini, Api::Openai, false, 5));
    assert!(!out.contains("\"usage\""), "{out}");
}

#[test]
fn a_recorded_stream_reaches_an_anthropic_client_as_message_events() {
    let out = relay(Translator::new(Api::Gemini, Api::Anthropic, false, 5));
    let events: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data = data(&out);
    assert_eq!(data[0]["message"]["model"], "gemini-2.5-flash");
    assert_eq!(data[5]["content_block"]["name"], "weather");
    assert_eq!(data[6]["delta"]["partial_json"], "{\"city\":\"Paris\"}");
    assert_eq!(data[8]["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        data[8]["usage"],
        json!({"input_tokens": 9, "output_tokens": 5})
    );
}

#[test]
fn a_recorded_stream_reaches_a_responses_client_as_a_completed_response() {
    let echo = Echo::of(json!({"model": "g"}).as_object().unwrap());
    let out = relay(Translator::to_responses(Api::Gemini, echo, 5));
    let data = data(&out);
    let last = data.last().unwrap();
    assert_eq!(last["type"], "response.completed", "{out}");
    assert_eq!(last["response"]["model"], "gemini-2.5-flash");
    assert_eq!(last["response"]["usage"]["input_tokens"], 9);
    assert_eq!(last["response"]["usage"]["output_tokens"], 5);
    let output = &last["response"]["output"];
    assert_eq!(output[0]["content"][0]["text"], "Hello there");
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(output[1]["name"], "weather");
}

#[test]
fn a_stream_that_ends_before_its_finish_reason_is_incomplete() {
    let mut t = Translator::new(Api::Gemini, Api::Openai, false, 0);
    let mut r = SseReader::default();
    r.push(RECORDED.split("\r\n\r\n").next().unwrap().as_bytes());
    r.push(b"\r\n\r\n");
    let raw = r.next_event().unwrap();
    let event = Event::parse(Api::Gemini, &raw);
    assert!(!t.event(&raw, &event).unwrap().is_empty());
    assert!(t.finish().is_err());
}

#[test]
fn a_malformed_function_call_after_commit_breaks_the_stream_instead_of_finishing_it() {
    let mut t = Translator::new(Api::Gemini, Api::Openai, false, 0);
    let mut r = SseReader::default();
    r.push(b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}]}}]}\r\n\r\n");
    r.push(b"data: {\"candidates\": [{\"finishReason\": \"MALFORMED_FUNCTION_CALL\"}]}\r\n\r\n");
    let raw = r.next_event().unwrap();
    assert!(t.event(&raw, &Event::parse(Api::Gemini, &raw)).is_ok());
    let raw = r.next_event().unwrap();
    assert!(matches!(
        t.event(&raw, &Event::parse(Api::Gemini, &raw)),
        Err(crate::translate::events::EventError::Upstream(m)) if m.contains("MALFORMED_FUNCTION_CALL")
    ));
    assert!(t.finish().is_err(), "never complete");
}

#[test]
fn only_a_turns_first_function_call_carries_the_unsigned_thought_signature() {
    let call = |id: &str| json!({"id": id, "type": "function", "function": {"name": "f", "arguments": "{}"}});
    let out = from_openai(json!({"model": "m", "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": null, "tool_calls": [call("a"), call("b")]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"}
    ]}));
    let parts = out["contents"][1]["parts"].as_array().unwrap();
    assert_eq!(
        parts[0]["thoughtSignature"],
        "skip_thought_signature_validator"
    );
    assert!(parts[1].get("thoughtSignature").is_none());
    let results = out["contents"][2]["parts"].as_array().unwrap();
    assert!(results.iter().all(|p| p.get("thoughtSignature").is_none()));
    assert_eq!(results[1]["functionResponse"]["name"], "f");
}
