//! The HTTP(S) server: accepts connections, routes requests to the wire formats and the
//! identity services (STS, container credentials, Google's token endpoint and metadata server),
//! and chooses the fault; `server/answer.rs` applies it (whole answers, paced streams, errors in each
//! provider's shape), `server/admin.rs` serves the admin API under `/_sim/`, `server/route.rs`
//! reads what a request asks for and `server/identity.rs` serves the identity services.
//!
//! ```text
//! request → route (openai | azure | anthropic | responses | gemini | bedrock | vertex | identity | admin)
//!         → read body → record arrival
//!         → natural errors (unknown model, wrong key, context too long)
//!         → fault: x-sim-fault header > plan > sim-<fault> model name > model default
//!         → latency → error status | reset | hang | answer (whole, or paced stream)
//!         → record how it ended
//! ```

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::anthropic;
use crate::attempts::{Api, Arrival, Attempt, AttemptLog, Outcome};
use crate::catalog::{Latency, ModelSpec, SimConfig};
use crate::chat::{self, ChatRequest};
use crate::embed::JudgeRule;
use crate::fault::Fault;
use crate::gemini;
use crate::openai;
use crate::plan::{InvalidPlan, PlanSpec, Plans};
use crate::responses;
use crate::tls;
use crate::vertex;
use crate::wire::{Event, EventKind, ProviderError};

/// The error type of response bodies and of the service.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

mod admin;
mod answer;
mod identity;
mod route;

use admin::{admin, admin_json};
use identity::{aws_identity, google_auth};
use route::{Route, api_key, route_name};

/// Largest request body accepted.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

/// A running simulator. Dropping it stops accepting connections.
pub struct Simulator {
    state: Arc<State>,
    addr: SocketAddr,
    ca_pem: Option<String>,
    accept: JoinHandle<()>,
}

