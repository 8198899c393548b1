//! Circuit breakers, one per upstream (base URL, model, credential source), shared by every
//! route that uses it.
//!
//! ```text
//!            consecutive failures ≥ N, or failure rate ≥ r over the window, or a trip class
//!   Closed ──────────────────────────────────────────────────────────────────────────▶ Open
//!     ▲                                                                                 │
//!     │ a probe succeeds                                       cool-down passed         │
//!     └──────────────── HalfOpen (at most `half_open_probes` at once) ◀─────────────────┘
//!                           │ a probe fails: Open again, for the cool-down
//!                           └──────────────────────────────────────────────────────────▶
//! ```
//!
//! Classes that are the caller's fault never count ([`BreakerEffect::Ignore`]).
//!
//! The cool-down adapts, as outlier detection's ejection time does: the first is short (a
//! provider that recovers in seconds gets its traffic back in seconds), each failed probe
//! doubles it up to the route's `maxCooldown` (a long outage is probed ever more rarely), and a
//! success resets it. A streamed probe succeeds at its commit (the upstream answered), so
//! traffic returns then, not when the probe's answer ends; the rest of its stream counts as an
//! ordinary attempt.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use plumb_policy::{BreakerEffect, BreakerSettings, FailureClass, UpstreamKey};
use tokio::time::Instant;

use crate::window::SlidingWindow;

/// What the breaker shows from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Probes may pass.
    HalfOpen,
    /// Traffic is refused until the cool-down passes.
    Open,
}

impl BreakerState {
    /// The name in spans: `closed`, `half_open`, `open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::HalfOpen => "half_open",
            BreakerState::Open => "open",
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub const fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct Breaker {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: BreakerSettings,
    state: State,
    consecutive: u32,
    /// Successes and failures.
    window: SlidingWindow,
    /// Times opened since the last success: the cool-down doubles with each.
    openings: u32,
    /// The cool-down of the present (or last) opening.
    cooldown: Duration,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { in_flight: u32 },
}

/// Whether an attempt may go to the upstream.
#[derive(Debug)]
pub enum Admission {
    /// Yes; report the outcome on the permit.
    Allowed(Permit),
    /// No: open (or half-open with every probe slot taken) until about `retry_at`.
    Refused {
        /// When a probe may next be let through.
        retry_at: Instant,
    },
}

/// Permission to send one attempt. Report its outcome with [`Permit::success`] or
/// [`Permit::failure`]; dropping it unreported (a cancelled request) frees a probe slot and
/// counts for nothing.
#[derive(Debug)]
pub struct Permit {
    breaker: Arc<Breaker>,
    probe: bool,
    done: bool,
}

impl Permit {
    /// Whether this attempt is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    /// The attempt succeeded. Returns the state after it.
    pub fn success(mut self) -> BreakerState {
        self.done = true;
        self.breaker.record(None, self.probe, Instant::now())
    }

    /// The attempt failed with `class`. Returns the state after it.
    pub fn failure(mut self, class: FailureClass) -> BreakerState {
        self.done = true;
        self.breaker.record(Some(class), self.probe, Instant::now())
    }

    /// The attempt ended with nothing learnt of the upstream (the client went away): nothing
    /// is counted and a probe slot is freed. Returns the state.
    pub fn abandon(self) -> BreakerState {
        let breaker = self.breaker.clone();
        drop(self);
        breaker.state()
    }

    /// A stream committed: the upstream answered. A probe's verdict is given now — a success,
    /// which closes the breaker — so traffic returns at once rather than when the probe's
    /// stream ends (a long answer would keep every other request away meanwhile); the rest of
    /// the stream is settled on the permit returned, as an ordinary attempt. Any other permit
    /// comes back as it was. Returns the state after it.
    pub fn commit(self) -> (BreakerState, Permit) {
        if !self.probe {
            let state = self.breaker.state();
            return (state, self);
        }
        let breaker = self.breaker.clone();
        let state = self.success();
        let rest = Permit {
            breaker,
            probe: false,
            done: false,
        };
        (state, rest)
    }

