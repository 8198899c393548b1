//! What both wire formats share: stream events, and the provider errors every status fault
//! turns into, rendered in the caller's own shape.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::attempts::Api;
use crate::fault::{Fault, RetryAfter};

/// Where an event sits in a stream, so faults can be placed by token count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Before the first token (role chunk, `message_start`, `ping`, …).
    Preamble,
    /// Carries one piece of a reasoning model's thinking, before the answer.
    Thinking,
    /// Carries one piece of the answer.
    Token,
    /// After the last token (finish chunk, usage, `message_delta`, …).
    Tail,
    /// The terminator: `[DONE]` or `message_stop`.
    Terminator,
}

/// One server-sent event, already framed.
#[derive(Clone, Debug)]
pub struct Event {
    /// The bytes on the wire, ending with a blank line.
    pub bytes: Bytes,
    /// Its place in the stream.
    pub kind: EventKind,
}

impl Event {
    /// A `data:` event without an event name (OpenAI style).
    pub fn data(data: &Value, kind: EventKind) -> Event {
        Event {
            bytes: Bytes::from(format!("data: {data}\n\n")),
            kind,
        }
    }

    /// A named event (Anthropic style).
    pub fn named(name: &str, data: &Value, kind: EventKind) -> Event {
        Event {
            bytes: Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
            kind,
        }
    }
}

/// An error answer: status, headers and the message in both families' vocabularies.
#[derive(Clone, Debug)]
pub struct ProviderError {
    /// HTTP status.
    pub status: u16,
    /// OpenAI `error.type`.
    pub openai_type: &'static str,
    /// OpenAI `error.code`.
    pub openai_code: Option<&'static str>,
    /// Anthropic `error.type`.
    pub anthropic_type: &'static str,
    /// The message.
    pub message: String,
    /// Extra headers (`retry-after`, rate-limit headers).
    pub headers: Vec<(String, String)>,
    /// Azure's content-filter details, when the error is a content-filter rejection.
    pub azure_content_filter: bool,
    /// Google's `details` (`RetryInfo`, `ErrorInfo`, …), for the Gemini shape (boxed: most
    /// errors have none, and the error travels in `Result`s).
    pub google_details: Option<Box<Vec<Value>>>,
}

