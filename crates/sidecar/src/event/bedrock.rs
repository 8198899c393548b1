//! AWS Bedrock Converse answers: the whole `Converse` response, and the events of
//! `ConverseStream`, whose binary `application/vnd.amazon.eventstream` framing becomes
//! server-sent events at the edge ([`EventStreamBody`]), so the one SSE reader, the hold
//! before commit and the relay read Bedrock streams as they read every other family's.
//!
//! Each frame becomes `event: {:event-type}` with `data: {"{:event-type}": payload}` — the
//! shape of Bedrock's `ConverseStreamOutput` union — and an exception frame (`:message-type:
//! exception`) or error frame becomes `event: error` with `data: {"error": {"type":
//! "{:exception-type}", "message": …}}`, which classification reads like any provider error.
//! The framing (prelude, headers, CRCs) is decoded by `aws-smithy-eventstream`.

use std::pin::Pin;
use std::task::{Context, Poll};

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame};
use serde::Deserialize;
use serde_json::{Value, json};

use super::openai::null_as_default;
use crate::respond::BoxError;
use crate::upstream::UpstreamBody;

/// The content type of a ConverseStream body.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// The largest frame accepted (Bedrock's frames are small; a provider that claims more is
/// broken or hostile).
const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// A `Converse` response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    /// The answer.
    #[serde(default)]
    pub output: Option<Output>,
    /// Why it stopped (`end_turn`, `tool_use`, `max_tokens`, `stop_sequence`,
    /// `guardrail_intervened`, `content_filtered`).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// A response's output.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Output {
    /// The assistant's message.
    #[serde(default)]
    pub message: Option<OutputMessage>,
}

/// An assistant message of a Converse answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct OutputMessage {
    /// Its content blocks.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: Vec<ContentBlock>,
}

/// One content block: text, a tool use, or reasoning. Other kinds carry nothing Plumb reads.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentBlock {
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// A tool call.
    #[serde(default)]
    pub tool_use: Option<ToolUse>,
    /// The model's reasoning.
    #[serde(default)]
    pub reasoning_content: Option<Reasoning>,
}

/// A tool call.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse {
    /// Its id.
    #[serde(default)]
    pub tool_use_id: String,
    /// The tool.
    #[serde(default)]
    pub name: String,
    /// Its input (a JSON object).
    #[serde(default)]
    pub input: Value,
}

/// A reasoning block.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reasoning {
    /// The reasoning text.
    #[serde(default)]
    pub reasoning_text: Option<ReasoningText>,
}

/// Reasoning text.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ReasoningText {
    /// The text.
    #[serde(default)]
    pub text: String,
}

/// Token usage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
}

/// One ConverseStream event: exactly one of the fields is set.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamEvent {
    /// The message starts.
    #[serde(default)]
    pub message_start: Option<Value>,
    /// A block starts (a tool use names its tool here).
    #[serde(default)]
    pub content_block_start: Option<BlockStart>,
    /// A block grows.
    #[serde(default)]
    pub content_block_delta: Option<BlockDelta>,
    /// A block ends.
    #[serde(default)]
    pub content_block_stop: Option<Value>,
    /// The message ends, with its stop reason.
    #[serde(default)]
    pub message_stop: Option<MessageStop>,
    /// The usage, after the end: the stream's last event.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// `contentBlockStart`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStart {
    /// The block's index.
    #[serde(default)]
    pub content_block_index: u64,
    /// What starts.
    #[serde(default)]
    pub start: Option<StartOf>,
}

/// What a block starts with.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartOf {
    /// A tool call's id and name.
    #[serde(default)]
    pub tool_use: Option<ToolUse>,
}

/// `contentBlockDelta`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDelta {
    /// The block's index.
    #[serde(default)]
    pub content_block_index: u64,
    /// What it adds.
    #[serde(default)]
    pub delta: DeltaOf,
}

/// What a delta adds: text, a piece of a tool call's input (JSON text), or reasoning.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeltaOf {
    /// Text.
    #[serde(default)]
    pub text: Option<String>,
    /// A piece of a tool call's input.
    #[serde(default)]
    pub tool_use: Option<InputPiece>,
    /// Reasoning (`text`, or a `signature`).
    #[serde(default)]
    pub reasoning_content: Option<ReasoningDelta>,
}

/// A piece of a tool call's input.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct InputPiece {
    /// JSON text.
    #[serde(default)]
    pub input: String,
}

