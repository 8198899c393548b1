//! Classification: the one place where a failed or suspect attempt gets its [`FailureClass`],
//! from transport errors, status codes and the providers' error bodies (OpenAI, Azure,
//! Anthropic and Google shapes), and from what a 200 says of itself (Gemini's finish reasons).
//! Everything after this is a `match` on the class.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use plumb_policy::FailureClass;
use serde_json::Value;

use crate::completion::{
    Block, ChatCompletion, Completion, Embeddings, Message, OutputContent, OutputItem, Response,
    Whole,
};
use crate::event::{Event, ProviderError, RawEvent};
use crate::payload::{Api, Operation};

/// When in an attempt a failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before the response head (connect, TLS, send, wait).
    Head,
    /// Reading or checking a body before anything reached the client.
    Body,
    /// After the first bytes reached the client.
    Committed,
}

/// A classified failure of one attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The class.
    pub class: FailureClass,
    /// When it happened.
    pub phase: Phase,
    /// The upstream status, if one was received.
    pub status: Option<u16>,
    /// The provider's own message (or a description of the transport error), secrets removed
    /// by the caller before it reaches a client.
    pub message: String,
    /// How long the provider asked us to wait, from `retry-after` or its rate-limit headers.
    pub retry_after: Option<Duration>,
    /// For a contract failure: the answer that was rejected, to repair.
    pub rejected: Option<Box<crate::completion::Collected>>,
    /// For a contract failure: the check that failed (`schema`, `rules[0]`, …).
    pub check: Option<String>,
    /// For a timeout: the deadline that passed (`first-byte`, `first-token`, `stream-idle`,
    /// `total`).
    pub deadline: Option<&'static str>,
}

impl Failure {
    /// A failure without a status.
    pub fn new(class: FailureClass, phase: Phase, message: impl Into<String>) -> Failure {
        Failure {
            class,
            phase,
            status: None,
            message: message.into(),
            retry_after: None,
            rejected: None,
            check: None,
            deadline: None,
        }
    }

    /// A deadline passed.
    pub fn timeout(phase: Phase, what: &'static str, after: Duration) -> Failure {
        Failure {
            deadline: Some(what),
            ..Failure::new(
                FailureClass::Timeout,
                phase,
                format!(
                    "{what} deadline of {} passed",
                    humantime::format_duration(after)
                ),
            )
        }
    }
}

/// Classifies a transport error of the upstream client before a response head arrived: no
/// connection (refused, unreachable, TLS, DNS — the request was never sent) is `connect`; a
/// connection reset or closed after the request went out is `connection_lost`.
pub fn transport(err: &(dyn std::error::Error + 'static)) -> Failure {
    // No credentials to sign with: the request never left, and it is an auth failure of the
    // target (the message names the source, never a secret).
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<crate::cloud::aws::CredentialsError>() {
            return Failure::new(FailureClass::Auth, Phase::Head, c.to_string());
        }
        cur = e.source();
    }
    let class = if never_sent(err) {
        FailureClass::Connect
    } else {
        FailureClass::ConnectionLost
    };
    Failure::new(class, Phase::Head, root_cause(err))
}

/// Whether a transport error happened before the request was sent: the client could not
/// connect (hyper's connect errors cover DNS, TCP, TLS and the egress proxy), the proxy refused
/// to forward it, or the system refused the address.
fn never_sent(err: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cur = Some(err);
    while let Some(e) = cur {
        // The proxy would not carry the request: it never reached the upstream.
        if e.is::<crate::egress::connector::ProxyError>() {
            return true;
        }
        if e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::AddrInUse
            );
        }
        cur = e.source();
    }
    false
}

/// The innermost cause of an error, for messages.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        msg = e.to_string();
        cur = e.source();
    }
    msg
}

