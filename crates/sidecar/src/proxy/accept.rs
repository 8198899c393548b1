//! Accept: which API and operation a client request is for, a body within bounds, and the
//! model it names. Everything refused here gets an error in the client's format.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, Request as HttpRequest, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::json;

use super::Proxy;
use crate::keys::Secret;
use crate::memory::{Busy, Held, Memory};
use crate::payload::{Api, ClientRequest, InvalidRequest, Operation};
use crate::respond::{self, Body};
use crate::table::Policy;

/// A request accepted for routing.
pub(super) struct Accepted {
    /// The client's API.
    pub(super) api: Api,
    /// The operation.
    pub(super) op: Operation,
    /// Its head.
    pub(super) parts: http::request::Parts,
    /// Its body, parsed.
    pub(super) request: ClientRequest,
    /// What its body holds of the body-memory budget, for as long as the request lasts.
    pub(super) held: Held,
}

/// Accepts a request under the policy in force, or answers it at once.
pub(super) async fn accept<B>(
    proxy: &Proxy,
    req: HttpRequest<B>,
) -> Result<(Arc<Policy>, Accepted), Response<Body>>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Accept: which API, which operation, a body within bounds that names a model.
    let api_hint =
        if req.headers().contains_key("anthropic-version") || req.uri().path() == "/v1/messages" {
            Api::Anthropic
        } else {
            Api::Openai
        };
    // A response an OpenAI account stored: no model to route by.
    if let Some(rest) = req.uri().path().strip_prefix("/v1/responses/")
        && !rest.is_empty()
        && (matches!(*req.method(), Method::GET | Method::DELETE)
            || (req.method() == Method::POST && rest.ends_with("/cancel")))
    {
        let rest = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_owned(),
        };
        return Err(super::stored::serve(proxy, req.method().clone(), &rest, req.headers()).await);
    }
    let (api, op) = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => (Api::Openai, Operation::Chat),
        (&Method::POST, "/v1/responses") => (Api::Responses, Operation::Chat),
        (&Method::POST, "/v1/embeddings") => (Api::Openai, Operation::Embeddings),
        (&Method::POST, "/v1/messages") => (Api::Anthropic, Operation::Chat),
        (&Method::GET, "/v1/models") => return Err(models(proxy, api_hint)),
        (m, p) => {
            return Err(respond::error(
                api_hint,
                StatusCode::NOT_FOUND,
                "unknown_url",
                &format!(
                    "plumb serves POST /v1/chat/completions, POST /v1/responses (and GET, DELETE, POST …/cancel of /v1/responses/{{id}}), POST /v1/embeddings, GET /v1/models and POST /v1/messages; not {m} {p}"
                ),
            ));
        }
    };
    let Some(policy) = proxy.table.current() else {
        return Err(respond::error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "plumb has no routing policy yet: the sidecar is waiting for its routes file or control plane",
        ));
    };
    let (parts, body) = req.into_parts();
    let mut held = Held::default();
    let limits = &proxy.limits;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    // Room in the body-memory budget for the whole body, taken at once before reading: bodies
    // that each held part of the budget while waiting for more would wait for each other.
    let reserved = match declared {
        Some(n) if n > limits.max_request_bytes => Err(RequestBodyError::TooLarge),
        Some(n) => limits
            .memory
            .grow(&mut held, n)
            .await
            .map_err(RequestBodyError::Busy),
        None => Ok(()),
    };
    let read = match reserved {
        Ok(()) => tokio::time::timeout(
            BODY_TIMEOUT,
            read_request(body, limits.max_request_bytes, &limits.memory, &mut held),
        )
        .await
        .unwrap_or(Err(RequestBodyError::Late)),
        Err(e) => Err(e),
    };
    let bytes = match read {
        Ok(b) => b,
        Err(RequestBodyError::Busy(busy)) => {
            let mut resp = respond::error(
                api,
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                &busy.to_string(),
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            return Err(resp);
        }
        Err(RequestBodyError::Late) => {
            return Err(respond::error(
                api,
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                &format!(
                    "the request body did not arrive within {}",
                    humantime::format_duration(BODY_TIMEOUT)
                ),
            ));
        }
        Err(RequestBodyError::TooLarge) => {
            return Err(respond::error(
                api,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &format!(
                    "the request body is larger than {} bytes (the sidecar's --max-request-bytes)",
                    limits.max_request_bytes
                ),
            ));
        }
        Err(RequestBodyError::Unreadable) => {
            return Err(respond::error(
                api,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            ));
        }
    };
    let request = match ClientRequest::read(api, op, bytes) {
        Ok(r) => r,
        Err(e @ (InvalidRequest::Json(_) | InvalidRequest::NoModel)) => {
            return Err(respond::error(
                api,
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &e.to_string(),
            ));
        }
    };
    Ok((
        policy,
        Accepted {
            api,
            op,
            parts,
            request,
            held,
        },
    ))
}

/// `GET /v1/models`: the model names the routes serve, in the client's format.
pub(super) fn models(proxy: &Proxy, api: Api) -> Response<Body> {
    let Some(policy) = proxy.table.current() else {
        return respond::error(
            api,
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "plumb has no routing policy yet",
        );
    };
    let names = policy.routes.models();
    let body = match api.errors() {
        Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => {
            json!({"object": "list", "data": names.iter().map(|n| json!({
            "id": n, "object": "model", "created": 0, "owned_by": "plumb"})).collect::<Vec<_>>()})
        }
        Api::Anthropic => json!({"data": names.iter().map(|n| json!({
            "type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"})).collect::<Vec<_>>(),
            "has_more": false, "first_id": names.first(), "last_id": names.last()}),
    };
    let mut resp = Response::new(respond::full(body.to_string()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The longest a client may take to send its request body (on loopback a large body takes
/// milliseconds; a slow one only holds a connection and a buffer).
pub(super) const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a client's body was not read.
enum RequestBodyError {
    Late,
    Busy(Busy),
    TooLarge,
    Unreadable,
}

/// Reads a client's body, at most `max` bytes. A body of unknown length that grows past what
/// is free takes room for the largest body at once (never piecemeal).
async fn read_request<B>(
    mut body: B,
    max: usize,
    memory: &Memory,
    held: &mut Held,
) -> Result<bytes::Bytes, RequestBodyError>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Sized once from the declared length (a client's own word, so only up to the limit).
    let declared = usize::try_from(body.size_hint().lower()).unwrap_or(usize::MAX);
    let mut buf = bytes::BytesMut::with_capacity(declared.min(max));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!(error = %e, "a client's request body could not be read");
            RequestBodyError::Unreadable
        })?;
        if let Ok(data) = frame.into_data() {
            let len = buf.len().saturating_add(data.len());
            if len > max {
                return Err(RequestBodyError::TooLarge);
            }
            if len > held.bytes() {
                memory
                    .grow(held, max)
                    .await
                    .map_err(RequestBodyError::Busy)?;
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// The caller's own API key, for passthrough targets.
pub(super) fn caller_key(api: Api, headers: &HeaderMap) -> Option<Secret> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let key = match api {
        Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => {
            get("authorization").and_then(|v| v.strip_prefix("Bearer "))
        }
        Api::Anthropic => get("x-api-key")
            .or_else(|| get("authorization").and_then(|v| v.strip_prefix("Bearer "))),
    }?;
    (!key.trim().is_empty()).then(|| Secret::new(key.trim()))
}
