//! The CRD under `crds/` is generated from these types; this test fails when it drifts.
//! Regenerate with `make crds` (which sets `PLUMB_UPDATE_CRDS=1`).

#![allow(clippy::unwrap_used, missing_docs)]

use kube::CustomResourceExt;
use plumb_api::LlmRoute;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../crds/plumb.dev_llmroutes.yaml"
);

fn generated() -> String {
    let yaml = serde_saphyr::to_string(&LlmRoute::crd()).unwrap();
    format!("# Generated from crates/api by `make crds`; do not edit.\n{yaml}")
}

/// The Helm chart carries the same CRD (Helm installs a chart's `crds/` before anything else).
const CHART_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../charts/plumb/crds/plumb.dev_llmroutes.yaml"
);

#[test]
fn checked_in_crd_matches_the_rust_types() {
    let want = generated();
    if std::env::var_os("PLUMB_UPDATE_CRDS").is_some() {
        std::fs::write(PATH, &want).unwrap();
        std::fs::write(CHART_PATH, &want).unwrap();
    }
    for path in [PATH, CHART_PATH] {
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(have == want, "{path} is out of date: run `make crds`");
    }
}

#[test]
fn crd_has_the_status_subresource_short_name_and_printer_columns() {
    let crd = serde_json::to_value(LlmRoute::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["group"], "plumb.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "llmr");
    assert!(version["subresources"]["status"].is_object());
    let columns: Vec<&str> = version["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Accepted", "Targets", "Healthy", "Age"]);
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let target = &spec["properties"]["targets"]["items"];
    assert!(
        target["properties"]["baseUrl"]["description"]
            .as_str()
            .unwrap()
            .contains("base URL")
    );
    assert_eq!(
        target["properties"]["provider"]["enum"],
        serde_json::json!([
            "openai",
            "openai-compatible",
            "azure-openai",
            "anthropic",
            "gemini",
            "bedrock",
            "vertex-ai"
        ])
    );
    // A bedrock target names its region; the credentials may be the environment's AWS chain.
    assert!(target["properties"]["region"]["description"].is_string());
    let rules: Vec<&str> = target["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules.contains(&"self.provider != 'bedrock' || has(self.region)"),
        "{rules:?}"
    );
    assert!(
        rules.contains(&"self.provider != 'vertex-ai' || (has(self.project) && has(self.region))"),
        "{rules:?}"
    );
    let region = &target["properties"]["region"];
    assert_eq!(region["pattern"], "^[a-z0-9-]+$");
    let credentials = &target["properties"]["credentials"];
    assert!(credentials["properties"]["google"].is_object());
    assert!(
        credentials["properties"]["aws"]["description"]
            .as_str()
            .unwrap()
            .contains("AWS default")
    );
    assert!(
        credentials["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .unwrap()
            .contains("has(self.google) && self.google")
    );
}
