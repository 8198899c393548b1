//! A committed stream: events pass from the upstream to the client as they arrive, whole, with
//! no added buffering (translated when the target speaks the other family). A cut, a silence
//! longer than the idle deadline, a stream longer than its maximum, a provider error event, or
//! (per route) a malformed event ends the client's stream with an explicit error event in the
//! client's format — never a silent truncation — followed by a `: plumb …` comment that
//! clients ignore. A stream that ends cleanly without its terminator but with a finished
//! answer is finalised at once.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use serde_json::json;
use tokio::time::{Instant, Sleep};

use plumb_policy::MalformedEvents;
use tokio::sync::oneshot;

use plumb_policy::contract::Violation;

use crate::attempt::Held;
use crate::completion::Collected;
use crate::event::{Event, RawEvent, SseReader};
use crate::observe::Settlement;
use crate::payload::Api;
use crate::plan::{self, Committed, Interruption};
use crate::respond::BoxError;
use crate::translate::events::{EventError, Incomplete, Translator};
use crate::upstream::UpstreamBody;
use crate::verify::StreamCollector;

/// How a committed stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The upstream ended it cleanly.
    Completed {
        /// Bytes relayed.
        bytes: u64,
        /// The complete answer, when the relay was asked to collect it.
        answer: Option<Collected>,
    },
    /// It was interrupted; the client got an error event.
    Interrupted {
        /// Why.
        reason: Interruption,
        /// Bytes relayed before.
        bytes: u64,
    },
    /// The client went away.
    ClientGone {
        /// Bytes relayed before.
        bytes: u64,
    },
    /// The complete answer broke the route's contract; the client got an error event
    /// instead of the stream's normal end.
    Rejected {
        /// What was wrong.
        violation: Violation,
        /// Bytes relayed before.
        bytes: u64,
    },
}

/// A contract checked after commit: the answer is collected as it passes and checked before
/// the stream's terminator reaches the client.
pub struct AfterCommit {
    /// Collects tool calls (the translator keeps the text).
    pub collector: StreamCollector,
    /// The route's contract, applied to the complete answer.
    pub check: ContractCheck,
}

/// A route's contract applied to a complete answer, off the async workers and within a
/// deadline ([`crate::verify::check_bounded`]): the stream waits for the verdict.
pub type ContractCheck = Box<dyn FnOnce(Collected) -> Verdict + Send + Sync>;

/// The verdict of a contract check under way.
pub type Verdict = Pin<Box<dyn Future<Output = Result<(), Violation>> + Send + Sync>>;

/// A complete answer being checked after commit, and what reaches the client if it passes.
struct Checking {
    verdict: Verdict,
    then: Passed,
}

/// What a stream whose answer passed its contract goes on with.
enum Passed {
    /// The upstream's terminal event, not yet translated (boxed: an event is large, and a
    /// stream holds at most one).
    Terminal(Box<(RawEvent, Event)>),
    /// The translator's tail after the upstream ended (a terminator it adds).
    Finished(Vec<Bytes>),
}

type Report = Box<dyn FnOnce(StreamEnd) + Send + Sync>;

/// Settles the attempt of the target streaming now (its breaker, metrics and fleet report)
/// when its part of the stream ends: told how, and the bytes relayed so far.
pub type Settle = Box<dyn FnOnce(Settlement, u64) + Send + Sync>;

/// A stream taken up by another target after a cut.
pub struct Resumed {
    /// The rest of the new upstream's stream.
    pub body: UpstreamBody,
    /// What was read of it before it was accepted (up to its first token).
    pub held: Held,
    /// The new upstream's family.
    pub family: Api,
    /// The new target's name.
    pub target: String,
    /// Settles the new target's attempt when its part ends.
    pub settle: Settle,
}

/// Starts a continuation from the text relayed so far; the answer arrives on the receiver
/// (`None` when no target could continue).
pub type Resume = Box<dyn FnOnce(String) -> oneshot::Receiver<Option<Resumed>> + Send + Sync>;

