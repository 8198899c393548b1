//! Shadow sampling: a share of the successful, unstreamed answers of the primary's priority
//! group is also asked of the route's fallback candidates, off the request path, and the
//! answers are compared with the route's method. Off unless the route sets a rate: it sends
//! prompts to other providers.
//!
//! Bounded three ways per route: the sampling rate, shadows in flight at once, and a budget of
//! requests and estimated tokens per minute (helper calls of the embedding and judge methods
//! included). A sample the limits do not allow is dropped and counted, never queued. Shadow
//! requests never touch breakers or retry budgets, and candidates whose key is the caller's own
//! (`passthrough`) are never shadowed.

use std::sync::Arc;

use http::HeaderMap;
use plumb_policy::equivalence::Method;
use plumb_policy::{Credentials, Route, Target};
use plumb_telemetry::{Metrics, OutcomeLabels, RouteLabels};
use serde_json::{Value, json};
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::attempt::{self, Answer, Expect, Outgoing};
use crate::breaker::BreakerState;
use crate::completion::Collected;
use crate::completion::Whole;
use crate::equivalence::compare;
use crate::equivalence::limits::Limiter;
use crate::fallback;
use crate::keys::redact;
use crate::observe::{AttemptOutcome, AttemptRecord, Observer};
use crate::payload::{Api, ClientRequest, Operation};
use crate::table::{Policy, Table};
use crate::upstream::Transport;
use crate::verify;

/// A successful primary request, as it is offered for sampling.
pub struct Offer<'a> {
    /// The policy table (breakers, certifications, shadow limits).
    pub table: &'a Arc<Table>,
    /// Where attempts go.
    pub transport: &'a Arc<dyn Transport>,
    /// The largest whole answer read.
    pub max_response_bytes: usize,
    /// The metrics.
    pub metrics: &'a Arc<Metrics>,
    /// The policy the request ran under.
    pub policy: &'a Arc<Policy>,
    /// Its route.
    pub route: &'a Arc<Route>,
    /// The client's request.
    pub request: &'a ClientRequest,
    /// The client's headers (forwarded ones only reach upstreams).
    pub headers: &'a HeaderMap,
    /// The primary-grade target that answered.
    pub primary: &'a Target,
}

/// The fallback candidates a sample asks: serving targets outside the primary's priority
/// group, not declared its same model (nothing to learn there), that could take the request
/// with Plumb's own keys and are not known to be down.
fn candidates<'r>(table: &Table, route: &'r Route, request: &ClientRequest) -> Vec<&'r Target> {
    route
        .serving_targets()
        .filter(|t| {
            !route.is_primary_grade(t)
                && !super::same_model_as_primary(route, t)
                && t.credentials != Credentials::Passthrough
                && fallback::unfit(t, request, false).is_none()
                && table.breakers.get(&t.upstream, route.breaker).state() != BreakerState::Open
        })
        .collect()
}

/// A request picked for sampling, waiting for the primary's complete answer (at once for a
/// whole answer, at the end of a stream).
pub struct Sampler {
    job: Job,
}

impl Sampler {
    /// Picks the request at the route's rate. `None`: not sampled (the usual case), at no cost.
    pub fn pick(o: Offer<'_>) -> Option<Sampler> {
        let s = o.route.equivalence.shadow;
        if s.rate <= 0.0 || o.request.operation != Operation::Chat || fastrand::f64() >= s.rate {
            return None;
        }
        Some(Sampler {
            job: Job {
                table: o.table.clone(),
                transport: o.transport.clone(),
                max_response_bytes: o.max_response_bytes,
                metrics: o.metrics.clone(),
                policy: o.policy.clone(),
                route: o.route.clone(),
                request: Arc::new(o.request.unstreamed()),
                headers: o.headers.clone(),
                primary: o.primary.clone(),
                answer: Collected::default(),
                limiter: o.table.shadows.limiter(&o.route.id),
            },
        })
    }

    /// Compares the candidates with the primary's `answer`, in a task of its own, if the
    /// route's concurrency limit allows. Returns at once.
    pub fn start(self, answer: Collected) {
        let mut job = self.job;
        let Some(place) = job
            .limiter
            .enter(job.route.equivalence.shadow.max_concurrent)
        else {
            job.metrics
                .shadow_skipped
                .get_or_create(&RouteLabels {
                    route: job.route.id.to_string(),
                })
                .inc();
            return;
        };
        job.answer = answer;
        tokio::spawn(async move {
            let _place = place;
            job.run().await;
        });
    }
}

