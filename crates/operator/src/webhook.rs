//! Sidecar injection: a mutating admission webhook for Pod creation, served over HTTPS by every
//! operator replica.
//!
//! The webhook configuration's selectors send only pods that opted in (namespace or pod label
//! `plumb.dev/inject: enabled`); a pod labelled `plumb.dev/inject: disabled` is left alone here
//! too. An opted-in pod gets the sidecar as a native sidecar (an init container with
//! `restartPolicy: Always`, so it starts before the application and stops after it), the
//! volumes it needs (a projected ServiceAccount token for the control plane's audience, a
//! memory-backed policy cache), the pod's cloud identity (IRSA, EKS Pod Identity, a Google
//! service-account key: see [`cloud`]), and `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` in every
//! application container — unless the container sets them already and the pod does not ask to
//! override them. A pod that already has the sidecar gets nothing. Bad annotations deny the pod
//! with a message that says what to fix. The answer is a JSON Patch, base64 in the
//! `AdmissionReview` as the API server expects.
//!
//! The sidecar's startup probe asks only whether its process runs (`/healthz`), not whether it
//! has a policy: the application starts even while the operator is away (its calls get a clear
//! 503 until the policy arrives), and the pod turns ready once the sidecar has one (`/readyz`).

use base64::Engine as _;
use serde_json::{Value, json};

pub mod cloud;

/// The opt-in / opt-out label (DESIGN §14).
pub const INJECT_LABEL: &str = "plumb.dev/inject";
/// CPU request annotation.
pub const CPU_ANNOTATION: &str = "plumb.dev/sidecar-cpu";
/// Memory request annotation.
pub const MEMORY_ANNOTATION: &str = "plumb.dev/sidecar-memory";
/// Override the applications' base URLs even where they are set.
pub const OVERRIDE_ANNOTATION: &str = "plumb.dev/override-base-urls";
/// The injected container's name.
pub const SIDECAR_NAME: &str = "plumb-sidecar";

/// What the injected sidecar looks like.
#[derive(Clone, Debug)]
pub struct Inject {
    /// The sidecar image.
    pub image: String,
    /// `IfNotPresent`, `Always` or `Never`.
    pub pull_policy: String,
    /// The operator's policy service, `https://…:15410`.
    pub control_plane: String,
    /// The CA certificate (PEM) the sidecar trusts for the control plane.
    pub control_plane_ca: String,
    /// Default CPU request.
    pub cpu: String,
    /// Default memory request (and limit).
    pub memory: String,
    /// The token audience.
    pub audience: String,
    /// Extra environment of the sidecar: the egress proxy (`HTTPS_PROXY`, `HTTP_PROXY`,
    /// `NO_PROXY`), from [`proxy_env`].
    pub env: Vec<(String, String)>,
}

/// The link-local endpoints that hand out cloud credentials, never reached through a proxy: the
/// instance metadata service of AWS and Google Cloud (GKE Workload Identity's metadata server
/// answers there too, by address and by name) and EKS Pod Identity's agent.
pub const METADATA_HOSTS: [&str; 3] = [
    "169.254.169.254",
    "169.254.170.23",
    "metadata.google.internal",
];

