//! The policy server: one control stream per sidecar, over TLS.
//!
//! A stream is accepted only with a ServiceAccount token the API server vouches for (a
//! TokenReview with the control plane's audience, bound to a pod) and a Hello that names the
//! token's own namespace. From then on the sidecar gets its namespace's current snapshot and
//! every later one, the fleet's knowledge, and heartbeats; its acknowledgements (and refusals of
//! single routes) are recorded and the namespace's routes reconciled so their status says what
//! the sidecars run; its reports go to the knowledge store, which admits only what the
//! namespace's routes allow.
//!
//! A stream lives no longer than the token behind it (see [`token`]): the operator asks for a
//! fresh token before the one it verified expires, verifies every token it is given and the
//! current one every recheck, and closes the stream when the token expires, is refused (its
//! pod is gone) or belongs to another pod — so a deleted pod stops receiving rotated keys.
//!
//! ```text
//! open ─▶ token reviewed ─▶ Hello ─▶ ┌ snapshots, knowledge, heartbeats ─▶ sidecar
//!                                    │ acks, reports, tokens           ◀─ sidecar
//!                                    └ close: token expired or refused, another pod's token,
//!                                      silence, no longer the leader, the sidecar left
//! ```

pub mod token;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_telemetry::clock;
use plumb_telemetry::operator::{NamespaceLabels, OperatorMetrics, ReasonLabels};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::codegen::http;
use tonic::{Code, Status};

use crate::auth::{Authenticate, Identity, Rejected};
use crate::knowledge::Knowledge;
use crate::policies::{Policies, counter_of};
use token::{Due, Jitter, Pace, TokenClock};

/// How long a sidecar has to say Hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// How long a TokenReview of a stream's token may take before it counts as unchecked.
const REVIEW_WITHIN: Duration = Duration::from_secs(10);
/// The least time between two TokenReviews of tokens a sidecar sent on one stream.
const REVIEW_GAP: Duration = Duration::from_secs(5);

/// The policy service.
#[derive(Clone)]
pub struct PolicyServer {
    /// Whether this replica leads: only the leader serves policy.
    pub leading: tokio::sync::watch::Receiver<bool>,
    /// What the sidecars are given.
    pub policies: Arc<Policies>,
    /// What the fleet knows: reports go in, the namespace's knowledge comes out.
    pub knowledge: Arc<Knowledge>,
    /// Token verification.
    pub auth: Arc<dyn Authenticate>,
    /// Heartbeat interval in both directions.
    pub heartbeat: Duration,
    /// How often each stream's token is verified again, how soon again when the API server
    /// did not answer, and how often at most a fresh one is asked for.
    pub token_pace: Pace,
    /// Namespaces whose sidecars said something, for the reconciler.
    pub acks: mpsc::Sender<String>,
    /// Metrics.
    pub metrics: Arc<OperatorMetrics>,
    /// Each namespace's snapshot and knowledge as last sent, encoded once for all its streams
    /// (start with the default: empty).
    pub encodings: Arc<wire::Encodings>,
}

/// What a session hands its response stream: an encoded message (a shared buffer: the
/// namespace's snapshot and knowledge are encoded once for all its streams) or the status that
/// ends the stream, boxed, so each stream's channel (whose slots are allocated 32 at a time,
/// whatever its capacity) stays small. The operator holds one per connected sidecar.
pub(crate) type Outgoing = Result<wire::Encoded, Box<Status>>;

/// How many messages may wait for a sidecar to take them.
const OUTGOING_CAPACITY: usize = 4;

/// The policy service: its one method framed by hand, its message limits explicit (see
/// [`wire::ControlService`]).
pub fn service(server: PolicyServer) -> wire::ControlService {
    wire::ControlService::new(server)
}

/// Why the operator ends a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Close {
    /// This replica stopped leading.
    NotLeader,
    /// The sidecar sent nothing for three heartbeats.
    Silent,
    /// The verified token expired and no fresh one came.
    TokenExpired,
    /// A token (the current one again, or a fresh one) was refused.
    TokenRefused(Rejected),
    /// A fresh token belongs to another pod or namespace.
    OtherIdentity {
        /// Its namespace.
        namespace: String,
        /// Its pod.
        pod: String,
    },
    /// A `Token` message that is empty or too large to be a token.
    MalformedToken,
    /// A message over [`plumb_proto::MAX_SIDECAR_MESSAGE_BYTES`]: what tonic said of it.
    MessageTooLarge(String),
}

/// How a stream ended.
enum End {
    /// The operator closed it.
    Closed(Close),
    /// The sidecar went away, or the channel to it broke.
    Left,
}

