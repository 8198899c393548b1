//! The upstream leg: pooled HTTP/1.1 and HTTP/2 connections over TLS (the system's roots plus an
//! optional CA file) or plain HTTP, directly or through an HTTP proxy ([`crate::egress`]), and
//! the request each provider expects — URL, key header, body with the upstream model. The
//! connector notes when an attempt's new connection was ready ([`clock`]).

pub mod clock;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;
use plumb_policy::{Credentials, Egress, Provider, Target};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::egress::connector::{EgressConnector, ProxyError};
use crate::egress::{Hop, ProxyEnv, ProxyHop, TargetEgress};
use crate::keys::Secret;
use crate::payload::{Api, Operation};
use crate::respond::BoxError;

/// An upstream's response body, boxed so that a scripted upstream can stand in for the network.
pub type UpstreamBody = BoxBody<Bytes, BoxError>;

/// What [`Transport::send`] returns.
pub type Sent<'a> =
    Pin<Box<dyn Future<Output = Result<http::Response<UpstreamBody>, BoxError>> + Send + 'a>>;

/// Where attempts go: [`Upstreams`] on the network, or a scripted upstream in tests, so the
/// attempt loop runs unchanged under paused time.
pub trait Transport: Send + Sync {
    /// Sends a request and resolves with the response head (the body streams on). The connect
    /// deadline is the transport's to enforce; every later deadline is the caller's.
    fn send(&self, req: Request<Full<Bytes>>, connect: Duration) -> Sent<'_>;
}

type HttpClient = Client<clock::Clocked<HttpsConnector<EgressConnector>>, Full<Bytes>>;

/// Client headers passed on to the upstream; everything else (the client's own keys above all)
/// stays behind.
const FORWARDED: [HeaderName; 4] = [
    HeaderName::from_static("anthropic-beta"),
    HeaderName::from_static("openai-beta"),
    header::USER_AGENT,
    header::ACCEPT,
];

/// The default `anthropic-version` when the client sent none.
const ANTHROPIC_VERSION: HeaderValue = HeaderValue::from_static("2023-06-01");

/// Header names the upstream requests carry, made once rather than parsed per request.
mod names {
    use http::HeaderName;

    pub const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
    pub const API_KEY: HeaderName = HeaderName::from_static("api-key");
    pub const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");
    pub const X_GOOG_API_KEY: HeaderName = HeaderName::from_static("x-goog-api-key");
    pub const OPENAI_ORGANIZATION: HeaderName = HeaderName::from_static("openai-organization");
    pub const OPENAI_PROJECT: HeaderName = HeaderName::from_static("openai-project");
}

/// Connection pools to every upstream, one per connect deadline and first hop (direct, or each
/// proxy) in use.
pub struct Upstreams {
    tls: Arc<rustls::ClientConfig>,
    proxies: ProxyEnv,
    clients: Mutex<crate::ConfigMap<(Duration, Hop), HttpClient>>,
    /// The AWS credentials of the environment, for requests to sign.
    aws: Arc<crate::cloud::aws::Chain>,
}

/// The TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamSetupError {
    /// The extra CA file cannot be read or holds no certificate.
    #[error("--ca-file {path}: {reason}")]
    CaFile {
        /// The path.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

impl Upstreams {
    /// Trusts the system's roots and, if given, the certificates of `extra_ca` (PEM).
    pub fn new(extra_ca: Option<&Path>) -> Result<Upstreams, UpstreamSetupError> {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        if let Some(path) = extra_ca {
            let ca_error = |reason: String| UpstreamSetupError::CaFile {
                path: path.display().to_string(),
                reason,
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no PEM certificate in the file".to_owned()));
            }
            for c in certs {
                roots.add(c).map_err(|e| ca_error(e.to_string()))?;
            }
        } else if added == 0 {
            tracing::warn!(
                "no system root certificates found: HTTPS upstreams will fail unless --ca-file is given"
            );
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // ALPN (h2, http/1.1) is set by the connector builder below.
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Upstreams {
            tls: Arc::new(tls),
            proxies: ProxyEnv::none(),
            clients: Mutex::default(),
            aws: crate::cloud::aws::Chain::from_env(),
        })
    }

    /// Sends upstream requests through the proxies `proxies` names (read once, at start, from
    /// the sidecar's environment: [`ProxyEnv::from_env`]).
    pub fn with_proxies(self, proxies: ProxyEnv) -> Upstreams {
        Upstreams { proxies, ..self }
    }

    fn client(&self, connect: Duration, hop: &Hop) -> HttpClient {
        let mut clients = self.clients.lock();
        clients
            .entry((connect, hop.clone()))
            .or_insert_with(|| {
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_nodelay(true);
                http.set_connect_timeout(Some(connect));
                http.set_keepalive(Some(Duration::from_secs(60)));
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*self.tls).clone())
                    .https_or_http()
                    .enable_http1()
                    .enable_http2()
                    .wrap_connector(EgressConnector::new(http, hop.clone(), connect));
                Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(256)
                    .build(clock::Clocked(https))
            })
            .clone()
    }
}

