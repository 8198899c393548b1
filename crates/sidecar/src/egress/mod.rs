//! Egress through an HTTP proxy: which proxy, if any, carries a request to its upstream.
//!
//! Many clusters reach providers only through an enterprise proxy. The sidecar reads the usual
//! variables once, at start, into a [`ProxyEnv`] (tests build one from a map instead of touching
//! the process environment):
//!
//! | variable | meaning |
//! | --- | --- |
//! | `HTTPS_PROXY` / `https_proxy` | the proxy for `https://` upstreams: a `CONNECT` tunnel, TLS to the provider inside it |
//! | `HTTP_PROXY` / `http_proxy` | the proxy for `http://` upstreams: requests in absolute form |
//! | `NO_PROXY` / `no_proxy` | hosts reached directly: `*`, `example.com` or `.example.com` (the domain and its subdomains), IPs, CIDRs (`10.0.0.0/8`), each optionally with `:port` |
//!
//! The rules are curl's. hyper-util's `client::proxy::matcher` (its `client-proxy` feature) reads
//! the same variables but ignores a `NO_PROXY` entry's port, and its `Tunnel` connector keeps
//! neither its error type public nor the proxy's status, so both are written here, small and
//! tested ([`connector`]).
//!
//! A target's own `proxy` (`url`, or `none: true`) overrides the environment for that target
//! ([`TargetEgress`]). Proxies are `http://[user:password@]host[:port]`; the credentials become
//! `Proxy-Authorization: Basic`, and only the proxy's `host:port` ever appears in a log line,
//! a span, a metric or an error.
//!
//! ```text
//! target.proxy ─┬─ none: true ──────────────▶ direct
//!               ├─ url ─────────────────────▶ that proxy
//!               └─ unset ─▶ NO_PROXY match? ─ yes ─▶ direct
//!                                  │ no
//!                                  ▼
//!                    HTTPS_PROXY (https) / HTTP_PROXY (http), else direct
//! ```

pub mod connector;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderValue, Uri};

/// One HTTP proxy: where it is and what it wants to see.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyHop {
    /// `http://host:port/`.
    uri: Uri,
    /// `host:port`: the proxy's name in messages.
    name: String,
    /// `Basic …`, marked sensitive.
    auth: Option<HeaderValue>,
}

/// Where a request goes first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Straight to the upstream.
    Direct,
    /// Through this proxy.
    Proxy(Arc<ProxyHop>),
}

/// How one request's target wants to leave: set on the request by
/// [`crate::upstream::request`], read by [`crate::upstream::Upstreams`].
#[derive(Clone, Debug, Default)]
pub enum TargetEgress {
    /// As the sidecar's environment says.
    #[default]
    Environment,
    /// Directly (`proxy: {none: true}`).
    Direct,
    /// Through the target's own proxy (`proxy: {url: …}`).
    Proxy(Arc<ProxyHop>),
}

/// The sidecar's proxy settings, read once from its environment.
#[derive(Clone, Debug, Default)]
pub struct ProxyEnv {
    https: Option<Arc<ProxyHop>>,
    http: Option<Arc<ProxyHop>>,
    no_proxy: NoProxy,
}

/// A proxy variable that cannot be used. The value is shown without its credentials.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}={value:?} {reason}")]
pub struct InvalidProxyEnv {
    /// The variable.
    pub var: &'static str,
    /// Its value, the user information replaced by `***`.
    pub value: String,
    /// What is wrong.
    pub reason: &'static str,
}

/// `NO_PROXY`: the destinations reached directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoProxy {
    entries: Vec<NoProxyEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NoProxyEntry {
    /// `*`.
    All,
    /// An address or a network, optionally with a port.
    Ip(ipnet::IpNet, Option<u16>),
    /// A domain and its subdomains (stored without a leading dot, lower case), optionally with
    /// a port.
    Domain(String, Option<u16>),
}

impl ProxyHop {
    /// A proxy at `uri` (`http://host:port/`), sending `credentials` (`user:password`) as
    /// `Proxy-Authorization: Basic` if given.
    pub fn new(uri: Uri, credentials: Option<&str>) -> ProxyHop {
        let host = uri.host().unwrap_or_default();
        let port = uri.port_u16().unwrap_or(80);
        ProxyHop {
            name: format!("{host}:{port}"),
            uri,
            auth: credentials.map(basic),
        }
    }

    /// `host:port`, never with credentials.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://host:port/`.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The `Proxy-Authorization` value, if the proxy has credentials.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.auth.as_ref()
    }
}

