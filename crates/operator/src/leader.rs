//! Leader election on a `coordination.k8s.io` Lease.
//!
//! Every replica tries to hold the Lease; the holder renews it every `retry` and is the leader
//! while it does. A Lease not renewed within its duration is taken over. The leader labels its
//! own pod `plumb.dev/leader=true` — the policy Service selects that label, so sidecars always
//! reach the leader — and removes the label and releases the Lease when it stops. Only the
//! leader reconciles and serves policy.
//!
//! A leader steps down when another replica holds the Lease, and also when it has not renewed
//! it for `renew_deadline` (shorter than the Lease's duration): past that point another replica
//! may take the Lease over at any moment, and two leaders would serve policy and write status
//! at once. The renewal that counts is timed from when its request was sent, and no request may
//! outlast the deadline, so an API server that hangs is treated like one that refuses. A replica
//! that stepped down stops serving at once and exits (see `main`), to start again as a follower
//! with nothing stale in memory.
//!
//! ```text
//!   renewed ─────────── renew_deadline ──────────── duration
//!      │  renew, renew, fail, fail…  │ step down       │ another replica may take over
//! ```

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

/// The label the leader puts on its own pod, and the policy Service selects.
pub const LEADER_LABEL: &str = "plumb.dev/leader";

/// Where the Lease is and who we are.
#[derive(Clone, Debug)]
pub struct Election {
    /// The operator's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub lease: String,
    /// This replica's pod name (the Lease holder identity).
    pub identity: String,
    /// How long a Lease lasts without renewal.
    pub duration: Duration,
    /// How often the Lease is renewed or tried.
    pub retry: Duration,
    /// How long the leader may go without renewing before it steps down: shorter than
    /// `duration` (by more than the clock skew between replicas), longer than `retry`.
    pub renew_deadline: Duration,
}

/// Why the election settings are unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidElection {
    /// The renew deadline does not fit between the retry interval and the Lease's duration.
    #[error(
        "--lease-renew-deadline ({deadline:?}) must be longer than --lease-retry ({retry:?}) and shorter than --lease-duration ({duration:?})"
    )]
    RenewDeadline {
        /// The renew deadline.
        deadline: Duration,
        /// The retry interval.
        retry: Duration,
        /// The Lease's duration.
        duration: Duration,
    },
}

/// Why this replica stopped leading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ended {
    /// Another replica holds the Lease.
    Lost,
    /// The Lease was not renewed within the renew deadline: it could be taken over.
    NotRenewed {
        /// How long ago the last renewal that counts was sent.
        since: Duration,
    },
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Lost => f.write_str("another replica holds the leader Lease"),
            Ended::NotRenewed { since } => write!(
                f,
                "the leader Lease was last renewed {since:?} ago, past the renew deadline; another replica may take it over"
            ),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// What one look at the Lease decided.
#[derive(Debug, PartialEq, Eq)]
enum Turn {
    /// Holding the Lease; taken over from this earlier holder, if any.
    Leading(Option<String>),
    Following,
}

