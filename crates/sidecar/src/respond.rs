//! What the client receives besides a provider's answer: errors in the client's own API format
//! (with the status its SDK maps to a typed exception), and the `x-plumb-*` headers that say who
//! answered and how.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use plumb_policy::FailureClass;
use serde_json::json;

use crate::payload::Api;

/// The error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body of every response the proxy sends.
pub type Body = BoxBody<Bytes, BoxError>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    BoxBody::new(Full::new(bytes.into()).map_err(|never| match never {}))
}

/// The status a client receives when its request ends with a failure of `class`, chosen so the
/// official SDKs raise the matching typed error. `passthrough` is whether the failing key was
/// the caller's own (then a 401 is the caller's to fix).
pub fn client_status(class: FailureClass, api: Api, passthrough: bool) -> StatusCode {
    match class {
        FailureClass::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        FailureClass::Overloaded => match api {
            // Anthropic's SDK raises OverloadedError for 529.
            Api::Anthropic => StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        },
        FailureClass::Timeout => StatusCode::GATEWAY_TIMEOUT,
        FailureClass::Auth if passthrough => StatusCode::UNAUTHORIZED,
        FailureClass::InvalidModel => StatusCode::NOT_FOUND,
        FailureClass::ContextLength | FailureClass::ContentFilter | FailureClass::BadRequest => {
            StatusCode::BAD_REQUEST
        }
        FailureClass::Auth
        | FailureClass::Connect
        | FailureClass::ConnectionLost
        | FailureClass::ServerError
        | FailureClass::MalformedResponse
        | FailureClass::SchemaViolation
        | FailureClass::OutOfBounds
        | FailureClass::StreamInterrupted
        | FailureClass::ModelSubstituted => StatusCode::BAD_GATEWAY,
    }
}

/// Anthropic's error `type` for a status.
fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error response in the client's format. `code` is the failure class (or another short
/// machine-readable reason); `message` says what happened, which targets were tried, and the
/// provider's own words.
pub fn error(api: Api, status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = match api.errors() {
        Api::Openai | Api::Responses | Api::Gemini | Api::Bedrock => {
            json!({"error": {"message": message, "type": "plumb_error", "param": null, "code": code}})
        }
        Api::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_type(status), "message": message}})
        }
    };
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Plumb already retried and failed over as the route says: an SDK retrying on top would
    // only multiply the load on a failing provider.
    h.insert("x-should-retry", HeaderValue::from_static("false"));
    resp
}

/// Copies from a provider's response head what the client reads of it: the content type, the
/// cache policy, and the `ids` headers (request ids and the like) that are present.
pub fn pass_headers(from: &HeaderMap, to: &mut HeaderMap, ids: &[HeaderName]) {
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = from.get(&name) {
            to.insert(name, v.clone());
        }
    }
    for name in ids {
        if let Some(v) = from.get(name) {
            to.insert(name, v.clone());
        }
    }
}

/// What the `x-plumb-*` headers report.
#[derive(Clone, Debug, Default)]
pub struct Account<'a> {
    /// The route, `namespace/name`.
    pub route: Option<&'a str>,
    /// The target that answered.
    pub served_by: Option<&'a str>,
    /// Attempts made, the answering one included.
    pub attempts: u32,
    /// Classes of the failed attempts, in order.
    pub failures: &'a [FailureClass],
    /// `x-plumb-equivalence`.
    pub equivalence: Option<&'a str>,
}

// The `x-plumb-*` names, as constants: a `&str` name is parsed and checked again at every insert.
const ROUTE: HeaderName = HeaderName::from_static("x-plumb-route");
/// `x-plumb-served-by`: the target that answered.
pub const SERVED_BY: HeaderName = HeaderName::from_static("x-plumb-served-by");
const ATTEMPTS: HeaderName = HeaderName::from_static("x-plumb-attempts");
const FAILURE_CLASSES: HeaderName = HeaderName::from_static("x-plumb-failure-classes");
const EQUIVALENCE: HeaderName = HeaderName::from_static("x-plumb-equivalence");

/// Request-id headers providers send, passed on to the client: OpenAI's `x-request-id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Anthropic's `request-id`.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");

/// Adds the `x-plumb-*` headers.
pub fn account(h: &mut HeaderMap, a: &Account<'_>) {
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
    if let Some(r) = a.route {
        h.insert(ROUTE, value(r));
    }
    if let Some(t) = a.served_by {
        h.insert(SERVED_BY, value(t));
    }
    h.insert(ATTEMPTS, HeaderValue::from(a.attempts));
    let classes: Vec<&str> = a.failures.iter().map(|c| c.as_str()).collect();
    h.insert(FAILURE_CLASSES, value(&classes.join(",")));
    if let Some(e) = a.equivalence {
        h.insert(EQUIVALENCE, value(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_maps_to_a_status_the_sdks_type() {
        for class in FailureClass::ALL {
            let s = client_status(class, Api::Openai, false);
            assert!(s.is_client_error() || s.is_server_error(), "{class}");
        }
        assert_eq!(
            client_status(FailureClass::Overloaded, Api::Anthropic, false).as_u16(),
            529
        );
        assert_eq!(
            client_status(FailureClass::Auth, Api::Openai, true),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            client_status(FailureClass::Auth, Api::Openai, false),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn errors_come_in_the_clients_shape() {
        let r = error(
            Api::Anthropic,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "slow",
        );
        assert_eq!(r.headers()["x-should-retry"], "false");
        let r = error(
            Api::Openai,
            StatusCode::NOT_FOUND,
            "model_not_found",
            "no route",
        );
        assert_eq!(r.status(), 404);
    }

    #[test]
    fn account_headers_list_the_failures_in_order() {
        let mut h = HeaderMap::new();
        account(
            &mut h,
            &Account {
                route: Some("default/chat"),
                served_by: Some("b"),
                attempts: 3,
                failures: &[FailureClass::RateLimited, FailureClass::Overloaded],
                equivalence: Some("not-required"),
            },
        );
        assert_eq!(h["x-plumb-failure-classes"], "rate_limited,overloaded");
        assert_eq!(h["x-plumb-attempts"], "3");
        assert_eq!(h["x-plumb-served-by"], "b");
    }
}
