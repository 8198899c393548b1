//! Leader election on a `coordination.k8s.io` Lease.
//!
//! Every replica tries to hold the Lease; the holder renews it every `retry` and is the leader
//! while it does. A Lease not renewed within its duration is taken over. The leader labels its
//! own pod `plumb.dev/leader=true` — the policy Service selects that label, so sidecars always
//! reach the leader — and removes the label and releases the Lease when it stops. Only the
//! leader reconciles and serves policy; a replica that loses the Lease exits, to start again as
//! a follower with nothing stale in memory.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::watch;

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

    /// Runs the election for ever: `leading` says whether this replica leads. Once it has led,
    /// losing the Lease ends the process (exit code 1).
    pub async fn run(self, client: Client, leading: watch::Sender<bool>) {
        let api: Api<Lease> = Api::namespaced(client.clone(), &self.namespace);
        let mut led = false;
        loop {
            let turn = match tokio::time::timeout(self.retry * 2, self.turn(&api)).await {
                Ok(Ok(t)) => Some(t),
                Ok(Err(e)) => {
                    tracing::warn!(lease = %self.lease, error = %e, "cannot read or write the leader Lease");
                    None
                }
                Err(_) => None,
            };
            match (turn, led) {
                (Some(Turn::Leading(previous)), false) => {
                    tracing::info!(identity = %self.identity, lease = %self.lease, ?previous, "became the leader");
                    led = true;
                    // A previous leader that stopped renewing may still be labelled: the
                    // Service must not send sidecars to it.
                    if let Some(previous) = previous {
                        self.label(&client, &previous, false).await;
                    }
                    self.label(&client, &self.identity, true).await;
                    leading.send_replace(true);
                }
                (Some(Turn::Following), true) => {
                    tracing::error!(identity = %self.identity, "lost the leader Lease; exiting to rejoin as a follower");
                    std::process::exit(1);
                }
                (None, true) => {
                    // Could not renew: still leader until the Lease would have expired.
                }
                (Some(Turn::Leading(_)), true) | (Some(Turn::Following) | None, false) => {}
            }
            tokio::time::sleep(self.retry).await;
        }
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
