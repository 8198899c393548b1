//! One attempt on the wire, whatever its kind (first, retry, failover, repair, probe, stream
//! continuation, shadow sample): the upstream request goes out through the [`Transport`], its
//! head is awaited within the first-byte deadline, and then either the whole body is read and
//! checked, or the start of a stream is held until it can be committed. Every failure on the
//! way gets its class here, through [`classify`]; what the answer says is checked by the caller
//! ([`crate::verify`]).

use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, header};
use http_body_util::{BodyExt as _, Full};
use plumb_policy::{Deadlines, FailureClass, MalformedEvents, Streaming, Target};
use tokio::time::Instant;

use crate::classify::{self, Failure, Phase, Progress};
use crate::completion::Whole;
use crate::event::{Event, RawEvent, SseReader};
use crate::keys::Secret;
use crate::payload::{Api, Operation};
use crate::upstream::{self, Transport, UpstreamBody, clock};

/// Largest upstream error body read for classification.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Largest start of a stream held before commit.
const MAX_FIRST_EVENT_BYTES: usize = 1024 * 1024;

/// Why an attempt is made. Every kind goes through the same exchange and the same observer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The first attempt of a request.
    First,
    /// The same target again, after a failure its plan retries.
    Retry,
    /// The next target, after the previous one failed or was skipped.
    Failover,
    /// The same target again, told what was wrong with its answer.
    Repair,
    /// A probe of an upstream whose breaker is half-open, or that the fleet elected this pod to
    /// probe.
    Probe,
    /// Another target continuing a stream that was cut after commit.
    Continuation,
    /// A fallback candidate asked off the request path, to compare with the primary.
    Shadow,
}

impl Kind {
    /// The name in spans: `first`, `retry`, `failover`, `repair`, `probe`, `continuation`,
    /// `shadow`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::First => "first",
            Kind::Retry => "retry",
            Kind::Failover => "failover",
            Kind::Repair => "repair",
            Kind::Probe => "probe",
            Kind::Continuation => "continuation",
            Kind::Shadow => "shadow",
        }
    }
}

/// A successful exchange, not yet checked against the route's contract.
pub enum Answer {
    /// A whole answer: valid JSON with the fields a client needs.
    Whole {
        /// The response head.
        head: http::response::Parts,
        /// The body as it arrived.
        body: Bytes,
        /// The body, read.
        whole: Whole,
    },
    /// A stream whose start was held and checked.
    Stream {
        /// The response head.
        head: http::response::Parts,
        /// Everything read before commit, its events read.
        first: Held,
        /// The rest of the stream.
        rest: UpstreamBody,
        /// From sending to the response head.
        head_after: Duration,
    },
}

impl Answer {
    /// The upstream's status.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Whole { head, .. } | Answer::Stream { head, .. } => head.status.as_u16(),
        }
    }
}

/// The start of a stream, read and checked before commit: its events are read once here and
/// handed on as read, to the contract's collector and to the relay.
#[derive(Debug, Default)]
pub struct Held {
    /// Every byte read.
    pub bytes: Bytes,
    /// Its whole events, each as it arrived and as it was read, in order.
    pub events: Vec<(RawEvent, Event)>,
    /// What followed the last whole event (the start of the next).
    pub tail: Bytes,
}

/// What an attempt expects back.
pub enum Expect<'a> {
    /// A whole answer to `operation`, read within the deadline.
    Whole(Operation),
    /// A stream, held from its start until it can be committed.
    Stream(Hold<'a>),
}

/// How long the start of a stream is held before commit.
pub struct Hold<'a> {
    /// The route's streaming settings: how much to hold after the first token.
    pub streaming: &'a Streaming,
    /// Hold the whole stream until it ends (a contract checked before commit).
    pub until_end: bool,
}