impl Close {
    /// The metric label.
    fn reason(&self) -> &'static str {
        match self {
            Close::NotLeader => "not_leader",
            Close::Silent => "silent",
            Close::TokenExpired => "token_expired",
            Close::TokenRefused(Rejected::NotBoundToPod) => "token_not_bound",
            Close::TokenRefused(Rejected::Refused(_) | Rejected::Unchecked(_)) => "token_refused",
            Close::OtherIdentity { .. } => "other_identity",
            Close::MalformedToken => "malformed_token",
            Close::MessageTooLarge(_) => "message_too_large",
        }
    }

    /// What the sidecar is told.
    fn status(&self) -> Status {
        match self {
            Close::NotLeader => Status::unavailable(
                "this operator replica stopped leading; reconnect through the policy Service",
            ),
            Close::Silent => Status::deadline_exceeded(
                "nothing from the sidecar for three heartbeats; reconnect",
            ),
            Close::TokenExpired => Status::unauthenticated(
                "the token this stream was verified with expired and no fresh one came (answer TokenRequest with a Token); reconnect with the pod's current token",
            ),
            Close::TokenRefused(why) => Status::unauthenticated(format!(
                "the token is no longer accepted: {why}; reconnect with the pod's current token"
            )),
            Close::OtherIdentity { namespace, pod } => Status::permission_denied(format!(
                "the fresh token belongs to pod {pod:?} of namespace {namespace:?}, not to this stream's pod; send this pod's own token"
            )),
            Close::MalformedToken => Status::invalid_argument(format!(
                "a Token message must carry the pod's token, 1 to {} bytes",
                plumb_proto::MAX_TOKEN_BYTES
            )),
            Close::MessageTooLarge(what) => Status::out_of_range(format!(
                "a message from the sidecar was over the {}-byte limit of the control stream ({what}); send smaller reports",
                plumb_proto::MAX_SIDECAR_MESSAGE_BYTES
            )),
        }
    }
}

impl PolicyServer {
    fn refuse(&self, reason: &'static str, status: Status) -> Status {
        self.metrics
            .refused_streams
            .get_or_create(&ReasonLabels { reason })
            .inc();
        tracing::warn!(reason, message = %status.message(), "control stream refused");
        status
    }

    /// Sets the namespace's connected-sidecars gauge; returns the count.
    fn gauge(&self, namespace: &str) -> usize {
        // One namespace's count: connecting a sidecar costs the same however many
        // namespaces there are.
        let n = self.policies.sidecar_count(namespace);
        self.metrics
            .connected_sidecars
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .set(n as i64);
        n
    }
}

fn message(kind: operator_message::Kind) -> Outgoing {
    Ok(wire::Encoded::kind(kind))
}

/// The tokio instant of a wall-clock time (ms since the Unix epoch), from now.
fn instant_of(unix_ms: i64) -> Instant {
    let ahead = unix_ms.saturating_sub(clock::unix_ms_now()).max(0);
    Instant::now() + Duration::from_millis(ahead.unsigned_abs())
}

/// A stream's jitter, seeded with its pod: streams of different pods that connect together
/// draw different checks, and the same pod the same ones (so tests are deterministic).
fn jitter_of(namespace: &str, pod: &str) -> Jitter {
    use std::hash::{Hash as _, Hasher as _};
    // Keys fixed at zero: the same seed in every process.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (namespace, pod).hash(&mut h);
    Jitter::seeded(h.finish())
}

/// One control stream, after its Hello.
struct Session {
    server: PolicyServer,
    namespace: String,
    pod: String,
    tx: mpsc::Sender<Outgoing>,
    /// The last token verified.
    token: String,
    clock: TokenClock,
    /// A fresh token from the sidecar, waiting for its review.
    pending: Option<String>,
    /// The review under way, if any: its verdict on the token it reviewed comes back here.
    /// One at a time, so a oneshot, not a channel per stream.
    review: Option<oneshot::Receiver<Verdict>>,
    /// No review of a sidecar's token before this.
    review_after: Instant,
}

/// A reviewed token and what the review said.
type Verdict = (String, Result<Identity, Rejected>);

impl Session {
    /// Reviews `token` off the stream's loop; the verdict comes back on `self.review`.
    fn review(&mut self, token: String) {
        self.review_after = Instant::now() + REVIEW_GAP;
        let auth = self.server.auth.clone();
        let (tx, rx) = oneshot::channel();
        self.review = Some(rx);
        tokio::spawn(async move {
            let verdict = tokio::time::timeout(REVIEW_WITHIN, auth.review(&token))
                .await
                .unwrap_or_else(|_| {
                    Err(Rejected::Unchecked(format!(
                        "the TokenReview took longer than {REVIEW_WITHIN:?}"
                    )))
                });
            let _ = tx.send((token, verdict));
        });
    }

