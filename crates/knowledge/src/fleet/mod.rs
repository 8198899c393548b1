//! The operator's knowledge store: every sidecar's reports merged per namespace and upstream,
//! and the plan every sidecar of the namespace acts on.
//!
//! Knowledge is kept per namespace — sidecars only ever learn from their own namespace, as they
//! only get its routes — and per upstream (base URL, model, credential source), so two routes
//! that call the same upstream share its health; the status summarises it per route target.
//!
//! | input (a sidecar's report)              | what the fleet does                                  |
//! | --------------------------------------- | ---------------------------------------------------- |
//! | a breaker opened                        | the upstream is *open*: skipped by every sidecar     |
//! | the upstream is open                    | one prober per interval (the breaker's cool-down), in turn among the pods that use it |
//! | the prober's probe succeeded            | closed everywhere                                    |
//! | the prober's probe failed | the next prober, one interval later |
//! | the prober sent nothing for its whole interval | the next prober, at once |
//! | a rate-limit reset                      | nobody sends before the earliest announced reset     |
//! | a route's error rate crosses the threshold | its retry budget is scaled down everywhere until the rate falls below half of it |
//! | equivalence samples                     | added up; every sidecar may rely on the fleet's tally |
//!
//! Time is an argument (milliseconds since the Unix epoch), so every rule is tested exactly.
//!
//! The store is split by concern:
//!
//! - [`admit`]: what a report may speak of — the namespace's compiled routes, bounded counts,
//!   windows at most an hour ahead — before it is merged;
//! - `report`: merging a sidecar's report into the store; an opened breaker opens the
//!   upstream fleet-wide at once;
//! - `plan`: electing probers, ending rate-limit windows, starting and ending incidents, and
//!   the knowledge every sidecar gets (with the fleet's certifications);
//! - `summary`: what the store knows of one route target, for the `LlmRoute` status;
//! - `seed`: a new leader starting from what the statuses recorded;
//! - `window`: the sliding windows the traffic is counted in.

use std::collections::BTreeMap;
use std::time::Duration;

use plumb_policy::UpstreamKey;
use plumb_proto::v1;

use crate::sketch::Sketch;
use window::Ring;

pub mod admit;
mod plan;
mod report;
mod seed;
mod summary;
mod window;

#[cfg(test)]
mod fixtures;

pub use plan::Pushes;
pub use seed::Seed;
pub use summary::{TargetState, TargetSummary};

/// How the fleet plans.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// How far back error rates and latency look.
    pub window: Duration,
    /// A pod that reported traffic on a route this recently may be elected to probe its
    /// upstreams.
    pub active_within: Duration,
    /// A route whose error rate (failures the upstream is to blame for, over the last 20 s)
    /// reaches this is in an incident: its retry budget is scaled down.
    pub incident_error_rate: f64,
    /// ... provided it saw at least this many attempts.
    pub incident_min_attempts: u64,
    /// The share of its retry budget a route keeps during an incident.
    pub incident_retry_scale: f64,
    /// The probe interval of an upstream whose breaker cool-down no sidecar reported.
    pub default_probe_interval: Duration,
    /// At most one `UncertifiedFailovers` event per route target this often.
    pub event_every: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            window: Duration::from_secs(60),
            active_within: Duration::from_secs(30),
            incident_error_rate: 0.5,
            incident_min_attempts: 20,
            incident_retry_scale: 0.1,
            default_probe_interval: Duration::from_secs(10),
            event_every: Duration::from_secs(300),
        }
    }
}

/// Something a human should hear of (the operator turns these into Kubernetes Events).
#[derive(Clone, Debug, PartialEq)]
pub enum FleetEvent {
    /// A sidecar's breaker opened: the upstream is skipped fleet-wide.
    Opened {
        /// The namespace.
        namespace: String,
        /// The upstream.
        upstream: UpstreamKey,
        /// The pod whose breaker opened.
        pod: String,
        /// The failure class it reported most in that report, if any.
        class: Option<String>,
    },
    /// The elected prober found an open upstream healthy: it is used again everywhere.
    Healthy {
        /// The namespace.
        namespace: String,
        /// The upstream.
        upstream: UpstreamKey,
        /// The prober.
        pod: String,
    },
    /// Answers were served by failover to a target the route's equivalence does not certify.
    UncertifiedFailovers {
        /// The namespace.
        namespace: String,
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// How many since the last such event.
        count: u64,
    },
}

/// Every namespace's knowledge.
#[derive(Debug, Default)]
pub struct Fleet {
    settings: Settings,
    sequence: u64,
    namespaces: BTreeMap<String, Namespace>,
    events: Vec<FleetEvent>,
}

/// What one bucket of an upstream's window counts.
#[derive(Clone, Debug, Default)]
struct Traffic {
    /// Attempts by outcome (`ok` or a failure class).
    outcomes: BTreeMap<String, u64>,
    latency: Sketch,
    /// Committed streams' time to first token.
    first_token: Sketch,
    /// Whole answers' and whole streams' time per output token.
    token_time: Sketch,
    /// Streamed attempts held because the upstream's streams broke.
    streams_held: u64,
}

