//! The control plane, from the sidecar's side: routes from the operator instead of a file.
//!
//! One TLS stream to the operator, opened with the pod's ServiceAccount token. Every snapshot
//! is compiled with the same code as a routes file; the routes that compile and whose keys
//! resolve are put in force at once (in-flight requests keep the policy they started with),
//! the others are refused one by one in the acknowledgement, with the reason. While the stream
//! is down the sidecar keeps serving its last good policy (fail static) and reconnects with
//! backoff; with `--policy-cache` that policy is also written to a file, so a restarted sidecar
//! serves before it reconnects.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use plumb_api::LlmRouteSpec;
use plumb_policy::{RouteSet, Sources, compile_with};
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_telemetry::{Metrics, ReloadLabels};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::keys::{Keys, SecretValues};
use crate::table::{Policy, Table};

/// Where the control plane is and how to prove who we are.
#[derive(Clone, Debug)]
pub struct ControlPlane {
    /// `https://HOST:PORT`.
    pub url: String,
    /// The projected ServiceAccount token, re-read on every connection (it rotates).
    pub token_file: PathBuf,
    /// CA certificates (PEM) to trust for the operator, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// A CA certificate (PEM text) to trust for the operator.
    pub ca_pem: Option<String>,
    /// Where the last good policy is kept across restarts, if anywhere.
    pub cache: Option<PathBuf>,
    /// `POD_NAMESPACE`.
    pub namespace: String,
    /// `POD_NAME`.
    pub pod: String,
    /// How long the stream may stay silent before it is considered dead.
    pub silence: Duration,
    /// How often what this sidecar learned is reported (state changes go at once).
    pub report_interval: Duration,
}

