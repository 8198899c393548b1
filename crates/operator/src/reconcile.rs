//! The reconcile loop: every `LlmRoute` compiled with the same code the sidecar runs
//! standalone; a good generation goes to the namespace's sidecars, an invalid one never
//! replaces the last good one; status written with server-side apply; Events on changes.
//!
//! Keys come only from Secrets labelled `plumb.dev/credentials: "true"` (see [`credentials`]):
//! a route naming any other Secret is refused like an invalid one.
//!
//! ```text
//! LlmRoute changed ─▶ read its ConfigMap schemas ─▶ compile ─┬─ ok ──▶ its labelled Secrets' keys ─┬─ serve (new snapshot)
//!  or a sidecar acked                                       │                                     └─ a Secret not labelled ─▶ keep the last good one
//!  or a labelled Secret changed                             └─ invalid ─▶ keep the last good one
//!                                         └──────────────▶ status (Accepted, Programmed, Degraded) ─▶ Event on change
//! ```

use std::collections::{BTreeSet, HashMap};
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
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use plumb_api::{LlmRoute, LlmRouteSpec, LlmRouteStatus};
use plumb_policy::compile_with;
use plumb_policy::contract::Sources;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::credentials::{self, Resolved};
use crate::policies::Policies;
use crate::status::{Found, Refusal, status};
use plumb_telemetry::operator::{NamespaceLabels, OperatorMetrics, ReasonLabels, ResultLabels};

/// The field manager of everything the operator writes.
pub const MANAGER: &str = "plumb-operator";

/// How long sidecars' acknowledgements are gathered before their namespaces' routes are
/// reconciled. A snapshot that M sidecars acknowledge is then one reconcile per route, not up
/// to M of them, each counting all M sidecars and writing status: the Programmed condition
/// lags by at most this much.
const ACKS_GATHERED_FOR: Duration = Duration::from_millis(250);

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
    /// The Secrets labelled for routes (the only ones whose data the operator holds), fed by
    /// [`run`].
    pub secrets: Store<Secret>,
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
    /// A Secret the route names was labelled for routes a moment ago and the operator's watch
    /// has not delivered it yet.
    #[error("Secret {0:?} is labelled for routes but not yet seen by the operator's watch")]
    SecretNotCached(String),
}

impl Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "transport",
            Error::NoNamespace => "no_namespace",
            Error::SecretNotCached(_) => "secret_not_cached",
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