/// A piece of reasoning.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct ReasoningDelta {
    /// Reasoning text.
    #[serde(default)]
    pub text: Option<String>,
}

/// `messageStop`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageStop {
    /// Why it stopped.
    #[serde(default)]
    pub stop_reason: Option<String>,
}

/// `metadata`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct Metadata {
    /// Token usage.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// Why an answer stopped, in OpenAI's words.
pub fn openai_finish(stop_reason: Option<&str>, tools: bool) -> &'static str {
    match stop_reason {
        Some("tool_use") => "tool_calls",
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("guardrail_intervened" | "content_filtered") => "content_filter",
        Some(_) | None if tools => "tool_calls",
        Some(_) | None => "stop",
    }
}

/// Whether a stop reason says a filter stopped the answer.
pub fn filtered(stop_reason: Option<&str>) -> bool {
    matches!(
        stop_reason,
        Some("guardrail_intervened" | "content_filtered")
    )
}

impl Response {
    /// The answer's content blocks.
    pub fn blocks(&self) -> &[ContentBlock] {
        self.output
            .as_ref()
            .and_then(|o| o.message.as_ref())
            .map_or(&[], |m| m.content.as_slice())
    }

    /// The answer's text.
    pub fn text(&self) -> String {
        self.blocks()
            .iter()
            .filter_map(|b| b.text.as_deref())
            .collect()
    }

    /// Input and output tokens.
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        self.usage
            .map_or((None, None), |u| (u.input_tokens, u.output_tokens))
    }
}

impl StreamEvent {
    /// Whether it ends the stream: `metadata` is ConverseStream's last event.
    pub fn is_terminal(&self) -> bool {
        self.metadata.is_some()
    }

    /// Input and output tokens, from `metadata`.
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        self.metadata
            .as_ref()
            .and_then(|m| m.usage)
            .map_or((None, None), |u| (u.input_tokens, u.output_tokens))
    }

    /// Whether it carries words of the answer (text, reasoning, or a tool call).
    pub fn has_content(&self) -> bool {
        self.content_block_delta.as_ref().is_some_and(|d| {
            d.delta.text.as_deref().is_some_and(|t| !t.is_empty())
                || d.delta.tool_use.is_some()
                || d.delta.reasoning_content.is_some()
        }) || self
            .content_block_start
            .as_ref()
            .is_some_and(|s| s.start.as_ref().is_some_and(|s| s.tool_use.is_some()))
    }
}

/// A ConverseStream body read as server-sent events (see the module's doc). A body that ends
/// inside a frame, or a frame that does not decode, fails the body: a stream cut.
pub struct EventStreamBody {
    inner: UpstreamBody,
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    /// Bytes of an unfinished frame were read (the decoder may hold its prelude).
    partial: bool,
    done: bool,
}

impl EventStreamBody {
    /// Reads `inner` as an event stream.
    pub fn new(inner: UpstreamBody) -> EventStreamBody {
        EventStreamBody {
            inner,
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            partial: false,
            done: false,
        }
    }

    /// The next whole frame in the buffer, as an SSE event.
    fn next_frame(&mut self) -> Result<Option<Bytes>, BoxError> {
        if !self.partial {
            return Ok(None);
        }
        match self.decoder.decode_frame(&mut self.buf) {
            Ok(DecodedFrame::Complete(message)) => {
                self.partial = !self.buf.is_empty();
                Ok(Some(sse(&message)))
            }
            Ok(DecodedFrame::Incomplete) => {
                if self.buf.len() > MAX_FRAME_BYTES {
                    return Err("a bedrock event-stream frame is larger than 1 MiB".into());
                }
                Ok(None)
            }
            Err(e) => Err(format!("a bedrock event-stream frame does not decode: {e}").into()),
        }
    }
}

impl Body for EventStreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.next_frame() {
                Ok(Some(event)) => return Poll::Ready(Some(Ok(Frame::data(event)))),
                Ok(None) => {}
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        this.buf.extend_from_slice(&data);
                        this.partial = true;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.partial {
                        return Poll::Ready(Some(Err(
                            "the bedrock event stream ended inside a frame".into(),
                        )));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// A string header of a frame.
fn header<'a>(message: &'a Message, name: &str) -> Option<&'a str> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str())
}

