//! The proxy's surface: answers pass through with the target's model and usage, the
//! `x-plumb-*` headers, both API families, embeddings, models, admin endpoints, and the errors
//! for what no route serves.

use serde_json::{Value, json};

use crate::support::{
    Sidecar, chat, client, header, parse_sse, read_all, route, simulator, target, two_openai,
};

#[tokio::test]
async fn healthy_answer_passes_through_with_the_targets_model_and_usage() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-route"), "test/r");
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    assert_eq!(header(&r, "x-plumb-attempts"), "1");
    assert_eq!(header(&r, "x-plumb-failure-classes"), "");
    assert_eq!(header(&r, "x-plumb-equivalence"), "primary");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["model"], "sim-gpt",
        "the model of the target that answered"
    );
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .ends_with("End of answer.")
    );
    let log = sim.attempts(Some("sim-gpt"));
    assert_eq!(log.len(), 1);
    assert_eq!(
        log[0].key_hint, None,
        "credentials: none sends no key, and never the caller's"
    );
}

#[tokio::test]
async fn the_clients_key_never_reaches_a_target_with_its_own_credentials() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[target("own", "openai", &base, "sim-gpt", "")
            .replace("{none: true}", "{env: TARGET_KEY}")],
        "",
    );
    let sc = Sidecar::start_with(&routes, &[("TARGET_KEY", "sk-target-key-9999")]).unwrap();
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    assert_eq!(
        sim.attempts(Some("sim-gpt"))[0].key_hint.as_deref(),
        Some("9999")
    );
}

#[tokio::test]
async fn passthrough_forwards_the_callers_own_key() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "chat",
        &[target("byok", "openai", &base, "sim-gpt", "")
            .replace("{none: true}", "{passthrough: true}")],
        "",
    );
    let sc = Sidecar::start(&routes);
    assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    assert_eq!(
        sim.attempts(Some("sim-gpt"))[0].key_hint.as_deref(),
        Some("1111")
    );
    // Without a key of its own the caller cannot use a passthrough target.
    let r = client()
        .post(format!("{}/v1/chat/completions", sc.url))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("forwards the caller's key"),
        "{v}"
    );
}

#[tokio::test]
async fn anthropic_clients_reach_anthropic_targets() {
    let sim = simulator().await;
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
        .anthropic(json!({"model": "claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "claude");
    assert!(
        !header(&r, "request-id").is_empty(),
        "the provider's request id passes through"
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["model"], "sim-claude");
    assert_eq!(v["stop_reason"], "end_turn");
    let r = sc
        .anthropic(json!({"model": "claude", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let (text, err) = read_all(r).await;
    assert!(err.is_none());
    let names: Vec<String> = parse_sse(&text)
        .into_iter()
        .filter_map(|e| e.event)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
}

#[tokio::test]
async fn embeddings_and_models_are_served() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "embed",
        &[target("e", "openai", &base, "sim-embed", "")],
        "",
    );
    let sc = Sidecar::start(&routes);
    let r = client()
        .post(format!("{}/v1/embeddings", sc.url))
        .json(&json!({"model": "embed", "input": ["a b", "c d"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    let v: Value = client()
        .get(format!("{}/v1/models", sc.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["data"][0]["id"], "embed");
}

#[tokio::test]
async fn unknown_models_and_paths_get_clear_errors_in_the_clients_format() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let r = sc
        .openai(json!({"model": "gpt-9", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"gpt-9\"")
    );
    let r = sc
        .anthropic(json!({"model": "nope", "max_tokens": 1, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let r = client()
        .post(format!("{}/v2/whatever", sc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = sc.openai(json!({"messages": []})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(format!("{}/v1/chat/completions", sc.url))
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(sim.attempts(None).is_empty(), "nothing reached a provider");
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    sc.openai(chat(false)).send().await.unwrap();
    let get = |p: &str| client().get(format!("{}{p}", sc.admin)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let metrics = get("/metrics").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"plumb_requests_total{route="test/r",api="openai",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"plumb_attempts_total{route="test/r",target="primary",outcome="ok"} 1"#)
    );
    assert!(metrics.contains(r#"plumb_breaker_state{route="test/r",target="primary"} 0"#));
    assert!(metrics.contains("plumb_request_duration_seconds_bucket"));
    assert_eq!(get("/nope").await.unwrap().status(), 404);
}

#[tokio::test]
async fn https_upstreams_are_trusted_through_the_ca_file_and_only_then() {
    let sim = plumb_simulator::Simulator::start(
        plumb_simulator::SimConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        true,
    )
    .await
    .unwrap();
    let base = format!("{}/v1", sim.base_url());
    assert!(base.starts_with("https://"));
    let routes = route(
        "chat",
        &[target("tls", "openai", &base, "sim-gpt", "")],
        "  classes: {connect: {retries: 0}}\n",
    );
    // Without the CA the certificate is refused: a connect failure, classified and reported.
    let sc = Sidecar::start(&routes);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(header(&r, "x-plumb-failure-classes"), "connect");
    drop(sc);
    // With it, the TLS path works.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, sim.ca_pem().unwrap()).unwrap();
    let sc = Sidecar::start_with_args(&routes, &["--ca-file", ca.to_str().unwrap()]);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "tls");
}

#[tokio::test]
async fn h2c_clients_are_served() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let _ = client(); // installs the TLS provider every reqwest client needs
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let r = h2
        .post(format!("{}/v1/chat/completions", sc.url))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
}

#[tokio::test]
async fn metrics_pass_promtool_while_the_sidecar_serves_traffic() {
    let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("promtool is missing: `make tools` installs Debian's prometheus package");
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-overloaded", ""));
    for _ in 0..3 {
        assert_eq!(sc.openai(chat(false)).send().await.unwrap().status(), 200);
    }
    // A stream too, for the time-to-first-token histogram.
    let r = sc.openai(chat(true)).send().await.unwrap();
    let _ = crate::support::read_all(r).await;
    let scrape = client()
        .get(format!("{}/metrics", sc.admin))
        .send()
        .await
        .unwrap();
    assert!(header(&scrape, "content-type").starts_with("text/plain; version=0.0.4"));
    let text = scrape.text().await.unwrap();
    assert!(text.contains(
        "plumb_attempts_total{route=\"test/r\",target=\"primary\",outcome=\"overloaded\"}"
    ));
    assert!(
        text.contains(
            "plumb_time_to_first_token_seconds_count{route=\"test/r\",target=\"fallback\"} 1"
        ),
        "{text}"
    );
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Prometheus itself asks for OpenMetrics and gets it.
    let om = client()
        .get(format!("{}/metrics", sc.admin))
        .header(
            "accept",
            "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert!(header(&om, "content-type").starts_with("application/openmetrics-text"));
    assert!(om.text().await.unwrap().ends_with("# EOF\n"));
}

#[tokio::test]
async fn without_a_tracer_the_clients_trace_context_passes_through() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = sc
        .openai(chat(false))
        .header("traceparent", tp)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sim.attempts(Some("sim-gpt"))[0].traceparent.as_deref(),
        Some(tp)
    );
}
