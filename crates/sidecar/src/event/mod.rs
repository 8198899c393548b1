//! Stream events, read once: the one SSE reader ([`sse`]) splits the upstream's bytes into
//! events, and [`Event::parse`] reads each event's data once into a typed event of its family —
//! an OpenAI chunk, an Anthropic event of its kind, the end marker, a provider error, or
//! something malformed. Classification before commit, the relay's translation, contract
//! collection and token accounting all consume the same [`Event`].

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod sse;

pub use sse::{MAX_EVENT_BYTES, RawEvent, SseReader};

use serde_json::Value;

use crate::payload::Api;

/// One upstream stream event, parsed.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An OpenAI-family chunk.
    Chunk(openai::Chunk),
    /// An Anthropic event.
    Anthropic(anthropic::StreamEvent),
    /// An OpenAI Responses event.
    Responses(responses::StreamEvent),
    /// A Gemini stream event: a partial `GenerateContentResponse`.
    Gemini(Box<gemini::Response>),
    /// A Bedrock ConverseStream event (see [`bedrock`] for how its frames become events).
    Bedrock(Box<bedrock::StreamEvent>),
    /// OpenAI's `data: [DONE]`.
    Done,
    /// A comment or keep-alive: no data.
    Empty,
    /// Valid JSON that is not an event Plumb knows for the family: it carries nothing Plumb
    /// reads, and passes on where the client speaks the same family.
    Unknown,
    /// The provider reported an error.
    Error(ProviderError),
    /// Data that is not JSON.
    Malformed,
}

impl Event {
    /// Reads one event of an upstream of `family`.
    pub fn parse(family: Api, raw: &RawEvent) -> Event {
        let data = raw.data.as_str();
        if data.is_empty() {
            return Event::Empty;
        }
        if data == "[DONE]" {
            return Event::Done;
        }
        let named_error = raw.name.as_deref() == Some("error");
        let typed = match family {
            Api::Openai => serde_json::from_str::<openai::Chunk>(data).map(|c| match c.error {
                Some(e) if !e.is_null() => Event::Error(ProviderError::from_error(&e)),
                Some(_) | None => Event::Chunk(c),
            }),
            Api::Anthropic => {
                serde_json::from_str::<anthropic::StreamEvent>(data).map(|e| match e {
                    anthropic::StreamEvent::Error { error } => {
                        Event::Error(ProviderError::from_error(&error))
                    }
                    other @ (anthropic::StreamEvent::MessageStart { .. }
                    | anthropic::StreamEvent::ContentBlockStart { .. }
                    | anthropic::StreamEvent::ContentBlockDelta { .. }
                    | anthropic::StreamEvent::ContentBlockStop { .. }
                    | anthropic::StreamEvent::MessageDelta { .. }
                    | anthropic::StreamEvent::MessageStop
                    | anthropic::StreamEvent::Ping
                    | anthropic::StreamEvent::Unknown) => Event::Anthropic(other),
                })
            }
            Api::Responses => {
                serde_json::from_str::<responses::StreamEvent>(data).map(|e| match e {
                    responses::StreamEvent::Error { code, message } => {
                        Event::Error(ProviderError {
                            kind: String::new(),
                            code: code.unwrap_or_default(),
                            message: message.unwrap_or_default(),
                            ..ProviderError::default()
                        })
                    }
                    responses::StreamEvent::Failed { response } => Event::Error(
                        response
                            .error
                            .as_ref()
                            .map(ProviderError::from_error)
                            .unwrap_or_default(),
                    ),
                    other @ (responses::StreamEvent::Created { .. }
                    | responses::StreamEvent::Completed { .. }
                    | responses::StreamEvent::Incomplete { .. }
                    | responses::StreamEvent::ItemAdded { .. }
                    | responses::StreamEvent::ItemDone { .. }
                    | responses::StreamEvent::TextDelta { .. }
                    | responses::StreamEvent::RefusalDelta { .. }
                    | responses::StreamEvent::ArgumentsDelta { .. }
                    | responses::StreamEvent::ReasoningDelta { .. }
                    | responses::StreamEvent::Unknown) => Event::Responses(other),
                })
            }
            Api::Gemini => serde_json::from_str::<gemini::Response>(data).map(|g| match &g.error {
                Some(e) if !e.is_null() => Event::Error(ProviderError::from_error(e)),
                Some(_) | None => Event::Gemini(Box::new(g)),
            }),
            Api::Bedrock => serde_json::from_str::<bedrock::StreamEvent>(data)
                .map(|e| Event::Bedrock(Box::new(e))),
        };
        match typed {
            Ok(Event::Error(e)) => Event::Error(e),
            Ok(_) if named_error => Event::Error(error_of(data)),
            Ok(event) => event,
            // Not the family's shape: an error of the other family's shape, some other JSON,
            // or not JSON at all.
            Err(_) => match serde_json::from_str::<Value>(data) {
                Err(_) => Event::Malformed,
                Ok(v) => {
                    let is_error = named_error
                        || v.get("type").and_then(Value::as_str) == Some("error")
                        || error_member(&v).is_some_and(|e| !e.is_null());
                    if is_error {
                        Event::Error(
                            error_member(&v)
                                .map(ProviderError::from_error)
                                .unwrap_or_default(),
                        )
                    } else {
                        Event::Unknown
                    }
                }
            },
        }
    }

