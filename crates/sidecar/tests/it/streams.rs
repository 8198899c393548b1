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
async fn cut_streams_count_against_the_breaker_until_it_opens() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "stream_cut:after=3", "first": 100}),
    );
    let sc = Sidecar::start(&two_openai(
        &sim,
        "sim-gpt",
        "  breaker: {consecutiveFailures: 3, cooldown: 60s}\n",
    ));
    // Three streams committed from the primary and cut after commit: each counts as a failure
    // of the primary's upstream, not as a success at commit.
    for i in 0..3 {
        let r = sc.openai(chat(true)).send().await.unwrap();
        assert_eq!(header(&r, "x-plumb-served-by"), "primary", "stream {i}");
        let (text, _) = read_all(r).await;
        assert!(text.contains("stream_interrupted"), "stream {i}: {text}");
    }
    // The breaker is open: the next request goes to the fallback without touching the primary.
    let r = sc.openai(chat(true)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    let (text, err) = read_all(r).await;
    assert!(err.is_none() && text.contains("[DONE]"), "{text}");
    assert_eq!(
        attempts(&sim, "sim-gpt").await.len(),
        3,
        "the open breaker kept the fourth request from the primary"
    );
    let m = crate::support::metrics(&sc.admin).await;
    assert!(
        m.contains(r#"plumb_attempts_total{route="test/r",target="primary",outcome="stream_interrupted"} 3"#),
        "{m}"
    );
    assert!(
        m.contains(r#"plumb_breaker_state{route="test/r",target="primary"} 2"#),
        "{m}"
    );
    assert!(
        m.contains(r#"plumb_skipped_targets_total{route="test/r",target="primary",outcome="breaker_open"} 1"#),
        "{m}"
    );
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
    assert!(text.contains("reason=malformed"), "{text}");
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

fn claude_body() -> Value {
    json!({"model": "claude", "max_tokens": 200, "stream": true, "messages": [{"role": "user", "content": "what is six times seven"}]})
}

fn anthropic_text(text: &str) -> String {
    parse_sse(text)
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn a_cut_is_continued_by_a_prefill_capable_fallback_and_the_answer_arrives_once() {
    let sim = simulator().await;
    let whole: Value = crate::support::client()
        .post(format!("{}/v1/messages", sim.base_url()))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "sim-claude", "max_tokens": 200, "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = whole["content"][0]["text"].as_str().unwrap().to_owned();
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let routes = route(
        "claude",
        &[
            target("primary", "anthropic", &sim.base_url(), "sim-claude", ""),
            target(
                "backup",
                "anthropic",
                &sim.base_url(),
                "sim-claude-backup",
                "      priority: 1\n",
            ),
        ],
        "  streaming: {continuation: true}\n",
    );
    let sc = Sidecar::start(&routes);
    let r = sc.anthropic(claude_body()).send().await.unwrap();
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "primary",
        "the stream committed on the primary"
    );
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    assert!(!text.contains("stream_interrupted"), "{text}");
    assert_eq!(
        anthropic_text(&text),
        full,
        "the whole answer, exactly once"
    );
    let events = parse_sse(&text);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.event.as_deref() == Some("message_start"))
            .count(),
        1
    );
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    let backup = sim.attempts(Some("sim-claude-backup"));
    assert_eq!(backup.len(), 1, "one continuation request");
}

#[tokio::test]
async fn by_default_a_stream_broken_after_commit_is_continued_by_a_fallback_that_can_and_arrives_once()
 {
    let sim = simulator().await;
    let whole: Value = crate::support::client()
        .post(format!("{}/v1/chat/completions", sim.base_url()))
        .json(&json!({"model": "sim-gpt", "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let full = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned();
    // Default routes (no streaming settings): an OpenAI primary, then a fallback that can take
    // up a partial answer — Anthropic (prefill by default), or an OpenAI-compatible server
    // that declares it (asked with vLLM's continue_final_message).
    let fallbacks = [
        (
            "anthropic",
            sim.base_url(),
            "sim-claude-backup",
            "      priority: 1\n",
        ),
        (
            "openai",
            format!("{}/v1", sim.base_url()),
            "sim-gpt-backup",
            "      priority: 1\n      capabilities: {prefill: true}\n",
        ),
    ];
    for (provider, base, model, extra) in fallbacks {
        let routes = route(
            "chat",
            &[
                target(
                    "gpt",
                    "openai",
                    &format!("{}/v1", sim.base_url()),
                    "sim-gpt",
                    "",
                ),
                target("backup", provider, &base, model, extra),
            ],
            "",
        );
        let sc = Sidecar::start(&routes);
        // A cut, an error event, and a malformed event (what it carried never reached the
        // client; the continuation takes up from what did).
        for fault in [
            "stream_cut:after=4",
            "stream_error:after=4",
            "malformed_event:at=5",
        ] {
            sim.reset();
            plan(&sim, "sim-gpt", json!({"fault": fault, "first": 10}));
            let r = sc.openai(chat(true)).send().await.unwrap();
            assert_eq!(header(&r, "x-plumb-served-by"), "gpt", "{fault}");
            let (text, err) = read_all(r).await;
            assert!(err.is_none());
            let events = parse_sse(&text);
            assert!(
                !text.contains("stream_interrupted"),
                "{provider} {fault}: {text}"
            );
            assert_eq!(
                openai_text(&events),
                full,
                "{provider} {fault}: exactly once"
            );
            assert_eq!(events.last().unwrap().data, "[DONE]");
            let roles = events
                .iter()
                .filter(|e| e.data.contains("\"role\""))
                .count();
            assert_eq!(roles, 1, "one role chunk");
            assert_eq!(
                sim.attempts(Some(model)).len(),
                1,
                "{provider} {fault}: one continuation request"
            );
        }
    }
}

#[tokio::test]
async fn without_a_fallback_that_can_continue_the_client_gets_the_error_event() {
    // The OpenAI fallback declares no prefill: nothing can continue safely.
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "stream_cut:after=4", "first": 10}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let (text, _) = read_all(sc.openai(chat(true)).send().await.unwrap()).await;
    assert!(text.contains("stream_interrupted"), "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(
        sim.attempts(Some("sim-gpt-mini")).is_empty(),
        "a target that cannot continue is not asked to"
    );
}

#[tokio::test]
async fn a_fallback_that_rejects_prefill_leaves_the_client_with_the_real_failure() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-claude",
        json!({"fault": "stream_cut:after=5", "first": 10}),
    );
    let routes = route(
        "claude",
        &[
            target("primary", "anthropic", &sim.base_url(), "sim-claude", ""),
            target(
                "strict",
                "anthropic",
                &sim.base_url(),
                "sim-claude-noprefill",
                "      priority: 1\n",
            ),
        ],
        "  streaming: {continuation: true}\n",
    );
    let sc = Sidecar::start(&routes);
    let (text, err) = read_all(sc.anthropic(claude_body()).send().await.unwrap()).await;
    assert!(err.is_none());
    let last = parse_sse(&text)
        .into_iter()
        .rev()
        .find(|e| e.event.as_deref() == Some("error"))
        .expect("an error event");
    let msg = serde_json::from_str::<Value>(&last.data).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("target primary was interrupted (cut"), "{msg}");
    assert!(
        !msg.contains("prefill"),
        "the fallback's rejection must not replace the real failure: {msg}"
    );
    assert_eq!(
        sim.attempts(Some("sim-claude-noprefill")).len(),
        1,
        "the continuation was tried"
    );
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn interrupted_streams_leak_no_connections_or_memory() {
    let sim = simulator().await;
    // A breaker that never opens and no adaptive hold, so every round streams from the
    // primary and is cut after commit.
    let sc = Sidecar::start(&hold_route(
        &sim,
        "  deadlines: {streamIdle: 200ms}\n  breaker: {consecutiveFailures: 1000, failureRate: 1.0, minRequests: 1000}\n  streaming: {adaptiveHold: {enabled: false}}\n",
    ));
    let pid = sc.child.id();
    // No pooling on the client side: every connection the test opens, it closes.
    let _ = crate::support::client(); // installs the TLS provider reqwest needs
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .no_proxy()
            .build()
            .unwrap()
    };
    let round = |fault: &'static str| {
        let sim = &sim;
        let sc = &sc;
        async move {
            plan(sim, "sim-gpt", json!({"fault": fault, "first": 1}));
            let r = fresh()
                .post(format!("{}/v1/chat/completions", sc.url))
                .json(&chat(true))
                .send()
                .await
                .unwrap();
            let (text, _) = read_all(r).await;
            assert!(text.contains("stream_interrupted"), "{fault}: {text}");
        }
    };
    // Warm up: pools, buffers, lazily created state.
    for _ in 0..5 {
        round("stream_cut:after=3").await;
        round("stream_stall:after=3,stall=2s").await;
    }
    // Settled: the count no longer changes between two looks.
    let mut last = open_fds(pid);
    crate::support::eventually(|| {
        let now = open_fds(pid);
        let settled = now == last;
        last = now;
        async move { settled }
    })
    .await;
    let (fds, rss) = (open_fds(pid), rss_kib(pid));
    for _ in 0..40 {
        round("stream_cut:after=3").await;
        round("stream_stall:after=3,stall=2s").await;
    }
    // Connections closed by the last rounds may take a moment to be reaped.
    crate::support::eventually(|| async { open_fds(pid) <= fds + 2 }).await;
    let (fds_after, rss_after) = (open_fds(pid), rss_kib(pid));
    assert!(
        fds_after <= fds + 2,
        "file descriptors grew from {fds} to {fds_after}"
    );
    assert!(
        rss_after <= rss + 4 * 1024,
        "RSS grew from {rss} KiB to {rss_after} KiB"
    );
    // And it still serves.
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
}