/// A continuation under way, and the failure it is trying to repair.
struct Resuming {
    rx: oneshot::Receiver<Option<Resumed>>,
    reason: Interruption,
    detail: String,
    target: String,
}

/// Told a stream's input and output tokens when it ends.
pub type OnUsage = Box<dyn FnOnce((u64, u64)) + Send + Sync>;

/// Told, when the stream from the target that committed it ends, its longest silence between
/// two reads: `(gap, false)` for a whole stream, `(the idle deadline, true)` for a stall.
pub type OnGap = Box<dyn FnOnce(Duration, bool) + Send + Sync>;

/// Told, when the stream from the target that committed it ends whole and its usage counted
/// the output tokens, the time from commit to its last bytes and those tokens.
pub type OnRate = Box<dyn FnOnce(Duration, u64) + Send + Sync>;

/// The commit's bookkeeping (the attempt's and the request's records: metrics, span fields,
/// what is learned, the fleet's report), which nothing the client waits for depends on: run
/// once the first bytes are written, or when the stream settles or is dropped before that.
pub type AfterFirstBytes = Box<dyn FnOnce() + Send + Sync>;

/// Removes secrets from a text before it reaches the client (a provider's error message
/// echoed into the interruption event can carry a key).
pub type Redact = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The body of a committed stream.
pub struct Relay {
    api: Api,
    route: String,
    target: String,
    upstream: Option<UpstreamBody>,
    sse: SseReader,
    /// Events read before commit, relayed before anything `sse` reads.
    held: VecDeque<(RawEvent, Event)>,
    translator: Translator,
    malformed: MalformedEvents,
    out: VecDeque<Bytes>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    max_timer: Pin<Box<Sleep>>,
    done: bool,
    bytes: u64,
    report: Option<Report>,
    settle: Option<Settle>,
    resume: Option<Resume>,
    resuming: Option<Resuming>,
    include_usage: bool,
    created: u64,
    after_commit: Option<AfterCommit>,
    checking: Option<Checking>,
    collector: Option<StreamCollector>,
    usage: crate::genai::StreamUsage,
    on_usage: Option<OnUsage>,
    on_gap: Option<OnGap>,
    on_rate: Option<OnRate>,
    after_first_bytes: Option<AfterFirstBytes>,
    /// Whether the relay has let the server write its first bytes before running
    /// `after_first_bytes`.
    yielded: bool,
    /// When the stream was committed.
    committed: Instant,
    /// When the upstream last sent bytes, and the longest silence so far.
    last_read: Instant,
    longest_gap: Duration,
    redact: Redact,
}

/// How a committed stream is relayed.
pub struct RelayOptions {
    /// The client's API.
    pub api: Api,
    /// The route's name, for logs.
    pub route: String,
    /// The target's name, for the error event and logs.
    pub target: String,
    /// Upstream events to client events.
    pub translator: Translator,
    /// What a malformed event does.
    pub malformed: MalformedEvents,
    /// Longest silence.
    pub idle: Duration,
    /// Longest stream.
    pub max: Duration,
    /// Continue on another target after a cut (the route's `continuation`).
    pub resume: Option<Resume>,
    /// Whether an OpenAI client asked for usage in the stream.
    pub include_usage: bool,
    /// The `created` stamp of translated OpenAI chunks.
    pub created: u64,
    /// The contract, when the route checks streams after commit.
    pub after_commit: Option<AfterCommit>,
    /// Collect the complete answer for the report (a shadow sample wants it).
    pub collect: bool,
    /// Told the stream's input and output tokens when it ends, if the upstream said them.
    pub on_usage: Option<OnUsage>,
    /// Told the committing target's longest silence when its stream ends whole or stalls.
    pub on_gap: Option<OnGap>,
    /// Told the committing target's time from commit to the end and its output tokens, when
    /// its stream ends whole.
    pub on_rate: Option<OnRate>,
    /// The commit's bookkeeping, off the path of the first bytes.
    pub after_first_bytes: Option<AfterFirstBytes>,
    /// Applied to every upstream text the client's error event repeats.
    pub redact: Redact,
}

