//! The request path, in order.
//!
//! ```text
//! accept ─▶ route ─▶ order ───────────▶ attempt ─▶ classify ─▶ verify ─▶ respond
//!  (API,     (model →   (targets in order,  (exchange:   (one class   (model,     (answer + x-plumb-*,
//!   body)     LlmRoute)  skips, equivalence) head, hold)  per failure) contract)   or an error in the
//!                                               ▲                                  client's format)
//!                                               │        plan (pure): retry after d, repair,
//!                                               └─────── fail over, or stop — inside the total
//!                                                        deadline and the retry budget
//! ```
//!
//! [`Proxy::handle`] accepts (`accept`) and routes; `Request::run` walks the route's targets and
//! its last resort; `Request::try_target` is the attempt loop, where [`crate::plan::next`]
//! decides what follows each failure. The attempt itself is [`crate::attempt::exchange`], and
//! what it answered is checked in `check`; every attempt and every request is one record for
//! [`crate::observe`]. What reaches the client is built in `reply`; a stream cut after commit
//! is continued by `continuation`.
//!
//! Each request keeps the policy snapshot it started with, so reloads never disturb it.

mod accept;
mod check;

use check::{Checked, Named};
mod continuation;
mod reply;
mod stored;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request as HttpRequest, Response, StatusCode};
use plumb_policy::contract::Schema;
use plumb_policy::{Deadlines, FailureClass, LastResort, Route, Target};
use plumb_telemetry::{Metrics, RequestLabels};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::attempt::{self, Answer, Expect, Hold, Kind, Outgoing};
use crate::breaker::{Admission, Breaker, Permit};
use crate::classify::{Failure, Phase};
use crate::fallback::{self, Skip};
use crate::fleet::Gate;
use crate::keys::{Secret, redact};
use crate::memory::Memory;
use crate::observe::{
    AttemptOutcome, AttemptRecord, Observer, RouteHandles, Settlement, StreamRecord,
};
use crate::payload::{ClientRequest, Operation};
use crate::plan::{self, Next, Situation, TargetVerdict};
use crate::respond::{self, Body};
use crate::retry::Budget;
use crate::stream::Settle;
use crate::table::{Policy, Table};
use crate::upstream::{self, Transport};
use crate::verify;

/// Everything a request needs: the policy table, the upstreams, the metrics and the bounds.
pub struct Proxy {
    /// The policy in force and the state that outlives reloads.
    pub table: Arc<Table>,
    /// Where attempts go: the connection pools, or a scripted upstream in tests.
    pub upstreams: Arc<dyn Transport>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How large bodies may be, and how many large ones are held at once.
    pub limits: BodyLimits,
}

/// How large bodies may be, and the budget that holds the large ones.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    /// The largest request body accepted from a client.
    pub max_request_bytes: usize,
    /// The largest whole answer (or stream held whole for its contract) read from a provider.
    pub max_response_bytes: usize,
    /// The budget for large request bodies held at once.
    pub memory: Memory,
}

impl Default for BodyLimits {
    /// Sized for the chart's default sidecar memory limit (128Mi): an 8 MiB request, a 16 MiB
    /// answer, large bodies held within a 48 MiB budget, waiting up to 30 s for room.
    fn default() -> Self {
        BodyLimits {
            max_request_bytes: 8 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            memory: Memory::new(48 * 1024 * 1024, Duration::from_secs(30)),
        }
    }
}

impl Proxy {
    /// A proxy with the default [`BodyLimits`].
    pub fn new(table: Arc<Table>, upstreams: Arc<dyn Transport>, metrics: Arc<Metrics>) -> Proxy {
        Proxy {
            table,
            upstreams,
            metrics,
            limits: BodyLimits::default(),
        }
    }
}