/// The egress-proxy environment of injected sidecars: `HTTPS_PROXY` and `HTTP_PROXY` as given,
/// and — when either is set — `NO_PROXY` from `no_proxy` plus the host of the policy service
/// (`control_plane`), so the sidecar's own control-plane traffic never takes the proxy, and
/// the [`METADATA_HOSTS`]. No proxy, no variables.
pub fn proxy_env(
    https: Option<&str>,
    http: Option<&str>,
    no_proxy: &str,
    control_plane: &str,
) -> Vec<(String, String)> {
    let https = https.filter(|v| !v.trim().is_empty());
    let http = http.filter(|v| !v.trim().is_empty());
    if https.is_none() && http.is_none() {
        return Vec::new();
    }
    let mut env = Vec::new();
    if let Some(v) = https {
        env.push(("HTTPS_PROXY".to_owned(), v.trim().to_owned()));
    }
    if let Some(v) = http {
        env.push(("HTTP_PROXY".to_owned(), v.trim().to_owned()));
    }
    let mut hosts: Vec<String> = no_proxy
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    let policy_host = control_plane
        .split_once("://")
        .map_or(control_plane, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    // The cloud metadata endpoints are link-local: no proxy can reach them for the pod.
    for host in [policy_host].into_iter().chain(METADATA_HOSTS) {
        if !host.is_empty() && !hosts.iter().any(|h| h == host) {
            hosts.push(host.to_owned());
        }
    }
    env.push(("NO_PROXY".to_owned(), hosts.join(",")));
    env
}

/// Why a pod is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// Whether `q` is a well-formed Kubernetes quantity (`resource.Quantity`) above zero: `100m`,
/// `0.5`, `.5`, `+1`, `128Mi`, `1G`, `1E`, `1Ei`, `1e3`, `5E-1`.
///
/// The API server's grammar: a signed number (`1`, `1.5`, `1.` or `.5`, after an optional `+`
/// or `-`) and a suffix, binary (`Ki` `Mi` `Gi` `Ti` `Pi` `Ei`), decimal (`n` `u` `m`, none,
/// `k` `M` `G` `T` `P` `E`) or a decimal exponent: `e` or `E` and a signed integer that fits
/// 64 bits (the grammar writes a signed number there, but the parser takes only an integer, so
/// `1e1.5` is refused). The suffix tables come first: `1E` is exa, and only `1E3` an exponent.
/// A non-zero value finer than a nano is rounded up, never to zero, so the quantity is above
/// zero exactly when it has no minus sign and a digit other than 0.
pub fn positive_quantity(q: &str) -> bool {
    const SUFFIXES: [&str; 16] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "", "k", "M", "G", "T", "P", "E",
    ];
    let (negative, unsigned) = match q.strip_prefix(['+', '-']) {
        Some(rest) => (q.starts_with('-'), rest),
        None => (false, q),
    };
    let end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let number_ok = !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction);
    let suffix_ok = SUFFIXES.contains(&suffix)
        || suffix
            .strip_prefix(['e', 'E'])
            .is_some_and(|exponent| exponent.parse::<i64>().is_ok());
    number_ok && suffix_ok && !negative && number.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

fn annotation<'a>(pod: &'a Value, key: &str) -> Option<&'a str> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

/// Where the sidecar is in `pod`, as a JSON pointer to its container, if it is there.
fn sidecar_at(pod: &Value) -> Option<(String, &Value)> {
    ["/spec/initContainers", "/spec/containers"]
        .iter()
        .find_map(|p| {
            let list = pod.pointer(p).and_then(Value::as_array)?;
            let i = list.iter().position(|c| c["name"] == SIDECAR_NAME)?;
            Some((format!("{p}/{i}"), &list[i]))
        })
}

/// The operations that add `identity` to the container at `at` (a JSON pointer), which has or
/// lacks `env` and `volumeMounts` lists.
fn lend(at: &str, container: &Value, identity: cloud::Identity, ops: &mut Vec<Value>) {
    for (field, items) in [("env", identity.env), ("volumeMounts", identity.mounts)] {
        if items.is_empty() {
            continue;
        }
        if container.get(field).and_then(Value::as_array).is_some() {
            for v in items {
                ops.push(json!({"op": "add", "path": format!("{at}/{field}/-"), "value": v}));
            }
        } else {
            ops.push(json!({"op": "add", "path": format!("{at}/{field}"), "value": items}));
        }
    }
}