impl fmt::Debug for ProxyHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyHop")
            .field("name", &self.name)
            .field("credentials", &self.auth.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ProxyEnv {
    /// No proxy at all.
    pub fn none() -> ProxyEnv {
        ProxyEnv::default()
    }

    /// Reads `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY` (upper case first, then lower case)
    /// from the process environment.
    pub fn from_env() -> Result<ProxyEnv, InvalidProxyEnv> {
        ProxyEnv::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `get`, so tests need not touch the process environment. An
    /// empty variable counts as unset.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<ProxyEnv, InvalidProxyEnv> {
        let first = |names: [&'static str; 2]| {
            names
                .into_iter()
                .find_map(|n| get(n).filter(|v| !v.trim().is_empty()).map(|v| (n, v)))
        };
        let proxy = |names| match first(names) {
            None => Ok(None),
            Some((var, value)) => parse_proxy_url(&value)
                .map(|hop| Some(Arc::new(hop)))
                .map_err(|reason| InvalidProxyEnv {
                    var,
                    value: redact_url(&value),
                    reason,
                }),
        };
        Ok(ProxyEnv {
            https: proxy(["HTTPS_PROXY", "https_proxy"])?,
            http: proxy(["HTTP_PROXY", "http_proxy"])?,
            no_proxy: first(["NO_PROXY", "no_proxy"])
                .map(|(_, v)| NoProxy::parse(&v))
                .unwrap_or_default(),
        })
    }

    /// Whether any proxy is set.
    pub fn is_empty(&self) -> bool {
        self.https.is_none() && self.http.is_none()
    }

    /// The first hop of a request to `dst` from a target that wants `egress`.
    pub fn hop(&self, egress: &TargetEgress, dst: &Uri) -> Hop {
        match egress {
            TargetEgress::Direct => Hop::Direct,
            TargetEgress::Proxy(p) => Hop::Proxy(p.clone()),
            TargetEgress::Environment => {
                let proxy = match dst.scheme_str() {
                    Some("https") => self.https.as_ref(),
                    Some("http") => self.http.as_ref(),
                    _ => None,
                };
                match (proxy, dst.host()) {
                    (Some(p), Some(host)) if !self.no_proxy.bypasses(host, port_of(dst)) => {
                        Hop::Proxy(p.clone())
                    }
                    _ => Hop::Direct,
                }
            }
        }
    }
}

impl fmt::Display for ProxyEnv {
    /// For the start-up log: the proxies by name and the `NO_PROXY` entries, never credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |p: &Option<Arc<ProxyHop>>| p.as_ref().map_or("none", |p| p.name()).to_owned();
        write!(
            f,
            "https via {}, http via {}, {} NO_PROXY entries",
            name(&self.https),
            name(&self.http),
            self.no_proxy.entries.len()
        )
    }
}

impl NoProxy {
    /// Parses a `NO_PROXY` list: comma-separated, whitespace ignored, matched case-insensitively.
    /// An entry that is none of the forms (see the module) is taken as a domain, as curl does.
    pub fn parse(list: &str) -> NoProxy {
        let entries = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| e.to_ascii_lowercase())
            .map(|e| {
                if e == "*" {
                    return NoProxyEntry::All;
                }
                if let Some(entry) = ip_entry(&e) {
                    return entry;
                }
                let (host, port) = match e.rsplit_once(':') {
                    Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                        (h, p.parse().ok())
                    }
                    _ => (e.as_str(), None),
                };
                let host = host.trim_start_matches("*.").trim_start_matches('.');
                NoProxyEntry::Domain(host.to_owned(), port)
            })
            .collect();
        NoProxy { entries }
    }

    /// Whether `host` (a name or an address, IPv6 with or without brackets) on `port` is
    /// reached directly.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        self.entries.iter().any(|e| match e {
            NoProxyEntry::All => true,
            NoProxyEntry::Ip(net, p) => ip.is_some_and(|ip| net.contains(&ip)) && port_ok(p),
            NoProxyEntry::Domain(d, p) => {
                ip.is_none()
                    && !d.is_empty()
                    && (host == *d
                        || host
                            .strip_suffix(d.as_str())
                            .is_some_and(|rest| rest.ends_with('.')))
                    && port_ok(p)
            }
        })
    }
}

