//! The request path, in order.
//!
//! ```text
//! accept ─▶ route ─▶ plan ─────────────▶ attempt ─▶ classify ─▶ verify ─▶ respond
//!  (API,     (model →   (targets in order,   (upstream    (one class   (200 body   (answer + x-plumb-*,
//!   body)     LlmRoute)  skips, breakers)     request)     per failure) or first    or an error in the
//!                                                 ▲                     event)      client's format)
//!                                                 └── retry same target / next target,
//!                                                     as the class's plan says, inside
//!                                                     the total deadline and retry budget
//! ```
//!
//! Each request keeps the policy snapshot it started with, so reloads never disturb it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use plumb_policy::contract::{ModelSubstitution, Schema, StreamCheck};
use plumb_policy::{FailureClass, LastResort, Plan, Route, Target};
use plumb_telemetry::{
    AttemptLabels, ContractLabels, Metrics, OutcomeLabels, RequestLabels, RouteLabels, TargetLabels,
};
use serde_json::json;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::breaker::{Admission, Permit};
use crate::classify::{self, Failure, Phase};
use crate::equivalence::shadow;
use crate::fallback::{self, Skip};
use crate::fleet::{self, Gate};
use crate::genai;
use crate::keys::{Secret, redact};
use crate::payload::{Api, ClientRequest, InvalidRequest, Operation};
use crate::respond::{self, Account, Body};
use crate::retry;
use crate::stream::{Relay, RelayOptions, StreamEnd};
use crate::table::{Policy, Table};
use crate::translate::answer;
use crate::translate::events::Translator;
use crate::upstream::{self, Upstreams};
use crate::verify::{self, Collected, StreamCollector};

/// Largest request body accepted from a client.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
/// Largest non-streamed answer accepted from an upstream.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Largest upstream error body read for classification.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Largest start of a stream held before commit.
const MAX_FIRST_EVENT_BYTES: usize = 1024 * 1024;

/// Everything a request needs: the policy table, the upstream pools and the metrics.
pub struct Proxy {
    /// The policy in force and the state that outlives reloads.
    pub table: Arc<Table>,
    /// Connection pools.
    pub upstreams: Upstreams,
    /// Metrics.
    pub metrics: Arc<Metrics>,
}

/// A successful attempt, not yet sent.
enum Answer {
    Whole {
        head: http::response::Parts,
        body: Bytes,
        /// Input and output tokens, as the provider counted them.
        usage: Option<(u64, u64)>,
    },
    Stream {
        head: http::response::Parts,
        first: Bytes,
        rest: Incoming,
    },
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Answer::Whole { head, .. } | Answer::Stream { head, .. } => head.status.as_u16(),
        }
    }
}

/// One failed attempt, for the error message and the headers.
struct Tried {
    target: String,
    failure: Failure,
}

impl Proxy {
    /// Handles one client request. Never fails: every problem becomes a response in the
    /// client's format.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let api_hint = if req.headers().contains_key("anthropic-version")
            || req.uri().path() == "/v1/messages"
        {
            Api::Anthropic
        } else {
            Api::Openai
        };
        let (api, op) = match (req.method(), req.uri().path()) {
            (&Method::POST, "/v1/chat/completions") => (Api::Openai, Operation::Chat),
            (&Method::POST, "/v1/embeddings") => (Api::Openai, Operation::Embeddings),
            (&Method::POST, "/v1/messages") => (Api::Anthropic, Operation::Chat),
            (&Method::GET, "/v1/models") => return self.models(api_hint),
            (m, p) => {
                return respond::error(
                    api_hint,
                    StatusCode::NOT_FOUND,
                    "unknown_url",
                    &format!(
                        "plumb serves POST /v1/chat/completions, POST /v1/embeddings, GET /v1/models and POST /v1/messages; not {m} {p}"
                    ),
                );
            }
        };
        let Some(policy) = self.table.current() else {
            return respond::error(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "plumb has no routing policy yet: the sidecar is waiting for its routes file or control plane",
            );
        };
        let (parts, body) = req.into_parts();
        let bytes = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let too_large = e
                    .downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some();
                return if too_large {
                    respond::error(
                        api,
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "request_too_large",
                        &format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
                    )
                } else {
                    respond::error(
                        api,
                        StatusCode::BAD_REQUEST,
                        "invalid_request",
                        "the request body could not be read",
                    )
                };
            }
        };
        let request = match ClientRequest::parse(api, op, &bytes) {
            Ok(r) => r,
            Err(e @ (InvalidRequest::Json(_) | InvalidRequest::NoModel)) => {
                return respond::error(
                    api,
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &e.to_string(),
                );
            }
        };
        let Some(route) = policy.routes.lookup(&request.model).cloned() else {
            self.count_request("none", api, "no_route");
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
        let caller_key = caller_key(api, &parts.headers);
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
        let request_schema = verify::request_schema(&route, &request);
        let resp = Attempts {
            proxy: &self,
            policy: &policy,
            route: &route,
            request: &request,
            started,
            request_schema: request_schema.as_ref(),
            headers: &parts.headers,
            caller_key: caller_key.as_ref(),
            deadline: started + route.deadlines.total,
            tried: Vec::new(),
            skipped: Vec::new(),
            attempts: 0,
            label: route.id.to_string(),
        }
        .run()
        .instrument(span.clone())
        .await;
        let h = resp.headers();
        let header = |n: &str| {
            h.get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        span.record("plumb.served_by", header("x-plumb-served-by"));
        span.record("plumb.attempts", header("x-plumb-attempts"));
        span.record("plumb.failure_classes", header("x-plumb-failure-classes"));
        if !resp.status().is_success() {
            let class = header("x-plumb-failure-classes");
            span.record(
                "error.type",
                class
                    .rsplit(',')
                    .next()
                    .filter(|c| !c.is_empty())
                    .unwrap_or("no_target_available"),
            );
        }
        self.metrics
            .request_duration
            .get_or_create(&RouteLabels {
                route: route.id.to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        resp
    }

    fn count_request(&self, route: &str, api: Api, outcome: &'static str) {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                api: api.as_str(),
                outcome,
            })
            .inc();
    }

    /// `GET /v1/models`: the model names the routes serve, in the client's format.
    fn models(&self, api: Api) -> Response<Body> {
        let Some(policy) = self.table.current() else {
            return respond::error(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                "plumb has no routing policy yet",
            );
        };
        let names = policy.routes.models();
        let body = match api {
            Api::Openai => json!({"object": "list", "data": names.iter().map(|n| json!({
                "id": n, "object": "model", "created": 0, "owned_by": "plumb"})).collect::<Vec<_>>()}),
            Api::Anthropic => json!({"data": names.iter().map(|n| json!({
                "type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"})).collect::<Vec<_>>(),
                "has_more": false, "first_id": names.first(), "last_id": names.last()}),
        };
        let mut resp = Response::new(respond::full(body.to_string()));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

/// The caller's own API key, for passthrough targets.
fn caller_key(api: Api, headers: &HeaderMap) -> Option<Secret> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let key = match api {
        Api::Openai => get("authorization").and_then(|v| v.strip_prefix("Bearer ")),
        Api::Anthropic => get("x-api-key")
            .or_else(|| get("authorization").and_then(|v| v.strip_prefix("Bearer "))),
    }?;
    (!key.trim().is_empty()).then(|| Secret::new(key.trim()))
}

/// The attempts of one request.
struct Attempts<'a> {
    proxy: &'a Arc<Proxy>,
    policy: &'a Arc<Policy>,
    route: &'a Arc<Route>,
    request: &'a ClientRequest,
    /// When the client's request arrived.
    started: Instant,
    /// The schema the client asked for, when the route's contract follows it.
    request_schema: Option<&'a Schema>,
    headers: &'a HeaderMap,
    caller_key: Option<&'a Secret>,
    deadline: Instant,
    tried: Vec<Tried>,
    skipped: Vec<(String, Skip)>,
    attempts: u32,
    /// `namespace/name`, formatted once for metric labels, headers and logs.
    label: String,
}

