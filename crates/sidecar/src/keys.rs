//! API keys: resolved from their sources when a policy loads, held in a type that never prints
//! itself, and scrubbed from every message that could reach a log or a client.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use plumb_policy::{Credentials, Egress, Provider, RouteSet, Target, TargetProxy};

use crate::cloud::google::{self, Tokens};

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
    /// The credentials (`user:password`) of targets' own proxies, by Secret and key.
    proxies: HashMap<(String, String), Secret>,
    /// The access-token sources of `vertex-ai` targets, by credential source identity.
    google: GoogleSources,
}

/// Token sources, equal when they are the same sources.
#[derive(Clone, Default)]
struct GoogleSources(HashMap<String, Arc<Tokens>>);

impl PartialEq for GoogleSources {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .all(|(k, v)| other.0.get(k).is_some_and(|o| Arc::ptr_eq(v, o)))
    }
}

impl Eq for GoogleSources {}

impl fmt::Debug for GoogleSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.values().map(|t| t.describe()))
            .finish()
    }
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
    /// A target's proxy names credentials the operator did not send.
    #[error(
        "route {route}, target {target}: proxy.credentialsSecret: the key {key:?} of Secret {secret:?} was not found in the route's namespace"
    )]
    ProxySecretMissing {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// A proxy's `credentialsSecret` without the operator to resolve it.
    #[error(
        "route {route}, target {target}: proxy.credentialsSecret needs the operator; standalone, put the credentials in HTTPS_PROXY / HTTP_PROXY (http://user:password@host:port)"
    )]
    ProxySecretStandalone {
        /// The route.
        route: String,
        /// The target.
        target: String,
    },
    /// A `vertex-ai` target's service-account key that cannot be used (the reason never
    /// quotes it).
    #[error("route {route}, target {target}: {reason}")]
    ServiceAccount {
        /// The route.
        route: String,
        /// The target.
        target: String,
        /// Why, naming the source.
        reason: String,
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
        self.proxies.extend(other.proxies);
        self.google.0.extend(other.google.0);
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
            if let Egress::Proxy(TargetProxy {
                credentials: Some(r),
                ..
            }) = &target.egress
            {
                let Some(secrets) = secrets else {
                    let (route, target) = id();
                    return Err(InvalidKey::ProxySecretStandalone { route, target });
                };
                let value = secrets
                    .get(&(r.name.clone(), r.key.clone()))
                    .filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| {
                        let (route, target) = id();
                        InvalidKey::ProxySecretMissing {
                            route,
                            target,
                            secret: r.name.clone(),
                            key: r.key.clone(),
                        }
                    })?;
                self.proxies
                    .insert((r.name.clone(), r.key.clone()), Secret::new(value.trim()));
            }
            let vertex = target.provider == Provider::VertexAi;
            if vertex && target.credentials == Credentials::Google {
                // Application Default Credentials: the key file the environment names, else
                // the metadata server.
                let tokens = match env("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty()) {
                    Some(path) => {
                        let origin = format!("GOOGLE_APPLICATION_CREDENTIALS {path}");
                        let service_account = |reason: String| {
                            let (route, target) = id();
                            InvalidKey::ServiceAccount {
                                route,
                                target,
                                reason,
                            }
                        };
                        let json = std::fs::read_to_string(&path)
                            .map_err(|e| service_account(format!("{origin}: {e}")))?;
                        Tokens::from_key(&json, &origin)
                            .map_err(|e| service_account(e.to_string()))?
                    }
                    None => Tokens::metadata(
                        &env("GCE_METADATA_HOST")
                            .filter(|h| !h.is_empty())
                            .unwrap_or_else(|| google::METADATA_HOST.to_owned()),
                    ),
                };
                self.google
                    .0
                    .insert(target.upstream.credential.clone(), tokens);
                continue;
            }
            let value = match &target.credentials {
                // The AWS chain is read by the transport, when a request is signed.
                Credentials::Passthrough
                | Credentials::None
                | Credentials::Aws
                | Credentials::Google => continue,
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
            if vertex {
                // A service-account key, never sent itself: it signs for access tokens.
                let origin = match &target.credentials {
                    Credentials::Secret(r) => format!("credentials.secretRef {}/{}", r.name, r.key),
                    Credentials::Env(v) => format!("credentials.env {v}"),
                    Credentials::File(p) => format!("credentials.file {}", p.display()),
                    Credentials::Passthrough
                    | Credentials::None
                    | Credentials::Aws
                    | Credentials::Google => String::new(),
                };
                let tokens = Tokens::from_key(value.trim(), &origin).map_err(|e| {
                    let (route, target) = id();
                    InvalidKey::ServiceAccount {
                        route,
                        target,
                        reason: e.to_string(),
                    }
                })?;
                self.google
                    .0
                    .insert(target.upstream.credential.clone(), tokens);
                continue;
            }
            self.by_source.insert(
                target.upstream.credential.clone(),
                Secret::new(value.trim()),
            );
        }
        Ok(())
    }

    /// The access-token source of a `vertex-ai` target.
    pub fn google(&self, target: &Target) -> Option<&Arc<Tokens>> {
        match target.provider {
            Provider::VertexAi => self.google.0.get(&target.upstream.credential),
            Provider::Openai
            | Provider::OpenaiCompatible
            | Provider::AzureOpenai
            | Provider::Anthropic
            | Provider::Gemini
            | Provider::Bedrock => None,
        }
    }

    /// The key a target sends: its own, or for passthrough the caller's.
    pub fn for_target<'a>(
        &'a self,
        target: &Target,
        caller: Option<&'a Secret>,
    ) -> Option<&'a Secret> {
        match &target.credentials {
            Credentials::Passthrough => caller,
            Credentials::None | Credentials::Aws | Credentials::Google => None,
            Credentials::Secret(_) | Credentials::Env(_) | Credentials::File(_) => {
                self.by_source.get(&target.upstream.credential)
            }
        }
    }

    /// The credentials of `target`'s own proxy, if it names a Secret for them.
    pub fn proxy_credentials(&self, target: &Target) -> Option<&Secret> {
        match &target.egress {
            Egress::Proxy(TargetProxy {
                credentials: Some(r),
                ..
            }) => self.proxies.get(&(r.name.clone(), r.key.clone())),
            Egress::Proxy(_) | Egress::Environment | Egress::Direct => None,
        }
    }

    /// Every secret value, for redaction: API keys, and proxy credentials whole and by part
    /// (the password alone may show up where the pair does not).
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.by_source
            .values()
            .map(Secret::expose)
            .chain(self.proxies.values().flat_map(|s| {
                let whole = s.expose();
                let password = whole.split_once(':').map(|(_, p)| p);
                std::iter::once(whole).chain(password)
            }))
    }
}