/// One upstream request, ready to go.
pub struct Outgoing<'a> {
    /// The target.
    pub target: &'a Target,
    /// The family it is asked in.
    pub family: Api,
    /// The operation.
    pub operation: Operation,
    /// The body in the target's family.
    pub body: Bytes,
    /// Whether the answer is streamed (Gemini asks for a stream at another URL).
    pub stream: bool,
    /// The key to send, if any.
    pub key: Option<&'a Secret>,
    /// A `vertex-ai` target's access-token source: the token it gives is the key sent.
    pub google: Option<&'a std::sync::Arc<crate::cloud::google::Tokens>>,
    /// The credentials of the target's own proxy (`user:password`), if it names a Secret.
    pub proxy_credentials: Option<&'a Secret>,
    /// The client's headers (only the forwarded ones and the trace context go out).
    pub client_headers: &'a HeaderMap,
}

impl Outgoing<'_> {
    /// The HTTP request, with the current span's trace context. A `vertex-ai` target's
    /// access token is fetched through `transport` first if it needs to be; a failure to get
    /// one is the attempt's, of class `auth`, naming the source.
    pub async fn build(self, transport: &dyn Transport) -> Result<Request<Full<Bytes>>, Failure> {
        let egress = upstream::egress(self.target, self.proxy_credentials);
        let token = match self.google {
            Some(tokens) => Some(
                tokens
                    .bearer(transport, &egress)
                    .await
                    .map_err(|msg| Failure::new(FailureClass::Auth, Phase::Head, msg))?,
            ),
            None => None,
        };
        let mut req = upstream::request(
            self.target,
            upstream::Ask {
                family: self.family,
                op: self.operation,
                stream: self.stream,
            },
            self.body,
            token.as_ref().or(self.key),
            self.client_headers,
            egress,
        )
        .map_err(|e| {
            Failure::new(
                FailureClass::BadRequest,
                Phase::Head,
                format!("the upstream request could not be built: {e}"),
            )
        })?;
        upstream::trace_context::propagate(
            &tracing::Span::current(),
            self.client_headers,
            req.headers_mut(),
        );
        Ok(req)
    }
}

/// Sends `req` and waits for what `expect` says, within the deadlines: the head within
/// `first_byte` (a stream's within `first_token` too), a stream's first token within
/// `first_token`, everything within `total`.
///
/// A whole answer, or a stream held whole for its contract, may be at most `max_body` bytes.
pub async fn exchange(
    transport: &dyn Transport,
    family: Api,
    req: Request<Full<Bytes>>,
    (d, total): (&Deadlines, Instant),
    max_body: usize,
    expect: Expect<'_>,
) -> Result<Answer, Failure> {
    // A stream's first token cannot come before its head: the first-token deadline bounds the
    // head too (a stream whose head is late is as silent as one whose first token is). Both
    // count from `sent`: when the request could go out (after the connect, when the attempt
    // opened a connection: it has a deadline of its own).
    let streamed = matches!(expect, Expect::Stream(_));
    let (head, body, sent) = successful_head(transport, req, d, total, streamed).await?;
    let head_after = sent.elapsed();
    match expect {
        Expect::Whole(operation) => {
            let body = read_body(body, max_body, total)
                .await
                .map_err(|e| match e {
                    ReadError::Deadline => Failure::timeout(Phase::Body, "total", d.total),
                    ReadError::Body(msg) => Failure::new(
                        FailureClass::MalformedResponse,
                        Phase::Body,
                        format!("the response body ended early: {msg}"),
                    ),
                })?;
            let whole = classify::success_body(family, operation, &body)?;
            Ok(Answer::Whole { head, body, whole })
        }
        Expect::Stream(h) => {
            // Bedrock's binary event stream is read as server-sent events from here on.
            let (mut head, body) = (head, body);
            let body = if family == Api::Bedrock
                && head
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(crate::event::bedrock::EVENT_STREAM))
            {
                head.headers.insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("text/event-stream"),
                );
                UpstreamBody::new(crate::event::bedrock::EventStreamBody::new(body))
            } else {
                body
            };
            let is_sse = head
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !is_sse {
                return Err(Failure::new(
                    FailureClass::MalformedResponse,
                    Phase::Body,
                    "a stream was asked for but the upstream answered without text/event-stream",
                ));
            }
            let first_token = total.min(sent + d.first_token);
            let until_end = h.until_end.then_some(total);
            let until_end = until_end.map(|end| (end, max_body));
            let (first, rest) = hold(body, family, first_token, d, h.streaming, until_end).await?;
            Ok(Answer::Stream {
                head,
                first,
                rest,
                head_after,
            })
        }
    }
}