/// What to do after a failed attempt.
enum Next {
    Retry(Duration),
    Failover,
    Stop,
}

impl Attempts<'_> {
    async fn run(mut self) -> Response<Body> {
        let route = self.route;
        let budget = self.proxy.table.budget(&route.id, route.retry_budget);
        budget.request();
        let (order, skipped) = fallback::order(route, self.request, self.caller_key.is_some());
        for (t, why) in skipped {
            self.skip(t, why);
        }
        let mut first = true;
        let mut opened: Vec<(&Target, Instant)> = Vec::new();
        for (i, target) in order.iter().enumerate() {
            if let Some(prior) = self.ruled_out_by(&order, target) {
                self.skip(target, Skip::RuledOut(prior));
                continue;
            }
            if let Err(refusal) = self.gate(target) {
                self.skip(target, refusal);
                continue;
            }
            let others_left = order[i + 1..]
                .iter()
                .any(|t| self.ruled_out_by(&order, t).is_none());
            match self.try_target(target, first, others_left, &budget).await {
                Ok(resp) => return resp,
                Err(Some(Stop)) => return self.fail(),
                Err(None) => {}
            }
            if let Some(at) = self
                .proxy
                .table
                .breakers
                .get(&target.upstream, route.breaker)
                .opens_for_probes_at()
            {
                opened.push((target, at));
            }
            first = false;
        }
        // Every target in rotation failed or was unavailable: the last resort decides.
        match &route.last_resort {
            LastResort::FailFast => {}
            LastResort::Target(t) => {
                let gated = self.gate(t);
                if let Err(refusal) = gated {
                    self.skip(t, refusal);
                } else if fallback::unfit(t, self.request, self.caller_key.is_some()).is_none()
                    && let Ok(resp) = self.try_target(t, false, false, &budget).await
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
                    if let Ok(resp) = self.try_target(target, false, false, &budget).await {
                        return resp;
                    }
                }
            }
        }
        self.fail()
    }

    /// Passes over `target` without an attempt, for this reason (in the error and the metric).
    fn skip(&mut self, target: &Target, why: Skip) {
        self.proxy
            .metrics
            .skipped_targets
            .get_or_create(&OutcomeLabels {
                route: self.label.clone(),
                target: target.name.clone(),
                outcome: why.label(),
            })
            .inc();
        self.skipped.push((target.name.clone(), why));
    }

    /// Whether the route's equivalence settings let failover use `target`; a refusal is
    /// counted.
    fn gate(&self, target: &Target) -> Result<(), Skip> {
        let refused =
            crate::equivalence::gate(self.route, &self.proxy.table.certifications, target).map_err(
                |r| match r {
                    crate::equivalence::Refusal::Downgrade => Skip::Downgrade,
                    crate::equivalence::Refusal::Uncertified(why) => Skip::Uncertified(why),
                },
            );
        if refused.is_err() {
            self.proxy
                .metrics
                .failover_equivalence
                .get_or_create(&OutcomeLabels {
                    route: self.label.clone(),
                    target: target.name.clone(),
                    outcome: "refused",
                })
                .inc();
        }
        refused
    }

    /// The class of an earlier failure that rules `target` out (a context-length failure
    /// rules out windows no larger; an auth failure rules out the same credentials).
    fn ruled_out_by(&self, order: &[&Target], target: &Target) -> Option<FailureClass> {
        self.tried.iter().find_map(|t| {
            let failed = order.iter().find(|o| o.name == t.target)?;
            (!fallback::still_eligible(t.failure.class, failed, target)).then_some(t.failure.class)
        })
    }

    /// Tries one target, retrying it as the plan allows. `Ok` is the response to send;
    /// `Err(None)` moves on to the next target; `Err(Some(Stop))` ends the request with the
    /// last failure.
    async fn try_target(
        &mut self,
        target: &Target,
        primary: bool,
        others_left: bool,
        budget: &retry::Budget,
    ) -> Result<Response<Body>, Option<Stop>> {
        let breaker = self
            .proxy
            .table
            .breakers
            .get(&target.upstream, self.route.breaker);
        let mut retries = 0u32;
        let mut repairs = 0u32;
        // After a contract failure: the request again, with the complaint added.
        let mut repaired: Option<ClientRequest> = None;
        loop {
            // The fleet first (an upstream it skips, a rate-limit window), then the breaker.
            let permit = match self.proxy.table.fleet.gate(&target.upstream) {
                Gate::Go => match breaker.admit() {
                    Admission::Allowed(p) => p,
                    Admission::Refused { .. } => {
                        self.skip(target, Skip::BreakerOpen);
                        return Err(None);
                    }
                },
                Gate::Probe => breaker.admit_probe(),
                Gate::Open(reason) => {
                    self.skip(target, Skip::FleetOpen(reason));
                    return Err(None);
                }
                Gate::RateLimited(until) => {
                    let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
                    // The last option waits for the window to end when the deadline allows;
                    // otherwise the next target serves.
                    if !others_left
                        && Instant::now() + wait + Duration::from_millis(50) < self.deadline
                    {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    self.skip(target, Skip::RateLimited(wait));
                    return Err(None);
                }
            };
            if Instant::now() >= self.deadline {
                self.record_failure(
                    target,
                    Failure::timeout(Phase::Head, "total", self.route.deadlines.total),
                    permit,
                    None,
                );
                return Err(Some(Stop));
            }
            self.attempts += 1;
            let started = Instant::now();
            let span = tracing::info_span!(
                "attempt",
                otel.name = %format!("{} {}", genai::provider_name(target.provider), target.model),
                otel.kind = "client",
                gen_ai.provider.name = genai::provider_name(target.provider),
                gen_ai.request.model = %target.model,
                server.address = target.base_url.host().unwrap_or_default(),
                plumb.target = %target.name,
                plumb.probe = permit.is_probe(),
                http.response.status_code = tracing::field::Empty,
                gen_ai.response.model = tracing::field::Empty,
                plumb.repair = repaired.is_some(),
                plumb.failure_class = tracing::field::Empty,
                plumb.contract = tracing::field::Empty,
                plumb.plan = tracing::field::Empty,
                plumb.breaker = tracing::field::Empty,
                gen_ai.usage.input_tokens = tracing::field::Empty,
                gen_ai.usage.output_tokens = tracing::field::Empty,
            );
            let request = repaired.as_ref().unwrap_or(self.request);
            let result = self.attempt(target, request).instrument(span.clone()).await;
            self.proxy
                .metrics
                .attempt_duration
                .get_or_create(&TargetLabels {
                    route: self.label.clone(),
                    target: target.name.clone(),
                })
                .observe(started.elapsed().as_secs_f64());
            let was_repair = repaired.is_some();
            if let Ok(Answer::Stream { .. }) = &result {
                genai::record_first_chunk(
                    started,
                    &genai::attributes(self.request, target, &self.label),
                );
                self.proxy
                    .metrics
                    .time_to_first_token
                    .get_or_create(&TargetLabels {
                        route: self.label.clone(),
                        target: target.name.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
            }
            let failure = match result {
                Ok(answer) => {
                    span.record("http.response.status_code", answer.status());
                    if self.route.contract.is_some() {
                        span.record("plumb.contract", "passed");
                    }
                    if was_repair {
                        self.count_repair(target, "repaired");
                    }
                    let probe = permit.is_probe();
                    let state = permit.success();
                    span.record("plumb.breaker", state.as_str());
                    self.set_breaker_gauge(target, state);
                    self.report_attempt(target, "ok", started, state, probe, None);
                    self.count_attempt(target, "ok");
                    return Ok(self.respond(target, answer, primary && self.tried.is_empty()));
                }
                Err(f) => f,
            };
            let class = failure.class;
            let plan: Plan = self.route.plans[class.index()];
            let retry_after = failure.retry_after;
            span.record("plumb.failure_class", class.as_str());
            if let Some(status) = failure.status {
                span.record("http.response.status_code", status);
            }
            if was_repair {
                self.count_repair(target, "failed");
            }
            let mut failure = failure;
            let rejected = failure.rejected.take();
            let complaint = failure.message.clone();
            if rejected.is_some() {
                span.record("plumb.contract", complaint.as_str());
            }
            let state = self.record_failure(target, failure, permit, Some(started));
            span.record("plumb.breaker", state.as_str());
            // A contract failure is repaired first, as often as the plan allows: the same
            // target, told what was wrong.
            if let Some(rejected) = rejected
                && repairs < plan.repairs
                && Instant::now() < self.deadline
                && budget.try_retry()
            {
                repairs += 1;
                span.record("plumb.plan", "repair");
                repaired = Some(self.request.with_repair(&rejected, &complaint));
                continue;
            }
            repaired = None;
            let next = self.next(class, &plan, retries, others_left, retry_after, budget);
            span.record(
                "plumb.plan",
                match next {
                    Next::Retry(_) => "retry",
                    Next::Failover => "failover",
                    Next::Stop => "stop",
                },
            );
            drop(span);
            match next {
                Next::Retry(wait) => {
                    retries += 1;
                    tokio::time::sleep(wait).await;
                }
                Next::Failover => return Err(None),
                Next::Stop => return Err(Some(Stop)),
            }
        }
    }

    /// Decides, from the class's plan, what follows a failure.
    fn next(
        &self,
        class: FailureClass,
        plan: &Plan,
        retries: u32,
        others_left: bool,
        retry_after: Option<Duration>,
        budget: &retry::Budget,
    ) -> Next {
        let after_retries = if plan.failover {
            Next::Failover
        } else {
            Next::Stop
        };
        let wants_retry =
            retries < plan.retries && !(plan.retry_only_as_last_option && others_left);
        if !wants_retry {
            return after_retries;
        }
        let Some(wait) = retry::wait_before_retry(
            &plan.backoff,
            retries,
            retry_after,
            Instant::now(),
            self.deadline,
        ) else {
            // The provider's wait does not fit the deadline: moving on beats hammering.
            return after_retries;
        };
        if !budget.try_retry() {
            self.proxy
                .metrics
                .retry_budget_exhausted
                .get_or_create(&RouteLabels {
                    route: self.label.clone(),
                })
                .inc();
            tracing::debug!(route = %self.route.id, %class, "retry budget spent; not retrying");
            return after_retries;
        }
        Next::Retry(wait)
    }

    /// Counts an attempt for the fleet's next report: `outcome` is `ok` or the failure class.
    fn report_attempt(
        &self,
        target: &Target,
        outcome: &str,
        started: Instant,
        breaker: crate::breaker::BreakerState,
        probe: bool,
        retry_after: Option<Duration>,
    ) {
        self.proxy.table.fleet.record(
            &self.route.id.name,
            target,
            fleet::Outcome {
                outcome,
                latency: started.elapsed(),
                breaker,
                cooldown: self.route.breaker.cooldown,
                probe,
                retry_after,
            },
        );
    }

    /// Counts a failed attempt (`started`: when it was sent; `None` when it never was) in the
    /// breaker, the metrics, the fleet's report and the log. Returns the breaker's state after.
    fn record_failure(
        &mut self,
        target: &Target,
        mut failure: Failure,
        permit: Permit,
        started: Option<Instant>,
    ) -> crate::breaker::BreakerState {
        failure.message = redact(
            &failure.message,
            self.policy
                .keys
                .values()
                .chain(self.caller_key.map(Secret::expose)),
        );
        let probe = permit.is_probe();
        let state = permit.failure(failure.class);
        self.set_breaker_gauge(target, state);
        if let Some(started) = started {
            let class = failure.class.as_str();
            self.report_attempt(target, class, started, state, probe, failure.retry_after);
        }
        self.count_attempt(target, failure.class.as_str());
        tracing::warn!(
            route = %self.route.id,
            target = %target.name,
            class = %failure.class,
            status = failure.status,
            message = %failure.message,
            "attempt failed"
        );
        self.tried.push(Tried {
            target: target.name.clone(),
            failure,
        });
        state
    }

    fn count_attempt(&self, target: &Target, outcome: &'static str) {
        self.proxy
            .metrics
            .attempts
            .get_or_create(&AttemptLabels {
                route: self.label.clone(),
                target: target.name.clone(),
                outcome,
            })
            .inc();
    }

    fn count_repair(&self, target: &Target, outcome: &'static str) {
        self.proxy
            .metrics
            .repairs
            .get_or_create(&OutcomeLabels {
                route: self.label.clone(),
                target: target.name.clone(),
                outcome,
            })
            .inc();
    }

    /// Checks what an answer says: the model it names, then the route's contract. A
    /// contract failure carries the rejected answer, for a repair.
    fn verify(&self, target: &Target, collected: Collected) -> Result<(), Failure> {
        self.verify_model(target, &collected)?;
        verify::check(self.route, self.request, self.request_schema, &collected).map_err(|v| {
            self.count_contract_failure(target, &v);
            let mut f = Failure::new(v.class, Phase::Body, v.to_string());
            f.rejected = Some(Box::new(collected));
            f
        })
    }

    fn count_contract_failure(&self, target: &Target, v: &plumb_policy::contract::Violation) {
        self.proxy
            .metrics
            .contract_failures
            .get_or_create(&ContractLabels {
                route: self.label.clone(),
                target: target.name.clone(),
                class: v.class.as_str(),
                check: v.check.clone(),
            })
            .inc();
        tracing::warn!(route = %self.route.id, target = %target.name, class = %v.class,
            check = %v.check, "the answer broke the route's contract");
    }

    /// Records the model an answer names and, when the route says so, fails an answer from a
    /// substituted model.
    fn verify_model(&self, target: &Target, collected: &Collected) -> Result<(), Failure> {
        let span = tracing::Span::current();
        if let Some(m) = &collected.model {
            span.record("gen_ai.response.model", m.as_str());
        }
        if let Some(named) = verify::substituted(target, collected) {
            self.proxy
                .metrics
                .model_substitutions
                .get_or_create(&TargetLabels {
                    route: self.label.clone(),
                    target: target.name.clone(),
                })
                .inc();
            tracing::warn!(route = %self.route.id, target = %target.name, asked = %target.model,
                answered = %named, "the answer names another model than the target was asked for");
            let fail = self
                .route
                .contract
                .as_ref()
                .is_some_and(|c| c.model_substitution == ModelSubstitution::Fail);
            if fail {
                return Err(Failure::new(
                    FailureClass::ModelSubstituted,
                    Phase::Body,
                    format!(
                        "the target was asked for model {:?} and answered as {named:?}",
                        target.model
                    ),
                ));
            }
        }
        Ok(())
    }

    fn set_breaker_gauge(&self, target: &Target, state: crate::breaker::BreakerState) {
        self.proxy
            .metrics
            .breaker_state
            .get_or_create(&TargetLabels {
                route: self.label.clone(),
                target: target.name.clone(),
            })
            .set(state.gauge());
    }

    /// One attempt on one target: send, wait for the head, and verify the body (or a stream's
    /// first event) before anything reaches the client.
    async fn attempt(&self, target: &Target, request: &ClientRequest) -> Result<Answer, Failure> {
        let d = &self.route.deadlines;
        let start = Instant::now();
        let key = self.policy.keys.for_target(target, self.caller_key);
        let body = request
            .body_for(target)
            .map_err(|e| Failure::new(FailureClass::BadRequest, Phase::Head, e.to_string()))?;
        let req = upstream::request(target, self.request.operation, body, key, self.headers)
            .map_err(|e| {
                Failure::new(
                    FailureClass::BadRequest,
                    Phase::Head,
                    format!("the upstream request could not be built: {e}"),
                )
            })?;
        let mut req = req;
        upstream::trace_context::propagate(
            &tracing::Span::current(),
            self.headers,
            req.headers_mut(),
        );
        let (head, body) = successful_head(
            &self.proxy.upstreams,
            req,
            d,
            self.deadline.min(start + d.first_byte),
            Some(self.deadline),
        )
        .await?;
        if self.request.stream {
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
            let first_deadline = self.deadline.min(start + d.first_token);
            // A contract checked before commit holds the whole answer.
            let whole = self
                .route
                .contract
                .as_ref()
                .is_some_and(|c| c.streams == StreamCheck::BeforeCommit);
            let until_end = whole.then_some(self.deadline);
            let (first, rest) =
                hold(body, first_deadline, d, &self.route.streaming, until_end).await?;
            let mut collector = StreamCollector::new(Api::of(target.provider));
            collector.push_bytes(&first);
            let collected = collector.into_collected();
            if whole {
                self.verify(target, collected)?;
            } else {
                // Only the model is known yet; the contract runs at the end of the stream.
                let model_only = Collected {
                    model: collected.model,
                    ..Collected::default()
                };
                self.verify_model(target, &model_only)?;
            }
            return Ok(Answer::Stream { head, first, rest });
        }
        let body = match read_body(body, MAX_RESPONSE_BYTES, self.deadline).await {
            Ok(b) => b,
            Err(ReadError::Deadline) => {
                return Err(Failure::timeout(Phase::Body, "total", d.total));
            }
            Err(ReadError::Body(msg)) => {
                return Err(Failure::new(
                    FailureClass::MalformedResponse,
                    Phase::Body,
                    format!("the response body ended early: {msg}"),
                ));
            }
        };
        let value = classify::success_body(Api::of(target.provider), request.operation, &body)?;
        if request.operation == Operation::Chat {
            self.verify(target, verify::whole(Api::of(target.provider), &value))?;
        }
        let usage = genai::usage(&value);
        if let Some((input, output)) = usage {
            let span = tracing::Span::current();
            span.record("gen_ai.usage.input_tokens", input);
            span.record("gen_ai.usage.output_tokens", output);
        }
        Ok(Answer::Whole { head, body, usage })
    }

    fn respond(&self, target: &Target, answer: Answer, primary: bool) -> Response<Body> {
        let route_name = self.label.clone();
        let failures: Vec<FailureClass> = self.tried.iter().map(|t| t.failure.class).collect();
        self.proxy
            .count_request(&route_name, self.request.api, "ok");
        if !self.tried.is_empty() || !primary {
            self.proxy
                .metrics
                .fallback_served
                .get_or_create(&TargetLabels {
                    route: route_name.clone(),
                    target: target.name.clone(),
                })
                .inc();
        }
        let equivalence =
            crate::equivalence::header(self.route, &self.proxy.table.certifications, target);
        if !self.route.is_primary_grade(target) {
            self.proxy
                .metrics
                .failover_equivalence
                .get_or_create(&OutcomeLabels {
                    route: route_name.clone(),
                    target: target.name.clone(),
                    outcome: match equivalence.split(';').next().unwrap_or("") {
                        "certified" => "certified",
                        "uncertified" => "uncertified",
                        _ => "not_required",
                    },
                })
                .inc();
            if equivalence.starts_with("uncertified") {
                self.proxy
                    .table
                    .fleet
                    .uncertified_failover(&self.route.id.name, target);
            }
        }
        tracing::Span::current().record("plumb.equivalence", equivalence.as_str());
        let account = Account {
            route: Some(&route_name),
            served_by: Some(&target.name),
            attempts: self.attempts,
            failures: &failures,
            equivalence: Some(&equivalence),
        };
        let (head, body) = match answer {
            Answer::Whole { head, body, usage } => {
                let attrs = genai::attributes(self.request, target, &self.label);
                genai::record_tokens(usage, &attrs);
                genai::record_duration(self.started, &attrs, None);
                if let Some(sampler) = self.sampler(target, primary) {
                    sampler.start_with_body(&body);
                }
                let body = match (Api::of(target.provider), self.request.api) {
                    (Api::Anthropic, Api::Openai) => {
                        translated(&body, |v| answer::anthropic_to_openai(v, unix_now()))
                    }
                    (Api::Openai, Api::Anthropic) => translated(&body, answer::openai_to_anthropic),
                    (Api::Openai, Api::Openai) | (Api::Anthropic, Api::Anthropic) => body,
                };
                (head, respond::full(body))
            }
            Answer::Stream { head, first, rest } => {
                genai::record_duration(
                    self.started,
                    &genai::attributes(self.request, target, &self.label),
                    None,
                );
                let sampler = self.sampler(target, primary);
                let metrics = self.proxy.metrics.clone();
                let labels = TargetLabels {
                    route: route_name.clone(),
                    target: target.name.clone(),
                };
                let options = RelayOptions {
                    api: self.request.api,
                    target: target.name.clone(),
                    translator: Translator::new(
                        Api::of(target.provider),
                        self.request.api,
                        self.request.include_usage(),
                        unix_now(),
                    ),
                    malformed: self.route.streaming.malformed,
                    idle: self.route.deadlines.stream_idle,
                    max: self.route.deadlines.stream_max,
                    resume: self
                        .route
                        .streaming
                        .continuation
                        .then(|| self.resumer(target)),
                    include_usage: self.request.include_usage(),
                    created: unix_now(),
                    after_commit: self.after_commit(target),
                    collect: sampler.is_some(),
                    on_usage: Some(Box::new({
                        let attrs = genai::attributes(self.request, target, &self.label);
                        move |tokens| genai::record_tokens(Some(tokens), &attrs)
                    })),
                };
                let relay = Relay::new(options, first, rest, move |end| match end {
                    StreamEnd::Interrupted { reason, bytes } => {
                        metrics.streams_interrupted.get_or_create(&labels).inc();
                        tracing::warn!(route = %labels.route, target = %labels.target, reason, bytes, "stream interrupted after commit");
                    }
                    StreamEnd::Rejected { violation, bytes } => {
                        metrics
                            .contract_failures
                            .get_or_create(&ContractLabels {
                                route: labels.route.clone(),
                                target: labels.target.clone(),
                                class: violation.class.as_str(),
                                check: violation.check.clone(),
                            })
                            .inc();
                        tracing::warn!(route = %labels.route, target = %labels.target,
                            class = %violation.class, check = %violation.check, bytes,
                            "a streamed answer broke the contract after commit; it ended with an error event");
                    }
                    StreamEnd::Completed { answer, .. } => {
                        if let (Some(sampler), Some(answer)) = (sampler, answer) {
                            sampler.start(answer);
                        }
                    }
                    StreamEnd::ClientGone { .. } => {}
                });
                (head, http_body_util::combinators::BoxBody::new(relay))
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        let h = resp.headers_mut();
        for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
            if let Some(v) = head.headers.get(&name) {
                h.insert(name, v.clone());
            }
        }
        for name in ["x-request-id", "request-id"] {
            if let Some(v) = head.headers.get(name) {
                h.insert(name, v.clone());
            }
        }
        respond::account(h, &account);
        resp
    }

    /// A shadow sampler, when this answer came from the primary's group without a failure and
    /// the route samples it.
    fn sampler(&self, target: &Target, primary: bool) -> Option<shadow::Sampler> {
        if !(primary && self.route.is_primary_grade(target)) {
            return None;
        }
        shadow::Sampler::pick(shadow::Offer {
            proxy: self.proxy,
            policy: self.policy,
            route: self.route,
            request: self.request,
            headers: self.headers,
            primary: target,
        })
    }

    /// The contract check of a stream checked after commit, if the route has one.
    fn after_commit(&self, target: &Target) -> Option<crate::stream::AfterCommit> {
        let contract = self.route.contract.as_ref()?;
        if contract.streams != StreamCheck::AfterCommit {
            return None;
        }
        let route = self.route.clone();
        let request = self.request.clone();
        let schema = self.request_schema.cloned();
        Some(crate::stream::AfterCommit {
            collector: StreamCollector::new(Api::of(target.provider)),
            check: Box::new(move |answer| verify::check(&route, &request, schema.as_ref(), answer)),
        })
    }

    /// What continues this request's stream on another target if it is cut after commit.
    fn resumer(&self, failed: &Target) -> crate::stream::Resume {
        let job = Continuation {
            proxy: self.proxy.clone(),
            policy: self.policy.clone(),
            route: self.route.clone(),
            request: self.request.clone(),
            headers: self.headers.clone(),
            caller_key: self.caller_key.cloned(),
            failed: failed.name.clone(),
        };
        Box::new(move |text: String| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = tx.send(job.run(text).await);
            });
            rx
        })
    }

    /// The error for a request that got no answer: the class of the last failure decides the
    /// status; the message names every target tried or skipped and the providers' own words.
    fn fail(&self) -> Response<Body> {
        let route_name = self.label.clone();
        let failures: Vec<FailureClass> = self.tried.iter().map(|t| t.failure.class).collect();
        let mut parts: Vec<String> = self
            .tried
            .iter()
            .map(|t| match t.failure.status {
                Some(s) => format!(
                    "{}: {} (HTTP {s}: {})",
                    t.target, t.failure.class, t.failure.message
                ),
                None => format!("{}: {} ({})", t.target, t.failure.class, t.failure.message),
            })
            .collect();
        parts.extend(
            self.skipped
                .iter()
                .map(|(name, why)| format!("{name}: skipped ({why})")),
        );
        let (status, code) = match self.tried.last() {
            Some(last) => {
                let passthrough = self.route.targets.iter().any(|t| {
                    t.name == last.target && t.credentials == plumb_policy::Credentials::Passthrough
                });
                (
                    respond::client_status(last.failure.class, self.request.api, passthrough),
                    last.failure.class.as_str(),
                )
            }
            None => untried_status(&self.skipped),
        };
        let summary = if self.tried.is_empty() {
            "no target of the route could take the request"
        } else {
            "no target of the route could answer"
        };
        let message = format!(
            "plumb: {summary} (route {route_name}, model {:?}): {}",
            self.request.model,
            if parts.is_empty() {
                "no targets".to_owned()
            } else {
                parts.join("; ")
            }
        );
        self.proxy.count_request(
            &route_name,
            self.request.api,
            failures
                .last()
                .map_or("no_target_available", |c| c.as_str()),
        );
        genai::record_duration(
            self.started,
            &genai::request_attributes(self.request, &route_name),
            Some(code),
        );
        let mut resp = respond::error(self.request.api, status, code, &message);
        if let Some(wait) = self.tried.last().and_then(|t| t.failure.retry_after)
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        respond::account(
            resp.headers_mut(),
            &Account {
                route: Some(&route_name),
                served_by: None,
                attempts: self.attempts,
                failures: &failures,
                equivalence: None,
            },
        );
        resp
    }
}