/// The status an error inside a 200 (a body or a stream event) implies.
fn implied_status(e: &ProviderError) -> u16 {
    match (e.kind.as_str(), e.code.as_str()) {
        // Google's canonical codes (`status`), read as the kind.
        ("RESOURCE_EXHAUSTED", _) => 429,
        ("UNAVAILABLE", _) => 503,
        ("DEADLINE_EXCEEDED", _) => 504,
        ("UNAUTHENTICATED", _) => 401,
        ("PERMISSION_DENIED", _) => 403,
        ("NOT_FOUND", _) => 404,
        ("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE", _) => 400,
        ("rate_limit_error" | "requests" | "tokens", _) | (_, "rate_limit_exceeded") => 429,
        ("overloaded_error", _) | (_, "overloaded") => 529,
        ("authentication_error", _) | (_, "invalid_api_key") => 401,
        ("permission_error", _) => 403,
        ("not_found_error", _) | (_, "model_not_found") => 404,
        ("invalid_request_error", _) => 400,
        _ => 500,
    }
}

/// Classifies an error that arrived inside a 200 (a JSON body or a stream event carrying
/// `error`), by the status its type or code implies. `raw` is the body or event data, for the
/// message when the provider gave none.
pub fn embedded(err: Option<&ProviderError>, raw: &[u8]) -> Failure {
    let implied = err.map_or(500, implied_status);
    let mut f = classify_status(implied, &HeaderMap::new(), err, raw);
    f.phase = Phase::Body;
    f.status = Some(200);
    f
}

/// [`embedded`] for a whole body.
pub fn embedded_error(body: &[u8]) -> Failure {
    embedded(ProviderError::from_body(body).as_ref(), body)
}

/// Classifies a non-2xx response from its status, headers and body.
pub fn status(status: u16, headers: &HeaderMap, body: &[u8]) -> Failure {
    classify_status(
        status,
        headers,
        ProviderError::from_body(body)
            .or_else(|| bedrock::error(headers, body))
            .as_ref(),
        body,
    )
}

fn classify_status(
    status: u16,
    headers: &HeaderMap,
    err: Option<&ProviderError>,
    raw: &[u8],
) -> Failure {
    let message = match err {
        Some(e) if !e.message.is_empty() => e.message.clone(),
        _ => String::from_utf8_lossy(&raw[..raw.len().min(512)])
            .trim()
            .to_owned(),
    };
    let kind = err.map_or("", |e| e.kind.as_str());
    let code = err.map_or("", |e| e.code.as_str());
    let lower = message.to_lowercase();
    let class = if let Some(class) = bedrock::class(kind, &lower) {
        class
    } else if kind == "overloaded_error" || code == "overloaded" {
        FailureClass::Overloaded
    } else {
        match status {
            429 => FailureClass::RateLimited,
            408 | 504 => FailureClass::Timeout,
            503 | 529 => FailureClass::Overloaded,
            500..=599 => FailureClass::ServerError,
            401 => FailureClass::Auth,
            403 if code == "unsupported_country_region_territory" || lower.contains("region") => {
                FailureClass::InvalidModel
            }
            403 => FailureClass::Auth,
            // The Responses API's 404 for state the caller named (a previous response, a
            // conversation, an item) that this account does not hold: the caller's to fix, or
            // another account's to answer — never a reason to trip this target's breaker.
            404 if state_not_found(err, &lower) => FailureClass::BadRequest,
            404 => FailureClass::InvalidModel,
            400..=499 => client_error(code, &lower, &String::from_utf8_lossy(raw)),
            _ => FailureClass::MalformedResponse,
        }
    };
    Failure {
        class,
        phase: Phase::Head,
        status: Some(status),
        message,
        // Google says how long to wait in the body (`RetryInfo.retryDelay`), not in headers.
        retry_after: retry_after(headers, SystemTime::now()).or_else(|| {
            err.and_then(|e| e.retry_delay)
                .map(|d| d.min(MAX_RETRY_AFTER))
        }),
        rejected: None,
        check: None,
        deadline: None,
    }
}

