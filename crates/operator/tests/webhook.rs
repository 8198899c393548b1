//! The injection webhook through its real HTTPS server, with golden `AdmissionReview`s: the
//! patch, applied as the API server would, gives a Pod that Kubernetes' own types read back
//! unchanged (no unknown or misspelt field); a second pass adds nothing; pods that did not opt
//! in are untouched; bad annotations are denied with a message.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use plumb_operator::webhook::{self, Inject};
use serde_json::{Value, json};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/webhook");

fn inject() -> Inject {
    Inject {
        image: "ghcr.io/plumb-dev/plumb-sidecar:0.1.0".into(),
        pull_policy: "IfNotPresent".into(),
        control_plane: "https://plumb-policy.plumb-system.svc:15410".into(),
        control_plane_ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        cpu: "50m".into(),
        memory: "64Mi".into(),
        audience: "plumb.dev/control-plane".into(),
        env: Vec::new(),
    }
}

/// The Pod the ReplicaSet controller creates from `kubectl create deployment web
/// --image=nginx:1.27 --port=8080 --dry-run=client -o json` (in the golden folder), with the
/// opt-in label.
fn golden_pod() -> Value {
    let deployment: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{GOLDEN}/deployment-web.json")).unwrap(),
    )
    .unwrap();
    let template = &deployment["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    labels["pod-template-hash"] = json!("7d9c5b8f4");
    labels["plumb.dev/inject"] = json!("enabled");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "web-7d9c5b8f4-", "namespace": "shop", "labels": labels},
        "spec": template["spec"],
    })
}

fn admission_review(pod: &Value, operation: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
            "oldObject": null,
            "dryRun": false,
        }
    })
}

struct Server {
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = plumb_testenv::write_serving_pki(dir.path()).unwrap();
    let tls = webhook::server::acceptor(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(webhook::server::serve(
        listener,
        tls,
        Arc::new(inject()),
        plumb_operator::listener::Limits::default(),
    ));
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .no_proxy()
        .build()
        .unwrap();
    Server {
        url: format!("https://127.0.0.1:{port}/inject"),
        client,
        _dir: dir,
    }
}

impl Server {
    async fn review(&self, pod: &Value, operation: &str) -> Value {
        let r = self
            .client
            .post(&self.url)
            .json(&admission_review(pod, operation))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["kind"], "AdmissionReview");
        assert_eq!(v["response"]["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        v["response"].clone()
    }
}

fn ops(response: &Value) -> Option<Vec<Value>> {
    let b64 = response["patch"].as_str()?;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn apply(pod: &Value, ops: &[Value]) -> Value {
    let mut out = pod.clone();
    let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops.to_vec())).unwrap();
    json_patch::patch(&mut out, &patch).unwrap();
    out
}

/// Reads the pod with Kubernetes' own types and writes it back: an unknown or misspelt field
/// would be dropped, a wrong type would fail.
fn kubernetes_reads_back(pod: &Value) -> Pod {
    let typed: Pod = serde_json::from_value(pod.clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        *pod,
        "every field survives Kubernetes' types"
    );
    typed
}

fn golden(name: &str, actual: &Value) {
    let path = format!("{GOLDEN}/{name}");
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("PLUMB_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (PLUMB_UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(
        text, want,
        "{path} differs (PLUMB_UPDATE_GOLDEN=1 rewrites it)"
    );
}

#[tokio::test]
async fn an_opted_in_pod_gets_the_sidecar_once_and_kubernetes_reads_it_back() {
    let s = server().await;
    let pod = golden_pod();
    let response = s.review(&pod, "CREATE").await;
    assert_eq!(response["allowed"], true);
    let ops = ops(&response).expect("a patch");
    golden("deployment-web.patch.json", &Value::Array(ops.clone()));
    let injected = apply(&pod, &ops);
    // The injected Pod is kept too: `make test-chart` validates it with kubernetes-validate.
    golden("deployment-web.injected.json", &injected);
    let typed = kubernetes_reads_back(&injected);
    let spec = typed.spec.unwrap();
    let init = spec.init_containers.unwrap();
    assert_eq!(init[0].name, "plumb-sidecar");
    assert_eq!(init[0].restart_policy.as_deref(), Some("Always"));
    let sc = init[0].security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    let env = spec.containers[0].env.clone().unwrap();
    let value = |n: &str| {
        env.iter()
            .find(|e| e.name == n)
            .and_then(|e| e.value.clone())
    };
    assert_eq!(
        value("OPENAI_BASE_URL").as_deref(),
        Some("http://127.0.0.1:15400/v1")
    );
    assert_eq!(
        value("ANTHROPIC_BASE_URL").as_deref(),
        Some("http://127.0.0.1:15400")
    );
    let token = spec.volumes.unwrap()[0]
        .projected
        .clone()
        .unwrap()
        .sources
        .unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(token.audience.as_deref(), Some("plumb.dev/control-plane"));

    // A second pass adds nothing.
    let again = s.review(&injected, "CREATE").await;
    assert_eq!(again["allowed"], true);
    assert!(again.get("patch").is_none(), "{again}");
}

#[tokio::test]
async fn pods_that_did_not_opt_in_and_other_operations_are_untouched() {
    let s = server().await;
    let mut out = golden_pod();
    out["metadata"]["labels"]["plumb.dev/inject"] = json!("disabled");
    let r = s.review(&out, "CREATE").await;
    assert_eq!((r["allowed"].clone(), r.get("patch")), (json!(true), None));
    let r = s.review(&golden_pod(), "UPDATE").await;
    assert_eq!((r["allowed"].clone(), r.get("patch")), (json!(true), None));
}

#[tokio::test]
async fn base_urls_a_container_sets_are_kept_unless_the_pod_says_override() {
    let s = server().await;
    let mut pod = golden_pod();
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "busybox"}]);
    pod["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    pod["spec"]["containers"][0]["env"] =
        json!([{"name": "OPENAI_BASE_URL", "value": "https://proxy.example/v1"}]);
    let injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    let typed = kubernetes_reads_back(&injected);
    let spec = typed.spec.unwrap();
    assert_eq!(
        spec.init_containers.as_ref().unwrap()[0].name,
        "plumb-sidecar",
        "first"
    );
    assert_eq!(spec.init_containers.as_ref().unwrap()[1].name, "migrate");
    assert_eq!(spec.volumes.as_ref().unwrap().len(), 3);
    let env = spec.containers[0].env.clone().unwrap();
    assert_eq!(
        env[0].value.as_deref(),
        Some("https://proxy.example/v1"),
        "kept"
    );
    assert!(env.iter().any(|e| e.name == "ANTHROPIC_BASE_URL"));

    pod["metadata"]["annotations"] = json!({"plumb.dev/override-base-urls": "true"});
    let injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    let env = kubernetes_reads_back(&injected).spec.unwrap().containers[0]
        .env
        .clone()
        .unwrap();
    assert_eq!(
        env[0].value.as_deref(),
        Some("http://127.0.0.1:15400/v1"),
        "overridden"
    );
}