struct State {
    config: SimConfig,
    attempts: AttemptLog,
    plans: Plans,
    judge: Mutex<JudgeRule>,
    rng: Mutex<fastrand::Rng>,
    stored: responses::Store,
    aws: crate::aws::Issuer,
    google: crate::google_auth::GoogleAuth,
}

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and starts serving; with `tls`, serves HTTPS
    /// with a freshly generated CA (see [`Simulator::ca_pem`]).
    pub async fn start(config: SimConfig, listen: SocketAddr, tls: bool) -> io::Result<Simulator> {
        let tls = if tls {
            Some(tls::generate().map_err(io::Error::other)?)
        } else {
            None
        };
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            attempts: AttemptLog::new(config.attempt_log_capacity),
            config,
            plans: Plans::default(),
            judge: Mutex::new(JudgeRule::default()),
            rng: Mutex::new(fastrand::Rng::new()),
            stored: responses::Store::default(),
            aws: crate::aws::Issuer::default(),
            google: crate::google_auth::GoogleAuth::new(),
        });
        let ca_pem = tls.as_ref().map(|t| t.ca_pem.clone());
        let acceptor = tls.map(|t| t.acceptor);
        let accept = tokio::spawn(accept_loop(listener, state.clone(), acceptor));
        Ok(Simulator {
            state,
            addr,
            ca_pem,
            accept,
        })
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` or `https://…`.
    pub fn base_url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA certificate (PEM) when serving HTTPS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The attempt log, optionally one model's.
    pub fn attempts(&self, model: Option<&str>) -> Vec<Attempt> {
        self.state.attempts.snapshot(model)
    }

    /// Google's token endpoint and metadata server: tokens issued, lifetime, failures.
    pub fn google(&self) -> &crate::google_auth::GoogleAuth {
        &self.state.google
    }

    /// Sets a model's fault plan (`*` for every model without its own).
    pub fn set_plan(&self, model: &str, plan: PlanSpec) -> Result<(), InvalidPlan> {
        self.state.plans.set(model, plan)
    }

    /// Sets the judge's rule.
    pub fn set_judge(&self, rule: JudgeRule) {
        *self.state.judge.lock() = rule;
    }

    /// Clears the attempt log and plans and restores the default judge.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// How long the temporary AWS credentials issued from now on last (STS and the
    /// container-credentials endpoint; an hour by default).
    pub fn set_aws_expiry(&self, expiry: Duration) {
        self.state.aws.set_expiry(expiry);
    }

    /// Waits until the accept loop ends (it runs until the simulator is dropped).
    pub async fn wait(&mut self) {
        let _ = (&mut self.accept).await;
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl State {
    fn reset(&self) {
        self.attempts.clear();
        self.plans.clear();
        *self.judge.lock() = JudgeRule::default();
        self.google.reset();
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (tcp, _peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and similar: wait a moment rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let reset = Arc::new(AtomicBool::new(false));
        let io = ResetOnDrop {
            inner: tcp,
            reset: reset.clone(),
        };
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(state.clone(), reset.clone(), req));
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(io).await {
                    Ok(stream) => builder.serve_connection(TokioIo::new(stream), svc).await,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => builder.serve_connection(TokioIo::new(io), svc).await,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
}

/// A TCP stream that, when asked, closes with a reset (SO_LINGER 0) instead of a FIN.
struct ResetOnDrop {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Relaxed) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResetOnDrop {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResetOnDrop {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One attempt being answered.
struct Attempting {
    state: Arc<State>,
    reset: Arc<AtomicBool>,
    api: Api,
    id: u64,
    model: String,
    key: Option<String>,
    /// What a key-echo fault repeats: the key, or a signed request's session token.
    echo: Option<String>,
    /// Errors go out wrapped in an array, `[{"error": …}]`, as Vertex AI's
    /// `streamGenerateContent` sends them.
    wrapped: bool,
}

async fn handle(
    state: Arc<State>,
    reset: Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    if let Some(rest) = req.uri().path().strip_prefix("/_sim/") {
        let rest = rest.to_owned();
        return Ok(admin(&state, &rest, req).await);
    }
    if matches!(
        (req.method(), req.uri().path()),
        (&Method::POST, "/token") | (&Method::GET, crate::google_auth::METADATA_TOKEN_PATH)
    ) {
        return google_auth(&state, req).await;
    }
    if let Some(rest) = req.uri().path().strip_prefix("/v1/responses/") {
        let rest = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        let (status, body) = state.stored.serve(req.method(), &rest);
        let mut resp = Response::new(full(Bytes::from(body.to_string())));
        *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND);
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let route = Route::of(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    );
    let mut vertex = None;
    let (api, deployment, endpoint, path_stream) = match route {
        Route::Missing { api, error } => return Ok(error_response(api, &error, "req_sim_0")),
        Route::Models { api } => return models(&state, api, &reset, req).await,
        Route::Chat { api, deployment } => (api, deployment, "chat", None),
        Route::Gemini { model, stream } => (Api::Gemini, Some(model), "chat", Some(stream)),
        Route::Bedrock { model, stream } => (Api::Bedrock, Some(model), "chat", Some(stream)),
        Route::Sts | Route::ContainerCredentials => {
            return Ok(aws_identity(&state, route_name(&route), req).await);
        }
        Route::Vertex(v) => {
            let api = match v.publisher {
                vertex::Publisher::Google => Api::Gemini,
                vertex::Publisher::Anthropic => Api::Anthropic,
            };
            let (model, stream) = (v.model.clone(), v.stream);
            vertex = Some(v);
            (api, Some(model), "chat", Some(stream))
        }
        Route::Embeddings { api, deployment } => (api, deployment, "embeddings", None),
    };
    let path = req.uri().path().to_owned();
    let mut key = match vertex {
        // An OAuth access token, whatever the publisher.
        Some(_) => api_key(Api::Openai, req.headers()),
        None => api_key(api, req.headers()),
    };
    let (parts, body) = req.into_parts();
    let raw = match read_bytes(body).await {
        Ok(b) => b,
        Err(e) => return Ok(error_response(api, &e, "req_sim_0")),
    };
    // A signed Bedrock request: the signature is checked before anything else, and the
    // access key id it was signed with stands for the key in the attempt log.
    let signed = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    if api == Api::Bedrock && signed {
        let uri = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        match state
            .aws
            .verify(parts.method.as_str(), uri, &parts.headers, &raw)
        {
            Ok(id) => key = Some(id),
            Err(refusal) => {
                let id = state.attempts.begin(Arrival {
                    api,
                    endpoint,
                    model: deployment.clone(),
                    key: None,
                    stream: path_stream.unwrap_or(false),
                    traceparent: None,
                    organization: None,
                    project: None,
                    path: Some(path.clone()),
                });
                let err = ProviderError {
                    status: 403,
                    headers: vec![("x-amzn-errortype".to_owned(), refusal.exception.to_owned())],
                    ..ProviderError::bad_request(refusal.message)
                };
                state.attempts.update(id, |a| a.status = 403);
                let resp = error_response(api, &err, &format!("req_sim_{id}"));
                state.attempts.finish(id, Outcome::Error, body_len(&resp));
                return Ok(resp);
            }
        }
    }
    let body = match parse_json(&raw) {
        Ok(v) => v,
        Err(e) => return Ok(error_response(api, &e, "req_sim_0")),
    };
    let model = deployment
        .clone()
        .or_else(|| body.get("model").and_then(Value::as_str).map(str::to_owned));
    let stream =
        path_stream.unwrap_or_else(|| body.get("stream").and_then(Value::as_bool).unwrap_or(false));
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let id = state.attempts.begin(Arrival {
        api,
        endpoint,
        model: model.clone(),
        key: key.clone(),
        stream,
        traceparent: header("traceparent"),
        organization: header("openai-organization"),
        project: header("openai-project"),
        path: Some(path),
    });
    let at = Attempting {
        state,
        reset,
        api,
        id,
        model: model.unwrap_or_default(),
        echo: header("x-amz-security-token").or_else(|| key.clone()),
        key,
        wrapped: vertex
            .as_ref()
            .is_some_and(|v| v.stream && v.publisher == vertex::Publisher::Google),
    };
    let mut body = body;
    if let Some(v) = &vertex {
        if !at.state.google.valid(at.key.as_deref()) {
            return Ok(at.error_in(Api::Gemini, &vertex::unauthenticated()));
        }
        if v.publisher == vertex::Publisher::Anthropic {
            body = match vertex::anthropic_body(&body, &v.model, v.stream) {
                Ok(b) => b,
                Err(msg) => return Ok(at.error(&ProviderError::bad_request(msg))),
            };
        }
    }
    if endpoint == "embeddings" {
        return at.embeddings(&parts.headers, &body).await;
    }
    let parsed = match api {
        Api::Anthropic => anthropic::parse_messages(&body),
        Api::Responses => responses::parse(&body),
        Api::Openai | Api::Azure => openai::parse_chat(&body, deployment.as_deref()),
        Api::Gemini => gemini::parse(&body, deployment.as_deref().unwrap_or_default(), stream),
        Api::Bedrock => {
            crate::bedrock::parse(&body, deployment.as_deref().unwrap_or_default(), stream)
        }
    };
    match parsed {
        Ok(chat) => at.chat(&parts.headers, chat).await,
        Err(msg) => Ok(at.error(&ProviderError::bad_request(msg))),
    }
}

async fn models(
    state: &Arc<State>,
    api: Api,
    reset: &Arc<AtomicBool>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let key = api_key(api, req.headers());
    let id = state.attempts.begin(Arrival {
        api,
        endpoint: "models",
        model: None,
        key: key.clone(),
        stream: false,
        traceparent: None,
        organization: None,
        project: None,
        path: None,
    });
    let at = Attempting {
        state: state.clone(),
        reset: reset.clone(),
        api,
        id,
        model: String::new(),
        echo: key.clone(),
        key,
        wrapped: false,
    };
    let fault = match req.headers().get("x-sim-fault").map(HeaderValue::to_str) {
        Some(Ok(text)) => match text.parse::<Fault>() {
            Ok(f) => Some(f),
            Err(e) => return Ok(at.error(&ProviderError::bad_request(format!("x-sim-fault: {e}")))),
        },
        Some(Err(_)) | None => None,
    };
    at.state
        .attempts
        .update(id, |a| a.fault = fault.as_ref().map(Fault::to_string));
    if let Some(resp) = at.transport_fault(fault.as_ref(), (0, 0)).await? {
        return Ok(resp);
    }
    let names = state.config.models.keys();
    let body = match api {
        Api::Anthropic => anthropic::models(names),
        Api::Openai | Api::Azure | Api::Responses | Api::Gemini | Api::Bedrock => {
            openai::models(names, 1_735_689_600)
        }
    };
    Ok(at.whole(Bytes::from(body.to_string())))
}

async fn read_bytes(body: Incoming) -> Result<Bytes, ProviderError> {
    Ok(Limited::new(body, MAX_REQUEST_BYTES)
        .collect()
        .await
        .map_err(|e| ProviderError::bad_request(format!("could not read the request body: {e}")))?
        .to_bytes())
}

fn parse_json(bytes: &[u8]) -> Result<Value, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ProviderError::bad_request(format!(
            "We could not parse the JSON body of your request. ({e})"
        ))
    })
}

fn full(bytes: Bytes) -> Body {
    BoxBody::new(Full::new(bytes).map_err(|never| match never {}))
}

fn body_len(resp: &Response<Body>) -> u64 {
    http_body::Body::size_hint(resp.body()).exact().unwrap_or(0)
}

fn error_response(api: Api, err: &ProviderError, request_id: &str) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(err.body(api, request_id).to_string())));
    *resp.status_mut() =
        StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in &err.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(k, v);
        }
    }
    if api == Api::Bedrock && !h.contains_key("x-amzn-errortype") {
        let kind = format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            crate::bedrock::exception(err)
        );
        if let Ok(v) = HeaderValue::from_str(&kind) {
            h.insert("x-amzn-errortype", v);
        }
    }
    if let Ok(rid) = HeaderValue::from_str(request_id) {
        match api {
            Api::Anthropic => h.insert("request-id", rid),
            Api::Openai | Api::Azure | Api::Responses => h.insert("x-request-id", rid),
            Api::Gemini => h.insert("x-goog-request-id", rid),
            Api::Bedrock => h.insert("x-amzn-requestid", rid),
        };
    }
    resp
}

/// Decodes `%XX` escapes (model names in admin paths and queries).
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_and_plain_text() {
        assert_eq!(percent_decode("sim%2Dgpt"), "sim-gpt");
        assert_eq!(percent_decode("%2A"), "*");
        assert_eq!(percent_decode("plain"), "plain");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%2"), "end%2");
    }
}