impl Relay {
    /// Relays `held` (what was read before commit, its events as read then), then the rest
    /// of `upstream`. `settle`
    /// settles the committed attempt when its part of the stream ends; `report` hears how the
    /// whole stream ended.
    pub fn new(
        options: RelayOptions,
        held: Held,
        upstream: UpstreamBody,
        settle: Settle,
        report: impl FnOnce(StreamEnd) + Send + Sync + 'static,
    ) -> Relay {
        let now = Instant::now();
        let mut sse = SseReader::default();
        sse.push(&held.tail);
        let collector = options
            .collect
            .then(|| StreamCollector::new(options.translator.upstream()));
        Relay {
            api: options.api,
            route: options.route,
            target: options.target,
            upstream: Some(upstream),
            sse,
            held: held.events.into(),
            translator: options.translator,
            malformed: options.malformed,
            out: VecDeque::new(),
            idle: options.idle,
            idle_timer: Box::pin(tokio::time::sleep_until(now + options.idle)),
            max_timer: Box::pin(tokio::time::sleep_until(now + options.max)),
            done: false,
            bytes: 0,
            report: Some(Box::new(report)),
            settle: Some(settle),
            resume: options.resume,
            resuming: None,
            include_usage: options.include_usage,
            created: options.created,
            after_commit: options.after_commit,
            checking: None,
            collector,
            usage: crate::genai::StreamUsage::default(),
            on_usage: options.on_usage,
            on_gap: options.on_gap,
            on_rate: options.on_rate,
            after_first_bytes: options.after_first_bytes,
            yielded: false,
            committed: now,
            last_read: now,
            longest_gap: Duration::ZERO,
            redact: options.redact,
        }
    }

    /// Checks the complete answer against the contract before `then` goes on, when the route
    /// checks streams after commit (the verdict is awaited in `poll_frame`); goes on at once
    /// without one.
    fn check_then(&mut self, then: Passed) {
        let Some(ac) = self.after_commit.take() else {
            return self.checked(Ok(()), then);
        };
        let answer = Collected {
            text: self.translator.text().to_owned(),
            tools: ac.collector.collected().tools.clone(),
            model: None,
        };
        self.checking = Some(Checking {
            verdict: (ac.check)(answer),
            then,
        });
    }

    /// The contract's verdict came: a passing answer goes on; a failing one ends the stream
    /// with an error event instead of its terminator.
    fn checked(&mut self, verdict: Result<(), Violation>, then: Passed) {
        match verdict {
            Ok(()) => match then {
                Passed::Terminal(held) => self.translate(&held.0, &held.1),
                Passed::Finished(tail) => self.complete(tail),
            },
            Err(violation) => {
                self.upstream = None;
                self.resume = None;
                self.done = true;
                let bytes = self.bytes;
                self.settle(Settlement::Rejected {
                    class: violation.class,
                    check: violation.check.clone(),
                });
                self.out.push_back(rejected_event(
                    self.api,
                    &mut self.translator,
                    &self.target,
                    &violation,
                ));
                self.end(StreamEnd::Rejected { violation, bytes });
            }
        }
    }

    /// Runs the commit's bookkeeping if it has not run yet.
    fn after_first_bytes(&mut self) {
        if let Some(record) = self.after_first_bytes.take() {
            record();
        }
    }

    /// Settles the attempt of the target streaming now.
    fn settle(&mut self, how: Settlement) {
        // The commit is recorded before how the stream ends.
        self.after_first_bytes();
        if let Some(settle) = self.settle.take() {
            settle(how, self.bytes);
        }
    }

