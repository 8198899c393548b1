//! What reaches the client: an answer (whole, or a stream relayed from its commit) with the
//! `x-plumb-*` headers, or the error for a request no target could answer. Both end the
//! request's record.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use plumb_policy::contract::StreamCheck;
use plumb_policy::{Credentials, FailureClass, Target};

use super::Request;
use super::check::Checked;
use super::continuation::Continuation;
use crate::attempt::Answer;
use plumb_telemetry::clock;

use crate::breaker::Permit;
use crate::completion::{Completion, Whole};
use crate::equivalence::shadow;
use crate::fallback::Skip;
use crate::genai;
use crate::observe::{Observer, RequestOutcome, RequestRecord};
use crate::payload::{Api, ClientRequest};
use crate::respond::{self, Account, Body};
use crate::stream::{AfterCommit, Relay, RelayOptions, Resume, StreamEnd};
use crate::translate::events::Translator;
use crate::translate::{answer, bedrock, gemini, responses};
use crate::verify::{self, StreamCollector};

/// The record of a request a target served: made when a whole answer is sent, or once a
/// stream's first bytes are written.
#[derive(Clone)]
struct Served {
    span: tracing::Span,
    started: tokio::time::Instant,
    attempts: u32,
    failures: Vec<FailureClass>,
    verdict: crate::equivalence::Verdict,
    failed_over: bool,
}

impl Served {
    fn record(&self, observer: &Observer<'_>, target: &Target, request: &ClientRequest) {
        observer.request(
            &self.span,
            &RequestRecord {
                started: self.started,
                attempts: self.attempts,
                failures: &self.failures,
                outcome: RequestOutcome::Served {
                    target,
                    verdict: self.verdict,
                    failed_over: self.failed_over,
                },
            },
            request,
        );
    }
}