/// Reconciles one route.
pub async fn reconcile(route: Arc<LlmRoute>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = route.namespace().ok_or(Error::NoNamespace)?;
    let name = route.name_any();
    let generation = route.metadata.generation.unwrap_or(0);
    let mut warnings = Vec::new();
    let compiled = match config_maps(&ctx.client, &namespace, &route.spec).await {
        Err(msg) => Err(Refusal::Invalid(msg)),
        Ok(maps) => {
            let sources = Sources {
                base_dir: None,
                config_maps: maps.clone(),
            };
            match compile_with(&namespace, &name, &route.spec, &sources) {
                Ok(r) => match credentials::resolve(&ctx.client, &ctx.secrets, &namespace, &r)
                    .await?
                {
                    Resolved::Keys(creds) => {
                        warnings = r.warnings().iter().map(ToString::to_string).collect();
                        ctx.knowledge
                            .describe(&namespace, &name, route.metadata.uid.clone(), &r);
                        let targets = r.all_targets().count() as u32;
                        match ctx.policies.serve(
                            &namespace,
                            &name,
                            generation,
                            inlined(&route.spec, &maps),
                            creds,
                        ) {
                            Ok(true) => {
                                tracing::info!(%namespace, route = %name, generation, "serving");
                                Ok(targets)
                            }
                            Ok(false) => Ok(targets),
                            Err(too_large) => {
                                tracing::error!(%namespace, route = %name, generation, bytes = too_large.bytes, limit = too_large.limit, "a generation would take the namespace's snapshot over the control stream's limit; refused, the last good one keeps serving");
                                ctx.metrics
                                    .oversized_snapshots
                                    .get_or_create(&NamespaceLabels {
                                        namespace: namespace.clone(),
                                    })
                                    .inc();
                                Err(Refusal::SnapshotTooLarge(too_large))
                            }
                        }
                    }
                    Resolved::NotLabelled(secrets) => {
                        // Their owner may just have taken the label off: what is in force
                        // stops carrying their keys too.
                        if ctx.policies.withdraw(&namespace, &name, &secrets) {
                            tracing::warn!(%namespace, route = %name, ?secrets, "keys of Secrets no longer labelled for routes withdrawn from the sidecars");
                        }
                        Err(Refusal::SecretsNotLabelled {
                            namespace: namespace.clone(),
                            secrets,
                        })
                    }
                    Resolved::NotCached(secret) => return Err(Error::SecretNotCached(secret)),
                },
                Err(e) => Err(Refusal::Invalid(e.to_string())),
            }
        }
    };
    let found = Found {
        generation,
        compiled,
        warnings,
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
        let warning = matches!(
            reason.as_str(),
            "Invalid" | "Rejected" | "SecretNotLabelled" | "SnapshotTooLarge"
        );
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
/// something: their routes' status is brought up to date. `secrets` feeds
/// [`Context::secrets`]: only Secrets labelled for routes are watched, and no route is
/// reconciled before they are all listed (a route reconciled earlier would go out without its
/// keys).
pub async fn run(
    ctx: Arc<Context>,
    mut acks: mpsc::Receiver<String>,
    secrets: reflector::store::Writer<Secret>,
) {
    let api: Api<LlmRoute> = Api::all(ctx.client.clone());
    let policies = ctx.policies.clone();
    let (trigger_tx, trigger_rx) = mpsc::channel::<ObjectRef<LlmRoute>>(1024);
    let trigger_tx_for_secrets = trigger_tx.clone();
    tokio::spawn(async move {
        while let Some(namespaces) = gather(&mut acks, ACKS_GATHERED_FOR).await {
            for ns in namespaces {
                for name in policies.routes_of(&ns) {
                    let _ = trigger_tx.try_send(ObjectRef::new(&name).within(&ns));
                }
            }
        }
    });
    let policies = ctx.policies.clone();
    let knowledge = ctx.knowledge.clone();
    let controller = Controller::new(api, watcher::Config::default());
    // A labelled Secret that changes (or loses its label) reconciles the routes of its
    // namespace that name it, so a rotated key reaches the sidecars at once and a withdrawn
    // one leaves them. RBAC cannot limit the watch by label; the selector keeps every other
    // Secret out of the operator's memory.
    let routes = controller.store();
    let api: Api<Secret> = Api::all(ctx.client.clone());
    let secret_trigger = trigger_tx_for_secrets;
    tokio::spawn(async move {
        let changes = reflector::reflector(
            secrets,
            watcher::watcher(
                api,
                watcher::Config::default().labels(credentials::SELECTOR),
            ),
        )
        .default_backoff()
        .touched_objects();
        futures_util::pin_mut!(changes);
        while let Some(change) = changes.next().await {
            let secret = match change {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the Secrets labelled for routes; routes wait for it and keys do not rotate");
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
    if ctx.secrets.wait_until_ready().await.is_err() {
        return;
    }
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

/// The namespaces named on `acks` from the next one until `window` after it, each once;
/// `None` when the channel is closed and empty.
async fn gather(acks: &mut mpsc::Receiver<String>, window: Duration) -> Option<BTreeSet<String>> {
    let first = acks.recv().await?;
    let until = tokio::time::Instant::now() + window;
    let mut namespaces = BTreeSet::from([first]);
    while let Ok(Some(ns)) = tokio::time::timeout_at(until, acks.recv()).await {
        namespaces.insert(ns);
    }
    Some(namespaces)
}

/// Whether a route's targets take a key, or their proxy's credentials, from the Secret `name`.
fn names_secret(spec: &LlmRouteSpec, name: &str) -> bool {
    spec.targets.iter().any(|t| {
        let key = t.credentials.secret_ref.as_ref();
        let proxy = t.proxy.as_ref().and_then(|p| p.credentials_secret.as_ref());
        key.into_iter().chain(proxy).any(|r| r.name == name)
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
    use kube::runtime::reflector::store::Writer;

    use super::*;

    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// The Secrets the mocked API server has: `llm-keys` (labelled for routes) and
    /// `db-password` (not labelled).
    fn secret(name: &str, labelled: bool, data: Value) -> Value {
        let labels = if labelled {
            json!({"plumb.dev/credentials": "true"})
        } else {
            json!({"app": "db"})
        };
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "team-a", "labels": labels},
            "data": data})
    }

    fn llm_keys(value: &str) -> Value {
        use base64::Engine as _;
        secret(
            "llm-keys",
            true,
            json!({"openai": base64::engine::general_purpose::STANDARD.encode(value)}),
        )
    }

    fn db_password() -> Value {
        secret("db-password", false, json!({"password": "aHVudGVyMg=="}))
    }

    fn mock(seen: Seen) -> Client {
        mock_where(seen, llm_keys("sk-test-a"))
    }

    /// A mocked API server: answers by path and records (method, path and query, body). It
    /// knows both Secrets (`llm_keys` as given), so a request for either's data would be
    /// answered — and seen.
    fn mock_where(seen: Seen, llm_keys: Value) -> Client {
        let service = tower::service_fn(move |req: Request<Body>| {
            let (seen, llm_keys) = (seen.clone(), llm_keys.clone());
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
                let metadata_of = |s: Value| {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                        "metadata": s["metadata"]})
                };
                let list = |items: Vec<Value>| {
                    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                        "metadata": {"resourceVersion": "1"}, "items": items})
                };
                let (status, reply) = if uri.contains("/configmaps/schemas") {
                    (
                        200,
                        json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "schemas", "namespace": "team-a"},
                        "data": {"answer.yaml": "type: object\nrequired: [score]\n"}}),
                    )
                } else if uri.contains("/secrets/llm-keys") {
                    (200, llm_keys.clone())
                } else if uri.contains("/secrets/db-password") {
                    (200, db_password())
                } else if uri.contains("/secrets?") {
                    let items = if uri.contains("metadata.name%3Ddb-password") {
                        vec![metadata_of(db_password())]
                    } else if uri.contains("metadata.name%3Dllm-keys") {
                        vec![metadata_of(llm_keys.clone())]
                    } else {
                        vec![]
                    };
                    (200, list(items))
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

    fn route_at(generation: i64, spec: Value) -> Arc<LlmRoute> {
        let mut r: LlmRoute = serde_json::from_value(json!({
            "apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": "chat", "namespace": "team-a", "generation": generation, "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        r.status = None;
        Arc::new(r)
    }

    fn route(spec: Value) -> Arc<LlmRoute> {
        route_at(1, spec)
    }

    /// A spec with one target taking its key from `secret`.
    fn keyed(secret: &str, key: &str) -> Value {
        json!({
            "match": {"models": ["chat"]},
            "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "m",
                "credentials": {"secretRef": {"name": secret, "key": key}}}],
        })
    }

    /// A context whose watch of labelled Secrets has delivered `watched`.
    fn context_with(client: Client, watched: &[Value]) -> (Arc<Context>, Writer<Secret>) {
        let (store, mut writer) = reflector::store::<Secret>();
        for s in watched {
            let secret: Secret =
                serde_json::from_value(s.clone()).unwrap_or_else(|e| panic!("{e}"));
            writer.apply_watcher_event(&watcher::Event::Apply(secret));
        }
        let ctx = Arc::new(Context {
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
            secrets: store,
        });
        (ctx, writer)
    }

    fn context(client: Client) -> Arc<Context> {
        context_with(client, &[llm_keys("sk-test-a")]).0
    }

    fn calls(seen: &Seen) -> Vec<(String, String)> {
        seen.lock()
            .iter()
            .map(|(m, u, _)| (m.clone(), u.clone()))
            .collect()
    }

    fn accepted(seen: &Seen) -> Value {
        let status = seen
            .lock()
            .iter()
            .rev()
            .find(|(m, u, _)| m == "PATCH" && u.contains("/status"))
            .map(|(_, _, b)| serde_json::from_str::<Value>(b).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        status["status"]["conditions"][0].clone()
    }

    #[test]
    fn a_secret_named_by_a_key_or_a_proxy_reconciles_the_route() {
        let spec: LlmRouteSpec = serde_json::from_value(json!({"match": {"models": ["m"]}, "targets": [
            {"name": "a", "provider": "openai", "baseUrl": "https://x/v1", "model": "m",
             "credentials": {"secretRef": {"name": "keys", "key": "k"}},
             "proxy": {"url": "http://p:3128", "credentialsSecret": {"name": "corp-proxy", "key": "auth"}}}
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(names_secret(&spec, "keys"));
        assert!(names_secret(&spec, "corp-proxy"));
        assert!(!names_secret(&spec, "other"));
    }

    #[tokio::test]
    async fn a_valid_route_reads_its_config_map_takes_its_labelled_secret_from_the_watch_and_applies_status()
     {
        let seen: Seen = Arc::default();
        let ctx = context(mock(seen.clone()));
        let mut spec = keyed("llm-keys", "openai");
        spec["contract"] =
            json!({"schema": {"configMapKeyRef": {"name": "schemas", "key": "answer.yaml"}}});
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
        // The key comes from the watch of labelled Secrets: no Secret is read here.
        assert_eq!(
            calls[1],
            (
                "PATCH",
                "/apis/plumb.dev/v1alpha1/namespaces/team-a/llmroutes/chat/status?&force=true&fieldManager=plumb-operator"
            )
        );
        let status: Value = serde_json::from_str(&seen[1].2).unwrap_or(Value::Null);
        assert_eq!(status["kind"], "LlmRoute");
        assert_eq!(status["status"]["observedGeneration"], 1);
        assert_eq!(status["status"]["conditions"][0]["type"], "Accepted");
        assert_eq!(status["status"]["conditions"][0]["status"], "True");
        assert!(
            calls[2]
                .1
                .starts_with("/apis/events.k8s.io/v1/namespaces/team-a/events"),
            "{calls:?}"
        );
        assert_eq!(calls.len(), 3, "{calls:?}");
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
    async fn a_route_naming_an_unlabelled_secret_is_refused_by_name_and_its_data_is_never_read() {
        let seen: Seen = Arc::default();
        let ctx = context(mock(seen.clone()));
        assert!(
            reconcile(route(keyed("db-password", "password")), ctx.clone())
                .await
                .is_ok()
        );
        // One metadata-only lookup of that name; never a read of the Secret itself.
        let secret_calls: Vec<(String, String)> = calls(&seen)
            .into_iter()
            .filter(|(_, u)| u.contains("/secrets"))
            .collect();
        assert_eq!(
            secret_calls,
            vec![(
                "GET".to_owned(),
                "/api/v1/namespaces/team-a/secrets?&fieldSelector=metadata.name%3Ddb-password"
                    .to_owned()
            )]
        );
        let c = accepted(&seen);
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "SecretNotLabelled");
        let msg = c["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("Secret \"db-password\" is not labelled plumb.dev/credentials: \"true\""),
            "{msg}"
        );
        assert!(
            msg.contains("kubectl -n team-a label secret db-password plumb.dev/credentials=true"),
            "{msg}"
        );
        assert!(
            ctx.policies.routes_of("team-a").is_empty(),
            "nothing served"
        );
        let snap = ctx.policies.subscribe("team-a").borrow().clone();
        assert!(snap.credentials.is_empty());
        let event = seen
            .lock()
            .iter()
            .find(|(_, u, _)| u.contains("/events"))
            .map(|(_, _, b)| serde_json::from_str::<Value>(b).unwrap_or(Value::Null))
            .unwrap_or(Value::Null);
        assert_eq!(event["type"], "Warning");
        assert_eq!(event["reason"], "SecretNotLabelled");
        let all = format!("{:?}", seen.lock());
        assert!(!all.contains("hunter2") && !all.contains("aHVudGVyMg"));
    }

    #[tokio::test]
    async fn an_update_naming_an_unlabelled_secret_leaves_the_last_good_generation_serving() {
        let seen: Seen = Arc::default();
        let ctx = context(mock(seen.clone()));
        assert!(
            reconcile(route_at(1, keyed("llm-keys", "openai")), ctx.clone())
                .await
                .is_ok()
        );
        assert_eq!(ctx.policies.serving("team-a", "chat"), Some(1));
        assert!(
            reconcile(route_at(2, keyed("db-password", "password")), ctx.clone())
                .await
                .is_ok()
        );
        assert_eq!(ctx.policies.serving("team-a", "chat"), Some(1));
        let snap = ctx.policies.subscribe("team-a").borrow().clone();
        assert_eq!(snap.credentials.len(), 1);
        assert_eq!(snap.credentials[0].secret_name, "llm-keys");
        assert_eq!(snap.credentials[0].value, b"sk-test-a");
        assert_eq!(accepted(&seen)["reason"], "SecretNotLabelled");
    }

    #[tokio::test]
    async fn a_secret_whose_label_is_taken_off_no_longer_reaches_the_sidecars() {
        let seen: Seen = Arc::default();
        // The API server has it unlabelled; the watch delivered it while it was labelled.
        let now_unlabelled = secret("llm-keys", false, llm_keys("sk-test-a")["data"].clone());
        let (ctx, mut writer) = context_with(
            mock_where(seen.clone(), now_unlabelled),
            &[llm_keys("sk-test-a")],
        );
        assert!(
            reconcile(route(keyed("llm-keys", "openai")), ctx.clone())
                .await
                .is_ok()
        );
        assert_eq!(
            ctx.policies.subscribe("team-a").borrow().credentials.len(),
            1
        );
        // The label selector's watch deletes it when the label goes.
        let gone: Secret =
            serde_json::from_value(llm_keys("sk-test-a")).unwrap_or_else(|e| panic!("{e}"));
        writer.apply_watcher_event(&watcher::Event::Delete(gone));
        assert!(
            reconcile(route(keyed("llm-keys", "openai")), ctx.clone())
                .await
                .is_ok()
        );
        let snap = ctx.policies.subscribe("team-a").borrow().clone();
        assert!(snap.credentials.is_empty(), "the withdrawn key is gone");
        assert_eq!(snap.routes.len(), 1, "the route itself stays");
        assert_eq!(accepted(&seen)["reason"], "SecretNotLabelled");
    }

    #[tokio::test]
    async fn a_generation_too_large_for_the_control_stream_is_refused_in_status_with_a_metric() {
        let seen: Seen = Arc::default();
        let (ctx, _writer) = context_with(mock(seen.clone()), &[llm_keys("sk-test-a")]);
        let ctx = Arc::new(Context {
            client: ctx.client.clone(),
            recorder: ctx.recorder.clone(),
            policies: Arc::new(Policies::with_limit(1, 600)),
            knowledge: ctx.knowledge.clone(),
            metrics: ctx.metrics.clone(),
            resync: ctx.resync,
            secrets: ctx.secrets.clone(),
        });
        let mut spec = keyed("llm-keys", "openai");
        spec["match"]["models"] = json!(["chat", "x".repeat(1_000)]);
        assert!(reconcile(route(spec), ctx.clone()).await.is_ok());
        let c = accepted(&seen);
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "SnapshotTooLarge");
        assert!(
            c["message"]
                .as_str()
                .unwrap_or_default()
                .contains("over the 600-byte limit"),
            "{c}"
        );
        assert!(ctx.policies.routes_of("team-a").is_empty());
        assert!(
            ctx.metrics
                .encode_for(None)
                .0
                .contains("plumb_operator_oversized_snapshots_total{namespace=\"team-a\"} 1")
        );
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

    #[tokio::test(start_paused = true)]
    async fn acknowledgements_are_gathered_into_one_reconcile_per_namespace() {
        let (tx, mut rx) = mpsc::channel(16);
        for ns in ["team-a", "team-b", "team-a", "team-a"] {
            let _ = tx.try_send(ns.to_owned());
        }
        // One that comes in the window joins the batch; one after it starts the next.
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = late.send("team-c".to_owned()).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            let _ = late.send("team-a".to_owned()).await;
        });
        let first = gather(&mut rx, Duration::from_millis(250)).await;
        assert_eq!(
            first,
            Some(BTreeSet::from([
                "team-a".to_owned(),
                "team-b".to_owned(),
                "team-c".to_owned()
            ]))
        );
        let second = gather(&mut rx, Duration::from_millis(250)).await;
        assert_eq!(second, Some(BTreeSet::from(["team-a".to_owned()])));
        drop(tx);
        assert_eq!(gather(&mut rx, Duration::from_millis(250)).await, None);
    }
}
