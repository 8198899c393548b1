//! Deadlines learned per upstream: the first-token deadline in force is `multiplier × p99` of
//! the upstream's recent first tokens, at least the route's floor and at most its
//! `firstToken`, once enough were seen. A provider whose first token comes in 100 ms is given
//! up on in about a second, not thirty; one that takes twenty seconds is never cut early.
//!
//! "Recent" is the last 500 to 1,000 samples (two sketches, the older dropped when the newer
//! fills), and nothing older than ten minutes. An attempt cut by a learned deadline counts as a
//! sample at the time it was given, so a provider that slows down gradually pushes its p99 up
//! and the deadline follows it instead of cutting every attempt.
//!
//! The arithmetic runs when a sample is added; reading the deadline in force is a lock and a
//! copy.
//!
//! A stream's response head is learned apart from its first token: the head deadline in force
//! is `multiplier × p99` of the upstream's recent heads, at least the floor and at most the
//! first-token deadline in force. A provider that sends its head at once and then thinks for
//! twenty seconds has a hung connection cut in about a second, not when the first token is
//! late; one whose head itself takes two seconds learns that, as its first token does.
//!
//! Unstreamed answers are waited for as long as the upstream's own generation rate calls for:
//! its time per output token is learned from whole answers (their time ÷ the output tokens
//! their usage counts) and from whole streams (the time from commit to the end ÷ their output
//! tokens), and an unstreamed request that asks for up to `max_tokens` gets the first-token
//! deadline in force plus `max_tokens × multiplier × p99` of that time, at least the route's
//! `firstByte` and at most its `streamMax`; with too few samples, 50 ms a token as before.
//!
//! The same record holds how the upstream's recent streams ended (the last two minutes): while
//! the share that broke mid-stream is at or above the route's `adaptiveHold.failureRate`, its
//! streams are held for some events before they reach the client, so a break fails over
//! invisibly; when the breaks stop, streams commit at once again.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use plumb_knowledge::Sketch;
use plumb_policy::{AdaptiveHold, Deadlines, PER_OUTPUT_TOKEN, Rate, RouteSet, UpstreamKey};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::window::SlidingWindow;

/// Samples in the newer sketch before it becomes the older one.
const GENERATION: u64 = 500;
/// The oldest a generation may be.
const MAX_AGE: Duration = Duration::from_secs(600);
/// How far back stream outcomes count.
const STREAMS: Duration = Duration::from_secs(120);
/// The fewest output tokens an answer must have for its time per token to be a sample: in a
/// shorter one the time before the first token weighs too much.
pub const MIN_RATE_TOKENS: u64 = 32;

/// What was learned of every upstream: its first tokens, response heads, silences inside a
/// stream and time per output token (for the deadlines), and how its recent streams ended (for
/// the adaptive hold).
#[derive(Debug, Default)]
pub struct Learned {
    map: RwLock<crate::ConfigMap<UpstreamKey, Arc<Mutex<Track>>>>,
    /// The fleet's recent first tokens per upstream, as the operator last pushed them: a
    /// sidecar that has seen too few of its own learns from these.
    fleet: RwLock<crate::ConfigMap<UpstreamKey, Basis>>,
    /// The fleet's recent time per output token per upstream, likewise.
    fleet_token_times: RwLock<crate::ConfigMap<UpstreamKey, Basis>>,
}

/// One upstream's recent first tokens and stream gaps, and how its recent streams ended.
#[derive(Debug)]
struct Track {
    first_tokens: Generations,
    /// The longest silence inside each whole stream.
    gaps: Generations,
    /// The time per output token of whole answers and whole streams.
    token_times: Generations,
    /// The time to a stream's response head.
    heads: Generations,
    /// Streams that ended whole, and streams that broke mid-stream.
    streams: SlidingWindow,
}

/// Recent samples of one measure: the last 500 to 1,000, within ten minutes.
#[derive(Debug)]
struct Generations {
    newer: Sketch,
    older: Sketch,
    started: Instant,
    /// The p99 of both generations and their samples, computed when a sample is added.
    p99: Option<Duration>,
    samples: u64,
}

/// What a learned deadline was learned from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Basis {
    /// The upstream's recent p99.
    pub p99: Duration,
    /// Samples it is drawn from.
    pub samples: u64,
    /// Whether they are the fleet's (pushed by the operator) rather than this sidecar's own.
    pub fleet: bool,
}