    /// The verdict of the review under way; never, when there is none. `None` when the review
    /// ended without one.
    async fn next_verdict(review: &mut Option<oneshot::Receiver<Verdict>>) -> Option<Verdict> {
        match review {
            Some(rx) => rx.await.ok(),
            None => std::future::pending().await,
        }
    }

    /// A verdict on `token`: `Some` closes the stream.
    fn verdict(&mut self, token: String, verdict: Result<Identity, Rejected>) -> Option<Close> {
        self.review = None;
        let now = Instant::now();
        match verdict {
            Ok(id) if id.namespace != self.namespace || id.pod != self.pod => {
                Some(Close::OtherIdentity {
                    namespace: id.namespace,
                    pod: id.pod,
                })
            }
            Ok(id) => {
                let expires = id.expires_unix_ms.map(instant_of);
                if token == self.token {
                    self.clock.rechecked(now, &self.server.token_pace);
                } else {
                    tracing::debug!(namespace = %self.namespace, pod = %self.pod, "a fresh token verified");
                    self.token = token;
                    self.clock.verified(now, expires, &self.server.token_pace);
                }
                None
            }
            Err(Rejected::Unchecked(why)) => {
                // Every stream rechecks on its own: with the API server down, thousands would
                // say so at once. One line a second per namespace, with the count.
                static UNCHECKED: std::sync::LazyLock<plumb_telemetry::throttle::Throttle<String>> =
                    std::sync::LazyLock::new(|| {
                        plumb_telemetry::throttle::Throttle::new(Duration::from_secs(1))
                    });
                if let Some(streams) = UNCHECKED.tick(self.namespace.clone(), Instant::now()) {
                    tracing::warn!(namespace = %self.namespace, pod = %self.pod, streams, %why, "a stream's token could not be checked; trying again soon (streams: how many of the namespace since the last line)");
                }
                self.clock.unchecked(now, &self.server.token_pace);
                None
            }
            Err(why @ (Rejected::Refused(_) | Rejected::NotBoundToPod)) => {
                Some(Close::TokenRefused(why))
            }
        }
    }

    /// Acts on what the token's schedule says is due; `Some` closes the stream.
    async fn on_schedule(&mut self) -> Result<Option<Close>, ()> {
        let now = Instant::now();
        match self.clock.due(now) {
            Due::Expired => return Ok(Some(Close::TokenExpired)),
            Due::Recheck if self.review.is_none() => {
                self.clock.rechecking(now, &self.server.token_pace);
                // The freshest token the sidecar offered, else the current one again.
                let token = self.pending.take().unwrap_or_else(|| self.token.clone());
                self.review(token);
            }
            Due::Recheck => self.clock.rechecking(now, &self.server.token_pace),
            Due::Ask => {
                self.clock.asked(now, &self.server.token_pace);
                let expires_unix_ms = self.clock.expires().map_or(0, |e| {
                    let left = e.saturating_duration_since(now);
                    clock::unix_ms_now()
                        .saturating_add(i64::try_from(left.as_millis()).unwrap_or(i64::MAX))
                });
                let ask = message(operator_message::Kind::TokenRequest(v1::TokenRequest {
                    expires_unix_ms,
                }));
                self.tx.send(ask).await.map_err(|_| ())?;
            }
            Due::Wait(_) => {}
        }
        if self.review.is_none()
            && self.review_after <= now
            && let Some(token) = self.pending.take()
        {
            self.review(token);
        }
        Ok(None)
    }

    /// When the loop must wake for the token at the latest.
    fn wake(&self) -> Instant {
        let scheduled = match self.clock.due(Instant::now()) {
            Due::Wait(at) => at,
            Due::Expired | Due::Recheck | Due::Ask => Instant::now(),
        };
        match (&self.pending, self.review.is_some()) {
            (Some(_), false) => scheduled.min(self.review_after),
            (Some(_) | None, true) | (None, false) => scheduled,
        }
    }

