//! The operator's HTTP listeners — admin (`/healthz`, `/readyz`, `/metrics`) and the webhook —
//! with every cost a client controls bounded.
//!
//! Both face clients the operator does not trust to behave (anything that can reach the pod),
//! and both must stay up for the ones that matter: the kubelet's probes, Prometheus, the API
//! server's admission calls. So:
//!
//! | bound                     | what it stops                                                        |
//! | ------------------------- | -------------------------------------------------------------------- |
//! | `max_connections`         | a flood of connections eating memory and tasks; more wait in the listen backlog |
//! | `handshake`               | a TLS client that connects and never finishes its handshake          |
//! | `header_read`             | a client that never finishes its request head (or idles between requests) |
//! | `max_header_bytes`        | an endless request head                                              |
//! | `request`                 | a request whose body trickles in for ever: answered 408              |
//!
//! HTTP/1.1 only: its header-read timeout has no HTTP/2 equivalent in hyper, and neither the
//! kubelet, Prometheus nor the API server's webhook client needs HTTP/2.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// How much a client may cost a listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more wait in the listen backlog until one ends.
    pub max_connections: usize,
    /// Time for a client to finish its TLS handshake.
    pub handshake: Duration,
    /// Time for a client to send a request head, from when the server starts waiting for it.
    pub header_read: Duration,
    /// The largest request head, in bytes (at least 8 KiB: hyper's smallest buffer).
    pub max_header_bytes: usize,
    /// Time to read a request's body and answer it.
    pub request: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            handshake: Duration::from_secs(10),
            header_read: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            request: Duration::from_secs(30),
        }
    }
}

/// A response of plain text.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

/// Serves one connection's requests with `handle`, within `limits`.
async fn connection<I, F, Fut>(io: I, limits: Limits, handle: F)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let answer = handle(req);
        async move {
            Ok::<_, Infallible>(
                tokio::time::timeout(limits.request, answer)
                    .await
                    .unwrap_or_else(|_| {
                        text(
                            StatusCode::REQUEST_TIMEOUT,
                            "the request took too long to arrive\n",
                        )
                    }),
            )
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// Accepts connections until the process stops and serves each with `handle`: over TLS when
/// `tls` is given, within `limits`.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handle: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // At the cap, the next connection waits in the backlog rather than being taken and
        // dropped.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, say: wait a moment instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, handle) = (tls.clone(), handle.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                None => connection(stream, limits, handle).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, limits, handle).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake not finished in time; closed"),
                    }
                }
            }
        });
    }
}
