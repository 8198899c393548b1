//! A fake of the core Kubernetes objects the operator needs, in front of the real API server.
//!
//! The real `apiextensions-apiserver` serves custom resources but not the core API group,
//! TokenReviews or Events. This server sits in front of it on one endpoint: custom-resource
//! and CRD paths are forwarded to the real server (watches streamed), and Secrets,
//! ConfigMaps, TokenReviews and Events are served from memory, so the operator runs as a real
//! process against a real `kube::Client` configuration.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::{ApiServer, StartError};

type Body = BoxBody<Bytes, std::io::Error>;

/// A ServiceAccount token the fake vouches for.
#[derive(Clone, Debug)]
struct TokenOwner {
    namespace: String,
    service_account: String,
    pod: String,
    audiences: Vec<String>,
}

#[derive(Debug)]
struct State {
    resource_version: u64,
    /// Watch events of Secrets, as the API server streams them.
    secret_events: tokio::sync::broadcast::Sender<Value>,
    secrets: BTreeMap<(String, String), Value>,
    config_maps: BTreeMap<(String, String), Value>,
    tokens: HashMap<String, TokenOwner>,
    events: Vec<Value>,
    token_reviews: u64,
    leases: BTreeMap<(String, String), Value>,
    pod_labels: BTreeMap<(String, String), BTreeMap<String, String>>,
    webhook_configurations: BTreeMap<String, Value>,
    /// Every request that read Secrets: method, path and query, as sent.
    secret_reads: Vec<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            resource_version: 1,
            secret_events: tokio::sync::broadcast::channel(256).0,
            secrets: BTreeMap::new(),
            config_maps: BTreeMap::new(),
            tokens: HashMap::new(),
            events: Vec::new(),
            token_reviews: 0,
            leases: BTreeMap::new(),
            pod_labels: BTreeMap::new(),
            webhook_configurations: BTreeMap::new(),
            secret_reads: Vec::new(),
        }
    }
}

