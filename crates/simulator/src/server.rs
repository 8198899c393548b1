//! The HTTP(S) server: accepts connections, routes requests to the wire formats, chooses and
//! applies the fault, paces streams, and serves the admin API under `/_sim/`.
//!
//! ```text
//! request → route (openai | azure | anthropic | responses | gemini | admin)
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

/// What a request asks for.
enum Route {
    Chat {
        api: Api,
        deployment: Option<String>,
    },
    /// Gemini names the model and whether to stream in the path.
    Gemini {
        model: String,
        stream: bool,
    },
    /// So does Bedrock.
    Bedrock {
        model: String,
        stream: bool,
    },
    /// STS (`POST /` with a form).
    Sts,
    /// The container-credentials endpoint.
    ContainerCredentials,
    /// Vertex AI names the publisher, the model and whether to stream in the path.
    Vertex(vertex::VertexPath),
    Embeddings {
        api: Api,
        deployment: Option<String>,
    },
    Models {
        api: Api,
    },
    Missing {
        api: Api,
        error: ProviderError,
    },
}

impl Route {
    fn of(method: &Method, path: &str, query: Option<&str>, headers: &HeaderMap) -> Route {
        let anthropic_client =
            headers.contains_key("anthropic-version") || headers.contains_key("x-api-key");
        let api = if anthropic_client {
            Api::Anthropic
        } else {
            Api::Openai
        };
        if path.starts_with("/model/") {
            return match (method, crate::bedrock::route(path)) {
                (&Method::POST, Some((model, stream))) => Route::Bedrock { model, stream },
                _ => Route::Missing {
                    api: Api::Bedrock,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        if path.starts_with("/v1/projects/") {
            return match (method, vertex::route(path)) {
                (&Method::POST, Some(v)) => Route::Vertex(v),
                _ => Route::Missing {
                    api: Api::Gemini,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        match (method, path) {
            (&Method::POST, "/") => return Route::Sts,
            (&Method::GET, crate::aws::CONTAINER_PATH) => return Route::ContainerCredentials,
            _ => {}
        }
        if path.starts_with("/v1beta/") {
            return match (method, gemini::route(path)) {
                (&Method::POST, Some((model, stream))) => Route::Gemini { model, stream },
                _ => Route::Missing {
                    api: Api::Gemini,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        if let Some(rest) = path.strip_prefix("/openai/deployments/") {
            let (deployment, op) = rest.split_once('/').unwrap_or((rest, ""));
            let has_version =
                query.is_some_and(|q| q.split('&').any(|kv| kv.starts_with("api-version=")));
            if !has_version {
                let mut error = ProviderError::not_found_path(path);
                error.message =
                    "Resource not found (the api-version query parameter is required)".to_owned();
                return Route::Missing {
                    api: Api::Azure,
                    error,
                };
            }
            let deployment = Some(deployment.to_owned());
            return match (method, op) {
                (&Method::POST, "chat/completions") => Route::Chat {
                    api: Api::Azure,
                    deployment,
                },
                (&Method::POST, "embeddings") => Route::Embeddings {
                    api: Api::Azure,
                    deployment,
                },
                _ => Route::Missing {
                    api: Api::Azure,
                    error: ProviderError::not_found_path(path),
                },
            };
        }
        match (method, path) {
            (&Method::POST, "/v1/chat/completions") => Route::Chat {
                api: Api::Openai,
                deployment: None,
            },
            (&Method::POST, "/v1/responses") => Route::Chat {
                api: Api::Responses,
                deployment: None,
            },
            (&Method::POST, "/v1/messages") => Route::Chat {
                api: Api::Anthropic,
                deployment: None,
            },
            (&Method::POST, "/v1/embeddings") => Route::Embeddings {
                api: Api::Openai,
                deployment: None,
            },
            (&Method::GET, "/v1/models") => Route::Models { api },
            _ => Route::Missing {
                api,
                error: ProviderError::not_found_path(path),
            },
        }
    }
}

/// The API key a request presents, from the headers its family uses.
fn api_key(api: Api, headers: &HeaderMap) -> Option<String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let bearer = || get("authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    match api {
        Api::Openai | Api::Responses => bearer(),
        Api::Azure => get("api-key").or_else(bearer),
        Api::Anthropic => get("x-api-key").or_else(bearer),
        // Only the header: a key in the URL's `key=` query is not looked for, so a client that
        // puts it there is refused as if it had sent none.
        Api::Gemini => get("x-goog-api-key"),
        // A Bedrock API key; a SigV4 signature is checked apart (see `crate::aws`).
        Api::Bedrock => bearer(),
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

impl Attempting {
    fn request_id(&self) -> String {
        format!("req_sim_{}", self.id)
    }

    /// Decides the fault: errors the model itself causes first (unknown model, wrong key), then
    /// the header, the plan, the model name, and the model's default.
    fn choose_fault(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Option<ModelSpec>, Option<Fault>), ProviderError> {
        let Some(spec) = self.state.config.model(&self.model) else {
            return Ok((None, Some(Fault::ModelNotFound)));
        };
        if let Some(want) = &spec.api_key
            && self.key.as_deref() != Some(want.as_str())
        {
            return Ok((Some(spec), Some(Fault::Unauthorized)));
        }
        let header = match headers.get("x-sim-fault").map(HeaderValue::to_str) {
            Some(Ok(text)) => Some(
                text.parse::<Fault>()
                    .map_err(|e| ProviderError::bad_request(format!("x-sim-fault: {e}")))?,
            ),
            Some(Err(_)) => return Err(ProviderError::bad_request("x-sim-fault: not ASCII")),
            None => None,
        };
        let fault = header
            .or_else(|| self.state.plans.next_fault(&self.model))
            .or_else(|| Fault::from_model_name(&self.model))
            .or_else(|| spec.fault.clone());
        Ok((Some(spec), fault))
    }

    fn latency(&self, headers: &HeaderMap, spec: Option<&ModelSpec>) -> Option<Duration> {
        let latency = headers
            .get("x-sim-latency")
            .and_then(|v| v.to_str().ok())
            .and_then(Latency::parse)
            .or_else(|| spec.and_then(|s| s.latency))?;
        Some(latency.sample(&mut self.state.rng.lock()))
    }

    fn token_gap(headers: &HeaderMap, spec: &ModelSpec) -> Option<Duration> {
        let rate = headers
            .get("x-sim-token-rate")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
            .or(spec.token_rate)?;
        (rate > 0.0 && rate.is_finite()).then(|| Duration::from_secs_f64(1.0 / rate))
    }

    fn error(&self, err: &ProviderError) -> Response<Body> {
        self.error_in(self.api, err)
    }

    /// [`Attempting::error`] in the shape of `shape` (Vertex AI answers a bad token in
    /// Google's, whatever the publisher).
    fn error_in(&self, shape: Api, err: &ProviderError) -> Response<Body> {
        self.state
            .attempts
            .update(self.id, |a| a.status = err.status);
        let mut resp = error_response(shape, err, &self.request_id());
        if self.wrapped {
            let wrapped = json!([err.body(shape, &self.request_id())]).to_string();
            *resp.body_mut() = full(Bytes::from(wrapped));
        }
        let len = body_len(&resp);
        self.state.attempts.finish(self.id, Outcome::Error, len);
        resp
    }

    /// Applies the faults every endpoint shares: error statuses, resets, hangs and a slow head.
    /// `Ok(None)` means go on and answer.
    async fn transport_fault(
        &self,
        fault: Option<&Fault>,
        context: (u32, u32),
    ) -> Result<Option<Response<Body>>, BoxError> {
        let Some(fault) = fault else { return Ok(None) };
        // A forced context-length error still names a prompt longer than the window.
        let (window, asked) = context;
        let context = (
            window,
            if asked > window {
                asked
            } else {
                window + asked.max(1)
            },
        );
        if let Some(err) =
            ProviderError::for_fault(fault, self.api, &self.model, self.echo.as_deref(), context)
        {
            return Ok(Some(self.error(&err)));
        }
        match fault {
            Fault::ConnectionReset => {
                self.reset.store(true, Ordering::Relaxed);
                self.state.attempts.finish(self.id, Outcome::Reset, 0);
                Err("connection reset on purpose".into())
            }
            Fault::Hang => {
                self.state
                    .attempts
                    .update(self.id, |a| a.outcome = Outcome::Hung);
                tokio::time::sleep(self.state.config.hang_limit).await;
                self.reset.store(true, Ordering::Relaxed);
                self.state.attempts.finish(self.id, Outcome::Hung, 0);
                Err("hung on purpose".into())
            }
            Fault::SlowFirstByte { delay } => {
                tokio::time::sleep(*delay).await;
                Ok(None)
            }
            Fault::RateLimited { .. }
            | Fault::Unauthorized
            | Fault::Forbidden
            | Fault::ModelNotFound
            | Fault::ContextLength
            | Fault::ContentFilter
            | Fault::ServerError
            | Fault::Unavailable
            | Fault::Overloaded
            | Fault::SlowFirstToken { .. }
            | Fault::StreamCut { .. }
            | Fault::StreamStall { .. }
            | Fault::StreamError { .. }
            | Fault::MalformedEvent { .. }
            | Fault::MissingDone
            | Fault::BrokenJson
            | Fault::EmptyContent
            | Fault::SchemaViolation
            | Fault::OutOfBounds
            | Fault::ModelSubstituted { .. }
            | Fault::KeyEcho { .. } => Ok(None),
        }
    }

    async fn chat(self, headers: &HeaderMap, req: ChatRequest) -> Result<Response<Body>, BoxError> {
        let (spec, mut fault) = match self.choose_fault(headers) {
            Ok(choice) => choice,
            Err(e) => return Ok(self.error(&e)),
        };
        let asked = req.prompt_tokens() + req.max_tokens.unwrap_or(0);
        let window = spec.as_ref().map_or(0, |s| s.context_window);
        if fault.is_none() && spec.is_some() && asked > window {
            fault = Some(Fault::ContextLength);
        }
        self.state
            .attempts
            .update(self.id, |a| a.fault = fault.as_ref().map(Fault::to_string));
        if let Some(d) = self.latency(headers, spec.as_ref()) {
            tokio::time::sleep(d).await;
        }
        if let Some(resp) = self
            .transport_fault(fault.as_ref(), (window, asked))
            .await?
        {
            return Ok(resp);
        }
        let Some(spec) = spec else {
            // Unreachable in practice: an unknown model always has the model_not_found fault.
            return Ok(self.error(&ProviderError::bad_request("unknown model")));
        };
        if spec.reject_prefill && req.prefill.is_some() {
            return Ok(self.error(&ProviderError::bad_request(
                "This model does not support assistant message prefill. The conversation must end with a user message.",
            )));
        }
        let mut spec = spec;
        if let Some(t) = headers
            .get("x-sim-thinking")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::catalog::Thinking::parse)
        {
            spec.thinking = Some(t);
        }
        // Nor is a Bedrock guardrail's: a 200 whose stopReason is guardrail_intervened.
        if self.api == Api::Bedrock && fault == Some(Fault::ContentFilter) {
            if !req.stream {
                return Ok(self.whole(Bytes::from(crate::bedrock::blocked().to_string())));
            }
            return Ok(self.stream_response(
                StreamPlan {
                    fault: None,
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                },
                crate::bedrock::blocked_stream(),
            ));
        }
        // Gemini's content filter is no error: a 200 whose candidate finished with SAFETY.
        if self.api == Api::Gemini && fault == Some(Fault::ContentFilter) {
            let id = format!("sim_{}", self.id);
            let prompt_tokens = req.prompt_tokens();
            if !req.stream {
                let body = gemini::blocked(&self.model, &id, prompt_tokens);
                return Ok(self.whole(Bytes::from(body.to_string())));
            }
            let events = gemini::blocked_stream(&self.model, &id, prompt_tokens);
            return Ok(self.stream_response(
                StreamPlan {
                    fault: None,
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                },
                events,
            ));
        }
        let judge = self.state.judge.lock().clone();
        let answer = chat::answer(&req, &spec, fault.as_ref(), &judge, self.id);
        let gap = Self::token_gap(headers, &spec);
        let created = plumb_telemetry::clock::unix_secs_now();
        let request_id = self.request_id();
        // As OpenAI answers a previous response this account does not hold.
        if let Some(id) = req
            .previous_response_id
            .as_deref()
            .filter(|id| self.api == Api::Responses && !self.state.stored.has(id))
        {
            let mut e = ProviderError::not_found_path("/v1/responses");
            e.message = format!("Previous response with id '{id}' not found.");
            e.openai_type = "invalid_request_error";
            e.openai_code = Some("previous_response_not_found");
            return Ok(self.error(&e));
        }
        if self.api == Api::Responses && req.store && fault.is_none() {
            let kept = responses::whole(&answer, &format!("sim_{}", self.id), created);
            if req.background && !req.stream {
                // Queued at once; complete when the client polls.
                let mut queued = kept.clone();
                queued["status"] = json!("queued");
                queued["output"] = json!([]);
                queued["usage"] = Value::Null;
                queued["background"] = json!(true);
                self.state.stored.keep(kept);
                return Ok(self.whole(Bytes::from(queued.to_string())));
            }
            self.state.stored.keep(kept);
        }
        if req.stream {
            let events = match self.api {
                Api::Anthropic => anthropic::stream(&answer, &format!("msg_sim_{}", self.id)),
                Api::Responses => responses::stream(&answer, &format!("sim_{}", self.id), created),
                Api::Openai | Api::Azure => openai::stream(
                    &answer,
                    &format!("chatcmpl-sim-{}", self.id),
                    created,
                    req.include_usage,
                ),
                Api::Gemini => gemini::stream(&answer, &format!("sim_{}", self.id)),
                Api::Bedrock => crate::bedrock::stream(&answer),
            };
            // The error event a stream fault sends: the key echoed for key_echo, else overloaded.
            let echoed = match &fault {
                Some(Fault::KeyEcho { how, .. }) => Fault::KeyEcho {
                    how: *how,
                    after: 0,
                },
                _ => Fault::Overloaded,
            };
            let error_event = ProviderError::for_fault(
                &echoed,
                self.api,
                &self.model,
                self.echo.as_deref(),
                (0, 0),
            )
            .map(|e| e.stream_event(self.api, &request_id));
            let plan = StreamPlan {
                fault,
                token_gap: gap,
                thinking_gap: spec.thinking.map(|t| t.every),
                error_event,
                malformed: malformed_event(self.api),
                // An event stream is cut inside a frame, as a dropped connection cuts it.
                mid_frame: self.api == Api::Bedrock,
            };
            return Ok(self.stream_response(plan, events));
        }
        if let Some(t) = spec.thinking {
            tokio::time::sleep(t.every * t.deltas()).await;
        }
        if let Some(gap) = gap {
            tokio::time::sleep(gap * answer.completion_tokens()).await;
        }
        let value = match self.api {
            Api::Anthropic => anthropic::message(&answer, &format!("msg_sim_{}", self.id)),
            Api::Responses => responses::whole(&answer, &format!("sim_{}", self.id), created),
            Api::Openai | Api::Azure => {
                openai::completion(&answer, &format!("chatcmpl-sim-{}", self.id), created)
            }
            Api::Gemini => gemini::whole(&answer, &format!("sim_{}", self.id)),
            Api::Bedrock => crate::bedrock::whole(&answer),
        };
        let full = Bytes::from(value.to_string());
        let resp = match &fault {
            Some(Fault::BrokenJson | Fault::MalformedEvent { .. }) => {
                let cut = full.len() / 2;
                self.whole(full.slice(..cut))
            }
            Some(f @ (Fault::StreamCut { .. } | Fault::StreamStall { .. })) => {
                // A non-streamed body cut or stalled half-way, its declared length never met.
                let half = full.len() / 2;
                let events = vec![
                    Event {
                        bytes: full.slice(..half),
                        kind: EventKind::Preamble,
                    },
                    Event {
                        bytes: full.slice(half..),
                        kind: EventKind::Tail,
                    },
                ];
                let fault = if let Fault::StreamStall { stall, .. } = f {
                    Fault::StreamStall {
                        after: 0,
                        stall: *stall,
                    }
                } else {
                    Fault::StreamCut { after: 0 }
                };
                let plan = StreamPlan {
                    fault: Some(fault),
                    token_gap: None,
                    thinking_gap: None,
                    error_event: None,
                    malformed: Bytes::new(),
                    mid_frame: false,
                };
                let mut resp = Response::new(plan.spawn(self.state.clone(), self.id, events));
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(full.len()));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.id_headers(resp.headers_mut());
                self.state.attempts.update(self.id, |a| a.status = 200);
                return Ok(resp);
            }
            _ => self.whole(full),
        };
        Ok(resp)
    }

    /// A 200 stream of `events`, paced and broken as `plan` says.
    fn stream_response(&self, plan: StreamPlan, events: Vec<Event>) -> Response<Body> {
        let body = plan.spawn(self.state.clone(), self.id, events);
        self.state.attempts.update(self.id, |a| a.status = 200);
        let mut resp = Response::new(body);
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(if self.api == Api::Bedrock {
                crate::bedrock::EVENT_STREAM
            } else {
                "text/event-stream; charset=utf-8"
            }),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        self.id_headers(h);
        resp
    }

    /// A complete 200 JSON answer.
    fn whole(&self, body: Bytes) -> Response<Body> {
        let len = body.len() as u64;
        let mut resp = Response::new(full(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.id_headers(resp.headers_mut());
        self.state.attempts.update(self.id, |a| a.status = 200);
        self.state.attempts.finish(self.id, Outcome::Completed, len);
        resp
    }

    fn id_headers(&self, h: &mut HeaderMap) {
        let rid = HeaderValue::from_str(&self.request_id())
            .unwrap_or(HeaderValue::from_static("req_sim"));
        match self.api {
            Api::Anthropic => h.insert("request-id", rid),
            Api::Openai | Api::Azure | Api::Responses => h.insert("x-request-id", rid),
            Api::Gemini => h.insert("x-goog-request-id", rid),
            Api::Bedrock => h.insert("x-amzn-requestid", rid),
        };
        h.insert("x-sim-attempt", HeaderValue::from(self.id));
    }

    async fn embeddings(
        self,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Response<Body>, BoxError> {
        let inputs = match openai::parse_embedding_input(body) {
            Ok(i) => i,
            Err(msg) => return Ok(self.error(&ProviderError::bad_request(msg))),
        };
        let (spec, fault) = match self.choose_fault(headers) {
            Ok(choice) => choice,
            Err(e) => return Ok(self.error(&e)),
        };
        self.state
            .attempts
            .update(self.id, |a| a.fault = fault.as_ref().map(Fault::to_string));
        if let Some(d) = self.latency(headers, spec.as_ref()) {
            tokio::time::sleep(d).await;
        }
        let window = spec.as_ref().map_or(0, |s| s.context_window);
        if let Some(resp) = self.transport_fault(fault.as_ref(), (window, 0)).await? {
            return Ok(resp);
        }
        let full = Bytes::from(openai::embeddings(body, &self.model, &inputs).to_string());
        Ok(match fault {
            Some(Fault::BrokenJson) => {
                let cut = full.len() / 2;
                self.whole(full.slice(..cut))
            }
            _ => self.whole(full),
        })
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

/// How a stream is paced and broken.
struct StreamPlan {
    fault: Option<Fault>,
    token_gap: Option<Duration>,
    /// The time before each reasoning delta of a reasoning model.
    thinking_gap: Option<Duration>,
    error_event: Option<Event>,
    malformed: Bytes,
    /// A cut sends the first half of the next event first (an event stream cut inside a
    /// frame).
    mid_frame: bool,
}

impl StreamPlan {
    /// Spawns the task that sends `events` as the body, applying the stream faults, and
    /// records how the attempt ended.
    fn spawn(self, state: Arc<State>, id: u64, events: Vec<Event>) -> Body {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(16);
        tokio::spawn(async move {
            let mut sent = 0u64;
            let outcome = self.run(events, &tx, &mut sent).await;
            state.attempts.finish(id, outcome, sent);
        });
        BoxBody::new(StreamBody::new(ReceiverStream::new(rx)))
    }

    async fn run(
        self,
        events: Vec<Event>,
        tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
        sent: &mut u64,
    ) -> Outcome {
        let mut tokens = 0u32;
        let mut first_token_delay = match &self.fault {
            Some(Fault::SlowFirstToken { delay }) => Some(*delay),
            _ => None,
        };
        for (i, ev) in events.into_iter().enumerate() {
            let past_preamble = ev.kind != EventKind::Preamble;
            // A fault placed "after N tokens" strikes before token N, or before the first
            // event after the last token when the answer is shorter.
            let reached = |after: u32| {
                tokens >= after || !matches!(ev.kind, EventKind::Token | EventKind::Thinking)
            };
            if past_preamble {
                if let Some(d) = first_token_delay.take() {
                    tokio::time::sleep(d).await;
                }
                match &self.fault {
                    Some(Fault::StreamCut { after }) if reached(*after) => {
                        if self.mid_frame {
                            let half = ev.bytes.slice(..ev.bytes.len() / 2);
                            *sent += half.len() as u64;
                            let _ = tx.send(Ok(Frame::data(half))).await;
                        }
                        drained(tx).await;
                        let _ = tx.send(Err("stream cut on purpose".into())).await;
                        return Outcome::Cut;
                    }
                    Some(Fault::StreamStall { after, stall }) if reached(*after) => {
                        tokio::time::sleep(*stall).await;
                        let _ = tx.send(Err("stream stalled on purpose".into())).await;
                        return Outcome::Stalled;
                    }
                    Some(Fault::StreamError { after } | Fault::KeyEcho { after, .. })
                        if reached(*after) =>
                    {
                        if let Some(err) = &self.error_event {
                            *sent += err.bytes.len() as u64;
                            let _ = tx.send(Ok(Frame::data(err.bytes.clone()))).await;
                        }
                        return Outcome::StreamError;
                    }
                    _ => {}
                }
            }
            if ev.kind == EventKind::Token
                && tokens > 0
                && let Some(gap) = self.token_gap
            {
                tokio::time::sleep(gap).await;
            }
            if ev.kind == EventKind::Thinking
                && let Some(gap) = self.thinking_gap
            {
                tokio::time::sleep(gap).await;
            }
            let bytes = match &self.fault {
                Some(Fault::MalformedEvent { at }) if i == *at as usize => self.malformed.clone(),
                Some(Fault::BrokenJson) if i == 1 => self.malformed.clone(),
                Some(Fault::MissingDone) if ev.kind == EventKind::Terminator => continue,
                _ => ev.bytes,
            };
            *sent += bytes.len() as u64;
            if tx.send(Ok(Frame::data(bytes))).await.is_err() {
                return Outcome::ClientGone;
            }
            if ev.kind == EventKind::Token {
                tokens += 1;
            }
        }
        Outcome::Completed
    }
}

/// Waits until the connection has taken every queued frame and had a moment to write it, so a
/// cut happens after the bytes before it reached the client (hyper drops buffered bytes when
/// a body fails).
async fn drained(tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>) {
    while tx.capacity() < tx.max_capacity() && !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// An event that looks like the provider's but is not JSON.
fn malformed_event(api: Api) -> Bytes {
    match api {
        Api::Anthropic => Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_del\n\n",
        ),
        Api::Gemini => Bytes::from_static(gemini::MALFORMED_EVENT),
        Api::Bedrock => crate::bedrock::malformed_event(),
        Api::Openai | Api::Azure | Api::Responses => Bytes::from_static(
            b"data: {\"id\": \"chatcmpl-sim\", \"object\": \"chat.completion.chunk\", \"choices\": [{\"delta\": {\"content\": \"lo\n\n",
        ),
    }
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

/// Google's token endpoint (`POST /token`) and metadata server (`GET` of its token path).
async fn google_auth(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Body>, BoxError> {
    let (status, body) = if req.method() == Method::POST {
        let body = Limited::new(req.into_body(), 64 * 1024)
            .collect()
            .await?
            .to_bytes();
        state.google.exchange(&String::from_utf8_lossy(&body))
    } else {
        state.google.metadata(
            req.headers()
                .get("metadata-flavor")
                .and_then(|v| v.to_str().ok()),
        )
    };
    Ok(admin_json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &body,
    ))
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

fn admin_json(status: StatusCode, value: &Value) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn admin_error(status: StatusCode, message: impl std::fmt::Display) -> Response<Body> {
    admin_json(status, &json!({"error": message.to_string()}))
}

/// The admin API:
///
/// | method and path | effect |
/// | --- | --- |
/// | `GET /_sim/health` | `{"ok": true}` |
/// | `GET /_sim/attempts[?model=M]` | the attempt log |
/// | `DELETE /_sim/attempts` | clear the log |
/// | `GET /_sim/plans` | the plans in force |
/// | `PUT /_sim/plans/{model}` | set a plan (`{"fault": "...", "first": N}` / `"for": "5s"` / `"share": 0.3`) |
/// | `DELETE /_sim/plans/{model}` | remove a plan |
/// | `PUT /_sim/judge` | set the judge's rule |
/// | `GET`, `PUT /_sim/google` | Google's token counts; token lifetime and failures ([`crate::google_auth`]) |
/// | `POST /_sim/reset` | clear attempts and plans, default judge, issued tokens |
async fn admin(state: &Arc<State>, rest: &str, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_owned();
    let body = match Limited::new(req.into_body(), 1024 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return admin_error(StatusCode::BAD_REQUEST, e),
    };
    let parse = |b: &Bytes| serde_json::from_slice::<Value>(b);
    match (method, rest) {
        (Method::GET, "health") => admin_json(StatusCode::OK, &json!({"ok": true})),
        (Method::GET, "attempts") => {
            let model = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("model="))
                .map(percent_decode);
            let attempts = state.attempts.snapshot(model.as_deref());
            admin_json(StatusCode::OK, &json!({"attempts": attempts}))
        }
        (Method::DELETE, "attempts") => {
            state.attempts.clear();
            admin_json(StatusCode::OK, &json!({"ok": true}))
        }
        (Method::GET, "plans") => admin_json(StatusCode::OK, &json!({"plans": state.plans.list()})),
        (Method::PUT | Method::POST, p) if p.starts_with("plans/") => {
            let model = percent_decode(&p["plans/".len()..]);
            let spec = match parse(&body).and_then(serde_json::from_value::<PlanSpec>) {
                Ok(s) => s,
                Err(e) => {
                    return admin_error(StatusCode::BAD_REQUEST, format!("invalid plan: {e}"));
                }
            };
            match state.plans.set(&model, spec) {
                Ok(()) => admin_json(StatusCode::OK, &json!({"ok": true, "model": model})),
                Err(e) => admin_error(StatusCode::BAD_REQUEST, e),
            }
        }
        (Method::DELETE, p) if p.starts_with("plans/") => {
            let removed = state.plans.remove(&percent_decode(&p["plans/".len()..]));
            admin_json(StatusCode::OK, &json!({"ok": true, "removed": removed}))
        }
        (Method::PUT | Method::POST, "judge") => {
            match parse(&body).and_then(serde_json::from_value::<JudgeRule>) {
                Ok(rule) => {
                    *state.judge.lock() = rule;
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("invalid judge rule: {e}")),
            }
        }
        (Method::PUT | Method::POST, "aws") => {
            match parse(&body).map(|v| v.get("expiry_secs").and_then(Value::as_u64)) {
                Ok(Some(secs)) => {
                    state.aws.set_expiry(Duration::from_secs(secs));
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Ok(None) | Err(_) => {
                    admin_error(StatusCode::BAD_REQUEST, "expected {\"expiry_secs\": N}")
                }
            }
        }
        (Method::GET, "google") => admin_json(StatusCode::OK, &state.google.counts()),
        (Method::PUT | Method::POST, "google") => {
            match parse(&body)
                .and_then(serde_json::from_value::<crate::google_auth::GoogleSettings>)
            {
                Ok(s) => {
                    state.google.set(&s);
                    admin_json(StatusCode::OK, &json!({"ok": true}))
                }
                Err(e) => admin_error(StatusCode::BAD_REQUEST, format!("invalid settings: {e}")),
            }
        }
        (Method::POST, "reset") => {
            state.reset();
            admin_json(StatusCode::OK, &json!({"ok": true}))
        }
        (m, p) => admin_error(
            StatusCode::NOT_FOUND,
            format!("no admin endpoint {m} /_sim/{p}"),
        ),
    }
}

/// The endpoint name an AWS identity route logs.
fn route_name(route: &Route) -> &'static str {
    match route {
        Route::Sts => "sts",
        Route::ContainerCredentials => "container-credentials",
        Route::Chat { .. }
        | Route::Gemini { .. }
        | Route::Bedrock { .. }
        | Route::Vertex(_)
        | Route::Embeddings { .. }
        | Route::Models { .. }
        | Route::Missing { .. } => "chat",
    }
}

/// STS and the container-credentials endpoint: each call is logged as an attempt (api
/// `bedrock`, endpoint `sts` or `container-credentials`, the presented token as its key only
/// when it was the right one, so a test can count refreshes).
async fn aws_identity(
    state: &Arc<State>,
    endpoint: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let endpoint: &'static str = if endpoint == "sts" {
        "sts"
    } else {
        "container-credentials"
    };
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = read_bytes(req.into_body()).await.unwrap_or_default();
    let id = state.attempts.begin(Arrival {
        api: Api::Bedrock,
        endpoint,
        model: None,
        key: None,
        stream: false,
        traceparent: None,
        organization: None,
        project: None,
        path: None,
    });
    let (status, content_type, text) = if endpoint == "sts" {
        let (status, xml) = state.aws.assume_role(&body);
        (status, "text/xml", xml)
    } else {
        let (status, v) = state.aws.container(authorization.as_deref());
        (status, "application/json", v.to_string())
    };
    let mut resp = Response::new(full(Bytes::from(text)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    state.attempts.update(id, |a| a.status = status);
    let outcome = if status == 200 {
        Outcome::Completed
    } else {
        Outcome::Error
    };
    state.attempts.finish(id, outcome, body_len(&resp));
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