/// The status when no target was even tried: the request needs what no target offers (the
/// caller's to change), or every target is unavailable.
fn untried_status(skipped: &[(String, Skip)]) -> (StatusCode, &'static str) {
    let all = |f: fn(&Skip) -> bool| !skipped.is_empty() && skipped.iter().all(|(_, s)| f(s));
    if all(|s| matches!(s, Skip::ContextWindow { .. })) {
        return (
            StatusCode::BAD_REQUEST,
            FailureClass::ContextLength.as_str(),
        );
    }
    if all(|s| matches!(s, Skip::NoCallerKey)) {
        return (StatusCode::UNAUTHORIZED, "missing_api_key");
    }
    let unfit = |s: &Skip| match s {
        Skip::Untranslatable(_)
        | Skip::Tools
        | Skip::JsonSchema
        | Skip::Vision
        | Skip::Prefill
        | Skip::ContextWindow { .. } => true,
        Skip::NoCallerKey
        | Skip::BreakerOpen
        | Skip::FleetOpen(_)
        | Skip::RateLimited(_)
        | Skip::RuledOut(_)
        | Skip::Downgrade
        | Skip::Uncertified(_) => false,
    };
    if all(unfit) {
        return (StatusCode::BAD_REQUEST, "no_capable_target");
    }
    if all(|s| matches!(s, Skip::RateLimited(_))) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            FailureClass::RateLimited.as_str(),
        );
    }
    if skipped
        .iter()
        .any(|(_, s)| matches!(s, Skip::Downgrade | Skip::Uncertified(_)))
        && skipped.iter().all(|(_, s)| {
            matches!(
                s,
                Skip::Downgrade
                    | Skip::Uncertified(_)
                    | Skip::BreakerOpen
                    | Skip::FleetOpen(_)
                    | Skip::RateLimited(_)
                    | Skip::RuledOut(_)
            )
        })
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "no_equivalent_target");
    }
    (StatusCode::SERVICE_UNAVAILABLE, "no_target_available")
}