/// Whether a 404 is about state the request names rather than the model or the URL.
fn state_not_found(err: Option<&ProviderError>, lower_message: &str) -> bool {
    let (param, code) = err.map_or(("", ""), |e| (e.param.as_str(), e.code.as_str()));
    matches!(param, "input" | "previous_response_id" | "conversation")
        || param.starts_with("input[")
        || code == "previous_response_not_found"
        || [
            "previous response with id",
            "item with id",
            "conversation with id",
        ]
        .iter()
        .any(|n| lower_message.contains(n))
}

/// Whether `f` says the state a request names is not held by the account asked (a 404 the
/// Responses API gives for an unknown previous response, conversation or item): another
/// account of the route may hold it.
pub fn state_elsewhere(f: &Failure) -> bool {
    f.status == Some(404) && f.class == FailureClass::BadRequest
}

/// A 4xx other than 401/403/404/408/429: context length, content filter, a model that does
/// not exist or is deprecated, a key Google refuses with a 400, or the caller's own mistake.
/// `raw` is the whole body, for the reasons Google gives in its `details`.
fn client_error(code: &str, lower_message: &str, raw: &str) -> FailureClass {
    let has = |needles: &[&str]| needles.iter().any(|n| lower_message.contains(n));
    if raw.contains("\"API_KEY_INVALID\"") || has(&["api key not valid", "api key expired"]) {
        // Gemini answers a bad key with 400 INVALID_ARGUMENT.
        FailureClass::Auth
    } else if code == "context_length_exceeded"
        || code == "string_above_max_length"
        || has(&[
            "maximum context length",
            "prompt is too long",
            "context window",
            "too many tokens",
            "context_length",
            // Gemini: "The input token count (…) exceeds the maximum number of tokens allowed".
            "exceeds the maximum number of tokens",
        ])
    {
        FailureClass::ContextLength
    } else if code == "content_filter"
        || code == "content_policy_violation"
        || has(&[
            "content filtering policy",
            "content management policy",
            "safety system",
            "content policy",
        ])
    {
        FailureClass::ContentFilter
    } else if code == "model_not_found"
        || has(&[
            "does not exist",
            "model not found",
            "deprecated",
            "decommissioned",
            "not available in",
            // Gemini: "User location is not supported for the API use." (400)
            "location is not supported",
        ])
    {
        FailureClass::InvalidModel
    } else {
        FailureClass::BadRequest
    }
}

/// How long to wait before retrying, from `retry-after-ms`, `retry-after` (seconds or an
/// HTTP-date), or the providers' rate-limit reset headers for an exhausted limit.
///
/// Whatever the provider says, the wait is at most [`MAX_RETRY_AFTER`]: a value that large is a
/// provider's mistake or an attack, and it is shared with the whole fleet.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    announced_wait(headers, now).map(|d| d.min(MAX_RETRY_AFTER))
}

/// The longest wait a provider's `retry-after` (or rate-limit reset) is believed for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

fn announced_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(seconds(ms / 1000.0));
    }
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(seconds(secs));
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let mut wait: Option<Duration> = None;
    for kind in ["requests", "tokens"] {
        let exhausted = |remaining: Option<&str>| remaining.is_some_and(|r| r == "0");
        let openai = get(&format!("x-ratelimit-reset-{kind}"))
            .filter(|_| exhausted(get(&format!("x-ratelimit-remaining-{kind}"))))
            .and_then(go_duration);
        let anthropic = get(&format!("anthropic-ratelimit-{kind}-reset"))
            .filter(|_| exhausted(get(&format!("anthropic-ratelimit-{kind}-remaining"))))
            .and_then(|v| humantime::parse_rfc3339(v).ok())
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO));
        for d in [openai, anthropic].into_iter().flatten() {
            wait = Some(wait.map_or(d, |w| w.max(d)));
        }
    }
    wait
}