    fn end(&mut self, end: StreamEnd) {
        // Tokens are spent however the stream ends.
        if let (Some(tokens), Some(on_usage)) = (self.usage.tokens(), self.on_usage.take()) {
            on_usage(tokens);
        }
        // What the committing target's whole stream teaches (a stall told it at the
        // interruption; a continuation's silences are another target's).
        if let (StreamEnd::Completed { .. }, Some(on_gap)) = (&end, self.on_gap.take()) {
            on_gap(self.longest_gap, false);
        }
        if let (StreamEnd::Completed { .. }, Some(output), Some(on_rate)) =
            (&end, self.usage.output(), self.on_rate.take())
        {
            on_rate(self.last_read - self.committed, output);
        }
        if let Some(report) = self.report.take() {
            report(end);
        }
    }

    fn interrupt(&mut self, reason: Interruption, detail: &str) {
        self.upstream = None;
        // A stall teaches the learned stream-idle deadline, continued elsewhere or not.
        if reason == Interruption::Stall
            && let Some(on_gap) = self.on_gap.take()
        {
            on_gap(self.idle, true);
        }
        // The target that was streaming failed, whether or not another continues its answer.
        self.settle(Settlement::Interrupted(reason));
        let next = plan::after_commit(reason, self.resume.is_some(), self.translator.resumable());
        if let (Committed::ContinueElsewhere, Some(resume)) = (next, self.resume.take()) {
            tracing::info!(route = %self.route, target = %self.target, %reason, "stream cut after commit; asking a fallback to continue it");
            let rx = resume(self.translator.text().to_owned());
            self.resuming = Some(Resuming {
                rx,
                reason,
                detail: detail.to_owned(),
                target: self.target.clone(),
            });
            return;
        }
        self.done = true;
        let bytes = self.bytes;
        self.end(StreamEnd::Interrupted { reason, bytes });
        let detail = (self.redact)(detail);
        self.out.push_back(interrupted_event(
            self.api,
            &mut self.translator,
            &self.target,
            reason.as_str(),
            &detail,
            bytes,
        ));
    }

    /// Translates every whole event received so far into `out`.
    fn drain_events(&mut self) {
        // A terminal event waiting for the contract's verdict holds back everything after it;
        // after an interruption that another target continues, nothing more of this target's
        // stream is relayed (what it sent after a malformed event is not the client's).
        while !self.done && self.checking.is_none() && self.resuming.is_none() {
            // Read once (the held ones before commit); every consumer takes the same event.
            let (raw, event) = match self.held.pop_front() {
                Some(read) => read,
                None => {
                    let Some(raw) = self.sse.next_event() else {
                        if self.sse.oversized() {
                            let detail = format!(
                                "an event larger than {} bytes",
                                crate::event::MAX_EVENT_BYTES
                            );
                            self.interrupt(Interruption::Malformed, &detail);
                        }
                        return;
                    };
                    let event = Event::parse(self.translator.upstream(), &raw);
                    (raw, event)
                }
            };
            self.usage.observe(&event);
            if let Some(c) = self.collector.as_mut() {
                c.event(&event);
            }
            if let Some(ac) = self.after_commit.as_mut() {
                ac.collector.event(&event);
                if event.is_terminal() {
                    // The rest waits for the verdict.
                    self.check_then(Passed::Terminal(Box::new((raw, event))));
                    continue;
                }
            }
            self.translate(&raw, &event);
        }
    }

    /// Translates one upstream event into `out`.
    fn translate(&mut self, raw: &RawEvent, event: &Event) {
        {
            match self.translator.event(raw, event) {
                Ok(out) => self.out.extend(out),
                Err(EventError::Malformed) => match self.malformed {
                    MalformedEvents::Skip => {
                        tracing::debug!(target = %self.target, "skipped a malformed stream event")
                    }
                    MalformedEvents::Fail => {
                        self.interrupt(Interruption::Malformed, "an event that is not valid JSON")
                    }
                },
                Err(EventError::Upstream(msg)) => self.interrupt(Interruption::ErrorEvent, &msg),
            }
        }
    }