impl Proxy {
    /// Handles one client request. Never fails: every problem becomes a response in the
    /// client's format. Generic over the body so that tests can call it in-process.
    pub async fn handle<B>(self: Arc<Self>, req: HttpRequest<B>) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (policy, accepted) = match accept::accept(&self, req).await {
            Ok(a) => a,
            Err(refusal) => return refusal,
        };
        let accept::Accepted {
            api,
            op,
            parts,
            request,
            held,
        } = accepted;
        // Route: the model names the LlmRoute.
        let Some(route) = policy.routes.lookup(&request.model).cloned() else {
            self.metrics
                .requests
                .get_or_create(&RequestLabels {
                    route: "none".to_owned(),
                    api: api.as_str(),
                    outcome: "no_route",
                })
                .inc();
            return respond::error(
                api,
                StatusCode::NOT_FOUND,
                "model_not_found",
                &format!(
                    "no route serves the model {:?}; the routes serve: {}",
                    request.model,
                    policy.routes.models().join(", ")
                ),
            );
        };
        if let Some(id) = request.unstored_previous_response() {
            return respond::error(
                api,
                StatusCode::BAD_REQUEST,
                "previous_response_not_stored",
                &format!(
                    "previous_response_id {id:?} names a response a non-OpenAI target of route {} answered; no provider stored it, so it cannot be continued by id: send the conversation so far as input items instead",
                    route.id
                ),
            );
        }
        let handles = self.table.handles(&route);
        let caller_key = accept::caller_key(api, &parts.headers);
        let started = Instant::now();
        // One span per client request, GenAI semantic conventions plus `plumb.*`; the
        // attempts are its children.
        let operation = match op {
            Operation::Chat => "chat",
            Operation::Embeddings => "embeddings",
        };
        let span = tracing::info_span!(
            "request",
            otel.name = %format!("{operation} {}", request.model),
            otel.kind = "server",
            gen_ai.operation.name = operation,
            gen_ai.request.model = %request.model,
            plumb.route = %route.id,
            plumb.served_by = tracing::field::Empty,
            plumb.attempts = tracing::field::Empty,
            plumb.failure_classes = tracing::field::Empty,
            plumb.equivalence = tracing::field::Empty,
            error.r#type = tracing::field::Empty,
        );
        upstream::trace_context::adopt(&span, &parts.headers);
        // The schema the client asked for is hostile input: refused with a clear error when it
        // cannot be checked at a bounded cost.
        let request = Arc::new(request);
        let request_schema = match verify::request_schema(&route, &request) {
            Ok(s) => s,
            Err(why) => {
                return respond::error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("the response format's JSON schema is refused: {why}"),
                );
            }
        };
        let deadlines = if request.stream {
            route.deadlines
        } else {
            unstreamed_deadlines(&self.table.learned, &route, request.needs.max_output)
        };
        Request {
            proxy: &self,
            policy: &policy,
            deadlines,
            budget: self.table.budget(&route.id, route.retry_budget),
            route: &route,
            handles: &handles,
            request: &request,
            started,
            request_schema: request_schema.as_ref(),
            headers: &parts.headers,
            caller_key: caller_key.as_ref(),
            deadline: started + deadlines.total,
            span: span.clone(),
            tried: Vec::new(),
            skipped: Vec::new(),
            attempts: 0,
            _held: held,
        }
        .run()
        .instrument(span)
        .await
    }
}

/// One client request on its way through the route's targets.
struct Request<'a> {
    proxy: &'a Arc<Proxy>,
    policy: &'a Arc<Policy>,
    route: &'a Arc<Route>,
    /// The route's deadlines for this request: an unstreamed one's grow with the answer it
    /// asked for, unless the route set them.
    deadlines: Deadlines,
    handles: &'a Arc<RouteHandles>,
    budget: Arc<Budget>,
    request: &'a Arc<ClientRequest>,
    /// When the client's request arrived.
    started: Instant,
    /// The schema the client asked for, when the route's contract follows it.
    request_schema: Option<&'a Schema>,
    headers: &'a HeaderMap,
    caller_key: Option<&'a Secret>,
    deadline: Instant,
    /// The request's span.
    span: tracing::Span,
    tried: Vec<Tried>,
    skipped: Vec<(String, Skip)>,
    attempts: u32,
    /// The request body's share of the body-memory budget, given back when the request ends.
    _held: crate::memory::Held,
}

/// One failed attempt, for the error message and the headers.
struct Tried {
    target: String,
    failure: Failure,
}

/// How trying one target ended.
enum Outcome {
    /// It answered: this is the response.
    Answered(Response<Body>),
    /// Move on to the next target.
    MovedOn,
    /// End the request with the last failure.
    Stop,
}