/// Non-negative, finite seconds as a duration, saturating at [`MAX_RETRY_AFTER`] (never the
/// panic `Duration::from_secs_f64` has for huge values).
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).map_or(MAX_RETRY_AFTER, |d| d.min(MAX_RETRY_AFTER))
}

/// OpenAI's reset durations: `1s`, `6m0s`, `20ms`, `1.5s`.
fn go_duration(v: &str) -> Option<Duration> {
    plumb_policy::duration::parse(v).ok()
}

/// Checks a complete 200 body: valid JSON of the family's shape with the fields a client needs
/// and a non-empty answer, read once into its typed form. `Err` carries the
/// `malformed_response` failure, or the error a 200 reported.
pub fn success_body(api: Api, operation: Operation, body: &[u8]) -> Result<Whole, Failure> {
    let malformed = |why: String| Failure::new(FailureClass::MalformedResponse, Phase::Body, why);
    if body.is_empty() {
        return Err(malformed("the 200 response had an empty body".to_owned()));
    }
    // A body of another shape: an error, or not what the family sends.
    let unexpected = |e: serde_json::Error| match serde_json::from_slice::<Value>(body) {
        Err(e) => malformed(format!("the 200 response body is not valid JSON ({e})")),
        Ok(v) if v.get("error").is_some_and(|e| !e.is_null()) => embedded_error(body),
        Ok(_) => malformed(format!("the 200 response is not a valid answer ({e})")),
    };
    let reported = |error: &Option<Value>| error.as_ref().is_some_and(|e| !e.is_null());
    match (api, operation) {
        (Api::Openai, Operation::Embeddings) => {
            let e: Embeddings = serde_json::from_slice(body).map_err(unexpected)?;
            if reported(&e.error) {
                return Err(embedded_error(body));
            }
            if e.data.is_empty() {
                return Err(malformed("the embeddings response has no data".to_owned()));
            }
            Ok(Whole::Embeddings(e))
        }
        (Api::Openai, Operation::Chat) => {
            let c: ChatCompletion = serde_json::from_slice(body).map_err(unexpected)?;
            if reported(&c.error) {
                return Err(embedded_error(body));
            }
            let Some(message) = c.message() else {
                return Err(malformed(
                    "the completion has no choices[0].message".to_owned(),
                ));
            };
            let text = message.content.as_deref().unwrap_or("");
            let refusal = message.refusal.as_deref().is_some_and(|r| !r.is_empty());
            if text.is_empty() && message.tool_calls.is_empty() && !refusal {
                return Err(malformed("the completion's answer is empty".to_owned()));
            }
            Ok(Whole::Chat(Completion::Openai(c)))
        }
        (Api::Anthropic, Operation::Chat | Operation::Embeddings) => {
            let m: Message = serde_json::from_slice(body).map_err(unexpected)?;
            if reported(&m.error) {
                return Err(embedded_error(body));
            }
            let Some(blocks) = &m.content else {
                return Err(malformed("the message has no content array".to_owned()));
            };
            let useful = blocks.iter().any(|b| match b {
                Block::Text { text } => !text.is_empty(),
                // Thinking without an answer is no answer.
                Block::Thinking { .. } => false,
                Block::ToolUse { .. } | Block::Other => true,
            });
            if !useful {
                return Err(malformed("the message's answer is empty".to_owned()));
            }
            Ok(Whole::Chat(Completion::Anthropic(m)))
        }
        (Api::Responses, Operation::Chat | Operation::Embeddings) => {
            let r: Response = serde_json::from_slice(body).map_err(unexpected)?;
            if reported(&r.error) || r.status.as_deref() == Some("failed") {
                return Err(embedded_error(body));
            }
            // A background job OpenAI accepted: its answer comes when the client polls. An
            // incomplete response (its output limit reached while thinking) is the answer the
            // client asked for, as a `length` finish is.
            if r.pending() || r.status.as_deref() == Some("incomplete") {
                return Ok(Whole::Chat(Completion::Responses(r)));
            }
            let Some(items) = &r.output else {
                return Err(malformed("the response has no output array".to_owned()));
            };
            let useful = items.iter().any(|i| match i {
                OutputItem::Message { content } => content.iter().any(|c| match c {
                    OutputContent::OutputText { text } => !text.is_empty(),
                    OutputContent::Refusal { refusal } => !refusal.is_empty(),
                    OutputContent::Other => true,
                }),
                // Thinking without an answer is no answer.
                OutputItem::Reasoning {} => false,
                OutputItem::FunctionCall { .. } | OutputItem::Other => true,
            });
            if !useful {
                return Err(malformed("the response's output is empty".to_owned()));
            }
            Ok(Whole::Chat(Completion::Responses(r)))
        }
        (Api::Gemini, Operation::Chat | Operation::Embeddings) => {
            let g: crate::event::gemini::Response =
                serde_json::from_slice(body).map_err(unexpected)?;
            if reported(&g.error) {
                return Err(embedded_error(body));
            }
            if let Some(f) = gemini_refusal(&g) {
                return Err(f);
            }
            if g.candidate().is_none() {
                return Err(malformed("the answer has no candidates".to_owned()));
            }
            if !g.has_content() {
                return Err(malformed(
                    "the candidate's answer is empty (no text or function call)".to_owned(),
                ));
            }
            Ok(Whole::Chat(Completion::Gemini(g)))
        }
        (Api::Bedrock, Operation::Chat | Operation::Embeddings) => {
            let b: crate::event::bedrock::Response =
                serde_json::from_slice(body).map_err(unexpected)?;
            if crate::event::bedrock::filtered(b.stop_reason.as_deref()) {
                return Err(Failure {
                    status: Some(200),
                    ..Failure::new(
                        FailureClass::ContentFilter,
                        Phase::Body,
                        format!(
                            "bedrock stopped the answer (stopReason {})",
                            b.stop_reason.as_deref().unwrap_or_default()
                        ),
                    )
                });
            }
            let useful = b
                .blocks()
                .iter()
                .any(|c| c.text.as_deref().is_some_and(|t| !t.is_empty()) || c.tool_use.is_some());
            if !useful {
                return Err(malformed(
                    "the answer's content is empty (no text or tool use)".to_owned(),
                ));
            }
            Ok(Whole::Chat(Completion::Bedrock(b)))
        }
    }
}