/// What one bucket of a route's window counts.
#[derive(Clone, Copy, Debug, Default)]
struct RouteTraffic {
    attempts: u64,
    /// Attempts that failed through the upstream's fault.
    failures: u64,
}

/// An upstream skipped fleet-wide, and who probes it when.
#[derive(Clone, Debug, PartialEq)]
struct Open {
    since_ms: i64,
    reason: String,
    probe_at_ms: i64,
    prober: Option<String>,
    /// Probe rounds so far: the turn among the candidate probers.
    round: u64,
}

#[derive(Clone, Debug, Default)]
struct Upstream {
    traffic: Ring<Traffic>,
    /// Each pod's breaker, as last reported.
    breakers: BTreeMap<String, v1::BreakerState>,
    cooldown_ms: u64,
    open: Option<Open>,
    /// The end of the rate-limit window (ms), 0 when there is none.
    rate_limited_until_ms: i64,
}

#[derive(Clone, Debug, Default)]
struct Route {
    traffic: Ring<RouteTraffic>,
    incident: bool,
}

#[derive(Clone, Debug, Default)]
struct Namespace {
    upstreams: BTreeMap<UpstreamKey, Upstream>,
    /// (route, target) → the upstream it calls.
    targets: BTreeMap<(String, String), UpstreamKey>,
    /// Connected pods → route → when it last reported traffic on it.
    pods: BTreeMap<String, BTreeMap<String, i64>>,
    routes: BTreeMap<String, Route>,
    /// (route, primary, candidate) → agreements and samples.
    certs: BTreeMap<(String, UpstreamKey, UpstreamKey), (u64, u64)>,
    /// (route, target) → uncertified failovers not yet announced, and when the last event went.
    uncertified: BTreeMap<(String, String), (u64, i64)>,
    /// Knowledge changed since it was last pushed.
    changed: bool,
    /// ... and it cannot wait for the next tick.
    urgent: bool,
    last_push_ms: i64,
}

/// A duration as the store counts time: whole milliseconds, saturating.
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Whether an outcome the sidecars report is a failure (anything but `ok`).
fn failed(outcome: &str) -> bool {
    outcome != "ok"
}

impl Upstream {
    /// The fleet's first tokens of the upstream's streams over the window up to `slot`.
    fn first_tokens(&self, slot: i64) -> Sketch {
        let mut s = Sketch::new();
        for t in self.traffic.window(slot) {
            s.merge(&t.first_token);
        }
        s
    }

    /// The fleet's time per output token of the upstream over the window up to `slot`.
    fn token_times(&self, slot: i64) -> Sketch {
        let mut s = Sketch::new();
        for t in self.traffic.window(slot) {
            s.merge(&t.token_time);
        }
        s
    }

    /// One probe per breaker cool-down, as the sidecars reported it.
    fn probe_interval_ms(&self, settings: &Settings) -> i64 {
        if self.cooldown_ms > 0 {
            i64::try_from(self.cooldown_ms).unwrap_or(i64::MAX)
        } else {
            millis(settings.default_probe_interval)
        }
    }
}

impl Fleet {
    /// An empty store.
    pub fn new(settings: Settings) -> Fleet {
        Fleet {
            settings,
            ..Fleet::default()
        }
    }

    fn ns(&mut self, namespace: &str) -> &mut Namespace {
        self.namespaces.entry(namespace.to_owned()).or_default()
    }

    /// A sidecar connected.
    pub fn connected(&mut self, namespace: &str, pod: &str) {
        self.ns(namespace).pods.entry(pod.to_owned()).or_default();
    }

    /// A sidecar disconnected: its breakers no longer count, and it is no prober.
    pub fn disconnected(&mut self, namespace: &str, pod: &str) {
        let ns = self.ns(namespace);
        ns.pods.remove(pod);
        for u in ns.upstreams.values_mut() {
            u.breakers.remove(pod);
            if let Some(open) = &mut u.open
                && open.prober.as_deref() == Some(pod)
            {
                // Elect again at the next tick.
                open.prober = None;
                ns.changed = true;
            }
        }
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<FleetEvent> {
        std::mem::take(&mut self.events)
    }

    /// How many upstreams each namespace skips.
    pub fn open_upstreams(&self) -> Vec<(String, usize)> {
        self.namespaces
            .iter()
            .map(|(name, ns)| {
                (
                    name.clone(),
                    ns.upstreams.values().filter(|u| u.open.is_some()).count(),
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixtures::*;

    #[test]
    fn a_disconnected_prober_is_replaced() {
        let mut f = fleet_of(&["a", "b"]);
        let mut t = target("chat", "primary", "gpt");
        t.breaker = v1::BreakerState::Open as i32;
        t.outcomes = outcomes(&[("server_error", 5)]);
        f.report("team-a", "a", &report(vec![t]), 0);
        assert_eq!(
            directive(&f.knowledge("team-a", 0), "gpt").map(|d| d.prober.clone()),
            Some("a".into())
        );
        f.disconnected("team-a", "a");
        f.tick(100, Duration::from_secs(1));
        assert_eq!(
            directive(&f.knowledge("team-a", 100), "gpt").map(|d| d.prober.clone()),
            Some("b".into())
        );
    }
}
