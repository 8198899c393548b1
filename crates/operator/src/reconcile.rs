//! The reconcile loop: every `LlmRoute` compiled with the same code the sidecar runs
//! standalone; a good generation goes to the namespace's sidecars, an invalid one never
//! replaces the last good one; status written with server-side apply; Events on changes.
//!
//! ```text
//! LlmRoute changed ─▶ read its ConfigMap schemas ─▶ compile ─┬─ ok ──▶ read its Secret keys ─▶ serve (new snapshot)
//!  or a sidecar acked                                       └─ invalid ─▶ keep the last good one
//!                                         └──────────────▶ status (Accepted, Programmed, Degraded) ─▶ Event on change
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use plumb_api::{LlmRoute, LlmRouteSpec, LlmRouteStatus};
use plumb_policy::contract::Sources;
use plumb_policy::{Credentials, compile_with};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::policies::Policies;
use crate::status::{Found, status};
use plumb_telemetry::operator::{OperatorMetrics, ReasonLabels, ResultLabels};

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "plumb-operator";

/// What every reconcile shares.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// What the sidecars are given.
    pub policies: Arc<Policies>,
    /// What the fleet knows, summarised per accepted route.
    pub knowledge: Arc<crate::knowledge::Knowledge>,
    /// Events about routes.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<OperatorMetrics>,
    /// How often a route is re-read without a change (to pick up rotated Secret keys).
    pub resync: Duration,
}

/// Why a reconcile failed (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The route has no namespace (it is namespaced; this cannot happen with a real server).
    #[error("the route has no namespace")]
    NoNamespace,
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "transport",
            Error::NoNamespace => "no_namespace",
        }
    }
}

/// The ConfigMap texts a spec's schemas refer to, or why one is missing.
async fn config_maps(
    client: &Client,
    namespace: &str,
    spec: &LlmRouteSpec,
) -> Result<HashMap<(String, String), String>, String> {
    let Some(contract) = &spec.contract else {
        return Ok(HashMap::new());
    };
    let refs = contract
        .schema
        .iter()
        .chain(contract.tool_arguments.iter().flatten().map(|t| &t.schema))
        .filter_map(|s| s.config_map_key_ref.clone());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut out = HashMap::new();
    for r in refs {
        let cm = api
            .get_opt(&r.name)
            .await
            .map_err(|e| format!("ConfigMap {}/{} cannot be read: {e}", namespace, r.name))?
            .ok_or_else(|| {
                format!(
                    "spec.contract: ConfigMap {namespace}/{} does not exist",
                    r.name
                )
            })?;
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .ok_or_else(|| {
                format!(
                    "spec.contract: ConfigMap {namespace}/{} has no key {:?}",
                    r.name, r.key
                )
            })?;
        out.insert((r.name.clone(), r.key.clone()), text.clone());
    }
    Ok(out)
}

/// The spec as sidecars get it: every ConfigMap schema replaced by its content, inline.
fn inlined(spec: &LlmRouteSpec, maps: &HashMap<(String, String), String>) -> String {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    let resolve = |source: &mut Value| {
        let Some(r) = source.get("configMapKeyRef").cloned() else {
            return;
        };
        let key = (
            r["name"].as_str().unwrap_or("").to_owned(),
            r["key"].as_str().unwrap_or("").to_owned(),
        );
        if let Some(text) = maps.get(&key)
            && let Ok(schema) = plumb_policy::contract::parse_yaml(text)
        {
            *source = json!({"inline": schema});
        }
    };
    if let Some(s) = v.pointer_mut("/contract/schema") {
        resolve(s);
    }
    if let Some(tools) = v
        .pointer_mut("/contract/toolArguments")
        .and_then(Value::as_array_mut)
    {
        for t in tools {
            if let Some(s) = t.get_mut("schema") {
                resolve(s);
            }
        }
    }
    v.to_string()
}