/// Removes secrets from a text that is about to leave the process (a client's error, a log
/// line, a span): every known secret value, any token that holds a recognisable part of one
/// (its first eight characters, or its last four behind a provider's `****` mask), anything
/// shaped like a provider key (`sk-…`, `sk-ant-…`, `AKIA…`, `AIza…`, a Google access token
/// `ya29.…`, a JWT `eyJ….….…`), and whatever follows
/// `Bearer` or `Basic`.
///
/// Tokens are runs of the characters keys are made of, so a key inside JSON, after a newline,
/// in quotes or at the end of a sentence is found as surely as one between spaces.
pub fn redact<'a>(text: &str, secrets: impl Iterator<Item = &'a str>) -> String {
    const REDACTED: &str = "[redacted]";
    let aws = crate::cloud::aws::chain::secrets();
    let mut secrets: Vec<&str> = secrets.filter(|s| s.len() >= 4).collect();
    secrets.extend(aws.iter().map(Secret::expose).filter(|s| s.len() >= 4));
    let mut text = text.to_owned();
    for s in &secrets {
        if text.contains(s) {
            text = text.replace(s, REDACTED);
        }
    }
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '*' | '.');
    let mut out = String::with_capacity(text.len());
    let mut after_scheme = false;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let start = rest.find(is_key_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
        // A sentence's full stop is not part of the key.
        let token = rest[..end].trim_end_matches('.');
        let tail = &rest[token.len()..end];
        let secret = after_scheme && token.len() >= 8
            || looks_like_key(token)
            || secrets.iter().any(|s| holds_part_of(token, s));
        if secret {
            out.push_str(REDACTED);
        } else {
            out.push_str(token);
        }
        out.push_str(tail);
        after_scheme = token.eq_ignore_ascii_case("bearer") || token.eq_ignore_ascii_case("basic");
        rest = &rest[end..];
    }
    out
}

/// Whether a token has the shape of a provider's API key.
fn looks_like_key(token: &str) -> bool {
    let long = token.len() >= 12;
    (token.starts_with("sk-") || token.starts_with("sk_")) && token.len() >= 8
        || token.starts_with("AKIA") && long
        || token.starts_with("AIza") && long
        // Google OAuth access tokens and signed JWTs (a service account's assertions).
        || token.starts_with("ya29.") && long
        || token.starts_with("eyJ") && token.matches('.').count() == 2 && long
}