    /// Whether it ends the stream: OpenAI's `[DONE]`, Anthropic's `message_stop`, a
    /// Responses stream's `response.completed` / `response.incomplete`, or the Gemini event
    /// that carries `finishReason` (Gemini sends no end marker: the stream just closes).
    pub fn is_terminal(&self) -> bool {
        match self {
            Event::Gemini(g) => g.finish().is_some(),
            Event::Bedrock(b) => b.is_terminal(),
            Event::Done
            | Event::Anthropic(anthropic::StreamEvent::MessageStop)
            | Event::Responses(
                responses::StreamEvent::Completed { .. }
                | responses::StreamEvent::Incomplete { .. },
            ) => true,
            Event::Chunk(_)
            | Event::Anthropic(_)
            | Event::Responses(_)
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => false,
        }
    }

    /// The input and output tokens it reports, as far as it does: OpenAI's usage chunk,
    /// Anthropic's `message_start` (input) and `message_delta` (cumulative output).
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        match self {
            Event::Chunk(c) => c
                .usage
                .map_or((None, None), |u| (u.prompt_tokens, u.completion_tokens)),
            Event::Anthropic(anthropic::StreamEvent::MessageStart { message }) => message
                .usage
                .map_or((None, None), |u| (u.input_tokens, u.output_tokens)),
            Event::Anthropic(anthropic::StreamEvent::MessageDelta { usage, .. }) => {
                usage.map_or((None, None), |u| (u.input_tokens, u.output_tokens))
            }
            Event::Responses(
                responses::StreamEvent::Completed { response }
                | responses::StreamEvent::Incomplete { response },
            ) => response
                .usage
                .map_or((None, None), |u| (u.input_tokens, u.output_tokens)),
            Event::Gemini(g) => g.usage(),
            Event::Bedrock(b) => b.usage(),
            Event::Anthropic(_)
            | Event::Responses(_)
            | Event::Done
            | Event::Empty
            | Event::Unknown
            | Event::Error(_)
            | Event::Malformed => (None, None),
        }
    }
}

/// The provider's error `type`/`code` and message, from any family's error shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderError {
    /// `type` (`rate_limit_error`, `invalid_request_error`, …).
    pub kind: String,
    /// `code` (`rate_limit_exceeded`, `context_length_exceeded`, …).
    pub code: String,
    /// What the provider said.
    pub message: String,
    /// How long the provider asked to wait before retrying, from the body (Google's
    /// `RetryInfo.retryDelay`).
    pub retry_delay: Option<std::time::Duration>,
    /// The request field the error is about (`param`), when the provider names one.
    pub param: String,
}

