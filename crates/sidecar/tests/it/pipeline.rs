//! The attempt loop, one failure class at a time, in-process against a scripted upstream under
//! paused time (real time where a contract is checked, since checks run on the blocking pool):
//! every test runs in milliseconds, and the scripted upstream's log of what it
//! received is the witness of retries, repairs and failovers — with the deadlines and backoff
//! the default plans promise.

use std::sync::Arc;
use std::time::Duration;

use plumb_sidecar::memory::Memory;
use plumb_sidecar::proxy::BodyLimits;
use serde_json::{Value, json};

use crate::scripted::{Piece, Scripted, Step, chat, chunk, completion, error, proxy, stream_end};

/// A route `chat` over `primary.test` then `fallback.test`, both OpenAI, with `extra` spec lines.
fn routes(extra: &str) -> String {
    format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: r, namespace: test}}\nspec:\n  match: {{models: [chat]}}\n  targets:\n    - name: primary\n      provider: openai\n      baseUrl: http://primary.test/v1\n      model: gpt-a\n      credentials: {{none: true}}\n    - name: fallback\n      provider: openai\n      baseUrl: http://fallback.test/v1\n      model: gpt-b\n      credentials: {{none: true}}\n      priority: 1\n{extra}"
    )
}

fn ask(stream: bool) -> Value {
    json!({"model": "chat", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn fallback_ok() -> Step {
    Step::Json(completion("gpt-b", "from the fallback"))
}

fn status(code: u16, body: String) -> Step {
    Step::Status(code, Vec::new(), body)
}

/// The answer came from the fallback, after `classes` failed on the primary.
fn assert_served_by_fallback(got: &crate::scripted::Got, classes: &str) {
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), classes);
    assert_eq!(
        got.json()["choices"][0]["message"]["content"],
        "from the fallback"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_a_silent_primary_is_left_at_its_first_byte_deadline_without_a_retry() {
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Hang]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes("  deadlines: {firstByte: 2s}\n"), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_served_by_fallback(&got, "timeout");
    let seen = up.received();
    assert_eq!(up.hosts(), ["primary.test", "fallback.test"]);
    assert_eq!(
        seen[1].at,
        Duration::from_secs(2),
        "failover at the deadline, not later"
    );
}

#[tokio::test(start_paused = true)]
async fn connect_a_refused_connection_is_retried_once_then_failed_over() {
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Refused]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_served_by_fallback(&got, "connect,connect");
    assert_eq!(
        up.hosts(),
        ["primary.test", "primary.test", "fallback.test"]
    );
    let seen = up.received();
    assert!(
        seen[1].at <= Duration::from_millis(50),
        "backoff within its 50 ms ceiling"
    );
}

#[tokio::test(start_paused = true)]
async fn rate_limited_the_providers_retry_after_is_honoured_before_the_retry() {
    let limited = Step::Status(
        429,
        vec![("retry-after", "3".to_owned())],
        error("requests", "rate_limit_exceeded", "slow down"),
    );
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![limited, Step::Json(completion("gpt-a", "from the primary"))],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    // A route of one target: the retry is the only option.
    let one = routes("").replace(
        "    - name: fallback\n      provider: openai\n      baseUrl: http://fallback.test/v1\n      model: gpt-b\n      credentials: {none: true}\n      priority: 1\n",
        "",
    );
    let p = proxy(&one, up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "rate_limited");
    let seen = up.received();
    assert_eq!(up.hosts(), ["primary.test", "primary.test"]);
    assert!(seen[1].at >= Duration::from_secs(3), "{:?}", seen[1].at);
}

#[tokio::test(start_paused = true)]
async fn overloaded_is_retried_once_with_backoff_then_failed_over() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(503, error("server_error", "overloaded", "busy"))],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_served_by_fallback(&got, "overloaded,overloaded");
    assert_eq!(
        up.hosts(),
        ["primary.test", "primary.test", "fallback.test"]
    );
    assert!(up.received()[1].at <= Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn server_error_is_retried_once_then_failed_over() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(500, error("server_error", "", "boom"))],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_served_by_fallback(&got, "server_error,server_error");
    assert_eq!(
        up.hosts(),
        ["primary.test", "primary.test", "fallback.test"]
    );
}

#[tokio::test(start_paused = true)]
async fn auth_fails_over_at_once_and_trips_the_breaker_for_the_next_request() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(
                401,
                error("invalid_request_error", "invalid_api_key", "bad key"),
            )],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    // The fallback has keys of its own: the refused ones are not tried again.
    let own_keys = routes("").replace(
        "      model: gpt-b\n      credentials: {none: true}\n",
        "      model: gpt-b\n      credentials: {env: FALLBACK_KEY}\n",
    );
    let p = proxy(&own_keys, up.clone());
    assert_served_by_fallback(&chat(&p, ask(false)).await, "auth");
    let second = chat(&p, ask(false)).await;
    assert_served_by_fallback(&second, "");
    assert_eq!(
        up.hosts(),
        ["primary.test", "fallback.test", "fallback.test"],
        "the tripped breaker keeps the primary out"
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_model_is_never_retried_on_the_same_target() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(
                404,
                error(
                    "invalid_request_error",
                    "model_not_found",
                    "The model `gpt-a` does not exist",
                ),
            )],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    assert_served_by_fallback(&chat(&p, ask(false)).await, "invalid_model");
    assert_eq!(up.hosts(), ["primary.test", "fallback.test"]);
}

