//! `plumb check` refuses what the real API server refuses (schema, unknown fields, CEL rules)
//! and accepts what it accepts: every case of `crates/api/tests/api_server.rs`, both ways.

use plumb_cli::check::{Stage, check_files};
use plumb_testenv::ApiServer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::golden_dir;

const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/default/llmroutes";

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(golden_dir().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

type Mutation = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn check_refuses_what_the_api_server_refuses_and_accepts_what_it_accepts() {
    let api = ApiServer::start().await.unwrap_or_else(|e| panic!("{e}"));
    api.install_crd(&yaml("../../../../crds/plumb.dev_llmroutes.yaml"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let route = yaml("check/valid.yaml");
    let target = route["spec"]["targets"][0].clone();
    let cases: Vec<(&str, Mutation)> = vec![
        ("valid", Box::new(|_: &mut Value| {})),
        (
            "dup",
            Box::new(move |r: &mut Value| {
                r["spec"]["targets"]
                    .as_array_mut()
                    .unwrap()
                    .push(target.clone())
            }),
        ),
        (
            "azure",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("apiVersion");
            }),
        ),
        (
            "creds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"env": "A", "file": "/k"})
            }),
        ),
        (
            "nocreds",
            Box::new(|r: &mut Value| {
                r["spec"]["targets"][0]["credentials"] = json!({"passthrough": false})
            }),
        ),
        (
            "lastresort",
            Box::new(|r: &mut Value| r["spec"]["lastResort"]["target"] = json!("nowhere")),
        ),
        (
            "mode",
            Box::new(|r: &mut Value| {
                r["spec"]["lastResort"] = json!({"mode": "failFast", "target": "local-vllm"})
            }),
        ),
        (
            "duration",
            Box::new(|r: &mut Value| r["spec"]["deadlines"]["total"] = json!("30 seconds")),
        ),
        (
            "url",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["baseUrl"] = json!("ftp://x")),
        ),
        (
            "name",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["name"] = json!("Not_A_Name")),
        ),
        (
            "provider",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["provider"] = json!("openia")),
        ),
        (
            "rate",
            Box::new(|r: &mut Value| r["spec"]["breaker"]["failureRate"] = json!(1.5)),
        ),
        (
            "retries",
            Box::new(|r: &mut Value| r["spec"]["classes"]["serverError"]["retries"] = json!(50)),
        ),
        (
            "empty",
            Box::new(|r: &mut Value| r["spec"]["targets"] = json!([])),
        ),
        (
            "missing",
            Box::new(|r: &mut Value| {
                r["spec"].as_object_mut().unwrap().remove("targets");
            }),
        ),
        (
            "unknown",
            Box::new(|r: &mut Value| r["spec"]["targets"][0]["retries"] = json!(3)),
        ),
        (
            "schemasource",
            Box::new(|r: &mut Value| {
                r["spec"]["contract"] =
                    json!({"schema": {"inline": {"type": "object"}, "file": "s.json"}})
            }),
        ),
        (
            "judge",
            Box::new(|r: &mut Value| {
                r["spec"]["equivalence"] = json!({"mode": "enforce", "method": {"kind": "judge"}})
            }),
        ),
        (
            "shadowrate",
            Box::new(|r: &mut Value| r["spec"]["equivalence"]["shadow"]["rate"] = json!(2)),
        ),
        (
            "repairs",
            Box::new(|r: &mut Value| r["spec"]["classes"]["schemaViolation"]["repairs"] = json!(9)),
        ),
    ];
    for (name, mutate) in cases {
        let mut doc = route.clone();
        doc["metadata"]["name"] = json!(name);
        mutate(&mut doc);
        let (status, body) = api
            .send(
                Method::POST,
                &format!("{ROUTES}?dryRun=All&fieldValidation=Strict"),
                Some(&doc),
            )
            .await;
        let text = serde_saphyr::to_string(&doc).unwrap();
        let report = check_files(&[(format!("{name}.yaml"), text)]);
        let api_problems: Vec<_> = report
            .problems()
            .filter(|p| matches!(p.stage, Stage::Schema | Stage::Rule))
            .collect();
        if name == "valid" {
            assert_eq!(status, 201, "{body}");
            assert!(report.ok(), "{report:?}");
            continue;
        }
        assert!(
            (400..500).contains(&status),
            "{name}: the API server accepted it ({status})"
        );
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            !api_problems.is_empty(),
            "{name}: plumb check found no schema or rule problem; the API server said {message}"
        );
        assert!(
            api_problems.iter().any(|p| message.contains(&p.field)),
            "{name}: plumb check placed it at {:?}; the API server said {message}",
            api_problems.iter().map(|p| &p.field).collect::<Vec<_>>()
        );
    }
}
