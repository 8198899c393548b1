//! The fault catalogue: every way the simulator can misbehave on purpose.
//!
//! A fault has a compact text form, `name` or `name:key=value,key=value`, used in the
//! `x-sim-fault` request header, in scripted plans and in the configuration file. The model-name
//! form `sim-<name-with-dashes>` (for example `sim-rate-limited`) selects a fault with its
//! defaults.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a 429 tells the client when to come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `retry-after: N` in whole seconds.
    Seconds(u64),
    /// `retry-after: <HTTP-date>`, the given time from now, rounded up to the next whole second.
    HttpDate(Duration),
}

/// One misbehaviour, applied to a single attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Fault {
    /// 429 in the provider's shape; optional `retry-after` and optional rate-limit headers
    /// (`x-ratelimit-*` for OpenAI, `anthropic-ratelimit-*` for Anthropic).
    RateLimited {
        /// The `retry-after` header, if any.
        retry_after: Option<RetryAfter>,
        /// Whether the provider's rate-limit headers are sent.
        headers: bool,
    },
    /// 401: invalid API key.
    Unauthorized,
    /// 403: the key may not use this model or region.
    Forbidden,
    /// 404: the model does not exist.
    ModelNotFound,
    /// 400: the prompt exceeds the model's context window.
    ContextLength,
    /// 400: rejected by the provider's content policy.
    ContentFilter,
    /// 500.
    ServerError,
    /// 503.
    Unavailable,
    /// 529 overloaded.
    Overloaded,
    /// TCP reset before any byte of the response.
    ConnectionReset,
    /// Accept the request and never answer (until the simulator's hang limit, then reset).
    Hang,
    /// Delay the response head.
    SlowFirstByte {
        /// How long to wait before the status line.
        delay: Duration,
    },
    /// Send the head (and a stream's preamble) at once, then wait before the first token.
    SlowFirstToken {
        /// How long to wait before the first content.
        delay: Duration,
    },
    /// Cut the connection after `after` tokens, with no terminator.
    StreamCut {
        /// Tokens sent before the cut.
        after: u32,
    },
    /// Fall silent after `after` tokens for `stall`, then close without a terminator.
    StreamStall {
        /// Tokens sent before the stall.
        after: u32,
        /// How long the connection stays open and silent.
        stall: Duration,
    },
    /// Send a provider error event after `after` tokens, then end the stream.
    StreamError {
        /// Tokens sent before the error event.
        after: u32,
    },
    /// Replace the event at position `at` (0-based, counting every event) with non-JSON bytes.
    MalformedEvent {
        /// Index of the corrupted event.
        at: u32,
    },
    /// End the stream cleanly at the HTTP level without `[DONE]` (OpenAI) or `message_stop`
    /// (Anthropic); the answer is otherwise complete.
    MissingDone,
    /// HTTP 200 whose body is not valid JSON.
    BrokenJson,
    /// HTTP 200 with an empty answer.
    EmptyContent,
    /// HTTP 200 whose structured answer breaks the requested JSON schema.
    SchemaViolation,
    /// HTTP 200 whose structured answer fits the schema's shape but every number is 7.
    OutOfBounds,
    /// The answer names another model than the one asked for.
    ModelSubstituted {
        /// The model named in the answer.
        model: String,
    },
    /// A provider that echoes the API key it received in its error message — whole, its head,
    /// inside a JSON string, or after a newline — at once (a 500), or in a stream's error event
    /// after N tokens. For the secret-leak tests.
    KeyEcho {
        /// How the key is echoed.
        how: Echo,
        /// 0: an error status at once; N: a stream's error event after N tokens.
        after: u32,
    },
}

/// How [`Fault::KeyEcho`] repeats the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// The whole key, between spaces.
    Whole,
    /// Its first twelve characters, then a mask.
    Head,
    /// Inside a JSON document quoted in the message, with no space around it.
    Json,
    /// Right after a newline.
    Newline,
}

