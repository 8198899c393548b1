//! A stream cut after commit, continued elsewhere: the request again, with the text already
//! sent as a prefill, on a target that declares prefill support. Each try is an attempt like any
//! other — the same exchange, the same breaker and fleet gates, the same observer — of kind
//! [`Kind::Continuation`]; the one that takes over is settled when its part of the stream ends.

use std::sync::Arc;

use http::HeaderMap;
use plumb_policy::{LastResort, Route, Target};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::Proxy;
use crate::attempt::{self, Answer, Expect, Hold, Kind, Outgoing};
use crate::breaker::Admission;
use crate::classify::Failure;
use crate::fallback;
use crate::fleet::Gate;
use crate::keys::{Secret, redact};
use crate::observe::{AttemptOutcome, AttemptRecord, RouteHandles};
use crate::payload::{ClientRequest, Operation};
use crate::stream::Resumed;
use crate::table::Policy;

/// What a continuation needs of the request it continues.
pub(super) struct Continuation {
    pub(super) proxy: Arc<Proxy>,
    pub(super) policy: Arc<Policy>,
    pub(super) route: Arc<Route>,
    pub(super) handles: Arc<RouteHandles>,
    pub(super) request: std::sync::Arc<ClientRequest>,
    pub(super) headers: HeaderMap,
    pub(super) caller_key: Option<Secret>,
    /// The target whose stream was cut.
    pub(super) failed: String,
}

impl Continuation {
    fn observing(&self) -> super::Observing {
        super::Observing {
            proxy: self.proxy.clone(),
            route: self.route.clone(),
            handles: self.handles.clone(),
        }
    }

    /// Tries the candidates in the route's order; the first whose stream reaches its first
    /// token takes over. `None` when none could.
    pub(super) async fn run(self, text: String) -> Option<Resumed> {
        let route = &self.route;
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
            if let Some(resumed) = self.try_target(target, &text).await {
                return Some(resumed);
            }
        }
        None
    }

    async fn try_target(&self, target: &Target, text: &str) -> Option<Resumed> {
        if self.proxy.table.fleet.gate(&target.upstream) != Gate::Go {
            return None;
        }
        let breaker = self
            .proxy
            .table
            .breakers
            .get(&target.upstream, self.route.breaker);
        let Admission::Allowed(permit) = breaker.admit() else {
            return None;
        };
        let body = self.request.continuation_body_for(target, text).ok()?;
        let d = self.route.deadlines;
        let span = crate::observe::attempt_span(target, Kind::Continuation, false);
        let started = Instant::now();
        let result = async {
            let req = Outgoing {
                target,
                family: self.request.family_for(target),
                operation: Operation::Chat,
                body,
                stream: true,
                key: self
                    .policy
                    .keys
                    .for_target(target, self.caller_key.as_ref()),
                google: self.policy.keys.google(target),
                proxy_credentials: self.policy.keys.proxy_credentials(target),
                client_headers: &self.headers,
            }
            .build(&*self.proxy.upstreams)
            .await?;
            let hold = Hold {
                streaming: &self.route.streaming,
                until_end: false,
            };
            attempt::exchange(
                &*self.proxy.upstreams,
                self.request.family_for(target),
                req,
                (&d, started + d.stream_max),
                self.proxy.limits.max_response_bytes,
                Expect::Stream(hold),
            )
            .await
        }
        .instrument(span.clone())
        .await;
        let latency = started.elapsed();
        let observing = self.observing();
        let observer = observing.observer();
        let mut record = AttemptRecord {
            target,
            kind: Kind::Continuation,
            probe: false,
            latency,
            status: None,
            model: None,
            substituted: None,
            outcome: AttemptOutcome::Committed,
            breaker: breaker.state(),
            next: None,
            head: None,
        };
        match result {
            Ok(Answer::Stream {
                head,
                first,
                rest,
                head_after,
            }) => {
                record.status = Some(head.status.as_u16());
                record.head = Some(head_after);
                observer.attempt(&span, &record, &self.request);
                Some(Resumed {
                    body: rest,
                    held: first,
                    family: self.request.family_for(target),
                    target: target.name.clone(),
                    settle: super::settle_stream(
                        observing.clone(),
                        Arc::new(target.clone()),
                        Some(permit),
                        latency,
                    ),
                })
            }
            Ok(Answer::Whole { .. }) => None,
            Err(mut f) => {
                f.message = redact(
                    &f.message,
                    self.policy
                        .keys
                        .values()
                        .chain(self.caller_key.as_ref().map(Secret::expose)),
                );
                record.status = f.status;
                record.breaker = permit.failure(f.class);
                let failure: &Failure = &f;
                record.outcome = AttemptOutcome::Failed(failure);
                observer.attempt(&span, &record, &self.request);
                None
            }
        }
    }
}
