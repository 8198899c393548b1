//! `spec.streaming`: how streamed answers are held, checked and repaired.

use std::time::Duration;

pub use plumb_api::MalformedEvents;
use plumb_api::{AdaptiveHoldSpec, StreamingSpec};

use super::{Deadlines, InvalidRoute, dur};

/// How streamed answers are held, checked and repaired.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Streaming {
    /// Events held after the first token before commit.
    pub hold_events: u32,
    /// Bytes held at most.
    pub hold_bytes: u32,
    /// Longest hold after the first token.
    pub hold_for: Duration,
    /// What a malformed event does after commit.
    pub malformed: MalformedEvents,
    /// Continue from a prefill-capable fallback after a cut.
    pub continuation: bool,
    /// When the streams of an upstream that breaks them are held.
    pub adaptive_hold: AdaptiveHold,
}

/// When the streams of an upstream whose recent streams break are held.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveHold {
    /// Hold at all.
    pub enabled: bool,
    /// The share of recent streams broken after their first token from which to hold.
    pub failure_rate: f64,
    /// Recent streams before the share counts.
    pub min_streams: u32,
    /// Events held after the first token.
    pub events: u32,
}

impl Default for AdaptiveHold {
    fn default() -> Self {
        AdaptiveHold {
            enabled: true,
            failure_rate: 0.1,
            min_streams: 10,
            events: 64,
        }
    }
}

impl Streaming {
    /// These settings while the upstream's streams are held: at least the adaptive hold's
    /// events (and room for them) before commit.
    pub fn held(&self) -> Streaming {
        Streaming {
            hold_events: self.hold_events.max(self.adaptive_hold.events),
            hold_bytes: self.hold_bytes.max(256 * 1024),
            ..*self
        }
    }
}

/// Compiles `spec.streaming.adaptiveHold`.
fn adaptive_hold(spec: Option<&AdaptiveHoldSpec>) -> Result<AdaptiveHold, InvalidRoute> {
    let d = AdaptiveHold::default();
    let Some(a) = spec else {
        return Ok(d);
    };
    let failure_rate = a.failure_rate.unwrap_or(d.failure_rate);
    if !(0.0..=1.0).contains(&failure_rate) {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.streaming.adaptiveHold.failureRate".to_owned(),
            value: failure_rate.to_string(),
            expected: "a number from 0 to 1",
        });
    }
    for (field, v) in [("minStreams", a.min_streams), ("events", a.events)] {
        if v == Some(0) {
            return Err(InvalidRoute::OutOfRange {
                field: format!("spec.streaming.adaptiveHold.{field}"),
                value: "0".to_owned(),
                expected: "1 or more",
            });
        }
    }
    Ok(AdaptiveHold {
        enabled: a.enabled.unwrap_or(d.enabled),
        failure_rate,
        min_streams: a.min_streams.unwrap_or(d.min_streams),
        events: a.events.unwrap_or(d.events),
    })
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            hold_events: 0,
            hold_bytes: 64 * 1024,
            hold_for: Duration::ZERO,
            malformed: MalformedEvents::Fail,
            // On by default: a stream cut after commit is continued where a fallback can take
            // it up (one that declares prefill, and is certified where equivalence is
            // enforced); only when none can does the client get an error event.
            continuation: true,
            adaptive_hold: AdaptiveHold::default(),
        }
    }
}

/// Compiles `spec.streaming`; `holdFor` may not outlast both the first-token and the total
/// deadline.
pub(super) fn compile(
    spec: Option<&StreamingSpec>,
    deadlines: &Deadlines,
) -> Result<Streaming, InvalidRoute> {
    let unset = StreamingSpec::default();
    let st = spec.unwrap_or(&unset);
    let sd = Streaming::default();
    let streaming = Streaming {
        hold_events: st.hold_events.unwrap_or(sd.hold_events),
        hold_bytes: st.hold_bytes.unwrap_or(sd.hold_bytes),
        hold_for: dur("spec.streaming.holdFor", st.hold_for.as_ref(), sd.hold_for)?,
        malformed: st.malformed_events.unwrap_or(sd.malformed),
        continuation: st.continuation.unwrap_or(sd.continuation),
        adaptive_hold: adaptive_hold(st.adaptive_hold.as_ref())?,
    };
    if streaming.hold_for > deadlines.first_token.max(deadlines.total) {
        return Err(InvalidRoute::DeadlineExceedsTotal {
            field: "spec.streaming.holdFor".to_owned(),
            value: st.hold_for.clone().unwrap_or_default(),
        });
    }
    Ok(streaming)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::InvalidDuration;

    fn streaming(yaml: &str, deadlines: &Deadlines) -> Result<Streaming, InvalidRoute> {
        let spec: StreamingSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec), deadlines)
    }

    #[test]
    fn unset_streaming_commits_at_once_and_continues_cut_streams() {
        let d = Deadlines::default();
        assert_eq!(compile(None, &d), Ok(Streaming::default()));
        assert_eq!(
            streaming("{}", &d),
            Ok(Streaming {
                hold_events: 0,
                hold_bytes: 65536,
                hold_for: Duration::ZERO,
                malformed: MalformedEvents::Fail,
                continuation: true,
                adaptive_hold: AdaptiveHold::default(),
            })
        );
    }

    #[test]
    fn every_streaming_setting_can_be_set() {
        assert_eq!(
            streaming(
                "{holdEvents: 3, holdBytes: 10, holdFor: 1s, malformedEvents: skip, continuation: true}",
                &Deadlines::default()
            ),
            Ok(Streaming {
                hold_events: 3,
                hold_bytes: 10,
                hold_for: Duration::from_secs(1),
                malformed: MalformedEvents::Skip,
                continuation: true,
                adaptive_hold: AdaptiveHold::default(),
            })
        );
    }

    #[test]
    fn a_hold_that_does_not_parse_is_refused_with_its_field() {
        let err = streaming("{holdFor: zz}", &Deadlines::default()).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::Duration {
                field: "spec.streaming.holdFor".to_owned(),
                value: "zz".to_owned(),
                reason: InvalidDuration::Number,
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.streaming.holdFor: \"zz\" is not a duration (for example 250ms or 1m30s)"
        );
    }

    #[test]
    fn a_hold_longer_than_the_deadlines_is_refused() {
        let err = streaming("{holdFor: 200s}", &Deadlines::default()).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::DeadlineExceedsTotal {
                field: "spec.streaming.holdFor".to_owned(),
                value: "200s".to_owned(),
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.streaming.holdFor: \"200s\" is longer than spec.deadlines.total; it could never apply"
        );
    }

    #[test]
    fn a_hold_may_outlast_a_short_total_within_the_first_token_deadline() {
        // The check compares with the longer of firstToken and total, as it always has.
        let short = Deadlines {
            total: Duration::from_secs(10),
            ..Deadlines::default()
        };
        assert!(streaming("{holdFor: 20s}", &short).is_ok());
        assert!(streaming("{holdFor: 40s}", &short).is_err());
    }
}