/// Sends an attempt and waits for a successful response head: a timeout, a transport error or
/// an error status (read and classified) is the attempt's failure. `head_deadline` bounds the
/// wait; when it is the request's `total` deadline (`Some`), a timeout is reported as such.
async fn successful_head(
    upstreams: &Upstreams,
    req: Request<http_body_util::Full<Bytes>>,
    d: &plumb_policy::Deadlines,
    head_deadline: Instant,
    total_deadline: Option<Instant>,
) -> Result<(http::response::Parts, Incoming), Failure> {
    let resp = match tokio::time::timeout_at(head_deadline, upstreams.send(req, d.connect)).await {
        Err(_) if total_deadline == Some(head_deadline) => {
            return Err(Failure::timeout(Phase::Head, "total", d.total));
        }
        Err(_) => return Err(Failure::timeout(Phase::Head, "first-byte", d.first_byte)),
        Ok(Err(e)) => return Err(classify::transport(&e)),
        Ok(Ok(resp)) => resp,
    };
    let (head, body) = resp.into_parts();
    if !head.status.is_success() {
        let bytes = read_body(
            body,
            MAX_ERROR_BYTES,
            total_deadline.unwrap_or(head_deadline),
        )
        .await
        .unwrap_or_default();
        return Err(classify::status(
            head.status.as_u16(),
            &head.headers,
            &bytes,
        ));
    }
    Ok((head, body))
}

