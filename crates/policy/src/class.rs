//! The failure classes and their default recovery plans.
//!
//! Every failed or suspect attempt gets exactly one class, decided once by the sidecar's
//! `classify` module. Everything decided afterwards — retry or not, count toward the breaker
//! or not, fail over or not, which status the client sees, which metric label — is an
//! exhaustive `match` on the class, so a new class fails the build until someone decides what
//! it means everywhere.

use std::fmt;
use std::time::Duration;

/// What went wrong with one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureClass {
    /// A connect, first-byte, first-token, stream-idle or total deadline passed.
    Timeout,
    /// No connection: refused, unreachable, TLS or DNS failure — the request was never sent,
    /// so trying again is cheap.
    Connect,
    /// The connection was reset or closed after the request was sent and before any byte of
    /// the answer came back (a provider that died mid-request, or an intermediary's idle
    /// timeout): the request may have been taken, so it is not sent to the same target again.
    ConnectionLost,
    /// 429 or a provider rate-limit error.
    RateLimited,
    /// 503, 529 or a provider "overloaded" error.
    Overloaded,
    /// Any other 5xx.
    ServerError,
    /// 401, 403: invalid, expired or unauthorised key.
    Auth,
    /// 404 model not found, not available in the region, deprecated.
    InvalidModel,
    /// 400 context length exceeded.
    ContextLength,
    /// The provider's content policy rejected the request or the answer.
    ContentFilter,
    /// Any other 4xx: the caller's request is wrong.
    BadRequest,
    /// A 200 whose body or a stream event is not valid JSON, is empty, lacks required fields,
    /// or a stream that ended early before reaching the client.
    MalformedResponse,
    /// The answer breaks the route's JSON Schema.
    SchemaViolation,
    /// The answer fits the schema but breaks the route's semantic rules.
    OutOfBounds,
    /// A stream cut, stalled or corrupted after bytes reached the client.
    StreamInterrupted,
    /// The answer names another model than the target was asked for.
    ModelSubstituted,
}

/// Who caused a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blame {
    /// The caller's request is at fault: retrying or failing over will not help.
    Client,
    /// The upstream (or the path to it) is at fault.
    Upstream,
}

/// What a failure does to the target's circuit breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerEffect {
    /// Nothing: the caller's fault, or not a failure of the target.
    Ignore,
    /// Counts toward the consecutive-failure and failure-rate thresholds.
    Count,
    /// Opens the breaker at once: the target cannot succeed until someone fixes it.
    Trip,
}

/// How to recover from one class of failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Retries on the same target.
    pub retries: u32,
    /// Backoff before each retry.
    pub backoff: Backoff,
    /// Whether to move on to the next target when retries are spent.
    pub failover: bool,
    /// Times to re-ask the same target with the contract's complaint added to the
    /// conversation (`schema_violation` and `out_of_bounds` only), before retries.
    pub repairs: u32,
    /// Retry the same target only when no other target can be tried (a silent provider: retrying
    /// it first only multiplies the wait).
    pub retry_only_as_last_option: bool,
}

/// Exponential backoff with full jitter: before retry *n* (from 0), wait a uniformly random
/// time in `[0, min(max, initial · 2ⁿ)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The upper bound before the first retry.
    pub initial: Duration,
    /// The largest upper bound.
    pub max: Duration,
}