/// Whether a token holds a recognisable part of `secret`: its first eight characters, or — a
/// provider's masked echo like `sk-pr****wxyz` — a mask and its last four.
fn holds_part_of(token: &str, secret: &str) -> bool {
    if secret.len() < 12 || token.len() < 8 {
        return false;
    }
    let head = secret.get(..8).is_some_and(|h| token.contains(h));
    let tail = token.contains('*')
        && secret
            .get(secret.len() - 4..)
            .is_some_and(|t| token.ends_with(t));
    head || tail
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
    fn keys_are_found_inside_json_after_newlines_and_half_masked() {
        let key = "sk-canary-0123456789abcdef";
        let known = [key];
        let cases = [
            // Inside JSON, quoted.
            (
                r#"{"error":{"message":"bad key \"sk-canary-0123456789abcdef\""}}"#,
                "sk-canary",
            ),
            // After a newline, with no space.
            ("line one\nsk-canary-0123456789abcdef", "0123456789"),
            // A provider's masked echo: the head, or the mask and the tail.
            (
                "Incorrect API key provided: sk-canar**************cdef.",
                "cdef",
            ),
            ("key=xx-****cdef", "cdef"),
            ("key prefix sk-canary-01 seen", "sk-canary-01"),
            // Not an sk- shape at all, but the known key's first eight characters.
            ("token=zzsk-canaryzz", "sk-canary"),
        ];
        for (text, leaked) in cases {
            let r = redact(text, known.into_iter());
            assert!(!r.contains(leaked), "{text:?} → {r:?}");
            assert!(r.contains("[redacted]"), "{text:?} → {r:?}");
        }
        // Keys of other clouds' shapes.
        let r = redact(
            "aws AKIAABCDEFGHIJKLMNOP google AIzaSyA-abcdefghijkl",
            [].into_iter(),
        );
        assert_eq!(r, "aws [redacted] google [redacted]");
        // Words that share nothing with a key stay.
        let plain = "The model gpt-4o-mini is overloaded (code 529); retry in 2.5s.";
        assert_eq!(redact(plain, known.into_iter()), plain);
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

    #[test]
    fn vertex_targets_get_token_sources_and_their_keys_are_never_sent_as_keys() {
        let key = plumb_simulator::google_auth::test_service_account("http://sim/token");
        let yaml = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets:\n    - {name: a, provider: vertex-ai, baseUrl: 'http://h', model: gemini-2.5-pro, project: p, region: us-east5, credentials: {env: SA}}\n    - {name: b, provider: vertex-ai, baseUrl: 'http://h', model: claude-x, project: p, region: us-east5, credentials: {google: true}}\n";
        let set = plumb_policy::parse_routes_file(yaml).unwrap_or_else(|e| panic!("{e}"));
        let route = &set.routes()[0];
        let env = |v: &str| match v {
            "SA" => Some(key.clone()),
            "GCE_METADATA_HOST" => Some("meta.keys-test".to_owned()),
            _ => None,
        };
        let keys = Keys::resolve_local(&set, env).unwrap_or_else(|e| panic!("{e}"));
        for t in &route.targets {
            assert!(
                keys.for_target(t, None).is_none(),
                "no key is sent as it is"
            );
        }
        assert!(keys.google(&route.targets[0]).is_some_and(|t| {
            t.describe()
                .starts_with("the service-account key of credentials.env SA")
        }));
        assert_eq!(
            keys.google(&route.targets[1])
                .map(|t| t.describe().to_owned()),
            Some("the metadata server at meta.keys-test".to_owned())
        );
        assert_eq!(keys.values().count(), 0, "no static secret");
        let err = Keys::resolve_local(&set, |v| {
            (v == "SA").then(|| "{\"private_key\": \"sk-oops\"}".to_owned())
        })
        .err()
        .unwrap_or_else(|| panic!("accepted"));
        assert!(matches!(err, InvalidKey::ServiceAccount { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "route default/r, target a: credentials.env SA: not a service-account JSON key"
            ),
            "{text}"
        );
        assert!(!text.contains("sk-oops"));
    }

    #[test]
    fn proxy_credentials_come_from_the_operators_secrets_and_are_redacted() {
        let yaml = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets:\n    - {name: a, provider: openai, baseUrl: 'https://h/v1', model: x, credentials: {none: true}, proxy: {url: 'http://p:3128', credentialsSecret: {name: corp-proxy, key: auth}}}\n    - {name: b, provider: openai, baseUrl: 'https://h/v1', model: y, credentials: {none: true}}\n";
        let set = plumb_policy::parse_routes_file(yaml).unwrap_or_else(|e| panic!("{e}"));
        let route = &set.routes()[0];
        let secrets: SecretValues = [(
            ("corp-proxy".to_owned(), "auth".to_owned()),
            "svc-user:Pr0xyPassw0rd\n".to_owned(),
        )]
        .into();
        let mut keys = Keys::default();
        keys.add_route(route, &|_| None, Some(&secrets))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            keys.proxy_credentials(&route.targets[0])
                .map(Secret::expose),
            Some("svc-user:Pr0xyPassw0rd")
        );
        assert_eq!(keys.proxy_credentials(&route.targets[1]), None);
        assert_eq!(
            redact("proxy said Pr0xyPassw0rd", keys.values()),
            "proxy said [redacted]"
        );
        let missing = Keys::default()
            .add_route(route, &|_| None, Some(&SecretValues::new()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            missing,
            "route default/r, target a: proxy.credentialsSecret: the key \"auth\" of Secret \"corp-proxy\" was not found in the route's namespace"
        );
        let standalone = Keys::resolve_local(&set, |_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            standalone.contains("proxy.credentialsSecret needs the operator"),
            "{standalone}"
        );
    }
}