/// The JSON Patch that injects the sidecar into `pod`, or `None` when nothing is to be done
/// (opted out, or injected already and lent the pod's cloud identity — see [`cloud`]).
pub fn patch(pod: &Value, cfg: &Inject) -> Result<Option<Vec<Value>>, Denied> {
    let label = pod
        .pointer("/metadata/labels")
        .and_then(|l| l.get(INJECT_LABEL))
        .and_then(Value::as_str);
    if label == Some("disabled") {
        return Ok(None);
    }
    let lends = cloud::lends(annotation(pod, cloud::CLOUD_IDENTITY_ANNOTATION)).map_err(Denied)?;
    if let Some((at, sidecar)) = sidecar_at(pod) {
        // Called again (another webhook changed the pod after this one): only the identity that
        // webhook gave the application containers may still be missing.
        let rest = if lends {
            cloud::missing(sidecar, cloud::borrowed(pod))
        } else {
            cloud::Identity::default()
        };
        if rest.env.is_empty() && rest.mounts.is_empty() {
            return Ok(None);
        }
        let mut ops = Vec::new();
        lend(&at, sidecar, rest, &mut ops);
        return Ok(Some(ops));
    }
    let cpu = annotation(pod, CPU_ANNOTATION).unwrap_or(&cfg.cpu);
    if !positive_quantity(cpu) {
        return Err(Denied(format!(
            "annotation {CPU_ANNOTATION}: {cpu:?} is not a CPU quantity; write it like 50m or 0.25"
        )));
    }
    let memory = annotation(pod, MEMORY_ANNOTATION).unwrap_or(&cfg.memory);
    if !positive_quantity(memory) {
        return Err(Denied(format!(
            "annotation {MEMORY_ANNOTATION}: {memory:?} is not a memory quantity; write it like 64Mi or 128Mi"
        )));
    }
    let override_urls = match annotation(pod, OVERRIDE_ANNOTATION) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(Denied(format!(
                "annotation {OVERRIDE_ANNOTATION}: {other:?} must be \"true\" or \"false\""
            )));
        }
    };
    let mut sidecar = json!({
        "name": SIDECAR_NAME,
        "image": cfg.image,
        "imagePullPolicy": cfg.pull_policy,
        "restartPolicy": "Always",
        "args": [
            "--control-plane", cfg.control_plane,
            "--policy-cache", "/var/run/plumb/cache/policy.json",
        ],
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PLUMB_CONTROL_PLANE_CA", "value": cfg.control_plane_ca},
        ],
        "ports": [{"name": "plumb-admin", "containerPort": 15401, "protocol": "TCP"}],
        "resources": {
            "requests": {"cpu": cpu, "memory": memory},
            "limits": {"memory": memory},
        },
        "startupProbe": {"httpGet": {"path": "/healthz", "port": 15401}, "periodSeconds": 1, "failureThreshold": 30},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 15401}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 15401}, "periodSeconds": 10},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "plumb-token", "mountPath": "/var/run/secrets/plumb.dev", "readOnly": true},
            {"name": "plumb-cache", "mountPath": "/var/run/plumb/cache"},
        ],
    });
    if let Some(env) = sidecar.get_mut("env").and_then(Value::as_array_mut) {
        env.extend(
            cfg.env
                .iter()
                .map(|(name, value)| json!({"name": name, "value": value})),
        );
    }
    if lends {
        let identity = cloud::missing(&sidecar, cloud::borrowed(pod));
        for (field, items) in [("env", identity.env), ("volumeMounts", identity.mounts)] {
            if let Some(list) = sidecar.get_mut(field).and_then(Value::as_array_mut) {
                list.extend(items);
            }
        }
    }
    let volumes = [
        json!({"name": "plumb-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": cfg.audience, "expirationSeconds": 3600, "path": "token"}}]}}),
        json!({"name": "plumb-cache", "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}}),
    ];
    let mut ops = Vec::new();
    // The sidecar goes first among the init containers, so it runs before any other one that
    // might call an LLM.
    match pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
    {
        Some(list) if !list.is_empty() => {
            ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}))
        }
        Some(_) | None => {
            ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]}))
        }
    }
    match pod.pointer("/spec/volumes").and_then(Value::as_array) {
        Some(_) => {
            for v in volumes {
                ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": v}));
            }
        }
        None => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": volumes})),
    }
    let urls = [
        ("OPENAI_BASE_URL", "http://127.0.0.1:15400/v1"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:15400"),
    ];
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, c) in containers.iter().enumerate() {
        let env = c.get("env").and_then(Value::as_array);
        let mut added = Vec::new();
        for (name, value) in urls {
            let at = env.and_then(|e| e.iter().position(|v| v["name"] == name));
            match at {
                Some(j) if override_urls => ops.push(json!({"op": "replace",
                    "path": format!("/spec/containers/{i}/env/{j}"),
                    "value": {"name": name, "value": value}})),
                Some(_) => {}
                None => added.push(json!({"name": name, "value": value})),
            }
        }
        if added.is_empty() {
            continue;
        }
        if env.is_some() {
            for v in added {
                ops.push(
                    json!({"op": "add", "path": format!("/spec/containers/{i}/env/-"), "value": v}),
                );
            }
        } else {
            ops.push(
                json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": added}),
            );
        }
    }
    Ok(Some(ops))
}