impl Transport for Upstreams {
    fn send(&self, mut req: Request<Full<Bytes>>, connect: Duration) -> Sent<'_> {
        let egress = req
            .extensions_mut()
            .remove::<TargetEgress>()
            .unwrap_or_default();
        let hop = self.proxies.hop(&egress, req.uri());
        // An http:// upstream through a proxy: the proxy reads the request, and its credentials
        // go with it (an https:// one gets them in the tunnel's CONNECT instead).
        let forwarding = match &hop {
            Hop::Proxy(p) if req.uri().scheme_str() == Some("http") => Some(p.clone()),
            Hop::Proxy(_) | Hop::Direct => None,
        };
        if let Some(auth) = forwarding.as_ref().and_then(|p| p.authorization()) {
            req.headers_mut()
                .insert(header::PROXY_AUTHORIZATION, auth.clone());
        }
        let client = self.client(connect, &hop);
        let signing = req.extensions_mut().remove::<crate::cloud::aws::Signing>();
        Box::pin(async move {
            // SigV4 last, with the chain's current credentials (fetched through this
            // transport, so its egress applies to them too).
            if let Some(signing) = signing {
                let keys = self
                    .aws
                    .credentials(self)
                    .await
                    .map_err(|e| -> BoxError { Box::new(e) })?;
                let body = req.body().clone().collect().await.map(|b| b.to_bytes());
                let body = body.unwrap_or_default();
                crate::cloud::aws::sign_request(
                    &mut req,
                    &body,
                    &signing.region,
                    &keys,
                    std::time::SystemTime::now(),
                )
                .map_err(|reason| -> BoxError {
                    Box::new(crate::cloud::aws::CredentialsError {
                        source_name: "sigv4 signing",
                        reason,
                    })
                })?;
            }
            let resp = client
                .request(req)
                .await
                .map_err(|e| -> BoxError { Box::new(e) })?;
            // The proxy, not the upstream, refused to forward the request.
            if let Some(p) = forwarding
                && resp.status() == http::StatusCode::PROXY_AUTHENTICATION_REQUIRED
            {
                let refused: BoxError = Box::new(ProxyError {
                    proxy: p.name().to_owned(),
                    what: "answered 407 Proxy Authentication Required (the proxy wants credentials: none or wrong ones were sent)".to_owned(),
                });
                return Err(refused);
            }
            Ok(resp.map(|b| BoxBody::new(b.map_err(|e| -> BoxError { Box::new(e) }))))
        })
    }
}