/// One whole request to `target` outside a client's request (shadow samples and the
/// comparison's helper calls): the head within the first-byte deadline, the body within the
/// total deadline, checked like any answer (`malformed_response` otherwise).
pub(crate) async fn call_whole(
    upstreams: &Upstreams,
    target: &Target,
    op: Operation,
    body: Bytes,
    key: Option<&Secret>,
    headers: &HeaderMap,
    d: &plumb_policy::Deadlines,
) -> Result<serde_json::Value, Failure> {
    let start = Instant::now();
    let req = upstream::request(target, op, body, key, headers).map_err(|e| {
        Failure::new(
            FailureClass::BadRequest,
            Phase::Head,
            format!("the upstream request could not be built: {e}"),
        )
    })?;
    let deadline = start + d.total;
    let (_, body) = successful_head(
        upstreams,
        req,
        d,
        deadline.min(start + d.first_byte),
        Some(deadline),
    )
    .await?;
    let bytes = read_body(body, MAX_RESPONSE_BYTES, deadline)
        .await
        .map_err(|e| match e {
            ReadError::Deadline => Failure::timeout(Phase::Body, "total", d.total),
            ReadError::Body(msg) => Failure::new(FailureClass::MalformedResponse, Phase::Body, msg),
        })?;
    classify::success_body(Api::of(target.provider), op, &bytes)
}

