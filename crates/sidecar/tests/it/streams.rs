//! Streams through the sidecar: events pass through; a failure before the first token fails
//! over invisibly; a failure after it ends the client's stream with an explicit error event.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{
    Sidecar, attempts, chat, client, header, openai_text, parse_sse, plan, read_all, route,
    simulator, target, two_openai,
};

#[tokio::test]
async fn a_healthy_stream_passes_through_with_usage_and_done() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = sc.openai(body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-type").starts_with("text/event-stream"));
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert!(openai_text(&events).ends_with("End of answer."));
    let usage: Value = serde_json::from_str(&events[events.len() - 2].data).unwrap();
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(usage["model"], "sim-gpt");
}

#[tokio::test]
async fn failures_before_the_first_token_fail_over_invisibly() {
    let sim = simulator().await;
    for fault in [
        "unavailable",
        "connection_reset",
        "stream_error:after=0",
        "stream_cut:after=0",
        "malformed_event:at=0",
    ] {
        sim.reset();
        plan(&sim, "sim-gpt", json!({"fault": fault, "first": 10}));
        let sc = Sidecar::start(&two_openai(
            &sim,
            "sim-gpt",
            "  classes: {malformedResponse: {retries: 0}, connect: {retries: 0}, overloaded: {retries: 0}}\n",
        ));
        let r = sc.openai(chat(true)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{fault}");
        assert_eq!(header(&r, "x-plumb-served-by"), "fallback", "{fault}");
        assert_eq!(header(&r, "x-plumb-attempts"), "2", "{fault}");
        let (text, err) = read_all(r).await;
        assert!(err.is_none(), "{fault}");
        let events = parse_sse(&text);
        assert!(
            openai_text(&events).ends_with("End of answer."),
            "{fault}: {text}"
        );
        assert_eq!(events.last().unwrap().data, "[DONE]");
        assert!(!text.contains("stream_interrupted"));
    }
}

#[tokio::test]
async fn a_slow_first_token_beyond_the_deadline_fails_over() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "slow_first_token:delay=3s", "first": 10}),
    );
    let sc = Sidecar::start(&two_openai(
        &sim,
        "sim-gpt",
        "  deadlines: {firstToken: 300ms}\n",
    ));
    let start = Instant::now();
    let r = sc.openai(chat(true)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "timeout");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "the slow token was not waited for"
    );
    let (text, _) = read_all(r).await;
    assert!(openai_text(&parse_sse(&text)).ends_with("End of answer."));
    assert_eq!(
        sim.attempts(Some("sim-gpt")).len(),
        1,
        "a timeout fails over at once when another target is there"
    );
}