/// The fake, serving on loopback.
pub struct FakeCore {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCore {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

/// A failure as the API server words it.
fn status(code: StatusCode, reason: &str, message: String) -> Response<Body> {
    json_response(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(what: &str) -> Response<Body> {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} not found"),
    )
}

/// Creates (POST) or replaces (PUT, only at the stored resourceVersion) an object, as the API
/// server does: 409 when it exists already or was modified meanwhile.
fn write(
    resource_version: &mut u64,
    store: &mut BTreeMap<(String, String), Value>,
    method: &Method,
    namespace: &str,
    name_in_path: Option<&&str>,
    plural: &str,
    mut obj: Value,
) -> Result<(StatusCode, Value), Box<Response<Body>>> {
    let name = name_in_path
        .map(|n| (*n).to_owned())
        .or_else(|| obj["metadata"]["name"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let key = (namespace.to_owned(), name.clone());
    match (method, store.get(&key)) {
        (&Method::POST, Some(_)) => {
            return Err(Box::new(status(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{plural} \"{name}\" already exists"),
            )));
        }
        (&Method::PUT, None) => return Err(Box::new(not_found(&format!("{plural} \"{name}\"")))),
        (&Method::PUT, Some(cur))
            if cur["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"] =>
        {
            return Err(Box::new(status(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified"
                ),
            )));
        }
        _ => {}
    }
    *resource_version += 1;
    obj["metadata"]["resourceVersion"] = json!(resource_version.to_string());
    obj["metadata"]["namespace"] = json!(namespace);
    obj["metadata"]["name"] = json!(name);
    store.insert(key, obj.clone());
    let code = if method == Method::POST {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, obj))
}

/// The request's body, whole.
async fn body_bytes(req: Request<Incoming>) -> Bytes {
    req.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

impl FakeCore {
    /// Starts the fake in front of `api`.
    pub async fn start(api: &ApiServer) -> Result<FakeCore, StartError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| StartError(format!("cannot bind: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| StartError(e.to_string()))?;
        let state = Arc::new(Mutex::new(State::default()));
        let upstream = (api.url.clone(), api.client.clone());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (state, upstream) = (shared.clone(), upstream.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (state, upstream) = (state.clone(), upstream.clone());
                        async move { Ok::<_, Infallible>(handle(req, &state, &upstream).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FakeCore {
            url: format!("http://{addr}"),
            state,
            task,
        })
    }

    /// Puts a Secret with string data and `labels` (watchers see it added or modified).
    pub fn put_secret(
        &self,
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
        data: &[(&str, &str)],
    ) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(base64_encode(v.as_bytes()))))
            .collect();
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let mut s = self.state.lock();
        s.resource_version += 1;
        let obj = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}"),
                "labels": labels, "resourceVersion": s.resource_version.to_string()},
            "type": "Opaque", "data": data});
        let kind = if s
            .secrets
            .insert((namespace.to_owned(), name.to_owned()), obj.clone())
            .is_some()
        {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let _ = s.secret_events.send(json!({"type": kind, "object": obj}));
    }

    /// Every request that read Secrets so far (method, path and query), to check what the
    /// operator asked for.
    pub fn secret_reads(&self) -> Vec<String> {
        self.state.lock().secret_reads.clone()
    }

    /// Puts a ConfigMap.
    pub fn put_config_map(&self, namespace: &str, name: &str, data: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"},
            "data": data});
        self.state
            .lock()
            .config_maps
            .insert((namespace.to_owned(), name.to_owned()), obj);
    }

    /// Vouches for `token` as the ServiceAccount `service_account` of `namespace`, issued to
    /// `pod`, bound to `audience`.
    pub fn add_token(
        &self,
        token: &str,
        namespace: &str,
        service_account: &str,
        pod: &str,
        audience: &str,
    ) {
        self.state.lock().tokens.insert(
            token.to_owned(),
            TokenOwner {
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
                pod: pod.to_owned(),
                audiences: vec![audience.to_owned()],
            },
        );
    }

    /// The Events posted so far.
    pub fn events(&self) -> Vec<Value> {
        self.state.lock().events.clone()
    }

    /// How many TokenReviews were asked for.
    pub fn token_reviews(&self) -> u64 {
        self.state.lock().token_reviews
    }

    /// Puts a MutatingWebhookConfiguration (as `helm install` would).
    pub fn put_webhook_configuration(&self, obj: Value) {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.state.lock().webhook_configurations.insert(name, obj);
    }

    /// A MutatingWebhookConfiguration as it is now.
    pub fn webhook_configuration(&self, name: &str) -> Option<Value> {
        self.state.lock().webhook_configurations.get(name).cloned()
    }

    /// A Secret as it is now.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// The labels of a pod, as the operator patched them.
    pub fn pod_labels(&self, namespace: &str, name: &str) -> BTreeMap<String, String> {
        self.state
            .lock()
            .pod_labels
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// The holder of a Lease, if any.
    pub fn lease_holder(&self, namespace: &str, name: &str) -> Option<String> {
        self.state
            .lock()
            .leases
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
    }

    /// A kubeconfig pointing at the fake (no credentials: the fake needs none).
    pub fn kubeconfig(&self, dir: &std::path::Path) -> Result<std::path::PathBuf, StartError> {
        let path = dir.join("fake-kubeconfig.yaml");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\nusers:\n- name: fake\n  user: {{}}\ncurrent-context: fake\n",
            self.url
        );
        std::fs::write(&path, text).map_err(|e| StartError(e.to_string()))?;
        Ok(path)
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A query parameter, decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    let url = reqwest::Url::parse(&format!("http://fake/?{query}")).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Whether an object's labels match a label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`,
/// comma-separated; empty matches everything).
fn labels_match(obj: &Value, selector: &str) -> bool {
    let label = |k: &str| obj["metadata"]["labels"][k].as_str().map(str::to_owned);
    selector
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|r| {
            if let Some((k, v)) = r.split_once("!=") {
                label(k.trim()).as_deref() != Some(v.trim())
            } else if let Some((k, v)) = r.split_once("==").or_else(|| r.split_once('=')) {
                label(k.trim()).as_deref() == Some(v.trim())
            } else if let Some(k) = r.strip_prefix('!') {
                label(k.trim()).is_none()
            } else {
                label(r).is_some()
            }
        })
}