/// The policy as the cache file keeps it: the snapshot as it came.
#[derive(Debug, Serialize, Deserialize)]
struct Cached {
    version: String,
    namespace: String,
    routes: Vec<CachedRoute>,
    credentials: Vec<CachedCredential>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedRoute {
    name: String,
    generation: i64,
    spec_json: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedCredential {
    secret_name: String,
    key: String,
    value_base64: String,
}

impl From<&v1::Snapshot> for Cached {
    fn from(s: &v1::Snapshot) -> Cached {
        Cached {
            version: s.version.clone(),
            namespace: s.namespace.clone(),
            routes: s
                .routes
                .iter()
                .map(|r| CachedRoute {
                    name: r.name.clone(),
                    generation: r.generation,
                    spec_json: r.spec_json.clone(),
                })
                .collect(),
            credentials: s
                .credentials
                .iter()
                .map(|c| CachedCredential {
                    secret_name: c.secret_name.clone(),
                    key: c.key.clone(),
                    value_base64: base64::engine::general_purpose::STANDARD.encode(&c.value),
                })
                .collect(),
        }
    }
}

impl From<Cached> for v1::Snapshot {
    fn from(c: Cached) -> v1::Snapshot {
        v1::Snapshot {
            version: c.version,
            namespace: c.namespace,
            routes: c
                .routes
                .into_iter()
                .map(|r| v1::Route {
                    name: r.name,
                    generation: r.generation,
                    spec_json: r.spec_json,
                })
                .collect(),
            credentials: c
                .credentials
                .into_iter()
                .map(|c| v1::Credential {
                    secret_name: c.secret_name,
                    key: c.key,
                    value: base64::engine::general_purpose::STANDARD
                        .decode(c.value_base64)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Compiles a snapshot: the policy of every route that compiles and whose keys resolve, and
/// the refusals of the others.
pub fn compile(snapshot: &v1::Snapshot) -> (Policy, Vec<v1::RouteRejection>) {
    let secrets: SecretValues = snapshot
        .credentials
        .iter()
        .map(|c| {
            (
                (c.secret_name.clone(), c.key.clone()),
                String::from_utf8_lossy(&c.value).trim().to_owned(),
            )
        })
        .collect();
    let env = |v: &str| std::env::var(v).ok();
    let mut rejected = Vec::new();
    let mut routes = Vec::new();
    let mut keys = Keys::default();
    for r in &snapshot.routes {
        let reject = |reason: String| v1::RouteRejection {
            name: r.name.clone(),
            reason,
        };
        let spec: LlmRouteSpec = match serde_json::from_str(&r.spec_json) {
            Ok(s) => s,
            Err(e) => {
                rejected.push(reject(format!("this sidecar cannot read the spec: {e}")));
                continue;
            }
        };
        let route = match compile_with(&snapshot.namespace, &r.name, &spec, &Sources::default()) {
            Ok(route) => route,
            Err(e) => {
                rejected.push(reject(e.to_string()));
                continue;
            }
        };
        let mut route_keys = Keys::default();
        if let Err(e) = route_keys.add_route(&route, &env, Some(&secrets)) {
            rejected.push(reject(e.to_string()));
            continue;
        }
        keys.merge(route_keys);
        routes.push(route);
    }
    let (set, refused): (RouteSet, _) = RouteSet::new(routes);
    rejected.extend(refused.into_iter().map(|(id, e)| v1::RouteRejection {
        name: id.name,
        reason: e.to_string(),
    }));
    (
        Policy {
            routes: set,
            keys,
            version: format!("control-plane {}", snapshot.version),
        },
        rejected,
    )
}

/// Reads the policy cache, if there is one for this namespace.
pub fn load_cache(path: &Path, namespace: &str) -> Option<v1::Snapshot> {
    let text = std::fs::read_to_string(path).ok()?;
    let cached: Cached = serde_json::from_str(&text)
        .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "the policy cache is unreadable; ignored"))
        .ok()?;
    (cached.namespace == namespace).then(|| cached.into())
}

fn write_cache(path: &Path, snapshot: &v1::Snapshot) {
    let Ok(text) = serde_json::to_vec(&Cached::from(snapshot)) else {
        return;
    };
    let tmp = path.with_extension("tmp");
    let written = (|| -> std::io::Result<()> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "the policy cache could not be written");
    }
}

/// Puts a snapshot in force. Returns the refusals to acknowledge.
pub fn apply(
    snapshot: &v1::Snapshot,
    table: &Table,
    metrics: &Metrics,
    cache: Option<&Path>,
) -> Vec<v1::RouteRejection> {
    let (policy, rejected) = compile(snapshot);
    for r in &rejected {
        tracing::warn!(route = %r.name, reason = %r.reason, version = %snapshot.version, "route refused");
    }
    tracing::info!(version = %snapshot.version, routes = policy.routes.routes().len(), refused = rejected.len(), "policy from the control plane in force");
    table.apply(policy, metrics);
    metrics
        .policy_loads
        .get_or_create(&ReloadLabels { result: "applied" })
        .inc();
    if let Some(path) = cache {
        write_cache(path, snapshot);
    }
    rejected
}

async fn channel(cp: &ControlPlane) -> Result<Channel, String> {
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = &cp.ca_file {
        let pem = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
        tls = tls.ca_certificate(Certificate::from_pem(pem));
    }
    if let Some(pem) = cp.ca_pem.as_ref().filter(|p| !p.trim().is_empty()) {
        tls = tls.ca_certificate(Certificate::from_pem(pem.as_bytes()));
    }
    Endpoint::from_shared(cp.url.clone())
        .map_err(|e| format!("{}: {e}", cp.url))?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| {
            format!(
                "cannot connect to {}: {}",
                cp.url,
                crate::classify::root_cause(&e)
            )
        })
}

/// The pod's ServiceAccount token, as the kubelet last wrote it.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token {}: {e}", path.display()))?;
    let token = token.trim();
    if token.len() > plumb_proto::MAX_TOKEN_BYTES {
        return Err(format!(
            "the token {} is larger than {} bytes",
            path.display(),
            plumb_proto::MAX_TOKEN_BYTES
        ));
    }
    Ok(token.to_owned())
}

/// One session: connect, say who we are, apply snapshots until the stream ends.
async fn session(cp: &ControlPlane, table: &Table, metrics: &Metrics) -> Result<(), String> {
    let token = read_token(&cp.token_file)?;
    let channel = channel(cp).await?;
    // A namespace's snapshot may be large (keys, schemas): the limit is the operator's, and
    // explicit on both sides.
    let mut client = v1::policy_service_client::PolicyServiceClient::new(channel)
        .max_decoding_message_size(plumb_proto::MAX_OPERATOR_MESSAGE_BYTES);
    let (tx, rx) = mpsc::channel::<v1::SidecarMessage>(8);
    let serving = table
        .current()
        .map(|p| p.version.trim_start_matches("control-plane ").to_owned())
        .unwrap_or_default();
    let hello = v1::SidecarMessage {
        kind: Some(sidecar_message::Kind::Hello(v1::Hello {
            namespace: cp.namespace.clone(),
            pod: cp.pod.clone(),
            sidecar_version: env!("CARGO_PKG_VERSION").to_owned(),
            serving_version: serving,
        })),
    };
    tx.send(hello).await.map_err(|e| e.to_string())?;
    let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    let bearer = format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| "the token file holds characters a header cannot carry".to_owned())?;
    req.metadata_mut().insert("authorization", bearer);
    let mut inbound = client
        .control(req)
        .await
        .map_err(|s| format!("the operator refused the stream: {}", s.message()))?
        .into_inner();
    tracing::info!(url = %cp.url, "connected to the control plane");
    let mut sequence = 0u64;
    // The first report states every breaker that is not closed and every rate-limit window,
    // so an operator that just took over hears of them at once.
    send_report(&tx, table, &cp.namespace, &mut sequence, true).await?;
    let mut reports = tokio::time::interval(cp.report_interval);
    reports.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = tokio::time::Instant::now();
    loop {
        let msg = tokio::select! {
            m = inbound.message() => m,
            () = tokio::time::sleep_until(last_heard + cp.silence) => {
                return Err(format!("no word from the operator for {:?}", cp.silence));
            }
            _ = reports.tick() => {
                send_report(&tx, table, &cp.namespace, &mut sequence, false).await?;
                continue;
            }
            () = table.fleet.changed() => {
                send_report(&tx, table, &cp.namespace, &mut sequence, false).await?;
                continue;
            }
        };
        last_heard = tokio::time::Instant::now();
        let msg = match msg {
            Err(s) => return Err(format!("the stream broke: {}", s.message())),
            Ok(None) => return Err("the operator closed the stream".to_owned()),
            Ok(Some(m)) => m,
        };
        match msg.kind {
            Some(operator_message::Kind::Snapshot(snap)) => {
                if snap.namespace != cp.namespace {
                    return Err(format!(
                        "the operator sent namespace {:?}, not ours",
                        snap.namespace
                    ));
                }
                let rejected = apply(&snap, table, metrics, cp.cache.as_deref());
                let ack = v1::SidecarMessage {
                    kind: Some(sidecar_message::Kind::Ack(v1::Ack {
                        version: snap.version.clone(),
                        rejected,
                    })),
                };
                tx.send(ack).await.map_err(|e| e.to_string())?;
            }
            Some(operator_message::Kind::Knowledge(k)) => {
                tracing::debug!(
                    sequence = k.sequence,
                    upstreams = k.upstreams.len(),
                    "fleet knowledge"
                );
                table.apply_knowledge(&cp.namespace, &k);
            }
            Some(operator_message::Kind::Heartbeat(hb)) => {
                let beat = v1::SidecarMessage {
                    kind: Some(sidecar_message::Kind::Heartbeat(v1::Heartbeat {
                        unix_ms: hb.unix_ms,
                    })),
                };
                tx.send(beat).await.map_err(|e| e.to_string())?;
            }
            Some(operator_message::Kind::Refusal(r)) => {
                return Err(format!("the operator refused us: {}", r.reason));
            }
            // The operator asks for the current token before the one it verified expires:
            // the file's content now (the kubelet rotates it), so the stream lives on.
            Some(operator_message::Kind::TokenRequest(_)) => {
                let token = read_token(&cp.token_file)?;
                let msg = v1::SidecarMessage {
                    kind: Some(sidecar_message::Kind::Token(v1::Token { token })),
                };
                tx.send(msg).await.map_err(|e| e.to_string())?;
            }
            None => {}
        }
    }
}

/// Sends what this sidecar learned since the last report, if anything (`full`: also every
/// breaker that is not closed and every rate-limit window).
async fn send_report(
    tx: &mpsc::Sender<v1::SidecarMessage>,
    table: &Table,
    namespace: &str,
    sequence: &mut u64,
    full: bool,
) -> Result<(), String> {
    let policy = table.current();
    let equivalence = table.certifications.take_unreported();
    let report = table.fleet.report(
        *sequence + 1,
        policy
            .as_deref()
            .filter(|_| full)
            .map(|p| (&p.routes, &table.breakers)),
        equivalence.clone(),
    );
    let Some(report) = report else {
        return Ok(());
    };
    *sequence += 1;
    let msg = v1::SidecarMessage {
        kind: Some(sidecar_message::Kind::Report(report)),
    };
    if let Err(e) = tx.send(msg).await {
        // Samples are cumulative knowledge: keep them for the next stream.
        table
            .certifications
            .restore_unreported(namespace, equivalence);
        return Err(e.to_string());
    }
    Ok(())
}

/// Follows the control plane for ever: reconnects with capped, jittered backoff, and keeps the
/// last good policy in force while disconnected.
pub async fn run(cp: ControlPlane, table: Arc<Table>, metrics: Arc<Metrics>) {
    let mut backoff = Duration::from_millis(100);
    table.fleet.set_pod(&cp.pod);
    loop {
        let started = tokio::time::Instant::now();
        let result = session(&cp, &table, &metrics).await;
        // Without the operator, the sidecar runs on its own evidence.
        table.forget_fleet();
        if let Err(why) = result {
            tracing::warn!(url = %cp.url, %why, serving = table.current().is_some(), "control plane unavailable; the last good policy keeps serving");
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_millis(100);
        }
        let wait = backoff.mul_f64(0.5 + fastrand::f64() * 0.5);
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(spec_json: &str) -> v1::Snapshot {
        v1::Snapshot {
            version: "1-1".into(),
            namespace: "team-a".into(),
            routes: vec![
                v1::Route {
                    name: "good".into(),
                    generation: 1,
                    spec_json: r#"{"match": {"models": ["good"]}, "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "m", "credentials": {"secretRef": {"name": "api", "key": "k"}}}]}"#.into(),
                },
                v1::Route {
                    name: "other".into(),
                    generation: 2,
                    spec_json: spec_json.into(),
                },
            ],
            credentials: vec![v1::Credential {
                secret_name: "api".into(),
                key: "k".into(),
                value: b"sk-from-secret\n".to_vec(),
            }],
        }
    }

    #[test]
    fn routes_that_compile_with_their_keys_serve_and_the_others_are_refused_by_name() {
        let missing = r#"{"match": {"models": ["x"]}, "targets": [{"name": "t", "provider": "openai", "baseUrl": "http://h/v1", "model": "m", "credentials": {"secretRef": {"name": "gone", "key": "k"}}}]}"#;
        let (policy, rejected) = compile(&snapshot(missing));
        assert_eq!(policy.routes.routes().len(), 1);
        let route = policy.routes.lookup("good").unwrap_or_else(|| panic!());
        let key = policy.keys.for_target(&route.targets[0], None);
        assert_eq!(key.map(crate::keys::Secret::expose), Some("sk-from-secret"));
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].name, "other");
        assert!(
            rejected[0].reason.contains("\"gone\""),
            "{}",
            rejected[0].reason
        );
        let (_, rejected) = compile(&snapshot("{\"match\": 5}"));
        assert!(
            rejected[0]
                .reason
                .starts_with("this sidecar cannot read the spec")
        );
    }

    #[test]
    fn the_cache_round_trips_and_belongs_to_its_namespace() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("policy.json");
        let snap = snapshot("{}");
        write_cache(&path, &snap);
        let mode = std::fs::metadata(&path)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600, "keys on disk are readable by the owner only");
        assert_eq!(load_cache(&path, "team-a"), Some(snap));
        assert_eq!(load_cache(&path, "team-b"), None);
    }
}