/// The Secret keys the compiled route's targets name, those that exist.
async fn credentials(
    client: &Client,
    namespace: &str,
    route: &plumb_policy::Route,
) -> BTreeMap<(String, String), Vec<u8>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = BTreeMap::new();
    for t in route.all_targets() {
        let Credentials::Secret(r) = &t.credentials else {
            continue;
        };
        if out.contains_key(&(r.name.clone(), r.key.clone())) {
            continue;
        }
        match api.get_opt(&r.name).await {
            Ok(Some(secret)) => {
                if let Some(value) = secret.data.as_ref().and_then(|d| d.get(&r.key)) {
                    out.insert((r.name.clone(), r.key.clone()), value.0.clone());
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(namespace, secret = %r.name, error = %e, "a Secret a route names cannot be read");
            }
        }
    }
    out
}

/// Reconciles one route.
pub async fn reconcile(route: Arc<LlmRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = route.namespace().ok_or(Error::NoNamespace)?;
    let name = route.name_any();
    let generation = route.metadata.generation.unwrap_or(0);
    let compiled = match config_maps(&ctx.client, &namespace, &route.spec).await {
        Err(msg) => Err(msg),
        Ok(maps) => {
            let sources = Sources {
                base_dir: None,
                config_maps: maps.clone(),
            };
            match compile_with(&namespace, &name, &route.spec, &sources) {
                Ok(r) => {
                    ctx.knowledge
                        .describe(&namespace, &name, route.metadata.uid.clone(), &r);
                    let creds = credentials(&ctx.client, &namespace, &r).await;
                    let targets = r.all_targets().count() as u32;
                    if ctx.policies.serve(
                        &namespace,
                        &name,
                        generation,
                        inlined(&route.spec, &maps),
                        creds,
                    ) {
                        tracing::info!(%namespace, route = %name, generation, "serving");
                    }
                    Ok(targets)
                }
                Err(e) => Err(e.to_string()),
            }
        }
    };
    let found = Found {
        generation,
        compiled,
        serving: ctx.policies.serving(&namespace, &name),
        sidecars: ctx.policies.programmed(&namespace, &name),
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let prev = route.status.as_ref();
    let next = status(prev, &found, &now);
    if prev.is_none_or(|p| !same_status(p, &next)) {
        let api: Api<LlmRoute> = Api::namespaced(ctx.client.clone(), &namespace);
        let patch = json!({
            "apiVersion": "plumb.dev/v1alpha1",
            "kind": "LlmRoute",
            "status": next,
        });
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
        announce(&ctx, &route, prev, &next).await;
    }
    ctx.metrics
        .reconciles
        .get_or_create(&ResultLabels { result: "ok" })
        .inc();
    Ok(Action::requeue(ctx.resync))
}

/// Whether two statuses say the same of what the reconciler writes (transition times aside;
/// `healthy` and `targets` are the knowledge store's).
fn same_status(a: &LlmRouteStatus, b: &LlmRouteStatus) -> bool {
    let strip = |s: &LlmRouteStatus| {
        let mut s = s.clone();
        s.healthy = None;
        s.targets.clear();
        for c in &mut s.conditions {
            c.last_transition_time = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        }
        s
    };
    strip(a) == strip(b)
}

/// Events for changes a human should see: a route accepted or refused, sidecars refusing it.
async fn announce(
    ctx: &Context,
    route: &LlmRoute,
    prev: Option<&LlmRouteStatus>,
    next: &LlmRouteStatus,
) {
    let cond = |s: Option<&LlmRouteStatus>, kind: &str| {
        s.and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    let mut events = Vec::new();
    for kind in ["Accepted", "Programmed"] {
        let (before, after) = (cond(prev, kind), cond(Some(next), kind));
        let Some((status, reason, message)) = after else {
            continue;
        };
        if before.as_ref().map(|b| (&b.0, &b.1)) == Some((&status, &reason)) {
            continue;
        }
        let warning = matches!(reason.as_str(), "Invalid" | "Rejected");
        if kind == "Programmed" && !warning {
            continue;
        }
        events.push(Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.clone(),
            note: Some(message.chars().take(1000).collect()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    let reference: ObjectReference = route.object_ref(&());
    for ev in events {
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "event not recorded");
        }
    }
}

fn error_policy(_route: Arc<LlmRoute>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "reconcile failed; retrying");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&ReasonLabels {
            reason: err.reason(),
        })
        .inc();
    Action::requeue(Duration::from_secs(5))
}

/// Runs the controller until the process stops. `acks` names namespaces whose sidecars said
/// something: their routes' status is brought up to date.
pub async fn run(ctx: Arc<Context>, mut acks: mpsc::Receiver<String>) {
    let api: Api<LlmRoute> = Api::all(ctx.client.clone());
    let policies = ctx.policies.clone();
    let (trigger_tx, trigger_rx) = mpsc::channel::<ObjectRef<LlmRoute>>(1024);
    let trigger_tx_for_secrets = trigger_tx.clone();
    tokio::spawn(async move {
        while let Some(ns) = acks.recv().await {
            for name in policies.routes_of(&ns) {
                let _ = trigger_tx.try_send(ObjectRef::new(&name).within(&ns));
            }
        }
    });
    let policies = ctx.policies.clone();
    let knowledge = ctx.knowledge.clone();
    let controller = Controller::new(api, watcher::Config::default());
    // A Secret that changes reconciles the routes of its namespace that name it, so a rotated
    // key reaches the sidecars at once. The Secret watch runs on its own: if it fails (no
    // permission, say), routes are still reconciled at once, and keys refresh at the resync.
    let routes = controller.store();
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let secret_trigger = trigger_tx_for_secrets;
    tokio::spawn(async move {
        let changes = watcher::watcher(secrets, watcher::Config::default())
            .default_backoff()
            .touched_objects();
        futures_util::pin_mut!(changes);
        while let Some(change) = changes.next().await {
            let secret = match change {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch Secrets; rotated keys reach the sidecars at the next resync");
                    continue;
                }
            };
            let (ns, name) = (secret.namespace(), secret.name_any());
            for r in routes.state() {
                if r.namespace() == ns && names_secret(&r.spec, &name) {
                    let _ = secret_trigger.send(ObjectRef::from_obj(&*r)).await;
                }
            }
        }
    });
    controller
        .reconcile_on(tokio_stream::wrappers::ReceiverStream::new(trigger_rx))
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let policies = policies.clone();
            let knowledge = knowledge.clone();
            async move {
                if let Err(kube::runtime::controller::Error::ObjectNotFound(obj)) = &result
                    && let Some(ns) = &obj.namespace
                    && policies.remove(ns, &obj.name)
                {
                    knowledge.forget(ns, &obj.name);
                    tracing::info!(namespace = %ns, route = %obj.name, "route deleted; no longer served");
                }
            }
        })
        .await;
}

