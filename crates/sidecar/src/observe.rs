//! The observer: every attempt's and every request's outcome is one typed record, and the
//! metrics, span fields, log lines, fleet report and what is learned of each upstream (its
//! timings, how its streams ended) are all derived from it here, at one call site per record. Nothing reads its own response headers back to learn what happened.
//!
//! Metric handles are resolved once per route and target ([`RouteHandles`], built when a
//! policy is applied) and kept, so the request path does not format label strings or look up
//! metric families on every attempt.

use std::collections::HashSet;
use std::sync::OnceLock;

use parking_lot::Mutex;
use std::time::Duration;

use plumb_policy::{FailureClass, Route, Target};
use plumb_telemetry::{
    AttemptLabels, ContractLabels, Metrics, OutcomeLabels, RequestLabels, RouteLabels, TargetLabels,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Instant;
use tracing::Span;

use crate::attempt::Kind;
use crate::breaker::BreakerState;
use crate::classify::Failure;
use crate::equivalence::Verdict;
use crate::fallback::Skip;
use crate::fleet;
use crate::genai;
use crate::payload::{Api, ClientRequest};
use crate::plan::{Interruption, Next};

/// `ok`, then one outcome per failure class.
const ATTEMPT_OUTCOMES: usize = 1 + FailureClass::ALL.len();
/// `ok`, one per failure class, and `no_target_available`.
const REQUEST_OUTCOMES: usize = 2 + FailureClass::ALL.len();
/// Distinct answered models warned about per target, at most (the rest are only counted).
const MAX_SUBSTITUTIONS_WARNED: usize = 16;

/// A route's metric handles, resolved once.
#[derive(Debug)]
pub struct RouteHandles {
    label: String,
    request_duration: OnceLock<Histogram>,
    budget_exhausted: OnceLock<Counter>,
    /// By client API (OpenAI, Anthropic) and request outcome.
    requests: [[OnceLock<Counter>; REQUEST_OUTCOMES]; 3],
    targets: Vec<TargetHandles>,
}

/// A route target's metric handles, resolved at first use.
#[derive(Debug)]
struct TargetHandles {
    name: String,
    attempts: [OnceLock<Counter>; ATTEMPT_OUTCOMES],
    attempt_duration: OnceLock<Histogram>,
    time_to_first_token: OnceLock<Histogram>,
    breaker_state: OnceLock<Gauge>,
    fallback_served: OnceLock<Counter>,
    streams_interrupted: OnceLock<Counter>,
    /// Answered models already warned about, so a provider that always answers with an alias
    /// writes one line, not one per request.
    substitutions_warned: Mutex<HashSet<String>>,
}

impl TargetHandles {
    fn new(name: &str) -> TargetHandles {
        TargetHandles {
            name: name.to_owned(),
            attempts: std::array::from_fn(|_| OnceLock::new()),
            attempt_duration: OnceLock::new(),
            time_to_first_token: OnceLock::new(),
            breaker_state: OnceLock::new(),
            fallback_served: OnceLock::new(),
            streams_interrupted: OnceLock::new(),
            substitutions_warned: Mutex::new(HashSet::new()),
        }
    }

    /// Whether an answer naming `model` is the first of its kind to be warned about.
    fn first_substitution(&self, model: &str) -> bool {
        let mut warned = self.substitutions_warned.lock();
        warned.len() < MAX_SUBSTITUTIONS_WARNED
            && !warned.contains(model)
            && warned.insert(model.to_owned())
    }
}

impl RouteHandles {
    /// The handles of `route`'s metrics (none is created before it is first used).
    pub fn new(route: &Route) -> RouteHandles {
        RouteHandles {
            label: route.id.to_string(),
            request_duration: OnceLock::new(),
            budget_exhausted: OnceLock::new(),
            requests: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            targets: route
                .all_targets()
                .map(|t| TargetHandles::new(&t.name))
                .collect(),
        }
    }

    /// `namespace/name`, the route's label everywhere.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn target(&self, name: &str) -> Option<&TargetHandles> {
        self.targets.iter().find(|t| t.name == name)
    }
}

/// How one attempt ended, as far as it went.
#[derive(Debug)]
pub enum AttemptOutcome<'a> {
    /// A whole answer that passed every check.
    Answered {
        /// Input and output tokens, as the provider counted them.
        usage: Option<(u64, u64)>,
    },
    /// A stream committed to the client; how it ends is recorded by [`StreamRecord`].
    Committed,
    /// It failed.
    Failed(&'a Failure),
}

