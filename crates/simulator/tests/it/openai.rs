use base64::Engine as _;
use serde_json::{Value, json};

use crate::support::{Sim, chat_body, openai_stream_text, parse_sse, read_stream};

#[tokio::test]
async fn healthy_completion_is_complete_with_usage_and_model() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req_sim_1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "sim-gpt");
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(
        text,
        plumb_simulator::catalog::answer_text("default", "what is six times seven\n")
    );
    assert!(text.ends_with("End of answer."));
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["completion_tokens"],
        plumb_simulator::catalog::tokens(text).len()
    );
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap())
    );
}

#[tokio::test]
async fn stream_carries_the_same_answer_and_usage_and_ends_with_done() {
    let sim = Sim::start();
    let whole: Value = sim
        .openai(chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut body = chat_body("sim-gpt", true);
    body["stream_options"] = json!({"include_usage": true});
    let r = sim.openai(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (text, err) = read_stream(r).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert_eq!(
        openai_stream_text(&events),
        whole["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let usage = events[events.len() - 2].json().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"], whole["usage"]);
    let finish = events[events.len() - 3].json().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(
        events
            .iter()
            .filter_map(|e| e.json())
            .all(|e| e["id"] == events[0].json().unwrap()["id"])
    );
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_reason_length() {
    let sim = Sim::start();
    let mut body = chat_body("sim-gpt", false);
    body["max_tokens"] = json!(4);
    let v: Value = sim.openai(body).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test]
async fn json_schema_answers_fit_the_schema_and_personas_differ() {
    let sim = Sim::start();
    let schema = json!({"type": "object", "properties": {
        "label": {"type": "string", "enum": ["positive", "negative"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["label", "score"]});
    let ask = |model: &str| {
        let mut body = chat_body(model, false);
        body["response_format"] =
            json!({"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema}});
        sim.openai(body)
    };
    let a: Value = ask("sim-gpt").send().await.unwrap().json().await.unwrap();
    let b: Value = ask("sim-gpt-alt")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let a: Value =
        serde_json::from_str(a["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    let b: Value =
        serde_json::from_str(b["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert_eq!(a, json!({"label": "positive", "score": 0.75}));
    assert_eq!(b, json!({"label": "negative", "score": 0.25}));
}

#[tokio::test]
async fn tools_are_called_with_schema_shaped_arguments_streamed_and_not() {
    let sim = Sim::start();
    let mut body = chat_body("sim-gpt", false);
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["city"]}}}]);
    let v: Value = sim
        .openai(body.clone())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "forty-two", "days": 4}));

    body["stream"] = json!(true);
    let (text, _) = read_stream(sim.openai(body).send().await.unwrap()).await;
    let events = parse_sse(&text);
    let first = events[0].json().unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let streamed: String = events
        .iter()
        .filter_map(|e| e.json())
        .filter_map(|v| {
            v.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(streamed, call["function"]["arguments"].as_str().unwrap());
}

#[tokio::test]
async fn embeddings_are_deterministic_similar_for_similar_texts_and_speak_base64() {
    let sim = Sim::start();
    let embed = |input: Value, format: &str| {
        sim.client()
            .post(format!("{}/v1/embeddings", sim.url))
            .json(&json!({"model": "sim-embed", "input": input, "encoding_format": format}))
            .send()
    };
    let v: Value = embed(
        json!([
            "the cat sat on the mat",
            "the cat sat on a mat",
            "quarterly revenue grew"
        ]),
        "float",
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let vecs: Vec<Vec<f32>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| serde_json::from_value(d["embedding"].clone()).unwrap())
        .collect();
    assert_eq!(vecs.len(), 3);
    assert_eq!(vecs[0].len(), 256);
    let cos = plumb_simulator::embed::cosine;
    assert!(cos(&vecs[0], &vecs[1]) > 0.8);
    assert!(cos(&vecs[0], &vecs[2]) < 0.3);
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    let b: Value = embed(json!("the cat sat on the mat"), "base64")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = raw
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(decoded, vecs[0]);
}

#[tokio::test]
async fn models_lists_the_catalogue_in_each_shape() {
    let sim = Sim::start();
    let v: Value = sim
        .client()
        .get(format!("{}/v1/models", sim.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "list");
    assert!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "sim-gpt")
    );
    let a: Value = sim
        .client()
        .get(format!("{}/v1/models", sim.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        a["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "sim-claude" && m["type"] == "model")
    );
    assert_eq!(a["has_more"], false);
}

#[tokio::test]
async fn bad_requests_get_the_providers_errors() {
    let sim = Sim::start();
    let r = sim
        .client()
        .post(format!("{}/v1/nope", sim.url))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "unknown_url");

    let r = sim
        .client()
        .post(format!("{}/v1/chat/completions", sim.url))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let r = sim
        .openai(json!({"model": "sim-gpt"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "no_such_fault")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no_such_fault")
    );
}

#[tokio::test]
async fn azure_deployments_take_api_key_and_need_api_version() {
    let sim = Sim::start();
    let url = format!(
        "{}/openai/deployments/sim-gpt/chat/completions?api-version=2024-10-21",
        sim.url
    );
    let r = sim
        .client()
        .post(&url)
        .header("api-key", "azure-key-9999")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "sim-gpt");
    let log = sim.attempts(None).await;
    assert_eq!(log[0].api, plumb_simulator::Api::Azure);
    assert_eq!(log[0].key_hint.as_deref(), Some("9999"));

    let r = sim
        .client()
        .post(format!(
            "{}/openai/deployments/sim-gpt/chat/completions",
            sim.url
        ))
        .header("api-key", "k")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let r = sim
        .client()
        .post(&url)
        .header("api-key", "k")
        .header("x-sim-fault", "content_filter")
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert_eq!(
        v["error"]["innererror"]["code"],
        "ResponsibleAIPolicyViolation"
    );

    let (text, err) = read_stream(
        sim.client()
            .post(&url)
            .header("api-key", "k")
            .json(&json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(err.is_none());
    assert_eq!(parse_sse(&text).last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn keys_are_checked_per_model() {
    let config =
        "models:\n  locked:\n    api_key: sk-right-key-4242\n  open: {}\naccept_any_model: false\n";
    let sim = Sim::start_with(&[], Some(config));
    let ask = |model: &str, key: &str| {
        sim.client()
            .post(format!("{}/v1/chat/completions", sim.url))
            .bearer_auth(key)
            .json(&chat_body(model, false))
            .send()
    };
    let r = ask("locked", "sk-wrong-key-0000").await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("sk-**********0000"), "{msg}");
    assert_eq!(
        ask("locked", "sk-right-key-4242").await.unwrap().status(),
        200
    );
    assert_eq!(ask("open", "anything").await.unwrap().status(), 200);
    let r = ask("unlisted", "anything").await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");

    let r = sim
        .client()
        .post(format!("{}/v1/messages", sim.url))
        .header("x-api-key", "sk-right-key-4242")
        .header("anthropic-version", "2023-06-01")
        .json(&crate::support::messages_body("locked", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let hints: Vec<_> = sim
        .attempts(Some("locked"))
        .await
        .into_iter()
        .map(|a| (a.key_hint, a.status))
        .collect();
    assert_eq!(
        hints,
        vec![
            (Some("0000".into()), 401),
            (Some("4242".into()), 200),
            (Some("4242".into()), 200)
        ]
    );
}

#[tokio::test]
async fn long_prompts_hit_the_context_window_of_small_models_only() {
    let sim = Sim::start();
    let long = "word ".repeat(8_000);
    let body =
        |model: &str| json!({"model": model, "messages": [{"role": "user", "content": long}]});
    let r = sim.openai(body("sim-gpt")).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum context length is 8192 tokens")
    );
    assert_eq!(
        sim.openai(body("sim-gpt-large"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn https_works_with_the_ca_it_writes_and_not_without() {
    let sim = Sim::start_with(&["--tls"], None);
    assert!(sim.url.starts_with("https://127.0.0.1:"));
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let plain = crate::support::client_with(None, std::time::Duration::from_secs(5));
    let err = plain
        .post(format!("{}/v1/chat/completions", sim.url))
        .json(&chat_body("sim-gpt", false))
        .send()
        .await;
    assert!(
        err.is_err(),
        "a client without the CA must not trust the simulator"
    );
}