    /// The upstream ended cleanly: finalise a complete answer (a missing terminator is
    /// added), or interrupt a truncated one.
    fn upstream_ended(&mut self) {
        self.upstream = None;
        self.drain_events();
        if self.done || self.checking.is_some() {
            return;
        }
        match self.translator.finish() {
            Ok(tail) => self.check_then(Passed::Finished(tail)),
            Err(Incomplete) => self.interrupt(
                Interruption::Cut,
                "the upstream ended the stream before the answer was complete",
            ),
        }
    }
}

impl Relay {
    /// A complete answer: its tail, then the end.
    fn complete(&mut self, tail: Vec<Bytes>) {
        self.out.extend(tail);
        self.done = true;
        self.settle(Settlement::Completed);
        let bytes = self.bytes;
        let answer = self.collector.take().map(|c| Collected {
            text: self.translator.text().to_owned(),
            ..c.collected().clone()
        });
        self.end(StreamEnd::Completed { bytes, answer });
    }
}

/// The events that end an interrupted stream: an error event in the client's format, then a
/// comment line for humans and logs.
pub fn interrupted_event(
    api: Api,
    translator: &mut Translator,
    target: &str,
    reason: &str,
    detail: &str,
    bytes: u64,
) -> Bytes {
    let message = format!(
        "plumb: the stream from target {target} was interrupted ({reason}: {detail}) after {bytes} bytes; the answer is incomplete"
    );
    let event = match api {
        Api::Responses => responses_failure(translator, "stream_interrupted", &message),
        // No client speaks Gemini; its streams reach clients in their own family.
        Api::Openai | Api::Gemini | Api::Bedrock => format!(
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

/// The events that end a stream whose answer broke the contract: an error event in the
/// client's format (the SDKs raise it), then a comment line for humans and logs.
pub fn rejected_event(
    api: Api,
    translator: &mut Translator,
    target: &str,
    violation: &Violation,
) -> Bytes {
    let class = violation.class.as_str();
    let message = format!(
        "plumb: the answer from target {target} broke the route's contract ({violation}); do not use it"
    );
    let event = match api {
        Api::Responses => responses_failure(translator, class, &message),
        Api::Openai | Api::Gemini | Api::Bedrock => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": class, "code": class, "param": null}})
        ),
        Api::Anthropic => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        ),
    };
    Bytes::from(format!(
        "{event}: plumb {class} target={target} check={}\n\n",
        violation.check
    ))
}

/// A Responses client's `error` and `response.failed` events, numbered after what it has seen.
fn responses_failure(translator: &mut Translator, code: &str, message: &str) -> String {
    let events = translator
        .responses_failure(code, message)
        .unwrap_or_default();
    events
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

impl http_body::Body for Relay {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(bytes) = this.out.pop_front() {
                this.bytes += bytes.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(bytes))));
            }
            // The first bytes are handed over: the server writes them when this poll says
            // nothing more is ready (woken at once to go on), then the commit is recorded.
            if this.after_first_bytes.is_some() && this.bytes > 0 {
                if !this.yielded {
                    this.yielded = true;
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                this.after_first_bytes();
            }
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(c) = this.checking.as_mut() {
                // Nothing more is read or sent until the contract's verdict (bounded by its
                // deadline); the stream's timers wait too.
                let Poll::Ready(verdict) = c.verdict.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                if let Some(c) = this.checking.take() {
                    this.checked(verdict, c.then);
                }
                continue;
            }
            if let Some(r) = this.resuming.as_mut() {
                match Pin::new(&mut r.rx).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(Some(resumed))) => {
                        this.resuming = None;
                        tracing::info!(route = %this.route, from = %this.target, to = %resumed.target, "stream continued");
                        this.translator = this.translator.continued(
                            resumed.family,
                            this.include_usage,
                            this.created,
                        );
                        this.sse = SseReader::default();
                        this.sse.push(&resumed.held.tail);
                        this.held = resumed.held.events.into();
                        this.on_gap = None;
                        this.on_rate = None;
                        this.upstream = Some(resumed.body);
                        this.target = resumed.target;
                        this.settle = Some(resumed.settle);
                        let next = Instant::now() + this.idle;
                        this.idle_timer.as_mut().reset(next);
                        continue;
                    }
                    Poll::Ready(Ok(None) | Err(_)) => {
                        // The continuation failed: the client hears about the original failure.
                        if let Some(r) = this.resuming.take() {
                            this.target = r.target;
                            this.interrupt(r.reason, &r.detail);
                        }
                        continue;
                    }
                }
            }
            this.drain_events();
            if !this.out.is_empty()
                || this.done
                || this.checking.is_some()
                || this.resuming.is_some()
            {
                continue;
            }
            let Some(upstream) = this.upstream.as_mut() else {
                this.upstream_ended();
                continue;
            };
            match Pin::new(upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        this.sse.push(&data);
                        let now = Instant::now();
                        this.longest_gap = this.longest_gap.max(now - this.last_read);
                        this.last_read = now;
                        this.idle_timer.as_mut().reset(now + this.idle);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    let detail = crate::classify::root_cause(e.as_ref());
                    this.interrupt(Interruption::Cut, &detail);
                }
                Poll::Ready(None) => this.upstream_ended(),
                Poll::Pending => {
                    if this.idle_timer.as_mut().poll(cx).is_ready() {
                        let detail =
                            format!("no event for {}", humantime::format_duration(this.idle));
                        this.interrupt(Interruption::Stall, &detail);
                        continue;
                    }
                    if this.max_timer.as_mut().poll(cx).is_ready() {
                        this.interrupt(Interruption::TooLong, "the route's streamMax passed");
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.out.is_empty() && self.resuming.is_none() && self.checking.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let bytes = self.bytes;
        self.settle(Settlement::ClientGone);
        self.end(StreamEnd::ClientGone { bytes });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A relay of a whole OpenAI stream (one event with the answer, then its terminator in a
    /// frame of its own) that has already ended upstream.
    fn relay(
        after_commit: Option<AfterCommit>,
        after_first_bytes: Option<AfterFirstBytes>,
        settle: Settle,
    ) -> Relay {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = [
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ]
        .into_iter()
        .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes()))))
        .collect();
        let upstream = http_body_util::StreamBody::new(tokio_stream::iter(frames)).boxed();
        let options = RelayOptions {
            api: Api::Openai,
            route: "test/r".to_owned(),
            target: "t".to_owned(),
            translator: Translator::new(Api::Openai, Api::Openai, false, 1),
            malformed: MalformedEvents::Fail,
            idle: Duration::from_secs(60),
            max: Duration::from_secs(600),
            resume: None,
            include_usage: false,
            created: 1,
            after_commit,
            collect: false,
            on_usage: None,
            on_gap: None,
            on_rate: None,
            after_first_bytes,
            redact: std::sync::Arc::new(str::to_owned),
        };
        Relay::new(options, Held::default(), upstream, settle, |_| {})
    }

    /// The same relay, checked after commit by a contract whose verdict the test gives: the
    /// end is seen while the verdict is awaited.
    fn checked_relay() -> (Relay, oneshot::Sender<Result<(), Violation>>) {
        let (tx, rx) = oneshot::channel::<Result<(), Violation>>();
        let after_commit = AfterCommit {
            collector: StreamCollector::new(Api::Openai),
            check: Box::new(move |_| {
                Box::pin(async move {
                    rx.await.unwrap_or_else(|_| {
                        Err(Violation {
                            class: plumb_policy::FailureClass::SchemaViolation,
                            check: "deadline".to_owned(),
                            message: "gone".to_owned(),
                        })
                    })
                })
            }),
        };
        (relay(Some(after_commit), None, Box::new(|_, _| {})), tx)
    }

    /// The same relay, noting in `log` when its commit is recorded and when its attempt
    /// settles.
    fn recording_relay(log: &std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>) -> Relay {
        let (recorded, settled) = (log.clone(), log.clone());
        relay(
            None,
            Some(Box::new(move || recorded.lock().unwrap().push("recorded"))),
            Box::new(move |_, _| settled.lock().unwrap().push("settled")),
        )
    }

    /// Everything the relay sends before it would wait, and whether it ended.
    async fn sent_so_far(relay: &mut Relay) -> (String, bool) {
        let mut out = String::new();
        loop {
            match tokio::time::timeout(Duration::from_millis(50), relay.frame()).await {
                Ok(Some(Ok(f))) => {
                    out.push_str(&String::from_utf8_lossy(&f.into_data().unwrap_or_default()))
                }
                Ok(None) => return (out, true),
                Ok(Some(Err(e))) => panic!("{e}"),
                Err(_) => return (out, false),
            }
        }
    }

    #[tokio::test]
    async fn the_commit_is_recorded_after_the_first_bytes_are_handed_over_and_before_the_end() {
        use http_body::Body as _;
        let log = std::sync::Arc::default();
        let mut relay = recording_relay(&log);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let first = Pin::new(&mut relay).poll_frame(&mut cx);
        assert!(matches!(first, Poll::Ready(Some(Ok(_)))), "{first:?}");
        assert!(
            log.lock().unwrap().is_empty(),
            "recorded before the first bytes"
        );
        // The server is let write them (the relay says it waits, woken at once) ...
        assert!(Pin::new(&mut relay).poll_frame(&mut cx).is_pending());
        assert!(log.lock().unwrap().is_empty());
        // ... and the next poll records the commit, then the stream goes on to its end.
        let (rest, ended) = sent_so_far(&mut relay).await;
        assert!(ended && rest.contains("[DONE]"), "{rest}");
        assert_eq!(*log.lock().unwrap(), ["recorded", "settled"]);
        // A client gone before the first bytes: the commit is still recorded, first.
        let log = std::sync::Arc::default();
        drop(recording_relay(&log));
        assert_eq!(*log.lock().unwrap(), ["recorded", "settled"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_terminator_waits_for_the_contracts_verdict_even_when_the_upstream_has_ended() {
        // The upstream ends at once; the check takes its time (it runs off the workers).
        let (mut relay, verdict) = checked_relay();
        let (before, ended) = sent_so_far(&mut relay).await;
        assert!(before.contains("Hi"), "{before}");
        assert!(!ended && !before.contains("[DONE]"), "{before}");
        // A failing verdict: an error event, never the terminator.
        let _ = verdict.send(Err(Violation {
            class: plumb_policy::FailureClass::OutOfBounds,
            check: "rules[0]".to_owned(),
            message: "too long".to_owned(),
        }));
        let (after, ended) = sent_so_far(&mut relay).await;
        assert!(ended);
        assert!(
            after.contains("out_of_bounds") && !after.contains("[DONE]"),
            "{after}"
        );
        // A passing one: the terminator follows.
        let (mut relay, verdict) = checked_relay();
        let (before, _) = sent_so_far(&mut relay).await;
        assert!(!before.contains("[DONE]"), "{before}");
        let _ = verdict.send(Ok(()));
        let (after, ended) = sent_so_far(&mut relay).await;
        assert!(ended && after.contains("[DONE]"), "{after}");
    }

    #[test]
    fn interruption_events_are_errors_the_sdks_raise() {
        let mut t = Translator::new(Api::Openai, Api::Openai, false, 0);
        let e = interrupted_event(Api::Openai, &mut t, "t", "cut", "connection reset", 10);
        let text = String::from_utf8_lossy(&e);
        let data = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .unwrap_or("");
        let v: serde_json::Value = serde_json::from_str(data).unwrap_or_default();
        assert_eq!(v["error"]["code"], "stream_interrupted");
        assert!(text.contains("\n\n: plumb stream_interrupted target=t reason=cut\n\n"));
        let e = interrupted_event(Api::Anthropic, &mut t, "t", "stall", "no event for 1s", 10);
        let text = String::from_utf8_lossy(&e);
        assert!(text.starts_with("event: error\ndata: {"));
    }
}
