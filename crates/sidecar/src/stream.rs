//! A committed stream: events pass from the upstream to the client as they arrive, with no
//! added buffering. A cut, a silence longer than the idle deadline, or a stream longer than its
//! maximum ends the client's stream with an explicit error event in the client's format —
//! never a silent truncation — followed by a `: plumb …` comment that clients ignore.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use serde_json::json;
use tokio::time::{Instant, Sleep};

use crate::payload::Api;
use crate::respond::BoxError;

/// How a committed stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream ended it cleanly.
    Completed {
        /// Bytes relayed.
        bytes: u64,
    },
    /// It was interrupted; the client got an error event.
    Interrupted {
        /// `cut`, `stall` or `too_long`.
        reason: &'static str,
        /// Bytes relayed before.
        bytes: u64,
    },
    /// The client went away.
    ClientGone {
        /// Bytes relayed before.
        bytes: u64,
    },
}

type Report = Box<dyn FnOnce(StreamEnd) + Send + Sync>;

/// The body of a committed stream.
pub struct Relay {
    api: Api,
    target: String,
    first: Option<Bytes>,
    upstream: Option<Incoming>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    max_timer: Pin<Box<Sleep>>,
    tail: Option<Bytes>,
    bytes: u64,
    report: Option<Report>,
}

impl Relay {
    /// Relays `first` (the events read before commit), then the rest of `upstream`.
    pub fn new(
        api: Api,
        target: &str,
        first: Bytes,
        upstream: Incoming,
        idle: Duration,
        max: Duration,
        report: impl FnOnce(StreamEnd) + Send + Sync + 'static,
    ) -> Relay {
        let now = Instant::now();
        Relay {
            api,
            target: target.to_owned(),
            first: Some(first),
            upstream: Some(upstream),
            idle,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            max_timer: Box::pin(tokio::time::sleep_until(now + max)),
            tail: None,
            bytes: 0,
            report: Some(Box::new(report)),
        }
    }

    fn end(&mut self, end: StreamEnd) {
        if let Some(report) = self.report.take() {
            report(end);
        }
    }

    fn interrupt(&mut self, reason: &'static str, detail: &str) -> Bytes {
        self.upstream = None;
        let bytes = self.bytes;
        self.end(StreamEnd::Interrupted { reason, bytes });
        interrupted_event(self.api, &self.target, reason, detail, bytes)
    }
}

/// The events that end an interrupted stream: an error event in the client's format, then a
/// comment line for humans and logs.
pub fn interrupted_event(api: Api, target: &str, reason: &str, detail: &str, bytes: u64) -> Bytes {
    let message = format!(
        "plumb: the stream from target {target} was interrupted ({reason}: {detail}) after {bytes} bytes; the answer is incomplete"
    );
    let event = match api {
        Api::Openai => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "stream_interrupted", "code": "stream_interrupted", "param": null}})
        ),
        Api::Anthropic => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        ),
    };
    Bytes::from(format!(
        "{event}: plumb stream_interrupted target={target} reason={reason}\n\n"
    ))
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(first) = this.first.take() {
            this.bytes += first.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if let Some(tail) = this.tail.take() {
            return Poll::Ready(Some(Ok(Frame::data(tail))));
        }
        let Some(upstream) = this.upstream.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match Pin::new(&mut *upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: nothing to relay
                    };
                    this.bytes += data.len() as u64;
                    let next = Instant::now() + this.idle;
                    this.idle_timer.as_mut().reset(next);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    let detail = crate::classify::root_cause(&e);
                    let tail = this.interrupt("cut", &detail);
                    return Poll::Ready(Some(Ok(Frame::data(tail))));
                }
                Poll::Ready(None) => {
                    this.upstream = None;
                    let bytes = this.bytes;
                    this.end(StreamEnd::Completed { bytes });
                    return Poll::Ready(None);
                }
                Poll::Pending => break,
            }
        }
        if this.idle_timer.as_mut().poll(cx).is_ready() {
            let detail = format!("no event for {}", humantime::format_duration(this.idle));
            let tail = this.interrupt("stall", &detail);
            return Poll::Ready(Some(Ok(Frame::data(tail))));
        }
        if this.max_timer.as_mut().poll(cx).is_ready() {
            let tail = this.interrupt("too_long", "the route's streamMax passed");
            return Poll::Ready(Some(Ok(Frame::data(tail))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.tail.is_none() && self.upstream.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.end(StreamEnd::ClientGone { bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interruption_events_are_errors_the_sdks_raise() {
        let e = interrupted_event(Api::Openai, "t", "cut", "connection reset", 10);
        let text = String::from_utf8_lossy(&e);
        let data = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        assert_eq!(v["error"]["code"], "stream_interrupted");
        assert!(text.contains("\n\n: plumb stream_interrupted target=t reason=cut\n\n"));
        let e = interrupted_event(Api::Anthropic, "t", "stall", "no event for 1s", 10);
        let text = String::from_utf8_lossy(&e);
        assert!(text.starts_with("event: error\ndata: {"));
    }
}
