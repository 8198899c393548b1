//! API keys: resolved from their sources when a policy loads, held in a type that never prints
//! itself, and scrubbed from every message that could reach a log or a client.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use plumb_policy::{Credentials, RouteSet, Target};

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<Arc<str>>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that sends it upstream.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// The keys of a policy, by credential source identity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    by_source: HashMap<String, Secret>,
}

/// A key that could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidKey {
    /// The environment variable is not set or empty.
    #[error(
        "route {route}, target {target}: credentials.env {var} is not set (or is empty) in the sidecar's environment"
    )]
    EnvUnset {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// The variable.
        var: String,
    },
    /// The file cannot be read or is empty.
    #[error("route {route}, target {target}: credentials.file {path}: {reason}")]
    File {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A Secret key the operator did not send (the Secret or the key does not exist).
    #[error(
        "route {route}, target {target}: the key {key:?} of Secret {secret:?} was not found in the route's namespace"
    )]
    SecretMissing {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// A Secret reference without the operator to resolve it.
    #[error(
        "route {route}, target {target}: credentials.secretRef needs the operator; standalone, use credentials.env or credentials.file"
    )]
    SecretStandalone {
        /// The route.
        route: String,
        /// The target.
        target: String,
    },
}

/// The Secret keys the operator sent: `(secret, key)` → value.
pub type SecretValues = HashMap<(String, String), String>;

impl Keys {
    /// Resolves every key of a route set from the environment and files (standalone mode).
    pub fn resolve_local(
        routes: &RouteSet,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Keys, InvalidKey> {
        let mut keys = Keys::default();
        for route in routes.routes() {
            keys.add_route(route, &env, None)?;
        }
        Ok(keys)
    }

    /// Adds every key of `other`.
    pub fn merge(&mut self, other: Keys) {
        self.by_source.extend(other.by_source);
    }

    /// Resolves the keys of one route: from the environment and files, and — with the
    /// operator — from the Secret values it sent.
    pub fn add_route(
        &mut self,
        route: &plumb_policy::Route,
        env: &dyn Fn(&str) -> Option<String>,
        secrets: Option<&SecretValues>,
    ) -> Result<(), InvalidKey> {
        for target in route.all_targets() {
            let id = || (route.id.to_string(), target.name.clone());
            let value = match &target.credentials {
                Credentials::Passthrough | Credentials::None => continue,
                Credentials::Secret(r) => {
                    let Some(secrets) = secrets else {
                        let (route, target) = id();
                        return Err(InvalidKey::SecretStandalone { route, target });
                    };
                    secrets
                        .get(&(r.name.clone(), r.key.clone()))
                        .filter(|v| !v.trim().is_empty())
                        .cloned()
                        .ok_or_else(|| {
                            let (route, target) = id();
                            InvalidKey::SecretMissing {
                                route,
                                target,
                                secret: r.name.clone(),
                                key: r.key.clone(),
                            }
                        })?
                }
                Credentials::Env(var) => {
                    env(var).filter(|v| !v.trim().is_empty()).ok_or_else(|| {
                        let (route, target) = id();
                        InvalidKey::EnvUnset {
                            route,
                            target,
                            var: var.clone(),
                        }
                    })?
                }
                Credentials::File(path) => {
                    let file_error = |reason: String| {
                        let (route, target) = id();
                        InvalidKey::File {
                            route,
                            target,
                            path: path.display().to_string(),
                            reason,
                        }
                    };
                    let text =
                        std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
                    let text = text.trim().to_owned();
                    if text.is_empty() {
                        return Err(file_error("the file is empty".to_owned()));
                    }
                    text
                }
            };
            self.by_source.insert(
                target.upstream.credential.clone(),
                Secret::new(value.trim()),
            );
        }
        Ok(())
    }

    /// The key a target sends: its own, or for passthrough the caller's.
    pub fn for_target<'a>(
        &'a self,
        target: &Target,
        caller: Option<&'a Secret>,
    ) -> Option<&'a Secret> {
        match &target.credentials {
            Credentials::Passthrough => caller,
            Credentials::None => None,
            Credentials::Secret(_) | Credentials::Env(_) | Credentials::File(_) => {
                self.by_source.get(&target.upstream.credential)
            }
        }
    }

    /// Every secret value, for redaction.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.by_source.values().map(Secret::expose)
    }
}

/// Removes secrets from a message: every known secret value, and anything shaped like an API
/// key (`sk-…`, `Bearer …`), even partly masked by a provider.
pub fn redact<'a>(text: &str, secrets: impl Iterator<Item = &'a str>) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s) {
            out = out.replace(s, "[redacted]");
        }
    }
    let mut result = String::with_capacity(out.len());
    let mut bearer = false;
    for (i, word) in out.split(' ').enumerate() {
        if i > 0 {
            result.push(' ');
        }
        let core = word.trim_matches(|c: char| {
            matches!(c, '.' | ',' | ';' | ':' | '"' | '\'' | '(' | ')' | '`')
        });
        let looks_like_key =
            (core.starts_with("sk-") || core.starts_with("sk_")) && core.len() >= 8;
        if looks_like_key || (bearer && core.len() >= 8) {
            result.push_str(&word.replace(core, "[redacted]"));
        } else {
            result.push_str(word);
        }
        bearer = core.eq_ignore_ascii_case("bearer");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-very-secret");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(s.expose(), "sk-very-secret");
    }

    #[test]
    fn redaction_removes_known_secrets_and_key_shapes() {
        let known = ["topsecretvalue"];
        assert_eq!(
            redact(
                "Incorrect API key provided: sk-abc***********1234. You can find",
                known.into_iter()
            ),
            "Incorrect API key provided: [redacted]. You can find"
        );
        assert_eq!(
            redact("key topsecretvalue leaked", known.into_iter()),
            "key [redacted] leaked"
        );
        assert_eq!(
            redact("Authorization: Bearer abcdefghijkl", known.into_iter()),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("Rate limit reached for gpt-4o", known.into_iter()),
            "Rate limit reached for gpt-4o"
        );
    }

    #[test]
    fn local_keys_come_from_env_and_files_and_missing_ones_are_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("key");
        std::fs::write(&file, "file-key\n").unwrap_or_else(|e| panic!("{e}"));
        let yaml = format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: r}}\nspec:\n  match: {{models: [m]}}\n  targets:\n    - {{name: a, provider: openai, baseUrl: 'http://h/v1', model: x, credentials: {{env: KEY_A}}}}\n    - {{name: b, provider: openai, baseUrl: 'http://h/v1', model: y, credentials: {{file: '{}'}}}}\n",
            file.display()
        );
        let set = plumb_policy::parse_routes_file(&yaml).unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::resolve_local(&set, |v| (v == "KEY_A").then(|| "env-key".to_owned()))
            .unwrap_or_else(|e| panic!("{e}"));
        let route = &set.routes()[0];
        assert_eq!(
            keys.for_target(&route.targets[0], None).map(Secret::expose),
            Some("env-key")
        );
        assert_eq!(
            keys.for_target(&route.targets[1], None).map(Secret::expose),
            Some("file-key")
        );
        let err = Keys::resolve_local(&set, |_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("KEY_A is not set"), "{err}");
    }
}
