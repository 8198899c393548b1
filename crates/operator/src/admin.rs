//! The admin listener: `/healthz`, `/readyz` (the controller and the policy server run),
//! `/metrics` (Prometheus or OpenMetrics by `Accept`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use plumb_telemetry::operator::OperatorMetrics;
use tokio::net::TcpListener;

use crate::listener::{self, Limits};

/// Serves the admin endpoints until the process stops, within `limits` (see [`listener`]).
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<OperatorMetrics>,
    ready: Arc<AtomicBool>,
    limits: Limits,
) {
    listener::serve(listener, None, limits, move |req: Request<Incoming>| {
        let resp = handle(&req, &metrics, &ready);
        async move { resp }
    })
    .await;
}

fn handle(
    req: &Request<Incoming>,
    metrics: &OperatorMetrics,
    ready: &AtomicBool,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static(content_type),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => reply(StatusCode::OK, "ok\n".into(), "text/plain"),
        (&Method::GET, "/readyz") if ready.load(Ordering::Acquire) => {
            reply(StatusCode::OK, "ready\n".into(), "text/plain")
        }
        (&Method::GET, "/readyz") => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting\n".into(),
            "text/plain",
        ),
        (&Method::GET, "/metrics") => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let (body, content_type) = metrics.encode_for(accept);
            reply(StatusCode::OK, body, content_type)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz or /metrics\n".into(),
            "text/plain",
        ),
    }
}
