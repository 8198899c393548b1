//! `spec.targets[i].proxy`: how a target reaches its provider — as the sidecar's proxy
//! environment says, directly, or through a proxy of its own.

use plumb_api::{ProxySpec, SecretKeyRef};

use super::InvalidRoute;
use super::targets::has_user_info;

/// How a target reaches its provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Egress {
    /// The sidecar's `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` decide.
    #[default]
    Environment,
    /// Directly, whatever the environment says.
    Direct,
    /// Through this proxy.
    Proxy(TargetProxy),
}

/// A target's own HTTP proxy.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TargetProxy {
    /// `http://host:port/`, without user information.
    pub uri: http::Uri,
    /// The Secret key holding `user:password`, if the proxy wants it.
    pub credentials: Option<SecretKeyRef>,
}

impl TargetProxy {
    /// `host:port`, the proxy's name in messages (never with credentials).
    pub fn authority(&self) -> String {
        let host = self.uri.host().unwrap_or_default();
        let port = self.uri.port_u16().unwrap_or(80);
        format!("{host}:{port}")
    }
}

/// Compiles one target's `proxy` (`field` names it): exactly one of `url` and `none: true`; a
/// URL that is `http://host[:port]` without user information, path or query; credentials only
/// with a URL.
pub(super) fn compile(field: &str, spec: Option<&ProxySpec>) -> Result<Egress, InvalidRoute> {
    let Some(p) = spec else {
        return Ok(Egress::Environment);
    };
    let invalid = |reason| InvalidRoute::Proxy {
        field: field.to_owned(),
        reason,
    };
    match (&p.url, p.none == Some(true)) {
        (Some(_), true) | (None, false) => Err(invalid("set exactly one of url or none: true")),
        (None, true) if p.credentials_secret.is_some() => Err(invalid(
            "credentialsSecret goes with url, not with none: true",
        )),
        (None, true) => Ok(Egress::Direct),
        (Some(url), false) => {
            let field = format!("{field}.url");
            // Before anything that would quote the value back: it may hold a password.
            if has_user_info(url) {
                return Err(InvalidRoute::ProxyCredentialsInUrl { field });
            }
            let uri = proxy_uri(url).map_err(|reason| InvalidRoute::ProxyUrl {
                field,
                value: url.clone(),
                reason,
            })?;
            Ok(Egress::Proxy(TargetProxy {
                uri,
                credentials: p.credentials_secret.clone(),
            }))
        }
    }
}

/// `http://host[:port][/]` as a URI with the path `/`.
fn proxy_uri(url: &str) -> Result<http::Uri, &'static str> {
    let parsed: http::Uri = url.parse().map_err(|_| "is not a URL")?;
    match parsed.scheme_str() {
        Some("http") => {}
        Some(_) | None => {
            return Err(
                "must start with http:// (HTTPS targets are tunnelled through the proxy, TLS end to end)",
            );
        }
    }
    let Some(authority) = parsed.authority().filter(|a| !a.host().is_empty()) else {
        return Err("has no host");
    };
    if parsed.query().is_some() || !matches!(parsed.path(), "" | "/") {
        return Err("must be only scheme, host and port");
    }
    http::Uri::builder()
        .scheme("http")
        .authority(authority.as_str())
        .path_and_query("/")
        .build()
        .map_err(|_| "is not a URL")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELD: &str = "spec.targets[0].proxy";

    fn proxy(yaml: &str) -> Result<Egress, InvalidRoute> {
        let spec: ProxySpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(FIELD, Some(&spec))
    }

    #[test]
    fn no_proxy_field_leaves_it_to_the_environment() {
        assert_eq!(compile(FIELD, None), Ok(Egress::Environment));
    }

    #[test]
    fn none_true_connects_directly() {
        assert_eq!(proxy("{none: true}"), Ok(Egress::Direct));
    }

    #[test]
    fn a_url_with_a_secret_compiles_to_the_proxy_and_its_name() {
        let Ok(Egress::Proxy(p)) =
            proxy("{url: 'http://proxy.corp:3128', credentialsSecret: {name: s, key: k}}")
        else {
            panic!("not a proxy");
        };
        assert_eq!(p.uri, "http://proxy.corp:3128/");
        assert_eq!(p.authority(), "proxy.corp:3128");
        assert_eq!(
            p.credentials,
            Some(SecretKeyRef {
                name: "s".to_owned(),
                key: "k".to_owned()
            })
        );
        let Ok(Egress::Proxy(p)) = proxy("{url: 'http://proxy/'}") else {
            panic!("not a proxy");
        };
        assert_eq!(p.authority(), "proxy:80", "the URL's default port");
    }

    #[test]
    fn url_and_none_together_or_neither_are_refused() {
        for yaml in ["{url: 'http://p:1', none: true}", "{}", "{none: false}"] {
            assert_eq!(
                proxy(yaml).unwrap_err().to_string(),
                "spec.targets[0].proxy: set exactly one of url or none: true",
                "{yaml}"
            );
        }
        assert_eq!(
            proxy("{none: true, credentialsSecret: {name: s, key: k}}")
                .unwrap_err()
                .to_string(),
            "spec.targets[0].proxy: credentialsSecret goes with url, not with none: true"
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        let err = proxy("{url: 'http://u:hunter2@proxy:3128'}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::ProxyCredentialsInUrl {
                field: "spec.targets[0].proxy.url".to_owned()
            }
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("credentialsSecret"), "{err}");
    }

    #[test]
    fn other_schemes_paths_and_hostless_urls_are_refused() {
        let reason = |yaml| match proxy(yaml) {
            Err(InvalidRoute::ProxyUrl { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        assert!(reason("{url: 'https://p:443'}").starts_with("must start with http://"));
        assert!(reason("{url: 'socks5://p:1080'}").starts_with("must start with http://"));
        assert_eq!(
            reason("{url: 'http://p:3128/x'}"),
            "must be only scheme, host and port"
        );
        assert_eq!(
            reason("{url: 'http://p:3128/?a=b'}"),
            "must be only scheme, host and port"
        );
        assert_eq!(reason("{url: 'not a url'}"), "is not a URL");
    }
}