/// The URL of an operation on a target; `stream` is whether the answer is streamed (only
/// Gemini asks for a stream in the URL rather than the body).
pub fn url(target: &Target, family: Api, op: Operation, stream: bool) -> String {
    // As configured, without its trailing slashes (parsed into `base_url` at compile time).
    let base = &target.upstream.base_url;
    let path = match (family, op) {
        (Api::Responses, _) => "responses",
        (Api::Openai | Api::Anthropic | Api::Gemini | Api::Bedrock, Operation::Chat) => {
            "chat/completions"
        }
        (Api::Openai | Api::Anthropic | Api::Gemini | Api::Bedrock, Operation::Embeddings) => {
            "embeddings"
        }
    };
    match target.provider {
        Provider::Openai | Provider::OpenaiCompatible => format!("{base}/{path}"),
        Provider::AzureOpenai => format!(
            "{base}/openai/deployments/{}/{path}?api-version={}",
            target.model,
            target.api_version.as_deref().unwrap_or_default()
        ),
        Provider::Anthropic => format!("{base}/v1/messages"),
        Provider::Gemini => {
            let model = target
                .model
                .strip_prefix("models/")
                .unwrap_or(&target.model);
            if stream {
                format!("{base}/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("{base}/v1beta/models/{model}:generateContent")
            }
        }
        // The model id (`anthropic.claude-…-v1:0`, an inference profile, an ARN) is one path
        // segment, percent-encoded.
        Provider::Bedrock => format!(
            "{base}/model/{}/{}",
            path_segment(&target.model),
            if stream {
                "converse-stream"
            } else {
                "converse"
            }
        ),
        Provider::VertexAi => crate::vertex::url(target, stream),
    }
}

/// Percent-encodes every byte of `s` but the unreserved ones, for one path segment.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Trace context between HTTP headers and OpenTelemetry.
pub mod trace_context {
    use http::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
    use opentelemetry_sdk::propagation::TraceContextPropagator;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    struct Read<'a>(&'a HeaderMap);

    impl Extractor for Read<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(HeaderName::as_str).collect()
        }
    }

    struct Write<'a>(&'a mut HeaderMap);

    impl Injector for Write<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                self.0.insert(k, v);
            }
        }
    }

    /// Makes a client's W3C `traceparent` the parent of `span`.
    pub fn adopt(span: &tracing::Span, headers: &HeaderMap) {
        if headers.contains_key("traceparent") {
            let cx = TraceContextPropagator::new().extract(&Read(headers));
            let _ = span.set_parent(cx);
        }
    }

    /// Writes the context of `span` (the attempt) as `traceparent` / `tracestate`, or, when no
    /// tracer records spans, passes on the client's own headers unchanged.
    pub fn propagate(span: &tracing::Span, client: &HeaderMap, upstream: &mut HeaderMap) {
        let cx = span.context();
        if opentelemetry::trace::TraceContextExt::span(&cx)
            .span_context()
            .is_valid()
        {
            TraceContextPropagator::new().inject_context(&cx, &mut Write(upstream));
            return;
        }
        for name in ["traceparent", "tracestate"] {
            if let Some(v) = client.get(name) {
                upstream.insert(name, v.clone());
            }
        }
    }
}

/// How `target` leaves: its own `proxy` setting, with the proxy's credentials
/// (`proxy_credentials`, `user:password`) when it names a Secret for them.
pub fn egress(target: &Target, proxy_credentials: Option<&Secret>) -> TargetEgress {
    match &target.egress {
        Egress::Environment => TargetEgress::Environment,
        Egress::Direct => TargetEgress::Direct,
        Egress::Proxy(p) => TargetEgress::Proxy(Arc::new(ProxyHop::new(
            p.uri.clone(),
            proxy_credentials.map(Secret::expose),
        ))),
    }
}

/// What a target is asked: in which family, for which operation, streamed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// The family it is asked in.
    pub family: Api,
    /// The operation.
    pub op: Operation,
    /// Whether the answer is streamed.
    pub stream: bool,
}

/// Builds the upstream request: the provider's URL and key header, the forwarded client
/// headers, and `body`; `egress` rides along for the transport.
pub fn request(
    target: &Target,
    ask: Ask,
    body: Bytes,
    key: Option<&Secret>,
    client_headers: &HeaderMap,
    egress: TargetEgress,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let uri = http::Uri::try_from(url(target, ask.family, ask.op, ask.stream))?;
    let mut req = outgoing(Method::POST, uri, Full::new(body), egress);
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    authenticate(req.headers_mut(), target, key, client_headers);
    // Signed by the transport, just before it sends.
    if target.provider == Provider::Bedrock
        && target.credentials == Credentials::Aws
        && let Some(region) = &target.region
    {
        req.extensions_mut().insert(crate::cloud::aws::Signing {
            region: region.clone(),
        });
    }
    Ok(req)
}

/// A request with the target's egress for the transport (the environment's choice is its
/// default, with nothing to carry). Built in place: a `Builder` moves the whole request at
/// every header it adds.
fn outgoing(
    method: Method,
    uri: http::Uri,
    body: Full<Bytes>,
    egress: TargetEgress,
) -> Request<Full<Bytes>> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    match egress {
        TargetEgress::Environment => {}
        TargetEgress::Direct | TargetEgress::Proxy(_) => {
            req.extensions_mut().insert(egress);
        }
    }
    req
}

/// A request about a response an OpenAI account stored: `rest` is what follows
/// `/responses/` (its id, `/cancel`, `/input_items`, and the query).
pub fn stored_response(
    target: &Target,
    method: Method,
    rest: &str,
    key: Option<&Secret>,
    client_headers: &HeaderMap,
    egress: TargetEgress,
) -> Result<Request<Full<Bytes>>, http::Error> {
    let uri = http::Uri::try_from(format!("{}/responses/{rest}", target.upstream.base_url))?;
    let mut req = outgoing(method, uri, Full::new(Bytes::new()), egress);
    authenticate(req.headers_mut(), target, key, client_headers);
    Ok(req)
}