/// Whether an object matches a field selector on `metadata.name` / `metadata.namespace`.
fn fields_match(obj: &Value, selector: &str) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .all(|r| match r.split_once('=') {
            Some((k, v)) => {
                let v = v.trim_start_matches('=');
                match k.trim() {
                    "metadata.name" => obj["metadata"]["name"] == v,
                    "metadata.namespace" => obj["metadata"]["namespace"] == v,
                    _ => false,
                }
            }
            None => false,
        })
}

/// Secrets of one namespace or all, filtered by the query's label and field selectors, whole
/// or (`metadata_only`) as `PartialObjectMetadataList`.
fn secret_list(
    s: &State,
    namespace: Option<&str>,
    query: &str,
    metadata_only: bool,
) -> Response<Body> {
    let labels = query_param(query, "labelSelector").unwrap_or_default();
    let fields = query_param(query, "fieldSelector").unwrap_or_default();
    let items = s
        .secrets
        .iter()
        .filter(|((ns, _), _)| namespace.is_none_or(|n| n == ns))
        .map(|(_, obj)| obj)
        .filter(|obj| labels_match(obj, &labels) && fields_match(obj, &fields));
    let list = if metadata_only {
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
            "metadata": {"resourceVersion": s.resource_version.to_string()},
            "items": items.map(|o| json!({"apiVersion": "meta.k8s.io/v1",
                "kind": "PartialObjectMetadata", "metadata": o["metadata"]})).collect::<Vec<_>>()})
    } else {
        json!({"apiVersion": "v1", "kind": "SecretList",
            "metadata": {"resourceVersion": s.resource_version.to_string()},
            "items": items.cloned().collect::<Vec<_>>()})
    };
    json_response(StatusCode::OK, &list)
}

