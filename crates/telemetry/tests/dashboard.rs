//! The chart's Grafana dashboard queries only metrics the sidecar or the operator exposes (a
//! renamed metric fails here, not on somebody's dashboard).

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;

use plumb_telemetry::{
    AttemptLabels, ContractLabels, Metrics, OutcomeLabels, ReloadLabels, RequestLabels,
    RouteLabels, TargetLabels,
};

/// A registry with one sample in every family (empty families are not exposed).
fn populated() -> Metrics {
    let m = Metrics::new();
    let route = || RouteLabels { route: "r".into() };
    let target = || TargetLabels {
        route: "r".into(),
        target: "t".into(),
    };
    let outcome = || OutcomeLabels {
        route: "r".into(),
        target: "t".into(),
        outcome: "ok",
    };
    m.requests
        .get_or_create(&RequestLabels {
            route: "r".into(),
            api: "openai",
            outcome: "ok",
        })
        .inc();
    m.attempts
        .get_or_create(&AttemptLabels {
            route: "r".into(),
            target: "t".into(),
            outcome: "ok",
        })
        .inc();
    m.request_duration.get_or_create(&route()).observe(0.1);
    m.attempt_duration.get_or_create(&target()).observe(0.1);
    m.time_to_first_token.get_or_create(&target()).observe(0.1);
    m.breaker_state.get_or_create(&target()).set(0);
    m.fallback_served.get_or_create(&target()).inc();
    m.retry_budget_exhausted.get_or_create(&route()).inc();
    m.policy_loads
        .get_or_create(&ReloadLabels { result: "applied" })
        .inc();
    m.streams_interrupted.get_or_create(&target()).inc();
    m.contract_failures
        .get_or_create(&ContractLabels {
            route: "r".into(),
            target: "t".into(),
            class: "out_of_bounds",
            check: "rules[0]".into(),
        })
        .inc();
    m.repairs.get_or_create(&outcome()).inc();
    m.model_substitutions.get_or_create(&target()).inc();
    m.shadow_comparisons.get_or_create(&outcome()).inc();
    m.skipped_targets.get_or_create(&outcome()).inc();
    m.shadow_skipped.get_or_create(&route()).inc();
    m.failover_equivalence.get_or_create(&outcome()).inc();
    m
}

/// The operator's registry with one sample in every family the dashboard may query.
fn operator_populated() -> plumb_telemetry::operator::OperatorMetrics {
    use plumb_telemetry::operator::{NamespaceLabels, ResultLabels};
    let m = plumb_telemetry::operator::OperatorMetrics::new();
    let ns = || NamespaceLabels {
        namespace: "team-a".into(),
    };
    m.reconciles
        .get_or_create(&ResultLabels { result: "ok" })
        .inc();
    m.connected_sidecars.get_or_create(&ns()).set(1);
    m.push_seconds.observe(0.01);
    m.knowledge_reports.inc();
    m.knowledge_pushes.get_or_create(&ns()).inc();
    m.open_upstreams.get_or_create(&ns()).set(0);
    m.knowledge_status_writes
        .get_or_create(&ResultLabels { result: "ok" })
        .inc();
    m
}

/// The metric families an exposition holds, with the sample suffixes Prometheus adds.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_owned(), it.next()?.to_owned()))
        })
        .flat_map(|(name, kind)| match kind.as_str() {
            // OpenMetrics names the family without `_total`; the Prometheus text format with.
            "counter" if name.ends_with("_total") => vec![name],
            "counter" => vec![format!("{name}_total")],
            "histogram" => ["_bucket", "_count", "_sum"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => vec![name],
        })
        .collect()
}

#[test]
fn every_dashboard_query_names_an_exposed_metric() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/plumb/dashboards/plumb.json"
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut families = families(&populated().encode());
    families.extend(self::families(&operator_populated().encode_for(None).0));
    let mut queried = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.starts_with("plumb_") {
                    queried += 1;
                    assert!(
                        families.contains(word),
                        "panel {:?} queries {word}, which neither the sidecar nor the operator exposes",
                        panel["title"]
                    );
                }
            }
        }
    }
    assert!(queried >= 10, "{queried}");
    let titles: Vec<&str> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["title"].as_str())
        .collect();
    for needed in [
        "failure class",
        "fallback",
        "breaker",
        "latency",
        "first token",
    ] {
        assert!(
            titles.iter().any(|t| t.to_lowercase().contains(needed)),
            "no panel about {needed}: {titles:?}"
        );
    }
}