#[tokio::test(start_paused = true)]
async fn context_length_never_moves_to_a_window_known_not_to_be_larger() {
    let too_long = status(
        400,
        error(
            "invalid_request_error",
            "context_length_exceeded",
            "This model's maximum context length is 8192 tokens",
        ),
    );
    let up = Scripted::new(&[
        ("primary.test", vec![too_long]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let with = |a: &str, b: &str| {
        routes("")
            .replace(
                "      model: gpt-a\n",
                &format!("      model: gpt-a\n      capabilities: {{contextWindow: {a}}}\n"),
            )
            .replace(
                "      model: gpt-b\n",
                &format!("      model: gpt-b\n      capabilities: {{contextWindow: {b}}}\n"),
            )
    };
    // A fallback whose window is declared no larger: the caller's error comes back.
    let p = proxy(&with("8192", "8192"), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "context_length");
    assert_eq!(up.hosts(), ["primary.test"]);
    // A larger window declared, or none (it may be larger): the fallback takes it.
    let p = proxy(&with("8192", "128000"), up.clone());
    assert_served_by_fallback(&chat(&p, ask(false)).await, "context_length");
    let p = proxy(&routes(""), up.clone());
    assert_served_by_fallback(&chat(&p, ask(false)).await, "context_length");
}

#[tokio::test(start_paused = true)]
async fn content_filter_returns_the_providers_reason_without_retry_or_failover() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(
                400,
                error(
                    "invalid_request_error",
                    "content_filter",
                    "The response was filtered by the content filtering policy",
                ),
            )],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 400);
    assert_eq!(got.header("x-plumb-failure-classes"), "content_filter");
    assert!(
        got.body.contains("content filtering policy"),
        "{}",
        got.body
    );
    assert_eq!(up.hosts(), ["primary.test"]);
}

#[tokio::test(start_paused = true)]
async fn bad_request_is_the_callers_and_comes_back_at_once() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(
                400,
                error("invalid_request_error", "", "temperature must be at most 2"),
            )],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 400);
    assert_eq!(got.header("x-plumb-failure-classes"), "bad_request");
    assert!(got.body.contains("temperature must be at most 2"));
    assert_eq!(up.hosts(), ["primary.test"]);
}

#[tokio::test(start_paused = true)]
async fn malformed_response_a_broken_200_is_retried_then_failed_over() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![status(200, "{\"choices\": [".to_owned())],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    assert_served_by_fallback(
        &chat(&p, ask(false)).await,
        "malformed_response,malformed_response",
    );
    assert_eq!(
        up.hosts(),
        ["primary.test", "primary.test", "fallback.test"]
    );
}

// Real time: the contract is checked on the blocking pool, which paused time cannot wait for.
#[tokio::test]
async fn schema_violation_is_repaired_once_with_the_complaint_then_failed_over() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Json(completion("gpt-a", "{\"score\": \"high\"}"))],
        ),
        (
            "fallback.test",
            vec![Step::Json(completion("gpt-b", "{\"score\": 0.5}"))],
        ),
    ]);
    let p = proxy(
        &routes(
            "  contract:\n    schema: {inline: {type: object, required: [score], properties: {score: {type: number}}}}\n",
        ),
        up.clone(),
    );
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-served-by"), "fallback");
    assert_eq!(
        got.header("x-plumb-failure-classes"),
        "schema_violation,schema_violation"
    );
    let seen = up.received();
    assert_eq!(
        up.hosts(),
        ["primary.test", "primary.test", "fallback.test"]
    );
    let repair = seen[1].body["messages"].to_string();
    assert!(
        repair.contains("contract.schema"),
        "the repair says what was wrong: {repair}"
    );
}

