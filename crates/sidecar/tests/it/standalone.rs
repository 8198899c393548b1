//! Routes files: reload without dropping requests, rejection of a bad file, start-up errors,
//! and the drain on SIGTERM.

use std::time::Duration;

use serde_json::json;

use crate::support::{Sidecar, chat, header, route, simulator, target, two_openai};

#[tokio::test]
async fn a_changed_file_is_applied_and_a_bad_one_keeps_the_last_good_routes() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    assert_eq!(
        header(
            &sc.openai(chat(false)).send().await.unwrap(),
            "x-plumb-served-by"
        ),
        "primary"
    );

    // A valid change: a new primary.
    let base = format!("{}/v1", sim.base_url());
    std::fs::write(
        sc.routes_path(),
        route(
            "chat",
            &[target("renamed", "openai", &base, "sim-gpt-alt", "")],
            "",
        ),
    )
    .unwrap();
    let mut served = String::new();
    for _ in 0..100 {
        let r = sc.openai(chat(false)).send().await.unwrap();
        served = header(&r, "x-plumb-served-by").to_owned();
        if served == "renamed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, "renamed");

    // An invalid change: rejected, the last good routes keep serving.
    std::fs::write(sc.routes_path(), "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: []}\n  targets: []\n").unwrap();
    let rejected = r#"plumb_policy_loads_total{result="rejected"} 1"#;
    assert!(
        crate::support::eventually(|| async {
            crate::support::metrics(&sc.admin).await.contains(rejected)
        })
        .await
    );
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "renamed");
    let metrics = crate::support::client()
        .get(format!("{}/metrics", sc.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"plumb_policy_loads_total{result="rejected"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"plumb_policy_loads_total{result="applied"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn reloads_do_not_drop_requests_in_flight() {
    let sim = simulator().await;
    let sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let slow = {
        let req = sc.openai(chat(false)).header("x-unused", "1");
        // Latency on the primary only while the reload happens.
        crate::support::plan(
            &sim,
            "sim-gpt",
            json!({"fault": "slow_first_byte:delay=800ms", "first": 1}),
        );
        tokio::spawn(req.send())
    };
    // The request has reached the primary, which holds its answer back.
    assert!(
        crate::support::eventually(|| async { !sim.attempts(Some("sim-gpt")).is_empty() }).await
    );
    let base = format!("{}/v1", sim.base_url());
    std::fs::write(
        sc.routes_path(),
        route(
            "chat",
            &[target("next", "openai", &base, "sim-gpt-alt", "")],
            "",
        ),
    )
    .unwrap();
    let r = slow.await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "primary",
        "the request keeps the policy it started with"
    );
}

#[test]
fn an_invalid_file_at_start_exits_64_with_one_clear_line() {
    let bad = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets:\n    - {name: a, provider: openai, baseUrl: 'ftp://x', model: m, credentials: {none: true}}\n";
    let (code, err) = Sidecar::start_with(bad, &[]).err().expect("must not start");
    assert_eq!(code, Some(64));
    let line = err
        .lines()
        .find(|l| l.contains("invalid configuration"))
        .unwrap_or_default();
    assert!(line.contains("spec.targets[0].baseUrl"), "{err}");
    assert!(line.contains("http:// or https://"), "{err}");

    let missing_key = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets:\n    - {name: a, provider: openai, baseUrl: 'http://x/v1', model: m, credentials: {env: PLUMB_TEST_UNSET_KEY}}\n";
    let (code, err) = Sidecar::start_with(missing_key, &[])
        .err()
        .expect("must not start");
    assert_eq!(code, Some(64));
    assert!(err.contains("PLUMB_TEST_UNSET_KEY is not set"), "{err}");
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let sim = simulator().await;
    crate::support::plan(
        &sim,
        "sim-gpt",
        json!({"fault": "slow_first_byte:delay=700ms", "first": 1}),
    );
    let mut sc = Sidecar::start(&two_openai(&sim, "sim-gpt", ""));
    let inflight = tokio::spawn(sc.openai(chat(false)).send());
    assert!(
        crate::support::eventually(|| async { !sim.attempts(Some("sim-gpt")).is_empty() }).await
    );
    sc.signal("TERM");
    let r = inflight.await.unwrap().unwrap();
    assert_eq!(r.status(), 200, "the in-flight request finished");
    let status = tokio::task::spawn_blocking(move || {
        let s = sc.child.wait().unwrap();
        (s, sc)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(status.code(), Some(0));
}
