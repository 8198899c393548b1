//! `plumb-telemetry`: the one metrics registry, the metric and label names every binary uses,
//! log set-up, the wall clock as the wire speaks it ([`clock`]), and the wait for the signal to
//! stop ([`shutdown`]): what every binary sets up the same way.
//!
//! Label values are bounded: route and target names come from configuration, failure classes
//! and outcomes from fixed enums; never request ids, models asked by clients, or free text.

use std::fmt::Write as _;

pub mod clock;
pub mod operator;
pub mod otel;
pub mod shutdown;
pub mod throttle;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of a client request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `namespace/name` of the route, or `none` when no route matched.
    pub route: String,
    /// `openai` or `anthropic`: the client's API.
    pub api: &'static str,
    /// `ok`, or the failure class the client was answered with.
    pub outcome: &'static str,
}

/// Labels of one attempt on one target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    /// The route.
    pub route: String,
    /// The target's name.
    pub target: String,
    /// `ok` or the failure class.
    pub outcome: &'static str,
}

/// Labels naming a route's target.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TargetLabels {
    /// The route.
    pub route: String,
    /// The target's name.
    pub target: String,
}

/// Labels naming a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route.
    pub route: String,
}

/// Labels of a contract failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ContractLabels {
    /// The route.
    pub route: String,
    /// The target whose answer failed.
    pub target: String,
    /// `schema_violation` or `out_of_bounds`.
    pub class: &'static str,
    /// The check that failed (`schema`, `rules[0]`…), bounded by the route's contract.
    pub check: String,
}

/// Labels of a repair or an equivalence verdict.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The route.
    pub route: String,
    /// The target.
    pub target: String,
    /// A fixed outcome: `repaired`/`failed` for repairs; `agree`/`disagree`/`error` for
    /// shadow comparisons; `certified`/`uncertified`/`refused`/`not_required`/`same_model` for
    /// failovers.
    pub outcome: &'static str,
}

/// Labels of a policy load.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `applied` or `rejected`.
    pub result: &'static str,
}