/// What a Gemini answer (whole, or a stream event) says about itself that is a failure: a
/// blocked prompt or a filtered answer (`content_filter`), or a function call the model could
/// not form (`malformed_response`). A truncated answer (`MAX_TOKENS`) is not one: it passes
/// on as OpenAI's `length`, as an OpenAI answer's would.
fn gemini_refusal(g: &crate::event::gemini::Response) -> Option<Failure> {
    use crate::event::gemini::Finish;
    let filtered = |message: String| Failure {
        status: Some(200),
        ..Failure::new(FailureClass::ContentFilter, Phase::Body, message)
    };
    if let Some(reason) = g.blocked() {
        return Some(filtered(format!("gemini blocked the prompt ({reason})")));
    }
    match g.finish()? {
        Finish::Filtered(reason) => Some(filtered(format!(
            "gemini stopped the answer (finishReason {reason})"
        ))),
        Finish::MalformedCall => Some(Failure::new(
            FailureClass::MalformedResponse,
            Phase::Body,
            "gemini produced a malformed function call (finishReason MALFORMED_FUNCTION_CALL)",
        )),
        Finish::Stop | Finish::MaxTokens => None,
    }
}

/// What a stream event carries, as far as committing is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Before the answer: a role chunk, `message_start`, `ping`, a comment.
    Preamble,
    /// A piece of the answer (text, tool arguments, a refusal).
    Content,
    /// A piece of a reasoning model's thinking (`reasoning_content`, `reasoning`, Anthropic
    /// `thinking_delta`): not the answer, but the model is at work — it counts as the first
    /// token and keeps the stream alive.
    Reasoning,
    /// The end: a finish reason, usage, `[DONE]`, `message_delta`, `message_stop`.
    End,
}