// Real time: the contract is checked on the blocking pool, which paused time cannot wait for.
#[tokio::test]
async fn out_of_bounds_is_repaired_and_a_fixed_answer_is_served() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![
                Step::Json(completion("gpt-a", "{\"score\": 7}")),
                Step::Json(completion("gpt-a", "{\"score\": 0.7}")),
            ],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(
        &routes(
            "  contract:\n    json: true\n    rules: [{expression: \"answer.score >= 0.0 && answer.score <= 1.0\", message: score must be between 0 and 1}]\n",
        ),
        up.clone(),
    );
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-served-by"), "primary");
    assert_eq!(got.header("x-plumb-failure-classes"), "out_of_bounds");
    assert_eq!(up.hosts(), ["primary.test", "primary.test"]);
    let m = p.metrics.encode();
    assert!(
        m.contains(r#"plumb_repairs_total{route="test/r",target="primary",outcome="repaired"} 1"#),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn stream_interrupted_a_cut_after_commit_ends_with_an_error_event_and_counts_against_the_primary()
 {
    let mut cut = vec![
        Piece::Event(chunk("gpt-a", "One ")),
        Piece::Event(chunk("gpt-a", "two ")),
        Piece::Wait(Duration::from_millis(100)),
        Piece::Cut,
    ];
    cut.truncate(4);
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Stream(cut)]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-plumb-served-by"), "primary");
    assert!(got.body.contains("One ") && got.body.contains("two "));
    assert!(
        got.body.contains("\"code\":\"stream_interrupted\""),
        "{}",
        got.body
    );
    assert!(!got.body.contains("[DONE]"), "never presented as complete");
    assert_eq!(up.hosts(), ["primary.test"]);
    let m = p.metrics.encode();
    assert!(
        m.contains(r#"plumb_attempts_total{route="test/r",target="primary",outcome="stream_interrupted"} 1"#),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_complete_stream_counts_as_a_success_when_it_ends() {
    let mut pieces = vec![Piece::Event(chunk("gpt-a", "Hello"))];
    pieces.extend(stream_end("gpt-a"));
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Stream(pieces)]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(true)).await;
    assert!(got.body.contains("[DONE]"), "{}", got.body);
    let m = p.metrics.encode();
    assert!(
        m.contains(r#"plumb_attempts_total{route="test/r",target="primary",outcome="ok"} 1"#),
        "{m}"
    );
}

// Real time: the contract is checked on the blocking pool, which paused time cannot wait for.
#[tokio::test]
async fn model_substituted_fails_over_when_the_route_says_so() {
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Json(completion("gpt-a-mini", "a cheaper answer"))],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(
        &routes("  contract: {modelSubstitution: fail}\n"),
        up.clone(),
    );
    assert_served_by_fallback(&chat(&p, ask(false)).await, "model_substituted");
    assert_eq!(up.hosts(), ["primary.test", "fallback.test"]);
    // Accepted by default: counted, and served.
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Json(completion("gpt-a-mini", "a cheaper answer"))],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.header("x-plumb-served-by"), "primary");
    let m = p.metrics.encode();
    assert!(
        m.contains(r#"plumb_model_substitutions_total{route="test/r",target="primary"} 1"#),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_stops_retries_that_would_not_fit() {
    // Every attempt times out at its first byte; the total deadline leaves room for two.
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Hang]),
        ("fallback.test", vec![Step::Hang]),
    ]);
    let p = proxy(
        &routes("  deadlines: {firstByte: 2s, total: 5s}\n"),
        up.clone(),
    );
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.status, 504, "{}", got.body);
    assert!(started.elapsed() <= Duration::from_secs(5));
    assert_eq!(up.hosts()[..2], ["primary.test", "fallback.test"]);
}

#[tokio::test(start_paused = true)]
async fn a_key_echoed_in_an_error_event_after_commit_never_reaches_the_client() {
    let key = "key-of-PRIMARY_KEY";
    let echo = format!(
        "data: {}",
        json!({"error": {"message": format!("Incorrect API key provided: {key}; also {}****_KEY and\n{key}", &key[..8]), "type": "invalid_request_error"}})
    );
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Stream(vec![
                Piece::Event(chunk("gpt-a", "Hello ")),
                Piece::Event(echo),
            ])],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let keyed = routes("").replacen(
        "      credentials: {none: true}\n",
        "      credentials: {env: PRIMARY_KEY}\n",
        1,
    );
    let p = proxy(&keyed, up.clone());
    let got = chat(&p, ask(true)).await;
    assert!(got.body.contains("stream_interrupted"), "{}", got.body);
    assert!(
        got.body.contains("Incorrect API key provided"),
        "the provider's words stay"
    );
    assert!(!got.body.contains(key), "{}", got.body);
    assert!(
        !got.body.contains(&key[..8]),
        "not even its head: {}",
        got.body
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_that_never_ends_is_cut_at_its_bound_not_buffered_forever() {
    // After commit, 2 MiB of one event that never ends: the stream is cut at the 1 MiB bound.
    let endless = "x".repeat(256 * 1024);
    let mut never_ending = vec![Piece::Event(chunk("gpt-a", "Hi"))];
    never_ending.push(Piece::Raw(format!("data: {endless}")));
    for _ in 0..8 {
        never_ending.push(Piece::Raw(endless.clone()));
    }
    never_ending.push(Piece::Wait(Duration::from_secs(600)));
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Stream(never_ending)]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(true)).await;
    assert!(
        got.body.contains("stream_interrupted"),
        "{}",
        &got.body[..got.body.len().min(500)]
    );
    assert!(
        got.body.contains("larger than 1048576 bytes"),
        "{}",
        &got.body[got.body.len().saturating_sub(500)..]
    );
    assert!(
        got.body.len() < 4096,
        "nothing of the endless event is relayed"
    );
}