/// The `AdmissionReview` response to a review.
pub fn review(request: &Value, cfg: &Inject) -> Value {
    let uid = request
        .pointer("/request/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let api_version = request
        .get("apiVersion")
        .cloned()
        .unwrap_or_else(|| json!("admission.k8s.io/v1"));
    let pod = request.pointer("/request/object").unwrap_or(&Value::Null);
    let is_pod_create = request.pointer("/request/kind/kind") == Some(&json!("Pod"))
        && request.pointer("/request/operation") == Some(&json!("CREATE"));
    let response = if !is_pod_create {
        json!({"uid": uid, "allowed": true})
    } else {
        match patch(pod, cfg) {
            Ok(None) => json!({"uid": uid, "allowed": true}),
            Ok(Some(ops)) => json!({
                "uid": uid,
                "allowed": true,
                "patchType": "JSONPatch",
                "patch": base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&ops).unwrap_or_default()),
            }),
            Err(Denied(message)) => json!({
                "uid": uid,
                "allowed": false,
                "status": {"code": 400, "reason": "BadRequest", "message": format!("plumb: {message}")},
            }),
        }
    };
    json!({"apiVersion": api_version, "kind": "AdmissionReview", "response": response})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(quantities: &[&str]) {
        for q in quantities {
            assert!(positive_quantity(q), "{q} is refused");
        }
    }

    fn refuses(quantities: &[&str]) {
        for q in quantities {
            assert!(!positive_quantity(q), "{q} is accepted");
        }
    }

    #[test]
    fn a_proxy_brings_no_proxy_with_the_cluster_and_the_policy_service_and_none_brings_nothing() {
        let env = proxy_env(
            Some("http://proxy.corp:3128"),
            None,
            ".svc,.cluster.local,127.0.0.1,localhost",
            "https://plumb-policy.plumb-system.svc:15410",
        );
        assert_eq!(
            env,
            [
                (
                    "HTTPS_PROXY".to_owned(),
                    "http://proxy.corp:3128".to_owned()
                ),
                (
                    "NO_PROXY".to_owned(),
                    ".svc,.cluster.local,127.0.0.1,localhost,plumb-policy.plumb-system.svc,\
                     169.254.169.254,169.254.170.23,metadata.google.internal"
                        .to_owned()
                ),
            ]
        );
        assert!(proxy_env(None, Some(" "), ".svc", "https://p:1").is_empty());
        let both = proxy_env(
            Some("http://a:1"),
            Some("http://b:2"),
            "",
            "https://p.ns.svc:15410",
        );
        assert_eq!(both[1], ("HTTP_PROXY".to_owned(), "http://b:2".to_owned()));
        assert_eq!(
            both[2],
            (
                "NO_PROXY".to_owned(),
                "p.ns.svc,169.254.169.254,169.254.170.23,metadata.google.internal".to_owned()
            )
        );
    }

    #[test]
    fn the_sidecar_gets_the_proxy_environment() {
        let cfg = Inject {
            image: "i".into(),
            pull_policy: "IfNotPresent".into(),
            control_plane: "https://p:15410".into(),
            control_plane_ca: String::new(),
            cpu: "50m".into(),
            memory: "64Mi".into(),
            audience: "a".into(),
            env: proxy_env(Some("http://proxy:3128"), None, ".svc", "https://p:15410"),
        };
        let pod = json!({"metadata": {"labels": {"plumb.dev/inject": "enabled"}},
            "spec": {"containers": [{"name": "app", "image": "app"}]}});
        let ops = patch(&pod, &cfg)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_default();
        let env = &ops[0]["value"][0]["env"];
        let names: Vec<&str> = env
            .as_array()
            .map(|e| e.iter().filter_map(|v| v["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(
            names,
            [
                "POD_NAMESPACE",
                "POD_NAME",
                "PLUMB_CONTROL_PLANE_CA",
                "HTTPS_PROXY",
                "NO_PROXY"
            ]
        );
        assert_eq!(
            env[4]["value"],
            ".svc,p,169.254.169.254,169.254.170.23,metadata.google.internal"
        );
    }

    #[test]
    fn quantities() {
        // Plain numbers, signed or not, in every form the grammar has.
        accepts(&["1", "0.25", "0.5", ".5", "5.", "+1", "+.5", "007", "1.000"]);
        // Every binary and decimal suffix, on whole and fractional numbers.
        accepts(&["1Ki", "128Mi", "2Gi", "1Ti", "1Pi", "1Ei", ".5Gi", "1.5Ei"]);
        accepts(&[
            "1n", "1u", "50m", "100k", "1M", "1G", "1T", "1P", "1E", "0.5E", "1.G",
        ]);
        // Decimal exponents: `E` followed by an integer is one, not exa.
        accepts(&[
            "1e3", "1E3", "1e+3", "1E-3", "5e-1", ".5e1", "1e0", "2e-400",
        ]);
        accepts(&["1e9223372036854775807", "1e-9223372036854775808"]);
        // Finer than a nano rounds up to 1n, not to zero.
        accepts(&["0.1n", "0.0001m"]);

        // Zero and below.
        refuses(&["0", "+0", "0.0", ".0", "0.", "0m", "0Ei", "0E", "0e3"]);
        refuses(&["-1", "-1Gi", "-.5", "-1e3"]);
        // No number.
        refuses(&["", ".", "+", "-", "+.", "m", "Mi", "E", "e3", "Ei"]);
        // Not a number, or not a suffix.
        refuses(&[
            "lots", "50 m", " 1", "1 ", "1.2.3", "1..", "1,5", "1_000", "+-1", "--1",
        ]);
        refuses(&[
            "12XB", "1K", "1KB", "1i", "1mi", "1ei", "1EE", "1Eii", "1Ki3", "1e3m", "1mm",
        ]);
        // Exponents that are not a 64-bit integer.
        refuses(&["1e", "1E+", "1e-", "1e1.5", "1e.5", "1e+-3"]);
        refuses(&["1e9223372036854775808", "1e-9223372036854775809"]);
        // Digits other than ASCII ones.
        refuses(&["\u{661}", "1\u{661}"]);
    }
}

/// Serving the webhook over HTTPS.
pub mod server {
    use std::sync::Arc;

    use http::{Method, Request, Response, StatusCode, header};
    use http_body_util::{BodyExt as _, Full, Limited};
    use hyper::body::{Bytes, Incoming};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::{Inject, review};
    use crate::listener::{self, Limits};

    /// Largest AdmissionReview accepted.
    const MAX_REVIEW_BYTES: usize = 4 * 1024 * 1024;

    /// A TLS acceptor from PEM files (the same server configuration the managed certificate
    /// uses, with a fixed certificate).
    pub fn acceptor(cert_pem: &[u8], key_pem: &[u8]) -> Result<TlsAcceptor, String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let key = crate::certs::certified_key(&text(cert_pem), &text(key_pem))
            .map_err(|e| format!("the webhook certificate and key: {e}"))?;
        resolver_acceptor(crate::certs::Resolver::new(key))
    }

    /// A TLS acceptor for the webhook from a certificate resolver (the managed certificate):
    /// HTTP/1.1 only, which the listener serves (see [`listener`]).
    pub fn resolver_acceptor(resolver: Arc<crate::certs::Resolver>) -> Result<TlsAcceptor, String> {
        let mut config = crate::certs::server_config(resolver)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }

    fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        r
    }

    async fn handle(req: Request<Incoming>, cfg: &Inject) -> Response<Full<Bytes>> {
        if (req.method(), req.uri().path()) != (&Method::POST, "/inject") {
            return reply(
                StatusCode::NOT_FOUND,
                r#"{"error": "the webhook serves POST /inject"}"#.into(),
            );
        }
        let body = match Limited::new(req.into_body(), MAX_REVIEW_BYTES)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    r#"{"error": "the AdmissionReview is too large"}"#.into(),
                );
            }
        };
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) => reply(StatusCode::OK, review(&v, cfg).to_string()),
            Err(e) => reply(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": format!("not an AdmissionReview: {e}")}).to_string(),
            ),
        }
    }

    /// Serves `POST /inject` until the process stops, within `limits` (see [`listener`]).
    pub async fn serve(listener: TcpListener, tls: TlsAcceptor, cfg: Arc<Inject>, limits: Limits) {
        listener::serve(
            listener,
            Some(tls),
            limits,
            move |req: Request<Incoming>| {
                let cfg = cfg.clone();
                async move { handle(req, &cfg).await }
            },
        )
        .await;
    }
}
