//! `plumb status` and `plumb check --cluster` against a real API server (etcd +
//! apiextensions-apiserver), behind the fake of the core API group for Secrets.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use plumb_testenv::{ApiServer, FakeCore};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{golden, golden_dir, plumb, stderr, stdout};

const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/default/llmroutes";

fn crd() -> Value {
    let text =
        std::fs::read_to_string(golden_dir().join("../../../../crds/plumb.dev_llmroutes.yaml"))
            .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn route(name: &str, models: &[&str]) -> Value {
    json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"match": {"models": models}, "targets": [
            {"name": "openai", "provider": "openai", "baseUrl": "https://api.openai.com/v1", "model": "gpt-4o",
             "credentials": {"secretRef": {"name": "llm-keys", "key": "openai"}}},
            {"name": "claude", "provider": "anthropic", "baseUrl": "https://api.anthropic.com", "model": "claude-sonnet-4-5",
             "credentials": {"secretRef": {"name": "llm-keys", "key": "anthropic"}}, "priority": 1}]}})
}

/// The status the operator would write: accepted, programmed on 2 of 3 sidecars, one target
/// healthy and certified, one open.
fn status(primary_state: &str) -> Value {
    let t = "2026-11-30T12:00:00Z";
    json!({"status": {
        "observedGeneration": 1, "servingGeneration": 1, "targetCount": 2, "healthy": "1/2",
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "the route compiles", "lastTransitionTime": t},
            {"type": "Programmed", "status": "False", "reason": "Rejected", "message": "1 of 3 sidecars refused generation 1", "lastTransitionTime": t},
            {"type": "Degraded", "status": "True", "reason": "TargetsUnavailable", "message": "claude is open", "lastTransitionTime": t}],
        "sidecars": {"connected": 3, "programmed": 2, "rejections": [{"pod": "web-7d9f-abc", "reason": "secret llm-keys/anthropic missing"}]},
        "targets": [
            {"name": "openai", "upstream": {"baseUrl": "https://api.openai.com/v1", "model": "gpt-4o", "credential": "secret:default/llm-keys/openai"},
             "state": primary_state, "attempts": 1200, "errorRate": 0.025, "errors": {"rate_limited": 30},
             "latencyMs": {"p50": 420.0, "p95": 900.0, "p99": 1850.0}, "breakers": {"open": 0, "reporting": 3},
             "firstToken": {"deadlineMs": 1500.0, "p99Ms": 500.0, "samples": 800}},
            {"name": "claude", "upstream": {"baseUrl": "https://api.anthropic.com", "model": "claude-sonnet-4-5", "credential": "secret:default/llm-keys/anthropic"},
             "state": "Open", "message": "3 of 3 sidecars opened their breaker after overloaded", "openSince": t,
             "rateLimitedUntil": "2026-11-30T12:01:00Z", "attempts": 40, "errorRate": 1.0, "errors": {"overloaded": 40},
             "breakers": {"open": 3, "reporting": 3},
             "equivalence": {"agreements": 190, "samples": 200, "lowerBound": 0.91, "certified": true}}]}})
}

