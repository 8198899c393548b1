//! Knowledge shared with the fleet, from the sidecar's side.
//!
//! **Reports.** Every attempt is counted here per route target: its outcome (`ok` or the
//! failure class), its latency (a mergeable sketch), the upstream's breaker after it, probes
//! and their verdicts, the rate-limit window a provider announced, and answers served by failover
//! to an uncertified target. The control stream sends what accumulated at most once per report
//! interval, and at once when a state changed (a breaker opened, a probe decided, a new
//! rate-limit window) — see [`Fleet::changed`].
//!
//! **Directives.** The operator's [`v1::Knowledge`] says which upstreams the whole fleet skips
//! (and whether this pod is the one elected to probe one, and from when), which are inside a
//! rate-limit window, and which routes run on a scaled-down retry budget. [`Fleet::gate`] is
//! asked before every attempt. The sidecar's own evidence still counts: its own breakers, and
//! its own rate-limit windows, which it keeps even without an operator. When the control stream
//! is lost the directives are dropped and the sidecar runs on its own evidence alone.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use plumb_knowledge::{Sketch, upstream_from_proto, upstream_to_proto};
use plumb_policy::{FailureClass, RouteSet, Target, UpstreamKey};
use plumb_proto::v1;
use plumb_telemetry::clock::{unix_ms, unix_ms_now};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::breaker::BreakerState;

/// The longest rate-limit window a provider's `retry-after` opens.
pub const MAX_RATE_LIMIT_WINDOW: Duration = Duration::from_secs(3600);

/// The most route targets one report carries; more wait for the next report (a report stays
/// far below gRPC's 4 MB message limit).
pub const MAX_TARGETS_PER_REPORT: usize = 500;

/// What the fleet says of one upstream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Directive {
    /// Skipped by every sidecar.
    pub open: bool,
    /// This pod is the one that may probe it.
    pub prober: bool,
    /// From when (ms since the Unix epoch).
    pub probe_at_ms: i64,
    /// Nobody sends before this (ms since the Unix epoch; 0: no window).
    pub rate_limited_until_ms: i64,
    /// Why it is open.
    pub reason: String,
}

/// The fleet's directives in force.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Whether they come from a live control stream.
    pub live: bool,
    /// The knowledge sequence they came in.
    pub sequence: u64,
    /// By upstream.
    pub upstreams: crate::ConfigMap<UpstreamKey, Directive>,
    /// Route name → the share of its retry budget.
    pub retry_scales: HashMap<String, f64>,
}

/// What [`Fleet::gate`] says of an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Send it as the breaker allows.
    Go,
    /// This pod is the fleet's prober and its time has come: send it as a probe.
    Probe,
    /// The fleet skips this upstream, for this reason.
    Open(String),
    /// Inside a rate-limit window for this much longer.
    RateLimited(Duration),
}

/// A rate-limit window a provider announced to this sidecar: its end on the local clock (what
/// the sidecar waits on) and on the wall clock (what it tells the fleet).
#[derive(Clone, Copy, Debug)]
struct Window {
    until: Instant,
    wall: SystemTime,
}

#[derive(Debug, Default)]
struct Accum {
    upstream: Option<UpstreamKey>,
    outcomes: BTreeMap<String, u64>,
    latency: Sketch,
    first_token: Sketch,
    token_time: Sketch,
    streams_held: u64,
    breaker: Option<BreakerState>,
    cooldown_ms: u64,
    probes_ok: u64,
    probes_failed: u64,
    rate_limited_until_ms: i64,
    uncertified_failovers: u64,
}

impl Accum {
    /// Adds what an older accumulation of the same target holds (its states are older).
    fn absorb(&mut self, older: Accum) {
        self.upstream = self.upstream.take().or(older.upstream);
        for (o, n) in older.outcomes {
            *self.outcomes.entry(o).or_default() += n;
        }
        self.latency.merge(&older.latency);
        self.first_token.merge(&older.first_token);
        self.token_time.merge(&older.token_time);
        self.streams_held += older.streams_held;
        self.breaker = self.breaker.or(older.breaker);
        if self.cooldown_ms == 0 {
            self.cooldown_ms = older.cooldown_ms;
        }
        self.probes_ok += older.probes_ok;
        self.probes_failed += older.probes_failed;
        self.rate_limited_until_ms = self.rate_limited_until_ms.max(older.rate_limited_until_ms);
        self.uncertified_failovers += older.uncertified_failovers;
    }
}