impl ProviderError {
    /// Reads the `error` member of any family's error body: an object with `type`, `code`
    /// and `message` (Google's carries its canonical `status` where the others have `type`,
    /// and a `RetryInfo` among its `details`), or a bare string.
    pub fn from_error(err: &Value) -> ProviderError {
        if let Some(s) = err.as_str() {
            return ProviderError {
                message: s.to_owned(),
                ..ProviderError::default()
            };
        }
        let text = |k: &str| {
            err.get(k)
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other @ (Value::Bool(_)
                    | Value::Number(_)
                    | Value::Array(_)
                    | Value::Object(_)) => other.to_string(),
                })
                .unwrap_or_default()
        };
        let kind = match text("type") {
            t if t.is_empty() => text("status"),
            t => t,
        };
        ProviderError {
            kind,
            code: text("code"),
            message: text("message"),
            retry_delay: retry_delay(err),
            param: text("param"),
        }
    }

    /// Reads an error body: `{"error": …}`, or Vertex AI's `[{"error": …}]`.
    pub fn from_body(body: &[u8]) -> Option<ProviderError> {
        let v: Value = serde_json::from_slice(body).ok()?;
        error_member(&v).map(ProviderError::from_error)
    }
}

/// The `error` member of an error body: `{"error": …}`, or the first element's of the array
/// Vertex AI wraps it in (`[{"error": …}]`, as a `streamGenerateContent` call answers).
fn error_member(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(a) => a.first().and_then(|e| e.get("error")),
        Value::Object(_) => v.get("error"),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => None,
    }
}

/// Google's `RetryInfo.retryDelay` among an error's `details`: a protobuf duration such as
/// `"30s"` or `"1.5s"`.
fn retry_delay(err: &Value) -> Option<std::time::Duration> {
    err.get("details")?
        .as_array()?
        .iter()
        .filter(|d| {
            d.get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("google.rpc.RetryInfo"))
        })
        .find_map(|d| {
            d.get("retryDelay")?
                .as_str()?
                .strip_suffix('s')?
                .parse::<f64>()
                .ok()
        })
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok())
}