#[tokio::test]
async fn a_client_schema_that_would_take_exponential_time_is_refused_with_a_clear_400() {
    // allOf chained through $defs, each level naming the next twice: 2^28 to validate, in
    // under 2 KB. It once froze the sidecar for seconds per request.
    let mut defs = serde_json::Map::new();
    for i in 0..28 {
        defs.insert(
            format!("d{i}"),
            json!({"allOf": [{"$ref": format!("#/$defs/d{}", i + 1)}, {"$ref": format!("#/$defs/d{}", i + 1)}]}),
        );
    }
    defs.insert("d28".to_owned(), json!({"type": "object"}));
    let schema = json!({"$defs": defs, "$ref": "#/$defs/d0"});
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Json(completion("gpt-a", "{}"))]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes("  contract: {json: true}\n"), up.clone());
    let mut body = ask(false);
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}});
    let got = chat(&p, body).await;
    assert_eq!(got.status, 400, "{}", got.body);
    assert!(
        got.body.contains("expands to more than 20000 subschemas"),
        "{}",
        got.body
    );
    assert!(up.hosts().is_empty(), "nothing was sent upstream");
}

/// A request body that sends its first bytes and then nothing.
struct Trickle(bool);

impl http_body::Body for Trickle {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        if self.0 {
            return std::task::Poll::Pending;
        }
        self.0 = true;
        std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_static(
            b"{\"model\": \"chat\", \"mess",
        )))))
    }
}