async fn handle(
    req: Request<Incoming>,
    state: &Arc<Mutex<State>>,
    upstream: &(String, reqwest::Client),
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path.starts_with("/apis/plumb.dev") || path.starts_with("/apis/apiextensions.k8s.io") {
        return forward(req, upstream).await;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let watching = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let metadata_only = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));
    if segments.contains(&"secrets") && method == Method::GET {
        state
            .lock()
            .secret_reads
            .push(format!("GET {path}?{query}"));
    }
    match (method, segments.as_slice()) {
        (Method::GET, ["api", "v1", "secrets"]) if watching => {
            let rx = state.lock().secret_events.subscribe();
            let selector = query_param(&query, "labelSelector").unwrap_or_default();
            let stream = futures_util::stream::unfold(rx, move |mut rx| {
                let selector = selector.clone();
                async move {
                    loop {
                        let ev = match rx.recv().await {
                            Ok(ev) => ev,
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                        };
                        // As the API server does: an object that stops matching the selector
                        // is deleted for this watch; one that never matched is not seen.
                        let ev = match (labels_match(&ev["object"], &selector), ev["type"].as_str())
                        {
                            (true, _) => ev,
                            (false, Some("MODIFIED" | "DELETED")) => {
                                json!({"type": "DELETED", "object": ev["object"]})
                            }
                            (false, _) => continue,
                        };
                        let line = Bytes::from(format!("{ev}\n"));
                        return Some((Ok::<_, std::io::Error>(Frame::data(line)), rx));
                    }
                }
            });
            let mut r = Response::new(StreamBody::new(stream).boxed());
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            r
        }
        (Method::GET, ["api", "v1", "secrets"]) => {
            let s = state.lock();
            secret_list(&s, None, &query, metadata_only)
        }
        (Method::GET, ["api", "v1", "namespaces", ns, "secrets"]) => {
            let s = state.lock();
            secret_list(&s, Some(ns), &query, metadata_only)
        }
        (
            Method::GET,
            [
                "api",
                "v1",
                "namespaces",
                ns,
                kind @ ("secrets" | "configmaps"),
                name,
            ],
        ) => {
            let key = ((*ns).to_owned(), (*name).to_owned());
            let s = state.lock();
            let found = if *kind == "secrets" {
                s.secrets.get(&key)
            } else {
                s.config_maps.get(&key)
            };
            match found {
                Some(obj) => json_response(StatusCode::OK, obj),
                None => not_found(&format!("{kind} \"{name}\"")),
            }
        }
        (Method::POST, ["apis", "authentication.k8s.io", "v1", "tokenreviews"]) => {
            let body = body_bytes(req).await;
            let review: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let token = review["spec"]["token"].as_str().unwrap_or("");
            let wanted: Vec<String> = review["spec"]["audiences"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mut s = state.lock();
            s.token_reviews += 1;
            let status = match s.tokens.get(token) {
                Some(owner) if wanted.iter().all(|w| owner.audiences.contains(w)) => json!({
                    "authenticated": true,
                    "audiences": owner.audiences,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", owner.namespace, owner.service_account),
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", owner.namespace)],
                        "extra": {"authentication.kubernetes.io/pod-name": [owner.pod]},
                    },
                }),
                Some(_) => json!({"authenticated": false, "error": "token audiences do not match"}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            json_response(
                StatusCode::CREATED,
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                    "metadata": {}, "spec": review["spec"], "status": status}),
            )
        }
        (
            Method::POST | Method::PATCH,
            ["apis", "events.k8s.io", "v1", "namespaces", _, "events", ..],
        )
        | (Method::POST | Method::PATCH, ["api", "v1", "namespaces", _, "events", ..]) => {
            let body = body_bytes(req).await;
            let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            state.lock().events.push(event.clone());
            json_response(StatusCode::CREATED, &event)
        }
        (
            Method::GET,
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                name,
            ],
        ) => match state
            .lock()
            .leases
            .get(&((*ns).to_owned(), (*name).to_owned()))
        {
            Some(l) => json_response(StatusCode::OK, l),
            None => not_found(&format!("leases \"{name}\"")),
        },
        (
            m @ (Method::POST | Method::PUT),
            [
                "apis",
                "coordination.k8s.io",
                "v1",
                "namespaces",
                ns,
                "leases",
                rest @ ..,
            ],
        ) => {
            let obj: Value = serde_json::from_slice(&body_bytes(req).await).unwrap_or(Value::Null);
            let mut s = state.lock();
            let State {
                resource_version,
                leases,
                ..
            } = &mut *s;
            match write(
                resource_version,
                leases,
                &m,
                ns,
                rest.first(),
                "leases",
                obj,
            ) {
                Ok((code, obj)) => json_response(code, &obj),
                Err(r) => *r,
            }
        }
        (
            m @ (Method::POST | Method::PUT),
            ["api", "v1", "namespaces", ns, "secrets", rest @ ..],
        ) => {
            let obj: Value = serde_json::from_slice(&body_bytes(req).await).unwrap_or(Value::Null);
            let mut s = state.lock();
            let State {
                resource_version,
                secrets,
                secret_events,
                ..
            } = &mut *s;
            match write(
                resource_version,
                secrets,
                &m,
                ns,
                rest.first(),
                "secrets",
                obj,
            ) {
                Ok((code, obj)) => {
                    let kind = if code == StatusCode::CREATED {
                        "ADDED"
                    } else {
                        "MODIFIED"
                    };
                    let _ = secret_events.send(json!({"type": kind, "object": obj}));
                    json_response(code, &obj)
                }
                Err(r) => *r,
            }
        }
        (
            m @ (Method::GET | Method::PATCH),
            [
                "apis",
                "admissionregistration.k8s.io",
                "v1",
                "mutatingwebhookconfigurations",
                name,
            ],
        ) => {
            let body = body_bytes(req).await;
            let mut s = state.lock();
            let Some(cur) = s.webhook_configurations.get_mut(*name) else {
                return not_found(&format!("mutatingwebhookconfigurations \"{name}\""));
            };
            if m == Method::PATCH {
                let Ok(patch) = serde_json::from_slice::<json_patch::Patch>(&body) else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "the fake takes JSON patches".into(),
                    );
                };
                if let Err(e) = json_patch::patch(cur, &patch) {
                    return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", e.to_string());
                }
            }
            json_response(StatusCode::OK, cur)
        }
        (Method::PATCH, ["api", "v1", "namespaces", ns, "pods", name]) => {
            let body = body_bytes(req).await;
            let patch: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let mut s = state.lock();
            let labels = s
                .pod_labels
                .entry(((*ns).to_owned(), (*name).to_owned()))
                .or_default();
            if let Some(obj) = patch["metadata"]["labels"].as_object() {
                for (k, v) in obj {
                    match v.as_str() {
                        Some(v) => {
                            labels.insert(k.clone(), v.to_owned());
                        }
                        None => {
                            labels.remove(k);
                        }
                    }
                }
            }
            json_response(
                StatusCode::OK,
                &json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": ns, "labels": labels.clone()}}),
            )
        }
        (_, _) => not_found(&format!("{} (the fake serves no such path)", path)),
    }
}