/// One attempt.
#[derive(Debug)]
pub struct AttemptRecord<'a> {
    /// The target tried.
    pub target: &'a Target,
    /// Why it was made.
    pub kind: Kind,
    /// Whether it was a breaker's or the fleet's probe.
    pub probe: bool,
    /// From sending to the response head, the stream's commit, or the failure.
    pub latency: Duration,
    /// The upstream's status, when a head arrived.
    pub status: Option<u16>,
    /// The model the answer named.
    pub model: Option<&'a str>,
    /// When the answer named another model than the target was asked for.
    pub substituted: Option<&'a str>,
    /// How it went.
    pub outcome: AttemptOutcome<'a>,
    /// The upstream's breaker after it.
    pub breaker: BreakerState,
    /// What the planner decided next, after a failure.
    pub next: Option<Next>,
    /// From sending to a stream's response head, when one came.
    pub head: Option<Duration>,
}

/// How a committed stream ended, for the target that was streaming it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settlement {
    /// The answer was complete.
    Completed,
    /// It was interrupted (and maybe continued by another target).
    Interrupted(Interruption),
    /// The complete answer broke the route's contract after commit.
    Rejected {
        /// `schema_violation` or `out_of_bounds`.
        class: FailureClass,
        /// The check that failed.
        check: String,
    },
    /// The client went away first: nothing is known of the upstream.
    ClientGone,
}

impl Settlement {
    /// The failure it counts as against the upstream, if any.
    pub fn failure(&self) -> Option<FailureClass> {
        match self {
            Settlement::Completed | Settlement::ClientGone => None,
            Settlement::Interrupted(_) => Some(FailureClass::StreamInterrupted),
            Settlement::Rejected { class, .. } => Some(*class),
        }
    }
}

/// The end of one target's part of a committed stream.
#[derive(Debug)]
pub struct StreamRecord<'a> {
    /// The target.
    pub target: &'a Target,
    /// How it ended.
    pub settlement: &'a Settlement,
    /// Bytes relayed to the client in all.
    pub bytes: u64,
    /// The attempt's latency to commit.
    pub latency: Duration,
    /// Whether it was a probe.
    pub probe: bool,
    /// The upstream's breaker after it.
    pub breaker: BreakerState,
}

/// How a client request ended.
#[derive(Debug)]
pub enum RequestOutcome<'a> {
    /// A target answered (a stream: it was committed).
    Served {
        /// Who.
        target: &'a Target,
        /// What equivalence says of it.
        verdict: Verdict,
        /// Whether another target failed first or the answering one is not the first choice.
        failed_over: bool,
    },
    /// No target could answer: the client got this error code.
    Failed {
        /// The class of the last failure, or why nothing was tried.
        code: &'a str,
    },
}

/// One client request.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    /// When it arrived.
    pub started: Instant,
    /// Attempts made.
    pub attempts: u32,
    /// Classes of the failed attempts, in order.
    pub failures: &'a [FailureClass],
    /// How it ended.
    pub outcome: RequestOutcome<'a>,
}

/// Derives every signal of one request's records.
pub struct Observer<'a> {
    /// The metrics.
    pub metrics: &'a Metrics,
    /// The fleet's report, the breakers and what was learned of each upstream.
    pub table: &'a crate::table::Table,
    /// The route.
    pub route: &'a Route,
    /// Its handles.
    pub handles: &'a RouteHandles,
}

/// The span of one attempt, with every field the observer fills later.
pub fn attempt_span(target: &Target, kind: Kind, probe: bool) -> Span {
    tracing::info_span!(
        "attempt",
        otel.name = %format!("{} {}", genai::provider_name(target.provider), target.model),
        otel.kind = "client",
        gen_ai.provider.name = genai::provider_name(target.provider),
        gen_ai.request.model = %target.model,
        server.address = target.base_url.host().unwrap_or_default(),
        plumb.target = %target.name,
        plumb.attempt = kind.as_str(),
        plumb.probe = probe,
        plumb.repair = kind == Kind::Repair,
        http.response.status_code = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        plumb.failure_class = tracing::field::Empty,
        plumb.contract = tracing::field::Empty,
        plumb.plan = tracing::field::Empty,
        plumb.breaker = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
    )
}

