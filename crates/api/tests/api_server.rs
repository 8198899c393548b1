//! The generated CRD against a real Kubernetes API server (etcd + apiextensions-apiserver from
//! `plumb-testenv`): accepted as it is, and enforcing its schema on `LlmRoute`s server-side.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use plumb_testenv::ApiServer;
use reqwest::Method;
use serde_json::{Value, json};

const CRDS: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/default/llmroutes";

fn checked_in_crd() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crds/plumb.dev_llmroutes.yaml"
    ))
    .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn example_route() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/routes/chat.yaml"
    ))
    .unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_checked_in_crd_is_accepted_by_a_real_api_server_and_a_broken_one_is_not() {
    let api = ApiServer::start().await.unwrap();
    let crd = checked_in_crd();
    let (status, body) = api
        .send(Method::POST, &format!("{CRDS}?dryRun=All"), Some(&crd))
        .await;
    assert_eq!(status, 201, "{body}");
    // The Helm chart's copy, as `helm install` would apply it.
    let chart_crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../charts/plumb/crds/plumb.dev_llmroutes.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let (status, body) = api
        .send(
            Method::POST,
            &format!("{CRDS}?dryRun=All"),
            Some(&chart_crd),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A dry run stores nothing.
    let (status, _) = api
        .send(Method::GET, &format!("{CRDS}/llmroutes.plumb.dev"), None)
        .await;
    assert_eq!(status, 404);
    // A schema that is not structural (a property without a type) is refused.
    let mut broken = crd.clone();
    broken["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        ["bogus"] = json!({"description": "no type"});
    let (status, body) = api
        .send(Method::POST, &format!("{CRDS}?dryRun=All"), Some(&broken))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("bogus"),
        "{body}"
    );
}

#[tokio::test]
async fn every_example_route_is_accepted_by_the_api_server() {
    let api = ApiServer::start().await.unwrap();
    api.install_crd(&checked_in_crd()).await.unwrap();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/routes");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default");
            let url = format!("/apis/plumb.dev/v1alpha1/namespaces/{ns}/llmroutes?dryRun=All");
            let (status, body) = api.send(Method::POST, &url, Some(&doc)).await;
            assert_eq!(status, 201, "{}: {body}", path.display());
            seen += 1;
        }
    }
    assert!(seen >= 4, "{seen}");
}

#[tokio::test]
async fn the_api_server_enforces_the_llmroute_schema() {
    let api = ApiServer::start().await.unwrap();
    api.install_crd(&checked_in_crd()).await.unwrap();
    let route = example_route();
    let (status, body) = api.send(Method::POST, ROUTES, Some(&route)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["spec"]["targets"][0]["provider"], "openai");
    assert_eq!(body["metadata"]["generation"], 1);

    let mut bad = route.clone();
    bad["metadata"]["name"] = json!("bad-provider");
    bad["spec"]["targets"][0]["provider"] = json!("bogus");
    let (status, body) = api.send(Method::POST, ROUTES, Some(&bad)).await;
    assert_eq!(status, 422, "{body}");
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains("spec.targets[0].provider") && msg.contains("Unsupported value"),
        "{msg}"
    );

    let mut missing = route.clone();
    missing["metadata"]["name"] = json!("no-targets");
    missing["spec"].as_object_mut().unwrap().remove("targets");
    let (status, body) = api.send(Method::POST, ROUTES, Some(&missing)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.targets: Required"),
        "{body}"
    );

    // Status is a subresource: written through /status, and it leaves the spec alone.
    let r = api
        .client
        .patch(format!("{}{ROUTES}/chat/status", api.url))
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"status": {"healthy": "2/2", "targetCount": 2}, "spec": {"match": {"models": ["changed"]}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"]["healthy"], "2/2");
    assert_eq!(
        v["spec"]["match"]["models"],
        json!(["chat", "gpt-4o"]),
        "spec changes through /status are ignored"
    );
    assert_eq!(v["metadata"]["generation"], 1);
}

