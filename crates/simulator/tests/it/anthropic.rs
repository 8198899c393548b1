use serde_json::{Value, json};

use crate::support::{Sim, anthropic_stream_text, messages_body, parse_sse, read_stream};

#[tokio::test]
async fn healthy_message_has_text_usage_and_stop_reason() {
    let sim = Sim::start();
    let r = sim
        .anthropic(messages_body("sim-claude", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["request-id"], "req_sim_1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "sim-claude");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["type"], "text");
    assert!(
        v["content"][0]["text"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 10);
}

#[tokio::test]
async fn stream_follows_the_messages_event_sequence() {
    let sim = Sim::start();
    let whole: Value = sim
        .anthropic(messages_body("sim-claude", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (text, err) = read_stream(
        sim.anthropic(messages_body("sim-claude", true))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let n = names.len();
    assert_eq!(
        &names[..3],
        ["message_start", "content_block_start", "ping"]
    );
    assert!(names[3..n - 3].iter().all(|e| *e == "content_block_delta"));
    assert_eq!(
        &names[n - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    for e in &events {
        assert_eq!(
            e.json().unwrap()["type"],
            e.event.as_deref().unwrap(),
            "event name and type agree"
        );
    }
    assert_eq!(
        anthropic_stream_text(&events),
        whole["content"][0]["text"].as_str().unwrap()
    );
    let delta = events[n - 2].json().unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        delta["usage"]["output_tokens"],
        whole["usage"]["output_tokens"]
    );
}

#[tokio::test]
async fn tool_use_streams_partial_json_that_rebuilds_the_input() {
    let sim = Sim::start();
    let mut body = messages_body("sim-claude", false);
    body["tools"] = json!([{"name": "lookup", "description": "d", "input_schema": {"type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 9}}, "required": ["query"]}}]);
    let v: Value = sim
        .anthropic(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert_eq!(block["name"], "lookup");
    assert_eq!(block["input"], json!({"query": "forty-two", "limit": 7}));

    body["stream"] = json!(true);
    let (text, _) = read_stream(sim.anthropic(body).send().await.unwrap()).await;
    let events = parse_sse(&text);
    let start = events[1].json().unwrap();
    assert_eq!(start["content_block"]["type"], "tool_use");
    let partial: String = events
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|v| {
            v.pointer("/delta/partial_json")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        block["input"]
    );
}

#[tokio::test]
async fn requests_without_max_tokens_are_refused_like_the_real_api() {
    let sim = Sim::start();
    let r = sim
        .anthropic(json!({"model": "sim-claude", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
}

#[tokio::test]
async fn judge_answers_with_a_strict_verdict_the_test_controls() {
    let sim = Sim::start();
    let ask = |prompt: &str| {
        sim.anthropic(json!({"model": "sim-judge", "max_tokens": 100, "messages": [{"role": "user", "content": prompt}]})).send()
    };
    let verdict = |v: Value| -> Value {
        serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap()
    };
    let same = "<answer_a>the answer is 42</answer_a> <answer_b>The answer is 42</answer_b>";
    let v = verdict(ask(same).await.unwrap().json().await.unwrap());
    assert_eq!(v["equivalent"], true);
    assert_eq!(v["score"], 1.0);
    let (status, _) = sim
        .admin(
            reqwest::Method::PUT,
            "judge",
            json!({"rule": "always", "equivalent": false}),
        )
        .await;
    assert_eq!(status, 200);
    let v = verdict(ask(same).await.unwrap().json().await.unwrap());
    assert_eq!(v["equivalent"], false);
    let (status, body) = sim
        .admin(reqwest::Method::PUT, "judge", json!({"rule": "sometimes"}))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid judge rule")
    );
}

#[tokio::test]
async fn a_prefilled_answer_continues_where_the_prefill_stops() {
    let sim = Sim::start();
    let whole: Value = sim
        .anthropic(messages_body("sim-claude", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = whole["content"][0]["text"].as_str().unwrap().to_owned();
    let prefix: String = full.chars().take(20).collect();
    let mut body = messages_body("sim-claude", false);
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": prefix}));
    let v: Value = sim
        .anthropic(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rest = v["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        format!("{prefix}{rest}"),
        full,
        "the whole answer exactly once"
    );
    body["model"] = json!("sim-claude-noprefill");
    let r = sim.anthropic(body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support assistant message prefill")
    );
}
