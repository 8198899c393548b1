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

use std::collections::BTreeMap;
use std::time::Duration;

use plumb_policy::{Blame, FailureClass, UpstreamKey};
use plumb_proto::v1;

use crate::sketch::Sketch;
use crate::{upstream_from_proto, upstream_to_proto};

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

/// What the store knows of one route target, for its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetSummary {
    /// The target's name.
    pub name: String,
    /// `Healthy`, `Degraded` (half or more of its attempts fail), `Open` (skipped by the
    /// fleet), `RateLimited`, or `Unknown` (no report in the window).
    pub state: &'static str,
    /// Why, in a sentence.
    pub message: String,
    /// Since when it is open (ms since the Unix epoch).
    pub open_since_ms: Option<i64>,
    /// Attempts in the window, fleet-wide.
    pub attempts: u64,
    /// Failed attempts by class, in the window.
    pub errors: BTreeMap<String, u64>,
    /// Failed attempts out of all, in the window.
    pub error_rate: f64,
    /// Latency p50, p95, p99 of the attempts in the window.
    pub latency: Option<[Duration; 3]>,
    /// Sidecars whose own breaker is open, out of those that reported on the upstream.
    pub breakers_open: u32,
    /// Sidecars that reported on the upstream.
    pub breakers_reporting: u32,
    /// The end of the rate-limit window (ms since the Unix epoch).
    pub rate_limited_until_ms: Option<i64>,
    /// The fleet's agreements and samples of this target against the route's primaries
    /// (targets outside the primary's priority group only).
    pub equivalence: Option<(u64, u64)>,
}

impl TargetSummary {
    /// Whether it counts as healthy in the `Healthy` column.
    pub fn healthy(&self) -> bool {
        matches!(self.state, "Healthy" | "Unknown")
    }
}

/// Knowledge restored from a route target's status (a new leader starts from it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seed {
    /// Open since (ms), with the reason.
    pub open: Option<(i64, String)>,
    /// The end of a rate-limit window (ms).
    pub rate_limited_until_ms: Option<i64>,
    /// Agreements and samples against `primary`.
    pub equivalence: Option<(UpstreamKey, u64, u64)>,
}

const BUCKETS: usize = 6;

/// Counts over a sliding window of six buckets.
#[derive(Clone, Debug, Default)]
struct Ring<T> {
    slots: [(i64, T); BUCKETS],
}

impl<T: Default> Ring<T> {
    fn at(&mut self, slot: i64) -> &mut T {
        let i = slot.rem_euclid(BUCKETS as i64) as usize;
        if self.slots[i].0 != slot {
            self.slots[i] = (slot, T::default());
        }
        &mut self.slots[i].1
    }

    /// The buckets of the last `n` slots up to `slot`.
    fn recent(&self, slot: i64, n: i64) -> impl Iterator<Item = &T> {
        self.slots
            .iter()
            .filter(move |(s, _)| *s <= slot && *s > slot - n)
            .map(|(_, t)| t)
    }
}

#[derive(Clone, Debug, Default)]
struct Traffic {
    outcomes: BTreeMap<String, u64>,
    latency: Sketch,
}

#[derive(Clone, Copy, Debug, Default)]
struct RouteTraffic {
    attempts: u64,
    failures: u64,
}

#[derive(Clone, Debug, PartialEq)]
struct Open {
    since_ms: i64,
    reason: String,
    probe_at_ms: i64,
    prober: Option<String>,
    round: u64,
}

#[derive(Clone, Debug, Default)]
struct Upstream {
    traffic: Ring<Traffic>,
    /// Each pod's breaker, as last reported.
    breakers: BTreeMap<String, i32>,
    cooldown_ms: u64,
    open: Option<Open>,
    rate_limited_until_ms: i64,
}

impl Upstream {
    /// One probe per breaker cool-down, as the sidecars reported it.
    fn probe_interval_ms(&self, settings: &Settings) -> i64 {
        if self.cooldown_ms > 0 {
            self.cooldown_ms as i64
        } else {
            settings.default_probe_interval.as_millis() as i64
        }
    }
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
    certs: BTreeMap<(String, UpstreamKey, UpstreamKey), (u64, u64)>,
    /// (route, target) → uncertified failovers not yet announced, and when the last event went.
    uncertified: BTreeMap<(String, String), (u64, i64)>,
    /// Knowledge changed since it was last pushed.
    changed: bool,
    /// ... and it cannot wait for the next tick.
    urgent: bool,
    last_push_ms: i64,
}

