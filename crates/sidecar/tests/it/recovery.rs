//! Each failure class recovered the way its plan says, witnessed by the simulator's attempt
//! log: how many attempts on which target, how far apart, and who answered.

use std::time::Duration;

use plumb_simulator::Outcome;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{
    Sidecar, attempts, chat, header, plan, refused, route, simulator, target, two_openai,
};

#[tokio::test]
async fn rate_limit_with_retry_after_is_retried_no_sooner_than_it_says() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "rate_limited:retry_after=2", "first": 1}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    assert_eq!(header(&r, "x-plumb-attempts"), "2");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "rate_limited");
    let log = attempts(&sim, "sim-gpt").await;
    assert_eq!(log.len(), 2);
    assert!(
        log[1].at_ms - log[0].at_ms >= 2000.0,
        "gap {} ms",
        log[1].at_ms - log[0].at_ms
    );
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
}

#[tokio::test]
async fn a_retry_after_longer_than_the_deadline_fails_over_at_once() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "rate_limited:retry_after=30", "first": 5}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", "  deadlines: {total: 5s}\n"));
    let start = Instant::now();
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 1, "no hammering");
}

#[tokio::test]
async fn nothing_is_sent_into_an_announced_rate_limit_window() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "rate_limited:retry_after=30", "first": 1}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", "  deadlines: {total: 5s}\n"));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    // Later requests skip the primary for the rest of the window, without asking it again.
    for _ in 0..5 {
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
        assert_eq!(header(&r, "x-plumb-attempts"), "1");
    }
    assert_eq!(
        attempts(&sim, "sim-gpt").await.len(),
        1,
        "the window is honoured"
    );
    assert_eq!(attempts(&sim, "sim-gpt-mini").await.len(), 6);
}

#[tokio::test]
async fn the_last_option_waits_for_a_short_window_to_end() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "rate_limited:retry_after=1", "first": 1}),
    );
    let sc = Sidecar::start(&route(
        "chat",
        &[target(
            "only",
            "openai",
            &format!("{}/v1", sim.base_url()),
            "sim-gpt",
            "",
        )],
        "  classes: {rateLimited: {retries: 0}}\n",
    ));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 429, "no retry allowed: the 429 goes back");
    // The next request waits for the window instead of sending into it.
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let log = attempts(&sim, "sim-gpt").await;
    assert_eq!(log.len(), 2);
    assert!(
        log[1].at_ms - log[0].at_ms >= 1000.0,
        "sent {} ms after a 1 s window began",
        log[1].at_ms - log[0].at_ms
    );
}

#[tokio::test]
async fn persistent_429_without_headers_backs_off_and_fails_over_without_hammering() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-rate-limited-bare", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(
        header(&r, "x-plumb-failure-classes"),
        "rate_limited,rate_limited"
    );
    let log = attempts(&sim, "sim-rate-limited-bare").await;
    assert_eq!(log.len(), 2, "one try and one retry, then fail over");
    assert_eq!(attempts(&sim, "sim-gpt-mini").await.len(), 1);
}

#[tokio::test]
async fn a_500_once_is_retried_once_on_the_same_target() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "server_error", "first": 1}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "server_error");
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 2);
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
}

#[tokio::test]
async fn persistent_503_fails_over_within_a_bounded_number_of_attempts() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-unavailable", ""));
    for _ in 0..3 {
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    }
    let primary = attempts(&sim, "sim-unavailable").await.len();
    assert!(primary <= 6, "{primary} attempts on a target that is down");
}

#[tokio::test]
async fn a_connection_lost_after_the_request_was_sent_fails_over_at_once_never_to_the_same_target()
{
    // The provider took the request and reset the connection before answering (a crash, or an
    // intermediary's idle timeout): it may have been taken, so it is not sent there again.
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "connection_reset", "first": 1}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connection_lost");
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    let log = attempts(&sim, "sim-gpt").await;
    assert_eq!(log[0].outcome, Outcome::Reset);
    assert_eq!(log.len(), 1, "not retried on the same target");
    // With no other target left, the client hears what happened, once.
    sim.reset();
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "connection_reset", "first": 10}),
    );
    let sc = Sidecar::start(&route(
        "chat",
        &[target(
            "only",
            "openai",
            &format!("{}/v1", sim.base_url()),
            "sim-gpt",
            "",
        )],
        "",
    ));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connection_lost");
    assert_eq!(attempts(&sim, "sim-gpt").await.len(), 1);
}