/// One attempt's outcome, as the fleet hears of it (its class is given beside it).
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// How long the attempt took.
    pub latency: Duration,
    /// The upstream's breaker after it.
    pub breaker: BreakerState,
    /// The breaker's cool-down.
    pub cooldown: Duration,
    /// Whether it was a probe.
    pub probe: bool,
    /// The wait the provider asked for on a rate limit.
    pub retry_after: Option<Duration>,
}

/// The sidecar's side of the shared knowledge.
#[derive(Debug)]
pub struct Fleet {
    pod: Mutex<String>,
    pending: Mutex<BTreeMap<(String, String), Accum>>,
    /// Breakers as last reported, per route target: a change is urgent.
    reported: Mutex<crate::ConfigMap<(String, String), BreakerState>>,
    view: ArcSwap<View>,
    /// Own rate-limit windows by upstream.
    windows: Mutex<crate::ConfigMap<UpstreamKey, Window>>,
    /// The probe slot taken per upstream (its `probe_at`), so one directive is one probe.
    probes_taken: Mutex<crate::ConfigMap<UpstreamKey, i64>>,
    changed: Notify,
    urgent: std::sync::atomic::AtomicBool,
    /// Whether anyone reads the reports (a control plane); standalone, only the sidecar's own
    /// rate-limit windows are kept.
    reporting: std::sync::atomic::AtomicBool,
}

impl Default for Fleet {
    fn default() -> Self {
        Fleet::new()
    }
}

fn proto_state(b: BreakerState) -> v1::BreakerState {
    match b {
        BreakerState::Closed => v1::BreakerState::Closed,
        BreakerState::HalfOpen => v1::BreakerState::HalfOpen,
        BreakerState::Open => v1::BreakerState::Open,
    }
}