#[tokio::test]
async fn resource_annotations_are_used_and_bad_ones_deny_the_pod_with_a_message() {
    let s = server().await;
    let mut pod = golden_pod();
    pod["metadata"]["annotations"] =
        json!({"plumb.dev/sidecar-cpu": "200m", "plumb.dev/sidecar-memory": "128Mi"});
    let injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    let init = kubernetes_reads_back(&injected)
        .spec
        .unwrap()
        .init_containers
        .unwrap();
    let requests = init[0].resources.clone().unwrap().requests.unwrap();
    assert_eq!(requests["cpu"].0, "200m");
    assert_eq!(requests["memory"].0, "128Mi");

    for (key, value, needle) in [
        (
            "plumb.dev/sidecar-cpu",
            "lots",
            "plumb.dev/sidecar-cpu: \"lots\" is not a CPU quantity",
        ),
        (
            "plumb.dev/sidecar-memory",
            "0",
            "plumb.dev/sidecar-memory: \"0\" is not a memory quantity",
        ),
        (
            "plumb.dev/override-base-urls",
            "yes",
            "must be \"true\" or \"false\"",
        ),
    ] {
        let mut bad = golden_pod();
        bad["metadata"]["annotations"] = json!({key: value});
        let r = s.review(&bad, "CREATE").await;
        assert_eq!(r["allowed"], false, "{key}");
        let msg = r["status"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg}");
        assert_eq!(r["status"]["code"], 400);
    }
}

