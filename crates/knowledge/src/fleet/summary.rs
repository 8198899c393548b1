//! What the store knows of one route target, for the `LlmRoute` status: its state and why, the
//! fleet's attempts, errors and latency in the window, the breaker consensus, and the fleet's
//! equivalence tally against the route's primaries.

use std::collections::BTreeMap;
use std::time::Duration;

use plumb_policy::UpstreamKey;
use plumb_proto::v1;

use super::window::Slots;
use super::{Fleet, Namespace, Upstream, failed};
use crate::sketch::Sketch;
use crate::total;

/// What a route target's status says of it. Text only in the status, through
/// [`TargetState::as_str`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TargetState {
    /// Reported on in the window, and neither open, rate limited nor degraded.
    Healthy,
    /// Half or more of at least 10 attempts in the window failed.
    Degraded,
    /// Skipped by every sidecar until the elected prober finds it healthy.
    Open,
    /// Nobody sends before the provider's announced rate-limit window ends.
    RateLimited,
    /// No report in the window.
    #[default]
    Unknown,
}

/// What the store knows of one route target, for its status.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TargetSummary {
    /// The target's name.
    pub name: String,
    /// Its state.
    pub state: TargetState,
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
    /// The p99 of its streams' first tokens in the window, and how many there were.
    pub first_token: Option<(Duration, u64)>,
    /// The p99 of its answers' time per output token in the window, and how many answers.
    pub token_time: Option<(Duration, u64)>,
    /// Streamed attempts held in the window because its streams broke.
    pub streams_held: u64,
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

impl TargetState {
    /// The state as the status writes it: `Healthy`, `Degraded`, `Open`, `RateLimited` or
    /// `Unknown`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TargetState::Healthy => "Healthy",
            TargetState::Degraded => "Degraded",
            TargetState::Open => "Open",
            TargetState::RateLimited => "RateLimited",
            TargetState::Unknown => "Unknown",
        }
    }

    /// The state a status wrote ([`TargetState::as_str`]); `None` for any other text.
    pub fn parse(text: &str) -> Option<TargetState> {
        match text {
            "Healthy" => Some(TargetState::Healthy),
            "Degraded" => Some(TargetState::Degraded),
            "Open" => Some(TargetState::Open),
            "RateLimited" => Some(TargetState::RateLimited),
            "Unknown" => Some(TargetState::Unknown),
            _ => None,
        }
    }
}

impl TargetSummary {
    /// Whether it counts as healthy in the `Healthy` column: healthy, or not known to be
    /// otherwise.
    pub fn healthy(&self) -> bool {
        match self.state {
            TargetState::Healthy | TargetState::Unknown => true,
            TargetState::Degraded | TargetState::Open | TargetState::RateLimited => false,
        }
    }
}

impl Fleet {
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
        let slot = Slots::of(self.settings.window).at(now_ms);
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
                    ..TargetSummary::default()
                };
                let Some(ns) = ns else {
                    return s;
                };
                if !primary {
                    s.equivalence = ns.tally(route, key, &primaries);
                }
                if let Some(u) = ns.upstreams.get(key) {
                    u.summarise(&mut s, slot, now_ms, self.settings.window);
                }
                s
            })
            .collect()
    }
}

impl Namespace {
    /// The fleet's agreements and samples of `candidate` against any of `primaries` on
    /// `route`, if it has samples.
    fn tally(
        &self,
        route: &str,
        candidate: &UpstreamKey,
        primaries: &[&UpstreamKey],
    ) -> Option<(u64, u64)> {
        let tally = self
            .certs
            .iter()
            .filter(|((r, p, c), _)| r == route && c == candidate && primaries.contains(&p))
            .fold((0u64, 0u64), |acc, (_, t)| {
                (acc.0.saturating_add(t.0), acc.1.saturating_add(t.1))
            });
        (tally.1 > 0).then_some(tally)
    }
}

