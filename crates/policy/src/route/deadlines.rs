//! `spec.deadlines`: a route's time limits.

use std::time::Duration;

use plumb_api::DeadlinesSpec;

use super::{InvalidRoute, dur};

/// Time limits of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
                "{total: 5s, connect: 250ms, firstByte: 2s, firstToken: 3s, streamIdle: 1m, streamMax: 1h}"
            ),
            Ok(Deadlines {
                total: Duration::from_secs(5),
                connect: Duration::from_millis(250),
                first_byte: Duration::from_secs(2),
                first_token: Duration::from_secs(3),
                stream_idle: Duration::from_secs(60),
                stream_max: Duration::from_secs(3600),
            })
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
