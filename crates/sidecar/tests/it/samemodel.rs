//! Targets declared the same model (`spec.sameModel`): they stand in for each other without
//! certification, say `x-plumb-equivalence: same-model`, and are the only failover an
//! embeddings request ever takes — another embedding model's vectors would corrupt the caller's
//! index, so such a fallback is skipped by name and the primary's failure is returned.

use serde_json::{Value, json};

use crate::support::{
    Sidecar, attempts, chat, client, eventually, header, metrics, plan, route, simulator, target,
};

/// An embeddings route: `primary` runs `sim-embed`, `other` (priority 1) `sim-embed-other`,
/// plus `extra` under `spec`.
fn embeddings_route(sim: &plumb_simulator::Simulator, extra: &str) -> String {
    let base = format!("{}/v1", sim.base_url());
    route(
        "embed",
        &[
            target("primary", "openai", &base, "sim-embed", ""),
            target(
                "other",
                "openai",
                &base,
                "sim-embed-other",
                "      priority: 1\n",
            ),
        ],
        extra,
    )
}

async fn embed(sc: &Sidecar) -> reqwest::Response {
    client()
        .post(format!("{}/v1/embeddings", sc.url))
        .json(&json!({"model": "embed", "input": ["a b", "c d"]}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn embeddings_never_fail_over_to_another_model_and_the_client_gets_the_primarys_failure() {
    let sim = simulator().await;
    let sc = Sidecar::start(&embeddings_route(&sim, ""));
    plan(
        &sim,
        "sim-embed",
        json!({"fault": "server_error", "share": 1.0}),
    );
    let r = embed(&sc).await;
    assert_eq!(r.status(), 502, "not a 200 from another model");
    let classes = header(&r, "x-plumb-failure-classes").to_owned();
    assert!(
        !classes.is_empty() && classes.split(',').all(|c| c == "server_error"),
        "{classes}"
    );
    assert_eq!(header(&r, "x-plumb-served-by"), "");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "server_error");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains(
            "other: skipped (embeddings fail over only to the same model, and it is not declared sameModel with primary)"
        ),
        "{msg}"
    );
    assert!(!attempts(&sim, "sim-embed").await.is_empty());
    assert!(
        attempts(&sim, "sim-embed-other").await.is_empty(),
        "the other model was never asked"
    );
    let m = metrics(&sc.admin).await;
    assert!(
        m.contains(r#"target="other",outcome="other_model"} 1"#),
        "{m}"
    );
}

#[tokio::test]
async fn embeddings_fail_over_to_a_target_declared_the_same_model_and_say_so() {
    let sim = simulator().await;
    let sc = Sidecar::start(&embeddings_route(&sim, "  sameModel: [[primary, other]]\n"));
    plan(
        &sim,
        "sim-embed",
        json!({"fault": "server_error", "share": 1.0}),
    );
    let r = embed(&sc).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "other");
    assert_eq!(header(&r, "x-plumb-equivalence"), "same-model");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(attempts(&sim, "sim-embed-other").await.len(), 1);
}

#[tokio::test]
async fn a_healthy_embeddings_primary_answers_whatever_its_fallbacks_are() {
    let sim = simulator().await;
    let sc = Sidecar::start(&embeddings_route(&sim, ""));
    let r = embed(&sc).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    assert_eq!(header(&r, "x-plumb-equivalence"), "primary");
}

#[tokio::test]
async fn embedding_targets_not_declared_the_same_model_are_a_warning_in_the_log() {
    let sim = simulator().await;
    // Warnings are logged before "routes loaded".
    let logged = |sc: &Sidecar| String::from_utf8_lossy(&sc.logs.lock()).into_owned();
    let sc = Sidecar::start(&embeddings_route(&sim, ""));
    assert!(eventually(|| async { logged(&sc).contains("routes loaded") }).await);
    let logs = logged(&sc);
    assert!(
        logs.contains(
            "the targets run 2 models not declared the same: [primary (sim-embed)] and [other (sim-embed-other)]"
        ),
        "{logs}"
    );
    let declared = Sidecar::start(&embeddings_route(&sim, "  sameModel: [[primary, other]]\n"));
    assert!(eventually(|| async { logged(&declared).contains("routes loaded") }).await);
    assert!(!logged(&declared).contains("route warning"));
}

#[tokio::test]
async fn chat_fails_over_to_a_same_model_target_without_certification_even_under_enforce() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    // `alt` comes first but is another model and uncertified; `twin` is the primary's model
    // on another provider, declared so.
    let routes = route(
        "chat",
        &[
            target("primary", "openai", &base, "sim-gpt", ""),
            target("alt", "openai", &base, "sim-gpt-alt", "      priority: 1\n"),
            target(
                "twin",
                "openai-compatible",
                &base,
                "sim-gpt-mini",
                "      priority: 2\n",
            ),
        ],
        "  equivalence: {mode: enforce, downgrades: forbid}\n  sameModel: [[primary, twin]]\n",
    );
    let sc = Sidecar::start(&routes);
    plan(
        &sim,
        "sim-gpt",
        json!({"fault": "server_error", "share": 1.0}),
    );
    for stream in [false, true] {
        let r = sc.openai(chat(stream)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "twin");
        assert_eq!(header(&r, "x-plumb-equivalence"), "same-model");
    }
    assert!(
        attempts(&sim, "sim-gpt-alt").await.is_empty(),
        "the uncertified other model was skipped"
    );
    let m = metrics(&sc.admin).await;
    assert!(
        m.contains(
            r#"plumb_failover_equivalence_total{route="test/r",target="twin",outcome="same_model"} 2"#
        ),
        "{m}"
    );
}

#[tokio::test]
async fn a_primary_that_cannot_take_the_input_is_not_replaced_by_another_model() {
    let sim = simulator().await;
    let base = format!("{}/v1", sim.base_url());
    let routes = route(
        "embed",
        &[
            target(
                "primary",
                "openai",
                &base,
                "sim-embed",
                "      capabilities: {contextWindow: 64}\n",
            ),
            target(
                "other",
                "openai",
                &base,
                "sim-embed-other",
                "      priority: 1\n",
            ),
        ],
        "",
    );
    let sc = Sidecar::start(&routes);
    let long = "many words ".repeat(200);
    let r = client()
        .post(format!("{}/v1/embeddings", sc.url))
        .json(&json!({"model": "embed", "input": [long]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        400,
        "the caller's to change, not another model's vectors"
    );
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("primary: skipped (context window 64"), "{msg}");
    assert!(
        msg.contains("other: skipped (embeddings fail over only to the same model, and it is not declared sameModel with primary)"),
        "{msg}"
    );
    assert!(attempts(&sim, "sim-embed-other").await.is_empty());
    assert!(attempts(&sim, "sim-embed").await.is_empty());
}