impl ProviderError {
    /// A 400 for a request the simulator cannot read.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ProviderError {
            status: 400,
            openai_type: "invalid_request_error",
            openai_code: None,
            anthropic_type: "invalid_request_error",
            message: message.into(),
            headers: Vec::new(),
            azure_content_filter: false,
            google_details: None,
        }
    }

    /// A 404 for a path the provider does not serve.
    pub fn not_found_path(path: &str) -> Self {
        ProviderError {
            status: 404,
            openai_type: "invalid_request_error",
            openai_code: Some("unknown_url"),
            anthropic_type: "not_found_error",
            message: format!("Unrecognized request URL (POST {path})."),
            headers: Vec::new(),
            azure_content_filter: false,
            google_details: None,
        }
    }

    /// The error a status fault produces, in the words the real providers use.
    /// `None` for faults that are not a plain error status.
    pub fn for_fault(
        fault: &Fault,
        api: Api,
        model: &str,
        key: Option<&str>,
        context: (u32, u32),
    ) -> Option<Self> {
        let e = |status, openai_type, openai_code, anthropic_type, message: String| ProviderError {
            status,
            openai_type,
            openai_code,
            anthropic_type,
            message,
            headers: Vec::new(),
            azure_content_filter: false,
            google_details: None,
        };
        if api == Api::Gemini {
            return gemini_for_fault(fault, model, key, context);
        }
        if api == Api::Bedrock {
            return crate::bedrock::for_fault(fault, model, key, context);
        }
        let anthropic = api == Api::Anthropic;
        Some(match fault {
            Fault::RateLimited {
                retry_after,
                headers,
            } => {
                let mut err = e(
                    429,
                    "requests",
                    Some("rate_limit_exceeded"),
                    "rate_limit_error",
                    if anthropic {
                        "This request would exceed the rate limit for your organization. Please try again later.".to_owned()
                    } else {
                        format!(
                            "Rate limit reached for {model} on requests per min (RPM): Limit 60, Used 60, Requested 1. Please try again later."
                        )
                    },
                );
                let wait = match retry_after {
                    Some(RetryAfter::Seconds(s)) => {
                        err.headers.push(("retry-after".into(), s.to_string()));
                        Duration::from_secs(*s)
                    }
                    Some(RetryAfter::HttpDate(d)) => {
                        let at = ceil_to_second(SystemTime::now() + *d);
                        err.headers
                            .push(("retry-after".into(), httpdate::fmt_http_date(at)));
                        *d
                    }
                    None => Duration::from_secs(1),
                };
                if *headers {
                    err.headers.extend(rate_limit_headers(api, wait));
                }
                err
            }
            Fault::Unauthorized => e(
                401,
                "invalid_request_error",
                Some("invalid_api_key"),
                "authentication_error",
                if anthropic {
                    "invalid x-api-key".to_owned()
                } else {
                    format!(
                        "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                        mask_key(key.unwrap_or(""))
                    )
                },
            ),
            Fault::Forbidden => e(
                403,
                "invalid_request_error",
                Some("permission_denied"),
                "permission_error",
                "Your API key does not have permission to use the specified resource.".to_owned(),
            ),
            Fault::ModelNotFound => e(
                404,
                "invalid_request_error",
                Some("model_not_found"),
                "not_found_error",
                if anthropic {
                    format!("model: {model}")
                } else {
                    format!("The model `{model}` does not exist or you do not have access to it.")
                },
            ),
            Fault::ContextLength => {
                let (window, asked) = context;
                e(
                    400,
                    "invalid_request_error",
                    Some("context_length_exceeded"),
                    "invalid_request_error",
                    if anthropic {
                        format!("prompt is too long: {asked} tokens > {window} maximum")
                    } else {
                        format!(
                            "This model's maximum context length is {window} tokens. However, your messages resulted in {asked} tokens. Please reduce the length of the messages."
                        )
                    },
                )
            }
            Fault::ContentFilter => {
                let mut err = e(
                    400,
                    "invalid_request_error",
                    Some(if api == Api::Azure {
                        "content_filter"
                    } else {
                        "content_policy_violation"
                    }),
                    "invalid_request_error",
                    match api {
                        Api::Anthropic => "Output blocked by content filtering policy".to_owned(),
                        Api::Azure => "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.".to_owned(),
                        Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => "Your request was rejected as a result of our safety system. Your prompt may contain text that is not allowed by our safety system.".to_owned(),
                    },
                );
                err.azure_content_filter = api == Api::Azure;
                err
            }
            Fault::ServerError => e(
                500,
                "server_error",
                None,
                "api_error",
                if anthropic {
                    "Internal server error".to_owned()
                } else {
                    "The server had an error while processing your request. Sorry about that!"
                        .to_owned()
                },
            ),
            Fault::Unavailable => e(
                503,
                "server_error",
                None,
                "api_error",
                "The server is overloaded or not ready yet.".to_owned(),
            ),
            Fault::Overloaded => e(
                529,
                "server_error",
                Some("overloaded"),
                "overloaded_error",
                "Overloaded".to_owned(),
            ),
            Fault::ConnectionReset
            | Fault::Hang
            | Fault::SlowFirstByte { .. }
            | Fault::SlowFirstToken { .. }
            | Fault::StreamCut { .. }
            | Fault::StreamStall { .. }
            | Fault::StreamError { .. }
            | Fault::MalformedEvent { .. }
            | Fault::MissingDone
            | Fault::BrokenJson
            | Fault::EmptyContent
            | Fault::SchemaViolation
            | Fault::OutOfBounds
            | Fault::ModelSubstituted { .. } => return None,
            Fault::KeyEcho { how, after: 0 } => e(
                500,
                "server_error",
                Some("key_echo"),
                "api_error",
                how.message(key.unwrap_or("")),
            ),
            Fault::KeyEcho { .. } => return None,
        })
    }

    /// The JSON body in the caller's shape.
    pub fn body(&self, api: Api, request_id: &str) -> Value {
        match api {
            Api::Bedrock => crate::bedrock::body(self),
            Api::Gemini => json!({"error": {
                "code": self.status,
                "message": self.message,
                "status": google_status(self.status),
                "details": self.google_details.as_deref().map_or(&[][..], Vec::as_slice),
            }}),
            Api::Anthropic => json!({
                "type": "error",
                "error": {"type": self.anthropic_type, "message": self.message},
                "request_id": request_id,
            }),
            Api::Openai | Api::Azure | Api::Responses => {
                let mut err = json!({
                    "message": self.message,
                    "type": self.openai_type,
                    "param": null,
                    "code": self.openai_code,
                });
                if self.azure_content_filter {
                    err["status"] = json!(400);
                    err["innererror"] = json!({
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            "hate": {"filtered": true, "severity": "high"},
                            "self_harm": {"filtered": false, "severity": "safe"},
                            "sexual": {"filtered": false, "severity": "safe"},
                            "violence": {"filtered": false, "severity": "safe"}
                        }
                    });
                }
                json!({ "error": err })
            }
        }
    }

    /// The error as a mid-stream event, in the caller's shape.
    pub fn stream_event(&self, api: Api, request_id: &str) -> Event {
        match api {
            Api::Anthropic => Event::named("error", &self.body(api, request_id), EventKind::Tail),
            Api::Responses => Event::named(
                "error",
                &crate::responses::error_event(
                    self.openai_code.unwrap_or(self.openai_type),
                    &self.message,
                ),
                EventKind::Tail,
            ),
            Api::Openai | Api::Azure => Event::data(&self.body(api, request_id), EventKind::Tail),
            Api::Gemini => Event {
                bytes: Bytes::from(format!("data: {}\r\n\r\n", self.body(api, request_id))),
                kind: EventKind::Tail,
            },
            Api::Bedrock => crate::bedrock::exception_frame(self),
        }
    }
}