#[tokio::test]
async fn a_refused_connection_is_connect_and_retried_where_it_is_cheap() {
    // Nothing listens: the request was never sent, so one retry on the same target is cheap.
    let (_closed, closed) = refused();
    let port = closed.port();
    let sim = simulator().await;
    let sc = Sidecar::start(&route(
        "chat",
        &[
            target(
                "primary",
                "openai",
                &format!("http://127.0.0.1:{port}/v1"),
                "sim-gpt",
                "",
            ),
            target(
                "fallback",
                "openai",
                &format!("{}/v1", sim.base_url()),
                "sim-gpt-mini",
                "      priority: 1\n",
            ),
        ],
        "",
    ));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect,connect");
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
}

#[tokio::test]
async fn a_silent_provider_is_failed_over_inside_the_deadline_without_a_retry() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(
        &sim,
        "sim-hang",
        "  deadlines: {total: 10s, firstByte: 500ms}\n",
    ));
    let start = Instant::now();
    let r = sc.openai(chat(false)).send().await.unwrap();
    let took = start.elapsed();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "timeout");
    assert!(took >= Duration::from_millis(500));
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert_eq!(
        sim.attempts(Some("sim-hang")).len(),
        1,
        "the silent target is not retried"
    );
}

#[tokio::test]
async fn deterministic_rejections_are_never_retried_on_the_same_model() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    for (model, class) in [
        ("sim-unauthorized", "auth"),
        ("sim-model-not-found", "invalid_model"),
    ] {
        let routes = route(
            "chat",
            &[
                target("primary", "openai", &base, model, "")
                    .replace("{none: true}", "{env: KEY_A}"),
                target(
                    "fallback",
                    "openai",
                    &base,
                    "sim-gpt-mini",
                    "      priority: 1\n",
                )
                .replace("{none: true}", "{env: KEY_B}"),
            ],
            "",
        );
        let sc = Sidecar::start_with(
            &routes,
            &[("KEY_A", "sk-key-a-aaaa"), ("KEY_B", "sk-key-b-bbbb")],
        )
        .unwrap();
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{model}");
        assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
        assert_eq!(header(&r, "x-plumb-failure-classes"), class);
        assert_eq!(attempts(&sim, model).await.len(), 1, "{model} retried");
        sim.reset();
    }
}

#[tokio::test]
async fn auth_failures_fail_over_only_to_other_credentials() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[
            target("primary", "openai", &base, "sim-unauthorized", "")
                .replace("{none: true}", "{env: KEY_A}"),
            target(
                "same-key",
                "openai",
                &base,
                "sim-gpt-mini",
                "      priority: 1\n",
            )
            .replace("{none: true}", "{env: KEY_A}"),
        ],
        "",
    );
    let sc = Sidecar::start_with(&routes, &[("KEY_A", "sk-key-a-aaaa")]).unwrap();
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "a refused key of the route is not the caller's to fix"
    );
    assert_eq!(header(&r, "x-should-retry"), "false");
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("same-key: skipped (uses the same credentials that were refused)"),
        "{msg}"
    );
    assert!(!msg.contains("sk-key-a"), "no secret in errors: {msg}");
    assert!(
        msg.contains("[redacted]"),
        "the provider's echo of the key is scrubbed: {msg}"
    );
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
}

#[tokio::test]
async fn context_length_fails_over_only_to_a_larger_window() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let long = "word ".repeat(8_000);
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": long}]});
    // The primary does not declare its window: the provider's own 400 tells.
    let small = target("small", "openai", &base, "sim-gpt", "");
    let same = target(
        "same",
        "openai",
        &base,
        "sim-gpt-mini",
        "      priority: 1\n      capabilities: {contextWindow: 8192}\n",
    );
    let large = target(
        "large",
        "openai",
        &base,
        "sim-gpt-large",
        "      priority: 1\n      capabilities: {contextWindow: 128000}\n",
    );
    // Only a same-size fallback: the caller's 400 comes back, with the provider's words.
    let sc = Sidecar::start(&route("chat", &[small.clone(), same.clone()], ""));
    let r = sc.openai(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "context_length");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("maximum context length"), "{msg}");
    assert!(msg.contains("same: skipped (context window 8192"), "{msg}");
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
    drop(sc);
    // A larger window answers.
    let sc = Sidecar::start(&route("chat", &[small, large], ""));
    let r = sc.openai(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "large");
    assert_eq!(
        sim.attempts(Some("sim-gpt")).len(),
        2,
        "one attempt per request, never a retry"
    );
    drop(sc);
    // Declared windows too small for the request: refused before any provider is asked.
    let sc = Sidecar::start(&route("chat", &[same], ""));
    let r = sc.openai(body).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "context_length");
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
}