impl Request<'_> {
    /// The observer's parts, owned, for a record made after the request's own code returns.
    fn observing(&self) -> Observing {
        Observing {
            proxy: self.proxy.clone(),
            route: self.route.clone(),
            handles: self.handles.clone(),
        }
    }

    fn observer(&self) -> Observer<'_> {
        Observer {
            metrics: &self.proxy.metrics,
            table: &self.proxy.table,
            route: self.route,
            handles: self.handles,
        }
    }

    /// Walks the route's targets in order, then its last resort.
    async fn run(mut self) -> Response<Body> {
        let route = self.route;
        self.budget.request();
        let (order, skipped) = fallback::order(route, self.request, self.caller_key.is_some());
        for (t, why) in skipped {
            self.skip(t, why);
        }
        let mut kind = Kind::First;
        let mut opened: Vec<(&Target, Instant)> = Vec::new();
        for (i, target) in order.iter().enumerate() {
            if let Some(prior) = self.ruled_out_by(&order, target) {
                self.skip(target, Skip::RuledOut(prior));
                continue;
            }
            if let Some(other) = self.other_model(&order, target) {
                self.skip(target, other);
                continue;
            }
            if let Err(refusal) = self.equivalence_gate(target) {
                self.skip(target, refusal);
                continue;
            }
            let others_left = order[i + 1..].iter().any(|t| {
                self.ruled_out_by(&order, t).is_none() && self.other_model(&order, t).is_none()
            });
            match self.try_target(target, kind, others_left).await {
                Outcome::Answered(resp) => return resp,
                Outcome::Stop => return self.fail(),
                Outcome::MovedOn => {}
            }
            if let Some(at) = self.breaker(target).opens_for_probes_at() {
                opened.push((target, at));
            }
            kind = Kind::Failover;
        }
        // Every target in rotation failed or was unavailable: the last resort decides.
        match &route.last_resort {
            LastResort::FailFast => {}
            LastResort::Target(t) => {
                let gated = self.equivalence_gate(t);
                if let Some(other) = self.other_model(&order, t) {
                    self.skip(t, other);
                } else if let Err(refusal) = gated {
                    self.skip(t, refusal);
                } else if fallback::unfit(t, self.request, self.caller_key.is_some()).is_none()
                    && let Outcome::Answered(resp) = self.try_target(t, kind, false).await
                {
                    return resp;
                }
            }
            LastResort::WaitForHalfOpen => {
                let nothing_tried = self.attempts == 0;
                if let Some((target, at)) = opened.into_iter().min_by_key(|(_, at)| *at)
                    && nothing_tried
                    && at < self.deadline
                {
                    tokio::time::sleep_until(at).await;
                    if let Outcome::Answered(resp) = self.try_target(target, kind, false).await {
                        return resp;
                    }
                }
            }
        }
        self.fail()
    }

    fn breaker(&self, target: &Target) -> Arc<Breaker> {
        self.proxy
            .table
            .breakers
            .get(&target.upstream, self.route.breaker)
    }

    /// Passes over `target` without an attempt, for this reason (in the error and the metric).
    fn skip(&mut self, target: &Target, why: Skip) {
        self.observer().skip(target, &why);
        self.skipped.push((target.name.clone(), why));
    }

    /// Whether the route's equivalence settings let failover use `target`.
    fn equivalence_gate(&self, target: &Target) -> Result<(), Skip> {
        crate::equivalence::gate(self.route, &self.proxy.table.certifications, target).map_err(
            |r| match r {
                crate::equivalence::Refusal::Downgrade => Skip::Downgrade,
                crate::equivalence::Refusal::Uncertified(why) => Skip::Uncertified(why),
            },
        )
    }

    /// Why `target` may not answer this request if it is an embeddings request and `target`
    /// is not declared the same model as the request's primary ([`fallback::embeddings_anchor`]).
    fn other_model(&self, order: &[&Target], target: &Target) -> Option<Skip> {
        let anchor = fallback::embeddings_anchor(self.route, order);
        fallback::other_model(self.route, self.request, anchor, target)
    }

    /// The class of an earlier failure that rules `target` out (a context-length failure
    /// rules out windows no larger; an auth failure rules out the same credentials).
    fn ruled_out_by(&self, order: &[&Target], target: &Target) -> Option<FailureClass> {
        self.tried.iter().find_map(|t| {
            let failed = order.iter().find(|o| o.name == t.target)?;
            (!fallback::still_eligible(t.failure.class, failed, target)).then_some(t.failure.class)
        })
    }

    /// Asks the fleet, then the breaker, whether `target` may be tried now. Inside a
    /// rate-limit window the last option waits for the window to end when the deadline
    /// allows; otherwise the target is skipped.
    async fn admit(
        &mut self,
        target: &Target,
        breaker: &Arc<Breaker>,
        others_left: bool,
    ) -> Option<Permit> {
        loop {
            match self.proxy.table.fleet.gate(&target.upstream) {
                Gate::Go => match breaker.admit() {
                    Admission::Allowed(p) => return Some(p),
                    Admission::Refused { .. } => {
                        self.skip(target, Skip::BreakerOpen);
                        return None;
                    }
                },
                Gate::Probe => return Some(breaker.admit_probe()),
                Gate::Open(reason) => {
                    self.skip(target, Skip::FleetOpen(reason));
                    return None;
                }
                Gate::RateLimited(wait) => {
                    let fits = Instant::now()
                        .checked_add(wait + plan::ATTEMPT_MARGIN)
                        .is_some_and(|t| t < self.deadline);
                    if !others_left && fits {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    self.skip(target, Skip::RateLimited(wait));
                    return None;
                }
            }
        }
    }

    /// The attempt loop of one target: attempts as the planner says — retries, repairs — until
    /// one answers, the target is left for the next, or the request stops.
    async fn try_target(&mut self, target: &Target, mut kind: Kind, others_left: bool) -> Outcome {
        let breaker = self.breaker(target);
        let (mut retries, mut repairs) = (0u32, 0u32);
        // After a contract failure: the request again, with the complaint added.
        let mut repaired: Option<ClientRequest> = None;
        loop {
            let Some(permit) = self.admit(target, &breaker, others_left).await else {
                return Outcome::MovedOn;
            };
            if Instant::now() >= self.deadline {
                // Nothing is sent, so nothing is counted against the target.
                self.tried.push(Tried {
                    target: target.name.clone(),
                    failure: Failure::timeout(Phase::Head, "total", self.deadlines.total),
                });
                return Outcome::Stop;
            }
            let probe = permit.is_probe();
            if probe {
                kind = Kind::Probe;
            }
            self.attempts += 1;
            let span = crate::observe::attempt_span(target, kind, probe);
            let started = Instant::now();
            let request = repaired.as_ref().unwrap_or(self.request);
            let (result, named) = self.attempt(target, request).instrument(span.clone()).await;
            let latency = started.elapsed();
            let mut record = AttemptRecord {
                target,
                kind,
                probe,
                latency,
                status: None,
                model: named.model.as_deref(),
                substituted: named.substituted.as_deref(),
                outcome: AttemptOutcome::Committed,
                breaker: breaker.state(),
                next: None,
                head: None,
            };
            let mut failure = match result {
                Ok(checked) => {
                    let status = checked.answer.status();
                    // A whole answer settles the attempt now; a stream settles when it ends,
                    // and its commit is recorded once its first bytes are written.
                    let (permit, commit) = match checked.answer {
                        Answer::Whole { .. } => {
                            record.status = Some(status);
                            record.breaker = permit.success();
                            record.outcome = AttemptOutcome::Answered {
                                usage: checked.usage,
                            };
                            self.observer().attempt(&span, &record, self.request);
                            (None, None)
                        }
                        Answer::Stream { head_after, .. } => {
                            // A probe's verdict is its commit: traffic returns now, not when
                            // its stream ends.
                            let (breaker, rest) = permit.commit();
                            let commit = Commit {
                                span: span.clone(),
                                kind,
                                probe,
                                latency,
                                status,
                                model: named.model.clone(),
                                substituted: named.substituted.clone(),
                                breaker,
                                head: head_after,
                            };
                            (Some(rest), Some(commit))
                        }
                    };
                    let first_choice = kind == Kind::First;
                    return Outcome::Answered(self.served(
                        target,
                        checked,
                        first_choice,
                        permit,
                        latency,
                        commit,
                    ));
                }
                Err(f) => f,
            };
            failure.message = redact(
                &failure.message,
                self.policy
                    .keys
                    .values()
                    .chain(self.caller_key.map(Secret::expose)),
            );
            record.status = failure.status;
            record.breaker = permit.failure(failure.class);
            let rejected = failure.rejected.take();
            let next = self.plan(
                &failure,
                retries,
                repairs,
                rejected.is_some(),
                others_left,
                record.breaker,
            );
            record.next = Some(next);
            record.outcome = AttemptOutcome::Failed(&failure);
            self.observer().attempt(&span, &record, self.request);
            drop(span);
            let complaint = failure.message.clone();
            self.tried.push(Tried {
                target: target.name.clone(),
                failure,
            });
            match next {
                Next::Repair => {
                    repairs += 1;
                    kind = Kind::Repair;
                    if let Some(rejected) = rejected {
                        repaired = Some(self.request.with_repair(&rejected, &complaint));
                    }
                }
                Next::Retry(wait) => {
                    retries += 1;
                    kind = Kind::Retry;
                    repaired = None;
                    tokio::time::sleep(wait).await;
                }
                Next::Failover(_) => return Outcome::MovedOn,
                Next::Stop(_) => return Outcome::Stop,
            }
        }
    }

    /// Asks the planner what follows `failure`, and takes a retry or repair from the budget
    /// when it says so (asking again, without budget, if another request took the last).
    fn plan(
        &self,
        failure: &Failure,
        retries: u32,
        repairs: u32,
        repairable: bool,
        others_left: bool,
        breaker: crate::breaker::BreakerState,
    ) -> Next {
        let target = match breaker {
            crate::breaker::BreakerState::Open => TargetVerdict::BreakerOpen,
            crate::breaker::BreakerState::Closed | crate::breaker::BreakerState::HalfOpen => {
                TargetVerdict::Available
            }
        };
        let mut situation = Situation {
            class: failure.class,
            plan: self.route.plans[failure.class.index()],
            retries,
            repairs,
            repairable,
            others_left,
            retry_after: failure.retry_after,
            now: Instant::now(),
            deadline: self.deadline,
            budget_left: self.budget.has_room(),
            target,
            jitter: fastrand::f64(),
            // State the request names, not held by this account: another OpenAI account of
            // the route may hold it (the caller's mistake only if none does).
            state_elsewhere: self.request.server_state().is_some()
                && crate::classify::state_elsewhere(failure),
        };
        let next = plan::next(&situation);
        match next {
            Next::Retry(_) | Next::Repair if !self.budget.try_retry() => {
                situation.budget_left = false;
                plan::next(&situation)
            }
            Next::Retry(_) | Next::Repair | Next::Failover(_) | Next::Stop(_) => next,
        }
    }

    /// One attempt on one target: the exchange, then the checks of what it answered, before
    /// anything reaches the client.
    async fn attempt(
        &self,
        target: &Target,
        request: &ClientRequest,
    ) -> (Result<Checked, Failure>, Named) {
        let sent = async {
            let body = request
                .body_for(target)
                .map_err(|e| Failure::new(FailureClass::BadRequest, Phase::Head, e.to_string()))?;
            let req = Outgoing {
                target,
                family: request.family_for(target),
                operation: request.operation,
                body,
                stream: request.stream,
                key: self.policy.keys.for_target(target, self.caller_key),
                google: self.policy.keys.google(target),
                proxy_credentials: self.policy.keys.proxy_credentials(target),
                client_headers: self.headers,
            }
            .build(&*self.proxy.upstreams)
            .await?;
            // An upstream whose recent streams break has its streams held for some events,
            // so a break still fails over invisibly.
            let held;
            let streaming = if self.request.stream
                && self
                    .proxy
                    .table
                    .learned
                    .holding(&target.upstream, &self.route.streaming.adaptive_hold)
            {
                self.observer().stream_held(target);
                held = self.route.streaming.held();
                &held
            } else {
                &self.route.streaming
            };
            let (expect, deadlines) = if self.request.stream {
                (
                    Expect::Stream(Hold {
                        streaming,
                        until_end: self.holds_whole_stream(),
                    }),
                    // The first-token deadline this upstream's recent first tokens call for.
                    self.proxy
                        .table
                        .learned
                        .deadlines(&target.upstream, &self.deadlines),
                )
            } else {
                (
                    Expect::Whole(request.operation),
                    // The first byte (the whole answer) within the time this upstream's
                    // generation rate calls for; the request's total was set for every target.
                    Deadlines {
                        total: self.deadlines.total,
                        ..self.proxy.table.learned.unstreamed_deadlines(
                            &target.upstream,
                            &self.route.deadlines,
                            self.request.needs.max_output,
                        )
                    },
                )
            };
            attempt::exchange(
                &*self.proxy.upstreams,
                request.family_for(target),
                req,
                (&deadlines, self.deadline),
                self.proxy.limits.max_response_bytes,
                expect,
            )
            .await
        };
        match sent.await {
            Ok(answer) => self.check(target, request.operation, answer).await,
            Err(f) => (Err(f), Named::default()),
        }
    }
}