/// Sends an attempt and waits for a successful response head: a timeout, a transport error or
/// an error status (read and classified) is the attempt's failure. Returns the head, the body
/// and when the request could be sent: now, or when the connection it opened was ready (the
/// first-byte and first-token deadlines count from then; see [`clock`]).
async fn successful_head(
    transport: &dyn Transport,
    req: Request<Full<Bytes>>,
    d: &Deadlines,
    total: Instant,
    streamed: bool,
) -> Result<(http::response::Parts, UpstreamBody, Instant), Failure> {
    let start = Instant::now();
    let head_deadline = |sent: Instant| {
        let by = total.min(sent + d.first_byte);
        if streamed {
            by.min(sent + d.first_token)
        } else {
            by
        }
    };
    // The deadline in force follows the connection: from the start on a pooled one; while the
    // attempt opens one, the connect deadline (the transport's TCP timeout does not cover TLS
    // or a proxy's tunnel); from when it was ready once it is. The connector notes its progress
    // while `send` is polled, so the deadline is looked at again after every poll.
    let sent_at = |connection| match connection {
        clock::Connection::Ready { at } => at.max(start),
        clock::Connection::Pooled | clock::Connection::Opening { .. } => start,
    };
    let deadline = |connection| match connection {
        clock::Connection::Opening { since } => {
            head_deadline(start).max(total.min(since + d.connect))
        }
        clock::Connection::Pooled | clock::Connection::Ready { .. } => {
            head_deadline(sent_at(connection))
        }
    };
    let mut send = transport.send(req, d.connect);
    let timer = tokio::time::sleep_until(head_deadline(start));
    tokio::pin!(timer);
    let (resp, sent) = clock::scope(std::future::poll_fn(|cx| {
        let polled = send.as_mut().poll(cx);
        let connection = clock::connection();
        if let Poll::Ready(resp) = polled {
            return Poll::Ready(Ok((resp, sent_at(connection))));
        }
        let by = deadline(connection);
        if timer.deadline() != by {
            timer.as_mut().reset(by);
        }
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        Poll::Ready(Err(if total <= by {
            Failure::timeout(Phase::Head, "total", d.total)
        } else if matches!(connection, clock::Connection::Opening { .. }) {
            Failure::timeout(Phase::Head, "connect", d.connect)
        } else if streamed && d.first_token <= d.first_byte {
            Failure::timeout(Phase::Head, "first-token", d.first_token)
        } else {
            Failure::timeout(Phase::Head, "first-byte", d.first_byte)
        }))
    }))
    .await?;
    let resp = resp.map_err(|e| classify::transport(e.as_ref()))?;
    let (head, body) = resp.into_parts();
    if !head.status.is_success() {
        let bytes = read_body(body, MAX_ERROR_BYTES, total)
            .await
            .unwrap_or_default();
        return Err(classify::status(
            head.status.as_u16(),
            &head.headers,
            &bytes,
        ));
    }
    Ok((head, body, sent))
}

enum ReadError {
    Deadline,
    Body(String),
}

