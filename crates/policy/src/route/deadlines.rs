//! `spec.deadlines`: a route's time limits.

use std::time::Duration;

use plumb_api::DeadlinesSpec;

use super::{InvalidRoute, dur};

/// Time limits of a route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deadlines {
    /// Whole request until the answer (or a stream's first event) reaches the client.
    pub total: Duration,
    /// Connection, TLS included.
    pub connect: Duration,
    /// Until the response head.
    pub first_byte: Duration,
    /// Until a stream's first event.
    pub first_token: Duration,
    /// Longest silence inside a stream.
    pub stream_idle: Duration,
    /// Longest stream once committed.
    pub stream_max: Duration,
    /// How the first-token deadline is learned per upstream.
    pub adaptive: Adaptive,
    /// Neither `firstByte` nor `total` was set: for an unstreamed request they grow with the
    /// answer it asked for (`max_tokens`), whose head only comes when it is all written.
    pub scale_with_length: bool,
}

/// How a deadline is learned from an upstream's recent latencies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adaptive {
    /// Learn at all.
    pub enabled: bool,
    /// The deadline is this many times the upstream's p99.
    pub multiplier: f64,
    /// The shortest learned deadline.
    pub floor: Duration,
    /// Samples before a learned deadline is used.
    pub min_samples: u32,
}

impl Adaptive {
    /// The deadline learned from a p99 drawn from `samples`: `multiplier × p99`, at least the
    /// floor, at most `ceiling` (the route's own); `None` when not learning or too few samples.
    pub fn learned(&self, p99: Duration, samples: u64, ceiling: Duration) -> Option<Duration> {
        (self.enabled && samples >= u64::from(self.min_samples))
            .then(|| p99.mul_f64(self.multiplier).max(self.floor).min(ceiling))
    }
}

impl Default for Adaptive {
    fn default() -> Self {
        Adaptive {
            enabled: true,
            multiplier: 3.0,
            floor: Duration::from_secs(1),
            min_samples: 20,
        }
    }
}

/// The time an unstreamed answer may take per output token asked for, when the route's
/// deadlines scale with length: 20 tokens per second, slower than providers under load.
pub const PER_OUTPUT_TOKEN: Duration = Duration::from_millis(50);

/// An upstream's generation rate as learned from what it answered, for the deadlines of its
/// unstreamed answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// The time before it starts writing: the first-token deadline in force for it.
    pub start: Duration,
    /// The time one output token may take: `multiplier ×` the p99 of its recent time per token.
    pub per_token: Duration,
}

impl Adaptive {
    /// The time per output token in force, learned from a p99 drawn from `samples`:
    /// `multiplier × p99`; `None` when not learning or too few samples.
    pub fn per_token(&self, p99: Duration, samples: u64) -> Option<Duration> {
        (self.enabled && samples >= u64::from(self.min_samples))
            .then(|| p99.mul_f64(self.multiplier))
    }
}

impl Deadlines {
    /// The deadlines of an unstreamed request that asks for up to `max_tokens`: the first byte
    /// (the whole answer, for an unstreamed request) may take `max_tokens` × 50 ms and the
    /// request a minute more, when the route left both to their defaults.
    pub fn for_length(&self, max_tokens: Option<u32>) -> Deadlines {
        self.for_length_at(max_tokens, None)
    }

    /// [`Deadlines::for_length`] at an upstream's learned `rate`: the first byte may take
    /// `rate.start + max_tokens × rate.per_token`, at least the route's `firstByte` and at most
    /// its `streamMax` (no unstreamed answer is waited for longer than a stream may last).
    /// Without a rate (too few samples, or not learning) it is 50 ms a token, as before.
    pub fn for_length_at(&self, max_tokens: Option<u32>, rate: Option<Rate>) -> Deadlines {
        let Some(n) = max_tokens.filter(|_| self.scale_with_length) else {
            return *self;
        };
        let first_byte = match rate {
            None => self.first_byte.max(PER_OUTPUT_TOKEN.saturating_mul(n)),
            Some(r) => r
                .start
                .saturating_add(r.per_token.saturating_mul(n))
                .min(self.stream_max)
                .max(self.first_byte),
        };
        Deadlines {
            first_byte,
            total: self
                .total
                .max(first_byte.saturating_add(Duration::from_secs(60))),
            ..*self
        }
    }
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            total: Duration::from_secs(120),
            connect: Duration::from_secs(3),
            first_byte: Duration::from_secs(60),
            first_token: Duration::from_secs(30),
            stream_idle: Duration::from_secs(30),
            stream_max: Duration::from_secs(600),
            adaptive: Adaptive::default(),
            scale_with_length: true,
        }
    }
}

