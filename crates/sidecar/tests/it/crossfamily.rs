//! Failover across API families: an OpenAI client served by an Anthropic target and back,
//! streamed and not, tool calls included; the answer is in the client's own format with the
//! model and usage of the target that answered.

use serde_json::{Value, json};

use crate::support::{Sidecar, header, openai_text, parse_sse, read_all, route, simulator, target};

fn openai_then_anthropic(sim: &plumb_simulator::Simulator) -> String {
    route(
        "chat",
        &[
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-unavailable",
                "",
            ),
            target(
                "claude",
                "anthropic",
                &sim.base_url(),
                "sim-claude",
                "      priority: 1\n",
            ),
        ],
        "  classes: {overloaded: {retries: 0}}\n",
    )
}

fn anthropic_then_openai(sim: &plumb_simulator::Simulator) -> String {
    route(
        "claude",
        &[
            target("claude", "anthropic", &sim.base_url(), "sim-overloaded", ""),
            target(
                "gpt",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt",
                "      priority: 1\n",
            ),
        ],
        "  classes: {overloaded: {retries: 0}}\n",
    )
}

#[tokio::test]
async fn an_openai_client_is_answered_by_an_anthropic_target_in_openai_format() {
    let sim = simulator().await;
    let sc = Sidecar::start(&openai_then_anthropic(&sim));
    let r = sc
        .openai(json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "claude");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "sim-claude");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    let sent = sim.attempts(Some("sim-claude"));
    assert_eq!(
        sent[0].api,
        plumb_simulator::Api::Anthropic,
        "the request was translated"
    );
}

#[tokio::test]
async fn an_openai_stream_with_usage_is_served_by_an_anthropic_target() {
    let sim = simulator().await;
    let sc = Sidecar::start(&openai_then_anthropic(&sim));
    let r = sc
        .openai(json!({"model": "chat", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "claude");
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert!(
        events.iter().all(|e| e.event.is_none()),
        "OpenAI chunks carry no event names"
    );
    assert!(openai_text(&events).ends_with("End of answer."));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let usage: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["model"], "sim-claude");
}

#[tokio::test]
async fn tool_calls_cross_the_family_line_both_ways() {
    let sim = simulator().await;
    let sc = Sidecar::start(&openai_then_anthropic(&sim));
    let tools = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
    let v: Value = sc
        .openai(json!({"model": "chat", "tools": tools, "messages": [{"role": "user", "content": "weather?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "forty-two"})
    );
    // Streamed: the arguments arrive in pieces and rebuild the same call.
    let (text, _) = read_all(
        sc.openai(json!({"model": "chat", "stream": true, "tools": tools, "messages": [{"role": "user", "content": "weather?"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let args: String = parse_sse(&text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "forty-two"})
    );

    // And the other way: an Anthropic client's tool call answered by an OpenAI target.
    let sc = Sidecar::start(&anthropic_then_openai(&sim));
    let v: Value = sc
        .anthropic(json!({"model": "claude", "max_tokens": 200, "tools": [{"name": "lookup", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "find it"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["input"], json!({"q": "forty-two"}));
    assert_eq!(v["model"], "sim-gpt");
}

#[tokio::test]
async fn an_anthropic_stream_is_served_by_an_openai_target_in_anthropic_events() {
    let sim = simulator().await;
    let sc = Sidecar::start(&anthropic_then_openai(&sim));
    let r = sc
        .anthropic(json!({"model": "claude", "max_tokens": 200, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "gpt");
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e.event.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let text: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert!(text.ends_with("End of answer."));
    let delta: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn a_request_the_other_family_cannot_express_skips_that_target_and_says_why() {
    let sim = simulator().await;
    let sc = Sidecar::start(&openai_then_anthropic(&sim));
    let r = sc
        .openai(json!({"model": "chat", "logprobs": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        503,
        "the only reachable target is down; the other cannot take logprobs"
    );
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "claude: skipped (speaks the other API family, which cannot express logprobs)"
        ),
        "{msg}"
    );
    assert!(sim.attempts(Some("sim-claude")).is_empty());
}