/// A reasoning model on each family behind a one-second first-token deadline; it thinks for
/// two seconds (a delta every 250 ms) before its first word.
fn reasoners(sim: &plumb_simulator::Simulator) -> String {
    let base = sim.base_url();
    route(
        "chat",
        &[
            target(
                "gpt",
                "openai",
                &format!("{base}/v1"),
                "sim-gpt-reasoner",
                "",
            ),
            target(
                "claude",
                "anthropic",
                &base,
                "sim-claude-thinker",
                "      priority: 1\n",
            ),
        ],
        "  deadlines: {firstToken: 1s}\n",
    )
}

#[tokio::test]
async fn a_reasoning_model_thinking_longer_than_the_first_token_deadline_is_not_cut() {
    let sim = simulator().await;
    let sc = Sidecar::start(&reasoners(&sim));
    // Both clients of the OpenAI-compatible reasoner, then (its target down) of the thinker.
    let ask = |family: &'static str| {
        let sc = &sc;
        async move {
            let r = match family {
                "openai" => sc.openai(chat(true)),
                _ => sc.anthropic(json!({"model": "chat", "max_tokens": 300, "stream": true,
                    "messages": [{"role": "user", "content": "what is six times seven"}]})),
            }
            .send()
            .await
            .unwrap();
            assert_eq!(r.status(), 200);
            let served = header(&r, "x-plumb-served-by").to_owned();
            let (text, err) = read_all(r).await;
            assert!(err.is_none(), "{text}");
            (served, parse_sse(&text))
        }
    };
    for (primary_down, served) in [(false, "gpt"), (true, "claude")] {
        sim.reset();
        if primary_down {
            plan(
                &sim,
                "sim-gpt-reasoner",
                json!({"fault": "unavailable", "first": 10}),
            );
        }
        let ((a, openai), (b, anthropic)) = tokio::join!(ask("openai"), ask("anthropic"));
        assert_eq!((a.as_ref(), b.as_ref()), (served, served));
        // The OpenAI client reads the thinking as reasoning_content, then the answer.
        let thoughts = openai
            .iter()
            .filter_map(|e| e.json())
            .filter(|v| v["choices"][0]["delta"]["reasoning_content"].is_string())
            .count();
        assert_eq!(thoughts, 8, "served by {served}");
        assert!(openai_text(&openai).ends_with("End of answer."));
        // The Anthropic client reads a thinking block, then the text block.
        let thinking = anthropic
            .iter()
            .filter_map(|e| e.json())
            .filter(|v| v["delta"]["type"] == "thinking_delta")
            .count();
        assert_eq!(thinking, 8, "served by {served}");
        assert!(
            plumb_simulator::testkit::anthropic_stream_text(&anthropic).ends_with("End of answer.")
        );
        // Each was one paid request: nothing was cut and retried.
        let model = if primary_down {
            "sim-claude-thinker"
        } else {
            "sim-gpt-reasoner"
        };
        assert_eq!(attempts(&sim, model).await.len(), 2, "served by {served}");
    }
}

#[tokio::test]
async fn unstreamed_reasoning_reaches_each_client_in_its_own_format() {
    let sim = simulator().await;
    let sc = Sidecar::start(&reasoners(&sim));
    plan(
        &sim,
        "sim-gpt-reasoner",
        json!({"fault": "unavailable", "first": 10}),
    );
    // The Anthropic thinker answers an OpenAI client: its thinking is reasoning_content.
    let v: Value = sc
        .openai(chat(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = &v["choices"][0]["message"];
    assert!(
        message["reasoning_content"]
            .as_str()
            .is_some_and(|r| r.contains("step 8")),
        "{v}"
    );
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
    // The OpenAI-compatible reasoner answers an Anthropic client: a thinking block first.
    sim.reset();
    let v: Value = sc
        .anthropic(json!({"model": "chat", "max_tokens": 300,
            "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["type"], "thinking", "{v}");
    assert!(
        v["content"][0]["thinking"]
            .as_str()
            .unwrap()
            .contains("step 8")
    );
    assert_eq!(v["content"][1]["type"], "text", "{v}");
}
