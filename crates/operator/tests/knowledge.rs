//! End to end, the fleet's shared knowledge: several real sidecar processes against one
//! operator and the simulator. One sidecar's bad experience protects the others — without
//! them paying for the lesson, which the simulator's attempt log proves.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use plumb_simulator::PlanSpec;
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/team-a/llmroutes";

/// Starts sidecars `web-0` … `web-{n-1}` of team-a, each with its own token, and waits until
/// every one serves.
async fn sidecars(env: &Env, url: &str, n: usize) -> Vec<Proc> {
    let mut out = Vec::new();
    for i in 0..n {
        let pod = format!("web-{i}");
        let token = format!("tok-{i}");
        env.fake.add_token(&token, "team-a", "web", &pod, AUDIENCE);
        out.push(env.sidecar(url, "team-a", &pod, &token, None));
    }
    for sc in &out {
        let admin = sc.words[5].clone();
        eventually("every sidecar has its policy", || {
            let c = env.client.clone();
            let admin = admin.clone();
            async move {
                c.get(format!("{admin}/readyz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
            }
        })
        .await;
    }
    out
}

/// A sidecar's admin endpoint `path`, as JSON.
async fn admin_json(env: &Env, sc: &Proc, path: &str) -> Value {
    env.client
        .get(format!("{}{path}", sc.words[5]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// What a sidecar's `/fleet` says of the upstream of `model`.
async fn fleet_of(env: &Env, sc: &Proc, model: &str) -> Value {
    admin_json(env, sc, "/fleet").await["upstreams"]
        .as_array()
        .and_then(|u| u.iter().find(|u| u["model"] == model).cloned())
        .unwrap_or(Value::Null)
}

async fn served_by(env: &Env, sc: &Proc, model: &str) -> (u16, String) {
    let r = env
        .client
        .post(format!("{}/v1/chat/completions", sc.words[3]))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "what is six times seven"}]}))
        .send()
        .await
        .unwrap();
    let by = r
        .headers()
        .get("x-plumb-served-by")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (r.status().as_u16(), by)
}

fn plan(env: &Env, model: &str, spec: Value) {
    let spec: PlanSpec = serde_json::from_value(spec).unwrap();
    env.sim.set_plan(model, spec).unwrap();
}

fn target_status<'a>(route: &'a Value, target: &str) -> &'a Value {
    route["status"]["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["name"] == target))
        .unwrap_or(&Value::Null)
}