/// Reads a whole body, at most `limit` bytes, by `deadline`.
async fn read_body(
    mut body: UpstreamBody,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, ReadError> {
    let read = async {
        // A body that comes in one frame is kept as it came (no copy); more are joined.
        let mut first: Option<Bytes> = None;
        let mut buf = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ReadError::Body(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                let have = first.as_ref().map_or(buf.len(), Bytes::len);
                if have.saturating_add(data.len()) > limit {
                    return Err(ReadError::Body("length limit exceeded".to_owned()));
                }
                if buf.is_empty() && first.is_none() {
                    first = Some(data);
                    continue;
                }
                if let Some(f) = first.take() {
                    buf.reserve(f.len().saturating_add(data.len()));
                    buf.extend_from_slice(&f);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(first.unwrap_or_else(|| buf.freeze()))
    };
    tokio::time::timeout_at(deadline, read)
        .await
        .unwrap_or(Err(ReadError::Deadline))
}

/// Holds the start of a stream before anything reaches the client: until its first token
/// (within the first-token deadline), then for the route's hold — so many events, bytes or
/// milliseconds after it. Every event held is checked, so an error event, a malformed event, a
/// stall or a cut inside the hold still fails over invisibly. Returns everything read, to be
/// sent at commit, and the rest of the stream.
///
/// With `until_end` (a contract checked before commit) the hold lasts until the answer is
/// complete, within that deadline.
async fn hold(
    mut body: UpstreamBody,
    family: Api,
    first_token_deadline: Instant,
    d: &Deadlines,
    s: &Streaming,
    until_end: Option<(Instant, usize)>,
) -> Result<(Held, UpstreamBody), Failure> {
    let limit = until_end.map_or(MAX_FIRST_EVENT_BYTES, |(_, max)| max);
    let until_end = until_end.map(|(end, _)| end);
    let mut held = BytesMut::new();
    let mut events = SseReader::default();
    let mut parsed = Vec::new();
    // Set when the first token arrives: (when the hold ends, events held since).
    let mut holding: Option<(Instant, u32)> = None;
    let mut finished = false;
    loop {
        while let Some(raw) = events.next_event() {
            let event = Event::parse(family, &raw);
            let kind = classify::stream_event(&event, &raw);
            // A Gemini stream's last event may carry words and the end at once.
            let terminal = event.is_terminal();
            parsed.push((raw, event));
            let kind = match kind {
                Ok(kind) => kind,
                Err(f)
                    if f.class == FailureClass::MalformedResponse
                        && s.malformed == MalformedEvents::Skip
                        && holding.is_some() =>
                {
                    continue;
                }
                Err(f) => return Err(f),
            };
            match (kind, &mut holding) {
                (Progress::Preamble, None) => {}
                // A reasoning model's thinking is its first token: the first-token deadline is
                // met, and the gap between events is the stream-idle deadline from here on.
                (Progress::Content | Progress::Reasoning, None) => {
                    holding = Some((Instant::now() + s.hold_for, 0));
                }
                // The end before any word: an empty answer, like a whole one with no text.
                (Progress::End, None) => {
                    return Err(Failure::new(
                        FailureClass::MalformedResponse,
                        Phase::Body,
                        "the stream ended without an answer (no text, tool call or reasoning)",
                    ));
                }
                (
                    Progress::Preamble | Progress::Content | Progress::Reasoning | Progress::End,
                    Some((_, n)),
                ) => {
                    *n += 1;
                }
            }
            finished |= kind == Progress::End || terminal;
        }
        if let Some((until, n)) = holding {
            // A zero holdFor sets no time limit: the events and bytes do.
            let timed_out = !s.hold_for.is_zero() && Instant::now() >= until;
            let held_enough = until_end.is_none()
                && (n >= s.hold_events || held.len() >= s.hold_bytes as usize || timed_out);
            if finished || held_enough {
                let held = Held {
                    bytes: held.freeze(),
                    events: parsed,
                    tail: events.into_pending(),
                };
                return Ok((held, body));
            }
        }
        if events.oversized() {
            return Err(Failure::new(
                FailureClass::MalformedResponse,
                Phase::Body,
                format!(
                    "a stream event is larger than {} bytes",
                    crate::event::MAX_EVENT_BYTES
                ),
            ));
        }
        if held.len() > limit {
            return Err(Failure::new(
                FailureClass::MalformedResponse,
                Phase::Body,
                if until_end.is_some() {
                    format!(
                        "the streamed answer held for the contract is larger than {limit} bytes"
                    )
                } else {
                    "more than 1 MiB of stream arrived before the first token".to_owned()
                },
            ));
        }
        let (deadline, what, limit) = match (holding, until_end) {
            (None, _) => (first_token_deadline, "first-token", d.first_token),
            (Some(_), Some(end)) if end <= Instant::now() + d.stream_idle => {
                (end, "total", d.total)
            }
            (Some(_), _) => (Instant::now() + d.stream_idle, "stream-idle", d.stream_idle),
        };
        // Inside the hold, its end is not a failure: stop waiting then and commit.
        let wait_until = match holding {
            Some((until, _)) if !s.hold_for.is_zero() && until_end.is_none() => deadline.min(until),
            Some(_) | None => deadline,
        };
        let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
            Err(_) if wait_until < deadline => continue,
            Err(_) => return Err(Failure::timeout(Phase::Body, what, limit)),
            Ok(None) => {
                return Err(Failure::new(
                    FailureClass::MalformedResponse,
                    Phase::Body,
                    "the stream ended before the answer was complete",
                ));
            }
            Ok(Some(Err(e))) => {
                return Err(Failure::new(
                    FailureClass::MalformedResponse,
                    Phase::Body,
                    format!(
                        "the stream broke before it reached the client: {}",
                        classify::root_cause(e.as_ref())
                    ),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            held.extend_from_slice(&data);
            events.push(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use http::Uri;
    use http_body_util::BodyExt as _;
    use tower_service::Service;

    use super::*;
    use crate::upstream::Sent;

    /// An upstream that opens a new connection taking `connect` (none: a pooled one) through
    /// the clocked connector, then answers 200 after `answer`.
    struct Upstream {
        connect: Option<Duration>,
        answer: Duration,
    }

    impl Transport for Upstream {
        fn send(&self, _: Request<Full<Bytes>>, _: Duration) -> Sent<'_> {
            Box::pin(async move {
                if let Some(took) = self.connect {
                    clock::Clocked(clock::SlowConnect(took))
                        .call(Uri::from_static("http://upstream"))
                        .await?;
                }
                tokio::time::sleep(self.answer).await;
                Ok(http::Response::new(
                    Full::new(Bytes::from_static(b"{}"))
                        .map_err(|never| match never {})
                        .boxed(),
                ))
            })
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Deadlines of 1 s to the first byte and token (a learned floor), 3 s to connect.
    fn deadlines() -> Deadlines {
        Deadlines {
            first_byte: ms(1000),
            first_token: ms(1000),
            connect: ms(3000),
            ..Deadlines::default()
        }
    }

    /// The head of an attempt at `upstream`, with `total` from now: when it came (or the
    /// failure's deadline) and how long after the start.
    async fn head(
        upstream: Upstream,
        total: Duration,
    ) -> (Result<Duration, &'static str>, Duration) {
        let start = Instant::now();
        let got = successful_head(
            &upstream,
            Request::new(Full::new(Bytes::new())),
            &deadlines(),
            start + total,
            true,
        )
        .await;
        let got = got
            .map(|(_, _, sent)| sent - start)
            .map_err(|f| f.deadline.unwrap_or("none"));
        (got, start.elapsed())
    }

    /// An upstream whose connect takes `connect` ms (`None`: pooled) and which answers `answer`
    /// ms after.
    fn upstream(connect: Option<u64>, answer: u64) -> Upstream {
        Upstream {
            connect: connect.map(ms),
            answer: ms(answer),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn first_byte_and_token_count_from_when_a_new_connection_was_ready() {
        // A SYN sent again after 1 s: connected at 1.5 s, answered 0.2 s later. Counted from
        // the start, the 1 s deadline would have cut it.
        let slow = upstream(Some(1500), 200);
        assert_eq!(head(slow, ms(120_000)).await, (Ok(ms(1500)), ms(1700)));
        // Once connected, the upstream has its 1 s, not more.
        let silent = upstream(Some(1500), 1200);
        let cut = (Err("first-token"), ms(2500));
        assert_eq!(head(silent, ms(120_000)).await, cut);
        // A pooled connection: 1 s from the start, as before.
        let pooled = upstream(None, 1200);
        assert_eq!(
            head(pooled, ms(120_000)).await,
            (Err("first-token"), ms(1000))
        );
        let quick = upstream(None, 300);
        assert_eq!(head(quick, ms(120_000)).await, (Ok(ms(0)), ms(300)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_still_opening_is_cut_at_the_connect_deadline_and_total_bounds_all() {
        let hung = upstream(Some(60_000), 0);
        assert_eq!(head(hung, ms(120_000)).await, (Err("connect"), ms(3000)));
        // The whole request's deadline comes first.
        let slow = upstream(Some(1500), 900);
        assert_eq!(head(slow, ms(2000)).await, (Err("total"), ms(2000)));
    }
}