async fn patch_status(api: &ApiServer, name: &str, body: &Value) {
    let r = api
        .client
        .patch(format!("{}{ROUTES}/{name}/status", api.url))
        .header("content-type", "application/merge-patch+json")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread")]
async fn status_on_the_api_server_shows_conditions_sidecars_and_targets() {
    let api = ApiServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    api.install_crd(&crd())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let fake = FakeCore::start(&api)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let kubeconfig = fake.kubeconfig(api.dir.path()).unwrap();
    let kc_string = kubeconfig.to_string_lossy().into_owned();
    let kc = kc_string.as_str();
    for (name, models) in [("chat", &["chat", "gpt-4o"][..]), ("embed", &["embed"][..])] {
        let (code, body) = api
            .send(Method::POST, ROUTES, Some(&route(name, models)))
            .await;
        assert_eq!(code, 201, "{body}");
    }
    patch_status(&api, "chat", &status("Healthy")).await;

    let dir = api.dir.path().to_owned();
    let kc0 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || plumb(&dir, &["status"], &[("KUBECONFIG", &kc0)]))
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    golden("status/table.out", &out);
    assert!(out.contains("default/embed"), "{out}");

    let dir = api.dir.path().to_owned();
    let kc1 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        plumb(
            &dir,
            &["status", "chat", "-o", "json"],
            &[("KUBECONFIG", &kc1)],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v[0]["status"]["targets"][1]["equivalence"]["certified"],
        true
    );
    assert_eq!(v.as_array().map(Vec::len), Some(1));

    let dir = api.dir.path().to_owned();
    let kc2 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        plumb(&dir, &["status", "nope"], &[("KUBECONFIG", &kc2)])
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no LlmRoute \"nope\""),
        "{}",
        stderr(&o)
    );

    // --watch renders again when the status changes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumb"))
        .args(["status", "chat", "--watch"])
        .env("KUBECONFIG", kc)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout_pipe = child.stdout.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout_pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>, needle: &'static str| {
        let mut seen = Vec::new();
        loop {
            match rx.blocking_recv() {
                Some(line) if line.contains(needle) => return line,
                Some(line) => seen.push(line),
                None => panic!("plumb status --watch ended before {needle:?}: {seen:?}"),
            }
        }
    };
    let line = tokio::task::block_in_place(|| wait_for(&mut rx, "  openai"));
    assert!(line.contains("Healthy"), "{line}");
    patch_status(&api, "chat", &status("Degraded")).await;
    let line = tokio::task::block_in_place(|| wait_for(&mut rx, "  openai"));
    assert!(line.contains("Degraded"), "{line}");
    let _ = child.kill();
    let _ = child.wait();

    // check --cluster: a missing Secret, an unlabelled one, a missing key.
    fake.put_secret(
        "default",
        "llm-keys",
        &[],
        &[("openai", "sk-test-not-printed")],
    );
    let file = api.dir.path().join("routes.yaml");
    let yaml = serde_saphyr::to_string(&route("chat", &["chat"])).unwrap();
    std::fs::write(&file, &yaml).unwrap();
    let dir = api.dir.path().to_owned();
    let kc3 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        plumb(
            &dir,
            &["check", "--cluster", "routes.yaml"],
            &[("KUBECONFIG", &kc3)],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("is not labelled plumb.dev/credentials: \"true\""),
        "{out}"
    );
    assert!(out.contains("has no key \"anthropic\""), "{out}");
    assert!(!out.contains("sk-test"), "{out}");

    fake.put_secret(
        "default",
        "llm-keys",
        &[("plumb.dev/credentials", "true")],
        &[("openai", "sk-1"), ("anthropic", "sk-2")],
    );
    let dir = api.dir.path().to_owned();
    let kc4 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        plumb(
            &dir,
            &["check", "--cluster", "routes.yaml"],
            &[("KUBECONFIG", &kc4)],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let yaml = yaml.replace("llm-keys", "other-keys");
    std::fs::write(&file, &yaml).unwrap();
    let dir = api.dir.path().to_owned();
    let kc5 = kc.to_owned();
    let o = tokio::task::spawn_blocking(move || {
        plumb(
            &dir,
            &["check", "--cluster", "routes.yaml"],
            &[("KUBECONFIG", &kc5)],
        )
    })
    .await
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("Secret \"other-keys\" does not exist in namespace default"),
        "{}",
        stdout(&o)
    );

    // A contract schema from a ConfigMap: compiled as the operator compiles it, from the
    // cluster's ConfigMap; standalone it cannot be resolved.
    let mut with_schema = route("chat", &["chat"]);
    with_schema["spec"]["contract"] =
        json!({"schema": {"configMapKeyRef": {"name": "schemas", "key": "answer.json"}}});
    std::fs::write(&file, serde_saphyr::to_string(&with_schema).unwrap()).unwrap();
    let check = |args: &'static [&'static str]| {
        let dir = api.dir.path().to_owned();
        let kc = kc.to_owned();
        tokio::task::spawn_blocking(move || plumb(&dir, args, &[("KUBECONFIG", &kc)]))
    };
    let o = check(&["check", "--cluster", "routes.yaml"]).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains("spec.contract.schema: ConfigMap default/schemas does not exist"),
        "{out}"
    );
    fake.put_config_map(
        "default",
        "schemas",
        &[("answer.json", r#"{"type": "object"}"#)],
    );
    let o = check(&["check", "--cluster", "routes.yaml"]).await.unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    fake.put_config_map("default", "schemas", &[("answer.json", r#"{"type": 7}"#)]);
    let o = check(&["check", "--cluster", "-o", "json", "routes.yaml"])
        .await
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["documents"][0]["problems"][0]["field"], "spec.contract.schema",
        "{v}"
    );
    let o = check(&["check", "routes.yaml"]).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("ConfigMap key schemas/answer.json is not available"),
        "{}",
        stdout(&o)
    );
}