impl Fleet {
    /// No knowledge yet.
    pub fn new() -> Fleet {
        Fleet {
            pod: Mutex::new(String::new()),
            pending: Mutex::new(BTreeMap::new()),
            reported: Mutex::default(),
            view: ArcSwap::from_pointee(View::default()),
            windows: Mutex::default(),
            probes_taken: Mutex::default(),
            changed: Notify::new(),
            urgent: std::sync::atomic::AtomicBool::new(false),
            reporting: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Names this pod (directives elect probers by pod name) and starts reporting.
    pub fn set_pod(&self, pod: &str) {
        pod.clone_into(&mut self.pod.lock());
        self.reporting
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The directives in force.
    pub fn view(&self) -> Arc<View> {
        self.view.load_full()
    }

    fn mark_urgent(&self) {
        self.urgent
            .store(true, std::sync::atomic::Ordering::Release);
        self.changed.notify_one();
    }

    /// Resolves when something urgent is waiting to be reported.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether an attempt may go to `upstream`, as far as the fleet and the sidecar's own
    /// rate-limit windows say (its breaker is asked after).
    pub fn gate(&self, upstream: &UpstreamKey) -> Gate {
        let now_ms = unix_ms_now();
        let view = self.view.load();
        let directive = view.upstreams.get(upstream);
        let own = self
            .windows
            .lock()
            .get(upstream)
            .map(|w| w.until.saturating_duration_since(Instant::now()));
        let fleet = directive
            .filter(|d| d.rate_limited_until_ms > now_ms)
            .map(|d| Duration::from_millis(d.rate_limited_until_ms.saturating_sub(now_ms) as u64));
        if let Some(wait) = own.into_iter().chain(fleet).filter(|w| !w.is_zero()).max() {
            return Gate::RateLimited(wait);
        }
        match directive {
            Some(d) if d.open => {
                if d.prober && now_ms >= d.probe_at_ms {
                    let mut taken = self.probes_taken.lock();
                    if taken.get(upstream) != Some(&d.probe_at_ms) {
                        taken.insert(upstream.clone(), d.probe_at_ms);
                        return Gate::Probe;
                    }
                }
                Gate::Open(d.reason.clone())
            }
            _ => Gate::Go,
        }
    }

    /// Whether the fleet skips `upstream` now (read only: unlike [`Fleet::gate`], it never
    /// takes a probe turn).
    pub fn skips(&self, upstream: &UpstreamKey) -> bool {
        self.view
            .load()
            .upstreams
            .get(upstream)
            .is_some_and(|d| d.open)
    }

    /// A committed stream of `target` reached its first token after `latency`: what learned
    /// first-token deadlines are drawn from, fleet-wide.
    pub fn first_token(&self, route: &str, target: &Target, latency: Duration) {
        self.accumulate(route, target, |a| a.first_token.add(latency));
    }

    /// An answer of `target` took `per_token` per output token: what the deadlines of
    /// unstreamed answers are drawn from, fleet-wide.
    pub fn token_time(&self, route: &str, target: &Target, per_token: Duration) {
        self.accumulate(route, target, |a| a.token_time.add(per_token));
    }

    /// A streamed attempt of `target` was held because its upstream's streams broke.
    pub fn stream_held(&self, route: &str, target: &Target) {
        self.accumulate(route, target, |a| a.streams_held += 1);
    }

    /// Adds to what the next report says of `route`'s `target`, when there is a control plane
    /// to report to.
    fn accumulate(&self, route: &str, target: &Target, add: impl FnOnce(&mut Accum)) {
        if !self.reporting.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        let mut pending = self.pending.lock();
        let a = pending
            .entry((route.to_owned(), target.name.clone()))
            .or_default();
        a.upstream = Some(target.upstream.clone());
        add(a);
    }

    /// Counts one attempt of `route`'s `target`: `failure` is its class, `None` when it
    /// succeeded.
    pub fn record(&self, route: &str, target: &Target, failure: Option<FailureClass>, o: Outcome) {
        let key = (route.to_owned(), target.name.clone());
        let mut urgent = false;
        let mut until_ms = 0;
        let rate_limited = failure == Some(FailureClass::RateLimited);
        if let Some(wait) = o.retry_after.filter(|_| rate_limited) {
            // A provider's wait is taken at its word up to an hour; nothing later is believed.
            let wait = wait.min(MAX_RATE_LIMIT_WINDOW);
            let window = Window {
                until: Instant::now() + wait,
                wall: SystemTime::now() + wait,
            };
            let mut windows = self.windows.lock();
            let w = windows.entry(target.upstream.clone()).or_insert(window);
            if w.until < window.until {
                *w = window;
            }
            until_ms = unix_ms(window.wall);
            urgent = true;
        }
        if !self.reporting.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        {
            let mut reported = self.reported.lock();
            let before = reported.insert(key.clone(), o.breaker);
            if o.breaker == BreakerState::Open && before != Some(BreakerState::Open) {
                urgent = true;
            }
        }
        {
            let mut pending = self.pending.lock();
            let a = pending.entry(key).or_default();
            a.upstream = Some(target.upstream.clone());
            let outcome = failure.map_or("ok", FailureClass::as_str);
            *a.outcomes.entry(outcome.to_owned()).or_default() += 1;
            a.latency.add(o.latency);
            a.breaker = Some(o.breaker);
            a.cooldown_ms = o.cooldown.as_millis() as u64;
            if o.probe {
                urgent = true;
                if failure.is_none() {
                    a.probes_ok += 1;
                } else {
                    a.probes_failed += 1;
                }
            }
            a.rate_limited_until_ms = a.rate_limited_until_ms.max(until_ms);
        }
        if urgent {
            self.mark_urgent();
        }
    }

    /// A probe of `target` whose stream committed passed (its breaker is `breaker` after it),
    /// said at once so the fleet sends traffic back without waiting for the stream's end; the
    /// stream's outcome is counted when it ends, as any attempt's.
    pub fn probe_passed(
        &self,
        route: &str,
        target: &Target,
        breaker: BreakerState,
        cooldown: Duration,
    ) {
        if !self.reporting.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.reported
            .lock()
            .insert((route.to_owned(), target.name.clone()), breaker);
        self.accumulate(route, target, |a| {
            a.probes_ok += 1;
            a.breaker = Some(breaker);
            a.cooldown_ms = cooldown.as_millis() as u64;
        });
        self.mark_urgent();
    }

    /// Counts an answer served by failover to a target the route does not certify.
    pub fn uncertified_failover(&self, route: &str, target: &Target) {
        self.accumulate(route, target, |a| a.uncertified_failovers += 1);
    }

    /// Takes what accumulated as a report (`None` when there is nothing to say). With
    /// `policy`, also states every breaker that is not closed and every open rate-limit window
    /// — what a new operator needs to hear at once.
    pub fn report(
        &self,
        sequence: u64,
        policy: Option<(&RouteSet, &crate::breaker::Breakers)>,
        equivalence: Vec<v1::EquivalenceSamples>,
    ) -> Option<v1::Report> {
        let urgent = self.urgent.swap(false, std::sync::atomic::Ordering::AcqRel);
        let mut pending = std::mem::take(&mut *self.pending.lock());
        if let Some((routes, breakers)) = policy {
            let windows = self.windows.lock().clone();
            let now = Instant::now();
            for route in routes.routes() {
                for t in route.all_targets() {
                    let breaker = breakers.existing(&t.upstream);
                    let state = breaker.as_ref().map_or(BreakerState::Closed, |b| b.state());
                    let window = windows.get(&t.upstream).filter(|w| w.until > now);
                    if state == BreakerState::Closed && window.is_none() {
                        continue;
                    }
                    let a = pending
                        .entry((route.id.name.clone(), t.name.clone()))
                        .or_default();
                    a.upstream = Some(t.upstream.clone());
                    a.breaker = Some(state);
                    a.cooldown_ms = breaker
                        .map_or(route.breaker.cooldown, |b| b.cooldown())
                        .as_millis() as u64;
                    if let Some(w) = window {
                        a.rate_limited_until_ms = a.rate_limited_until_ms.max(unix_ms(w.wall));
                    }
                }
            }
        }
        if pending.is_empty() && equivalence.is_empty() {
            return None;
        }
        // Bounded in size: what does not fit goes with the next report.
        if pending.len() > MAX_TARGETS_PER_REPORT {
            let rest = pending.split_off(
                &pending
                    .keys()
                    .nth(MAX_TARGETS_PER_REPORT)
                    .cloned()
                    .unwrap_or_default(),
            );
            let mut kept = self.pending.lock();
            for (k, older) in rest {
                kept.entry(k).or_default().absorb(older);
            }
        }
        let targets = pending
            .into_iter()
            .filter_map(|((route, target), a)| {
                Some(v1::TargetReport {
                    route,
                    target,
                    upstream: Some(upstream_to_proto(a.upstream.as_ref()?)),
                    outcomes: a.outcomes.into_iter().collect(),
                    latency: (!a.latency.is_empty()).then(|| a.latency.to_proto()),
                    breaker: proto_state(a.breaker.unwrap_or(BreakerState::Closed)) as i32,
                    cooldown_ms: a.cooldown_ms,
                    probes_ok: a.probes_ok,
                    probes_failed: a.probes_failed,
                    rate_limited_until_unix_ms: a.rate_limited_until_ms,
                    uncertified_failovers: a.uncertified_failovers,
                    first_token: (!a.first_token.is_empty()).then(|| a.first_token.to_proto()),
                    streams_held: a.streams_held,
                    token_time: (!a.token_time.is_empty()).then(|| a.token_time.to_proto()),
                })
            })
            .collect();
        Some(v1::Report {
            sequence,
            targets,
            equivalence,
            urgent,
        })
    }

    /// Puts the fleet's knowledge in force. Returns the upstreams the fleet just stopped
    /// skipping (a probe found them healthy), so their local breakers may probe at once.
    pub fn apply(&self, k: &v1::Knowledge) -> Vec<UpstreamKey> {
        let pod = self.pod.lock().clone();
        let upstreams: crate::ConfigMap<UpstreamKey, Directive> = k
            .upstreams
            .iter()
            .map(|d| {
                (
                    upstream_from_proto(d.upstream.as_ref()),
                    Directive {
                        open: d.open,
                        prober: !d.prober.is_empty() && d.prober == pod,
                        probe_at_ms: d.probe_at_unix_ms,
                        rate_limited_until_ms: d.rate_limited_until_unix_ms,
                        reason: d.reason.clone(),
                    },
                )
            })
            .collect();
        let before = self.view.load();
        let reopened = before
            .upstreams
            .iter()
            .filter(|(k, d)| d.open && !upstreams.get(*k).is_some_and(|n| n.open))
            .map(|(k, _)| k.clone())
            .collect();
        let retry_scales = k
            .routes
            .iter()
            .map(|r| (r.route.clone(), r.retry_budget_scale.clamp(0.0, 1.0)))
            .collect();
        self.view.store(Arc::new(View {
            live: true,
            sequence: k.sequence,
            upstreams,
            retry_scales,
        }));
        reopened
    }

    /// The control stream is gone: run on our own evidence.
    pub fn forget(&self) {
        self.view.store(Arc::new(View::default()));
    }

    /// The state for the admin endpoint.
    pub fn describe(&self) -> serde_json::Value {
        let view = self.view.load();
        let mut upstreams: Vec<serde_json::Value> = view
            .upstreams
            .iter()
            .map(|(k, d)| {
                serde_json::json!({
                    "baseUrl": k.base_url, "model": k.model,
                    "open": d.open, "prober": d.prober, "probeAtMs": d.probe_at_ms,
                    "rateLimitedUntilMs": d.rate_limited_until_ms, "reason": d.reason,
                })
            })
            .collect();
        upstreams.sort_by_key(|v| v.to_string());
        let now = Instant::now();
        let mut own: Vec<serde_json::Value> = self.windows.lock()
            .iter()
            .filter(|(_, w)| w.until > now)
            .map(|(k, w)| serde_json::json!({"baseUrl": k.base_url, "model": k.model, "rateLimitedUntilMs": unix_ms(w.wall)}))
            .collect();
        own.sort_by_key(|v| v.to_string());
        serde_json::json!({
            "live": view.live,
            "sequence": view.sequence,
            "upstreams": upstreams,
            "retryBudgetScales": view.retry_scales,
            "ownRateLimits": own,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(model: &str) -> Target {
        let set = plumb_policy::parse_routes_file(&format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: chat}}\nspec:\n  match: {{models: [chat]}}\n  targets:\n    - {{name: t, provider: openai, baseUrl: 'http://h/v1', model: {model}, credentials: {{none: true}}}}\n"
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        set.routes()[0].targets[0].clone()
    }

    fn outcome() -> Outcome {
        Outcome {
            latency: Duration::from_millis(20),
            breaker: BreakerState::Closed,
            cooldown: Duration::from_secs(1),
            probe: false,
            retry_after: None,
        }
    }

    fn knowledge(t: &Target, d: v1::UpstreamDirective) -> v1::Knowledge {
        v1::Knowledge {
            sequence: 1,
            upstreams: vec![v1::UpstreamDirective {
                upstream: Some(upstream_to_proto(&t.upstream)),
                ..d
            }],
            routes: Vec::new(),
            certifications: Vec::new(),
        }
    }

    #[test]
    fn reports_count_outcomes_and_say_when_a_state_changed() {
        let f = Fleet::new();
        f.set_pod("web-1");
        let t = target("gpt");
        f.record("chat", &t, None, outcome());
        f.record("chat", &t, Some(FailureClass::Timeout), outcome());
        let r = f
            .report(1, None, Vec::new())
            .unwrap_or_else(|| panic!("a report"));
        assert!(!r.urgent);
        assert_eq!(r.targets[0].outcomes.get("ok"), Some(&1));
        assert_eq!(r.targets[0].outcomes.get("timeout"), Some(&1));
        assert_eq!(r.targets[0].token_time, None, "no answer's rate yet");
        assert!(f.report(2, None, Vec::new()).is_none(), "deltas only");
        // An answer's time per token goes as a sketch.
        f.token_time("chat", &t, Duration::from_millis(5));
        let r = f.report(2, None, Vec::new()).unwrap_or_else(|| panic!());
        let sketch = plumb_knowledge::Sketch::from_proto(
            r.targets[0]
                .token_time
                .as_ref()
                .unwrap_or_else(|| panic!("a sketch")),
        );
        assert_eq!(sketch.count(), 1);
        f.record(
            "chat",
            &t,
            Some(FailureClass::ServerError),
            Outcome {
                breaker: BreakerState::Open,
                ..outcome()
            },
        );
        let r = f.report(3, None, Vec::new()).unwrap_or_else(|| panic!());
        assert!(r.urgent, "a breaker opening is urgent");
        assert_eq!(r.targets[0].breaker, v1::BreakerState::Open as i32);
    }

    #[test]
    fn a_probe_whose_stream_committed_is_reported_at_once_and_counts_no_attempt() {
        let f = Fleet::new();
        f.set_pod("web-1");
        let t = target("gpt");
        f.probe_passed("chat", &t, BreakerState::Closed, Duration::from_secs(2));
        let r = f
            .report(1, None, Vec::new())
            .unwrap_or_else(|| panic!("a report"));
        assert!(r.urgent, "the fleet hears it at once");
        let target = &r.targets[0];
        assert_eq!((target.probes_ok, target.probes_failed), (1, 0));
        assert_eq!(target.breaker, v1::BreakerState::Closed as i32);
        assert_eq!(target.cooldown_ms, 2_000);
        assert!(target.outcomes.is_empty(), "the stream's end counts it");
    }

    #[test]
    fn a_report_is_bounded_and_the_rest_goes_with_the_next() {
        let f = Fleet::new();
        f.set_pod("web-1");
        let t = target("gpt");
        for i in 0..MAX_TARGETS_PER_REPORT + 20 {
            f.record(&format!("route-{i:04}"), &t, None, outcome());
        }
        let first = f.report(1, None, Vec::new()).unwrap_or_else(|| panic!());
        assert_eq!(first.targets.len(), MAX_TARGETS_PER_REPORT);
        // What arrives meanwhile adds to what waits.
        f.record("route-0519", &t, Some(FailureClass::Timeout), outcome());
        let second = f.report(2, None, Vec::new()).unwrap_or_else(|| panic!());
        assert_eq!(second.targets.len(), 20);
        let last = &second.targets[19];
        assert_eq!(last.route, "route-0519");
        assert_eq!(
            (last.outcomes.get("ok"), last.outcomes.get("timeout")),
            (Some(&1), Some(&1))
        );
        assert!(f.report(3, None, Vec::new()).is_none());
    }

    #[test]
    fn an_own_rate_limit_window_holds_even_without_an_operator() {
        let f = Fleet::new();
        f.set_pod("web-1");
        let t = target("gpt");
        f.record(
            "chat",
            &t,
            Some(FailureClass::RateLimited),
            Outcome {
                retry_after: Some(Duration::from_secs(30)),
                ..outcome()
            },
        );
        assert!(matches!(f.gate(&t.upstream), Gate::RateLimited(_)));
        let r = f.report(1, None, Vec::new()).unwrap_or_else(|| panic!());
        assert!(r.urgent);
        assert!(r.targets[0].rate_limited_until_unix_ms > unix_ms_now() + 29_000);
        // Standalone (no control plane): the window holds, nothing accumulates for reports.
        let standalone = Fleet::new();
        standalone.record(
            "chat",
            &t,
            Some(FailureClass::RateLimited),
            Outcome {
                retry_after: Some(Duration::from_secs(30)),
                ..outcome()
            },
        );
        assert!(matches!(standalone.gate(&t.upstream), Gate::RateLimited(_)));
        assert!(standalone.report(1, None, Vec::new()).is_none());
    }

    #[test]
    fn the_fleet_skips_an_open_upstream_and_only_its_prober_probes_once_per_turn() {
        let f = Fleet::new();
        f.set_pod("web-1");
        let t = target("gpt");
        let past = unix_ms_now() - 1;
        f.apply(&knowledge(
            &t,
            v1::UpstreamDirective {
                open: true,
                prober: "web-2".into(),
                probe_at_unix_ms: past,
                reason: "the breaker of pod web-2 opened".into(),
                ..v1::UpstreamDirective::default()
            },
        ));
        assert_eq!(
            f.gate(&t.upstream),
            Gate::Open("the breaker of pod web-2 opened".into())
        );
        f.apply(&knowledge(
            &t,
            v1::UpstreamDirective {
                open: true,
                prober: "web-1".into(),
                probe_at_unix_ms: past,
                ..v1::UpstreamDirective::default()
            },
        ));
        assert_eq!(f.gate(&t.upstream), Gate::Probe);
        assert!(
            matches!(f.gate(&t.upstream), Gate::Open(_)),
            "one probe per turn"
        );
        let healthy = f.apply(&knowledge(&t, v1::UpstreamDirective::default()));
        assert_eq!(healthy, vec![t.upstream.clone()]);
        assert_eq!(f.gate(&t.upstream), Gate::Go);
        // A fleet window is honoured like an own one; losing the operator drops it.
        f.apply(&knowledge(
            &t,
            v1::UpstreamDirective {
                rate_limited_until_unix_ms: unix_ms_now() + 60_000,
                ..v1::UpstreamDirective::default()
            },
        ));
        assert!(matches!(f.gate(&t.upstream), Gate::RateLimited(_)));
        f.forget();
        assert_eq!(f.gate(&t.upstream), Gate::Go);
    }
}
