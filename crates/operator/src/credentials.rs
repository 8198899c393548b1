//! The Secrets a route may take keys from: only those labelled `plumb.dev/credentials: "true"`
//! (DESIGN §14).
//!
//! Without the label, any route author could name any Secret of the namespace (a database
//! password, a ServiceAccount token) next to a `baseUrl` of their choice, and the operator —
//! which can read every Secret — would hand it to the sidecars, which send it as a Bearer token
//! to that URL. With it, a Secret's owner decides whether its keys are meant for routes.
//!
//! The operator watches only labelled Secrets (a label selector, so it never even caches the
//! data of any other) and takes keys from that cache. A Secret a route names that is not in the
//! cache is looked up by its metadata alone, to tell a missing Secret (served without the key;
//! the sidecars refuse the route by name) from one that is not labelled (the route is refused,
//! by the Secret's name, and the last good generation keeps serving) and from one labelled a
//! moment ago that the watch has not delivered yet (retried).
//!
//! ```text
//! secretRef ─▶ in the labelled cache? ─ yes ─▶ its key (if the Secret has it)
//!                      │ no
//!                      ▼
//!              metadata lookup ─┬─ no such Secret ──▶ served without it (the sidecars say so)
//!                               ├─ not labelled ────▶ route refused: label the Secret
//!                               └─ labelled ────────▶ not cached yet: retried
//! ```

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use plumb_policy::{Credentials, Egress, TargetProxy};

/// The label a Secret needs before a route may use it.
pub const LABEL: &str = "plumb.dev/credentials";
/// The label selector of the Secrets the operator watches.
pub const SELECTOR: &str = "plumb.dev/credentials=true";

/// The Secret keys a route's targets take, resolved.
pub type Keys = BTreeMap<(String, String), Vec<u8>>;

/// What the Secrets a route names resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Every named Secret may be used: the keys found (a missing Secret or key is left out,
    /// and the sidecars refuse the route by name).
    Keys(Keys),
    /// These Secrets exist but are not labelled: the route may not use them.
    NotLabelled(Vec<String>),
    /// This Secret is labelled but the watch has not delivered it yet.
    NotCached(String),
}

/// What a Secret outside the labelled cache is, by its metadata alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Uncached {
    Missing,
    NotLabelled,
    Labelled,
}

/// Whether a Secret's owner allowed routes to use it.
pub fn allowed(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(LABEL))
        .is_some_and(|v| v == "true")
}

fn uncached(meta: Option<&ObjectMeta>) -> Uncached {
    match meta {
        None => Uncached::Missing,
        Some(m) if allowed(m) => Uncached::Labelled,
        Some(_) => Uncached::NotLabelled,
    }
}

/// The Secret references of a compiled route: `(secret, key)`, each once — the targets' API
/// keys and their proxies' credentials alike (the same label rule holds for both).
fn references(route: &plumb_policy::Route) -> BTreeSet<(String, String)> {
    let keys = route.all_targets().filter_map(|t| match &t.credentials {
        Credentials::Secret(r) => Some((r.name.clone(), r.key.clone())),
        Credentials::Env(_)
        | Credentials::File(_)
        | Credentials::Passthrough
        | Credentials::None
        | Credentials::Aws
        | Credentials::Google => None,
    });
    let proxies = route.all_targets().filter_map(|t| match &t.egress {
        Egress::Proxy(TargetProxy {
            credentials: Some(r),
            ..
        }) => Some((r.name.clone(), r.key.clone())),
        Egress::Proxy(_) | Egress::Environment | Egress::Direct => None,
    });
    keys.chain(proxies).collect()
}

