//! Listeners: the proxy (HTTP/1.1 and h2c, on loopback) and the admin endpoints (`/healthz`,
//! `/readyz`, `/metrics`), with a graceful drain on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::proxy::Proxy;
use crate::respond::{self, Body};

/// Largest request head accepted (request line and headers).
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves the proxy and admin listeners until `shutdown` resolves, then stops accepting and
/// waits up to `drain` for in-flight requests to finish.
pub async fn serve(
    proxy: Arc<Proxy>,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let admin_proxy = proxy.clone();
    let admin = tokio::spawn(accept_admin(admin_listener, admin_proxy));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = proxy_listener.accept() => {
                let (tcp, _) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let proxy = proxy.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req).await) }
                });
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder.http1().max_buf_size(MAX_HEAD_BYTES).timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(Duration::from_secs(30));
                builder.http2().max_header_list_size(MAX_HEAD_BYTES as u32);
                let conn = builder.serve_connection(TokioIo::new(tcp), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "client connection ended with an error");
                    }
                });
            }
        }
    }
    drop(proxy_listener);
    tracing::info!(grace = %humantime::format_duration(drain), "draining in-flight requests");
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed with requests still in flight");
    }
    admin.abort();
}

async fn accept_admin(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(admin(&proxy, &req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// `/healthz`: the process serves. `/readyz`: it has a policy. `/metrics`: Prometheus text.
/// `/equivalence`: what shadow sampling learned, per route and (primary, candidate) pair, as
/// JSON.
fn admin(proxy: &Proxy, req: &Request<Incoming>) -> Response<Body> {
    let text = |status: StatusCode, body: String, content_type: &'static str| {
        let mut r = Response::new(respond::full(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        r
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        (&Method::GET, "/readyz") => match proxy.table.current() {
            Some(p) => text(
                StatusCode::OK,
                format!("ready: {}\n", p.version),
                "text/plain",
            ),
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no routing policy yet\n".into(),
                "text/plain",
            ),
        },
        (&Method::GET, "/metrics") => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let (body, content_type) = proxy.metrics.encode_for(accept);
            text(StatusCode::OK, body, content_type)
        }
        (&Method::GET, "/equivalence") => text(
            StatusCode::OK,
            serde_json::to_string_pretty(&proxy.table.certifications.records()).unwrap_or_default(),
            "application/json",
        ),
        (&Method::GET, "/fleet") => text(
            StatusCode::OK,
            serde_json::to_string_pretty(&proxy.table.fleet.describe()).unwrap_or_default(),
            "application/json",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, /equivalence or /fleet\n".into(),
            "text/plain",
        ),
    }
}