#[tokio::test]
async fn a_cut_after_commit_ends_with_an_explicit_error_event() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "stream_cut:after=3", "first": 10}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(true)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "primary",
        "headers describe the state at commit"
    );
    let (text, err) = read_all(r).await;
    assert!(
        err.is_none(),
        "the client's stream is closed cleanly after the error event"
    );
    let events = parse_sse(&text);
    assert!(
        events.iter().all(|e| e.data != "[DONE]"),
        "never presented as complete"
    );
    let last: Value = serde_json::from_str(&events.last().unwrap().data).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(text.contains(": plumb stream_interrupted target=primary reason=cut"));
    assert_eq!(openai_text(&events).split_whitespace().count(), 3);
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 1);
    assert!(
        sim.attempts(Some("sim-gpt-mini")).is_empty(),
        "bytes reached the client: no failover"
    );
    let metrics = client()
        .get(format!("{}/metrics", sc.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"plumb_streams_interrupted_total{route="test/r",target="primary"} 1"#),
        "{metrics}"
    );
    // The sidecar is healthy afterwards.
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "server_error", "first": 0}),
    );
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_stall_after_commit_is_cut_at_the_idle_deadline() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "stream_stall:after=2,stall=10s", "first": 10}),
    );
    let routes = route(
        "claude",
        &[target(
            "claude",
            "anthropic",
            &sim.base_url(),
            "sim-claude",
            "",
        )],
        "  deadlines: {streamIdle: 400ms}\n",
    );
    let sc = Sidecar::start(&routes);
    let start = Instant::now();
    let r = sc
        .anthropic(json!({"model": "claude", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (text, err) = read_all(r).await;
    let took = start.elapsed();
    assert!(err.is_none());
    assert!(took >= Duration::from_millis(400));
    assert!(
        took < Duration::from_secs(10),
        "the stall was not waited out: {took:?}"
    );
    let events = parse_sse(&text);
    let last = events.last().unwrap();
    assert_eq!(last.event.as_deref(), Some("error"));
    let v: Value = serde_json::from_str(&last.data).unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("stall"));
    assert!(
        events
            .iter()
            .all(|e| e.event.as_deref() != Some("message_stop"))
    );
}

fn hold_route(sim: &plumb_simulator::Simulator, extra: &str) -> String {
    two_openai(sim, "sim-gpt", extra)
}

#[tokio::test]
async fn a_cut_or_a_stall_inside_the_hold_fails_over_invisibly() {
    let sim = simulator().await;
    for fault in [
        "stream_cut:after=3",
        "stream_stall:after=3,stall=10s",
        "stream_error:after=2",
        "malformed_event:at=4",
    ] {
        sim.reset();
        plan(&sim, "sim-gpt", json!({"fault": fault, "first": 10}));
        let sc = Sidecar::start(&hold_route(
            &sim,
            "  streaming: {holdEvents: 8}\n  deadlines: {streamIdle: 300ms}\n  classes: {malformedResponse: {retries: 0}, timeout: {retries: 0}, rateLimited: {retries: 0}, overloaded: {retries: 0}}\n",
        ));
        let start = Instant::now();
        let r = sc.openai(chat(true)).send().await.unwrap();
        assert_eq!(header(&r, "x-plumb-served-by"), "fallback", "{fault}");
        let (text, err) = read_all(r).await;
        assert!(err.is_none());
        let events = parse_sse(&text);
        assert!(
            openai_text(&events).ends_with("End of answer."),
            "{fault}: {text}"
        );
        assert_eq!(events.last().unwrap().data, "[DONE]");
        assert!(!text.contains("stream_interrupted"), "{fault}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{fault}: the stall was not waited out"
        );
    }
}

#[tokio::test]
async fn the_hold_ends_at_its_time_limit_and_the_stream_commits() {
    let sim = simulator().await;
    let sc = Sidecar::start(&hold_route(
        &sim,
        "  streaming: {holdEvents: 1000, holdFor: 200ms}\n",
    ));
    let mut body = chat(true);
    body["max_tokens"] = json!(8);
    // Twenty tokens a second: the whole answer would take longer than the hold.
    let r = sc
        .openai(body)
        .header("x-unused", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (text, _) = read_all(r).await;
    assert_eq!(parse_sse(&text).last().unwrap().data, "[DONE]");
}

#[tokio::test]
async fn malformed_events_after_commit_are_skipped_or_fail_per_route() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "malformed_event:at=5", "first": 10}),
    );
    let sc = Sidecar::start(&hold_route(&sim, "  streaming: {malformedEvents: skip}\n"));
    let (text, err) = read_all(sc.openai(chat(true)).send().await.unwrap()).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert!(
        events
            .iter()
            .all(|e| e.data == "[DONE]" || serde_json::from_str::<Value>(&e.data).is_ok()),
        "garbage reached the client: {text}"
    );
    assert_eq!(events.last().unwrap().data, "[DONE]");
    assert!(!text.contains("stream_interrupted"));
    drop(sc);

    let sc = Sidecar::start(&hold_route(&sim, "  streaming: {malformedEvents: fail}\n"));
    let (text, _) = read_all(sc.openai(chat(true)).send().await.unwrap()).await;
    let events = parse_sse(&text);
    assert!(
        events
            .iter()
            .all(|e| serde_json::from_str::<Value>(&e.data).is_ok()),
        "garbage reached the client: {text}"
    );
    assert!(text.contains("reason=malformed"));
    assert!(events.iter().all(|e| e.data != "[DONE]"));
}

#[tokio::test]
async fn a_stream_missing_its_terminator_is_finalised() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "missing_done", "first": 10}),
    );
    let sc = Sidecar::start(&hold_route(&sim, ""));
    let (text, err) = read_all(sc.openai(chat(true)).send().await.unwrap()).await;
    assert!(err.is_none());
    let events = parse_sse(&text);
    assert_eq!(
        events.last().unwrap().data,
        "[DONE]",
        "added by the sidecar"
    );
    assert!(openai_text(&events).ends_with("End of answer."));

    plan(
        &sim,
        "sim-claude",
        json!({"fault": "missing_done", "first": 10}),
    );
    let routes = route(
        "claude",
        &[target(
            "claude",
            "anthropic",
            &sim.base_url(),
            "sim-claude",
            "",
        )],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = sc
        .anthropic(json!({"model": "claude", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (text, _) = read_all(r).await;
    assert_eq!(
        parse_sse(&text).last().unwrap().event.as_deref(),
        Some("message_stop")
    );
}
