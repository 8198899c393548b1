//! What the control plane reports of a route: the `status` the operator writes from the
//! sidecars' reports (conditions, targets' health and learned timings, breakers, the
//! equivalence gate, the sidecars that applied or refused it).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What the control plane observed of a route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmRouteStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Accepted`, `Programmed` and `Degraded`, with reasons and messages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// How many targets the accepted spec has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_count: Option<u32>,
    /// Healthy targets out of all, e.g. `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<String>,
    /// The generation the sidecars are given: the observed one when it was accepted, else the
    /// last good one, which keeps serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_generation: Option<i64>,
    /// What the connected sidecars of the namespace run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sidecars: Option<SidecarsStatus>,
    /// What the accepted spec does that is probably not meant (it serves anyway): for example
    /// embedding targets not declared `sameModel`, between which embeddings never fail over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the fleet knows of each target: merged from every sidecar's reports, written at a
    /// bounded rate and only on material change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetStatus>,
}

/// The fleet's knowledge of one target.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    /// The target's name.
    pub name: String,
    /// The upstream it calls; targets of any route that call the same upstream share its
    /// health.
    pub upstream: UpstreamStatus,
    /// `Healthy`; `Degraded` (half or more of its attempts failed in the last minute); `Open`
    /// (skipped by every sidecar until the elected prober finds it healthy); `RateLimited`
    /// (nobody sends before `rateLimitedUntil`); `Unknown` (no report yet).
    pub state: String,
    /// Why, in a sentence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Since when it is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_since: Option<String>,
    /// The end of the provider's rate-limit window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited_until: Option<String>,
    /// Attempts in the last minute, fleet-wide.
    #[serde(default)]
    pub attempts: u64,
    /// Failed attempts out of all in the last minute (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Failed attempts in the last minute by failure class.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Attempt latency percentiles in the last minute, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyStatus>,
    /// Sidecars whose own breaker for the upstream is open, out of those reporting on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakers: Option<BreakersStatus>,
    /// The fleet's equivalence tally of this target against the route's primaries (targets
    /// outside the primary's priority group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalence: Option<EquivalenceStatus>,
    /// The first-token deadline the fleet's recent first tokens of this upstream call for,
    /// and what it is learned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token: Option<FirstTokenStatus>,
    /// The time per output token the fleet's recent answers of this upstream call for, on
    /// which its unstreamed requests' deadlines grow with `max_tokens`, and what it is
    /// learned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_time: Option<TokenTimeStatus>,
    /// Streamed attempts held before commit in the last minute because the upstream's recent
    /// streams broke (`streaming.adaptiveHold`), fleet-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams_held: Option<u64>,
}

/// A learned first-token deadline.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FirstTokenStatus {
    /// The deadline in force, in milliseconds: the route's `deadlines.adaptive.multiplier`
    /// times the p99, within its floor and `firstToken`; the route's own `firstToken` until
    /// enough first tokens were seen.
    pub deadline_ms: f64,
    /// The p99 of the fleet's recent first tokens, in milliseconds.
    pub p99_ms: f64,
    /// How many first tokens it is drawn from.
    pub samples: u64,
}

/// A learned time per output token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenTimeStatus {
    /// The time one output token may take, in milliseconds: the route's
    /// `deadlines.adaptive.multiplier` times the p99; 50 until enough answers were seen. An
    /// unstreamed request's first byte may take the first-token deadline plus `max_tokens`
    /// times this (at least `firstByte`, at most `streamMax`).
    pub per_token_ms: f64,
    /// The p99 of the fleet's recent answers' time per output token, in milliseconds.
    pub p99_ms: f64,
    /// How many answers it is drawn from.
    pub samples: u64,
}

/// An upstream: base URL, model and the identity of the credential source (never the
/// credential).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamStatus {
    /// Base URL.
    pub base_url: String,
    /// Upstream model.
    pub model: String,
    /// Where the credential comes from, e.g. `secret:llm-keys/openai`.
    pub credential: String,
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LatencyStatus {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Breaker consensus.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreakersStatus {
    /// Sidecars whose own breaker is open.
    pub open: u32,
    /// Sidecars that reported on the upstream.
    pub reporting: u32,
}

/// The fleet's equivalence tally.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EquivalenceStatus {
    /// Samples where the candidate agreed with the primary.
    pub agreements: u64,
    /// Samples compared.
    pub samples: u64,
    /// The Wilson 95% lower bound of the agreement.
    pub lower_bound: f64,
    /// Whether it certifies the target under the route's threshold and minimum samples.
    pub certified: bool,
}

/// What the connected sidecars of a route's namespace run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarsStatus {
    /// Sidecars connected to the operator.
    pub connected: u32,
    /// Of those, how many run the serving generation of this route.
    pub programmed: u32,
    /// Sidecars that refused the serving generation, and why (at most 10 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejections: Vec<SidecarRejection>,
}

/// One sidecar's refusal of a route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SidecarRejection {
    /// The sidecar's pod.
    pub pod: String,
    /// Why it refused.
    pub reason: String,
}