/// One sample: every candidate asked, checked and compared.
struct Job {
    table: Arc<Table>,
    transport: Arc<dyn Transport>,
    max_response_bytes: usize,
    metrics: Arc<Metrics>,
    policy: Arc<Policy>,
    route: Arc<Route>,
    request: Arc<ClientRequest>,
    headers: HeaderMap,
    primary: Target,
    answer: Collected,
    limiter: Arc<Limiter>,
}

impl Job {
    async fn run(self) {
        let route = &self.route;
        let s = route.equivalence.shadow;
        let helper_calls = u32::from(route.equivalence.method.helper().is_some());
        let tokens =
            u64::from(self.request.needs.tokens) + (self.answer.text.len() as u64).div_ceil(4);
        let schema = verify::request_schema(route, &self.request).ok().flatten();
        for candidate in candidates(&self.table, route, &self.request) {
            if !self
                .limiter
                .reserve(&s, 1 + helper_calls, tokens * u64::from(1 + helper_calls))
            {
                self.metrics
                    .shadow_skipped
                    .get_or_create(&RouteLabels {
                        route: route.id.to_string(),
                    })
                    .inc();
                return;
            }
            let outcome = match self.ask(candidate).await {
                Err(why) => {
                    tracing::debug!(route = %route.id, candidate = %candidate.name, why, "shadow request failed; not a sample");
                    "error"
                }
                Ok(theirs) => {
                    // Off the async workers, within the check's deadline: the schema may be
                    // the client's.
                    let checked = verify::check_bounded(
                        route.clone(),
                        self.request.clone(),
                        schema.clone(),
                        theirs,
                    )
                    .await;
                    let agreed = match checked {
                        (Ok(()), Some(theirs)) => self.compare(&theirs).await,
                        // An answer that breaks the contract never agrees.
                        _ => Ok(false),
                    };
                    match agreed {
                        Ok(agreed) => {
                            self.table.certifications.record(
                                &route.id,
                                &self.primary,
                                candidate,
                                agreed,
                            );
                            if agreed { "agree" } else { "disagree" }
                        }
                        Err(why) => {
                            tracing::debug!(route = %route.id, candidate = %candidate.name, why, "comparison failed; not a sample");
                            "error"
                        }
                    }
                }
            };
            self.metrics
                .shadow_comparisons
                .get_or_create(&OutcomeLabels {
                    route: route.id.to_string(),
                    target: candidate.name.clone(),
                    outcome,
                })
                .inc();
        }
    }

    /// The candidate's whole answer to the client's request.
    async fn ask(&self, candidate: &Target) -> Result<Collected, String> {
        let body = self
            .request
            .body_for(candidate)
            .map_err(|e| e.to_string())?;
        match self
            .call(
                candidate,
                self.request.family_for(candidate),
                Operation::Chat,
                body,
            )
            .await?
        {
            Whole::Chat(c) => Ok(verify::whole(&c)),
            Whole::Embeddings(_) => Err("embeddings answered a chat request".to_owned()),
        }
    }

