//! The cluster, through the kubeconfig (`KUBECONFIG`, `~/.kube/config`, or in-cluster): a
//! client, and what `plumb check --cluster` looks up — the ConfigMaps contracts take schemas
//! from (as the operator resolves them) and the Secrets targets take keys from.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use crate::check::{Report, config_map_refs, secret_refs};
use crate::exit::{self, Failure};

/// The label a Secret needs before a route may take keys from it (DESIGN §14).
pub const CREDENTIALS_LABEL: &str = "plumb.dev/credentials";

/// A client from the kubeconfig, and its default namespace.
pub async fn client() -> Result<kube::Client, Failure> {
    // One process-wide TLS provider (ring), as in every Plumb binary.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::infer()
        .await
        .map_err(|e| Failure::new(exit::CONFIG, format!("cannot read the kubeconfig: {e}")))?;
    kube::Client::try_from(config).map_err(|e| {
        Failure::new(
            exit::CONFIG,
            format!("cannot build a Kubernetes client: {e}"),
        )
    })
}

/// The ConfigMap texts the report's contracts take schemas from, by namespace then
/// `(name, key)`, and a problem `(document, field, message, fix)` for each that is missing.
pub type ConfigMaps = HashMap<String, HashMap<(String, String), String>>;

/// Reads the ConfigMaps the report's routes name, as the operator does before compiling.
pub async fn config_maps(
    client: &kube::Client,
    report: &Report,
) -> Result<(ConfigMaps, Vec<(usize, String, String, &'static str)>), Failure> {
    let mut found = ConfigMaps::new();
    let mut missing = Vec::new();
    for use_ in config_map_refs(report) {
        let ns = use_.namespace.as_str();
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let cm = api.get_opt(&use_.name).await.map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                format!("cannot read ConfigMap {ns}/{}: {e}", use_.name),
            )
        })?;
        let text = cm
            .as_ref()
            .and_then(|c| c.data.as_ref())
            .and_then(|d| d.get(&use_.key));
        match (cm.is_some(), text) {
            (_, Some(text)) => {
                found
                    .entry(ns.to_owned())
                    .or_default()
                    .insert((use_.name.clone(), use_.key.clone()), text.clone());
            }
            (false, None) => missing.push((
                use_.document,
                use_.field.clone(),
                format!("ConfigMap {ns}/{} does not exist", use_.name),
                "create it with the schema under the key (kubectl create configmap NAME --from-file=KEY=schema.json)",
            )),
            (true, None) => missing.push((
                use_.document,
                use_.field.clone(),
                format!("ConfigMap {ns}/{} has no key {:?}", use_.name, use_.key),
                "name a key the ConfigMap holds, or add the schema under this key",
            )),
        }
    }
    Ok((found, missing))
}

/// Looks up every Secret the report's routes name and adds a problem for each one that is
/// missing, lacks the key, or lacks the label. Values are never read into the report.
pub async fn check_secrets(client: &kube::Client, report: &mut Report) -> Result<(), Failure> {
    for use_ in secret_refs(report) {
        let namespace = use_.namespace.as_str();
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = api.get_opt(&use_.name).await.map_err(|e| {
            Failure::new(
                exit::UNAVAILABLE,
                format!("cannot read Secret {namespace}/{}: {e}", use_.name),
            )
        })?;
        let Some(secret) = secret else {
            report.add_cluster_problem(
                use_.document,
                &use_.field,
                format!("Secret {:?} does not exist in namespace {namespace}", use_.name),
                "create it (kubectl create secret generic NAME --from-literal=KEY=…) and label it plumb.dev/credentials=true",
            );
            continue;
        };
        let labelled = secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(CREDENTIALS_LABEL))
            .is_some_and(|v| v == "true");
        if !labelled {
            report.add_cluster_problem(
                use_.document,
                &use_.field,
                format!(
                    "Secret {namespace}/{} is not labelled {CREDENTIALS_LABEL}: \"true\", so the operator refuses it",
                    use_.name
                ),
                "kubectl -n NAMESPACE label secret NAME plumb.dev/credentials=true",
            );
        }
        let has_key = secret
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(&use_.key))
            || secret
                .string_data
                .as_ref()
                .is_some_and(|d| d.contains_key(&use_.key));
        if !has_key {
            report.add_cluster_problem(
                use_.document,
                &format!("{}.key", use_.field),
                format!("Secret {namespace}/{} has no key {:?}", use_.name, use_.key),
                "name a key the Secret holds, or add it to the Secret",
            );
        }
    }
    Ok(())
}