/// One frame as an SSE event (a payload that is not JSON stays so, on one line: a malformed
/// event).
fn sse(message: &Message) -> Bytes {
    let Ok(payload) = serde_json::from_slice::<Value>(message.payload()) else {
        let text = String::from_utf8_lossy(message.payload()).replace(['\r', '\n'], " ");
        return Bytes::from(format!("event: malformed\ndata: {text}\n\n"));
    };
    let (name, data) = match header(message, ":message-type") {
        Some("exception") => {
            let kind = header(message, ":exception-type").unwrap_or("exception");
            let text = payload
                .get("message")
                .or_else(|| payload.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            (
                "error".to_owned(),
                json!({"error": {"type": kind, "message": text}}),
            )
        }
        Some("error") => (
            "error".to_owned(),
            json!({"error": {
                "type": header(message, ":error-code").unwrap_or("error"),
                "message": header(message, ":error-message").unwrap_or_default(),
            }}),
        ),
        Some(_) | None => {
            let kind = header(message, ":event-type")
                .unwrap_or("unknown")
                .to_owned();
            let mut wrapped = serde_json::Map::new();
            wrapped.insert(kind.clone(), payload);
            (kind, Value::Object(wrapped))
        }
    };
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use aws_smithy_eventstream::frame::write_message_to;
    use aws_smithy_types::event_stream::{Header, HeaderValue};
    use http_body_util::BodyExt as _;
    use http_body_util::combinators::BoxBody;

    use super::*;

    fn frame(headers: &[(&str, &str)], payload: &str) -> Vec<u8> {
        let mut m = Message::new(Bytes::from(payload.to_owned()));
        for (k, v) in headers {
            m = m.add_header(Header::new(
                (*k).to_owned(),
                HeaderValue::String((*v).to_owned().into()),
            ));
        }
        let mut out = Vec::new();
        write_message_to(&m, &mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn body(chunks: Vec<Vec<u8>>) -> UpstreamBody {
        let stream = tokio_stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from(c)))),
        );
        BoxBody::new(http_body_util::StreamBody::new(stream))
    }

    async fn read(chunks: Vec<Vec<u8>>) -> (String, Option<String>) {
        let mut b = EventStreamBody::new(body(chunks));
        let mut out = String::new();
        while let Some(f) = b.frame().await {
            match f {
                Ok(f) => out.push_str(&String::from_utf8_lossy(&f.into_data().unwrap_or_default())),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn frames_split_anywhere_become_events_of_the_converse_stream_union() {
        let mut all = frame(
            &[
                (":message-type", "event"),
                (":event-type", "contentBlockDelta"),
            ],
            r#"{"contentBlockIndex":0,"delta":{"text":"Hi"},"p":"abc"}"#,
        );
        all.extend(frame(
            &[(":message-type", "event"), (":event-type", "messageStop")],
            r#"{"stopReason":"end_turn"}"#,
        ));
        // One byte at a time.
        let (out, err) = read(all.iter().map(|b| vec![*b]).collect()).await;
        assert_eq!(err, None);
        assert_eq!(
            out,
            "event: contentBlockDelta\ndata: {\"contentBlockDelta\":{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"},\"p\":\"abc\"}}\n\nevent: messageStop\ndata: {\"messageStop\":{\"stopReason\":\"end_turn\"}}\n\n"
        );
    }

    #[tokio::test]
    async fn an_exception_frame_becomes_an_error_event_with_its_type() {
        let f = frame(
            &[
                (":message-type", "exception"),
                (":exception-type", "throttlingException"),
            ],
            r#"{"message":"Too many requests"}"#,
        );
        let (out, err) = read(vec![f]).await;
        assert_eq!(err, None);
        assert_eq!(
            out,
            "event: error\ndata: {\"error\":{\"message\":\"Too many requests\",\"type\":\"throttlingException\"}}\n\n"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_frame_is_cut() {
        let f = frame(
            &[(":message-type", "event"), (":event-type", "messageStart")],
            r#"{"role":"assistant"}"#,
        );
        let mut g = f.clone();
        g.extend_from_slice(&f[..f.len() / 2]);
        let (out, err) = read(vec![g]).await;
        assert!(out.starts_with("event: messageStart"), "{out}");
        assert_eq!(
            err.as_deref(),
            Some("the bedrock event stream ended inside a frame")
        );
    }

    #[tokio::test]
    async fn a_corrupt_frame_fails_the_body() {
        let mut f = frame(&[(":event-type", "messageStart")], "{}");
        let last = f.len() - 1;
        f[last] ^= 0xff;
        let (_, err) = read(vec![f]).await;
        assert!(err.is_some_and(|e| e.contains("does not decode")));
    }
}