/// Reads one event of a stream not yet committed: an error event is classified as the error
/// it carries; an event that is not JSON is `malformed_response`.
pub fn stream_event(event: &Event, raw: &RawEvent) -> Result<Progress, Failure> {
    use crate::event::anthropic::StreamEvent as A;
    match event {
        Event::Empty | Event::Unknown => Ok(Progress::Preamble),
        Event::Done => Ok(Progress::End),
        Event::Malformed => Err(Failure::new(
            FailureClass::MalformedResponse,
            Phase::Body,
            "a stream event before the first token is not valid JSON",
        )),
        Event::Error(e) => Err(embedded(Some(e), raw.data.as_bytes())),
        Event::Chunk(c) => Ok(if c.has_content() {
            Progress::Content
        } else if c.reasoning().is_some() {
            Progress::Reasoning
        } else if c.finish_reason().is_some() || c.usage_only() {
            Progress::End
        } else {
            Progress::Preamble
        }),
        Event::Anthropic(a) => Ok(match a {
            A::ContentBlockDelta {
                delta: crate::event::anthropic::BlockDelta::ThinkingDelta { .. },
                ..
            } => Progress::Reasoning,
            A::ContentBlockDelta { .. } => Progress::Content,
            A::MessageDelta { .. } | A::MessageStop => Progress::End,
            A::MessageStart { .. }
            | A::ContentBlockStart { .. }
            | A::ContentBlockStop { .. }
            | A::Ping
            | A::Error { .. }
            | A::Unknown => Progress::Preamble,
        }),
        Event::Responses(r) => {
            use crate::event::responses::StreamEvent as R;
            Ok(match r {
                R::TextDelta { .. } | R::RefusalDelta { .. } | R::ArgumentsDelta { .. } => {
                    Progress::Content
                }
                R::ReasoningDelta { .. } => Progress::Reasoning,
                // OpenAI's reasoning models think silently unless asked for a summary: the
                // reasoning item's start is the sign they are at work.
                R::ItemAdded { item, .. } if item.kind == "reasoning" => Progress::Reasoning,
                R::Completed { .. } | R::Incomplete { .. } => Progress::End,
                R::Created { .. }
                | R::ItemAdded { .. }
                | R::ItemDone { .. }
                | R::Failed { .. }
                | R::Error { .. }
                | R::Unknown => Progress::Preamble,
            })
        }
        Event::Bedrock(b) => {
            let stop = b
                .message_stop
                .as_ref()
                .and_then(|s| s.stop_reason.as_deref());
            if crate::event::bedrock::filtered(stop) {
                return Err(Failure {
                    status: Some(200),
                    ..Failure::new(
                        FailureClass::ContentFilter,
                        Phase::Body,
                        format!(
                            "bedrock stopped the answer (stopReason {})",
                            stop.unwrap_or_default()
                        ),
                    )
                });
            }
            let reasoning = b
                .content_block_delta
                .as_ref()
                .is_some_and(|d| d.delta.reasoning_content.is_some());
            Ok(if reasoning {
                Progress::Reasoning
            } else if b.has_content() {
                Progress::Content
            } else if b.message_stop.is_some() || b.metadata.is_some() {
                Progress::End
            } else {
                Progress::Preamble
            })
        }
        Event::Gemini(g) => {
            if let Some(f) = gemini_refusal(g) {
                return Err(f);
            }
            Ok(if g.has_content() {
                Progress::Content
            } else if g.has_thought() {
                Progress::Reasoning
            } else if g.finish().is_some() {
                Progress::End
            } else {
                Progress::Preamble
            })
        }
    }
}

#[cfg(test)]
mod tests;

mod bedrock;