/// An IP entry: `10.1.2.3`, `10.0.0.0/8`, `::1`, `[::1]`, `10.1.2.3:8080`, `[::1]:8080`.
fn ip_entry(e: &str) -> Option<NoProxyEntry> {
    if let Ok(net) = e.parse::<ipnet::IpNet>() {
        return Some(NoProxyEntry::Ip(net, None));
    }
    if let Ok(addr) = e
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(NoProxyEntry::Ip(addr.into(), None));
    }
    if let Ok(sa) = e.parse::<std::net::SocketAddr>() {
        return Some(NoProxyEntry::Ip(sa.ip().into(), Some(sa.port())));
    }
    None
}

/// The port of `dst`, or its scheme's default.
fn port_of(dst: &Uri) -> u16 {
    dst.port_u16().unwrap_or(match dst.scheme_str() {
        Some("https") => 443,
        _ => 80,
    })
}

/// Parses `[http://][user[:password]@]host[:port][/]`: a proxy spoken to in plain HTTP (an
/// HTTPS upstream is still TLS end to end, inside the `CONNECT` tunnel).
pub fn parse_proxy_url(value: &str) -> Result<ProxyHop, &'static str> {
    let value = value.trim();
    let (scheme, rest) = value.split_once("://").unwrap_or(("http", value));
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(
            "is not an http:// proxy (https:// and socks proxies are not supported; HTTPS upstreams are tunnelled through an http:// proxy, TLS end to end)",
        );
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let after = &rest[authority.len()..];
    if !matches!(after, "" | "/") {
        return Err("must be only scheme, credentials, host and port");
    }
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let parsed: http::uri::Authority = host_port.parse().map_err(|_| "has no valid host")?;
    if parsed.host().is_empty() {
        return Err("has no host");
    }
    let uri = Uri::builder()
        .scheme("http")
        .authority(parsed)
        .path_and_query("/")
        .build()
        .map_err(|_| "has no valid host")?;
    let credentials = userinfo.map(|u| {
        let (user, pass) = u.split_once(':').unwrap_or((u, ""));
        format!("{}:{}", percent_decode(user), percent_decode(pass))
    });
    Ok(ProxyHop::new(uri, credentials.as_deref()))
}

/// A proxy URL fit to show: its user information (the password, and a user name that may be a
/// token) as `***`.
pub fn redact_url(value: &str) -> String {
    let (scheme, rest) = match value.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, value),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// `user:password` as a `Basic` header value, marked sensitive.
fn basic(credentials: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials.as_bytes());
    let mut v = HeaderValue::from_str(&format!("Basic {encoded}"))
        .unwrap_or(HeaderValue::from_static("Basic"));
    v.set_sensitive(true);
    v
}