async fn forward(req: Request<Incoming>, upstream: &(String, reqwest::Client)) -> Response<Body> {
    let (url, client) = upstream;
    let target = format!(
        "{url}{}",
        req.uri()
            .path_and_query()
            .map_or(req.uri().path(), |p| p.as_str())
    );
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .unwrap_or(reqwest::Method::GET);
    let mut headers = reqwest::header::HeaderMap::new();
    for name in ["content-type", "accept"] {
        if let Some(v) = req.headers().get(name)
            && let Ok(v) = reqwest::header::HeaderValue::from_bytes(v.as_bytes())
        {
            headers.insert(name, v);
        }
    }
    let body = body_bytes(req).await;
    let resp = match client
        .request(method, &target)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return status(
                StatusCode::BAD_GATEWAY,
                "BadGateway",
                format!("the real API server: {e}"),
            );
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get("content-type").cloned();
    let stream = resp
        .bytes_stream()
        .map_ok(Frame::data)
        .map_err(std::io::Error::other);
    let mut r = Response::new(StreamBody::new(stream).boxed());
    *r.status_mut() = status;
    if let Some(ct) = content_type
        && let Ok(v) = http::HeaderValue::from_bytes(ct.as_bytes())
    {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_field_selectors() {
        let obj = json!({"metadata": {"name": "keys", "namespace": "a",
            "labels": {"plumb.dev/credentials": "true", "team": "x"}}});
        for yes in [
            "",
            "plumb.dev/credentials=true",
            "plumb.dev/credentials==true,team",
            "team!=y",
            "!other",
        ] {
            assert!(labels_match(&obj, yes), "{yes}");
        }
        for no in ["plumb.dev/credentials=false", "other", "!team", "team!=x"] {
            assert!(!labels_match(&obj, no), "{no}");
        }
        assert!(fields_match(&obj, "metadata.name=keys"));
        assert!(fields_match(
            &obj,
            "metadata.name==keys,metadata.namespace=a"
        ));
        assert!(!fields_match(&obj, "metadata.name=other"));
        assert_eq!(
            query_param(
                "labelSelector=plumb.dev%2Fcredentials%3Dtrue&watch=true",
                "labelSelector"
            )
            .as_deref(),
            Some("plumb.dev/credentials=true")
        );
    }

    #[test]
    fn base64_of_known_strings() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"sk-test-a"), "c2stdGVzdC1h");
    }
}