/// Google's canonical status for an HTTP status.
fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// The error a status fault produces from the Gemini API, in Google's words: a bad key is a
/// 400 (`API_KEY_INVALID`), a rate limit says how long to wait in a `RetryInfo` (not in
/// headers), and an overload is a 503 (Google has no 529). A content filter is no error at
/// all: Gemini answers 200 with `finishReason: SAFETY` (see [`crate::gemini::blocked`]).
fn gemini_for_fault(
    fault: &Fault,
    model: &str,
    key: Option<&str>,
    context: (u32, u32),
) -> Option<ProviderError> {
    let e = |status, message: String, google_details: Vec<Value>| ProviderError {
        status,
        openai_type: "",
        openai_code: None,
        anthropic_type: "",
        message,
        headers: Vec::new(),
        azure_content_filter: false,
        google_details: (!google_details.is_empty()).then(|| Box::new(google_details)),
    };
    let info = |reason: &str| {
        json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
            "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})
    };
    Some(match fault {
        Fault::RateLimited { retry_after, .. } => {
            let mut details = vec![json!({
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaDimensions": {"model": model, "location": "global"}, "quotaValue": "10"}],
            })];
            let wait = match retry_after {
                Some(RetryAfter::Seconds(s)) => Some(Duration::from_secs(*s)),
                Some(RetryAfter::HttpDate(d)) => Some(*d),
                None => None,
            };
            if let Some(w) = wait {
                details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": format!("{}s", w.as_secs())}));
            }
            e(
                429,
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.".to_owned(),
                details,
            )
        }
        Fault::Unauthorized => e(
            400,
            "API key not valid. Please pass a valid API key.".to_owned(),
            vec![info("API_KEY_INVALID")],
        ),
        Fault::Forbidden => e(
            403,
            "Permission denied: Consumer does not have access to the requested resource.".to_owned(),
            vec![info("CONSUMER_INVALID")],
        ),
        Fault::ModelNotFound => e(
            404,
            format!("models/{model} is not found for API version v1beta, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods."),
            Vec::new(),
        ),
        Fault::ContextLength => {
            let (window, asked) = context;
            e(
                400,
                format!("The input token count ({asked}) exceeds the maximum number of tokens allowed ({window})."),
                Vec::new(),
            )
        }
        Fault::ServerError => e(
            500,
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting".to_owned(),
            Vec::new(),
        ),
        Fault::Unavailable | Fault::Overloaded => e(
            503,
            "The model is overloaded. Please try again later.".to_owned(),
            Vec::new(),
        ),
        Fault::KeyEcho { how, after: 0 } => e(500, how.message(key.unwrap_or("")), Vec::new()),
        Fault::ContentFilter
        | Fault::ConnectionReset
        | Fault::Hang
        | Fault::SlowFirstByte { .. }
        | Fault::SlowFirstToken { .. }
        | Fault::StreamCut { .. }
        | Fault::StreamStall { .. }
        | Fault::StreamError { .. }
        | Fault::MalformedEvent { .. }
        | Fault::MissingDone
        | Fault::BrokenJson
        | Fault::EmptyContent
        | Fault::SchemaViolation
        | Fault::OutOfBounds
        | Fault::ModelSubstituted { .. }
        | Fault::KeyEcho { .. } => return None,
    })
}

