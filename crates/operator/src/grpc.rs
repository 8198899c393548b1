//! The policy server: one control stream per sidecar, over TLS.
//!
//! A stream is accepted only with a ServiceAccount token the API server vouches for (a
//! TokenReview with the control plane's audience) and a Hello that names the token's own
//! namespace. From then on the sidecar gets its namespace's current snapshot and every later
//! one, and heartbeats; its acknowledgements (and refusals of single routes) are recorded and
//! the namespace's routes reconciled so their status says what the sidecars run.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_telemetry::clock;
use plumb_telemetry::operator::{NamespaceLabels, OperatorMetrics, ReasonLabels};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{Authenticate, Identity};
use crate::knowledge::Knowledge;
use crate::policies::{Policies, counter_of};

/// How long a sidecar has to say Hello.
const HELLO_WITHIN: Duration = Duration::from_secs(10);

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
    /// Namespaces whose sidecars said something, for the reconciler.
    pub acks: mpsc::Sender<String>,
    /// Metrics.
    pub metrics: Arc<OperatorMetrics>,
}

type Outbound = Pin<Box<dyn Stream<Item = Result<v1::OperatorMessage, Status>> + Send>>;

impl PolicyServer {
    fn refuse(&self, reason: &'static str, status: Status) -> Status {
        self.metrics
            .refused_streams
            .get_or_create(&ReasonLabels { reason })
            .inc();
        tracing::warn!(reason, message = %status.message(), "control stream refused");
        status
    }

    fn gauge(&self, namespace: &str) {
        let n = self
            .policies
            .sidecar_counts()
            .into_iter()
            .find(|(ns, _)| ns == namespace)
            .map_or(0, |(_, n)| n);
        self.metrics
            .connected_sidecars
            .get_or_create(&NamespaceLabels {
                namespace: namespace.to_owned(),
            })
            .set(n as i64);
    }
}

fn message(kind: operator_message::Kind) -> v1::OperatorMessage {
    v1::OperatorMessage { kind: Some(kind) }
}

#[tonic::async_trait]
impl v1::policy_service_server::PolicyService for PolicyServer {
    type ControlStream = Outbound;

    async fn control(
        &self,
        req: Request<Streaming<v1::SidecarMessage>>,
    ) -> Result<Response<Outbound>, Status> {
        if !*self.leading.borrow() {
            return Err(self.refuse(
                "not_leader",
                Status::unavailable(
                    "this operator replica is not the leader; the policy Service routes to the leader",
                ),
            ));
        }
        let token = req
            .metadata()
            .get("authorization")
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
        let id: Identity = match self.auth.review(&token).await {
            Ok(id) => id,
            Err(why) => {
                return Err(self.refuse(
                    "bad_token",
                    Status::unauthenticated(format!("the token was not accepted: {why}")),
                ));
            }
        };
        let mut inbound = req.into_inner();
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
        let namespace = id.namespace.clone();
        let pod = id.pod.clone().unwrap_or_else(|| hello.pod.clone());
        tracing::info!(%namespace, %pod, version = %hello.sidecar_version, serving = %hello.serving_version, "sidecar connected");
        self.policies.connected(&namespace, &pod);
        self.knowledge.connected(&namespace, &pod);
        self.gauge(&namespace);
        let _ = self.acks.try_send(namespace.clone());

        let (tx, rx) = mpsc::channel::<Result<v1::OperatorMessage, Status>>(4);
        let server = self.clone();
        tokio::spawn(async move {
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
                tokio::select! {
                    changed = snapshots.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let snap = (**snapshots.borrow_and_update()).clone();
                        if let Some(c) = counter_of(&snap.version) {
                            sent.insert(c, Instant::now());
                            while sent.len() > 64 {
                                sent.pop_first();
                            }
                        }
                        if tx.send(Ok(message(operator_message::Kind::Snapshot(snap)))).await.is_err() {
                            break;
                        }
                    }
                    changed = knowledge.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let k = (**knowledge.borrow_and_update()).clone();
                        if tx.send(Ok(message(operator_message::Kind::Knowledge(k)))).await.is_err() {
                            break;
                        }
                    }
                    msg = inbound.message() => {
                        let msg = match msg {
                            Ok(Some(m)) => m,
                            Ok(None) | Err(_) => break,
                        };
                        last_heard = Instant::now();
                        if let Some(sidecar_message::Kind::Report(report)) = &msg.kind {
                            server.knowledge.report(&namespace, &pod, report);
                        }
                        if let Some(sidecar_message::Kind::Ack(ack)) = msg.kind {
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
                    }
                    changed = leading.changed() => {
                        // A replica that stepped down serves no more policy: its sidecars
                        // reconnect through the Service, to the new leader.
                        if changed.is_err() || !*leading.borrow_and_update() {
                            tracing::info!(%namespace, %pod, "no longer the leader; closing the stream");
                            let _ = tx.send(Err(Status::unavailable(
                                "this operator replica stopped leading; reconnect through the policy Service",
                            ))).await;
                            break;
                        }
                    }
                    _ = beat.tick() => {
                        if last_heard.elapsed() > server.heartbeat * 3 {
                            tracing::warn!(%namespace, %pod, "a sidecar went silent; closing its stream");
                            break;
                        }
                        let hb = message(operator_message::Kind::Heartbeat(v1::Heartbeat { unix_ms: clock::unix_ms_now() }));
                        if tx.send(Ok(hb)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            server.policies.disconnected(&namespace, &pod);
            server.knowledge.disconnected(&namespace, &pod);
            server.gauge(&namespace);
            let _ = server.acks.try_send(namespace.clone());
            tracing::info!(%namespace, %pod, "sidecar disconnected");
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}
