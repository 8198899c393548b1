//! The injection webhook's answer to an `AdmissionReview` (`plumb_operator::webhook::review`),
//! and its JSON Patch for the pod it carries (`webhook::patch`), with the operator's default
//! sidecar settings.
//!
//! Input: an `AdmissionReview` (JSON).
//!
//! Checked besides panics: the answer is an `AdmissionReview` for the request's uid; and for a
//! pod that Kubernetes' own types read, the patch applies as the API server would apply it, the
//! result is still a pod, and a second pass adds nothing.

#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use plumb_operator::webhook::{self, Inject};
use serde_json::Value;

/// The operator's defaults (its `--sidecar-*` flags).
static INJECT: LazyLock<Inject> = LazyLock::new(|| Inject {
    image: "ghcr.io/plumb-dev/plumb-sidecar:0.1.0".into(),
    pull_policy: "IfNotPresent".into(),
    control_plane: "https://plumb-policy.plumb-system.svc:15410".into(),
    control_plane_ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
    cpu: "50m".into(),
    memory: "64Mi".into(),
    audience: "plumb.dev/control-plane".into(),
    env: Vec::new(),
});

/// Applies the patch to a pod the API server could have sent, and checks the result.
fn check_patch(pod: &Value, response: &Value) {
    let Some(encoded) = response.get("patch").and_then(Value::as_str) else {
        return;
    };
    if !pod.get("spec").is_some_and(Value::is_object)
        || serde_json::from_value::<Pod>(pod.clone()).is_err()
    {
        return;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_else(|e| panic!("the patch is not base64: {e}"));
    let patch: json_patch::Patch = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("the patch is not a JSON Patch: {e}"));
    let mut patched = pod.clone();
    if let Err(e) = json_patch::patch(&mut patched, &patch) {
        panic!("the patch does not apply: {e}\npod: {pod}\npatch: {patch:?}");
    }
    if let Err(e) = serde_json::from_value::<Pod>(patched.clone()) {
        panic!("the patched pod is no pod: {e}\n{patched}");
    }
    assert_eq!(
        webhook::patch(&patched, &INJECT),
        Ok(None),
        "a second pass adds something"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let answer = webhook::review(&request, &INJECT);
    assert_eq!(answer["kind"], "AdmissionReview");
    let response = &answer["response"];
    assert_eq!(
        response["uid"],
        request
            .pointer("/request/uid")
            .cloned()
            .unwrap_or(Value::Null)
    );
    assert!(response["allowed"].is_boolean());
    if let Some(pod) = request.pointer("/request/object") {
        check_patch(pod, response);
    }
    // The request itself, read as a pod.
    let _ = webhook::patch(&request, &INJECT);
});