    /// One whole request to `target`, through the same exchange as every attempt (a shadow
    /// sample or a comparison's helper call), checked like any answer.
    async fn call(
        &self,
        target: &Target,
        family: Api,
        op: Operation,
        body: bytes::Bytes,
    ) -> Result<Whole, String> {
        let d = &self.route.deadlines;
        let span = crate::observe::attempt_span(target, attempt::Kind::Shadow, false);
        let started = Instant::now();
        let sent = async {
            let req = Outgoing {
                target,
                family,
                operation: op,
                body,
                stream: false,
                key: self.policy.keys.for_target(target, None),
                google: self.policy.keys.google(target),
                proxy_credentials: self.policy.keys.proxy_credentials(target),
                client_headers: &self.headers,
            }
            .build(&*self.transport)
            .await?;
            attempt::exchange(
                &*self.transport,
                family,
                req,
                (d, started + d.total),
                self.max_response_bytes,
                Expect::Whole(op),
            )
            .await
        }
        .instrument(span.clone())
        .await;
        let handles = self.table.handles(&self.route);
        let observer = Observer {
            metrics: &self.metrics,
            table: &self.table,
            route: &self.route,
            handles: &handles,
        };
        let mut record = AttemptRecord {
            target,
            kind: attempt::Kind::Shadow,
            probe: false,
            latency: started.elapsed(),
            status: None,
            model: None,
            substituted: None,
            outcome: AttemptOutcome::Committed,
            breaker: BreakerState::Closed,
            next: None,
            head: None,
        };
        match sent {
            Ok(Answer::Whole { head, whole, .. }) => {
                record.status = Some(head.status.as_u16());
                let usage = match &whole {
                    Whole::Chat(c) => c.usage(),
                    Whole::Embeddings(_) => None,
                };
                let model = match &whole {
                    Whole::Chat(c) => c.model().map(str::to_owned),
                    Whole::Embeddings(_) => None,
                };
                record.model = model.as_deref();
                record.outcome = AttemptOutcome::Answered { usage };
                observer.attempt(&span, &record, &self.request);
                Ok(whole)
            }
            Ok(Answer::Stream { .. }) => Err("a stream answered a whole request".to_owned()),
            Err(mut f) => {
                f.message = redact(&f.message, self.policy.keys.values());
                record.status = f.status;
                record.outcome = AttemptOutcome::Failed(&f);
                observer.attempt(&span, &record, &self.request);
                Err(format!("{}: {}", f.class, f.message))
            }
        }
    }

    /// Whether the candidate's answer agrees with the primary's, by the route's method.
    async fn compare(&self, theirs: &Collected) -> Result<bool, String> {
        let (a, b) = (
            compare::comparable(&self.answer),
            compare::comparable(theirs),
        );
        match &self.route.equivalence.method {
            Method::Exact => Ok(compare::exact(&a, &b)),
            Method::CanonicalJson => Ok(compare::canonical_json(&a, &b)),
            Method::Fields(f) => Ok(compare::fields(&a, &b, f)),
            Method::Lexical { min } => Ok(compare::lexical(&a, &b) >= *min),
            Method::Embedding { min, .. } => {
                let helper = self.helper()?;
                let body = json!({"model": helper.model, "input": [a, b]}).to_string();
                let Whole::Embeddings(e) = self
                    .call(
                        helper,
                        Api::Openai,
                        Operation::Embeddings,
                        bytes::Bytes::from(body),
                    )
                    .await?
                else {
                    return Err("a chat answer came back for embeddings".to_owned());
                };
                let vector = |i: usize| -> Result<&[f64], String> {
                    e.data
                        .get(i)
                        .map(|d| d.embedding.as_slice())
                        .filter(|v| !v.is_empty())
                        .ok_or_else(|| "the embeddings answer has no float vectors".to_owned())
                };
                Ok(compare::cosine(vector(0)?, vector(1)?) >= *min)
            }
            Method::Judge { .. } => {
                let helper = self.helper()?;
                let mut request = self
                    .request
                    .body()
                    .get("messages")
                    .map(Value::to_string)
                    .unwrap_or_default();
                if request.len() > 8192 {
                    let mut cut = 8192;
                    while !request.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    request.truncate(cut);
                }
                let ask = json!({
                    "model": helper.model,
                    "temperature": 0,
                    "max_tokens": 256,
                    "response_format": {"type": "json_object"},
                    "messages": [
                        {"role": "system", "content": compare::JUDGE_RUBRIC},
                        {"role": "user", "content": compare::judge_prompt(&request, &a, &b)},
                    ],
                });
                let judge =
                    ClientRequest::parse(Api::Openai, Operation::Chat, ask.to_string().as_bytes())
                        .map_err(|e| e.to_string())?;
                let body = judge.body_for(helper).map_err(|e| e.to_string())?;
                let Whole::Chat(answer) = self
                    .call(helper, Api::of(helper), Operation::Chat, body)
                    .await?
                else {
                    return Err("embeddings came back for the judge".to_owned());
                };
                compare::judge_verdict(&verify::whole(&answer).text)
            }
        }
    }

    fn helper(&self) -> Result<&Target, String> {
        self.route
            .equivalence
            .helper
            .as_deref()
            .ok_or_else(|| "the method's target is missing".to_owned())
    }
}