/// The deadlines of an unstreamed request on `route` that asks for up to `max_tokens`: the
/// first byte at 50 ms a token (each attempt takes its own upstream's learned rate instead),
/// and a total long enough for the slowest target's.
fn unstreamed_deadlines(
    learned: &crate::learned::Learned,
    route: &Route,
    max_tokens: Option<u32>,
) -> Deadlines {
    let d = route.deadlines.for_length(max_tokens);
    let total = route
        .all_targets()
        .map(|t| {
            learned
                .unstreamed_deadlines(&t.upstream, &route.deadlines, max_tokens)
                .total
        })
        .fold(d.total, Duration::max);
    Deadlines { total, ..d }
}

/// What a record outliving the request needs to reach the observer: the proxy, the route and
/// its handles.
#[derive(Clone)]
pub(super) struct Observing {
    proxy: Arc<Proxy>,
    route: Arc<Route>,
    handles: Arc<RouteHandles>,
}

impl Observing {
    fn observer(&self) -> Observer<'_> {
        Observer {
            metrics: &self.proxy.metrics,
            table: &self.proxy.table,
            route: &self.route,
            handles: &self.handles,
        }
    }
}

/// A committed stream's attempt, recorded once its first bytes are written: nothing the
/// client waits for depends on it.
pub(super) struct Commit {
    span: tracing::Span,
    kind: Kind,
    probe: bool,
    latency: Duration,
    status: u16,
    model: Option<String>,
    substituted: Option<String>,
    breaker: crate::breaker::BreakerState,
    head: Duration,
}