impl Request<'_> {
    /// The response for an answer from `target`. A stream's attempt is settled (`permit`) when
    /// the stream ends.
    pub(super) fn served(
        &self,
        target: &Target,
        checked: Checked,
        first_choice: bool,
        permit: Option<Permit>,
        latency: Duration,
        commit: Option<super::Commit>,
    ) -> Response<Body> {
        let primary = first_choice && self.tried.is_empty();
        let record = Served {
            span: self.span.clone(),
            started: self.started,
            attempts: self.attempts,
            failures: self.tried.iter().map(|t| t.failure.class).collect(),
            verdict: crate::equivalence::verdict(
                self.route,
                &self.proxy.table.certifications,
                target,
            ),
            failed_over: !primary,
        };
        let equivalence = record.verdict.to_string();
        let account = Account {
            route: Some(self.handles.label()),
            served_by: Some(&target.name),
            attempts: self.attempts,
            failures: &record.failures,
            equivalence: Some(&equivalence),
        };
        let (head, body) = match checked.answer {
            Answer::Whole { head, body, whole } => {
                record.record(&self.observer(), target, self.request);
                let body = match whole {
                    Whole::Chat(completion) => {
                        // A background job has no answer yet to compare.
                        if !completion.pending()
                            && let Some(sampler) = self.sampler(target, primary)
                        {
                            sampler.start(verify::whole(&completion));
                        }
                        // A Gemini answer reaches every client through the OpenAI shape.
                        let (completion, body) = match completion {
                            Completion::Gemini(g) => {
                                let c = gemini::to_chat(&g, clock::unix_secs_now());
                                let openai = serde_json::to_vec(&c).unwrap_or_default();
                                (Completion::Openai(c), Bytes::from(openai))
                            }
                            // So does a Bedrock answer.
                            Completion::Bedrock(b) => {
                                let c = bedrock::to_chat(&b, &target.model, clock::unix_secs_now());
                                let openai = serde_json::to_vec(&c).unwrap_or_default();
                                (Completion::Openai(c), Bytes::from(openai))
                            }
                            c @ (Completion::Openai(_)
                            | Completion::Anthropic(_)
                            | Completion::Responses(_)) => (c, body),
                        };
                        match (completion, self.request.api) {
                            (Completion::Anthropic(m), Api::Openai) => Bytes::from(
                                answer::anthropic_to_openai(&m, clock::unix_secs_now()).to_string(),
                            ),
                            (Completion::Openai(c), Api::Anthropic) => {
                                Bytes::from(answer::openai_to_anthropic(&c).to_string())
                            }
                            (Completion::Openai(c), Api::Responses) => Bytes::from(
                                responses::outgoing::from_chat(
                                    &c,
                                    &self.request.echo(),
                                    clock::unix_secs_now(),
                                )
                                .to_string(),
                            ),
                            (Completion::Anthropic(m), Api::Responses) => Bytes::from(
                                responses::outgoing::from_anthropic(
                                    &m,
                                    &self.request.echo(),
                                    clock::unix_secs_now(),
                                )
                                .to_string(),
                            ),
                            (Completion::Openai(_), Api::Openai)
                            | (Completion::Anthropic(_), Api::Anthropic)
                            | (Completion::Responses(_), Api::Responses) => body,
                            // A Responses answer only ever comes to a Responses client.
                            (Completion::Responses(_), Api::Openai | Api::Anthropic) => body,
                            // No client speaks Gemini, and its answers became OpenAI's above.
                            (_, Api::Gemini | Api::Bedrock)
                            | (Completion::Gemini(_) | Completion::Bedrock(_), _) => body,
                        }
                    }
                    Whole::Embeddings(_) => body,
                };
                (head, respond::full(body))
            }
            Answer::Stream {
                head, first, rest, ..
            } => {
                // One copy of the target for everything that outlives this call.
                let owned = std::sync::Arc::new(target.clone());
                let sampler = self.sampler(target, primary);
                let options = RelayOptions {
                    api: self.request.api,
                    route: self.handles.label().to_owned(),
                    target: target.name.clone(),
                    translator: (match self.request.api {
                        Api::Responses => Translator::to_responses(
                            self.request.family_for(target),
                            self.request.echo(),
                            clock::unix_secs_now(),
                        ),
                        Api::Openai | Api::Anthropic | Api::Gemini | Api::Bedrock => {
                            Translator::new(
                                Api::of(target),
                                self.request.api,
                                self.request.include_usage(),
                                clock::unix_secs_now(),
                            )
                        }
                    })
                    .naming(&target.model),
                    malformed: self.route.streaming.malformed,
                    idle: self
                        .proxy
                        .table
                        .learned
                        .stream_idle_deadline(&target.upstream, &self.route.deadlines)
                        .0,
                    max: self.route.deadlines.stream_max,
                    resume: self
                        .route
                        .streaming
                        .continuation
                        .then(|| self.resumer(target)),
                    include_usage: self.request.include_usage(),
                    created: clock::unix_secs_now(),
                    after_commit: self.after_commit(target),
                    collect: sampler.is_some(),
                    on_usage: Some(Box::new({
                        let attrs = genai::attributes(self.request, target, self.handles.label());
                        move |tokens| genai::record_tokens(Some(tokens), &attrs)
                    })),
                    on_gap: Some({
                        let (table, upstream, deadlines) = (
                            self.proxy.table.clone(),
                            target.upstream.clone(),
                            self.route.deadlines,
                        );
                        Box::new(move |gap, stalled| {
                            if stalled {
                                table.learned.stalled_at(&upstream, &deadlines, gap);
                            } else {
                                table.learned.stream_gap(&upstream, gap);
                            }
                        })
                    }),
                    on_rate: Some({
                        let (table, route, target) = (
                            self.proxy.table.clone(),
                            self.route.id.name.clone(),
                            owned.clone(),
                        );
                        Box::new(move |writing, tokens| {
                            if let Some(per_token) =
                                table.learned.generated(&target.upstream, writing, tokens)
                            {
                                table.fleet.token_time(&route, &target, per_token);
                            }
                        })
                    }),
                    redact: self.redactor(),
                    after_first_bytes: Some({
                        // The commit's records, and the request's, once the first bytes are
                        // on their way.
                        let observing = self.observing();
                        let (request, target, record) =
                            (self.request.clone(), owned.clone(), record.clone());
                        Box::new(move || {
                            let observer = observing.observer();
                            if let Some(commit) = commit {
                                commit.record(&observer, &target, &request);
                            }
                            record.record(&observer, &target, &request);
                        })
                    }),
                };
                let settle = super::settle_stream(self.observing(), owned, permit, latency);
                let relay = Relay::new(options, first, rest, settle, move |end| {
                    if let (StreamEnd::Completed { answer, .. }, Some(sampler)) = (end, sampler)
                        && let Some(answer) = answer
                    {
                        sampler.start(answer);
                    }
                });
                (head, http_body_util::combinators::BoxBody::new(relay))
            }
        };
        let mut resp = Response::new(body);
        *resp.status_mut() = head.status;
        let h = resp.headers_mut();
        respond::pass_headers(
            &head.headers,
            h,
            &[respond::X_REQUEST_ID, respond::REQUEST_ID],
        );
        respond::account(h, &account);
        resp
    }

    /// Removes this request's secrets (the policy's keys and the caller's own) from a text.
    fn redactor(&self) -> crate::stream::Redact {
        let policy = self.policy.clone();
        let caller = self.caller_key.cloned();
        std::sync::Arc::new(move |text: &str| {
            crate::keys::redact(
                text,
                policy
                    .keys
                    .values()
                    .chain(caller.as_ref().map(crate::keys::Secret::expose)),
            )
        })
    }

    /// A shadow sampler, when this answer came from the primary's group without a failure and
    /// the route samples it.
    fn sampler(&self, target: &Target, primary: bool) -> Option<shadow::Sampler> {
        if !(primary && self.route.is_primary_grade(target)) {
            return None;
        }
        shadow::Sampler::pick(shadow::Offer {
            table: &self.proxy.table,
            transport: &self.proxy.upstreams,
            max_response_bytes: self.proxy.limits.max_response_bytes,
            metrics: &self.proxy.metrics,
            policy: self.policy,
            route: self.route,
            request: self.request,
            headers: self.headers,
            primary: target,
        })
    }

    /// The contract check of a stream checked after commit, if the route has one.
    fn after_commit(&self, target: &Target) -> Option<AfterCommit> {
        let contract = self.route.contract.as_ref()?;
        if contract.streams != StreamCheck::AfterCommit
            || !contract.applies(self.request_schema.is_some())
        {
            return None;
        }
        let route = self.route.clone();
        let request = self.request.clone();
        let schema = self.request_schema.cloned();
        Some(AfterCommit {
            collector: StreamCollector::new(self.request.family_for(target)),
            check: Box::new(move |answer| {
                Box::pin(async move {
                    verify::check_bounded(route, request, schema, answer)
                        .await
                        .0
                })
            }),
        })
    }

    /// What continues this request's stream on another target if it is cut after commit.
    fn resumer(&self, failed: &Target) -> Resume {
        let job = Continuation {
            proxy: self.proxy.clone(),
            policy: self.policy.clone(),
            route: self.route.clone(),
            handles: self.handles.clone(),
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
    pub(super) fn fail(&self) -> Response<Body> {
        let route_name = self.handles.label();
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
                let passthrough =
                    self.route.targets.iter().any(|t| {
                        t.name == last.target && t.credentials == Credentials::Passthrough
                    });
                // State no account holds is the caller's 404, as OpenAI says it.
                let status = if crate::classify::state_elsewhere(&last.failure) {
                    StatusCode::NOT_FOUND
                } else {
                    respond::client_status(last.failure.class, self.request.api, passthrough)
                };
                (status, last.failure.class.as_str())
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
        self.observer().request(
            &self.span,
            &RequestRecord {
                started: self.started,
                attempts: self.attempts,
                failures: &failures,
                outcome: RequestOutcome::Failed { code },
            },
            self.request,
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
                route: Some(route_name),
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
    // Another model is no answer to an embeddings request either: with the primary unfit, the
    // request is the caller's to change.
    let unfit = |s: &Skip| match s {
        Skip::Untranslatable(_)
        | Skip::ServerState(_)
        | Skip::Tools
        | Skip::JsonSchema
        | Skip::Vision
        | Skip::Prefill
        | Skip::ContextWindow { .. }
        | Skip::OtherModel(_) => true,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_nothing_could_take_says_why_in_its_status() {
        let s = |skips: Vec<Skip>| {
            untried_status(
                &skips
                    .into_iter()
                    .map(|s| ("t".to_owned(), s))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(s(vec![Skip::Tools]).1, "no_capable_target");
        assert_eq!(s(vec![Skip::NoCallerKey]).0, StatusCode::UNAUTHORIZED);
        assert_eq!(
            s(vec![Skip::RateLimited(Duration::from_secs(1))]).0,
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            s(vec![Skip::Downgrade, Skip::BreakerOpen]).1,
            "no_equivalent_target"
        );
        assert_eq!(s(vec![Skip::BreakerOpen]).1, "no_target_available");
        assert_eq!(s(vec![]).1, "no_target_available");
    }
}