/// A whole answer in the other family's shape (the body was checked to be JSON already).
fn translated(body: &Bytes, f: impl Fn(&serde_json::Value) -> serde_json::Value) -> Bytes {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => Bytes::from(f(&v).to_string()),
        Err(_) => body.clone(),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A continuation of a cut stream: the request again, with the text already sent as a
/// prefill, on a target that declares prefill support.
struct Continuation {
    proxy: Arc<Proxy>,
    policy: Arc<Policy>,
    route: Arc<Route>,
    request: ClientRequest,
    headers: HeaderMap,
    caller_key: Option<Secret>,
    failed: String,
}

impl Continuation {
    async fn run(self, text: String) -> Option<crate::stream::Resumed> {
        let route = &self.route;
        let d = route.deadlines;
        let last = match &route.last_resort {
            LastResort::Target(t) => Some(t.as_ref()),
            LastResort::FailFast | LastResort::WaitForHalfOpen => None,
        };
        let candidates = route.targets.iter().chain(last).filter(|t| {
            t.name != self.failed
                && t.capabilities.prefill
                && crate::equivalence::gate(route, &self.proxy.table.certifications, t).is_ok()
                && fallback::unfit(t, &self.request, self.caller_key.is_some()).is_none()
        });
        for target in candidates {
            if self.proxy.table.fleet.gate(&target.upstream) != crate::fleet::Gate::Go {
                continue;
            }
            let breaker = self
                .proxy
                .table
                .breakers
                .get(&target.upstream, route.breaker);
            let Admission::Allowed(permit) = breaker.admit() else {
                continue;
            };
            let Ok(body) = self.request.continuation_body_for(target, &text) else {
                continue;
            };
            let key = self
                .policy
                .keys
                .for_target(target, self.caller_key.as_ref());
            let Ok(req) = upstream::request(target, Operation::Chat, body, key, &self.headers)
            else {
                continue;
            };
            let start = Instant::now();
            let result = async {
                let (_, body) =
                    successful_head(&self.proxy.upstreams, req, &d, start + d.first_byte, None)
                        .await?;
                hold(body, start + d.first_token, &d, &route.streaming, None).await
            }
            .await;
            let labels = AttemptLabels {
                route: route.id.to_string(),
                target: target.name.clone(),
                outcome: "ok",
            };
            match result {
                Ok((held, rest)) => {
                    permit.success();
                    self.proxy.metrics.attempts.get_or_create(&labels).inc();
                    return Some(crate::stream::Resumed {
                        body: rest,
                        held,
                        family: Api::of(target.provider),
                        target: target.name.clone(),
                    });
                }
                Err(f) => {
                    tracing::warn!(route = %route.id, target = %target.name, class = %f.class,
                        message = %redact(&f.message, self.policy.keys.values()), "continuation attempt failed");
                    permit.failure(f.class);
                    self.proxy
                        .metrics
                        .attempts
                        .get_or_create(&AttemptLabels {
                            outcome: f.class.as_str(),
                            ..labels
                        })
                        .inc();
                }
            }
        }
        None
    }
}

/// Marker: stop trying targets.
struct Stop;

enum ReadError {
    Deadline,
    Body(String),
}

async fn read_body(body: Incoming, limit: usize, deadline: Instant) -> Result<Bytes, ReadError> {
    match tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await {
        Err(_) => Err(ReadError::Deadline),
        Ok(Err(e)) => Err(ReadError::Body(e.to_string())),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
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
    mut body: Incoming,
    first_token_deadline: Instant,
    d: &plumb_policy::Deadlines,
    s: &plumb_policy::Streaming,
    until_end: Option<Instant>,
) -> Result<(Bytes, Incoming), Failure> {
    let limit = if until_end.is_some() {
        MAX_RESPONSE_BYTES
    } else {
        MAX_FIRST_EVENT_BYTES
    };
    let mut buf = BytesMut::new();
    let mut checked = 0;
    // Set when the first token arrives: (when the hold ends, events held since).
    let mut holding: Option<(Instant, u32)> = None;
    let mut finished = false;
    loop {
        while let Some(end) = find_event_end(&buf[checked..]) {
            let event = classify::stream_event(&buf[checked..checked + end]);
            checked += end;
            let kind = match event {
                Ok(kind) => kind,
                Err(f)
                    if f.class == FailureClass::MalformedResponse
                        && s.malformed == plumb_policy::MalformedEvents::Skip
                        && holding.is_some() =>
                {
                    continue;
                }
                Err(f) => return Err(f),
            };
            match (kind, &mut holding) {
                (classify::StreamEvent::Preamble, None) => {}
                (classify::StreamEvent::Content | classify::StreamEvent::End, None) => {
                    holding = Some((Instant::now() + s.hold_for, 0));
                }
                (
                    classify::StreamEvent::Preamble
                    | classify::StreamEvent::Content
                    | classify::StreamEvent::End,
                    Some((_, n)),
                ) => *n += 1,
            }
            finished |= kind == classify::StreamEvent::End;
        }
        if let Some((until, events)) = holding {
            // A zero holdFor sets no time limit: the events and bytes do.
            let timed_out = !s.hold_for.is_zero() && Instant::now() >= until;
            let held_enough = until_end.is_none()
                && (events >= s.hold_events || buf.len() >= s.hold_bytes as usize || timed_out);
            if finished || held_enough {
                return Ok((buf.freeze(), body));
            }
        }
        if buf.len() > limit {
            return Err(Failure::new(
                FailureClass::MalformedResponse,
                Phase::Body,
                if until_end.is_some() {
                    "the streamed answer held for the contract is larger than 64 MiB"
                } else {
                    "more than 1 MiB of stream arrived before the first token"
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
                        classify::root_cause(&e)
                    ),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
}

/// The end of the first SSE event in `buf` (after its blank line), if complete.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_boundaries_in_both_line_endings() {
        assert_eq!(find_event_end(b"data: x\n\ndata: y"), Some(9));
        assert_eq!(find_event_end(b"data: x\r\n\r\n"), Some(11));
        assert_eq!(find_event_end(b"data: x\n"), None);
    }
}