    async fn run(&mut self, mut inbound: wire::Inbound) -> End {
        let server = self.server.clone();
        let (namespace, pod) = (self.namespace.clone(), self.pod.clone());
        let mut snapshots = server.policies.subscribe(&namespace);
        snapshots.mark_changed();
        let mut knowledge = server.knowledge.subscribe(&namespace);
        knowledge.mark_changed();
        let mut beat = tokio::time::interval(server.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut leading = server.leading.clone();
        leading.mark_unchanged();
        let mut last_heard = Instant::now();
        // Snapshot counter → when it was sent, for the push latency.
        let mut sent: BTreeMap<u64, Instant> = BTreeMap::new();
        loop {
            match self.on_schedule().await {
                Ok(Some(close)) => return End::Closed(close),
                Ok(None) => {}
                Err(()) => return End::Left,
            }
            let wake = self.wake();
            tokio::select! {
                changed = snapshots.changed() => {
                    if changed.is_err() {
                        return End::Left;
                    }
                    let snap = snapshots.borrow_and_update().clone();
                    if let Some(c) = counter_of(&snap.version) {
                        sent.insert(c, Instant::now());
                        while sent.len() > 64 {
                            sent.pop_first();
                        }
                    }
                    let encoded = server.encodings.snapshot(&namespace, &snap);
                    if self.tx.send(Ok(encoded)).await.is_err() {
                        return End::Left;
                    }
                }
                changed = knowledge.changed() => {
                    if changed.is_err() {
                        return End::Left;
                    }
                    let k = knowledge.borrow_and_update().clone();
                    let encoded = server.encodings.knowledge(&namespace, &k);
                    if self.tx.send(Ok(encoded)).await.is_err() {
                        return End::Left;
                    }
                }
                got = Self::next_verdict(&mut self.review) => match got {
                    Some((token, verdict)) => {
                        if let Some(close) = self.verdict(token, verdict) {
                            return End::Closed(close);
                        }
                    }
                    // The review's task ended without a verdict: as if the API server had
                    // not answered.
                    None => {
                        self.review = None;
                        self.clock.unchecked(Instant::now(), &self.server.token_pace);
                    }
                },
                msg = inbound.message() => {
                    let msg = match msg {
                        Ok(Some(m)) => m,
                        Err(s) if matches!(s.code(), Code::OutOfRange | Code::ResourceExhausted) => {
                            return End::Closed(Close::MessageTooLarge(s.message().to_owned()));
                        }
                        Ok(None) | Err(_) => return End::Left,
                    };
                    last_heard = Instant::now();
                    match msg.kind {
                        Some(sidecar_message::Kind::Report(report)) => {
                            server.knowledge.report(&namespace, &pod, report);
                        }
                        Some(sidecar_message::Kind::Ack(ack)) => {
                            if let Some(at) = counter_of(&ack.version).and_then(|c| sent.remove(&c)) {
                                server.metrics.push_seconds.observe(at.elapsed().as_secs_f64());
                            }
                            let rejected: BTreeMap<String, String> = ack
                                .rejected
                                .into_iter()
                                .map(|r| (r.name, r.reason))
                                .collect();
                            if !rejected.is_empty() {
                                tracing::warn!(%namespace, %pod, version = %ack.version, ?rejected, "a sidecar refused routes");
                            }
                            server.policies.acked(&namespace, &pod, &ack.version, rejected);
                            let _ = server.acks.try_send(namespace.clone());
                        }
                        Some(sidecar_message::Kind::Token(t)) => {
                            if t.token.is_empty() || t.token.len() > plumb_proto::MAX_TOKEN_BYTES {
                                return End::Closed(Close::MalformedToken);
                            }
                            // The same token again (its file has not rotated yet) needs no
                            // review: the schedule asks again later.
                            if t.token != self.token {
                                self.pending = Some(t.token);
                            }
                        }
                        Some(sidecar_message::Kind::Hello(_) | sidecar_message::Kind::Heartbeat(_)) | None => {}
                    }
                }
                changed = leading.changed() => {
                    // A replica that stepped down serves no more policy: its sidecars
                    // reconnect through the Service, to the new leader.
                    if changed.is_err() || !*leading.borrow_and_update() {
                        return End::Closed(Close::NotLeader);
                    }
                }
                _ = beat.tick() => {
                    if last_heard.elapsed() > server.heartbeat * 3 {
                        return End::Closed(Close::Silent);
                    }
                    let hb = message(operator_message::Kind::Heartbeat(v1::Heartbeat { unix_ms: clock::unix_ms_now() }));
                    if self.tx.send(hb).await.is_err() {
                        return End::Left;
                    }
                }
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}

impl PolicyServer {
    /// One sidecar's control stream: its token reviewed, its Hello checked, then a session
    /// that sends what its namespace is given and takes what the sidecar says.
    ///
    /// `headers` are the request's (its `authorization` carries the token); what the sidecar
    /// sends is read from `inbound`, and what it is sent comes out of the returned channel.
    pub async fn control(
        &self,
        headers: &http::HeaderMap,
        mut inbound: wire::Inbound,
    ) -> Result<mpsc::Receiver<Outgoing>, Status> {
        if !*self.leading.borrow() {
            return Err(self.refuse(
                "not_leader",
                Status::unavailable(
                    "this operator replica is not the leader; the policy Service routes to the leader",
                ),
            ));
        }
        let token = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let Some(token) = token else {
            return Err(self.refuse(
                "no_token",
                Status::unauthenticated(
                    "send the pod's ServiceAccount token (audience plumb.dev/control-plane) as `authorization: Bearer TOKEN`",
                ),
            ));
        };
        // Bounded like every recheck: a hung API server must not hold a connecting sidecar
        // (nor one of the reviews allowed at once) for the client's own timeout.
        let reviewed = tokio::time::timeout(REVIEW_WITHIN, self.auth.review(&token))
            .await
            .unwrap_or_else(|_| {
                Err(Rejected::Unchecked(format!(
                    "the TokenReview took longer than {}",
                    humantime::format_duration(REVIEW_WITHIN)
                )))
            });
        let id: Identity = match reviewed {
            Ok(id) => id,
            Err(why) => {
                let (reason, status) = match &why {
                    Rejected::Refused(_) => (
                        "bad_token",
                        Status::unauthenticated(format!("the token was not accepted: {why}")),
                    ),
                    Rejected::NotBoundToPod => (
                        "token_not_bound",
                        Status::unauthenticated(format!("the token was not accepted: {why}")),
                    ),
                    Rejected::Unchecked(_) => (
                        "token_unchecked",
                        Status::unavailable(format!(
                            "the token could not be verified now; retry: {why}"
                        )),
                    ),
                };
                return Err(self.refuse(reason, status));
            }
        };
        let hello = match tokio::time::timeout(HELLO_WITHIN, inbound.message()).await {
            Ok(Ok(Some(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Hello(h)),
            }))) => h,
            _ => {
                return Err(self.refuse(
                    "no_hello",
                    Status::invalid_argument("the first message of a control stream must be Hello"),
                ));
            }
        };
        if hello.namespace != id.namespace {
            return Err(self.refuse(
                "wrong_namespace",
                Status::permission_denied(format!(
                    "the token belongs to namespace {:?}, not {:?}",
                    id.namespace, hello.namespace
                )),
            ));
        }
        // The pod is the token's, whatever Hello says.
        let (namespace, pod) = (id.namespace.clone(), id.pod.clone());
        tracing::info!(%namespace, %pod, version = %hello.sidecar_version, serving = %hello.serving_version, "sidecar connected");
        self.policies.connected(&namespace, &pod);
        self.knowledge.connected(&namespace, &pod);
        self.gauge(&namespace);
        let _ = self.acks.try_send(namespace.clone());

        let (tx, rx) = mpsc::channel::<Outgoing>(OUTGOING_CAPACITY);
        let now = Instant::now();
        let jitter = jitter_of(&namespace, &pod);
        let mut session = Session {
            server: self.clone(),
            namespace,
            pod,
            tx,
            token,
            clock: TokenClock::start(
                now,
                id.expires_unix_ms.map(instant_of),
                &self.token_pace,
                jitter,
            ),
            pending: None,
            review: None,
            review_after: now,
        };
        tokio::spawn(async move {
            let end = session.run(inbound).await;
            let server = &session.server;
            let (namespace, pod) = (&session.namespace, &session.pod);
            match end {
                End::Closed(close) => {
                    server
                        .metrics
                        .closed_streams
                        .get_or_create(&ReasonLabels {
                            reason: close.reason(),
                        })
                        .inc();
                    let status = close.status();
                    tracing::warn!(%namespace, %pod, reason = close.reason(), message = %status.message(), "closing a control stream");
                    let refusal = message(operator_message::Kind::Refusal(v1::Refusal {
                        reason: status.message().to_owned(),
                    }));
                    let _ = session.tx.send(refusal).await;
                    let _ = session.tx.send(Err(Box::new(status))).await;
                }
                End::Left => tracing::info!(%namespace, %pod, "sidecar disconnected"),
            }
            server.policies.disconnected(namespace, pod);
            server.knowledge.disconnected(namespace, pod);
            if server.gauge(namespace) == 0 {
                server.encodings.forget(namespace);
            }
            let _ = server.acks.try_send(namespace.clone());
        });
        Ok(rx)
    }
}