/// The error an event named `error` carries, whatever its shape.
fn error_of(data: &str) -> ProviderError {
    serde_json::from_str::<Value>(data)
        .ok()
        .and_then(|v| v.get("error").map(ProviderError::from_error))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(family: Api, text: &str) -> Event {
        let mut r = SseReader::default();
        r.push(text.as_bytes());
        let raw = r
            .next_event()
            .unwrap_or_else(|| panic!("no event in {text:?}"));
        Event::parse(family, &raw)
    }

    #[test]
    fn openai_chunks_are_typed_with_what_plumb_reads() {
        let e = parse(
            Api::Openai,
            "data: {\"id\":\"c\",\"model\":\"gpt\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\",\"refusal\":null},\"finish_reason\":null,\"logprobs\":null}],\"usage\":null}\n\n",
        );
        let Event::Chunk(c) = e else { panic!("{e:?}") };
        assert_eq!(c.text(), "Hi");
        assert!(c.has_content());
        assert_eq!(c.model.as_deref(), Some("gpt"));
        assert_eq!(
            c.rest.get("id"),
            Some(Value::from("c")),
            "the rest is carried"
        );
        assert_eq!(parse(Api::Openai, "data: [DONE]\n\n"), Event::Done);
        assert!(parse(Api::Openai, "data: [DONE]\n\n").is_terminal());
    }

    #[test]
    fn reasoning_deltas_are_read_but_are_not_answer_content() {
        let e = parse(
            Api::Openai,
            "data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"Let me think\"}}]}\n\n",
        );
        let Event::Chunk(c) = e else { panic!("{e:?}") };
        assert!(!c.has_content());
        assert_eq!(
            c.delta().and_then(|d| d.reasoning_content.as_deref()),
            Some("Let me think")
        );
    }

    #[test]
    fn usage_of_both_families() {
        let e = parse(
            Api::Openai,
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30}}\n\n",
        );
        assert_eq!(e.usage(), (Some(12), Some(30)));
        let e = parse(
            Api::Anthropic,
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"claude\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
        );
        assert_eq!(e.usage(), (Some(25), Some(1)));
        let e = parse(
            Api::Anthropic,
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
        );
        assert_eq!(e.usage(), (None, Some(15)));
    }

    #[test]
    fn anthropic_events_are_one_variant_per_kind() {
        let e = parse(
            Api::Anthropic,
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        );
        assert_eq!(
            e,
            Event::Anthropic(anthropic::StreamEvent::ContentBlockDelta {
                index: 1,
                delta: anthropic::BlockDelta::TextDelta { text: "Hi".into() }
            })
        );
        let stop = parse(
            Api::Anthropic,
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        assert!(stop.is_terminal());
        let unknown = parse(
            Api::Anthropic,
            "event: future_thing\ndata: {\"type\":\"future_thing\",\"x\":1}\n\n",
        );
        assert_eq!(unknown, Event::Anthropic(anthropic::StreamEvent::Unknown));
    }

    #[test]
    fn errors_of_either_shape_and_garbage_are_told_apart() {
        let e = parse(
            Api::Anthropic,
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        assert_eq!(
            e,
            Event::Error(ProviderError {
                kind: "overloaded_error".into(),
                code: String::new(),
                message: "Overloaded".into(),
                retry_delay: None,
                param: String::new(),
            })
        );
        let e = parse(
            Api::Openai,
            "data: {\"error\":{\"message\":\"Rate limit\",\"type\":\"requests\",\"code\":\"rate_limit_exceeded\"}}\n\n",
        );
        assert!(
            matches!(e, Event::Error(ref p) if p.code == "rate_limit_exceeded"),
            "{e:?}"
        );
        // An Anthropic-shaped error from an OpenAI-compatible server is still an error.
        let e = parse(
            Api::Openai,
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n",
        );
        assert!(matches!(e, Event::Error(_)), "{e:?}");
        assert_eq!(
            parse(Api::Openai, "data: {\"choices\": [\n\n"),
            Event::Malformed
        );
        assert_eq!(parse(Api::Anthropic, ": keep-alive\n\n"), Event::Empty);
        // Valid JSON of an unexpected shape carries nothing, and is not malformed.
        assert_eq!(
            parse(
                Api::Openai,
                "data: {\"choices\":[{\"delta\":{\"content\":5}}]}\n\n"
            ),
            Event::Unknown
        );
    }

    #[test]
    fn gemini_events_are_typed_and_the_one_with_a_finish_reason_ends_the_stream() {
        let e = parse(
            Api::Gemini,
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"}}],\"modelVersion\":\"gemini-2.5-flash\"}\r\n\r\n",
        );
        let Event::Gemini(g) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(g.text(), "Hi");
        assert!(!e.is_terminal());
        let e = parse(
            Api::Gemini,
            "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\".\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":7,\"candidatesTokenCount\":2}}\r\n\r\n",
        );
        assert!(e.is_terminal());
        assert_eq!(e.usage(), (Some(7), Some(2)));
    }

    #[test]
    fn google_errors_read_their_status_and_retry_delay() {
        let e = parse(
            Api::Gemini,
            "data: {\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"1.5s\"}]}}\n\n",
        );
        assert_eq!(
            e,
            Event::Error(ProviderError {
                kind: "RESOURCE_EXHAUSTED".into(),
                code: "429".into(),
                message: "Resource exhausted".into(),
                retry_delay: Some(std::time::Duration::from_millis(1500)),
                param: String::new(),
            })
        );
    }
}