impl Upstream {
    /// Fills in what the store knows of the upstream of `s`: its numbers over the window up to
    /// `slot`, and its state.
    fn summarise(&self, s: &mut TargetSummary, slot: i64, now_ms: i64, window: Duration) {
        let mut latency = Sketch::new();
        for t in self.traffic.window(slot) {
            for (o, n) in &t.outcomes {
                s.attempts = s.attempts.saturating_add(*n);
                if failed(o) {
                    let errors = s.errors.entry(o.clone()).or_default();
                    *errors = errors.saturating_add(*n);
                }
            }
            latency.merge(&t.latency);
            s.streams_held = s.streams_held.saturating_add(t.streams_held);
        }
        let failures = total(s.errors.values());
        if s.attempts > 0 {
            s.error_rate = failures as f64 / s.attempts as f64;
        }
        let first = self.first_tokens(slot);
        s.first_token = first.quantile(0.99).map(|p99| (p99, first.count()));
        let per_token = self.token_times(slot);
        s.token_time = per_token.quantile(0.99).map(|p99| (p99, per_token.count()));
        s.latency = [0.5, 0.95, 0.99]
            .map(|q| latency.quantile(q))
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .and_then(|v| v.try_into().ok());
        s.breakers_reporting = self.breakers.len() as u32;
        s.breakers_open = self
            .breakers
            .values()
            .filter(|b| **b == v1::BreakerState::Open)
            .count() as u32;
        if let Some(open) = &self.open {
            s.state = TargetState::Open;
            s.open_since_ms = Some(open.since_ms);
            s.message = format!(
                "skipped by every sidecar: {}; {}",
                open.reason,
                match &open.prober {
                    Some(p) => format!("pod {p} probes it"),
                    None => "a prober is being elected".to_owned(),
                }
            );
        } else if self.rate_limited_until_ms > now_ms {
            s.state = TargetState::RateLimited;
            s.rate_limited_until_ms = Some(self.rate_limited_until_ms);
            s.message = "the provider announced a rate-limit window; nobody sends before it ends"
                .to_owned();
        } else if s.attempts >= 10 && s.error_rate >= 0.5 {
            s.state = TargetState::Degraded;
            s.message = format!(
                "{:.0}% of {} attempts failed in the last {}s",
                s.error_rate * 100.0,
                s.attempts,
                window.as_secs()
            );
        } else if s.attempts > 0 || !self.breakers.is_empty() {
            s.state = TargetState::Healthy;
            if s.breakers_open > 0 {
                s.message = format!(
                    "{} of {} sidecars still hold their own breaker open",
                    s.breakers_open, s.breakers_reporting
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixtures::*;

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
        assert_eq!(s.state, TargetState::Healthy);
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
    fn every_state_reads_back_from_the_text_the_status_holds() {
        let all = [
            TargetState::Healthy,
            TargetState::Degraded,
            TargetState::Open,
            TargetState::RateLimited,
            TargetState::Unknown,
        ];
        for state in all {
            assert_eq!(TargetState::parse(state.as_str()), Some(state));
        }
        assert_eq!(TargetState::parse("open"), None, "the text is exact");
        assert_eq!(TargetState::default(), TargetState::Unknown);
        let healthy: Vec<bool> = all
            .map(|state| {
                TargetSummary {
                    state,
                    ..TargetSummary::default()
                }
                .healthy()
            })
            .to_vec();
        assert_eq!(healthy, [true, false, false, false, true]);
    }

    #[test]
    fn sidecars_still_holding_their_own_breaker_open_are_counted_in_the_message() {
        let mut f = fleet_of(&["a", "b", "c"]);
        let mut t = target("chat", "primary", "gpt");
        t.breaker = v1::BreakerState::Open as i32;
        f.report("team-a", "a", &report(vec![t]), 1_000);
        // Pod c's sidecar reports a breaker state the store does not know: reporting, not open.
        let mut t = target("chat", "primary", "gpt");
        t.breaker = 42;
        f.report("team-a", "c", &report(vec![t]), 1_500);
        let mut ok = target("chat", "primary", "gpt");
        ok.probes_ok = 1;
        ok.outcomes = outcomes(&[("ok", 1)]);
        f.report("team-a", "b", &report(vec![ok]), 2_000);
        let targets = [("primary".to_owned(), key("gpt"), true)];
        let s = &f.summary("team-a", "chat", &targets, 2_000)[0];
        assert_eq!(s.state, TargetState::Healthy);
        assert_eq!((s.breakers_open, s.breakers_reporting), (1, 3));
        assert_eq!(
            s.message,
            "1 of 3 sidecars still hold their own breaker open"
        );
    }
}
