//! Correctover: shadow sampling certifies fallbacks, and failover follows the route's mode —
//! `enforce` never serves an uncertified candidate, `observe` reports the certification of
//! every failed-over answer — within the shadow budget, with each comparison method.

use serde_json::{Value, json};

use crate::support::{
    Sidecar, attempts, chat, client, eventually, header, metrics, plan, route, simulator, target,
};

/// A primary (`sim-gpt`), a fallback that answers like it (`same`, `sim-gpt-mini`) and one that
/// answers differently (`alt`, `sim-gpt-alt`, tried first), plus `extra` under `spec`.
fn routes(sim: &plumb_simulator::Simulator, extra: &str) -> String {
    let base = format!("{}/v1", sim.base_url());
    route(
        "chat",
        &[
            target("primary", "openai", &base, "sim-gpt", ""),
            target("alt", "openai", &base, "sim-gpt-alt", "      priority: 1\n"),
            target(
                "same",
                "openai",
                &base,
                "sim-gpt-mini",
                "      priority: 2\n",
            ),
        ],
        extra,
    )
}

/// The samples of each candidate, from the admin endpoint.
async fn samples(admin: &str) -> Vec<(String, u64, u64)> {
    let v: Value = client()
        .get(format!("{admin}/equivalence"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["candidate"].as_str().unwrap().to_owned(),
                p["agreements"].as_u64().unwrap(),
                p["samples"].as_u64().unwrap(),
            )
        })
        .collect()
}

async fn samples_of(admin: &str, model: &str) -> (u64, u64) {
    samples(admin)
        .await
        .into_iter()
        .find(|(m, _, _)| m == model)
        .map_or((0, 0), |(_, a, n)| (a, n))
}

/// Sends healthy requests until both candidates have `n` samples (bounded).
async fn warm_up(sc: &Sidecar, n: u64) {
    for _ in 0..200 {
        let (_, alt) = samples_of(&sc.admin, "sim-gpt-alt").await;
        let (_, same) = samples_of(&sc.admin, "sim-gpt-mini").await;
        if alt >= n && same >= n {
            return;
        }
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(header(&r, "x-plumb-equivalence"), "primary");
    }
    panic!("shadow sampling did not reach {n} samples per candidate");
}

/// Every healthy answer shadowed; certified from 5 samples at a lower bound of 0.5; exact text.
fn certified_after_five(mode: &str) -> String {
    format!(
        "  equivalence:\n    mode: {mode}\n    threshold: 0.5\n    minSamples: 5\n    method: {{kind: exact}}\n{SHADOW}"
    )
}

/// The primary (`sim-gpt`) answers 500 to everything.
fn primary_down(sim: &plumb_simulator::Simulator) {
    plan(
        sim,
        "sim-gpt",
        json!({"fault": "server_error", "share": 1.0}),
    );
}

const SHADOW: &str = "    shadow: {rate: 1.0, maxConcurrent: 4, requestsPerMinute: 1000}\n";

#[tokio::test]
async fn enforce_serves_only_a_certified_fallback_and_never_one_that_answers_differently() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(&sim, &certified_after_five("enforce")));
    // Nothing is certified yet: the outage is refused, with the reason.
    primary_down(&sim);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("alt: skipped (not certified as equivalent: 0 of the 5 samples needed)"),
        "{msg}"
    );
    assert!(sim.attempts(Some("sim-gpt-alt")).is_empty());
    assert!(sim.attempts(Some("sim-gpt-mini")).is_empty());

    // Healthy traffic certifies `same` and not `alt`.
    sim.reset();
    warm_up(&sc, 5).await;
    let (agree_alt, _) = samples_of(&sc.admin, "sim-gpt-alt").await;
    assert_eq!(agree_alt, 0, "the alt persona never agrees");
    let (agree_same, n_same) = samples_of(&sc.admin, "sim-gpt-mini").await;
    assert_eq!(agree_same, n_same);

    // The outage again: `alt` is skipped although it comes first, `same` answers.
    let alt_before = attempts(&sim, "sim-gpt-alt").await.len();
    primary_down(&sim);
    for _ in 0..5 {
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-plumb-served-by"), "same");
        let e = header(&r, "x-plumb-equivalence");
        assert!(e.starts_with("certified; agreement=1.00; lower="), "{e}");
        let text = r.json::<Value>().await.unwrap()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(text.contains("forty-two"), "{text}");
    }
    assert_eq!(
        attempts(&sim, "sim-gpt-alt").await.len(),
        alt_before,
        "the uncertified candidate was never asked during the outage"
    );
    let m = metrics(&sc.admin).await;
    assert!(
        m.contains(
            r#"plumb_failover_equivalence_total{route="test/r",target="alt",outcome="refused"}"#
        ),
        "{m}"
    );
}

#[tokio::test]
async fn observe_fails_over_and_reports_the_certification_of_every_failed_over_answer() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(&sim, &certified_after_five("observe")));
    primary_down(&sim);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "alt");
    assert_eq!(header(&r, "x-plumb-equivalence"), "uncertified; n=0");
    sim.reset();
    warm_up(&sc, 5).await;
    let (_, n) = samples_of(&sc.admin, "sim-gpt-alt").await;
    primary_down(&sim);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(
        header(&r, "x-plumb-served-by"),
        "alt",
        "observe does not gate"
    );
    let e = header(&r, "x-plumb-equivalence");
    assert!(e.starts_with("uncertified; n="), "{e}");
    assert!(
        e.trim_start_matches("uncertified; n=")
            .parse::<u64>()
            .unwrap()
            >= n
    );
    // A route in `off` mode says certification was not required.
    let sc = Sidecar::start(&routes(&sim, ""));
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "alt");
    assert_eq!(header(&r, "x-plumb-equivalence"), "not-required");
}