impl Election {
    async fn turn(&self, api: &Api<Lease>) -> Result<Turn, kube::Error> {
        let spec = |acquire: Option<MicroTime>, transitions: i32| LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs().max(1) as i32),
            acquire_time: acquire,
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        };
        let Some(mut lease) = api.get_opt(&self.lease).await? else {
            let fresh = Lease {
                metadata: kube::api::ObjectMeta {
                    name: Some(self.lease.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec(Some(now()), 0)),
            };
            return match api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(Turn::Leading(None)),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Turn::Following),
                Err(e) => Err(e),
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.clone().unwrap_or_default();
        let expired = current.renew_time.as_ref().is_none_or(|t| {
            let lasts =
                Duration::from_secs(current.lease_duration_seconds.unwrap_or(15).max(1) as u64);
            let age = k8s_openapi::jiff::Timestamp::now().duration_since(t.0);
            age.as_secs_f64() > lasts.as_secs_f64()
        });
        let transitions = current.lease_transitions.unwrap_or(0);
        let (next, previous) = if holder == self.identity {
            (spec(current.acquire_time.clone(), transitions), None)
        } else if holder.is_empty() || expired {
            (
                spec(Some(now()), transitions + 1),
                (!holder.is_empty()).then_some(holder),
            )
        } else {
            return Ok(Turn::Following);
        };
        lease.spec = Some(next);
        // The resourceVersion read above makes this a compare-and-swap: a 409 means another
        // replica renewed or took it first.
        match api
            .replace(&self.lease, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Turn::Leading(previous)),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Turn::Following),
            Err(e) => Err(e),
        }
    }

    async fn label(&self, client: &Client, pod: &str, leader: bool) {
        let pods: Api<Pod> = Api::namespaced(client.clone(), &self.namespace);
        let value = if leader { json!("true") } else { json!(null) };
        let patch = json!({"metadata": {"labels": {LEADER_LABEL: value}}});
        if let Err(e) = pods
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!(%pod, error = %e, "cannot set the leader label of a pod");
        }
    }

    /// Checks the settings: the renew deadline between the retry interval and the duration.
    pub fn validate(&self) -> Result<(), InvalidElection> {
        if self.retry < self.renew_deadline && self.renew_deadline < self.duration {
            Ok(())
        } else {
            Err(InvalidElection::RenewDeadline {
                deadline: self.renew_deadline,
                retry: self.retry,
                duration: self.duration,
            })
        }
    }

    /// Runs the election: `leading` says whether this replica leads. Returns once a replica
    /// that led stops leading — another holds the Lease, or it could not renew within the
    /// renew deadline — after `leading` went false and the pod's leader label was taken off
    /// (as far as the API server lets it).
    pub async fn run(self, client: Client, leading: watch::Sender<bool>) -> Ended {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        // When the last renewal that succeeded was sent, while leading.
        let mut renewed: Option<Instant> = None;
        loop {
            let sent = Instant::now();
            // A request may not outlast the renew deadline: a hanging API server must not keep
            // a leader past it.
            let patience = match renewed {
                Some(at) => (at + self.renew_deadline)
                    .saturating_duration_since(sent)
                    .min(self.retry * 2),
                None => self.retry * 2,
            };
            let turn = match tokio::time::timeout(patience, self.turn(&api)).await {
                Ok(Ok(t)) => Some(t),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lease, error = %e, "cannot read or write the leader Lease");
                    None
                }
                Err(_) => {
                    tracing::warn!(lease = %self.lease, "the API server did not answer about the leader Lease in time");
                    None
                }
            };
            match (turn, renewed) {
                (Some(Turn::Leading(previous)), None) => {
                    tracing::info!(identity = %self.identity, lease = %self.lease, ?previous, "became the leader");
                    renewed = Some(sent);
                    // A previous leader that stopped renewing may still be labelled: the
                    // Service must not send sidecars to it.
                    if let Some(previous) = previous {
                        self.label(&client, &previous, false).await;
                    }
                    self.label(&client, &self.identity, true).await;
                    leading.send_replace(true);
                }
                (Some(Turn::Leading(_)), Some(_)) => renewed = Some(sent),
                (Some(Turn::Following), Some(_)) => {
                    return self.step_down(&client, &leading, Ended::Lost).await;
                }
                (None, Some(at)) if at.elapsed() >= self.renew_deadline => {
                    let ended = Ended::NotRenewed {
                        since: at.elapsed(),
                    };
                    return self.step_down(&client, &leading, ended).await;
                }
                (None, Some(_)) | (Some(Turn::Following) | None, None) => {}
            }
            // Wake at the renew deadline at the latest, to step down on time.
            let pause = match renewed {
                Some(at) => (at + self.renew_deadline)
                    .saturating_duration_since(Instant::now())
                    .min(self.retry),
                None => self.retry,
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Stops leading: `leading` goes false at once (the policy server closes its streams), then
    /// the pod's leader label goes, if the API server answers within one retry interval.
    async fn step_down(&self, client: &Client, leading: &watch::Sender<bool>, why: Ended) -> Ended {
        leading.send_replace(false);
        tracing::error!(identity = %self.identity, lease = %self.lease, reason = %why, "stepping down as the leader");
        if tokio::time::timeout(self.retry, self.label(client, &self.identity, false))
            .await
            .is_err()
        {
            tracing::warn!(pod = %self.identity, "the leader label could not be taken off in time; the next leader takes it off");
        }
        why
    }

    /// Gives the Lease up and takes the label off (on shutdown), so a follower takes over at
    /// once instead of after the Lease's duration.
    pub async fn release(&self, client: &Client) {
        self.label(client, &self.identity, false).await;
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        if let Ok(Some(mut lease)) = api.get_opt(&self.lease).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(s) = lease.spec.as_mut() {
                s.holder_identity = None;
                s.renew_time = None;
            }
            let _ = api
                .replace(&self.lease, &PostParams::default(), &lease)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The election against an in-process Lease API that can be told to refuse or to hang,
    //! under paused time.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU8, Ordering};

    use http::{Request, Response};
    use http_body_util::BodyExt as _;
    use kube::client::Body;
    use parking_lot::Mutex;
    use serde_json::Value;

    use super::*;

    const REFUSE: u8 = 1;
    const HANG: u8 = 2;

    #[derive(Default)]
    struct Api {
        lease: Mutex<Option<Value>>,
        version: Mutex<u64>,
        /// Pod label patches: (pod, leader label value).
        labels: Mutex<Vec<(String, Value)>>,
        /// How the Lease API behaves: 0 answers, REFUSE (500), HANG (never answers).
        mode: AtomicU8,
    }

    fn reply(status: u16, v: &Value) -> Response<Body> {
        let mut r = Response::new(Body::from(v.to_string().into_bytes()));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    }

    fn failure(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": reason, "reason": reason, "code": code})
    }

    fn client(api: Arc<Api>) -> Client {
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move {
                let method = req.method().clone();
                let path = req.uri().path().to_owned();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if path.contains("/pods/") {
                    let pod = path.rsplit('/').next().unwrap_or_default().to_owned();
                    api.labels
                        .lock()
                        .push((pod, sent["metadata"]["labels"][LEADER_LABEL].clone()));
                    return Ok::<_, std::convert::Infallible>(reply(200, &json!({})));
                }
                match api.mode.load(Ordering::SeqCst) {
                    REFUSE => return Ok(reply(500, &failure(500, "InternalError"))),
                    HANG => std::future::pending::<()>().await,
                    _ => {}
                }
                let mut lease = api.lease.lock();
                let r = match (method.as_str(), lease.as_ref()) {
                    ("GET", Some(l)) => reply(200, l),
                    ("GET", None) => reply(404, &failure(404, "NotFound")),
                    ("POST", Some(_)) => reply(409, &failure(409, "AlreadyExists")),
                    ("PUT", Some(l))
                        if l["metadata"]["resourceVersion"]
                            != sent["metadata"]["resourceVersion"] =>
                    {
                        reply(409, &failure(409, "Conflict"))
                    }
                    ("POST" | "PUT", _) => {
                        let mut v = api.version.lock();
                        *v += 1;
                        let mut obj = sent.clone();
                        obj["metadata"]["resourceVersion"] = json!(v.to_string());
                        *lease = Some(obj.clone());
                        reply(if method == "POST" { 201 } else { 200 }, &obj)
                    }
                    _ => reply(405, &failure(405, "MethodNotAllowed")),
                };
                Ok(r)
            }
        });
        Client::new(service, "plumb-system")
    }

    fn election() -> Election {
        Election {
            namespace: "plumb-system".into(),
            lease: "plumb-operator-leader".into(),
            identity: "operator-1".into(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(10),
        }
    }

    /// Runs the election until it leads; returns when it began leading, the task, and
    /// `leading`.
    async fn lead(
        api: &Arc<Api>,
    ) -> (
        Instant,
        tokio::task::JoinHandle<Ended>,
        watch::Receiver<bool>,
    ) {
        let (tx, mut leading) = watch::channel(false);
        let task = tokio::spawn(election().run(client(api.clone()), tx));
        let started = Instant::now();
        let _ = leading.wait_for(|l| *l).await;
        (started, task, leading)
    }

    async fn steps_down_before_the_lease_could_expire(mode: u8) {
        let api = Arc::new(Api::default());
        let (started, task, leading) = lead(&api).await;
        // Renewing for a minute keeps it leading.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(*leading.borrow());
        assert!(!task.is_finished());
        // The last renewal that counts was sent at most one retry interval before this.
        let broke = Instant::now();
        api.mode.store(mode, Ordering::SeqCst);
        // (A leader that never steps down fails here rather than hanging the test.)
        let ended = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .unwrap_or_else(|_| panic!("still leading a minute after the API broke"))
            .unwrap_or_else(|e| panic!("{e}"));
        let after = broke.elapsed();
        assert!(matches!(ended, Ended::NotRenewed { .. }), "{ended:?}");
        assert!(!*leading.borrow(), "it no longer serves policy");
        // Between the renew deadline (less the one retry interval the last renewal may
        // precede the failure by) and the Lease's duration: it is gone before anyone else
        // may take the Lease.
        assert!(
            after >= Duration::from_secs(8) && after < Duration::from_secs(15),
            "stepped down {after:?} after the API broke ({:?} after starting)",
            started.elapsed()
        );
        assert_eq!(
            api.labels.lock().last().cloned(),
            Some(("operator-1".to_owned(), Value::Null)),
            "its leader label is taken off"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_renewals_are_refused_steps_down_before_its_lease_could_expire() {
        steps_down_before_the_lease_could_expire(REFUSE).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_renewals_hang_steps_down_before_its_lease_could_expire() {
        steps_down_before_the_lease_could_expire(HANG).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_lease_another_replica_holds_steps_down_at_once() {
        let api = Arc::new(Api::default());
        let (_, task, leading) = lead(&api).await;
        if let Some(l) = api.lease.lock().as_mut() {
            l["spec"]["holderIdentity"] = json!("operator-2");
        }
        let broke = Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(60), task).await;
        assert_eq!(ended.ok().and_then(Result::ok), Some(Ended::Lost));
        assert!(broke.elapsed() <= Duration::from_secs(2), "one retry");
        assert!(!*leading.borrow());
    }

    #[test]
    fn the_renew_deadline_fits_between_the_retry_interval_and_the_duration() {
        assert_eq!(election().validate(), Ok(()));
        for deadline in [1, 2, 15, 20] {
            let e = Election {
                renew_deadline: Duration::from_secs(deadline),
                ..election()
            };
            assert!(e.validate().is_err(), "{deadline}");
        }
    }
}