#[tokio::test(start_paused = true)]
async fn a_body_that_never_finishes_gets_a_408_at_the_deadline() {
    let up = Scripted::new(&[
        ("primary.test", vec![fallback_ok()]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let req = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Trickle(false))
        .unwrap();
    let started = tokio::time::Instant::now();
    let resp = p.clone().handle(req).await;
    assert_eq!(resp.status(), 408);
    assert!(started.elapsed() >= Duration::from_secs(60));
    assert!(up.hosts().is_empty());
}

#[tokio::test(start_paused = true)]
async fn large_bodies_beyond_the_memory_budget_wait_then_get_a_503() {
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Hang]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let mut p = proxy(&routes("  deadlines: {firstByte: 10s}\n"), up.clone());
    // Room for one 1 MiB body at a time (counted four times), waiting up to 5 s.
    Arc::get_mut(&mut p).unwrap().limits = BodyLimits {
        max_request_bytes: 2 * 1024 * 1024,
        max_response_bytes: 1024 * 1024,
        memory: Memory::new(4 * 1024 * 1024, Duration::from_secs(5)),
    };
    let large = |text: &str| json!({"model": "chat", "messages": [{"role": "user", "content": format!("{text}{}", "x".repeat(1024 * 1024))}]});
    let first = tokio::spawn({
        let p = p.clone();
        let body = large("a");
        async move { chat(&p, body).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let started = tokio::time::Instant::now();
    let second = chat(&p, large("b")).await;
    assert_eq!(second.status, 503, "{}", second.body);
    assert!(second.body.contains("memory budget"), "{}", second.body);
    assert_eq!(second.header("retry-after"), "1");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "it waited for room first"
    );
    // The first, held 10 s by a silent primary, was served; then there is room again.
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(chat(&p, large("c")).await.status, 200);
    // Too large for the bound at all: 413 at once.
    let huge = json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(3 * 1024 * 1024)}]});
    assert_eq!(chat(&p, huge).await.status, 413);
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_large_bodies_queues_for_the_budget_and_every_one_is_served() {
    let up = Scripted::new(&[
        ("primary.test", vec![fallback_ok()]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let mut p = proxy(&routes(""), up.clone());
    // Room for one 1 MiB body at a time: eight at once must take turns, not deadlock holding
    // parts of the budget each.
    Arc::get_mut(&mut p).unwrap().limits = BodyLimits {
        max_request_bytes: 2 * 1024 * 1024,
        max_response_bytes: 1024 * 1024,
        memory: Memory::new(5 * 1024 * 1024, Duration::from_secs(30)),
    };
    let body = json!({"model": "chat", "messages": [{"role": "user", "content": "x".repeat(1024 * 1024)}]}).to_string();
    let mut burst = Vec::new();
    for _ in 0..8 {
        let p = p.clone();
        let body = body.clone();
        burst.push(tokio::spawn(async move {
            let req = http::Request::post("/v1/chat/completions")
                .header("content-type", "application/json")
                .header("content-length", body.len())
                .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                .unwrap();
            p.handle(req).await.status().as_u16()
        }));
    }
    for r in burst {
        assert_eq!(r.await.unwrap(), 200);
    }
    assert_eq!(
        p.limits.memory.available(),
        5 * 1024 * 1024,
        "all given back"
    );
}

/// A stream whose first token comes after `first` (then the rest at once).
fn stream_after(model: &str, first: Duration) -> Step {
    let mut pieces = vec![Piece::Wait(first), Piece::Event(chunk(model, "Hello"))];
    pieces.extend(stream_end(model));
    Step::Stream(pieces)
}

#[tokio::test(start_paused = true)]
async fn a_learned_first_token_deadline_fails_a_hung_fast_provider_over_in_well_under_a_second() {
    // Twenty streams whose first token comes in 80–120 ms teach the deadline (3 × p99, at
    // least the 250 ms floor); then the provider hangs after its head.
    let mut script: Vec<Step> = (0..20)
        .map(|i| stream_after("gpt-a", Duration::from_millis(80 + 2 * i)))
        .collect();
    script.push(Step::Stream(vec![Piece::Wait(Duration::from_secs(600))]));
    let up = Scripted::new(&[
        ("primary.test", script),
        (
            "fallback.test",
            vec![stream_after("gpt-b", Duration::from_millis(10))],
        ),
    ]);
    let p = proxy(
        &routes("  deadlines: {adaptive: {floor: 250ms}}\n"),
        up.clone(),
    );
    for _ in 0..20 {
        let got = chat(&p, ask(true)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary");
    }
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(600),
        "failed over at the learned deadline (about 3 × 118 ms), not the route's 30 s: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_provider_whose_first_token_takes_twenty_seconds_is_never_cut_early() {
    let script: Vec<Step> = (0..30)
        .map(|i| stream_after("gpt-a", Duration::from_millis(18_000 + 150 * i)))
        .collect();
    let up = Scripted::new(&[
        ("primary.test", script),
        (
            "fallback.test",
            vec![stream_after("gpt-b", Duration::from_millis(10))],
        ),
    ]);
    let p = proxy(&routes(""), up.clone());
    for i in 0..30 {
        let got = chat(&p, ask(true)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary", "request {i}");
    }
    assert!(up.hosts().iter().all(|h| h == "primary.test"));
}

#[tokio::test(start_paused = true)]
async fn an_unstreamed_long_answer_is_given_the_time_it_asked_for() {
    // 2,000 tokens asked; the whole answer comes after 65 s (about 30 tokens a second). The
    // route's deadlines are the defaults: 60 s to the head would cut it, twice.
    let slow = Step::JsonAfter(
        Duration::from_secs(65),
        completion("gpt-a", "a long answer"),
    );
    let up = Scripted::new(&[
        ("primary.test", vec![slow]),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let mut body = ask(false);
    body["max_tokens"] = json!(2000);
    let got = chat(&p, body).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-served-by"), "primary", "{}", got.body);
    assert_eq!(up.hosts(), ["primary.test"], "one paid attempt");
    // Without max_tokens, or on a route that set its deadlines, 60 s to the head still holds.
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::JsonAfter(
                Duration::from_secs(65),
                completion("gpt-a", "a long answer"),
            )],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(false)).await;
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "timeout");
}

/// A stream cut after two tokens.
fn cut_stream(model: &str) -> Step {
    Step::Stream(vec![
        Piece::Event(chunk(model, "Hello ")),
        Piece::Event(chunk(model, "there")),
        Piece::Cut,
    ])
}

#[tokio::test(start_paused = true)]
async fn an_upstream_whose_streams_break_has_them_held_until_it_is_healthy_again() {
    // The primary cuts its streams after two tokens; the fallback (OpenAI, no prefill) cannot
    // continue them. The first ten clients get an explicit error event; from then on the
    // primary's streams are held, so a cut fails over invisibly. (Its breaker is set not to
    // open: a flaky upstream that breaks a share of its streams does not open it either.)
    // Ten cut streams, then four requests of two attempts each (a retry, then the fallback).
    let mut script: Vec<Step> = (0..18).map(|_| cut_stream("gpt-a")).collect();
    let mut healthy = vec![Piece::Event(chunk("gpt-a", "Hello"))];
    healthy.extend(stream_end("gpt-a"));
    script.push(Step::Stream(healthy));
    let mut from_fallback = vec![Piece::Event(chunk("gpt-b", "from the fallback"))];
    from_fallback.extend(stream_end("gpt-b"));
    let up = Scripted::new(&[
        ("primary.test", script),
        ("fallback.test", vec![Step::Stream(from_fallback)]),
    ]);
    let p = proxy(
        &routes("  breaker: {consecutiveFailures: 50, minRequests: 100}\n"),
        up.clone(),
    );
    for i in 0..10 {
        let got = chat(&p, ask(true)).await;
        assert!(
            got.body.contains("stream_interrupted"),
            "request {i}: {}",
            got.body
        );
    }
    let label = "plumb_streams_held_total";
    for i in 0..4 {
        let got = chat(&p, ask(true)).await;
        assert_eq!(got.header("x-plumb-served-by"), "fallback", "request {i}");
        assert!(!got.body.contains("stream_interrupted"), "{}", got.body);
        assert!(got.body.contains("from the fallback") && got.body.contains("[DONE]"));
    }
    let metrics = p.metrics.encode_for(None).0;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(label) && l.contains("target=\"primary\"") && l.ends_with(" 8")),
        "every attempt on the primary was held: {metrics}"
    );
    // Healthy again: held streams complete (and count as whole); once the breaks age out of
    // the two-minute window, streams commit at once again.
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "primary");
    tokio::time::advance(Duration::from_secs(121)).await;
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "primary");
    let metrics = p.metrics.encode_for(None).0;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with(label) && l.contains("target=\"primary\"") && l.ends_with(" 9")),
        "the last stream was not held: {metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_learned_stream_idle_deadline_cuts_a_stall_in_well_under_the_routes_thirty_seconds() {
    // Twenty streams whose events come every 50 ms teach the longest silence; then a stream
    // stalls after two tokens.
    let steady = || {
        let mut pieces = Vec::new();
        for word in ["One ", "two ", "three"] {
            pieces.push(Piece::Wait(Duration::from_millis(50)));
            pieces.push(Piece::Event(chunk("gpt-a", word)));
        }
        pieces.extend(stream_end("gpt-a"));
        Step::Stream(pieces)
    };
    let mut script: Vec<Step> = (0..20).map(|_| steady()).collect();
    script.push(Step::Stream(vec![
        Piece::Event(chunk("gpt-a", "One ")),
        Piece::Event(chunk("gpt-a", "two ")),
        Piece::Wait(Duration::from_secs(600)),
    ]));
    let up = Scripted::new(&[
        ("primary.test", script),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(
        &routes("  deadlines: {adaptive: {floor: 200ms}}\n"),
        up.clone(),
    );
    for _ in 0..20 {
        let got = chat(&p, ask(true)).await;
        assert!(got.body.contains("[DONE]"), "{}", got.body);
    }
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask(true)).await;
    let took = started.elapsed();
    assert!(got.body.contains("stream_interrupted"), "{}", got.body);
    assert!(got.body.contains("reason=stall"), "{}", got.body);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(1),
        "cut at the learned deadline (3 × ~50 ms, at least 200 ms), not 30 s: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_stream_is_no_answer_and_fails_over_invisibly() {
    let mut empty = vec![Piece::Event(chunk("gpt-a", ""))];
    empty.extend(stream_end("gpt-a"));
    let mut from_fallback = vec![Piece::Event(chunk("gpt-b", "from the fallback"))];
    from_fallback.extend(stream_end("gpt-b"));
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Stream(empty)]),
        ("fallback.test", vec![Step::Stream(from_fallback)]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert!(
        got.header("x-plumb-failure-classes")
            .starts_with("malformed_response")
    );
    assert!(got.body.contains("from the fallback") && got.body.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(start_paused = true)]
async fn a_streams_late_head_is_held_to_the_first_token_deadline() {
    // The head comes after 45 s; the route gives a stream's first token 10 s.
    let late = Step::Stream(vec![Piece::Event(chunk("gpt-a", "late"))]);
    let up = Scripted::new(&[
        ("primary.test", vec![Step::Hang, late]),
        (
            "fallback.test",
            vec![stream_after("gpt-b", Duration::from_millis(10))],
        ),
    ]);
    let p = proxy(&routes("  deadlines: {firstToken: 10s}\n"), up.clone());
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "timeout");
    assert_eq!(
        up.received()[1].at,
        Duration::from_secs(10),
        "failed over at the first-token deadline, not the first-byte one (60 s)"
    );
}