    /// Settles the attempt: a success with `None`, else a failure of that class.
    pub fn settle(self, failure: Option<FailureClass>) -> BreakerState {
        match failure {
            None => self.success(),
            Some(class) => self.failure(class),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done && self.probe {
            let mut inner = self.breaker.inner.lock();
            if let State::HalfOpen { in_flight } = &mut inner.state {
                *in_flight = in_flight.saturating_sub(1);
            }
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Breaker {
        let now = Instant::now();
        Breaker {
            inner: Mutex::new(Inner {
                window: SlidingWindow::new(settings.window, now),
                cooldown: settings.cooldown,
                settings,
                state: State::Closed,
                consecutive: 0,
                openings: 0,
            }),
        }
    }

    /// Applies new settings (a reloaded route); the state is kept.
    pub fn update(&self, settings: BreakerSettings) {
        let mut inner = self.inner.lock();
        if inner.settings != settings {
            if inner.settings.window != settings.window {
                inner.window = SlidingWindow::new(settings.window, Instant::now());
            }
            inner.settings = settings;
        }
    }

    /// Asks to send an attempt.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        let probes = inner.settings.half_open_probes;
        let cooldown = inner.settings.cooldown;
        let probe = match &mut inner.state {
            State::Closed => false,
            State::Open { until } if now < *until => {
                return Admission::Refused { retry_at: *until };
            }
            State::Open { .. } => {
                inner.state = State::HalfOpen { in_flight: 1 };
                true
            }
            State::HalfOpen { in_flight } if *in_flight < probes => {
                *in_flight += 1;
                true
            }
            State::HalfOpen { .. } => {
                return Admission::Refused {
                    retry_at: now + cooldown.min(Duration::from_secs(1)),
                };
            }
        };
        Admission::Allowed(Permit {
            breaker: self.clone(),
            probe,
            done: false,
        })
    }

    /// A probe the fleet elected this sidecar to send, whatever the local state: an open
    /// breaker goes half-open for it; a closed one stays closed (the probe's verdict still
    /// counts as one).
    pub fn admit_probe(self: &Arc<Self>) -> Permit {
        let mut inner = self.inner.lock();
        match &mut inner.state {
            State::Open { .. } => inner.state = State::HalfOpen { in_flight: 1 },
            State::HalfOpen { in_flight } => *in_flight += 1,
            State::Closed => {}
        }
        Permit {
            breaker: self.clone(),
            probe: true,
            done: false,
        }
    }

    /// The fleet found the upstream healthy: an open breaker may probe at once instead of
    /// waiting out its cool-down.
    pub fn probe_now(&self) {
        let mut inner = self.inner.lock();
        if let State::Open { until } = &mut inner.state {
            *until = Instant::now();
        }
    }

    /// The cool-down in force: the present opening's, or the first one's when closed.
    pub fn cooldown(&self) -> Duration {
        let inner = self.inner.lock();
        match inner.state {
            State::Closed => inner.settings.cooldown,
            State::Open { .. } | State::HalfOpen { .. } => inner.cooldown,
        }
    }

    /// The state now (an open breaker whose cool-down passed shows as half-open).
    pub fn state(&self) -> BreakerState {
        let inner = self.inner.lock();
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// When an open breaker lets its first probe through (`None` when not open).
    pub fn opens_for_probes_at(&self) -> Option<Instant> {
        match self.inner.lock().state {
            State::Open { until } => Some(until),
            State::Closed | State::HalfOpen { .. } => None,
        }
    }

    fn record(&self, failure: Option<FailureClass>, probe: bool, now: Instant) -> BreakerState {
        let mut inner = self.inner.lock();
        let effect = failure.map_or(BreakerEffect::Ignore, FailureClass::breaker_effect);
        if probe && let State::HalfOpen { in_flight } = &mut inner.state {
            *in_flight = in_flight.saturating_sub(1);
        }
        match (failure, effect) {
            // The caller's fault: not a verdict on the upstream, probe or not.
            (Some(_), BreakerEffect::Ignore) => {}
            (None, _) => {
                inner.consecutive = 0;
                inner.window.add(now, 1, 0);
                if probe || matches!(inner.state, State::HalfOpen { .. }) {
                    inner.state = State::Closed;
                    inner.window.clear(now);
                }
                inner.openings = 0;
            }
            (Some(_), BreakerEffect::Trip) => inner.open(now),
            (Some(_), BreakerEffect::Count) => {
                inner.consecutive += 1;
                inner.window.add(now, 0, 1);
                let (ok, bad) = inner.window.totals(now);
                let total = ok + bad;
                let s = inner.settings;
                let rate_trips =
                    total >= s.min_requests && f64::from(bad) >= s.failure_rate * f64::from(total);
                let in_half_open = matches!(inner.state, State::HalfOpen { .. });
                if probe
                    || in_half_open
                    || inner.consecutive >= s.consecutive_failures
                    || rate_trips
                {
                    inner.open(now);
                }
            }
        }
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

impl Inner {
    fn open(&mut self, now: Instant) {
        let s = self.settings;
        self.cooldown = s
            .cooldown
            .saturating_mul(2u32.saturating_pow(self.openings.min(20)))
            .min(s.max_cooldown.max(s.cooldown));
        self.openings = self.openings.saturating_add(1);
        self.state = State::Open {
            until: now + self.cooldown,
        };
        self.consecutive = 0;
        self.window.clear(now);
    }
}

/// Every upstream's breaker.
#[derive(Debug, Default)]
pub struct Breakers {
    map: RwLock<crate::ConfigMap<UpstreamKey, Arc<Breaker>>>,
}

impl Breakers {
    /// The breaker of an upstream, created closed on first use; its settings follow the most
    /// recent route that asked.
    pub fn get(&self, key: &UpstreamKey, settings: BreakerSettings) -> Arc<Breaker> {
        if let Some(b) = self.map.read().get(key) {
            return b.clone();
        }
        let mut map = self.map.write();
        map.entry(key.clone())
            .or_insert_with(|| Arc::new(Breaker::new(settings)))
            .clone()
    }

    /// The breaker of an upstream, if one was made.
    pub fn existing(&self, key: &UpstreamKey) -> Option<Arc<Breaker>> {
        self.map.read().get(key).cloned()
    }

    /// Applies a new policy's settings to the breakers of its upstreams.
    pub fn configure(&self, key: &UpstreamKey, settings: BreakerSettings) {
        self.get(key, settings).update(settings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_requests: 10,
            cooldown: Duration::from_secs(10),
            max_cooldown: Duration::from_secs(40),
            half_open_probes: 1,
        }
    }

    fn allowed(b: &Arc<Breaker>) -> Permit {
        match b.admit() {
            Admission::Allowed(p) => p,
            Admission::Refused { .. } => panic!("refused"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_five_consecutive_overloads() {
        let b = Arc::new(Breaker::new(settings()));
        for i in 0..4 {
            assert_eq!(
                allowed(&b).failure(FailureClass::Overloaded),
                BreakerState::Closed,
                "failure {i}"
            );
        }
        assert_eq!(
            allowed(&b).failure(FailureClass::Overloaded),
            BreakerState::Open
        );
        assert!(matches!(b.admit(), Admission::Refused { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_consecutive_count() {
        let b = Arc::new(Breaker::new(settings()));
        for _ in 0..4 {
            allowed(&b).failure(FailureClass::ServerError);
        }
        allowed(&b).success();
        for _ in 0..4 {
            assert_eq!(
                allowed(&b).failure(FailureClass::ServerError),
                BreakerState::Closed
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn failure_rate_over_the_window_opens_it() {
        let b = Arc::new(Breaker::new(settings()));
        // Alternate: never five in a row, but half of ten fail (the tenth is a failure).
        for i in 0..10 {
            let p = allowed(&b);
            if i % 2 == 1 {
                p.failure(FailureClass::Timeout)
            } else {
                p.success()
            };
        }
        assert_eq!(b.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn old_failures_leave_the_window() {
        let b = Arc::new(Breaker::new(settings()));
        for _ in 0..4 {
            allowed(&b).failure(FailureClass::Timeout);
            allowed(&b).success();
        }
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..5 {
            allowed(&b).success();
        }
        for _ in 0..4 {
            allowed(&b).failure(FailureClass::Timeout);
            allowed(&b).success();
        }
        // 4 failures of 13 in the window, below 50 %.
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn callers_faults_never_count() {
        let b = Arc::new(Breaker::new(settings()));
        for _ in 0..50 {
            allowed(&b).failure(FailureClass::BadRequest);
            allowed(&b).failure(FailureClass::ContextLength);
            allowed(&b).failure(FailureClass::ContentFilter);
        }
        assert_eq!(b.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn auth_failures_trip_at_once() {
        let b = Arc::new(Breaker::new(settings()));
        assert_eq!(allowed(&b).failure(FailureClass::Auth), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cooldown_one_probe_decides() {
        let b = Arc::new(Breaker::new(settings()));
        allowed(&b).failure(FailureClass::Auth);
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(matches!(b.admit(), Admission::Refused { .. }));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        let probe = allowed(&b);
        assert!(probe.is_probe());
        assert!(
            matches!(b.admit(), Admission::Refused { .. }),
            "one probe at a time"
        );
        assert_eq!(
            probe.failure(FailureClass::Overloaded),
            BreakerState::Open,
            "a failed probe reopens"
        );
        tokio::time::advance(Duration::from_secs(20)).await;
        let probe = allowed(&b);
        assert_eq!(probe.success(), BreakerState::Closed);
        assert!(!allowed(&b).is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn each_failed_probe_doubles_the_cool_down_to_its_cap_and_a_success_resets_it() {
        let b = Arc::new(Breaker::new(settings()));
        allowed(&b).failure(FailureClass::ServerError);
        for _ in 0..4 {
            allowed(&b).failure(FailureClass::ServerError);
        }
        // Opened: 10 s, then 20 s, 40 s, and 40 s again (the cap) after each failed probe.
        for expected in [10, 20, 40, 40] {
            assert_eq!(b.cooldown(), Duration::from_secs(expected));
            tokio::time::advance(Duration::from_secs(expected) - Duration::from_millis(1)).await;
            assert!(
                matches!(b.admit(), Admission::Refused { .. }),
                "still cooling down before {expected} s"
            );
            tokio::time::advance(Duration::from_millis(1)).await;
            let probe = allowed(&b);
            assert!(probe.is_probe());
            assert_eq!(probe.failure(FailureClass::ServerError), BreakerState::Open);
        }
        // A probe that succeeds closes it and resets the cool-down: the next opening is short.
        tokio::time::advance(Duration::from_secs(40)).await;
        assert_eq!(allowed(&b).success(), BreakerState::Closed);
        assert_eq!(b.cooldown(), Duration::from_secs(10));
        for _ in 0..5 {
            allowed(&b).failure(FailureClass::Overloaded);
        }
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.cooldown(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_whose_stream_commits_closes_the_breaker_at_once() {
        let b = Arc::new(Breaker::new(settings()));
        allowed(&b).failure(FailureClass::Auth);
        tokio::time::advance(Duration::from_secs(10)).await;
        let probe = allowed(&b);
        assert!(probe.is_probe());
        let (state, rest) = probe.commit();
        assert_eq!(state, BreakerState::Closed);
        assert!(!rest.is_probe());
        // Traffic flows while the probe's stream goes on; its end counts as any attempt's.
        assert!(!allowed(&b).is_probe());
        assert_eq!(
            rest.failure(FailureClass::StreamInterrupted),
            BreakerState::Closed
        );
        // A permit that is not a probe comes back as it was.
        let (state, p) = allowed(&b).commit();
        assert_eq!(state, BreakerState::Closed);
        assert!(!p.is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_frees_its_slot() {
        let b = Arc::new(Breaker::new(settings()));
        allowed(&b).failure(FailureClass::Auth);
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(allowed(&b));
        assert!(allowed(&b).is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fleet_probe_passes_an_open_breaker_and_its_verdict_counts() {
        let b = Arc::new(Breaker::new(settings()));
        allowed(&b).failure(FailureClass::Auth);
        let probe = b.admit_probe();
        assert!(probe.is_probe());
        assert_eq!(probe.success(), BreakerState::Closed);
        // On a closed breaker a failed fleet probe opens it.
        assert_eq!(
            b.admit_probe().failure(FailureClass::Overloaded),
            BreakerState::Open
        );
        // The fleet found it healthy: probe now, not after the cool-down.
        b.probe_now();
        assert!(allowed(&b).is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn upstreams_share_one_breaker() {
        let breakers = Breakers::default();
        let key = UpstreamKey {
            base_url: "http://a".into(),
            model: "m".into(),
            credential: "none".into(),
        };
        let b1 = breakers.get(&key, settings());
        let b2 = breakers.get(&key, settings());
        assert!(Arc::ptr_eq(&b1, &b2));
        let other = UpstreamKey {
            credential: "env:K".into(),
            ..key
        };
        assert!(!Arc::ptr_eq(&b1, &breakers.get(&other, settings())));
    }
}