#[tokio::test]
async fn the_api_server_refuses_what_its_cel_rules_and_patterns_forbid() {
    let api = ApiServer::start().await.unwrap();
    api.install_crd(&checked_in_crd()).await.unwrap();
    let route = example_route();
    let target = route["spec"]["targets"][0].clone();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "dup",
            Box::new(move |r: &mut Value| {
                r["spec"]["targets"]
                    .as_array_mut()
                    .unwrap()
                    .push(target.clone())
            }),
            "target names must be unique",
        ),
        (
            "azure",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("apiVersion");
            }),
            "azure-openai targets need apiVersion",
        ),
        (
            "creds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"env": "A", "file": "/k"})
            }),
            "set exactly one of secretRef, env, file",
        ),
        (
            "nocreds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"passthrough": false})
            }),
            "set exactly one of secretRef, env, file",
        ),
        (
            "bedrockregion",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["provider"] = json!("bedrock");
                r["spec"]["targets"][0]["credentials"] = json!({"aws": true});
            }),
            "bedrock targets need region",
        ),
        (
            "awscreds",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["credentials"] = json!({"aws": true})),
            "credentials aws: true is for bedrock targets",
        ),
        (
            "twocreds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"aws": true, "env": "K"})
            }),
            "set exactly one of secretRef, env, file, passthrough: true, none: true, aws: true or google: true",
        ),
        (
            "vertexregion",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["provider"] = json!("vertex-ai");
                r["spec"]["targets"][0]["project"] = json!("my-project");
            }),
            "vertex-ai targets need project",
        ),
        (
            "region",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["region"] = json!("us-east5")),
            "region is for bedrock and vertex-ai targets only",
        ),
        (
            "googlecreds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"google": true, "env": "K"})
            }),
            "none: true, aws: true or google: true",
        ),
        (
            "googleelsewhere",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"google": true})
            }),
            "credentials google: true is for vertex-ai targets",
        ),
        (
            "lastresort",
            Box::new(|r: &mut Value| r["spec"]["lastResort"]["target"] = json!("nowhere")),
            "lastResort.target must name one of the route's targets",
        ),
        (
            "mode",
            Box::new(|r: &mut Value| {
                r["spec"]["lastResort"] = json!({"mode": "failFast", "target": "local-vllm"})
            }),
            "mode 'target' and a target name go together",
        ),
        (
            "duration",
            Box::new(|r: &mut Value| r["spec"]["deadlines"]["total"] = json!("30 seconds")),
            "spec.deadlines.total",
        ),
        (
            "url",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["baseUrl"] = json!("ftp://x")),
            "spec.targets[0].baseUrl",
        ),
        (
            "name",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["name"] = json!("Not_A_Name")),
            "spec.targets[0].name",
        ),
        (
            "rate",
            Box::new(|r: &mut Value| r["spec"]["breaker"]["failureRate"] = json!(1.5)),
            "spec.breaker.failureRate",
        ),
        (
            "retries",
            Box::new(|r: &mut Value| r["spec"]["classes"]["serverError"]["retries"] = json!(50)),
            "retries",
        ),
        (
            "empty",
            Box::new(|r: &mut Value| r["spec"]["targets"] = json!([])),
            "spec.targets",
        ),
        (
            "schemasource",
            Box::new(|r: &mut Value| {
                r["spec"]["contract"] =
                    json!({"schema": {"inline": {"type": "object"}, "file": "s.json"}})
            }),
            "set exactly one of inline, file or configMapKeyRef",
        ),
        (
            "judge",
            Box::new(|r: &mut Value| {
                r["spec"]["equivalence"] = json!({"mode": "enforce", "method": {"kind": "judge"}})
            }),
            "the embedding and judge methods need a target",
        ),
        (
            "shadowrate",
            Box::new(|r: &mut Value| r["spec"]["equivalence"]["shadow"]["rate"] = json!(2)),
            "spec.equivalence.shadow.rate",
        ),
        (
            "repairs",
            Box::new(|r: &mut Value| r["spec"]["classes"]["schemaViolation"]["repairs"] = json!(9)),
            "repairs",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut r = route.clone();
        r["metadata"]["name"] = json!(format!("bad-{name}"));
        mutate(&mut r);
        let (status, body) = api.send(Method::POST, ROUTES, Some(&r)).await;
        assert_eq!(status, 422, "{name}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{name}: expected {needle:?} in {msg}");
    }
    // The unchanged example is fine.
    let (status, body) = api.send(Method::POST, ROUTES, Some(&route)).await;
    assert_eq!(status, 201, "{body}");
}
