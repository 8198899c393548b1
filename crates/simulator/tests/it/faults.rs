//! Every fault that answers before the body: error statuses, resets, hangs, slow heads, and
//! the 200s whose content is wrong.

use std::time::{Duration, SystemTime};
use tokio::time::Instant;

use plumb_simulator::Outcome;
use serde_json::{Value, json};

use crate::support::{Sim, chat_body, client_with, messages_body, stream_with_fault};

/// (fault, status, OpenAI error code, Anthropic error type)
const STATUS_FAULTS: &[(&str, u16, Option<&str>, &str)] = &[
    (
        "rate_limited",
        429,
        Some("rate_limit_exceeded"),
        "rate_limit_error",
    ),
    (
        "rate_limited_date",
        429,
        Some("rate_limit_exceeded"),
        "rate_limit_error",
    ),
    (
        "rate_limited_bare",
        429,
        Some("rate_limit_exceeded"),
        "rate_limit_error",
    ),
    (
        "unauthorized",
        401,
        Some("invalid_api_key"),
        "authentication_error",
    ),
    (
        "forbidden",
        403,
        Some("permission_denied"),
        "permission_error",
    ),
    (
        "model_not_found",
        404,
        Some("model_not_found"),
        "not_found_error",
    ),
    (
        "context_length",
        400,
        Some("context_length_exceeded"),
        "invalid_request_error",
    ),
    (
        "content_filter",
        400,
        Some("content_policy_violation"),
        "invalid_request_error",
    ),
    ("server_error", 500, None, "api_error"),
    ("unavailable", 503, None, "api_error"),
    ("overloaded", 529, Some("overloaded"), "overloaded_error"),
];

#[tokio::test]
async fn every_status_fault_in_both_formats_streamed_and_not() {
    let sim = Sim::start();
    for &(fault, status, code, anthropic_type) in STATUS_FAULTS {
        for stream in [false, true] {
            let r = sim
                .openai(chat_body("sim-gpt", stream))
                .header("x-sim-fault", fault)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "openai {fault}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"]["code"].as_str(), code, "openai {fault}");
            assert!(!v["error"]["message"].as_str().unwrap().is_empty());

            let r = sim
                .anthropic(messages_body("sim-claude", stream))
                .header("x-sim-fault", fault)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), status, "anthropic {fault}");
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], anthropic_type, "anthropic {fault}");
        }
    }
    let log = sim.attempts(None).await;
    assert_eq!(log.len(), STATUS_FAULTS.len() * 4);
    assert!(
        log.iter()
            .all(|a| a.outcome == Outcome::Error && a.fault.is_some())
    );
}

#[tokio::test]
async fn model_names_select_faults() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-overloaded", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
    let r = sim
        .anthropic(messages_body("sim-model-not-found", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["message"], "model: sim-model-not-found");
}

#[tokio::test]
async fn rate_limits_tell_when_to_come_back_in_each_form() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "rate_limited:retry_after=2")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["retry-after"], "2");
    assert_eq!(h["x-ratelimit-reset-requests"], "2s");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
    assert!(h.contains_key("x-ratelimit-reset-tokens"));

    let before = SystemTime::now();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "rate_limited_date:retry_after=3s")
        .send()
        .await
        .unwrap();
    let date = httpdate::parse_http_date(r.headers()["retry-after"].to_str().unwrap()).unwrap();
    let ahead = date.duration_since(before).unwrap();
    assert!(ahead >= Duration::from_secs(3), "{ahead:?}");
    assert!(ahead <= Duration::from_secs(30), "{ahead:?}");

    let r = sim
        .anthropic(messages_body("sim-claude", false))
        .header("x-sim-fault", "rate_limited")
        .send()
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["retry-after"], "1");
    let reset = humantime::parse_rfc3339(h["anthropic-ratelimit-requests-reset"].to_str().unwrap())
        .unwrap();
    assert!(reset >= before);
    assert_eq!(h["anthropic-ratelimit-requests-remaining"], "0");

    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "rate_limited_bare")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(!r.headers().contains_key("retry-after"));
    assert!(!r.headers().keys().any(|k| k.as_str().contains("ratelimit")));
}

#[tokio::test]
async fn connection_reset_sends_no_byte() {
    let sim = Sim::start();
    let err = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "connection_reset")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    assert!(err.status().is_none());
    let log = sim.settled_attempts(None).await;
    assert_eq!(log[0].outcome, Outcome::Reset);
    assert_eq!(log[0].status, 0);
    assert_eq!(log[0].bytes_sent, 0);
}

#[tokio::test]
async fn hang_never_answers() {
    let sim = Sim::start();
    let client = client_with(None, Duration::from_millis(400));
    let start = Instant::now();
    let err = client
        .post(format!("{}/v1/chat/completions", sim.url))
        .header("x-sim-fault", "hang")
        .json(&chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(400));
    let log = sim.attempts(None).await;
    assert_eq!(log[0].outcome, Outcome::Hung);
    assert_eq!(log[0].status, 0);
}