impl Generations {
    fn new(now: Instant) -> Generations {
        Generations {
            newer: Sketch::new(),
            older: Sketch::new(),
            started: now,
            p99: None,
            samples: 0,
        }
    }

    fn add(&mut self, d: Duration, now: Instant) {
        if now.duration_since(self.started) >= MAX_AGE {
            // Nothing recent enough to keep.
            *self = Generations::new(now);
        }
        if self.newer.count() >= GENERATION {
            self.older = std::mem::take(&mut self.newer);
            self.started = now;
        }
        self.newer.add(d);
        self.p99 = Sketch::quantile_of_both(&self.older, &self.newer, 0.99);
        self.samples = self.older.count().saturating_add(self.newer.count());
    }

    fn basis(&self) -> Option<Basis> {
        Some(Basis {
            p99: self.p99?,
            samples: self.samples,
            fleet: false,
        })
    }
}

impl Track {
    fn new(now: Instant) -> Track {
        Track {
            first_tokens: Generations::new(now),
            gaps: Generations::new(now),
            token_times: Generations::new(now),
            heads: Generations::new(now),
            streams: SlidingWindow::new(STREAMS, now),
        }
    }
}

/// A learned deadline: `multiplier × p99` within the floor and the route's `ceiling`, once
/// enough samples were seen; the ceiling itself otherwise.
fn learned(d: &Deadlines, basis: Option<Basis>, ceiling: Duration) -> (Duration, Option<Basis>) {
    basis
        .and_then(|b| Some((d.adaptive.learned(b.p99, b.samples, ceiling)?, Some(b))))
        .unwrap_or((ceiling, None))
}