/// `%XX` escapes decoded; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let (h, l) = (hex(h).unwrap_or(0), hex(l).unwrap_or(0));
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<ProxyEnv, InvalidProxyEnv> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ProxyEnv::from_vars(|k| map.get(k).cloned())
    }

    fn hop(e: &ProxyEnv, url: &str) -> Option<String> {
        let uri: Uri = url.parse().unwrap_or_else(|e| panic!("{e}"));
        match e.hop(&TargetEgress::Environment, &uri) {
            Hop::Direct => None,
            Hop::Proxy(p) => Some(p.name().to_owned()),
        }
    }

    #[test]
    fn https_and_http_upstreams_take_their_own_proxy() {
        let e = env(&[
            ("HTTPS_PROXY", "http://secure:3128"),
            ("HTTP_PROXY", "plain:8080"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            hop(&e, "https://api.openai.com/v1").as_deref(),
            Some("secure:3128")
        );
        assert_eq!(
            hop(&e, "http://vllm:8000/v1").as_deref(),
            Some("plain:8080")
        );
        let only_https = env(&[("https_proxy", "http://p:1")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hop(&only_https, "http://vllm:8000/v1"), None);
        assert_eq!(hop(&only_https, "https://x/v1").as_deref(), Some("p:1"));
    }

    #[test]
    fn upper_case_wins_over_lower_case_and_empty_counts_as_unset() {
        let e = env(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:2"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hop(&e, "https://x/").as_deref(), Some("upper:1"));
        let e = env(&[("HTTPS_PROXY", " "), ("https_proxy", "http://lower:2")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hop(&e, "https://x/").as_deref(), Some("lower:2"));
        assert!(env(&[]).unwrap_or_else(|e| panic!("{e}")).is_empty());
    }

    #[test]
    fn no_proxy_matches_domains_subdomains_ips_cidrs_ports_and_star() {
        let e = env(&[
            ("HTTPS_PROXY", "http://p:3128"),
            ("HTTP_PROXY", "http://p:3128"),
            (
                "no_proxy",
                "internal.corp, .svc,.Cluster.Local , 127.0.0.1,10.0.0.0/8, ::1, vllm:8000, [fd00::1]:443, 192.168.1.5:8443",
            ),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let direct = [
            "https://internal.corp/v1",
            "https://api.internal.corp/v1",
            "http://plumb-operator.plumb-system.svc:15410/",
            "http://x.ns.svc.cluster.local/",
            "http://127.0.0.1:9000/",
            "http://10.20.30.40/",
            "http://[::1]:8080/",
            "http://vllm:8000/v1",
            "https://[fd00::1]/",
            "https://192.168.1.5:8443/",
            "https://API.INTERNAL.CORP./v1",
        ];
        for url in direct {
            assert_eq!(hop(&e, url), None, "{url} goes direct");
        }
        let proxied = [
            "https://api.openai.com/v1",
            "https://notinternal.corp/v1",
            "https://internal.corp.evil.com/",
            "http://11.0.0.1/",
            "http://vllm:8001/v1",
            "https://[fd00::1]:8443/",
            "https://192.168.1.5/",
            "https://mysvc/",
        ];
        for url in proxied {
            assert_eq!(hop(&e, url).as_deref(), Some("p:3128"), "{url} is proxied");
        }
        let all = env(&[("HTTPS_PROXY", "http://p:1"), ("NO_PROXY", "*")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(hop(&all, "https://api.openai.com/"), None);
    }

    #[test]
    fn a_targets_own_setting_overrides_the_environment() {
        let e = env(&[("HTTPS_PROXY", "http://p:3128"), ("NO_PROXY", "bypassed")])
            .unwrap_or_else(|e| panic!("{e}"));
        let uri: Uri = "https://bypassed/v1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let own = Arc::new(ProxyHop::new(
            "http://own:8080/".parse().unwrap_or_else(|e| panic!("{e}")),
            None,
        ));
        assert_eq!(
            e.hop(&TargetEgress::Proxy(own.clone()), &uri),
            Hop::Proxy(own),
            "the target's own proxy even for a NO_PROXY host"
        );
        let uri: Uri = "https://api.openai.com/v1"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.hop(&TargetEgress::Direct, &uri), Hop::Direct);
    }

    #[test]
    fn credentials_become_basic_auth_and_never_show() {
        let p = parse_proxy_url("http://Aladdin:open%20sesame@proxy.corp:3128/")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name(), "proxy.corp:3128");
        assert_eq!(p.uri(), "http://proxy.corp:3128/");
        let auth = p.authorization().unwrap_or_else(|| panic!("no auth"));
        // base64("Aladdin:open sesame")
        assert_eq!(auth, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert!(auth.is_sensitive());
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("sesame") && !shown.contains("QWxh"),
            "{shown}"
        );
        let e = env(&[("HTTPS_PROXY", "http://u:hunter2@p:1")]).unwrap_or_else(|e| panic!("{e}"));
        let shown = format!("{e:?} {e}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            e.to_string(),
            "https via p:1, http via none, 0 NO_PROXY entries"
        );
        assert_eq!(
            parse_proxy_url("p:3128").map(|p| p.authorization().is_none()),
            Ok(true)
        );
    }

    #[test]
    fn unusable_proxy_urls_are_refused_without_their_password() {
        let err = env(&[("HTTPS_PROXY", "socks5://u:hunter2@p:1080")]).unwrap_err();
        assert_eq!(err.var, "HTTPS_PROXY");
        assert_eq!(err.value, "socks5://***@p:1080");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.reason.starts_with("is not an http:// proxy"));
        let err = env(&[("http_proxy", "http://p:1/path")]).unwrap_err();
        assert_eq!(err.var, "http_proxy");
        assert_eq!(
            err.reason,
            "must be only scheme, credentials, host and port"
        );
        assert!(env(&[("HTTPS_PROXY", "http://:3128")]).is_err());
        assert!(env(&[("HTTPS_PROXY", "https://p:443")]).is_err());
    }

    #[test]
    fn urls_are_redacted_wherever_the_password_sits() {
        assert_eq!(redact_url("http://u:p@h:1/x"), "http://***@h:1/x");
        assert_eq!(redact_url("u:p@h:1"), "***@h:1");
        assert_eq!(redact_url("http://h:1"), "http://h:1");
        assert_eq!(redact_url("http://tok@h:1"), "http://***@h:1");
    }
}
