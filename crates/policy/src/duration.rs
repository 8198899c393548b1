//! Go-style duration strings (`250ms`, `1.5s`, `1m30s`), the format Kubernetes users write.

use std::time::Duration;

/// Why a duration string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    /// Empty string.
    #[error("is empty")]
    Empty,
    /// A number without a unit, or an unknown unit.
    #[error("needs a unit: ns, us, ms, s, m or h (for example 250ms or 1m30s)")]
    Unit,
    /// Not a number where one was expected.
    #[error("is not a duration (for example 250ms or 1m30s)")]
    Number,
    /// Larger than a day: surely a mistake for a request deadline.
    #[error("is longer than 24h")]
    TooLong,
}

/// Parses a Go duration string. `0` alone is zero; every other number needs a unit.
pub fn parse(s: &str) -> Result<Duration, InvalidDuration> {
    let s = s.trim();
    if s.is_empty() {
        return Err(InvalidDuration::Empty);
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(InvalidDuration::Unit)?;
        if num_len == 0 {
            return Err(InvalidDuration::Number);
        }
        let value: f64 = rest[..num_len]
            .parse()
            .map_err(|_| InvalidDuration::Number)?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(InvalidDuration::Unit),
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    if total > 86_400.0 {
        return Err(InvalidDuration::TooLong);
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("100us"), Ok(Duration::from_micros(100)));
    }

    #[test]
    fn bad_durations_say_why() {
        assert_eq!(parse(""), Err(InvalidDuration::Empty));
        assert_eq!(parse("30"), Err(InvalidDuration::Unit));
        assert_eq!(parse("30 s"), Err(InvalidDuration::Unit));
        assert_eq!(parse("5d"), Err(InvalidDuration::Unit));
        assert_eq!(parse("s"), Err(InvalidDuration::Number));
        assert_eq!(parse("1..2s"), Err(InvalidDuration::Number));
        assert_eq!(parse("25h"), Err(InvalidDuration::TooLong));
    }
}