impl Echo {
    fn parse(value: &str) -> Result<Echo, InvalidFault> {
        Ok(match value {
            "whole" => Echo::Whole,
            "head" => Echo::Head,
            "json" => Echo::Json,
            "newline" => Echo::Newline,
            _ => {
                return Err(InvalidFault::BadValue {
                    param: "how".to_owned(),
                    value: value.to_owned(),
                    reason: "one of whole, head, json, newline",
                });
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Echo::Whole => "whole",
            Echo::Head => "head",
            Echo::Json => "json",
            Echo::Newline => "newline",
        }
    }

    /// The provider's message repeating `key` this way.
    pub fn message(self, key: &str) -> String {
        match self {
            Echo::Whole => format!("Invalid credentials: the key {key} was refused."),
            Echo::Head => {
                let head: String = key.chars().take(12).collect();
                format!("Invalid credentials: key {head}**** was refused.")
            }
            Echo::Json => format!("upstream said: {{\"auth\":{{\"key\":\"{key}\"}}}}"),
            Echo::Newline => format!("credential check failed for\n{key}\nretry later"),
        }
    }
}

/// A fault's text form could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidFault {
    /// The name is not in the catalogue.
    #[error("unknown fault {0:?} (see `plumb-simulator --list-faults`)")]
    UnknownName(String),
    /// A parameter is not known for this fault.
    #[error("fault {fault} has no parameter {param:?}")]
    UnknownParam {
        /// The fault.
        fault: &'static str,
        /// The parameter given.
        param: String,
    },
    /// A parameter's value is not of the right form.
    #[error("fault parameter {param}={value:?} is invalid: {reason}")]
    BadValue {
        /// The parameter.
        param: String,
        /// The value given.
        value: String,
        /// What was expected.
        reason: &'static str,
    },
}

/// Every fault name with a one-line description, for `--list-faults` and the README.
pub const CATALOGUE: &[(&str, &str)] = &[
    (
        "rate_limited",
        "429 with retry-after (retry_after=SECONDS, default 1) and rate-limit headers (headers=false to drop)",
    ),
    (
        "rate_limited_date",
        "429 with retry-after as an HTTP-date (retry_after=DURATION ahead, default 2s)",
    ),
    (
        "rate_limited_bare",
        "429 with no retry-after and no rate-limit headers",
    ),
    ("unauthorized", "401 invalid API key"),
    ("forbidden", "403 permission denied"),
    ("model_not_found", "404 model not found"),
    ("context_length", "400 context length exceeded"),
    ("content_filter", "400 content-policy rejection"),
    ("server_error", "500"),
    ("unavailable", "503"),
    ("overloaded", "529 overloaded"),
    ("connection_reset", "TCP reset before any byte"),
    ("hang", "accept and never answer"),
    (
        "slow_first_byte",
        "delay the response head (delay=DURATION, default 2s)",
    ),
    (
        "slow_first_token",
        "head at once, first token late (delay=DURATION, default 2s)",
    ),
    (
        "stream_cut",
        "cut after N tokens, no terminator (after=N, default 3)",
    ),
    (
        "stream_stall",
        "silent after N tokens for T, then closed (after=N default 3, stall=DURATION default 5s)",
    ),
    (
        "key_echo",
        "500 whose message echoes the API key it received (how=whole|head|json|newline); after=N: a stream's error event after N tokens instead",
    ),
    (
        "stream_error",
        "provider error event after N tokens (after=N, default 3)",
    ),
    (
        "malformed_event",
        "the event at position k is not JSON (at=k, default 2)",
    ),
    (
        "missing_done",
        "stream ends cleanly without [DONE] / message_stop",
    ),
    ("broken_json", "200 with a body that is not JSON"),
    ("empty_content", "200 with an empty answer"),
    (
        "schema_violation",
        "200 whose structured answer breaks the schema",
    ),
    (
        "out_of_bounds",
        "200 whose structured answer is schema-shaped but every number is 7",
    ),
    (
        "model_substituted",
        "the answer names another model (model=NAME, default sim-substitute)",
    ),
];

impl Fault {
    /// The catalogue name of this fault.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::RateLimited {
                retry_after: Some(RetryAfter::HttpDate(_)),
                ..
            } => "rate_limited_date",
            Fault::RateLimited {
                retry_after: None,
                headers: false,
            } => "rate_limited_bare",
            Fault::RateLimited { .. } => "rate_limited",
            Fault::Unauthorized => "unauthorized",
            Fault::Forbidden => "forbidden",
            Fault::ModelNotFound => "model_not_found",
            Fault::ContextLength => "context_length",
            Fault::ContentFilter => "content_filter",
            Fault::ServerError => "server_error",
            Fault::Unavailable => "unavailable",
            Fault::Overloaded => "overloaded",
            Fault::ConnectionReset => "connection_reset",
            Fault::Hang => "hang",
            Fault::SlowFirstByte { .. } => "slow_first_byte",
            Fault::SlowFirstToken { .. } => "slow_first_token",
            Fault::StreamCut { .. } => "stream_cut",
            Fault::StreamStall { .. } => "stream_stall",
            Fault::StreamError { .. } => "stream_error",
            Fault::MalformedEvent { .. } => "malformed_event",
            Fault::MissingDone => "missing_done",
            Fault::BrokenJson => "broken_json",
            Fault::EmptyContent => "empty_content",
            Fault::SchemaViolation => "schema_violation",
            Fault::OutOfBounds => "out_of_bounds",
            Fault::ModelSubstituted { .. } => "model_substituted",
            Fault::KeyEcho { .. } => "key_echo",
        }
    }

    /// The fault a model name selects: `sim-rate-limited` → `rate_limited` with its defaults.
    pub fn from_model_name(model: &str) -> Option<Fault> {
        let name = model.strip_prefix("sim-")?.replace('-', "_");
        Fault::from_str(&name).ok()
    }

    fn defaults(name: &str) -> Option<Fault> {
        Some(match name {
            "rate_limited" => Fault::RateLimited {
                retry_after: Some(RetryAfter::Seconds(1)),
                headers: true,
            },
            "rate_limited_date" => Fault::RateLimited {
                retry_after: Some(RetryAfter::HttpDate(Duration::from_secs(2))),
                headers: true,
            },
            "rate_limited_bare" => Fault::RateLimited {
                retry_after: None,
                headers: false,
            },
            "unauthorized" => Fault::Unauthorized,
            "forbidden" => Fault::Forbidden,
            "model_not_found" => Fault::ModelNotFound,
            "context_length" => Fault::ContextLength,
            "content_filter" => Fault::ContentFilter,
            "server_error" => Fault::ServerError,
            "unavailable" => Fault::Unavailable,
            "overloaded" => Fault::Overloaded,
            "connection_reset" => Fault::ConnectionReset,
            "hang" => Fault::Hang,
            "slow_first_byte" => Fault::SlowFirstByte {
                delay: Duration::from_secs(2),
            },
            "slow_first_token" => Fault::SlowFirstToken {
                delay: Duration::from_secs(2),
            },
            "stream_cut" => Fault::StreamCut { after: 3 },
            "stream_stall" => Fault::StreamStall {
                after: 3,
                stall: Duration::from_secs(5),
            },
            "stream_error" => Fault::StreamError { after: 3 },
            "malformed_event" => Fault::MalformedEvent { at: 2 },
            "missing_done" => Fault::MissingDone,
            "broken_json" => Fault::BrokenJson,
            "empty_content" => Fault::EmptyContent,
            "schema_violation" => Fault::SchemaViolation,
            "out_of_bounds" => Fault::OutOfBounds,
            "model_substituted" => Fault::ModelSubstituted {
                model: "sim-substitute".to_owned(),
            },
            "key_echo" => Fault::KeyEcho {
                how: Echo::Whole,
                after: 0,
            },
            _ => return None,
        })
    }

    fn set(&mut self, param: &str, value: &str) -> Result<(), InvalidFault> {
        let fault = self.name();
        let unknown = || InvalidFault::UnknownParam {
            fault,
            param: param.to_owned(),
        };
        match (self, param) {
            (
                Fault::RateLimited {
                    retry_after: retry_after @ Some(RetryAfter::Seconds(_)),
                    ..
                },
                "retry_after",
            ) => *retry_after = Some(RetryAfter::Seconds(parse_u64(param, value)?)),
            (
                Fault::RateLimited {
                    retry_after: retry_after @ Some(RetryAfter::HttpDate(_)),
                    ..
                },
                "retry_after",
            ) => *retry_after = Some(RetryAfter::HttpDate(parse_duration(param, value)?)),
            (Fault::RateLimited { headers, .. }, "headers") => {
                *headers = parse_bool(param, value)?;
            }
            (Fault::SlowFirstByte { delay } | Fault::SlowFirstToken { delay }, "delay") => {
                *delay = parse_duration(param, value)?
            }
            (
                Fault::StreamCut { after }
                | Fault::StreamStall { after, .. }
                | Fault::StreamError { after },
                "after",
            ) => *after = parse_u32(param, value)?,
            (Fault::StreamStall { stall, .. }, "stall") => *stall = parse_duration(param, value)?,
            (Fault::MalformedEvent { at }, "at") => *at = parse_u32(param, value)?,
            (Fault::ModelSubstituted { model }, "model") => value.clone_into(model),
            (Fault::KeyEcho { how, .. }, "how") => *how = Echo::parse(value)?,
            (Fault::KeyEcho { after, .. }, "after") => *after = parse_u32(param, value)?,
            _ => return Err(unknown()),
        }
        Ok(())
    }
}