/// A route whose primary (`sim-gpt`) fails over to `backup` (`sim-gpt-mini`, which answers
/// alike, in the next priority group), with a breaker
/// that opens after two failures and probes every second.
fn chat_route(env: &Env, name: &str, extra: Value) -> Value {
    let base = format!("{}/v1", env.sim.base_url());
    let mut spec = json!({
        "match": {"models": [name]},
        "targets": [
            {"name": "primary", "provider": "openai", "baseUrl": base, "model": "sim-gpt",
             "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}},
            {"name": "backup", "provider": "openai", "baseUrl": base, "model": "sim-gpt-mini",
             "priority": 1, "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}},
        ],
        "breaker": {"consecutiveFailures": 2, "cooldown": "1s"},
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
        "metadata": {"name": name, "namespace": "team-a"}, "spec": spec})
}

/// The environment with team-a's key, an operator that may write a route's status every
/// 500 ms, and its policy URL.
async fn with_operator() -> (Env, Proc, u16) {
    let env = env().await;
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    let port = free_port();
    let op = env.operator_with(port, &FAST_STATUS);
    (env, op, port)
}

const FAST_STATUS: [&str; 4] = [
    "--knowledge-status-min-interval",
    "500ms",
    // Numbers alone (latencies, first tokens) are written at most this often.
    "--knowledge-status-interval",
    "2s",
];

/// Creates a route.
async fn create(env: &Env, route: &Value) {
    let (s, body) = env.send(Method::POST, ROUTES, Some(route)).await;
    assert_eq!(s, 201, "{body}");
}

#[tokio::test]
async fn knowledge_e2e_one_sidecars_failure_protects_the_fleet_with_one_probe_per_interval() {
    let (env, _op, port) = with_operator().await;
    let url = format!("https://127.0.0.1:{port}");
    // `observe`: failover is allowed, and reported when uncertified.
    create(
        &env,
        &chat_route(&env, "chat", json!({"equivalence": {"mode": "observe"}})),
    )
    .await;
    let fleet = sidecars(&env, &url, 10).await;

    // The primary goes down. Only web-0 sends traffic, until its breaker opens.
    plan(
        &env,
        "sim-gpt",
        json!({"fault": "server_error", "share": 1.0}),
    );
    let opened = tokio::time::Instant::now();
    for _ in 0..10 {
        let (status, _) = served_by(&env, &fleet[0], "chat").await;
        assert_eq!(status, 200, "failover serves");
        if fleet_of(&env, &fleet[0], "sim-gpt").await["open"] == true {
            break;
        }
    }
    let before = env.sim.attempts(Some("sim-gpt")).len();
    assert!(before >= 2, "web-0 paid for the lesson: {before} attempts");

    // web-5 learns it without sending anything.
    eventually("web-5 hears that the primary is open", || async {
        fleet_of(&env, &fleet[5], "sim-gpt").await["open"] == true
    })
    .await;
    eprintln!("web-5 knew after {:?}", opened.elapsed());
    for _ in 0..5 {
        assert_eq!(
            served_by(&env, &fleet[5], "chat").await,
            (200, "backup".to_owned())
        );
    }
    assert_eq!(
        env.sim.attempts(Some("sim-gpt")).len(),
        before,
        "web-5 never sent the primary a request"
    );
    let metrics = env
        .client
        .get(format!("{}/metrics", fleet[5].words[5]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("plumb_skipped_targets_total{")
                && l.contains(r#"target="primary""#)
                && l.contains(r#"outcome="fleet_open""#)
                && l.ends_with(" 5")),
        "the skips are counted: {metrics}"
    );

    // All ten under load for four seconds while the primary stays down: about one probe per
    // one-second interval in all, not one per sidecar.
    let loads: Vec<Load> = fleet
        .iter()
        .map(|sc| Load::start(env.client.clone(), sc.words[3].clone()))
        .collect();
    let start = env.sim.attempts(Some("sim-gpt")).len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let probes = env.sim.attempts(Some("sim-gpt")).len() - start;
    eprintln!("probes in 4 s with 10 sidecars: {probes}");
    assert!(probes >= 1, "someone probes");
    assert!(
        probes <= 10,
        "{probes} probes in 4 s: about one per interval, not one per sidecar (40)"
    );
    eventually("the status shows the primary open", || async {
        let route = env.get(&format!("{ROUTES}/chat")).await;
        target_status(&route, "primary")["state"] == "Open" && route["status"]["healthy"] == "1/2"
    })
    .await;

    // The primary recovers: the next probe finds it healthy, and every sidecar uses it again.
    plan(
        &env,
        "sim-gpt",
        json!({"fault": "server_error", "share": 0.0}),
    );
    eventually("web-7 is served by the primary again", || async {
        served_by(&env, &fleet[7], "chat").await == (200, "primary".to_owned())
    })
    .await;
    for load in loads {
        let (sent, failed) = load.finish().await;
        assert!(sent > 0);
        assert_eq!(failed, 0, "no request failed through the outage");
    }
    eventually("the status shows both healthy", || async {
        let route = env.get(&format!("{ROUTES}/chat")).await;
        target_status(&route, "primary")["state"] == "Healthy"
            && route["status"]["healthy"] == "2/2"
    })
    .await;
    let route = env.get(&format!("{ROUTES}/chat")).await;
    let primary = target_status(&route, "primary");
    assert!(primary["attempts"].as_u64().unwrap_or(0) > 0, "{primary}");
    assert!(
        primary["errors"]["server_error"].as_u64().unwrap_or(0) >= 2,
        "{primary}"
    );
    assert!(primary["latencyMs"]["p50"].as_f64().is_some(), "{primary}");
    assert_eq!(
        primary["upstream"]["credential"],
        "secret:team-a/llm-keys/openai"
    );

    // Streams teach the fleet the primary's first tokens: the route's status says what they
    // measured and the deadline a sidecar draws from them (issue 16's learned deadline).
    for sc in &fleet[..3] {
        for _ in 0..7 {
            let r = env
                .client
                .post(format!("{}/v1/chat/completions", sc.words[3]))
                .json(&json!({"model": "chat", "stream": true, "messages": [{"role": "user", "content": "what is six times seven"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let body = r.text().await.unwrap();
            assert!(body.contains("[DONE]"), "a whole stream: {body}");
        }
    }
    // Each new value the status shows is printed: on a failure, the output says where it
    // stopped.
    let shown = std::sync::Mutex::new(String::new());
    eventually("the status shows the primary's first tokens", || async {
        let route = env.get(&format!("{ROUTES}/chat")).await;
        let first = &target_status(&route, "primary")["firstToken"];
        let seen = first.to_string();
        let mut last = shown.lock().unwrap();
        if *last != seen {
            eprintln!("the primary's firstToken: {seen}");
            *last = seen;
        }
        // The learned deadline needs 20: from then on, one more first token alone is not a
        // change worth a write, so the last of the 21 may never be shown.
        first["samples"].as_u64().is_some_and(|n| n >= 20)
    })
    .await;
    let route = env.get(&format!("{ROUTES}/chat")).await;
    let first = &target_status(&route, "primary")["firstToken"];
    let (p99, deadline) = (
        first["p99Ms"].as_f64().unwrap_or(-1.0),
        first["deadlineMs"].as_f64().unwrap_or(-1.0),
    );
    assert!(p99 > 0.0, "{first}");
    // Past the 20 samples a learned deadline needs: three times the p99, within the 1 s floor
    // and the route's 30 s first-token deadline.
    let learned = (3.0 * p99).clamp(1_000.0, 30_000.0);
    assert!(
        (deadline - learned).abs() < 1.0,
        "deadline {deadline} ms, learned from p99 {p99} ms: {first}"
    );
    let events = env.fake.events();
    let reasons: Vec<&str> = events.iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"BreakerOpened"), "{reasons:?}");
    assert!(reasons.contains(&"ProbedHealthy"), "{reasons:?}");
    assert!(reasons.contains(&"UncertifiedFailover"), "{reasons:?}");
    assert!(
        !serde_json::to_string(&events).unwrap().contains("sk-test"),
        "no key in any Event"
    );
}

#[tokio::test]
async fn knowledge_e2e_streams_of_an_upstream_that_breaks_them_are_held_and_the_status_counts_them()
{
    let (env, _op, port) = with_operator().await;
    let url = format!("https://127.0.0.1:{port}");
    // The primary cuts every stream after three tokens; its breaker is set never to open, so
    // only the adaptive hold changes what the client sees.
    create(
        &env,
        &chat_route(
            &env,
            "flaky",
            json!({"breaker": {"consecutiveFailures": 100000, "minRequests": 100000}}),
        ),
    )
    .await;
    let fleet = sidecars(&env, &url, 2).await;
    plan(
        &env,
        "sim-gpt",
        json!({"fault": "stream_cut:after=3", "share": 1.0}),
    );
    let stream = |sc: &Proc| {
        let (c, url) = (
            env.client.clone(),
            format!("{}/v1/chat/completions", sc.words[3]),
        );
        async move {
            let r = c
                .post(url)
                .json(&json!({"model": "flaky", "stream": true, "messages": [{"role": "user", "content": "what is six times seven"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let by = r
                .headers()
                .get("x-plumb-served-by")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (by, r.text().await.unwrap())
        }
    };
    // Ten broken streams: each reaches the client as an explicit error event (the backup
    // cannot continue an answer).
    for i in 0..10 {
        let (by, body) = stream(&fleet[0]).await;
        assert_eq!(by, "primary", "stream {i}");
        assert!(body.contains("stream_interrupted"), "stream {i}: {body}");
    }
    // From now on web-0 holds the primary's streams: a cut fails over invisibly.
    let held = |v: &Value| {
        v["deadlines"].as_array().is_some_and(|d| {
            d.iter().any(|t| {
                t["route"] == "team-a/flaky"
                    && t["target"] == "primary"
                    && t["streams"]["held"] == true
            })
        })
    };
    let v = admin_json(&env, &fleet[0], "/fleet").await;
    assert!(held(&v), "{v}");
    for i in 0..5 {
        let (by, body) = stream(&fleet[0]).await;
        assert_eq!(by, "backup", "stream {i}: {body}");
        assert!(!body.contains("stream_interrupted"), "{body}");
        assert!(body.contains("[DONE]"), "{body}");
    }
    // web-1 saw no break of its own: it does not hold.
    assert!(!held(&admin_json(&env, &fleet[1], "/fleet").await));
    // The route's status shows the fleet's held attempts, for the primary alone: two for
    // each of the five requests (a stream broken inside the hold is retried once, then
    // failed over).
    eventually("the status counts the held streams", || async {
        let route = env.get(&format!("{ROUTES}/flaky")).await;
        target_status(&route, "primary")["streamsHeld"]
            .as_u64()
            .is_some_and(|n| n >= 10)
    })
    .await;
    let route = env.get(&format!("{ROUTES}/flaky")).await;
    assert_eq!(
        target_status(&route, "primary")["streamsHeld"].as_u64(),
        Some(10),
        "{}",
        route["status"]
    );
    assert!(
        target_status(&route, "backup")["streamsHeld"].is_null(),
        "{}",
        route["status"]
    );
}

#[tokio::test]
async fn knowledge_e2e_rate_limits_and_certifications_are_shared_and_survive_a_restart() {
    let (env, op, port) = with_operator().await;
    let url = format!("https://127.0.0.1:{port}");
    // `limited`: the primary's first answer is a 429 with a 3 s reset.
    create(
        &env,
        &chat_route(
            &env,
            "limited",
            json!({"classes": {"rateLimited": {"retries": 0}}}),
        ),
    )
    .await;
    // `certified`: failover only to a certified fallback; every healthy answer shadowed.
    let equivalence = json!({"equivalence": {"mode": "enforce", "threshold": 0.5, "minSamples": 5,
        "method": {"kind": "exact"},
        "shadow": {"rate": 1.0, "maxConcurrent": 4, "requestsPerMinute": 1000}}});
    create(&env, &chat_route(&env, "certified", equivalence)).await;
    // `storm`: one target that will fail every attempt, with a breaker that never opens, so
    // only the retry budget holds retries back.
    let base = format!("{}/v1", env.sim.base_url());
    create(
        &env,
        &json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": "storm", "namespace": "team-a"},
            "spec": {
                "match": {"models": ["storm"]},
                "targets": [{"name": "only", "provider": "openai", "baseUrl": base,
                    "model": "sim-gpt-alt", "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}}],
                "breaker": {"consecutiveFailures": 100000, "minRequests": 100000},
                "classes": {"serverError": {"retries": 1, "backoff": {"initial": "1ms", "max": "2ms"}}},
            }}),
    )
    .await;
    let fleet = sidecars(&env, &url, 3).await;

    // A rate-limit window seen by web-0 holds for every sidecar.
    plan(
        &env,
        "sim-gpt",
        json!({"fault": "rate_limited:retry_after=3", "first": 1}),
    );
    let served = served_by(&env, &fleet[0], "limited").await;
    assert_eq!(
        served,
        (200, "backup".to_owned()),
        "{:#?} {}",
        env.sim.attempts(None),
        env.get(&format!("{ROUTES}/limited")).await["spec"]
    );
    let first = env.sim.attempts(Some("sim-gpt"));
    assert_eq!(first.len(), 1, "{:?}", env.sim.attempts(None));
    let limited_at = first[0].at_ms;
    eventually("web-2 hears of the window", || async {
        fleet_of(&env, &fleet[2], "sim-gpt").await["rateLimitedUntilMs"]
            .as_i64()
            .unwrap_or(0)
            > 0
    })
    .await;
    // Every sidecar sends until the primary serves again.
    let mut n = 0usize;
    loop {
        let (status, by) = served_by(&env, &fleet[n % 3], "limited").await;
        assert_eq!(status, 200);
        if by == "primary" {
            break;
        }
        n += 1;
        assert!(n < 2000, "the primary never served again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let attempts = env.sim.attempts(Some("sim-gpt"));
    assert!(attempts.len() >= 2);
    for a in &attempts[1..] {
        assert!(
            a.at_ms >= limited_at + 2_900.0,
            "attempt {} went {:.0} ms after the 429 that announced a 3 s window",
            a.id,
            a.at_ms - limited_at
        );
    }

    // An incident: web-0 alone sees every attempt of `storm` fail; the fleet scales the
    // route's retry budget down on every sidecar, and web-2 retries far less than it would.
    plan(
        &env,
        "sim-gpt-alt",
        json!({"fault": "server_error", "share": 1.0}),
    );
    for _ in 0..15 {
        served_by(&env, &fleet[0], "storm").await;
    }
    eventually(
        "web-2 runs the storm route on a tenth of its retry budget",
        || async {
            let v = admin_json(&env, &fleet[2], "/fleet").await;
            v["retryBudgetScales"]["storm"].as_f64() == Some(0.1)
        },
    )
    .await;
    let before = env.sim.attempts(Some("sim-gpt-alt")).len();
    for _ in 0..20 {
        assert_eq!(served_by(&env, &fleet[2], "storm").await.0, 502);
    }
    let attempts = env.sim.attempts(Some("sim-gpt-alt")).len() - before;
    // The whole budget would allow a retry for each of the 20 (40 attempts); a tenth of it,
    // 0.1 × (0.2 × 20 + 5 × 10) = 5.4 retries.
    assert!(
        (20..=25).contains(&attempts),
        "{attempts} attempts for 20 requests during the incident"
    );

    // Certified by web-0's shadow samples alone; web-1 relies on it in `enforce` mode.
    for _ in 0..8 {
        assert_eq!(
            served_by(&env, &fleet[0], "certified").await,
            (200, "primary".to_owned())
        );
    }
    plan(
        &env,
        "sim-gpt",
        json!({"fault": "server_error", "share": 1.0}),
    );
    eventually("web-1 fails over on the fleet's certification", || async {
        let r = env
            .client
            .post(format!("{}/v1/chat/completions", fleet[1].words[3]))
            .json(&json!({"model": "certified", "messages": [{"role": "user", "content": "what is six times seven"}]}))
            .send()
            .await
            .unwrap();
        r.status() == 200
            && r.headers()
                .get("x-plumb-equivalence")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|h| h.starts_with("certified;"))
    })
    .await;
    let web1 = admin_json(&env, &fleet[1], "/equivalence").await;
    assert_eq!(web1, json!([]), "web-1 never shadowed the pair itself");
    eventually("the status shows the certification", || async {
        let route = env.get(&format!("{ROUTES}/certified")).await;
        target_status(&route, "backup")["equivalence"]["certified"] == true
    })
    .await;

    // The operator restarts: the new one starts from the status, and a sidecar that never met
    // the old one fails over on the certification.
    drop(op);
    let _op2 = env.operator_with(port, &FAST_STATUS);
    env.fake
        .add_token("tok-new", "team-a", "web", "web-new", AUDIENCE);
    let fresh = env.sidecar(&url, "team-a", "web-new", "tok-new", None);
    eventually(
        "a new sidecar fails over on the seeded certification",
        || async {
            let r = env
                .client
                .post(format!("{}/v1/chat/completions", fresh.words[3]))
                .json(
                    &json!({"model": "certified", "messages": [{"role": "user", "content": "hi"}]}),
                )
                .send()
                .await;
            r.is_ok_and(|r| {
                r.status() == 200
                    && r.headers()
                        .get("x-plumb-equivalence")
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|h| h.starts_with("certified;"))
            })
        },
    )
    .await;
}

#[tokio::test]
async fn knowledge_e2e_a_new_leader_starts_from_the_status_and_keeps_the_upstream_open() {
    let env = env().await;
    env.fake.put_secret(
        "team-a",
        "llm-keys",
        CREDENTIALS,
        &[("openai", "sk-test-team-a")],
    );
    let (p1, p2) = (free_port(), free_port());
    let mut replicas = [
        Some(env.operator_full(p1, "operator-1", &FAST_STATUS)),
        Some(env.operator_full(p2, "operator-2", &FAST_STATUS)),
    ];
    let service = leader_service(
        env.fake.clone(),
        vec![("operator-1".into(), p1), ("operator-2".into(), p2)],
    )
    .await;
    let holder = || {
        env.fake
            .lease_holder("plumb-system", "plumb-operator-leader")
    };
    eventually("one replica leads", || async { holder().is_some() }).await;
    let first = holder().unwrap_or_default();
    // A long cool-down: web-0 does not probe on its own while the test runs.
    let mut route = chat_route(&env, "chat", json!({}));
    route["spec"]["breaker"]["cooldown"] = json!("30s");
    create(&env, &route).await;
    eventually(
        "the Healthy column is filled before any traffic",
        || async {
            let route = env.get(&format!("{ROUTES}/chat")).await;
            route["status"]["healthy"] == "2/2"
                && target_status(&route, "primary")["state"] == "Unknown"
        },
    )
    .await;
    let mut fleet = sidecars(&env, &format!("https://127.0.0.1:{service}"), 2).await;

    plan(
        &env,
        "sim-gpt",
        json!({"fault": "server_error", "share": 1.0}),
    );
    for _ in 0..10 {
        assert_eq!(served_by(&env, &fleet[0], "chat").await.0, 200);
        if fleet_of(&env, &fleet[0], "sim-gpt").await["open"] == true {
            break;
        }
    }
    eventually("the status records the open primary", || async {
        let route = env.get(&format!("{ROUTES}/chat")).await;
        target_status(&route, "primary")["state"] == "Open"
    })
    .await;

    // web-0, the only sidecar that saw the primary fail, goes away; then the leader dies. The
    // other replica takes over: all it knows of the primary is what the status says.
    drop(fleet.remove(0));
    let leader = if first == "operator-1" { 0 } else { 1 };
    drop(replicas[leader].take());
    eventually("the other replica leads", || async {
        holder().is_some_and(|h| h != first)
    })
    .await;
    eventually(
        "web-1 hears from the new leader that the primary is open",
        || async { fleet_of(&env, &fleet[0], "sim-gpt").await["open"] == true },
    )
    .await;
    let before = env.sim.attempts(Some("sim-gpt")).len();
    for _ in 0..5 {
        assert_eq!(
            served_by(&env, &fleet[0], "chat").await,
            (200, "backup".to_owned())
        );
    }
    let probes = env.sim.attempts(Some("sim-gpt")).len() - before;
    assert!(
        probes <= 1,
        "web-1 sent the open primary {probes} requests; at most the one probe it may be elected for"
    );
    let route = env.get(&format!("{ROUTES}/chat")).await;
    assert_eq!(
        target_status(&route, "primary")["state"],
        "Open",
        "the new leader keeps what the status said: {}",
        route["status"]
    );
}