/// Compiles `spec.deadlines`: unset limits take the defaults; `total` must be positive, and a
/// connect, first-byte or first-token limit the route sets must fit in it.
pub(super) fn compile(spec: Option<&DeadlinesSpec>) -> Result<Deadlines, InvalidRoute> {
    let unset = DeadlinesSpec::default();
    let d = spec.unwrap_or(&unset);
    let defaults = Deadlines::default();
    let deadlines = Deadlines {
        total: dur("spec.deadlines.total", d.total.as_ref(), defaults.total)?,
        connect: dur(
            "spec.deadlines.connect",
            d.connect.as_ref(),
            defaults.connect,
        )?,
        first_byte: dur(
            "spec.deadlines.firstByte",
            d.first_byte.as_ref(),
            defaults.first_byte,
        )?,
        first_token: dur(
            "spec.deadlines.firstToken",
            d.first_token.as_ref(),
            defaults.first_token,
        )?,
        stream_idle: dur(
            "spec.deadlines.streamIdle",
            d.stream_idle.as_ref(),
            defaults.stream_idle,
        )?,
        stream_max: dur(
            "spec.deadlines.streamMax",
            d.stream_max.as_ref(),
            defaults.stream_max,
        )?,
        adaptive: adaptive(d.adaptive.as_ref())?,
        scale_with_length: d.first_byte.is_none() && d.total.is_none(),
    };
    if deadlines.total.is_zero() {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.deadlines.total".to_owned(),
            value: "0".to_owned(),
            expected: "a positive duration",
        });
    }
    for (field, value, given) in [
        ("spec.deadlines.connect", deadlines.connect, &d.connect),
        (
            "spec.deadlines.firstByte",
            deadlines.first_byte,
            &d.first_byte,
        ),
        (
            "spec.deadlines.firstToken",
            deadlines.first_token,
            &d.first_token,
        ),
    ] {
        // A default longer than a user's short total is simply capped by the total; only a
        // value the user wrote is an error.
        if let Some(given) = given
            && value > deadlines.total
        {
            return Err(InvalidRoute::DeadlineExceedsTotal {
                field: field.to_owned(),
                value: given.clone(),
            });
        }
    }
    Ok(deadlines)
}