/// Whether a route's targets take a key from the Secret `name`.
fn names_secret(spec: &LlmRouteSpec, name: &str) -> bool {
    spec.targets.iter().any(|t| {
        t.credentials
            .secret_ref
            .as_ref()
            .is_some_and(|r| r.name == name)
    })
}

/// The reporter of this operator's Events.
pub fn reporter(pod: Option<String>) -> Reporter {
    Reporter {
        controller: MANAGER.into(),
        instance: pod,
    }
}

#[cfg(test)]
mod tests {
    //! The exact requests one reconcile makes, against a mocked API.

    use parking_lot::Mutex;

    use http::{Request, Response};
    use http_body_util::BodyExt as _;
    use kube::client::Body;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// A mocked API server: answers by path and records (method, path and query, body).
    fn mock(seen: Seen) -> Client {
        let service = tower::service_fn(move |req: Request<Body>| {
            let seen = seen.clone();
            async move {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                let text = String::from_utf8_lossy(&body).into_owned();
                seen.lock()
                    .push((method.clone(), uri.clone(), text.clone()));
                let (status, reply) = if uri.contains("/configmaps/schemas") {
                    (
                        200,
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "schemas", "namespace": "team-a"},
                        "data": {"answer.yaml": "type: object\nrequired: [score]\n"}}),
                    )
                } else if uri.contains("/secrets/llm-keys") {
                    (
                        200,
                        json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "llm-keys", "namespace": "team-a"},
                        "data": {"openai": "c2stdGVzdC1h"}}),
                    )
                } else if uri.contains("/llmroutes/chat/status") {
                    let sent: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    (
                        200,
                        json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
                        "metadata": {"name": "chat", "namespace": "team-a"},
                        "spec": {"match": {"models": ["chat"]}, "targets": []},
                        "status": sent["status"]}),
                    )
                } else {
                    (201, serde_json::from_str(&text).unwrap_or(json!({})))
                };
                let mut resp = Response::new(Body::from(reply.to_string().into_bytes()));
                *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
                resp.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        Client::new(service, "default")
    }

    fn route(spec: Value) -> Arc<LlmRoute> {
        let mut r: LlmRoute = serde_json::from_value(json!({
            "apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": "chat", "namespace": "team-a", "generation": 1, "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        r.status = None;
        Arc::new(r)
    }

    fn context(client: Client) -> Arc<Context> {
        Arc::new(Context {
            recorder: Recorder::new(client.clone(), reporter(Some("op-0".into()))),
            client,
            policies: Arc::new(Policies::new(1)),
            knowledge: Arc::new(crate::knowledge::Knowledge::new(
                plumb_knowledge::Settings::default(),
                Duration::from_secs(1),
                Arc::new(OperatorMetrics::new()),
            )),
            metrics: Arc::new(OperatorMetrics::new()),
            resync: Duration::from_secs(60),
        })
    }

    #[tokio::test]
    async fn a_valid_route_reads_its_config_map_and_secret_serves_and_applies_status() {
        let seen: Seen = Arc::default();
        let ctx = context(mock(seen.clone()));
        let spec = json!({
            "match": {"models": ["chat"]},
            "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "m",
                "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}}],
            "contract": {"schema": {"configMapKeyRef": {"name": "schemas", "key": "answer.yaml"}}},
        });
        let action = reconcile(route(spec), ctx.clone()).await;
        assert!(action.is_ok(), "{action:?}");
        let seen = seen.lock().clone();
        let calls: Vec<(&str, &str)> = seen
            .iter()
            .map(|(m, u, _)| (m.as_str(), u.as_str()))
            .collect();
        assert_eq!(
            calls[0],
            ("GET", "/api/v1/namespaces/team-a/configmaps/schemas")
        );
        assert_eq!(
            calls[1],
            ("GET", "/api/v1/namespaces/team-a/secrets/llm-keys")
        );
        assert_eq!(
            calls[2],
            (
                "PATCH",
                "/apis/plumb.dev/v1alpha1/namespaces/team-a/llmroutes/chat/status?&force=true&fieldManager=plumb-operator"
            )
        );
        let status: Value = serde_json::from_str(&seen[2].2).unwrap_or(Value::Null);
        assert_eq!(status["kind"], "LlmRoute");
        assert_eq!(status["status"]["observedGeneration"], 1);
        assert_eq!(status["status"]["conditions"][0]["type"], "Accepted");
        assert_eq!(status["status"]["conditions"][0]["status"], "True");
        assert!(
            calls[3]
                .1
                .starts_with("/apis/events.k8s.io/v1/namespaces/team-a/events"),
            "{calls:?}"
        );
        assert_eq!(calls.len(), 4, "{calls:?}");
        // The sidecars get the schema inline and the key.
        let snap = ctx.policies.subscribe("team-a").borrow().clone();
        let spec: Value = serde_json::from_str(&snap.routes[0].spec_json).unwrap_or(Value::Null);
        assert_eq!(
            spec["contract"]["schema"]["inline"]["required"],
            json!(["score"])
        );
        assert_eq!(snap.credentials[0].value, b"sk-test-a");
    }

    #[tokio::test]
    async fn an_invalid_route_reads_nothing_serves_nothing_and_says_why() {
        let seen: Seen = Arc::default();
        let ctx = context(mock(seen.clone()));
        let spec = json!({
            "match": {"models": ["chat"]},
            "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "m",
                "credentials": {"none": true}}],
            "deadlines": {"total": "10s", "connect": "20s"},
        });
        assert!(reconcile(route(spec), ctx.clone()).await.is_ok());
        let seen = seen.lock().clone();
        assert_eq!(seen[0].0, "PATCH");
        let status: Value = serde_json::from_str(&seen[0].2).unwrap_or(Value::Null);
        assert_eq!(status["status"]["conditions"][0]["status"], "False");
        assert!(
            status["status"]["conditions"][0]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("spec.deadlines.connect"),
            "{status}"
        );
        assert!(ctx.policies.routes_of("team-a").is_empty());
        let event: Value = serde_json::from_str(&seen[1].2).unwrap_or(Value::Null);
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "Invalid");
    }
}