impl FromStr for Fault {
    type Err = InvalidFault;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (name, params) = s.split_once(':').unwrap_or((s, ""));
        let mut fault =
            Fault::defaults(name).ok_or_else(|| InvalidFault::UnknownName(name.to_owned()))?;
        for pair in params.split(',').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| InvalidFault::BadValue {
                param: pair.to_owned(),
                value: String::new(),
                reason: "expected key=value",
            })?;
            fault.set(k.trim(), v.trim())?;
        }
        Ok(fault)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        match self {
            Fault::RateLimited {
                retry_after: Some(RetryAfter::Seconds(s)),
                headers,
            } => write!(f, "{name}:retry_after={s},headers={headers}"),
            Fault::RateLimited {
                retry_after: Some(RetryAfter::HttpDate(d)),
                headers,
            } => write!(
                f,
                "{name}:retry_after={},headers={headers}",
                humantime::format_duration(*d)
            ),
            Fault::SlowFirstByte { delay } | Fault::SlowFirstToken { delay } => {
                write!(f, "{name}:delay={}", humantime::format_duration(*delay))
            }
            Fault::StreamCut { after } | Fault::StreamError { after } => {
                write!(f, "{name}:after={after}")
            }
            Fault::StreamStall { after, stall } => write!(
                f,
                "{name}:after={after},stall={}",
                humantime::format_duration(*stall)
            ),
            Fault::MalformedEvent { at } => write!(f, "{name}:at={at}"),
            Fault::ModelSubstituted { model } => write!(f, "{name}:model={model}"),
            Fault::KeyEcho { how, after } => write!(f, "{name}:how={},after={after}", how.as_str()),
            Fault::RateLimited { .. }
            | Fault::Unauthorized
            | Fault::Forbidden
            | Fault::ModelNotFound
            | Fault::ContextLength
            | Fault::ContentFilter
            | Fault::ServerError
            | Fault::Unavailable
            | Fault::Overloaded
            | Fault::ConnectionReset
            | Fault::Hang
            | Fault::MissingDone
            | Fault::BrokenJson
            | Fault::EmptyContent
            | Fault::SchemaViolation
            | Fault::OutOfBounds => f.write_str(name),
        }
    }
}