/// Compiles `spec.deadlines.adaptive`.
fn adaptive(spec: Option<&plumb_api::AdaptiveSpec>) -> Result<Adaptive, InvalidRoute> {
    let defaults = Adaptive::default();
    let Some(a) = spec else {
        return Ok(defaults);
    };
    let multiplier = a.multiplier.unwrap_or(defaults.multiplier);
    if !(1.0..=100.0).contains(&multiplier) {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.deadlines.adaptive.multiplier".to_owned(),
            value: multiplier.to_string(),
            expected: "a number from 1 to 100",
        });
    }
    let min_samples = a.min_samples.unwrap_or(defaults.min_samples);
    if min_samples == 0 {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.deadlines.adaptive.minSamples".to_owned(),
            value: "0".to_owned(),
            expected: "1 or more",
        });
    }
    Ok(Adaptive {
        enabled: a.enabled.unwrap_or(defaults.enabled),
        multiplier,
        floor: dur(
            "spec.deadlines.adaptive.floor",
            a.floor.as_ref(),
            defaults.floor,
        )?,
        min_samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::InvalidDuration;

    fn deadlines(yaml: &str) -> Result<Deadlines, InvalidRoute> {
        let spec: DeadlinesSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec))
    }

    #[test]
    fn unset_deadlines_take_the_defaults() {
        assert_eq!(compile(None), Ok(Deadlines::default()));
        assert_eq!(deadlines("{}"), Ok(Deadlines::default()));
        let d = Deadlines::default();
        assert_eq!(d.total, Duration::from_secs(120));
        assert_eq!(d.connect, Duration::from_secs(3));
        assert_eq!(d.first_byte, Duration::from_secs(60));
        assert_eq!(d.first_token, Duration::from_secs(30));
        assert_eq!(d.stream_idle, Duration::from_secs(30));
        assert_eq!(d.stream_max, Duration::from_secs(600));
    }

    #[test]
    fn every_deadline_can_be_set() {
        assert_eq!(
            deadlines(
                "{total: 5s, connect: 250ms, firstByte: 2s, firstToken: 3s, streamIdle: 1m, streamMax: 1h, adaptive: {multiplier: 4, floor: 200ms, minSamples: 5}}"
            ),
            Ok(Deadlines {
                total: Duration::from_secs(5),
                connect: Duration::from_millis(250),
                first_byte: Duration::from_secs(2),
                first_token: Duration::from_secs(3),
                stream_idle: Duration::from_secs(60),
                stream_max: Duration::from_secs(3600),
                adaptive: Adaptive {
                    enabled: true,
                    multiplier: 4.0,
                    floor: Duration::from_millis(200),
                    min_samples: 5,
                },
                scale_with_length: false,
            })
        );
        let off = deadlines("{adaptive: {enabled: false}}").unwrap();
        assert!(!off.adaptive.enabled);
        let err = deadlines("{adaptive: {multiplier: 0.5}}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.deadlines.adaptive.multiplier: 0.5 is out of range; expected a number from 1 to 100"
        );
    }

    #[test]
    fn unstreamed_deadlines_grow_with_the_answer_asked_for_unless_the_route_set_them() {
        // 2,000 tokens at 20 a second: 100 s to the head, a minute more for the request.
        let d = Deadlines::default().for_length(Some(2000));
        assert_eq!(d.first_byte, Duration::from_secs(100));
        assert_eq!(d.total, Duration::from_secs(160));
        // A short answer keeps the defaults.
        assert_eq!(
            Deadlines::default().for_length(Some(100)),
            Deadlines::default()
        );
        // A route that set its deadlines meant them.
        let set = deadlines("{firstByte: 30s}").unwrap();
        assert_eq!(set.for_length(Some(2000)), set);
    }

    #[test]
    fn unstreamed_deadlines_follow_a_learned_rate_within_the_first_byte_and_stream_max() {
        let d = Deadlines::default();
        let rate = |start: u64, per_token_ms: u64| {
            Some(Rate {
                start: Duration::from_secs(start),
                per_token: Duration::from_millis(per_token_ms),
            })
        };
        // 15 tokens a second, three times over: 2,000 tokens get 30 s + 400 s.
        let slow = d.for_length_at(Some(2000), rate(30, 200));
        assert_eq!(slow.first_byte, Duration::from_secs(430));
        assert_eq!(slow.total, Duration::from_secs(490));
        // A fast provider: well under 50 ms a token, never under the route's first byte.
        let fast = d.for_length_at(Some(8000), rate(1, 15));
        assert_eq!(fast.first_byte, Duration::from_secs(121));
        assert_eq!(
            d.for_length_at(Some(100), rate(1, 15)).first_byte,
            Duration::from_secs(60)
        );
        // Never longer than a stream may last.
        assert_eq!(
            d.for_length_at(Some(100_000), rate(30, 200)).first_byte,
            Duration::from_secs(600)
        );
        // No rate: 50 ms a token, as before; a route that set its deadlines keeps them.
        assert_eq!(d.for_length_at(Some(2000), None), d.for_length(Some(2000)));
        let set = deadlines("{firstByte: 30s}").unwrap();
        assert_eq!(set.for_length_at(Some(2000), rate(30, 200)), set);
        // The time per token in force: k × p99, once enough samples were seen.
        let a = Adaptive::default();
        assert_eq!(a.per_token(Duration::from_millis(10), 19), None);
        assert_eq!(
            a.per_token(Duration::from_millis(10), 20),
            Some(Duration::from_millis(30))
        );
    }

    #[test]
    fn defaults_longer_than_a_short_total_are_kept_for_the_total_to_cap() {
        let d = deadlines("{total: 10s}").unwrap();
        assert_eq!(d.total, Duration::from_secs(10));
        assert_eq!(d.first_byte, Duration::from_secs(60));
    }

    #[test]
    fn a_deadline_that_does_not_parse_is_refused_with_its_field() {
        let err = deadlines("{streamIdle: 5x}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::Duration {
                field: "spec.deadlines.streamIdle".to_owned(),
                value: "5x".to_owned(),
                reason: InvalidDuration::Unit,
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.deadlines.streamIdle: \"5x\" needs a unit: ns, us, ms, s, m or h (for example 250ms or 1m30s)"
        );
        assert_eq!(
            deadlines("{streamMax: 25h}").unwrap_err().to_string(),
            "spec.deadlines.streamMax: \"25h\" is longer than 24h"
        );
    }

    #[test]
    fn a_zero_total_is_refused() {
        let err = deadlines("{total: 0}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::OutOfRange {
                field: "spec.deadlines.total".to_owned(),
                value: "0".to_owned(),
                expected: "a positive duration",
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.deadlines.total: 0 is out of range; expected a positive duration"
        );
    }

    #[test]
    fn a_set_deadline_longer_than_the_total_is_refused() {
        for (yaml, field) in [
            ("{total: 1s, connect: 2s}", "spec.deadlines.connect"),
            ("{total: 1s, firstByte: 2s}", "spec.deadlines.firstByte"),
            ("{total: 1s, firstToken: 2s}", "spec.deadlines.firstToken"),
        ] {
            assert_eq!(
                deadlines(yaml),
                Err(InvalidRoute::DeadlineExceedsTotal {
                    field: field.to_owned(),
                    value: "2s".to_owned(),
                }),
                "{yaml}"
            );
        }
        assert_eq!(
            deadlines("{total: 1s, connect: 2s}")
                .unwrap_err()
                .to_string(),
            "spec.deadlines.connect: \"2s\" is longer than spec.deadlines.total; it could never apply"
        );
    }
}