/// What every attempt's span says of the answer's head: its status and the model it named.
fn record_head(span: &Span, r: &AttemptRecord<'_>) {
    if let Some(status) = r.status {
        span.record("http.response.status_code", status);
    }
    if let Some(m) = r.model {
        span.record("gen_ai.response.model", m);
    }
}

fn attempt_outcome_index(class: Option<FailureClass>) -> usize {
    class.map_or(0, |c| 1 + c.index())
}

fn outcome_name(class: Option<FailureClass>) -> &'static str {
    class.map_or("ok", FailureClass::as_str)
}

impl Observer<'_> {
    fn target_handles(&self, target: &Target) -> Option<&TargetHandles> {
        self.handles.target(&target.name)
    }

    fn target_labels(&self, target: &Target) -> TargetLabels {
        TargetLabels {
            route: self.handles.label.clone(),
            target: target.name.clone(),
        }
    }

    /// A target-scoped handle, resolved once (or, for a target the handles do not know — a
    /// policy applied after the request started — looked up each time).
    fn handle<M: Clone>(
        &self,
        target: &Target,
        cell: impl Fn(&TargetHandles) -> &OnceLock<M>,
        resolve: impl Fn() -> M,
    ) -> M {
        match self.target_handles(target) {
            Some(h) => cell(h).get_or_init(resolve).clone(),
            None => resolve(),
        }
    }

    fn count_attempt(&self, target: &Target, class: Option<FailureClass>) {
        let i = attempt_outcome_index(class);
        self.handle(
            target,
            |h| &h.attempts[i],
            || {
                self.metrics
                    .attempts
                    .get_or_create(&AttemptLabels {
                        route: self.handles.label.clone(),
                        target: target.name.clone(),
                        outcome: outcome_name(class),
                    })
                    .clone()
            },
        )
        .inc();
    }

    fn set_breaker(&self, target: &Target, state: BreakerState) {
        self.handle(
            target,
            |h| &h.breaker_state,
            || {
                self.metrics
                    .breaker_state
                    .get_or_create(&self.target_labels(target))
                    .clone()
            },
        )
        .set(state.gauge());
    }

    fn report(&self, target: &Target, class: Option<FailureClass>, r: fleet::Outcome) {
        self.table
            .fleet
            .record(&self.route.id.name, target, class, r);
    }

    /// One attempt: its span's fields, its metrics, its log line and its fleet report.
    pub fn attempt(&self, span: &Span, r: &AttemptRecord<'_>, request: &ClientRequest) {
        match r.kind {
            // A shadow sample is off the request path: its span and the tokens it spent, but
            // it counts for no attempt metric, breaker or fleet report (its verdict has
            // `plumb_shadow_comparisons_total`).
            Kind::Shadow => return self.shadow(span, r, request),
            Kind::First
            | Kind::Retry
            | Kind::Failover
            | Kind::Repair
            | Kind::Probe
            | Kind::Continuation => {}
        }
        let target = r.target;
        record_head(span, r);
        span.record("plumb.breaker", r.breaker.as_str());
        self.handle(
            target,
            |h| &h.attempt_duration,
            || {
                self.metrics
                    .attempt_duration
                    .get_or_create(&self.target_labels(target))
                    .clone()
            },
        )
        .observe(r.latency.as_secs_f64());
        self.set_breaker(target, r.breaker);
        if let Some(named) = r.substituted {
            self.substituted(target, named);
        }
        if r.kind == Kind::Repair {
            let outcome = match r.outcome {
                AttemptOutcome::Answered { .. } | AttemptOutcome::Committed => "repaired",
                AttemptOutcome::Failed(_) => "failed",
            };
            self.metrics
                .repairs
                .get_or_create(&OutcomeLabels {
                    route: self.handles.label.clone(),
                    target: target.name.clone(),
                    outcome,
                })
                .inc();
        }
        match &r.outcome {
            AttemptOutcome::Answered { usage } => {
                if self
                    .route
                    .contract
                    .as_ref()
                    .is_some_and(|c| c.applies(request.response_schema().is_some()))
                {
                    span.record("plumb.contract", "passed");
                }
                if let Some((input, output)) = usage {
                    // What an unstreamed answer's deadline learns from: its time per token.
                    if !request.stream
                        && let Some(per_token) =
                            self.table
                                .learned
                                .generated(&target.upstream, r.latency, *output)
                    {
                        self.table
                            .fleet
                            .token_time(&self.route.id.name, target, per_token);
                    }
                    span.record("gen_ai.usage.input_tokens", input);
                    span.record("gen_ai.usage.output_tokens", output);
                    genai::record_tokens(
                        Some((*input, *output)),
                        &genai::attributes(request, target, &self.handles.label),
                    );
                }
                self.count_attempt(target, None);
                self.report(
                    target,
                    None,
                    self.fleet_outcome(target, r.latency, r.breaker, r.probe),
                );
            }
            AttemptOutcome::Committed => {
                // A probe passes at commit: the fleet hears it now.
                if r.probe {
                    let o = self.fleet_outcome(target, r.latency, r.breaker, r.probe);
                    self.table.fleet.probe_passed(
                        &self.route.id.name,
                        target,
                        o.breaker,
                        o.cooldown,
                    );
                }
                // What the first-token deadline learns from (with the default hold of no
                // events, commit is the first token).
                self.table.learned.first_token(&target.upstream, r.latency);
                // What a stream's head deadline learns from.
                if let Some(head) = r.head {
                    self.table.learned.stream_head(&target.upstream, head);
                }
                self.table
                    .fleet
                    .first_token(&self.route.id.name, target, r.latency);
                // The stream's outcome is counted when it ends ([`Observer::stream_end`]).
                if self
                    .route
                    .contract
                    .as_ref()
                    .is_some_and(|c| c.applies(request.response_schema().is_some()))
                {
                    span.record("plumb.contract", "passed");
                }
                genai::record_first_chunk_after(
                    r.latency,
                    &genai::attributes(request, target, &self.handles.label),
                );
                self.handle(
                    target,
                    |h| &h.time_to_first_token,
                    || {
                        self.metrics
                            .time_to_first_token
                            .get_or_create(&self.target_labels(target))
                            .clone()
                    },
                )
                .observe(r.latency.as_secs_f64());
            }
            AttemptOutcome::Failed(f) => {
                span.record("plumb.failure_class", f.class.as_str());
                if request.stream && f.phase == crate::classify::Phase::Body {
                    // A stream that broke before commit (inside a hold, or before its first
                    // token) broke all the same: held streams keep being judged.
                    self.table.learned.stream_ended(&target.upstream, true);
                }
                // Cut by a learned deadline: a sample at the time it was given, so the deadline
                // follows a provider that slows down.
                match f.deadline {
                    Some("first-token") => {
                        self.table.learned.cut_at(
                            &target.upstream,
                            &self.route.deadlines,
                            r.latency,
                        );
                    }
                    Some("first-byte") if request.stream => self.table.learned.head_cut_at(
                        &target.upstream,
                        &self.route.deadlines,
                        r.latency,
                    ),
                    _ => {}
                }
                if let Some(check) = &f.check {
                    span.record("plumb.contract", f.message.as_str());
                    self.contract_failure(target, f.class, check);
                }
                if let Some(next) = r.next {
                    span.record("plumb.plan", next.as_str());
                    if next.budget_spent() {
                        self.handles
                            .budget_exhausted
                            .get_or_init(|| {
                                self.metrics
                                    .retry_budget_exhausted
                                    .get_or_create(&RouteLabels {
                                        route: self.handles.label.clone(),
                                    })
                                    .clone()
                            })
                            .inc();
                        tracing::debug!(route = %self.route.id, class = %f.class, "retry budget spent; not retrying");
                    }
                }
                self.count_attempt(target, Some(f.class));
                let mut o = self.fleet_outcome(target, r.latency, r.breaker, r.probe);
                o.retry_after = f.retry_after;
                self.report(target, Some(f.class), o);
                tracing::warn!(
                    route = %self.route.id,
                    target = %target.name,
                    attempt = r.kind.as_str(),
                    class = %f.class,
                    status = f.status,
                    message = %f.message,
                    "attempt failed"
                );
            }
        }
    }

    fn shadow(&self, span: &Span, r: &AttemptRecord<'_>, request: &ClientRequest) {
        record_head(span, r);
        match &r.outcome {
            AttemptOutcome::Answered { usage } => {
                if let Some(tokens) = usage {
                    genai::record_tokens(
                        Some(*tokens),
                        &genai::attributes(request, r.target, &self.handles.label),
                    );
                }
            }
            AttemptOutcome::Committed => {}
            AttemptOutcome::Failed(f) => {
                span.record("plumb.failure_class", f.class.as_str());
            }
        }
    }

    fn fleet_outcome(
        &self,
        target: &Target,
        latency: Duration,
        breaker: BreakerState,
        probe: bool,
    ) -> fleet::Outcome {
        fleet::Outcome {
            latency,
            breaker,
            cooldown: self
                .table
                .breakers
                .existing(&target.upstream)
                .map_or(self.route.breaker.cooldown, |b| b.cooldown()),
            probe,
            retry_after: None,
        }
    }

    fn contract_failure(&self, target: &Target, class: FailureClass, check: &str) {
        self.metrics
            .contract_failures
            .get_or_create(&ContractLabels {
                route: self.handles.label.clone(),
                target: target.name.clone(),
                class: class.as_str(),
                check: check.to_owned(),
            })
            .inc();
        tracing::warn!(route = %self.route.id, target = %target.name, %class, check,
            "the answer broke the route's contract");
    }

    /// Counts an answer that named another model; warns once per target and answered model.
    fn substituted(&self, target: &Target, named: &str) {
        self.metrics
            .model_substitutions
            .get_or_create(&self.target_labels(target))
            .inc();
        let first_time = self
            .target_handles(target)
            .is_none_or(|h| h.first_substitution(named));
        if first_time {
            tracing::warn!(route = %self.route.id, target = %target.name, asked = %target.model,
                answered = %named, "the answer names another model than the target was asked for (said once per target and model; plumb_model_substitutions_total counts them)");
        }
    }

    /// A streamed attempt held before commit because its upstream's recent streams broke (the
    /// adaptive hold): counted in `plumb_streams_held_total` and the fleet's report.
    pub fn stream_held(&self, target: &Target) {
        self.metrics
            .streams_held
            .get_or_create(&self.target_labels(target))
            .inc();
        self.table.fleet.stream_held(&self.route.id.name, target);
    }

    /// The end of one target's part of a committed stream: its outcome against the breaker,
    /// the metrics and the fleet.
    pub fn stream_end(&self, r: &StreamRecord<'_>) {
        let target = r.target;
        let class = r.settlement.failure();
        self.count_attempt(target, class);
        self.set_breaker(target, r.breaker);
        // What the adaptive hold judges an upstream by.
        match r.settlement {
            Settlement::Completed => self.table.learned.stream_ended(&target.upstream, false),
            Settlement::Interrupted(_) => self.table.learned.stream_ended(&target.upstream, true),
            Settlement::ClientGone | Settlement::Rejected { .. } => {}
        }
        match r.settlement {
            Settlement::Completed | Settlement::ClientGone => {}
            Settlement::Interrupted(why) => {
                self.handle(
                    target,
                    |h| &h.streams_interrupted,
                    || {
                        self.metrics
                            .streams_interrupted
                            .get_or_create(&self.target_labels(target))
                            .clone()
                    },
                )
                .inc();
                tracing::warn!(route = %self.route.id, target = %target.name, reason = %why,
                    bytes = r.bytes, "stream interrupted after commit");
            }
            Settlement::Rejected { class, check } => {
                self.contract_failure(target, *class, check);
                tracing::warn!(route = %self.route.id, target = %target.name, %class, check,
                    bytes = r.bytes,
                    "a streamed answer broke the contract after commit; it ended with an error event");
            }
        }
        match r.settlement {
            Settlement::ClientGone => {}
            Settlement::Completed | Settlement::Interrupted(_) | Settlement::Rejected { .. } => {
                self.report(
                    target,
                    class,
                    self.fleet_outcome(target, r.latency, r.breaker, r.probe),
                );
            }
        }
    }

    /// A target passed over without an attempt.
    pub fn skip(&self, target: &Target, why: &Skip) {
        self.metrics
            .skipped_targets
            .get_or_create(&OutcomeLabels {
                route: self.handles.label.clone(),
                target: target.name.clone(),
                outcome: why.label(),
            })
            .inc();
        if let Skip::Downgrade | Skip::Uncertified(_) = why {
            self.metrics
                .failover_equivalence
                .get_or_create(&OutcomeLabels {
                    route: self.handles.label.clone(),
                    target: target.name.clone(),
                    outcome: "refused",
                })
                .inc();
        }
    }

    /// The client request: its span's fields and its metrics.
    pub fn request(&self, span: &Span, r: &RequestRecord<'_>, request: &ClientRequest) {
        let classes: Vec<&str> = r.failures.iter().map(|c| c.as_str()).collect();
        span.record("plumb.attempts", r.attempts);
        span.record("plumb.failure_classes", classes.join(","));
        let (outcome, outcome_index) = match &r.outcome {
            RequestOutcome::Served {
                target,
                verdict,
                failed_over,
            } => {
                span.record("plumb.served_by", target.name.as_str());
                span.record("plumb.equivalence", verdict.to_string());
                if *failed_over {
                    self.handle(
                        target,
                        |h| &h.fallback_served,
                        || {
                            self.metrics
                                .fallback_served
                                .get_or_create(&self.target_labels(target))
                                .clone()
                        },
                    )
                    .inc();
                }
                if let Some(label) = verdict.failover_label() {
                    self.metrics
                        .failover_equivalence
                        .get_or_create(&OutcomeLabels {
                            route: self.handles.label.clone(),
                            target: target.name.clone(),
                            outcome: label,
                        })
                        .inc();
                }
                if let Verdict::Uncertified { .. } = verdict {
                    self.table
                        .fleet
                        .uncertified_failover(&self.route.id.name, target);
                }
                genai::record_duration(
                    r.started,
                    &genai::attributes(request, target, &self.handles.label),
                    None,
                );
                ("ok", 0)
            }
            RequestOutcome::Failed { code } => {
                span.record("error.type", *code);
                genai::record_duration(
                    r.started,
                    &genai::request_attributes(request, &self.handles.label),
                    Some(code),
                );
                match r.failures.last() {
                    Some(c) => (c.as_str(), 1 + c.index()),
                    None => ("no_target_available", REQUEST_OUTCOMES - 1),
                }
            }
        };
        let api = match request.api {
            // No client speaks Gemini: it is only ever a target's family.
            Api::Openai | Api::Gemini | Api::Bedrock => 0,
            Api::Anthropic => 1,
            Api::Responses => 2,
        };
        self.handles.requests[api][outcome_index]
            .get_or_init(|| {
                self.metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        route: self.handles.label.clone(),
                        api: request.api.as_str(),
                        outcome,
                    })
                    .clone()
            })
            .inc();
        self.handles
            .request_duration
            .get_or_init(|| {
                self.metrics
                    .request_duration
                    .get_or_create(&RouteLabels {
                        route: self.handles.label.clone(),
                    })
                    .clone()
            })
            .observe(r.started.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_substituted_model_is_warned_about_once_per_target_and_model() {
        let h = TargetHandles::new("primary");
        assert!(h.first_substitution("gpt-alias"));
        assert!(
            !(0..1000).any(|_| h.first_substitution("gpt-alias")),
            "a provider that always answers with an alias writes one line"
        );
        assert!(h.first_substitution("gpt-other"), "another model is news");
        let fresh = (0..100)
            .filter(|i| h.first_substitution(&format!("m{i}")))
            .count();
        assert_eq!(
            fresh,
            MAX_SUBSTITUTIONS_WARNED - 2,
            "a target that names a new model every time is warned about a bounded number of times"
        );
        assert!(
            TargetHandles::new("fallback").first_substitution("gpt-alias"),
            "per target"
        );
    }

    #[test]
    fn every_outcome_has_its_own_handle_slot() {
        let mut seen = HashSet::new();
        assert!(seen.insert(attempt_outcome_index(None)));
        for c in FailureClass::ALL {
            assert!(seen.insert(attempt_outcome_index(Some(c))), "{c}");
        }
        assert!(seen.iter().all(|i| *i < ATTEMPT_OUTCOMES));
    }

    #[test]
    fn a_committed_stream_that_fails_counts_against_its_upstream() {
        assert_eq!(Settlement::Completed.failure(), None);
        assert_eq!(Settlement::ClientGone.failure(), None);
        assert_eq!(
            Settlement::Interrupted(Interruption::Cut).failure(),
            Some(FailureClass::StreamInterrupted)
        );
        assert_eq!(
            Settlement::Rejected {
                class: FailureClass::OutOfBounds,
                check: "rules[0]".to_owned()
            }
            .failure(),
            Some(FailureClass::OutOfBounds)
        );
    }
}