#[tokio::test]
async fn content_filter_returns_the_providers_reason_without_failover() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-content-filter", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "content_filter");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "content_filter");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("safety system")
    );
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());
    assert_eq!(sim.attempts(Some("sim-content-filter")).len(), 1);
}

#[tokio::test]
async fn a_200_with_broken_json_is_retried_then_failed_over() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-broken-json", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert_eq!(
        header(&r, "x-plumb-failure-classes"),
        "malformed_response,malformed_response"
    );
    let v: Value = r.json().await.unwrap();
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
}

#[tokio::test]
async fn when_every_target_fails_the_error_names_each_class_and_message() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[
            target("a", "openai", &base, "sim-overloaded", ""),
            target(
                "b",
                "openai",
                &base,
                "sim-server-error",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "the last failure (server_error) decides the status"
    );
    assert_eq!(
        header(&r, "x-plumb-failure-classes"),
        "overloaded,overloaded,server_error,server_error"
    );
    assert_eq!(header(&r, "x-plumb-attempts"), "4");
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("a: overloaded (HTTP 529: Overloaded)"),
        "{msg}"
    );
    assert!(
        msg.contains("b: server_error (HTTP 500: The server had an error"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_primary_down_for_a_while_is_bypassed_probed_and_used_again() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "for": "1500ms"}),
    );
    let extra = "  breaker: {consecutiveFailures: 2, cooldown: 500ms}\n  classes: {overloaded: {retries: 0}}\n";
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", extra));
    let start = Instant::now();
    let mut served = Vec::new();
    while start.elapsed() < Duration::from_millis(3500) {
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200, "the client never sees the outage");
        served.push(header(&r, "x-plumb-served-by").to_owned());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served.first().map(String::as_str), Some("fallback"));
    assert_eq!(
        served.last().map(String::as_str),
        Some("primary"),
        "{served:?}"
    );
    let primary = attempts(&sim, "sim-gpt").await;
    let failed = primary.iter().filter(|a| a.status == 503).count();
    let requests = served.len();
    // While open, the primary is skipped rather than tried on every request.
    assert!(
        failed < requests / 2,
        "{failed} failed attempts for {requests} requests"
    );
    assert!(primary.iter().any(|a| a.status == 200));
}

#[tokio::test]
async fn a_retry_after_http_date_is_honoured() {
    let sim = simulator().await;
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "rate_limited_date:retry_after=1s", "first": 1}),
    );
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    let log = attempts(&sim, "sim-gpt").await;
    assert_eq!(log.len(), 2);
    // The date is rounded up to a whole second, so the wait is at least the second asked.
    assert!(
        log[1].at_ms - log[0].at_ms >= 1000.0,
        "gap {}",
        log[1].at_ms - log[0].at_ms
    );
}

#[tokio::test]
async fn the_last_resort_target_answers_only_when_rotation_cannot() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[
            target("primary", "openai", &base, "sim-gpt", ""),
            target("local", "openai", &base, "sim-gpt-alt", ""),
        ],
        "  lastResort: {mode: target, target: local}\n",
    );
    let sc = Sidecar::start(&routes);
    for _ in 0..5 {
        assert_eq!(
            header(
                &sc.openai(chat(false)).send().await.unwrap(),
                "x-plumb-served-by"
            ),
            "primary"
        );
    }
    assert!(
        sim.attempts(Some("sim-gpt-alt")).is_empty(),
        "the last resort takes no normal traffic"
    );
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unavailable", "first": 100}),
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "local");
}

#[tokio::test]
async fn wait_for_half_open_waits_within_the_deadline_for_a_probe() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "unauthorized", "first": 1}),
    );
    let routes = route(
        "chat",
        &[target("only", "openai", &base, "sim-gpt", "")],
        "  breaker: {cooldown: 800ms}\n  lastResort: {mode: waitForHalfOpen}\n  deadlines: {total: 5s}\n",
    );
    let sc = Sidecar::start(&routes);
    // The auth failure trips the breaker at once.
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 502);
    let start = Instant::now();
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "the request waited for the breaker to let a probe through"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(header(&r, "x-plumb-served-by"), "only");
}

#[tokio::test]
async fn fail_fast_answers_at_once_when_every_breaker_is_open() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[target("only", "openai", &base, "sim-unauthorized", "")],
        "  breaker: {cooldown: 60s}\n",
    );
    let sc = Sidecar::start(&routes);
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 502);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "x-plumb-attempts"), "0");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_target_available");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("only: skipped (circuit breaker open)")
    );
    assert_eq!(sim.attempts(Some("sim-unauthorized")).len(), 1);
}