#[tokio::test]
async fn the_shadow_budget_is_never_exceeded() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(
        &sim,
        "  equivalence:\n    mode: observe\n    shadow: {rate: 1.0, maxConcurrent: 8, requestsPerMinute: 6}\n",
    ));
    for _ in 0..20 {
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert!(
        eventually(|| async {
            metrics(&sc.admin)
                .await
                .contains(r#"plumb_shadow_skipped_total{route="test/r"}"#)
        })
        .await
    );
    let sent =
        || sim.attempts(Some("sim-gpt-alt")).len() + sim.attempts(Some("sim-gpt-mini")).len();
    assert!(
        eventually(|| async { sent() >= 2 }).await,
        "some shadows were sent"
    );
    let shadows =
        attempts(&sim, "sim-gpt-alt").await.len() + attempts(&sim, "sim-gpt-mini").await.len();
    assert!(
        shadows <= 6,
        "{shadows} shadow requests for a budget of 6 per minute"
    );
}

#[tokio::test]
async fn a_route_that_forbids_downgrades_never_leaves_the_primary_group() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(&sim, "  equivalence: {downgrades: forbid}\n"));
    primary_down(&sim);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("forbids downgrades")
    );
    assert!(sim.attempts(Some("sim-gpt-alt")).is_empty());
}

#[tokio::test]
async fn certification_converges_with_the_default_threshold() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(
        &sim,
        &format!("  equivalence:\n    mode: enforce\n    method: {{kind: exact}}\n{SHADOW}"),
    ));
    // The default threshold (Wilson lower bound ≥ 0.9) with every sample agreeing needs 35
    // samples; 36 leaves room for shadows still in flight.
    warm_up(&sc, 36).await;
    primary_down(&sim);
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "same");
    let e = header(&r, "x-plumb-equivalence").to_owned();
    let n: u64 = e.rsplit("n=").next().unwrap().parse().unwrap();
    assert!(e.starts_with("certified; agreement=1.00; lower=0.9"), "{e}");
    assert!(n >= 35, "{e}");
}

#[tokio::test]
async fn the_judge_and_embedding_methods_tell_agreeing_from_differing_candidates() {
    for (method, helper) in [
        ("{kind: judge, target: judge}", "sim-judge"),
        (
            "{kind: embedding, target: embed, minSimilarity: 0.95}",
            "sim-embed",
        ),
    ] {
        let sim = simulator().await;
        let base = format!("{}/v1", sim.base_url());
        let name = if helper == "sim-judge" {
            "judge"
        } else {
            "embed"
        };
        let sc = Sidecar::start(&route(
            "chat",
            &[
                target("primary", "openai", &base, "sim-gpt", ""),
                target("alt", "openai", &base, "sim-gpt-alt", "      priority: 1\n"),
                target(
                    "same",
                    "openai",
                    &base,
                    "sim-gpt-mini",
                    "      priority: 2\n",
                ),
                target(name, "openai", &base, helper, "      priority: 3\n"),
            ],
            &format!("  equivalence:\n    mode: observe\n    method: {method}\n{SHADOW}"),
        ));
        warm_up(&sc, 3).await;
        let (agree_alt, n_alt) = samples_of(&sc.admin, "sim-gpt-alt").await;
        let (agree_same, n_same) = samples_of(&sc.admin, "sim-gpt-mini").await;
        assert_eq!(agree_alt, 0, "{method}: alt agreed {agree_alt}/{n_alt}");
        assert_eq!(agree_same, n_same, "{method}");
        assert!(
            !attempts(&sim, helper).await.is_empty(),
            "{method}: helper called"
        );
        // The helper serves comparisons only: an outage of everything else does not reach it.
        plan(&sim, "*", json!({"fault": "server_error", "share": 1.0}));
        let r = sc.openai(chat(false)).send().await.unwrap();
        assert_eq!(r.status(), 502);
        let helper_log = sim.attempts(Some(helper));
        assert!(
            helper_log.iter().all(|a| a.status != 500),
            "{method}: the helper got client traffic"
        );
    }
}

#[tokio::test]
async fn streamed_answers_are_sampled_once_their_stream_completes() {
    let sim = simulator().await;
    let sc = Sidecar::start(&routes(
        &sim,
        &format!("  equivalence:\n    mode: observe\n    method: {{kind: exact}}\n{SHADOW}"),
    ));
    for _ in 0..3 {
        let r = sc.openai(chat(true)).send().await.unwrap();
        assert_eq!(header(&r, "x-plumb-equivalence"), "primary");
        let (text, err) = crate::support::read_all(r).await;
        assert!(err.is_none() && text.contains("[DONE]"));
    }
    assert!(
        eventually(|| async {
            samples_of(&sc.admin, "sim-gpt-mini").await.1 >= 3
                && samples_of(&sc.admin, "sim-gpt-alt").await.1 >= 3
        })
        .await
    );
    let (agree, n) = samples_of(&sc.admin, "sim-gpt-mini").await;
    assert_eq!(
        agree, n,
        "the streamed text equals the candidate's whole answer"
    );
    assert_eq!(samples_of(&sc.admin, "sim-gpt-alt").await.0, 0);
    // The shadow requests themselves were not streamed.
    assert!(
        attempts(&sim, "sim-gpt-mini")
            .await
            .iter()
            .all(|a| !a.stream)
    );
}
