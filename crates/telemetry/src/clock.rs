//! The wall clock as Plumb's wire formats and the fleet speak it: time since the Unix epoch.
//!
//! Conversions saturate: a time before the epoch (a clock set wrong) is 0, and a time too far
//! ahead for the result type is its largest value. Nothing here panics.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds from the Unix epoch to `t`: 0 before the epoch, `i64::MAX` past what an `i64`
/// holds.
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Whole seconds from the Unix epoch to `t` (rounded down): 0 before the epoch.
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch now (see [`unix_ms`]).
pub fn unix_ms_now() -> i64 {
    unix_ms(SystemTime::now())
}

/// Whole seconds since the Unix epoch now (see [`unix_secs`]).
pub fn unix_secs_now() -> u64 {
    unix_secs(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_epoch_is_zero_and_a_known_time_converts_exactly() {
        assert_eq!((unix_ms(UNIX_EPOCH), unix_secs(UNIX_EPOCH)), (0, 0));
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_ms(t), 1_700_000_000_123);
        assert_eq!(unix_secs(t), 1_700_000_000);
    }

    #[test]
    fn fractions_are_rounded_down() {
        let t = UNIX_EPOCH + Duration::from_nanos(2_999_999_999);
        assert_eq!((unix_ms(t), unix_secs(t)), (2_999, 2));
    }

    #[test]
    fn a_time_before_the_epoch_is_zero() {
        let t = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!((unix_ms(t), unix_secs(t)), (0, 0));
    }

    #[test]
    fn milliseconds_saturate_past_what_an_i64_holds() {
        // Platforms whose clock cannot hold such a time have nothing to saturate.
        if let Some(t) = UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64 / 10)) {
            assert_eq!(unix_ms(t), i64::MAX);
            assert_eq!(unix_secs(t), i64::MAX as u64 / 10);
        }
    }
}