#[tokio::test]
async fn the_server_refuses_what_is_not_a_review() {
    let s = server().await;
    let r = s.client.post(&s.url).body("nope").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .get(s.url.replace("/inject", "/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// What EKS's pod-identity webhook writes into a container for IRSA (a ServiceAccount annotated
/// `eks.amazonaws.com/role-arn`): the variables and the projected token's mount.
fn irsa(container: &mut Value) {
    let env = container["env"].as_array().cloned().unwrap_or_default();
    let mut env = env;
    env.extend([
        json!({"name": "AWS_STS_REGIONAL_ENDPOINTS", "value": "regional"}),
        json!({"name": "AWS_DEFAULT_REGION", "value": "us-east-1"}),
        json!({"name": "AWS_REGION", "value": "us-east-1"}),
        json!({"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::111122223333:role/llm"}),
        json!({"name": "AWS_WEB_IDENTITY_TOKEN_FILE",
               "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}),
    ]);
    container["env"] = Value::Array(env);
    let mut mounts = container["volumeMounts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    mounts.push(json!({"name": "aws-iam-token", "readOnly": true,
        "mountPath": "/var/run/secrets/eks.amazonaws.com/serviceaccount"}));
    container["volumeMounts"] = Value::Array(mounts);
}

fn irsa_volume() -> Value {
    json!({"name": "aws-iam-token", "projected": {"sources": [{"serviceAccountToken": {
        "audience": "sts.amazonaws.com", "expirationSeconds": 86400, "path": "token"}}]}})
}

/// The sidecar's variable `name`, and whether it mounts `path`.
fn sidecar_has(pod: &Value, name: &str, path: &str) -> (Option<String>, bool) {
    let typed = kubernetes_reads_back(pod);
    let init = typed.spec.unwrap().init_containers.unwrap();
    let sidecar = init.iter().find(|c| c.name == "plumb-sidecar").unwrap();
    let value = sidecar
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.clone());
    let mounted = sidecar
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path == path && m.read_only == Some(true));
    (value, mounted)
}

#[tokio::test]
async fn the_sidecar_gets_the_pods_cloud_identity_whichever_webhook_runs_first() {
    let s = server().await;
    let token_dir = "/var/run/secrets/eks.amazonaws.com/serviceaccount";
    let role = Some("arn:aws:iam::111122223333:role/llm".to_owned());

    // EKS's webhook ran first: the sidecar is injected with the identity.
    let mut pod = golden_pod();
    irsa(&mut pod["spec"]["containers"][0]);
    pod["spec"]["volumes"] = json!([irsa_volume()]);
    let injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    assert_eq!(
        sidecar_has(&injected, "AWS_ROLE_ARN", token_dir),
        (role.clone(), true)
    );
    assert!(s.review(&injected, "CREATE").await.get("patch").is_none());

    // This webhook ran first, then EKS's wrote the application container only: called again
    // (reinvocationPolicy: IfNeeded), it adds what the sidecar lacks, once.
    let pod = golden_pod();
    let mut injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    assert_eq!(
        sidecar_has(&injected, "AWS_ROLE_ARN", token_dir),
        (None, false)
    );
    irsa(&mut injected["spec"]["containers"][0]);
    let mut volumes = injected["spec"]["volumes"].as_array().cloned().unwrap();
    volumes.push(irsa_volume());
    injected["spec"]["volumes"] = Value::Array(volumes);
    let again = apply(
        &injected,
        &ops(&s.review(&injected, "CREATE").await).expect("the identity is added"),
    );
    assert_eq!(sidecar_has(&again, "AWS_ROLE_ARN", token_dir), (role, true));
    let (region, _) = sidecar_has(&again, "AWS_REGION", token_dir);
    assert_eq!(region.as_deref(), Some("us-east-1"));
    assert!(s.review(&again, "CREATE").await.get("patch").is_none());

    // EKS's webhook wrote the sidecar itself too: nothing is added twice.
    let mut both = injected.clone();
    let at = both["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == "plumb-sidecar")
        .unwrap();
    irsa(&mut both["spec"]["initContainers"][at]);
    assert!(s.review(&both, "CREATE").await.get("patch").is_none());

    // A pod that keeps its identity from the sidecar.
    let mut pod = golden_pod();
    irsa(&mut pod["spec"]["containers"][0]);
    pod["spec"]["volumes"] = json!([irsa_volume()]);
    pod["metadata"]["annotations"] = json!({"plumb.dev/cloud-identity": "none"});
    let injected = apply(&pod, &ops(&s.review(&pod, "CREATE").await).unwrap());
    assert_eq!(
        sidecar_has(&injected, "AWS_ROLE_ARN", token_dir),
        (None, false)
    );
    pod["metadata"]["annotations"] = json!({"plumb.dev/cloud-identity": "yes"});
    let r = s.review(&pod, "CREATE").await;
    assert_eq!(r["allowed"], false);
    assert!(
        r["status"]["message"]
            .as_str()
            .unwrap()
            .contains("plumb.dev/cloud-identity")
    );
}