#[tokio::test]
async fn slow_first_byte_and_configured_latency_delay_the_head() {
    let sim = Sim::start();
    let start = Instant::now();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "slow_first_byte:delay=300ms")
        .send()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.status(), 200);

    for latency in [
        "fixed:250ms",
        "uniform:250ms..300ms",
        "lognormal:400ms,0.01",
    ] {
        let start = Instant::now();
        let r = sim
            .openai(chat_body("sim-gpt", false))
            .header("x-sim-latency", latency)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            start.elapsed() >= Duration::from_millis(240),
            "{latency}: {:?}",
            start.elapsed()
        );
    }
}

#[tokio::test]
async fn configured_latency_and_faults_apply_per_model() {
    let config = "models:\n  slow:\n    latency: {kind: fixed, ms: 200}\n  broken:\n    fault: server_error\n";
    let sim = Sim::start_with(&[], Some(config));
    let start = Instant::now();
    assert_eq!(
        sim.openai(chat_body("slow", false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        sim.openai(chat_body("broken", false))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    // A header overrides the model's default fault.
    let r = sim
        .openai(chat_body("broken", false))
        .header("x-sim-fault", "overloaded")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 529);
}

#[tokio::test]
async fn broken_json_and_empty_content_are_200s() {
    let sim = Sim::start();
    let r = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "broken_json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with('{'));
    assert!(serde_json::from_str::<Value>(&text).is_err());

    let r = sim
        .anthropic(messages_body("sim-claude", false))
        .header("x-sim-fault", "broken_json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());

    let v: Value = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "empty_content")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "");
    assert_eq!(v["usage"]["completion_tokens"], 0);
    let v: Value = sim
        .anthropic(messages_body("sim-claude", false))
        .header("x-sim-fault", "empty_content")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "");
}

#[tokio::test]
async fn structured_answers_break_the_schema_or_the_bounds_on_request() {
    let sim = Sim::start();
    let schema = json!({"type": "object", "properties": {
        "label": {"type": "string"}, "score": {"type": "number"}}, "required": ["label", "score"]});
    let ask = |fault: &str| {
        let mut body = chat_body("sim-gpt", false);
        body["response_format"] =
            json!({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}});
        sim.openai(body).header("x-sim-fault", fault).send()
    };
    let content = |v: Value| -> Value {
        serde_json::from_str(v["choices"][0]["message"]["content"].as_str().unwrap()).unwrap()
    };
    let v = content(ask("schema_violation").await.unwrap().json().await.unwrap());
    assert!(
        v.get("label").is_none(),
        "a required property is missing: {v}"
    );
    let v = content(ask("out_of_bounds").await.unwrap().json().await.unwrap());
    assert_eq!(v, json!({"label": "forty-two", "score": 7.0}));

    // Anthropic structured output and tool input break the same way.
    let mut body = messages_body("sim-claude", false);
    body["tools"] = json!([{"name": "rate", "input_schema": schema}]);
    body["tool_choice"] = json!({"type": "tool", "name": "rate"});
    let v: Value = sim
        .anthropic(body)
        .header("x-sim-fault", "out_of_bounds")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["input"]["score"], 7.0);
}

#[tokio::test]
async fn substituted_model_is_named_in_answers_and_streams() {
    let sim = Sim::start();
    let v: Value = sim
        .openai(chat_body("sim-gpt", false))
        .header("x-sim-fault", "model_substituted:model=sim-gpt-mini")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "sim-gpt-mini");
    let v: Value = sim
        .anthropic(messages_body("sim-claude", false))
        .header("x-sim-fault", "model_substituted")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"], "sim-substitute");
    let (text, _) =
        stream_with_fault(sim.openai(chat_body("sim-gpt", true)), "model_substituted").await;
    let events = crate::support::parse_sse(&text);
    assert!(
        events
            .iter()
            .filter_map(|e| e.json())
            .all(|e| e["model"] == "sim-substitute")
    );
}

#[tokio::test]
async fn every_request_is_logged_with_timing_and_outcome() {
    let sim = Sim::start();
    sim.openai(chat_body("sim-gpt", false))
        .send()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sim.openai(chat_body("sim-gpt-mini", false))
        .header("x-sim-fault", "server_error")
        .send()
        .await
        .unwrap();
    let log = sim.attempts(None).await;
    assert_eq!(log.len(), 2);
    assert!(log[1].at_ms - log[0].at_ms >= 200.0);
    assert_eq!(log[0].fault, None);
    assert_eq!(log[0].outcome, Outcome::Completed);
    assert!(log[0].bytes_sent > 100);
    assert_eq!(log[1].fault.as_deref(), Some("server_error"));
    assert_eq!((log[1].status, log[1].outcome), (500, Outcome::Error));
    assert_eq!(log[0].key_hint.as_deref(), Some("0001"));
    assert_eq!(sim.attempts(Some("sim-gpt-mini")).await.len(), 1);
    let (status, _) = sim
        .admin(reqwest::Method::DELETE, "attempts", json!({}))
        .await;
    assert_eq!(status, 200);
    assert!(sim.attempts(None).await.is_empty());
}