impl Backoff {
    /// The upper bound of the wait before retry `n` (0-based).
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.min(20));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `n`, given a uniform random number in `[0, 1)`.
    pub fn delay(&self, n: u32, unit_random: f64) -> Duration {
        self.ceiling(n).mul_f64(unit_random.clamp(0.0, 1.0))
    }
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl FailureClass {
    /// Every class, in a fixed order.
    pub const ALL: [FailureClass; 16] = [
        FailureClass::Timeout,
        FailureClass::Connect,
        FailureClass::ConnectionLost,
        FailureClass::RateLimited,
        FailureClass::Overloaded,
        FailureClass::ServerError,
        FailureClass::Auth,
        FailureClass::InvalidModel,
        FailureClass::ContextLength,
        FailureClass::ContentFilter,
        FailureClass::BadRequest,
        FailureClass::MalformedResponse,
        FailureClass::SchemaViolation,
        FailureClass::OutOfBounds,
        FailureClass::StreamInterrupted,
        FailureClass::ModelSubstituted,
    ];

    /// The snake_case name used in headers, metrics, logs and errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureClass::Timeout => "timeout",
            FailureClass::Connect => "connect",
            FailureClass::ConnectionLost => "connection_lost",
            FailureClass::RateLimited => "rate_limited",
            FailureClass::Overloaded => "overloaded",
            FailureClass::ServerError => "server_error",
            FailureClass::Auth => "auth",
            FailureClass::InvalidModel => "invalid_model",
            FailureClass::ContextLength => "context_length",
            FailureClass::ContentFilter => "content_filter",
            FailureClass::BadRequest => "bad_request",
            FailureClass::MalformedResponse => "malformed_response",
            FailureClass::SchemaViolation => "schema_violation",
            FailureClass::OutOfBounds => "out_of_bounds",
            FailureClass::StreamInterrupted => "stream_interrupted",
            FailureClass::ModelSubstituted => "model_substituted",
        }
    }

    /// The position of this class in [`FailureClass::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Who caused it.
    pub const fn blame(self) -> Blame {
        match self {
            FailureClass::BadRequest
            | FailureClass::ContextLength
            | FailureClass::ContentFilter => Blame::Client,
            FailureClass::Timeout
            | FailureClass::Connect
            | FailureClass::ConnectionLost
            | FailureClass::RateLimited
            | FailureClass::Overloaded
            | FailureClass::ServerError
            | FailureClass::Auth
            | FailureClass::InvalidModel
            | FailureClass::MalformedResponse
            | FailureClass::SchemaViolation
            | FailureClass::OutOfBounds
            | FailureClass::StreamInterrupted
            | FailureClass::ModelSubstituted => Blame::Upstream,
        }
    }

    /// What it does to the target's breaker. Classes that are the caller's fault never count.
    pub const fn breaker_effect(self) -> BreakerEffect {
        match self {
            FailureClass::BadRequest
            | FailureClass::ContextLength
            | FailureClass::ContentFilter
            | FailureClass::ModelSubstituted => BreakerEffect::Ignore,
            FailureClass::Auth | FailureClass::InvalidModel => BreakerEffect::Trip,
            FailureClass::Timeout
            | FailureClass::Connect
            | FailureClass::ConnectionLost
            | FailureClass::RateLimited
            | FailureClass::Overloaded
            | FailureClass::ServerError
            | FailureClass::MalformedResponse
            | FailureClass::SchemaViolation
            | FailureClass::OutOfBounds
            | FailureClass::StreamInterrupted => BreakerEffect::Count,
        }
    }

    /// The default plan (DESIGN §2), before a route's overrides.
    pub const fn default_plan(self) -> Plan {
        const fn plan(retries: u32, initial: u64, max: u64, failover: bool) -> Plan {
            Plan {
                retries,
                backoff: Backoff {
                    initial: ms(initial),
                    max: ms(max),
                },
                failover,
                repairs: 0,
                retry_only_as_last_option: false,
            }
        }
        match self {
            FailureClass::Timeout => Plan {
                retry_only_as_last_option: true,
                ..plan(1, 100, 1_000, true)
            },
            FailureClass::Connect => plan(1, 50, 500, true),
            // The request may have been taken: straight to the next target, never again to
            // this one (it would double the client's wait, and perhaps the bill).
            FailureClass::ConnectionLost => plan(0, 50, 500, true),
            FailureClass::RateLimited => plan(1, 500, 5_000, true),
            FailureClass::Overloaded => plan(1, 250, 2_000, true),
            FailureClass::ServerError => plan(1, 100, 1_000, true),
            FailureClass::MalformedResponse => plan(1, 50, 500, true),
            // One repair, then the next target: a model that broke the contract once usually
            // fixes it when told what was wrong.
            FailureClass::SchemaViolation | FailureClass::OutOfBounds => Plan {
                repairs: 1,
                ..plan(0, 100, 1_000, true)
            },
            // Only a failure when the route's contract says so; then the next target.
            FailureClass::Auth
            | FailureClass::InvalidModel
            | FailureClass::ContextLength
            | FailureClass::StreamInterrupted
            | FailureClass::ModelSubstituted => plan(0, 100, 1_000, true),
            FailureClass::ContentFilter | FailureClass::BadRequest => plan(0, 100, 1_000, false),
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for FailureClass {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FailureClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_all() {
        for (i, c) in FailureClass::ALL.into_iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(c.as_str().parse::<FailureClass>(), Ok(c));
        }
    }

    #[test]
    fn callers_faults_never_touch_the_breaker_and_are_never_retried() {
        for c in FailureClass::ALL {
            if c.blame() == Blame::Client {
                assert_eq!(c.breaker_effect(), BreakerEffect::Ignore, "{c}");
                assert_eq!(c.default_plan().retries, 0, "{c}");
            }
        }
        assert!(!FailureClass::BadRequest.default_plan().failover);
        assert!(!FailureClass::ContentFilter.default_plan().failover);
    }

    #[test]
    fn deterministic_errors_are_not_retried_on_the_same_target() {
        for c in [
            FailureClass::Auth,
            FailureClass::InvalidModel,
            FailureClass::ContextLength,
            FailureClass::ContentFilter,
            FailureClass::BadRequest,
        ] {
            assert_eq!(c.default_plan().retries, 0, "{c}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_to_its_cap_with_full_jitter() {
        let b = Backoff {
            initial: ms(100),
            max: ms(1_000),
        };
        assert_eq!(b.ceiling(0), ms(100));
        assert_eq!(b.ceiling(1), ms(200));
        assert_eq!(b.ceiling(3), ms(800));
        assert_eq!(b.ceiling(4), ms(1_000));
        assert_eq!(b.ceiling(40), ms(1_000));
        assert_eq!(b.delay(2, 0.0), Duration::ZERO);
        assert_eq!(b.delay(2, 0.5), ms(200));
    }
}