fn ceil_to_second(t: SystemTime) -> SystemTime {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) if d.subsec_nanos() > 0 => {
            SystemTime::UNIX_EPOCH + Duration::from_secs(d.as_secs() + 1)
        }
        Ok(_) | Err(_) => t,
    }
}

/// The rate-limit headers each provider sends with a 429.
fn rate_limit_headers(api: Api, wait: Duration) -> Vec<(String, String)> {
    match api {
        Api::Anthropic => {
            let reset = humantime::format_rfc3339_seconds(ceil_to_second(SystemTime::now() + wait))
                .to_string();
            vec![
                ("anthropic-ratelimit-requests-limit".into(), "60".into()),
                ("anthropic-ratelimit-requests-remaining".into(), "0".into()),
                ("anthropic-ratelimit-requests-reset".into(), reset.clone()),
                ("anthropic-ratelimit-tokens-limit".into(), "80000".into()),
                ("anthropic-ratelimit-tokens-remaining".into(), "0".into()),
                ("anthropic-ratelimit-tokens-reset".into(), reset),
            ]
        }
        // Google sends none: its wait is in the body's `RetryInfo`.
        // Bedrock sends none either.
        Api::Gemini | Api::Bedrock => Vec::new(),
        Api::Openai | Api::Azure | Api::Responses => {
            let reset = go_duration(wait);
            vec![
                ("x-ratelimit-limit-requests".into(), "60".into()),
                ("x-ratelimit-remaining-requests".into(), "0".into()),
                ("x-ratelimit-reset-requests".into(), reset.clone()),
                ("x-ratelimit-limit-tokens".into(), "150000".into()),
                ("x-ratelimit-remaining-tokens".into(), "0".into()),
                ("x-ratelimit-reset-tokens".into(), reset),
            ]
        }
    }
}

/// A duration the way OpenAI's headers write it: `1s`, `250ms`, `1m30s`.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let mins = (secs / 60.0).floor() as u64;
    let rest = secs - (mins * 60) as f64;
    let rest = if rest.fract() == 0.0 {
        format!("{}s", rest as u64)
    } else {
        format!("{rest:.3}s")
    };
    if mins > 0 {
        format!("{mins}m{rest}")
    } else {
        rest
    }
}

/// Masks a key the way OpenAI echoes it: the first three and last four characters.
pub fn mask_key(key: &str) -> String {
    let n = key.chars().count();
    if n < 12 {
        return "*".repeat(n);
    }
    let head: String = key.chars().take(3).collect();
    let tail: String = key.chars().skip(n - 4).collect();
    format!("{head}{}{tail}", "*".repeat(n - 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_read_like_openai_headers() {
        assert_eq!(go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(go_duration(Duration::from_secs(2)), "2s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.500s");
    }

    #[test]
    fn keys_are_masked_like_openai_does() {
        assert_eq!(mask_key("sk-abcdefghijkl1234"), "sk-************1234");
        assert_eq!(mask_key("short"), "*****");
    }

    #[test]
    fn every_status_fault_has_both_shapes() {
        for f in [
            Fault::Unauthorized,
            Fault::Forbidden,
            Fault::ModelNotFound,
            Fault::ContextLength,
            Fault::ContentFilter,
            Fault::ServerError,
            Fault::Unavailable,
            Fault::Overloaded,
        ] {
            for api in [Api::Openai, Api::Azure, Api::Anthropic] {
                let e = ProviderError::for_fault(&f, api, "m", Some("k"), (10, 20))
                    .unwrap_or_else(|| panic!("{f}"));
                let body = e.body(api, "req_1");
                assert!(body["error"]["message"].is_string(), "{f} {api:?}");
            }
        }
        assert!(ProviderError::for_fault(&Fault::Hang, Api::Openai, "m", None, (0, 0)).is_none());
    }
}