/// Every metric of the data plane.
pub struct Metrics {
    registry: Registry,
    /// `plumb_requests_total`: client requests by route, API and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// `plumb_attempts_total`: attempts by route, target and outcome.
    pub attempts: Family<AttemptLabels, Counter>,
    /// `plumb_request_duration_seconds`: from the request to the answer (a stream: its commit).
    pub request_duration: Family<RouteLabels, Histogram>,
    /// `plumb_attempt_duration_seconds`: one attempt, to its response head or failure.
    pub attempt_duration: Family<TargetLabels, Histogram>,
    /// `plumb_time_to_first_token_seconds`: for streams, from the attempt's start to the
    /// moment its first token is committed to the client.
    pub time_to_first_token: Family<TargetLabels, Histogram>,
    /// `plumb_breaker_state`: 0 closed, 1 half-open, 2 open.
    pub breaker_state: Family<TargetLabels, Gauge>,
    /// `plumb_fallback_served_total`: answers served by a target other than the first tried.
    pub fallback_served: Family<TargetLabels, Counter>,
    /// `plumb_retry_budget_exhausted_total`: retries refused by the retry budget.
    pub retry_budget_exhausted: Family<RouteLabels, Counter>,
    /// `plumb_policy_loads_total`: policy loads by result.
    pub policy_loads: Family<ReloadLabels, Counter>,
    /// `plumb_streams_interrupted_total`: streams ended with an error event after commit.
    pub streams_interrupted: Family<TargetLabels, Counter>,
    /// `plumb_contract_failures_total`: answers that broke the route's contract.
    pub contract_failures: Family<ContractLabels, Counter>,
    /// `plumb_repairs_total`: repair attempts by outcome.
    pub repairs: Family<OutcomeLabels, Counter>,
    /// `plumb_model_substitutions_total`: answers naming another model than asked for.
    pub model_substitutions: Family<TargetLabels, Counter>,
    /// `plumb_shadow_comparisons_total`: shadow comparisons of a candidate by verdict.
    pub shadow_comparisons: Family<OutcomeLabels, Counter>,
    /// `plumb_shadow_skipped_total`: sampled shadows not sent because a limit was reached.
    pub shadow_skipped: Family<RouteLabels, Counter>,
    /// `plumb_failover_equivalence_total`: failed-over answers (and refusals) by certification.
    pub failover_equivalence: Family<OutcomeLabels, Counter>,
    /// `plumb_streams_held_total{route,target}`: streamed attempts held before commit because
    /// their upstream's recent streams broke (the adaptive hold).
    pub streams_held: Family<TargetLabels, Counter>,
    /// `plumb_skipped_targets_total{route,target,outcome}`: targets passed over without an
    /// attempt, by why (`breaker_open`, `fleet_open`, `rate_limited`, `unfit`, `ruled_out`,
    /// `uncertified`, `downgrade`, `no_caller_key`, `other_model`).
    pub skipped_targets: Family<OutcomeLabels, Counter>,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        120.0,
    ]
    .into_iter()
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let attempts = Family::<AttemptLabels, Counter>::default();
        let request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        let attempt_duration = Family::<TargetLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        let time_to_first_token = Family::<TargetLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        let breaker_state = Family::<TargetLabels, Gauge>::default();
        let fallback_served = Family::<TargetLabels, Counter>::default();
        let retry_budget_exhausted = Family::<RouteLabels, Counter>::default();
        let policy_loads = Family::<ReloadLabels, Counter>::default();
        let streams_interrupted = Family::<TargetLabels, Counter>::default();
        let contract_failures = Family::<ContractLabels, Counter>::default();
        let repairs = Family::<OutcomeLabels, Counter>::default();
        let model_substitutions = Family::<TargetLabels, Counter>::default();
        let shadow_comparisons = Family::<OutcomeLabels, Counter>::default();
        let shadow_skipped = Family::<RouteLabels, Counter>::default();
        let failover_equivalence = Family::<OutcomeLabels, Counter>::default();
        let skipped_targets = Family::<OutcomeLabels, Counter>::default();
        let streams_held = Family::<TargetLabels, Counter>::default();
        registry.register(
            "plumb_requests",
            "Client requests by route, API and outcome",
            requests.clone(),
        );
        registry.register(
            "plumb_attempts",
            "Upstream attempts by route, target and outcome",
            attempts.clone(),
        );
        registry.register(
            "plumb_request_duration_seconds",
            "Time from a client request to its answer (a stream: to its first event)",
            request_duration.clone(),
        );
        registry.register(
            "plumb_attempt_duration_seconds",
            "Time of one upstream attempt to its response head or failure",
            attempt_duration.clone(),
        );
        registry.register(
            "plumb_time_to_first_token_seconds",
            "For streams: time from an attempt's start to its first token reaching the client",
            time_to_first_token.clone(),
        );
        registry.register(
            "plumb_breaker_state",
            "Circuit breaker state per target: 0 closed, 1 half-open, 2 open",
            breaker_state.clone(),
        );
        registry.register(
            "plumb_fallback_served",
            "Answers served by a target other than the first one tried",
            fallback_served.clone(),
        );
        registry.register(
            "plumb_retry_budget_exhausted",
            "Same-target retries refused because the route's retry budget was spent",
            retry_budget_exhausted.clone(),
        );
        registry.register(
            "plumb_policy_loads",
            "Policy loads by result",
            policy_loads.clone(),
        );
        registry.register(
            "plumb_streams_interrupted",
            "Streams ended with an explicit error event after reaching the client",
            streams_interrupted.clone(),
        );
        registry.register(
            "plumb_contract_failures",
            "Answers that broke the route's contract, by target, class and check",
            contract_failures.clone(),
        );
        registry.register(
            "plumb_repairs",
            "Repair attempts (the same target re-asked with the contract's complaint) by outcome",
            repairs.clone(),
        );
        registry.register(
            "plumb_model_substitutions",
            "Answers that named another model than the target was asked for",
            model_substitutions.clone(),
        );
        registry.register(
            "plumb_shadow_comparisons",
            "Shadow comparisons of a fallback candidate with the primary, by verdict",
            shadow_comparisons.clone(),
        );
        registry.register(
            "plumb_shadow_skipped",
            "Sampled shadow requests not sent because a concurrency or budget limit was reached",
            shadow_skipped.clone(),
        );
        registry.register(
            "plumb_streams_held",
            "Streamed attempts held before commit because their upstream's recent streams broke",
            streams_held.clone(),
        );
        registry.register(
            "plumb_failover_equivalence",
            "Failed-over answers and refused failovers by the candidate's certification",
            failover_equivalence.clone(),
        );
        registry.register(
            "plumb_skipped_targets",
            "Targets passed over without an attempt, by why (outcome)",
            skipped_targets.clone(),
        );
        Metrics {
            registry,
            requests,
            attempts,
            request_duration,
            attempt_duration,
            time_to_first_token,
            breaker_state,
            fallback_served,
            retry_budget_exhausted,
            policy_loads,
            streams_interrupted,
            contract_failures,
            repairs,
            model_substitutions,
            shadow_comparisons,
            shadow_skipped,
            failover_equivalence,
            skipped_targets,
            streams_held,
        }
    }

    /// The exposition in the format a scraper asked for: OpenMetrics when its `Accept` header
    /// names it, else the Prometheus text format 0.0.4. Returns the body and its content type.
    pub fn encode_for(&self, accept: Option<&str>) -> (String, &'static str) {
        encode_registry_for(&self.registry, accept)
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        encode_registry(&self.registry)
    }
}