/// Resolves the Secrets a compiled route names: keys from the labelled cache `watched`, and
/// for a Secret not in it, one metadata-only lookup (never its data).
pub async fn resolve(
    client: &Client,
    watched: &Store<Secret>,
    namespace: &str,
    route: &plumb_policy::Route,
) -> Result<Resolved, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut keys = Keys::new();
    let mut not_labelled = BTreeSet::new();
    let mut looked_up: BTreeMap<String, Uncached> = BTreeMap::new();
    for (name, key) in references(route) {
        let cached = watched
            .get(&ObjectRef::new(&name).within(namespace))
            .filter(|s| allowed(&s.metadata));
        if let Some(secret) = cached {
            if let Some(value) = secret.data.as_ref().and_then(|d| d.get(&key)) {
                keys.insert((name, key), value.0.clone());
            }
            continue;
        }
        let what = match looked_up.get(&name) {
            Some(w) => *w,
            None => {
                let found = api
                    .list_metadata(&ListParams::default().fields(&format!("metadata.name={name}")))
                    .await?;
                let meta = found
                    .items
                    .iter()
                    .map(|m| &m.metadata)
                    .find(|m| m.name.as_deref() == Some(name.as_str()));
                let w = uncached(meta);
                looked_up.insert(name.clone(), w);
                w
            }
        };
        match what {
            Uncached::Missing => {}
            Uncached::NotLabelled => {
                not_labelled.insert(name);
            }
            Uncached::Labelled => return Ok(Resolved::NotCached(name)),
        }
    }
    if not_labelled.is_empty() {
        Ok(Resolved::Keys(keys))
    } else {
        Ok(Resolved::NotLabelled(not_labelled.into_iter().collect()))
    }
}

/// What a route's status says when it names Secrets that are not labelled: which, and the
/// command that labels them.
pub fn not_labelled_message(namespace: &str, secrets: &[String]) -> String {
    let quoted: Vec<String> = secrets.iter().map(|s| format!("{s:?}")).collect();
    let (noun, they, are, them) = if secrets.len() == 1 {
        ("Secret", "it", "is", "it")
    } else {
        ("Secrets", "they", "are", "them")
    };
    format!(
        "spec.targets: {noun} {} {are} not labelled {LABEL}: \"true\", so no route may take keys from {them}; if {they} {are} meant for LlmRoutes, label {them}: kubectl -n {namespace} label secret {} {LABEL}=true",
        quoted.join(", "),
        secrets.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_the_label_with_the_value_true_allows_a_secret() {
        assert!(allowed(&meta(&[(LABEL, "true")])));
        assert!(!allowed(&meta(&[(LABEL, "false")])));
        assert!(!allowed(&meta(&[(LABEL, "yes")])));
        assert!(!allowed(&meta(&[("other", "true")])));
        assert!(!allowed(&ObjectMeta::default()));
        assert_eq!(uncached(None), Uncached::Missing);
        assert_eq!(uncached(Some(&meta(&[]))), Uncached::NotLabelled);
        assert_eq!(
            uncached(Some(&meta(&[(LABEL, "true")]))),
            Uncached::Labelled
        );
    }

    #[test]
    fn proxy_credentials_are_secret_references_like_api_keys() {
        let spec = serde_json::from_value(serde_json::json!({"match": {"models": ["m"]}, "targets": [
            {"name": "a", "provider": "openai", "baseUrl": "https://x/v1", "model": "m",
             "credentials": {"secretRef": {"name": "keys", "key": "openai"}},
             "proxy": {"url": "http://proxy:3128", "credentialsSecret": {"name": "proxy", "key": "auth"}}},
            {"name": "b", "provider": "openai", "baseUrl": "https://y/v1", "model": "m",
             "credentials": {"none": true}, "proxy": {"none": true}}
        ]}))
        .unwrap_or_else(|e| panic!("{e}"));
        let route = plumb_policy::compile("ns", "r", &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            references(&route),
            BTreeSet::from([
                ("keys".to_owned(), "openai".to_owned()),
                ("proxy".to_owned(), "auth".to_owned())
            ])
        );
    }

    #[test]
    fn the_refusal_names_the_secrets_and_says_how_to_label_them() {
        assert_eq!(
            not_labelled_message("team-a", &["db".into()]),
            "spec.targets: Secret \"db\" is not labelled plumb.dev/credentials: \"true\", so no route may take keys from it; if it is meant for LlmRoutes, label it: kubectl -n team-a label secret db plumb.dev/credentials=true"
        );
        let two = not_labelled_message("team-a", &["a".into(), "b".into()]);
        assert!(
            two.starts_with("spec.targets: Secrets \"a\", \"b\" are not labelled"),
            "{two}"
        );
        assert!(
            two.ends_with("label secret a b plumb.dev/credentials=true"),
            "{two}"
        );
    }
}