/// Adds the target's key header, the forwarded client headers and the account headers.
fn authenticate(
    h: &mut HeaderMap,
    target: &Target,
    key: Option<&Secret>,
    client_headers: &HeaderMap,
) {
    for name in FORWARDED {
        if let Some(v) = client_headers.get(&name) {
            h.append(name, v.clone());
        }
    }
    let secret = |v: &str| {
        let mut h = HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""));
        h.set_sensitive(true);
        h
    };
    match (target.provider, key) {
        // A Bedrock API key is a bearer token (and the request is then not signed); Vertex
        // AI's key is an OAuth access token ([`crate::cloud::google`]).
        (
            Provider::Openai | Provider::OpenaiCompatible | Provider::Bedrock | Provider::VertexAi,
            Some(k),
        ) => {
            h.append(
                header::AUTHORIZATION,
                secret(&format!("Bearer {}", k.expose())),
            );
        }
        (Provider::AzureOpenai, Some(k)) => {
            h.append(names::API_KEY, secret(k.expose()));
        }
        (Provider::Anthropic, Some(k)) => {
            h.append(names::X_API_KEY, secret(k.expose()));
        }
        // In a header, never in the URL's `key=` query, where it would reach access logs.
        (Provider::Gemini, Some(k)) => {
            h.append(names::X_GOOG_API_KEY, secret(k.expose()));
        }
        (_, None) => {}
    }
    // Which OpenAI organization and project pay: the caller's own with its own key, the
    // target's with Plumb's (the caller's would name an account the key may not belong to).
    if target.provider == Provider::Openai {
        for (name, value) in [
            (names::OPENAI_ORGANIZATION, &target.organization),
            (names::OPENAI_PROJECT, &target.project),
        ] {
            let v = match &target.credentials {
                Credentials::Passthrough => client_headers.get(&name).cloned(),
                Credentials::Secret(_)
                | Credentials::Env(_)
                | Credentials::File(_)
                | Credentials::None
                | Credentials::Aws
                | Credentials::Google => {
                    value.as_deref().and_then(|v| HeaderValue::from_str(v).ok())
                }
            };
            if let Some(v) = v {
                h.append(name, v);
            }
        }
    }
    if target.provider == Provider::Anthropic {
        let version = client_headers
            .get(names::ANTHROPIC_VERSION)
            .cloned()
            .unwrap_or(ANTHROPIC_VERSION);
        h.append(names::ANTHROPIC_VERSION, version);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn target(provider: &str, base: &str) -> Target {
        let mut t = json!({"name": "t", "provider": provider, "baseUrl": base, "model": "up", "apiVersion": "2024-10-21", "credentials": {"env": "K"}});
        if provider == "bedrock" {
            t["region"] = json!("us-east-1");
        }
        let spec = serde_json::from_value(json!({"match": {"models": ["m"]}, "targets": [t]}))
            .unwrap_or_else(|e| panic!("{e}"));
        plumb_policy::compile("d", "r", &spec)
            .unwrap_or_else(|e| panic!("{e}"))
            .targets
            .remove(0)
    }

    #[test]
    fn each_provider_gets_its_url() {
        assert_eq!(
            url(
                &target("openai", "https://api.openai.com/v1/"),
                Api::Openai,
                Operation::Chat,
                false
            ),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(
            url(
                &target("openai-compatible", "http://vllm:8000/v1"),
                Api::Openai,
                Operation::Embeddings,
                false
            ),
            "http://vllm:8000/v1/embeddings"
        );
        assert_eq!(
            url(
                &target("azure-openai", "https://x.openai.azure.com"),
                Api::Openai,
                Operation::Chat,
                false
            ),
            "https://x.openai.azure.com/openai/deployments/up/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(
            url(
                &target("anthropic", "https://api.anthropic.com"),
                Api::Openai,
                Operation::Chat,
                false
            ),
            "https://api.anthropic.com/v1/messages"
        );
        assert_eq!(
            url(
                &target("openai", "https://api.openai.com/v1"),
                Api::Responses,
                Operation::Chat,
                false
            ),
            "https://api.openai.com/v1/responses"
        );
        let gemini = target("gemini", "https://generativelanguage.googleapis.com/");
        assert_eq!(
            url(&gemini, Api::Gemini, Operation::Chat, false),
            "https://generativelanguage.googleapis.com/v1beta/models/up:generateContent"
        );
        assert_eq!(
            url(&gemini, Api::Gemini, Operation::Chat, true),
            "https://generativelanguage.googleapis.com/v1beta/models/up:streamGenerateContent?alt=sse"
        );
    }

    #[test]
    fn a_bedrock_model_id_is_one_percent_encoded_segment_and_its_key_a_bearer_token() {
        let mut t = target(
            "bedrock",
            "https://bedrock-runtime.us-east-1.amazonaws.com/",
        );
        for (model, path) in [
            (
                "anthropic.claude-sonnet-4-20250514-v1:0",
                "anthropic.claude-sonnet-4-20250514-v1%3A0",
            ),
            (
                "arn:aws:bedrock:us-east-1:123:inference-profile/us.anthropic.claude",
                "arn%3Aaws%3Abedrock%3Aus-east-1%3A123%3Ainference-profile%2Fus.anthropic.claude",
            ),
        ] {
            t.model = model.to_owned();
            assert_eq!(
                url(&t, Api::Bedrock, Operation::Chat, false),
                format!("https://bedrock-runtime.us-east-1.amazonaws.com/model/{path}/converse")
            );
            assert_eq!(
                url(&t, Api::Bedrock, Operation::Chat, true),
                format!(
                    "https://bedrock-runtime.us-east-1.amazonaws.com/model/{path}/converse-stream"
                )
            );
        }
        let key = Secret::new("bedrock-api-key");
        let ask = Ask {
            family: Api::Bedrock,
            op: Operation::Chat,
            stream: false,
        };
        let r = request(
            &t,
            ask,
            Bytes::new(),
            Some(&key),
            &HeaderMap::new(),
            TargetEgress::Environment,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers()[header::AUTHORIZATION], "Bearer bedrock-api-key");
        assert!(r.extensions().get::<crate::cloud::aws::Signing>().is_none());
        t.credentials = Credentials::Aws;
        t.region = Some("us-east-1".to_owned());
        let r = request(
            &t,
            ask,
            Bytes::new(),
            None,
            &HeaderMap::new(),
            TargetEgress::Environment,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            r.extensions().get::<crate::cloud::aws::Signing>(),
            Some(&crate::cloud::aws::Signing {
                region: "us-east-1".to_owned()
            })
        );
        assert!(r.headers().get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn a_gemini_key_goes_in_its_header_and_never_in_the_url() {
        let key = Secret::new("AIzaSyTargetKey");
        let r = request(
            &target("gemini", "http://h"),
            Ask {
                family: Api::Gemini,
                op: Operation::Chat,
                stream: true,
            },
            Bytes::new(),
            Some(&key),
            &HeaderMap::new(),
            TargetEgress::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers()["x-goog-api-key"], "AIzaSyTargetKey");
        assert!(r.headers()["x-goog-api-key"].is_sensitive());
        assert!(!r.uri().to_string().contains("AIza"));
        assert!(r.headers().get(header::AUTHORIZATION).is_none());
    }

    #[test]
    fn keys_go_in_the_providers_header_and_client_keys_stay_behind() {
        let mut client = HeaderMap::new();
        client.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller-key"),
        );
        client.insert("x-api-key", HeaderValue::from_static("caller-key"));
        client.insert("anthropic-beta", HeaderValue::from_static("tools-2024"));
        let key = Secret::new("target-key");
        let r = request(
            &target("anthropic", "http://h"),
            Ask {
                family: Api::Openai,
                op: Operation::Chat,
                stream: false,
            },
            Bytes::new(),
            Some(&key),
            &client,
            TargetEgress::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers()["x-api-key"], "target-key");
        assert!(r.headers()["x-api-key"].is_sensitive());
        assert_eq!(r.headers()["anthropic-version"], ANTHROPIC_VERSION);
        assert_eq!(r.headers()["anthropic-beta"], "tools-2024");
        assert!(r.headers().get(header::AUTHORIZATION).is_none());
        let r = request(
            &target("azure-openai", "http://h"),
            Ask {
                family: Api::Openai,
                op: Operation::Chat,
                stream: false,
            },
            Bytes::new(),
            Some(&key),
            &client,
            TargetEgress::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.headers()["api-key"], "target-key");
        assert!(r.headers().get("x-api-key").is_none());
        let r = request(
            &target("openai", "http://h/v1"),
            Ask {
                family: Api::Openai,
                op: Operation::Chat,
                stream: false,
            },
            Bytes::new(),
            None,
            &client,
            TargetEgress::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            r.headers().get(header::AUTHORIZATION).is_none(),
            "no key, no header"
        );
    }
}