impl Commit {
    fn record(self, observer: &Observer<'_>, target: &Target, request: &ClientRequest) {
        let record = AttemptRecord {
            target,
            kind: self.kind,
            probe: self.probe,
            latency: self.latency,
            status: Some(self.status),
            model: self.model.as_deref(),
            substituted: self.substituted.as_deref(),
            outcome: AttemptOutcome::Committed,
            breaker: self.breaker,
            next: None,
            head: Some(self.head),
        };
        observer.attempt(&self.span, &record, request);
    }
}

/// Settles a committed stream's attempt when the target's part of the stream ends.
pub(super) fn settle_stream(
    observing: Observing,
    target: Arc<Target>,
    permit: Option<Permit>,
    latency: Duration,
) -> Settle {
    Box::new(move |how: Settlement, bytes: u64| {
        let probe = permit.as_ref().is_some_and(Permit::is_probe);
        let breaker = match (&how, permit) {
            (_, None) => observing
                .proxy
                .table
                .breakers
                .get(&target.upstream, observing.route.breaker)
                .state(),
            (Settlement::ClientGone, Some(p)) => p.abandon(),
            (
                Settlement::Completed | Settlement::Interrupted(_) | Settlement::Rejected { .. },
                Some(p),
            ) => p.settle(how.failure()),
        };
        observing.observer().stream_end(&StreamRecord {
            target: &target,
            settlement: &how,
            bytes,
            latency,
            probe,
            breaker,
        });
    })
}