fn encode_registry(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        out.clear();
        let _ = writeln!(out, "# metrics could not be encoded");
    }
    out
}

/// A registry's exposition in the format a scraper asked for.
fn encode_registry_for(registry: &Registry, accept: Option<&str>) -> (String, &'static str) {
    let text = encode_registry(registry);
    if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
        (
            text,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            openmetrics_to_prometheus(&text),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    }
}

/// Rewrites OpenMetrics text as Prometheus text format 0.0.4: counters' metadata names carry
/// the `_total` suffix their samples carry, and there is no `# EOF`.
pub fn openmetrics_to_prometheus(text: &str) -> String {
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE ", "# UNIT "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match rewritten {
            Some(r) if !r.starts_with("# UNIT ") => out.push_str(r.trim_end()),
            Some(_) => continue,
            None if line.starts_with("# UNIT ") => continue,
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Sets up logging on standard error: `text` or `json`, filtered by `RUST_LOG` (default
/// `info`).
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_encode_with_their_names_and_labels() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "default/chat".into(),
                api: "openai",
                outcome: "ok",
            })
            .inc();
        m.breaker_state
            .get_or_create(&TargetLabels {
                route: "default/chat".into(),
                target: "a".into(),
            })
            .set(2);
        let text = m.encode();
        assert!(
            text.contains(
                r#"plumb_requests_total{route="default/chat",api="openai",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"plumb_breaker_state{route="default/chat",target="a"} 2"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn prometheus_text_names_counter_metadata_with_total_and_has_no_eof() {
        let m = Metrics::new();
        m.requests
            .get_or_create(&RequestLabels {
                route: "r".into(),
                api: "openai",
                outcome: "ok",
            })
            .inc();
        let (text, content_type) = m.encode_for(Some("text/plain"));
        assert!(content_type.starts_with("text/plain; version=0.0.4"));
        assert!(text.contains("# HELP plumb_requests_total Client requests"));
        assert!(text.contains("# TYPE plumb_requests_total counter"));
        assert!(!text.contains("# EOF"));
        let (om, content_type) = m.encode_for(Some("application/openmetrics-text; version=1.0.0"));
        assert!(content_type.starts_with("application/openmetrics-text"));
        assert!(om.ends_with("# EOF\n"));
    }
}