impl Learned {
    fn track(&self, upstream: &UpstreamKey) -> Arc<Mutex<Track>> {
        if let Some(t) = self.map.read().get(upstream) {
            return t.clone();
        }
        self.map
            .write()
            .entry(upstream.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Track::new(Instant::now()))))
            .clone()
    }

    /// A stream's first token came after `latency`.
    pub fn first_token(&self, upstream: &UpstreamKey, latency: Duration) {
        self.track(upstream)
            .lock()
            .first_tokens
            .add(latency, Instant::now());
    }

    /// A whole stream's longest silence between two reads.
    pub fn stream_gap(&self, upstream: &UpstreamKey, gap: Duration) {
        self.track(upstream).lock().gaps.add(gap, Instant::now());
    }

    /// What was learned of an upstream's first tokens (`None`: nothing yet).
    pub fn basis(&self, upstream: &UpstreamKey) -> Option<Basis> {
        self.map.read().get(upstream)?.lock().first_tokens.basis()
    }

    /// The stream-idle deadline in force for `upstream` under a route's `deadlines`: learned
    /// from the longest silences of its recent whole streams, at most the route's
    /// `streamIdle`.
    pub fn stream_idle_deadline(
        &self,
        upstream: &UpstreamKey,
        d: &Deadlines,
    ) -> (Duration, Option<Basis>) {
        let basis = self
            .map
            .read()
            .get(upstream)
            .and_then(|t| t.lock().gaps.basis());
        learned(d, basis, d.stream_idle)
    }

    /// A stream cut by a learned stream-idle deadline: a sample at the time it was given.
    pub fn stalled_at(&self, upstream: &UpstreamKey, d: &Deadlines, after: Duration) {
        if self.stream_idle_deadline(upstream, d).1.is_some() {
            self.stream_gap(upstream, after);
        }
    }

    /// The first-token deadline in force for `upstream` under a route's `deadlines`, and what
    /// it was learned from (`None`: the route's own, not learned).
    pub fn first_token_deadline(
        &self,
        upstream: &UpstreamKey,
        d: &Deadlines,
    ) -> (Duration, Option<Basis>) {
        let enough = |b: &Basis| b.samples >= u64::from(d.adaptive.min_samples);
        // Its own first tokens first; the fleet's while it has seen too few.
        let basis = self
            .basis(upstream)
            .filter(enough)
            .or_else(|| self.fleet.read().get(upstream).copied());
        learned(d, basis, d.first_token)
    }

    /// A stream's response head came after `latency`.
    pub fn stream_head(&self, upstream: &UpstreamKey, latency: Duration) {
        self.track(upstream)
            .lock()
            .heads
            .add(latency, Instant::now());
    }

    /// The deadline in force for a stream's response head on `upstream`: learned from its
    /// recent heads, at least the floor, at most the first-token deadline in force (and the
    /// route's `firstByte`); the first-token deadline in force until it is learned.
    pub fn head_deadline(
        &self,
        upstream: &UpstreamKey,
        d: &Deadlines,
    ) -> (Duration, Option<Basis>) {
        self.head_deadline_under(upstream, d, self.first_token_deadline(upstream, d).0)
    }

    /// [`Learned::head_deadline`], with the first-token deadline in force already known.
    fn head_deadline_under(
        &self,
        upstream: &UpstreamKey,
        d: &Deadlines,
        first_token: Duration,
    ) -> (Duration, Option<Basis>) {
        let basis = self
            .map
            .read()
            .get(upstream)
            .and_then(|t| t.lock().heads.basis());
        let (deadline, basis) = learned(d, basis, first_token);
        (deadline.min(d.first_byte), basis)
    }

    /// A stream whose head was cut by a learned head deadline: a sample at the time it was
    /// given, as for first tokens.
    pub fn head_cut_at(&self, upstream: &UpstreamKey, d: &Deadlines, after: Duration) {
        if self.head_deadline(upstream, d).1.is_some() {
            self.stream_head(upstream, after);
        }
    }

    /// A route's deadlines for a streamed attempt on `upstream`: the first-token and head
    /// deadlines learned (the head is the first byte).
    pub fn deadlines(&self, upstream: &UpstreamKey, d: &Deadlines) -> Deadlines {
        let first_token = self.first_token_deadline(upstream, d).0;
        Deadlines {
            first_token,
            first_byte: self.head_deadline_under(upstream, d, first_token).0,
            ..*d
        }
    }

    /// An attempt cut by a learned first-token deadline: it counts as a sample at the time it
    /// was given, so a provider that slows down moves the deadline up with it.
    pub fn cut_at(&self, upstream: &UpstreamKey, d: &Deadlines, after: Duration) {
        if self.first_token_deadline(upstream, d).1.is_some() {
            self.first_token(upstream, after);
        }
    }

    /// An answer of `tokens` output tokens took `writing` to write (a whole answer: from
    /// sending to its end; a stream: from its first token to its end): a sample of the time
    /// per token, when it is long enough to say. Returns the sample taken, for the fleet.
    pub fn generated(
        &self,
        upstream: &UpstreamKey,
        writing: Duration,
        tokens: u64,
    ) -> Option<Duration> {
        if tokens < MIN_RATE_TOKENS {
            return None;
        }
        let per_token = Duration::from_secs_f64(writing.as_secs_f64() / tokens as f64);
        self.track(upstream)
            .lock()
            .token_times
            .add(per_token, Instant::now());
        Some(per_token)
    }

    /// What was learned of an upstream's time per output token: its own once it has seen
    /// enough, the fleet's until then (`None`: nothing yet).
    fn token_time_basis(&self, upstream: &UpstreamKey, d: &Deadlines) -> Option<Basis> {
        let enough = |b: &Basis| b.samples >= u64::from(d.adaptive.min_samples);
        let own = self
            .map
            .read()
            .get(upstream)
            .and_then(|t| t.lock().token_times.basis());
        own.filter(enough)
            .or_else(|| self.fleet_token_times.read().get(upstream).copied())
            .or(own)
    }

    /// The generation rate learned of `upstream` under a route's `deadlines` and what it was
    /// learned from (`None`: too few samples, or not learning).
    pub fn rate(&self, upstream: &UpstreamKey, d: &Deadlines) -> Option<(Rate, Basis)> {
        let basis = self.token_time_basis(upstream, d)?;
        let per_token = d.adaptive.per_token(basis.p99, basis.samples)?;
        let start = self.first_token_deadline(upstream, d).0;
        Some((Rate { start, per_token }, basis))
    }

    /// A route's deadlines for an unstreamed attempt on `upstream` that asks for up to
    /// `max_tokens`: they grow with the answer at the upstream's learned rate (50 ms a token
    /// until it is learned), when the route left them to their defaults.
    pub fn unstreamed_deadlines(
        &self,
        upstream: &UpstreamKey,
        d: &Deadlines,
        max_tokens: Option<u32>,
    ) -> Deadlines {
        if max_tokens.is_none() || !d.scale_with_length {
            // Nothing to scale: no need to look the rate up.
            return *d;
        }
        d.for_length_at(max_tokens, self.rate(upstream, d).map(|(r, _)| r))
    }

    /// Takes the fleet's recent first tokens and times per token from the operator's
    /// directives (replacing what it pushed before).
    pub fn seed(&self, directives: &[plumb_proto::v1::UpstreamDirective]) {
        let token_times = directives
            .iter()
            .filter(|d| d.token_time_samples > 0 && d.token_time_p99_us > 0)
            .map(|d| {
                (
                    plumb_knowledge::upstream_from_proto(d.upstream.as_ref()),
                    Basis {
                        p99: Duration::from_micros(d.token_time_p99_us),
                        samples: d.token_time_samples,
                        fleet: true,
                    },
                )
            })
            .collect();
        *self.fleet_token_times.write() = token_times;
        let seeds = directives
            .iter()
            .filter(|d| d.first_token_samples > 0 && d.first_token_p99_us > 0)
            .map(|d| {
                (
                    plumb_knowledge::upstream_from_proto(d.upstream.as_ref()),
                    Basis {
                        p99: Duration::from_micros(d.first_token_p99_us),
                        samples: d.first_token_samples,
                        fleet: true,
                    },
                )
            })
            .collect();
        *self.fleet.write() = seeds;
    }

    /// A stream of `upstream` ended: whole, or broken mid-stream.
    pub fn stream_ended(&self, upstream: &UpstreamKey, broke: bool) {
        self.track(upstream).lock().streams.add(
            Instant::now(),
            u32::from(!broke),
            u32::from(broke),
        );
    }

    /// Recent streams of `upstream`: (whole, broken).
    pub fn streams(&self, upstream: &UpstreamKey) -> (u32, u32) {
        self.map
            .read()
            .get(upstream)
            .map_or((0, 0), |t| t.lock().streams.totals(Instant::now()))
    }

    /// Whether `upstream`'s streams are held now: enough of its recent streams broke.
    pub fn holding(&self, upstream: &UpstreamKey, hold: &AdaptiveHold) -> bool {
        if !hold.enabled {
            return false;
        }
        let (whole, broken) = self.streams(upstream);
        let total = whole.saturating_add(broken);
        total >= hold.min_streams && f64::from(broken) >= hold.failure_rate * f64::from(total)
    }

    /// The deadlines in force for every target of `routes`, for `/fleet`.
    pub fn describe(&self, routes: &RouteSet) -> Value {
        let mut out = Vec::new();
        for route in routes.routes() {
            for t in route.all_targets() {
                let (in_force, basis) = self.first_token_deadline(&t.upstream, &route.deadlines);
                let (idle, idle_basis) = self.stream_idle_deadline(&t.upstream, &route.deadlines);
                let (head, head_basis) = self.head_deadline(&t.upstream, &route.deadlines);
                let (whole, broken) = self.streams(&t.upstream);
                let rate = self.rate(&t.upstream, &route.deadlines);
                let per_token_basis = self.token_time_basis(&t.upstream, &route.deadlines);
                out.push(json!({
                    "route": route.id.to_string(),
                    "target": t.name,
                    "streams": {
                        "recentWhole": whole,
                        "recentBroken": broken,
                        "held": self.holding(&t.upstream, &route.streaming.adaptive_hold),
                    },
                    "firstToken": {
                        "inForceMs": in_force.as_millis() as u64,
                        "routeMs": route.deadlines.first_token.as_millis() as u64,
                        "learnedFrom": basis.map(|b| json!({
                            "p99Ms": b.p99.as_secs_f64() * 1e3,
                            "samples": b.samples,
                            "source": if b.fleet { "fleet" } else { "own" },
                        })),
                    },
                    "streamIdle": {
                        "inForceMs": idle.as_millis() as u64,
                        "routeMs": route.deadlines.stream_idle.as_millis() as u64,
                        "learnedFrom": idle_basis.map(|b| json!({
                            "p99Ms": b.p99.as_secs_f64() * 1e3,
                            "samples": b.samples,
                        })),
                    },
                    "streamHead": {
                        "inForceMs": head.as_millis() as u64,
                        "learnedFrom": head_basis.map(|b| json!({
                            "p99Ms": b.p99.as_secs_f64() * 1e3,
                            "samples": b.samples,
                        })),
                    },
                    // An unstreamed answer's first byte: `startMs + max_tokens × perTokenMs`
                    // within the route's firstByte and streamMax.
                    "unstreamed": {
                        "scalesWithLength": route.deadlines.scale_with_length,
                        "perTokenMs": rate.map_or(PER_OUTPUT_TOKEN, |(r, _)| r.per_token).as_secs_f64() * 1e3,
                        "startMs": rate.map_or(0, |(r, _)| r.start.as_millis() as u64),
                        "routeFirstByteMs": route.deadlines.first_byte.as_millis() as u64,
                        "learnedFrom": per_token_basis.map(|b| json!({
                            "p99PerTokenMs": b.p99.as_secs_f64() * 1e3,
                            "samples": b.samples,
                            "source": if b.fleet { "fleet" } else { "own" },
                            "inForce": rate.is_some(),
                        })),
                    },
                }));
            }
        }
        Value::Array(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_policy::Adaptive;

    fn upstream() -> UpstreamKey {
        UpstreamKey {
            base_url: "http://h/v1".into(),
            model: "m".into(),
            credential: "none".into(),
        }
    }

    fn deadlines() -> Deadlines {
        Deadlines {
            adaptive: Adaptive {
                enabled: true,
                multiplier: 3.0,
                floor: Duration::from_millis(250),
                min_samples: 20,
            },
            ..Deadlines::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_deadline_holds_until_enough_is_learned_then_k_times_p99() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        for _ in 0..19 {
            l.first_token(&u, Duration::from_millis(100));
        }
        assert_eq!(
            l.first_token_deadline(&u, &d),
            (Duration::from_secs(30), None)
        );
        l.first_token(&u, Duration::from_millis(100));
        let (in_force, basis) = l.first_token_deadline(&u, &d);
        assert!(basis.is_some_and(|b| b.samples == 20));
        assert!(
            in_force >= Duration::from_millis(290) && in_force <= Duration::from_millis(320),
            "{in_force:?}"
        );
        // Never under the floor, never over the route's value, and off when the route says so.
        let fast = UpstreamKey {
            model: "fast".into(),
            ..upstream()
        };
        for _ in 0..20 {
            l.first_token(&fast, Duration::from_millis(5));
        }
        assert_eq!(
            l.first_token_deadline(&fast, &d).0,
            Duration::from_millis(250)
        );
        let slow = UpstreamKey {
            model: "slow".into(),
            ..upstream()
        };
        for _ in 0..20 {
            l.first_token(&slow, Duration::from_secs(20));
        }
        assert_eq!(l.first_token_deadline(&slow, &d).0, Duration::from_secs(30));
        let mut off = d;
        off.adaptive.enabled = false;
        assert_eq!(
            l.first_token_deadline(&u, &off),
            (Duration::from_secs(30), None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_slows_down_is_followed_not_cut() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        for _ in 0..100 {
            l.first_token(&u, Duration::from_millis(100));
        }
        // It slows by 10% every hundred requests, to about 2.6 s; every first token that
        // comes after the deadline in force would have been cut.
        let mut latency = Duration::from_millis(100);
        let mut cut = 0;
        for _ in 0..35 {
            latency = latency.mul_f64(1.1);
            for _ in 0..100 {
                let (deadline, _) = l.first_token_deadline(&u, &d);
                if latency > deadline {
                    cut += 1;
                    l.cut_at(&u, &d, deadline);
                } else {
                    l.first_token(&u, latency);
                }
            }
        }
        assert_eq!(cut, 0, "a gradual slowdown stays inside k × p99");
        // A sudden jump is cut at first, and the deadline climbs after it.
        let before = l.first_token_deadline(&u, &d).0;
        let jump = before * 2;
        let mut cuts = 0;
        for _ in 0..200 {
            let (deadline, _) = l.first_token_deadline(&u, &d);
            if jump > deadline {
                cuts += 1;
                l.cut_at(&u, &d, deadline);
            } else {
                l.first_token(&u, jump);
            }
        }
        assert!(cuts > 0 && cuts < 20, "{cuts} cut before it followed");
        assert!(l.first_token_deadline(&u, &d).0 > jump);
    }

    #[tokio::test(start_paused = true)]
    async fn streams_are_held_while_enough_of_them_break_and_not_after() {
        let l = Learned::default();
        let (u, hold) = (upstream(), AdaptiveHold::default());
        for _ in 0..9 {
            l.stream_ended(&u, true);
        }
        assert!(!l.holding(&u, &hold), "too few streams to judge");
        l.stream_ended(&u, false);
        assert!(l.holding(&u, &hold), "nine of ten broke");
        // Healthy again: the breaks age out of the two-minute window.
        tokio::time::advance(Duration::from_secs(121)).await;
        for _ in 0..18 {
            l.stream_ended(&u, false);
        }
        assert!(!l.holding(&u, &hold));
        // One in ten is the threshold: two of twenty.
        for _ in 0..2 {
            l.stream_ended(&u, true);
        }
        assert!(l.holding(&u, &hold));
        let off = AdaptiveHold {
            enabled: false,
            ..hold
        };
        assert!(!l.holding(&u, &off));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sidecar_learns_from_the_fleet_until_it_has_seen_enough_of_its_own() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        l.seed(&[plumb_proto::v1::UpstreamDirective {
            upstream: Some(plumb_knowledge::upstream_to_proto(&u)),
            first_token_p99_us: 200_000,
            first_token_samples: 500,
            ..Default::default()
        }]);
        let (in_force, basis) = l.first_token_deadline(&u, &d);
        assert_eq!(in_force, Duration::from_millis(600));
        assert!(basis.is_some_and(|b| b.fleet && b.samples == 500));
        // Once it has seen enough of its own, they decide.
        for _ in 0..20 {
            l.first_token(&u, Duration::from_millis(100));
        }
        let (in_force, basis) = l.first_token_deadline(&u, &d);
        assert!(basis.is_some_and(|b| !b.fleet));
        assert!(in_force < Duration::from_millis(400), "{in_force:?}");
        // A fleet that has seen too few teaches nothing.
        let other = UpstreamKey {
            model: "other".into(),
            ..upstream()
        };
        l.seed(&[plumb_proto::v1::UpstreamDirective {
            upstream: Some(plumb_knowledge::upstream_to_proto(&other)),
            first_token_p99_us: 200_000,
            first_token_samples: 3,
            ..Default::default()
        }]);
        assert_eq!(
            l.first_token_deadline(&other, &d),
            (Duration::from_secs(30), None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unstreamed_deadlines_follow_the_learned_time_per_token() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        // Short answers say nothing of the rate; until enough long ones, 50 ms a token.
        for _ in 0..50 {
            l.generated(&u, Duration::from_secs(1), MIN_RATE_TOKENS - 1);
        }
        for _ in 0..19 {
            l.generated(&u, Duration::from_secs(10), 1000);
        }
        assert_eq!(l.rate(&u, &d), None);
        assert_eq!(
            l.unstreamed_deadlines(&u, &d, Some(4000)),
            d.for_length(Some(4000))
        );
        // 10 ms a token, three times over, after the first token's 30 s (nothing streamed).
        l.generated(&u, Duration::from_secs(10), 1000);
        let (rate, basis) = l.rate(&u, &d).unwrap();
        assert_eq!((basis.samples, basis.fleet), (20, false));
        assert_eq!(rate.start, Duration::from_secs(30));
        let ms = rate.per_token.as_secs_f64() * 1e3;
        assert!((29.0..=31.0).contains(&ms), "{ms}");
        let fb = l.unstreamed_deadlines(&u, &d, Some(4000)).first_byte;
        assert!(
            fb >= Duration::from_secs(145) && fb <= Duration::from_secs(155),
            "{fb:?}"
        );
        // Streams teach the first token, which the answer's start follows.
        for _ in 0..20 {
            l.first_token(&u, Duration::from_millis(100));
        }
        assert!(l.rate(&u, &d).unwrap().0.start < Duration::from_secs(1));
        // Not learning: 50 ms a token.
        let mut off = d;
        off.adaptive.enabled = false;
        assert_eq!(l.rate(&u, &off), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_sidecar_learns_the_rate_from_the_fleet_until_it_has_seen_enough_of_its_own() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        l.seed(&[plumb_proto::v1::UpstreamDirective {
            upstream: Some(plumb_knowledge::upstream_to_proto(&u)),
            token_time_p99_us: 5_000,
            token_time_samples: 300,
            ..Default::default()
        }]);
        let (rate, basis) = l.rate(&u, &d).unwrap();
        assert!(basis.fleet && basis.samples == 300);
        assert_eq!(rate.per_token, Duration::from_millis(15));
        // Its own answers decide once there are enough of them.
        for _ in 0..20 {
            assert!(l.generated(&u, Duration::from_secs(20), 1000).is_some());
        }
        let (rate, basis) = l.rate(&u, &d).unwrap();
        assert!(!basis.fleet);
        assert!(rate.per_token > Duration::from_millis(50), "{rate:?}");
        // A fleet that has seen too few teaches nothing.
        let other = UpstreamKey {
            model: "other".into(),
            ..upstream()
        };
        l.seed(&[plumb_proto::v1::UpstreamDirective {
            upstream: Some(plumb_knowledge::upstream_to_proto(&other)),
            token_time_p99_us: 5_000,
            token_time_samples: 3,
            ..Default::default()
        }]);
        assert_eq!(l.rate(&other, &d), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_streams_head_is_learned_apart_from_its_first_token() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        // Until its heads are learned, a stream's head is held to the first-token deadline.
        assert_eq!(l.head_deadline(&u, &d), (Duration::from_secs(30), None));
        // Heads in 100 ms, first tokens 20 s later: 3 × 100 ms for the head, 30 s (the
        // route's) for the first token.
        for _ in 0..20 {
            l.stream_head(&u, Duration::from_millis(100));
            l.first_token(&u, Duration::from_secs(20));
        }
        let (head, basis) = l.head_deadline(&u, &d);
        assert!(basis.is_some_and(|b| b.samples == 20));
        assert!(
            head >= Duration::from_millis(290) && head <= Duration::from_millis(320),
            "{head:?}"
        );
        let streamed = l.deadlines(&u, &d);
        assert_eq!(
            (streamed.first_byte, streamed.first_token),
            (head, Duration::from_secs(30))
        );
        // Heads of 2 s: about 6 s, as their first tokens; never past the first token's.
        let slow = UpstreamKey {
            model: "slow".into(),
            ..upstream()
        };
        for _ in 0..20 {
            l.stream_head(&slow, Duration::from_secs(2));
            l.first_token(&slow, Duration::from_millis(2_050));
        }
        let (head, _) = l.head_deadline(&slow, &d);
        assert!(
            head >= Duration::from_millis(5_800) && head <= Duration::from_millis(6_200),
            "{head:?}"
        );
        let short = Deadlines {
            first_token: Duration::from_secs(4),
            ..d
        };
        assert_eq!(l.head_deadline(&slow, &short).0, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn fleet_shows_every_learned_deadline_and_what_it_was_learned_from() {
        let routes = plumb_policy::parse_routes_file(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: chat}\nspec:\n  match: {models: [chat]}\n  targets:\n    - {name: t, provider: openai, baseUrl: 'http://h/v1', model: m, credentials: {none: true}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let u = routes.routes()[0].targets[0].upstream.clone();
        let l = Learned::default();
        let described = l.describe(&routes);
        let t = &described[0];
        assert_eq!(t["unstreamed"]["perTokenMs"], 50.0, "{t}");
        assert_eq!(t["unstreamed"]["learnedFrom"], Value::Null);
        assert_eq!(t["streamHead"]["inForceMs"], 30_000);
        for _ in 0..20 {
            l.generated(&u, Duration::from_secs(10), 1000);
            l.stream_head(&u, Duration::from_millis(500));
        }
        let described = l.describe(&routes);
        let t = &described[0];
        let per_token = t["unstreamed"]["perTokenMs"].as_f64().unwrap_or(0.0);
        assert!((29.0..=31.0).contains(&per_token), "{t}");
        assert_eq!(t["unstreamed"]["startMs"], 30_000);
        assert_eq!(t["unstreamed"]["learnedFrom"]["source"], "own");
        assert_eq!(t["unstreamed"]["learnedFrom"]["samples"], 20);
        let head = t["streamHead"]["inForceMs"].as_u64().unwrap_or(0);
        assert!((1_450..=1_550).contains(&head), "{t}");
        assert_eq!(t["streamHead"]["learnedFrom"]["samples"], 20);
    }

    #[tokio::test(start_paused = true)]
    async fn old_knowledge_is_forgotten() {
        let l = Learned::default();
        let (u, d) = (upstream(), deadlines());
        for _ in 0..50 {
            l.first_token(&u, Duration::from_millis(100));
        }
        tokio::time::advance(Duration::from_secs(601)).await;
        l.first_token(&u, Duration::from_millis(100));
        assert_eq!(l.basis(&u).map(|b| b.samples), Some(1));
        assert_eq!(l.first_token_deadline(&u, &d).0, Duration::from_secs(30));
    }
}
