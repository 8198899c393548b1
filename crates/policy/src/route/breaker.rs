//! `spec.breaker`: when a target's circuit breaker opens and how it recovers.

use std::time::Duration;

use plumb_api::BreakerSpec;

use super::{InvalidRoute, at_least_one, dur, ratio};

/// Breaker settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub consecutive_failures: u32,
    /// Failure rate over the window that opens it.
    pub failure_rate: f64,
    /// The window.
    pub window: Duration,
    /// Attempts in the window before the rate counts.
    pub min_requests: u32,
    /// Wait before the first probe after the breaker opens; doubled by each failed probe.
    pub cooldown: Duration,
    /// The longest wait before a probe.
    pub max_cooldown: Duration,
    /// Probes at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_requests: 20,
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(60),
            half_open_probes: 1,
        }
    }
}

/// Compiles `spec.breaker`: counts of at least one, a failure rate from 0 to 1, durations.
pub(super) fn compile(spec: Option<&BreakerSpec>) -> Result<BreakerSettings, InvalidRoute> {
    let unset = BreakerSpec::default();
    let b = spec.unwrap_or(&unset);
    let bd = BreakerSettings::default();
    let cooldown = dur("spec.breaker.cooldown", b.cooldown.as_ref(), bd.cooldown)?;
    // An unset maximum is at least the first cool-down (a route that sets only `cooldown: 2m`
    // means it).
    let max_cooldown = dur(
        "spec.breaker.maxCooldown",
        b.max_cooldown.as_ref(),
        bd.max_cooldown.max(cooldown),
    )?;
    if max_cooldown < cooldown {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.breaker.maxCooldown".to_owned(),
            value: format!("{max_cooldown:?}"),
            expected: "at least spec.breaker.cooldown",
        });
    }
    Ok(BreakerSettings {
        consecutive_failures: at_least_one(
            "spec.breaker.consecutiveFailures",
            b.consecutive_failures,
            bd.consecutive_failures,
        )?,
        failure_rate: ratio("spec.breaker.failureRate", b.failure_rate, bd.failure_rate)?,
        window: dur("spec.breaker.window", b.window.as_ref(), bd.window)?,
        min_requests: at_least_one("spec.breaker.minRequests", b.min_requests, bd.min_requests)?,
        cooldown,
        max_cooldown,
        half_open_probes: at_least_one(
            "spec.breaker.halfOpenProbes",
            b.half_open_probes,
            bd.half_open_probes,
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::InvalidDuration;

    fn breaker(yaml: &str) -> Result<BreakerSettings, InvalidRoute> {
        let spec: BreakerSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec))
    }

    #[test]
    fn an_unset_breaker_takes_the_defaults() {
        assert_eq!(compile(None), Ok(BreakerSettings::default()));
        assert_eq!(
            breaker("{}"),
            Ok(BreakerSettings {
                consecutive_failures: 5,
                failure_rate: 0.5,
                window: Duration::from_secs(30),
                min_requests: 20,
                cooldown: Duration::from_secs(2),
                max_cooldown: Duration::from_secs(60),
                half_open_probes: 1,
            })
        );
    }

    #[test]
    fn every_breaker_setting_can_be_set() {
        assert_eq!(
            breaker(
                "{consecutiveFailures: 3, failureRate: 0.1, window: 1m, minRequests: 4, cooldown: 1s, maxCooldown: 30s, halfOpenProbes: 2}"
            ),
            Ok(BreakerSettings {
                consecutive_failures: 3,
                failure_rate: 0.1,
                window: Duration::from_secs(60),
                min_requests: 4,
                cooldown: Duration::from_secs(1),
                max_cooldown: Duration::from_secs(30),
                half_open_probes: 2,
            })
        );
    }

    #[test]
    fn the_longest_cool_down_is_at_least_the_first() {
        let err = breaker("{cooldown: 10s, maxCooldown: 5s}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.breaker.maxCooldown: 5s is out of range; expected at least spec.breaker.cooldown"
        );
        // A first cool-down above the default maximum raises the maximum with it.
        let b = breaker("{cooldown: 2m}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(b.max_cooldown, Duration::from_secs(120));
    }

    #[test]
    fn zero_counts_are_refused() {
        for field in ["consecutiveFailures", "minRequests", "halfOpenProbes"] {
            let err = breaker(&format!("{{{field}: 0}}")).unwrap_err();
            assert_eq!(
                err,
                InvalidRoute::OutOfRange {
                    field: format!("spec.breaker.{field}"),
                    value: "0".to_owned(),
                    expected: "1 or more",
                }
            );
            assert_eq!(
                err.to_string(),
                format!("spec.breaker.{field}: 0 is out of range; expected 1 or more")
            );
        }
    }

    #[test]
    fn a_failure_rate_outside_zero_to_one_is_refused() {
        let err = breaker("{failureRate: 1.5}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::OutOfRange {
                field: "spec.breaker.failureRate".to_owned(),
                value: "1.5".to_owned(),
                expected: "a number from 0 to 1",
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.breaker.failureRate: 1.5 is out of range; expected a number from 0 to 1"
        );
    }

    #[test]
    fn a_breaker_duration_that_does_not_parse_is_refused_with_its_field() {
        assert_eq!(
            breaker("{cooldown: '1'}"),
            Err(InvalidRoute::Duration {
                field: "spec.breaker.cooldown".to_owned(),
                value: "1".to_owned(),
                reason: InvalidDuration::Unit,
            })
        );
        assert_eq!(
            breaker("{window: x}").unwrap_err().to_string(),
            "spec.breaker.window: \"x\" is not a duration (for example 250ms or 1m30s)"
        );
    }
}