/// Every namespace's knowledge.
#[derive(Debug, Default)]
pub struct Fleet {
    settings: Settings,
    sequence: u64,
    namespaces: BTreeMap<String, Namespace>,
    events: Vec<FleetEvent>,
}

/// Which namespaces' knowledge to push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushes {
    /// These, now.
    pub namespaces: Vec<String>,
}

fn breaker_name(state: i32) -> &'static str {
    match v1::BreakerState::try_from(state) {
        Ok(v1::BreakerState::Open) => "open",
        Ok(v1::BreakerState::HalfOpen) => "half-open",
        _ => "closed",
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

    fn bucket_ms(&self) -> i64 {
        (self.settings.window.as_millis() as i64 / BUCKETS as i64).max(1)
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

    /// Merges one sidecar's report. Returns whether the namespace's knowledge must be pushed
    /// at once (a state changed).
    pub fn report(&mut self, namespace: &str, pod: &str, report: &v1::Report, now_ms: i64) -> bool {
        let bucket_ms = self.bucket_ms();
        let slot = now_ms.div_euclid(bucket_ms);
        let settings = self.settings;
        let mut events = Vec::new();
        let mut urgent = false;
        let ns = self.namespaces.entry(namespace.to_owned()).or_default();
        let activity = ns.pods.entry(pod.to_owned()).or_default();
        for t in &report.targets {
            let attempts: u64 = t.outcomes.values().sum();
            if attempts > 0 {
                activity.insert(t.route.clone(), now_ms);
            }
        }
        for t in &report.targets {
            let key = upstream_from_proto(t.upstream.as_ref());
            ns.targets
                .insert((t.route.clone(), t.target.clone()), key.clone());
            let route = ns.routes.entry(t.route.clone()).or_default();
            let rt = route.traffic.at(slot);
            for (outcome, n) in &t.outcomes {
                rt.attempts += n;
                let upstream_fault = outcome
                    .parse::<FailureClass>()
                    .is_ok_and(|c| c.blame() == Blame::Upstream);
                if upstream_fault {
                    rt.failures += n;
                }
            }
            let u = ns.upstreams.entry(key.clone()).or_default();
            let traffic = u.traffic.at(slot);
            for (outcome, n) in &t.outcomes {
                *traffic.outcomes.entry(outcome.clone()).or_default() += n;
            }
            if let Some(s) = &t.latency {
                traffic.latency.merge(&Sketch::from_proto(s));
            }
            if t.cooldown_ms > 0 {
                u.cooldown_ms = t.cooldown_ms;
            }
            let interval_ms = u.probe_interval_ms(&settings);
            let before = u.breakers.insert(pod.to_owned(), t.breaker);
            let opened = t.breaker == v1::BreakerState::Open as i32
                && before != Some(v1::BreakerState::Open as i32);
            if opened && u.open.is_none() {
                let class = t
                    .outcomes
                    .iter()
                    .filter(|(o, _)| o.as_str() != "ok")
                    .max_by_key(|(_, n)| **n)
                    .map(|(o, _)| o.clone());
                u.open = Some(Open {
                    since_ms: now_ms,
                    reason: match &class {
                        Some(c) => format!("the breaker of pod {pod} opened after {c}"),
                        None => format!("the breaker of pod {pod} opened"),
                    },
                    probe_at_ms: now_ms + interval_ms,
                    prober: None,
                    round: 0,
                });
                events.push(FleetEvent::Opened {
                    namespace: namespace.to_owned(),
                    upstream: key.clone(),
                    pod: pod.to_owned(),
                    class,
                });
                urgent = true;
            }
            if u.open.is_some() && t.probes_ok > 0 {
                u.open = None;
                events.push(FleetEvent::Healthy {
                    namespace: namespace.to_owned(),
                    upstream: key.clone(),
                    pod: pod.to_owned(),
                });
                urgent = true;
            } else if let Some(open) = &mut u.open
                && t.probes_failed > 0
            {
                open.round += 1;
                open.probe_at_ms = now_ms + interval_ms;
                open.prober = None;
                urgent = true;
            }
            let until = t.rate_limited_until_unix_ms;
            if until > now_ms {
                let current = u.rate_limited_until_ms;
                let next = if current > now_ms {
                    current.min(until)
                } else {
                    until
                };
                if next != current {
                    u.rate_limited_until_ms = next;
                    urgent = true;
                }
            }
            if t.uncertified_failovers > 0 {
                let pending = ns
                    .uncertified
                    .entry((t.route.clone(), t.target.clone()))
                    .or_insert((0, i64::MIN));
                pending.0 += t.uncertified_failovers;
            }
        }
        for e in &report.equivalence {
            let key = (
                e.route.clone(),
                upstream_from_proto(e.primary.as_ref()),
                upstream_from_proto(e.candidate.as_ref()),
            );
            let tally = ns.certs.entry(key).or_default();
            tally.0 += e.agreements.min(e.samples);
            tally.1 += e.samples;
            ns.changed = true;
        }
        if urgent {
            ns.changed = true;
            ns.urgent = true;
        }
        self.events.extend(events);
        if urgent {
            // Elect the probers of anything that just opened before the push goes out.
            self.plan(namespace, now_ms);
        }
        urgent
    }

    /// Elects probers, moves probe rounds on, ends rate-limit windows, and starts and ends
    /// incidents in one namespace.
    fn plan(&mut self, namespace: &str, now_ms: i64) {
        let settings = self.settings;
        let bucket_ms = self.bucket_ms();
        let slot = now_ms.div_euclid(bucket_ms);
        let mut events = Vec::new();
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let active_within = settings.active_within.as_millis() as i64;
        for (key, u) in &mut ns.upstreams {
            let interval_ms = u.probe_interval_ms(&settings);
            if let Some(open) = &mut u.open {
                // The prober had its interval and said nothing: next one, now.
                if open.prober.is_some() && now_ms >= open.probe_at_ms + interval_ms {
                    open.round += 1;
                    open.probe_at_ms = now_ms;
                    open.prober = None;
                }
                if open.prober.is_none() {
                    // Pods that recently sent traffic on a route using this upstream, else any.
                    let routes: Vec<&String> = ns
                        .targets
                        .iter()
                        .filter(|(_, k)| *k == key)
                        .map(|((r, _), _)| r)
                        .collect();
                    let mut candidates: Vec<&String> = ns
                        .pods
                        .iter()
                        .filter(|(_, active)| {
                            routes.iter().any(|r| {
                                active
                                    .get(*r)
                                    .is_some_and(|at| now_ms - at <= active_within)
                            })
                        })
                        .map(|(p, _)| p)
                        .collect();
                    if candidates.is_empty() {
                        candidates = ns.pods.keys().collect();
                    }
                    if !candidates.is_empty() {
                        let i = (open.round % candidates.len() as u64) as usize;
                        open.prober = Some(candidates[i].clone());
                        ns.changed = true;
                        ns.urgent = true;
                    }
                }
            }
            if u.rate_limited_until_ms != 0 && u.rate_limited_until_ms <= now_ms {
                u.rate_limited_until_ms = 0;
                ns.changed = true;
            }
        }
        for route in ns.routes.values_mut() {
            let (attempts, failures) = route
                .traffic
                .recent(slot, (20_000 / bucket_ms).max(1))
                .fold((0, 0), |(a, f), t| (a + t.attempts, f + t.failures));
            let rate = if attempts == 0 {
                0.0
            } else {
                failures as f64 / attempts as f64
            };
            let incident = if route.incident {
                attempts >= settings.incident_min_attempts
                    && rate >= settings.incident_error_rate / 2.0
            } else {
                attempts >= settings.incident_min_attempts && rate >= settings.incident_error_rate
            };
            if incident != route.incident {
                route.incident = incident;
                ns.changed = true;
                ns.urgent = true;
            }
        }
        let every = settings.event_every.as_millis() as i64;
        for ((route, target), (count, last)) in &mut ns.uncertified {
            if *count > 0 && now_ms.saturating_sub(*last) >= every {
                events.push(FleetEvent::UncertifiedFailovers {
                    namespace: namespace.to_owned(),
                    route: route.clone(),
                    target: target.clone(),
                    count: *count,
                });
                *count = 0;
                *last = now_ms;
            }
        }
        self.events.extend(events);
    }

    /// The periodic step: plans every namespace and says which to push now — those with an
    /// urgent change, and those with any change not pushed for `every`.
    pub fn tick(&mut self, now_ms: i64, every: Duration) -> Pushes {
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        let mut out = Pushes::default();
        for name in names {
            self.plan(&name, now_ms);
            if let Some(ns) = self.namespaces.get(&name)
                && ns.changed
                && (ns.urgent || now_ms - ns.last_push_ms >= every.as_millis() as i64)
            {
                out.namespaces.push(name);
            }
        }
        out
    }

    /// The namespace's knowledge as sidecars get it; marks it pushed.
    pub fn knowledge(&mut self, namespace: &str, now_ms: i64) -> v1::Knowledge {
        self.sequence += 1;
        let sequence = self.sequence;
        let scale = self.settings.incident_retry_scale;
        let ns = self.ns(namespace);
        ns.changed = false;
        ns.urgent = false;
        ns.last_push_ms = now_ms;
        let upstreams = ns
            .upstreams
            .iter()
            .filter(|(_, u)| u.open.is_some() || u.rate_limited_until_ms > now_ms)
            .map(|(k, u)| v1::UpstreamDirective {
                upstream: Some(upstream_to_proto(k)),
                open: u.open.is_some(),
                prober: u
                    .open
                    .as_ref()
                    .and_then(|o| o.prober.clone())
                    .unwrap_or_default(),
                probe_at_unix_ms: u.open.as_ref().map_or(0, |o| o.probe_at_ms),
                rate_limited_until_unix_ms: if u.rate_limited_until_ms > now_ms {
                    u.rate_limited_until_ms
                } else {
                    0
                },
                reason: u
                    .open
                    .as_ref()
                    .map(|o| o.reason.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let routes = ns
            .routes
            .iter()
            .filter(|(_, r)| r.incident)
            .map(|(name, _)| v1::RouteDirective {
                route: name.clone(),
                retry_budget_scale: scale,
            })
            .collect();
        let certifications = ns
            .certs
            .iter()
            .map(|((route, p, c), (agreements, samples))| v1::Certification {
                route: route.clone(),
                primary: Some(upstream_to_proto(p)),
                candidate: Some(upstream_to_proto(c)),
                agreements: *agreements,
                samples: *samples,
            })
            .collect();
        v1::Knowledge {
            sequence,
            upstreams,
            routes,
            certifications,
        }
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<FleetEvent> {
        std::mem::take(&mut self.events)
    }

    /// What the fleet knows of one route's targets, for its status. `targets` are the route's
    /// targets as `(name, upstream, primary-grade)`; equivalence is summed over the
    /// primary-grade upstreams, as sidecars do.
    pub fn summary(
        &self,
        namespace: &str,
        route: &str,
        targets: &[(String, UpstreamKey, bool)],
        now_ms: i64,
    ) -> Vec<TargetSummary> {
        let slot = now_ms.div_euclid(self.bucket_ms());
        let ns = self.namespaces.get(namespace);
        let primaries: Vec<&UpstreamKey> = targets
            .iter()
            .filter(|(_, _, p)| *p)
            .map(|(_, k, _)| k)
            .collect();
        targets
            .iter()
            .map(|(name, key, primary)| {
                let mut s = TargetSummary {
                    name: name.clone(),
                    state: "Unknown",
                    ..TargetSummary::default()
                };
                let Some(ns) = ns else {
                    return s;
                };
                if !primary {
                    let tally = ns
                        .certs
                        .iter()
                        .filter(|((r, p, c), _)| r == route && c == key && primaries.contains(&p))
                        .fold((0, 0), |acc, (_, t)| (acc.0 + t.0, acc.1 + t.1));
                    s.equivalence = (tally.1 > 0).then_some(tally);
                }
                let Some(u) = ns.upstreams.get(key) else {
                    return s;
                };
                let mut latency = Sketch::new();
                for t in u.traffic.recent(slot, BUCKETS as i64) {
                    for (o, n) in &t.outcomes {
                        s.attempts += n;
                        if o != "ok" {
                            *s.errors.entry(o.clone()).or_default() += n;
                        }
                    }
                    latency.merge(&t.latency);
                }
                let failed: u64 = s.errors.values().sum();
                if s.attempts > 0 {
                    s.error_rate = failed as f64 / s.attempts as f64;
                }
                s.latency = [0.5, 0.95, 0.99]
                    .map(|q| latency.quantile(q))
                    .into_iter()
                    .collect::<Option<Vec<_>>>()
                    .and_then(|v| v.try_into().ok());
                s.breakers_reporting = u.breakers.len() as u32;
                s.breakers_open = u
                    .breakers
                    .values()
                    .filter(|b| **b == v1::BreakerState::Open as i32)
                    .count() as u32;
                if let Some(open) = &u.open {
                    s.state = "Open";
                    s.open_since_ms = Some(open.since_ms);
                    s.message = format!(
                        "skipped by every sidecar: {}; {}",
                        open.reason,
                        match &open.prober {
                            Some(p) => format!("pod {p} probes it"),
                            None => "a prober is being elected".to_owned(),
                        }
                    );
                } else if u.rate_limited_until_ms > now_ms {
                    s.state = "RateLimited";
                    s.rate_limited_until_ms = Some(u.rate_limited_until_ms);
                    s.message =
                        "the provider announced a rate-limit window; nobody sends before it ends"
                            .to_owned();
                } else if s.attempts >= 10 && s.error_rate >= 0.5 {
                    s.state = "Degraded";
                    s.message = format!(
                        "{:.0}% of {} attempts failed in the last {}s",
                        s.error_rate * 100.0,
                        s.attempts,
                        self.settings.window.as_secs()
                    );
                } else if s.attempts > 0 || !u.breakers.is_empty() {
                    s.state = "Healthy";
                    let open = s.breakers_open;
                    if open > 0 {
                        s.message = format!(
                            "{open} of {} sidecars still hold their own breaker {}",
                            s.breakers_reporting,
                            breaker_name(v1::BreakerState::Open as i32)
                        );
                    }
                }
                s
            })
            .collect()
    }

    /// Restores what a route target's status recorded (a new leader, or a restart).
    pub fn seed(
        &mut self,
        namespace: &str,
        route: &str,
        target: &str,
        upstream: &UpstreamKey,
        seed: Seed,
        now_ms: i64,
    ) {
        let interval = self.settings.default_probe_interval.as_millis() as i64;
        let ns = self.ns(namespace);
        ns.targets
            .insert((route.to_owned(), target.to_owned()), upstream.clone());
        let u = ns.upstreams.entry(upstream.clone()).or_default();
        if let Some((since_ms, reason)) = seed.open
            && u.open.is_none()
        {
            u.open = Some(Open {
                since_ms,
                reason,
                probe_at_ms: now_ms + interval.min(1_000),
                prober: None,
                round: 0,
            });
            ns.changed = true;
        }
        if let Some(until) = seed.rate_limited_until_ms
            && until > now_ms
        {
            u.rate_limited_until_ms = u.rate_limited_until_ms.max(until);
            ns.changed = true;
        }
        if let Some((primary, agreements, samples)) = seed.equivalence {
            let t = ns
                .certs
                .entry((route.to_owned(), primary, upstream.clone()))
                .or_default();
            if t.1 < samples {
                *t = (agreements.min(samples), samples);
                ns.changed = true;
            }
        }
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

    fn key(model: &str) -> UpstreamKey {
        UpstreamKey {
            base_url: "https://llm.example/v1".into(),
            model: model.into(),
            credential: "secret:keys/openai".into(),
        }
    }

    fn target(route: &str, name: &str, model: &str) -> v1::TargetReport {
        v1::TargetReport {
            route: route.into(),
            target: name.into(),
            upstream: Some(upstream_to_proto(&key(model))),
            breaker: v1::BreakerState::Closed as i32,
            cooldown_ms: 1_000,
            ..v1::TargetReport::default()
        }
    }

    fn report(targets: Vec<v1::TargetReport>) -> v1::Report {
        v1::Report {
            sequence: 1,
            targets,
            equivalence: Vec::new(),
            urgent: false,
        }
    }

    fn outcomes(pairs: &[(&str, u64)]) -> std::collections::HashMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    fn directive<'a>(k: &'a v1::Knowledge, model: &str) -> Option<&'a v1::UpstreamDirective> {
        k.upstreams
            .iter()
            .find(|d| d.upstream.as_ref().is_some_and(|u| u.model == model))
    }

    fn fleet_of(pods: &[&str]) -> Fleet {
        let mut f = Fleet::new(Settings::default());
        for p in pods {
            f.connected("team-a", p);
        }
        f
    }

    #[test]
    fn one_breaker_opening_opens_the_upstream_for_everyone_at_once() {
        let mut f = fleet_of(&["a", "b", "c"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("timeout", 5)]);
        t.breaker = v1::BreakerState::Open as i32;
        assert!(f.report("team-a", "a", &report(vec![t]), 10_000), "urgent");
        let k = f.knowledge("team-a", 10_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!("{k:?}"));
        assert!(d.open);
        assert_eq!(d.probe_at_unix_ms, 11_000, "one cool-down later");
        assert_eq!(d.prober, "a", "the only pod with traffic probes");
        assert!(d.reason.contains("timeout"), "{}", d.reason);
        assert_eq!(
            f.take_events(),
            vec![FleetEvent::Opened {
                namespace: "team-a".into(),
                upstream: key("gpt"),
                pod: "a".into(),
                class: Some("timeout".into()),
            }]
        );
        // Another namespace knows nothing of it.
        assert!(f.knowledge("team-b", 10_000).upstreams.is_empty());
    }

    #[test]
    fn one_prober_per_interval_in_turn_until_a_probe_succeeds() {
        let pods = ["a", "b", "c"];
        let mut f = fleet_of(&pods);
        // Every pod has traffic on the route.
        for p in pods {
            let mut t = target("chat", "backup", "claude");
            t.outcomes = outcomes(&[("ok", 3)]);
            f.report("team-a", p, &report(vec![t]), 9_000);
        }
        let mut t = target("chat", "primary", "gpt");
        t.breaker = v1::BreakerState::Open as i32;
        f.report("team-a", "b", &report(vec![t]), 10_000);
        let first = directive(&f.knowledge("team-a", 10_000), "gpt")
            .map(|d| d.prober.clone())
            .unwrap_or_default();
        assert!(pods.contains(&first.as_str()));
        // The prober's probe fails: the next pod, one interval later.
        let mut probe = target("chat", "primary", "gpt");
        probe.probes_failed = 1;
        probe.breaker = v1::BreakerState::Open as i32;
        assert!(f.report("team-a", &first, &report(vec![probe]), 11_000));
        let k = f.knowledge("team-a", 11_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!(d.probe_at_unix_ms, 12_000);
        assert_ne!(d.prober, first, "probers take turns");
        let second = d.prober.clone();
        // The second prober gets no traffic: after its interval the turn passes on.
        assert!(f.tick(12_500, Duration::from_secs(1)).namespaces.is_empty());
        let pushes = f.tick(13_000, Duration::from_secs(1));
        assert_eq!(pushes.namespaces, vec!["team-a".to_owned()]);
        let third = directive(&f.knowledge("team-a", 13_000), "gpt")
            .map(|d| d.prober.clone())
            .unwrap_or_default();
        assert_ne!(third, second);
        // Its probe succeeds: closed everywhere.
        let mut ok = target("chat", "primary", "gpt");
        ok.probes_ok = 1;
        ok.outcomes = outcomes(&[("ok", 1)]);
        assert!(f.report("team-a", &third, &report(vec![ok]), 13_100));
        assert!(directive(&f.knowledge("team-a", 13_100), "gpt").is_none());
        assert!(
            f.take_events()
                .iter()
                .any(|e| matches!(e, FleetEvent::Healthy { pod, .. } if *pod == third))
        );
    }

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

    #[test]
    fn the_earliest_announced_reset_holds_until_it_passes() {
        let mut f = fleet_of(&["a", "b"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("rate_limited", 1)]);
        t.rate_limited_until_unix_ms = 13_000;
        assert!(f.report("team-a", "a", &report(vec![t.clone()]), 10_000));
        t.rate_limited_until_unix_ms = 12_500;
        assert!(f.report("team-a", "b", &report(vec![t.clone()]), 10_100));
        t.rate_limited_until_unix_ms = 14_000;
        assert!(
            !f.report("team-a", "b", &report(vec![t.clone()]), 10_200),
            "a later reset within the window changes nothing"
        );
        let k = f.knowledge("team-a", 10_200);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!(d.rate_limited_until_unix_ms, 12_500);
        assert!(!d.open);
        // Once it passed, a new 429 starts a new window.
        f.tick(12_600, Duration::from_secs(1));
        assert!(directive(&f.knowledge("team-a", 12_600), "gpt").is_none());
        t.rate_limited_until_unix_ms = 16_000;
        assert!(f.report("team-a", "a", &report(vec![t]), 13_000));
        assert_eq!(
            directive(&f.knowledge("team-a", 13_000), "gpt").map(|d| d.rate_limited_until_unix_ms),
            Some(16_000)
        );
    }

    #[test]
    fn an_incident_scales_the_retry_budget_down_until_the_rate_falls_to_half() {
        let mut f = fleet_of(&["a"]);
        let at = |f: &mut Fleet, ms: i64, ok: u64, overloaded: u64, bad_request: u64| {
            let mut t = target("chat", "primary", "gpt");
            t.outcomes = outcomes(&[
                ("ok", ok),
                ("overloaded", overloaded),
                ("bad_request", bad_request),
            ]);
            f.report("team-a", "a", &report(vec![t]), ms);
            f.tick(ms, Duration::from_secs(1));
            f.knowledge("team-a", ms).routes
        };
        // The caller's own faults are no incident.
        assert!(at(&mut f, 1_000, 10, 0, 90).is_empty());
        // 40 of 130 attempts in the last 20 s are the upstream's fault: 31%, below 50%.
        assert!(at(&mut f, 21_000, 40, 40, 50).is_empty());
        // 140 of 230: 61%.
        let incident = at(&mut f, 22_000, 0, 100, 0);
        assert_eq!(incident.len(), 1);
        assert_eq!(incident[0].route, "chat");
        assert!((incident[0].retry_budget_scale - 0.1).abs() < 1e-9);
        // 30%: still above half the threshold, the incident goes on.
        assert_eq!(at(&mut f, 42_000, 70, 30, 0).len(), 1);
        // Healthy again.
        assert!(at(&mut f, 62_000, 100, 0, 0).is_empty());
    }

    #[test]
    fn certifications_add_up_across_the_fleet() {
        let mut f = fleet_of(&["a", "b"]);
        let sample = |agreements, samples| v1::Report {
            equivalence: vec![v1::EquivalenceSamples {
                route: "chat".into(),
                primary: Some(upstream_to_proto(&key("gpt"))),
                candidate: Some(upstream_to_proto(&key("claude"))),
                agreements,
                samples,
            }],
            ..report(Vec::new())
        };
        f.report("team-a", "a", &sample(10, 10), 0);
        f.report("team-a", "b", &sample(4, 5), 0);
        let pushes = f.tick(2_000, Duration::from_secs(1));
        assert_eq!(pushes.namespaces, vec!["team-a".to_owned()]);
        let k = f.knowledge("team-a", 2_000);
        assert_eq!(k.certifications.len(), 1);
        assert_eq!(
            (k.certifications[0].agreements, k.certifications[0].samples),
            (14, 15)
        );
        let targets = [
            ("primary".to_owned(), key("gpt"), true),
            ("backup".to_owned(), key("claude"), false),
        ];
        let s = f.summary("team-a", "chat", &targets, 2_000);
        assert_eq!(s[0].equivalence, None, "the primary needs none");
        assert_eq!(s[1].equivalence, Some((14, 15)));
    }

    #[test]
    fn the_summary_merges_the_fleets_outcomes_and_latency() {
        let mut f = fleet_of(&["a", "b"]);
        for (pod, ms) in [("a", 100u64), ("b", 300)] {
            let mut t = target("chat", "primary", "gpt");
            t.outcomes = outcomes(&[("ok", 8), ("timeout", 2)]);
            let mut s = Sketch::new();
            for _ in 0..10 {
                s.add(Duration::from_millis(ms));
            }
            t.latency = Some(s.to_proto());
            f.report("team-a", pod, &report(vec![t]), 5_000);
        }
        let targets = [("primary".to_owned(), key("gpt"), true)];
        let s = &f.summary("team-a", "chat", &targets, 5_000)[0];
        assert_eq!(s.state, "Healthy");
        assert_eq!(s.attempts, 20);
        assert_eq!(s.errors.get("timeout"), Some(&4));
        assert!((s.error_rate - 0.2).abs() < 1e-9);
        let [p50, _, p99] = s.latency.unwrap_or_default();
        assert!((p50.as_secs_f64() - 0.1).abs() < 0.003, "{p50:?}");
        assert!((p99.as_secs_f64() - 0.3).abs() < 0.007, "{p99:?}");
        assert_eq!((s.breakers_open, s.breakers_reporting), (0, 2));
        // Out of the window, the numbers are gone.
        let later = &f.summary("team-a", "chat", &targets, 70_000)[0];
        assert_eq!(later.attempts, 0);
        assert_eq!(later.latency, None);
    }

    #[test]
    fn a_seeded_store_knows_what_the_status_said() {
        let mut f = fleet_of(&["a"]);
        f.seed(
            "team-a",
            "chat",
            "primary",
            &key("gpt"),
            Seed {
                open: Some((1_000, "the breaker of pod x opened".into())),
                ..Seed::default()
            },
            50_000,
        );
        f.seed(
            "team-a",
            "chat",
            "backup",
            &key("claude"),
            Seed {
                rate_limited_until_ms: Some(60_000),
                equivalence: Some((key("gpt"), 30, 31)),
                ..Seed::default()
            },
            50_000,
        );
        f.tick(50_000, Duration::from_secs(1));
        let k = f.knowledge("team-a", 50_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert!(d.open);
        assert_eq!(d.prober, "a");
        assert_eq!(
            directive(&k, "claude").map(|d| d.rate_limited_until_unix_ms),
            Some(60_000)
        );
        assert_eq!(k.certifications[0].samples, 31);
        let targets = [
            ("primary".to_owned(), key("gpt"), true),
            ("backup".to_owned(), key("claude"), false),
        ];
        let s = f.summary("team-a", "chat", &targets, 50_000);
        assert_eq!((s[0].state, s[0].open_since_ms), ("Open", Some(1_000)));
        assert_eq!(s[1].state, "RateLimited");
    }

    #[test]
    fn uncertified_failovers_are_announced_at_a_bounded_rate() {
        let mut f = fleet_of(&["a"]);
        let mut t = target("chat", "cheap", "mini");
        t.uncertified_failovers = 3;
        f.report("team-a", "a", &report(vec![t.clone()]), 0);
        f.tick(0, Duration::from_secs(1));
        assert_eq!(
            f.take_events(),
            vec![FleetEvent::UncertifiedFailovers {
                namespace: "team-a".into(),
                route: "chat".into(),
                target: "cheap".into(),
                count: 3
            }]
        );
        f.report("team-a", "a", &report(vec![t.clone()]), 1_000);
        f.report("team-a", "a", &report(vec![t]), 2_000);
        f.tick(2_000, Duration::from_secs(1));
        assert!(f.take_events().is_empty(), "not again within five minutes");
        f.tick(300_000, Duration::from_secs(1));
        assert!(matches!(
            f.take_events().as_slice(),
            [FleetEvent::UncertifiedFailovers { count: 6, .. }]
        ));
    }
}