/// A whole answer that counted `tokens` output tokens.
fn answer_of(model: &str, tokens: u64) -> Value {
    let mut a = completion(model, "a long answer");
    a["usage"] =
        json!({"prompt_tokens": 5, "completion_tokens": tokens, "total_tokens": tokens + 5});
    a
}

/// Unstreamed requests for up to `max_tokens`.
fn ask_for(max_tokens: u32) -> Value {
    let mut body = ask(false);
    body["max_tokens"] = json!(max_tokens);
    body
}

#[tokio::test(start_paused = true)]
async fn a_slow_but_steady_provider_is_not_cut_once_its_rate_is_learned() {
    // 15 tokens a second: twenty answers of 100 tokens in 6.7 s each teach the rate; then
    // 2,000 tokens take 133.3 s, past the 100 s that 50 ms a token would give them.
    let mut script: Vec<Step> = (0..20)
        .map(|_| Step::JsonAfter(Duration::from_millis(6_667), answer_of("gpt-a", 100)))
        .collect();
    script.push(Step::JsonAfter(
        Duration::from_millis(133_333),
        answer_of("gpt-a", 2000),
    ));
    let up = Scripted::new(&[
        ("primary.test", script),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    for i in 0..20 {
        let got = chat(&p, ask_for(100)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary", "request {i}");
    }
    let got = chat(&p, ask_for(2000)).await;
    assert_eq!(got.status, 200, "{}", got.body);
    assert_eq!(got.header("x-plumb-served-by"), "primary", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "");
    assert!(
        up.hosts().iter().all(|h| h == "primary.test"),
        "one paid attempt each: {:?}",
        up.hosts()
    );
}

/// A provider writing 200 tokens a second (5 ms a token), twenty answers of 1,000 tokens
/// learned from, and a route over it; then `samples` more answers, and a request for 8,000
/// tokens that hangs. Returns when the fallback was asked, from the hung request's start.
async fn hung_after_learning(samples: usize) -> Duration {
    let mut script: Vec<Step> = (0..samples)
        .map(|_| Step::JsonAfter(Duration::from_secs(5), answer_of("gpt-a", 1000)))
        .collect();
    script.push(Step::Hang);
    let up = Scripted::new(&[
        ("primary.test", script),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    for i in 0..samples {
        let got = chat(&p, ask_for(1000)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary", "request {i}");
    }
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask_for(8000)).await;
    assert_served_by_fallback(&got, "timeout");
    let seen = up.received();
    let asked = seen.last().map(|r| r.at).unwrap_or_default();
    asked - (started - up.epoch())
}

#[tokio::test(start_paused = true)]
async fn a_fast_providers_stuck_unstreamed_request_is_cut_at_its_learned_rate() {
    // The first token's 30 s (nothing streamed yet) and 8,000 × 3 × 5 ms: 150 s, where 50 ms a
    // token would wait 400 s.
    let cut = hung_after_learning(20).await;
    assert!(
        cut >= Duration::from_secs(145) && cut <= Duration::from_secs(155),
        "{cut:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn with_too_few_answers_learned_an_unstreamed_request_keeps_50_ms_a_token() {
    assert_eq!(hung_after_learning(19).await, Duration::from_secs(400));
}

#[tokio::test(start_paused = true)]
async fn streams_teach_the_rate_and_the_start_of_unstreamed_answers() {
    // Twenty streams: the first token after 100 ms, then 1,000 tokens in 5 s (their usage
    // says so). An unstreamed request for 8,000 tokens that hangs is then given 3 × 100 ms to
    // start and 8,000 × 3 × 5 ms to write: about 120 s, where 50 ms a token would wait 400 s.
    let streamed = || {
        Step::Stream(vec![
            Piece::Wait(Duration::from_millis(100)),
            Piece::Event(chunk("gpt-a", "Hello")),
            Piece::Wait(Duration::from_secs(5)),
            Piece::Event(chunk("gpt-a", " world")),
            Piece::Event(format!(
                "data: {}",
                json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-a",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1000, "total_tokens": 1005}})
            )),
            Piece::Event("data: [DONE]".to_owned()),
        ])
    };
    let mut script: Vec<Step> = (0..20).map(|_| streamed()).collect();
    script.push(Step::Hang);
    let up = Scripted::new(&[
        ("primary.test", script),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(
        &routes("  deadlines: {adaptive: {floor: 250ms}}\n"),
        up.clone(),
    );
    for i in 0..20 {
        let got = chat(&p, ask(true)).await;
        assert!(got.body.contains("[DONE]"), "request {i}: {}", got.body);
    }
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask_for(8000)).await;
    assert_served_by_fallback(&got, "timeout");
    let cut = up.received().last().map(|r| r.at).unwrap_or_default() - (started - up.epoch());
    assert!(
        cut >= Duration::from_secs(115) && cut <= Duration::from_secs(125),
        "{cut:?}"
    );
}

/// A stream whose head comes after `head` and its first token `first` later.
fn stream_head_after(model: &str, head: Duration, first: Duration) -> Step {
    let mut pieces = vec![Piece::Wait(first), Piece::Event(chunk(model, "Hello"))];
    pieces.extend(stream_end(model));
    Step::StreamAfter(head, pieces)
}

#[tokio::test(start_paused = true)]
async fn a_hung_head_is_cut_at_the_learned_head_deadline_though_first_tokens_are_slow() {
    // The head comes in about 100 ms and the first token 20 s later (a long prefill, say):
    // the first-token deadline learns 30 s (3 × 20 s, at most the route's), the head 300 ms.
    // Then the connection hangs before any head.
    let mut script: Vec<Step> = (0..20)
        .map(|i| {
            stream_head_after(
                "gpt-a",
                Duration::from_millis(90 + i),
                Duration::from_secs(20),
            )
        })
        .collect();
    script.push(Step::Hang);
    let up = Scripted::new(&[
        ("primary.test", script),
        (
            "fallback.test",
            vec![stream_after("gpt-b", Duration::from_millis(10))],
        ),
    ]);
    let p = proxy(
        &routes("  deadlines: {adaptive: {floor: 250ms}}\n"),
        up.clone(),
    );
    for i in 0..20 {
        let got = chat(&p, ask(true)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary", "request {i}");
    }
    let started = tokio::time::Instant::now();
    let got = chat(&p, ask(true)).await;
    assert_eq!(got.header("x-plumb-served-by"), "fallback", "{}", got.body);
    assert_eq!(got.header("x-plumb-failure-classes"), "timeout");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(1),
        "failed over at the learned head deadline (about 3 × 110 ms), not 30 s: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_provider_whose_head_takes_two_seconds_then_streams_quickly_is_not_cut() {
    // Its heads take about 2 s and its first tokens follow at once: the head deadline learns
    // about 6 s, like its first token, and a head a little slower than before is not cut.
    let mut script: Vec<Step> = (0..20)
        .map(|i| {
            stream_head_after(
                "gpt-a",
                Duration::from_millis(1_900 + 10 * i),
                Duration::from_millis(20),
            )
        })
        .collect();
    script.push(stream_head_after(
        "gpt-a",
        Duration::from_millis(3_000),
        Duration::from_millis(20),
    ));
    let up = Scripted::new(&[
        ("primary.test", script),
        (
            "fallback.test",
            vec![stream_after("gpt-b", Duration::from_millis(10))],
        ),
    ]);
    let p = proxy(
        &routes("  deadlines: {adaptive: {floor: 250ms}}\n"),
        up.clone(),
    );
    for i in 0..21 {
        let got = chat(&p, ask(true)).await;
        assert_eq!(got.header("x-plumb-served-by"), "primary", "request {i}");
    }
    assert!(up.hosts().iter().all(|h| h == "primary.test"));
}

/// Who answered each of the requests sent every 250 ms for `secs` seconds (unstreamed, or
/// streamed), with the time each was sent.
async fn every_quarter_second(
    p: &Arc<plumb_sidecar::proxy::Proxy>,
    secs: u64,
    stream: bool,
) -> Vec<(Duration, String)> {
    let start = tokio::time::Instant::now();
    let mut sent = Vec::new();
    for i in 0..secs * 4 {
        let at = Duration::from_millis(250 * i);
        tokio::time::sleep_until(start + at).await;
        let p = p.clone();
        sent.push((
            at,
            tokio::spawn(async move {
                chat(&p, ask(stream))
                    .await
                    .header("x-plumb-served-by")
                    .to_owned()
            }),
        ));
    }
    let mut out = Vec::new();
    for (at, task) in sent {
        out.push((at, task.await.unwrap()));
    }
    out
}

/// When the first request sent at or after `from` that the primary answered was sent, and
/// whether every later request went to the primary until `until`.
fn returned(served: &[(Duration, String)], from: Duration, until: Duration) -> (Duration, bool) {
    let back = served
        .iter()
        .find(|(at, by)| *at >= from && by == "primary")
        .map_or(Duration::MAX, |(at, _)| *at);
    let stayed = served
        .iter()
        .filter(|(at, _)| *at >= back && *at < until)
        .all(|(_, by)| by == "primary");
    (back, stayed)
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_whose_probes_failed_traffic_returns_at_the_next_probe_and_the_cool_down_is_short_again()
 {
    // The primary answers 503 for 9 s (its breaker opens, and its probes at about 2.5 s and
    // 6.5 s fail, doubling the cool-down to 8 s), then again for one second from 30 s.
    let down = || status(503, error("server_error", "overloaded", "try later"));
    let up_ = || Step::Json(completion("gpt-a", "from the primary"));
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Timeline(vec![
                (Duration::ZERO, down()),
                (Duration::from_secs(9), up_()),
                (Duration::from_secs(30), down()),
                (Duration::from_secs(31), up_()),
            ])],
        ),
        ("fallback.test", vec![fallback_ok()]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let served = every_quarter_second(&p, 40, false).await;
    assert!(
        served
            .iter()
            .all(|(_, by)| by == "primary" || by == "fallback"),
        "every request answered: {served:?}"
    );
    // Back at 9 s: the cool-down in force then (8 s) is the longest the primary can wait
    // for the probe that finds it healthy; from then on it has every request.
    let (back, stayed) = returned(&served, Duration::from_secs(9), Duration::from_secs(30));
    assert!(back <= Duration::from_secs(17), "back at {back:?}");
    assert!(stayed, "{served:?}");
    // While it was down, only probes reached it after its breaker opened.
    let probes = up
        .received()
        .iter()
        .filter(|r| {
            r.host == "primary.test"
                && r.at >= Duration::from_secs(2)
                && r.at < Duration::from_secs(9)
        })
        .count();
    assert_eq!(probes, 2, "{:?}", up.received());
    // The probe that passed reset the cool-down: after the second outage (back at 31 s) the
    // primary has its traffic again within one first cool-down (2 s), not a doubled one.
    let (back, stayed) = returned(&served, Duration::from_secs(31), Duration::from_secs(40));
    assert!(
        back <= Duration::from_secs(33),
        "back at {back:?}: {served:?}"
    );
    assert!(stayed, "{served:?}");
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_streams_a_long_answer_lets_traffic_back_at_its_first_token() {
    // Down for 3 s; then every answer is a stream of 30 s. The probe that finds the primary
    // healthy (about 6.5 s) closes its breaker at its first token, not when its stream ends.
    let long = || {
        let mut pieces = vec![
            Piece::Event(chunk("gpt-a", "Hello")),
            Piece::Wait(Duration::from_secs(30)),
        ];
        pieces.extend(stream_end("gpt-a"));
        Step::Stream(pieces)
    };
    let mut from_fallback = vec![Piece::Event(chunk("gpt-b", "from the fallback"))];
    from_fallback.extend(stream_end("gpt-b"));
    let up = Scripted::new(&[
        (
            "primary.test",
            vec![Step::Timeline(vec![
                (
                    Duration::ZERO,
                    status(503, error("server_error", "overloaded", "try later")),
                ),
                (Duration::from_secs(3), long()),
            ])],
        ),
        ("fallback.test", vec![Step::Stream(from_fallback)]),
    ]);
    let p = proxy(&routes(""), up.clone());
    let served = every_quarter_second(&p, 12, true).await;
    let (back, stayed) = returned(&served, Duration::from_secs(3), Duration::from_secs(12));
    assert!(
        back <= Duration::from_secs(8),
        "back at {back:?}, not when the probe's stream ended: {served:?}"
    );
    assert!(stayed, "{served:?}");
}