impl Serialize for Fault {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn parse_u64(param: &str, value: &str) -> Result<u64, InvalidFault> {
    value.parse().map_err(|_| InvalidFault::BadValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: "expected a whole number",
    })
}

fn parse_u32(param: &str, value: &str) -> Result<u32, InvalidFault> {
    value.parse().map_err(|_| InvalidFault::BadValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: "expected a whole number",
    })
}

fn parse_bool(param: &str, value: &str) -> Result<bool, InvalidFault> {
    value.parse().map_err(|_| InvalidFault::BadValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: "expected true or false",
    })
}

/// Parses a duration such as `250ms`, `2s` or `1m`; a bare number is seconds.
pub fn parse_duration(param: &str, value: &str) -> Result<Duration, InvalidFault> {
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(Duration::from_secs_f64(secs));
    }
    humantime::parse_duration(value).map_err(|_| InvalidFault::BadValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: "expected a duration such as 250ms or 2s",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_name_parses_and_round_trips() {
        for (name, _) in CATALOGUE {
            let fault: Fault = name.parse().unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(fault.name(), *name);
            let again: Fault = fault.to_string().parse().unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(again, fault, "{name} round trip");
        }
    }

    #[test]
    fn parameters_override_defaults() {
        let f: Fault = "stream_stall:after=5,stall=250ms"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f,
            Fault::StreamStall {
                after: 5,
                stall: Duration::from_millis(250)
            }
        );
        let f: Fault = "rate_limited:retry_after=2,headers=false"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f,
            Fault::RateLimited {
                retry_after: Some(RetryAfter::Seconds(2)),
                headers: false
            }
        );
    }

    #[test]
    fn model_names_select_faults_with_defaults() {
        assert_eq!(
            Fault::from_model_name("sim-model-not-found"),
            Some(Fault::ModelNotFound)
        );
        assert_eq!(Fault::from_model_name("sim-gpt"), None);
        assert_eq!(Fault::from_model_name("gpt-4o"), None);
    }

    #[test]
    fn bad_fault_text_says_what_is_wrong() {
        assert_eq!(
            "nope".parse::<Fault>(),
            Err(InvalidFault::UnknownName("nope".into()))
        );
        assert!(matches!(
            "hang:after=3".parse::<Fault>(),
            Err(InvalidFault::UnknownParam { fault: "hang", .. })
        ));
        assert!(matches!(
            "stream_cut:after=x".parse::<Fault>(),
            Err(InvalidFault::BadValue { .. })
        ));
        assert!(matches!(
            "stream_cut:after".parse::<Fault>(),
            Err(InvalidFault::BadValue { .. })
        ));
    }
}
