//! Listeners: the proxy (HTTP/1.1 and h2c, on loopback) and the admin endpoints (`/healthz`,
//! `/readyz`, `/metrics`), with a graceful drain on shutdown.
//!
//! Both are bounded ([`Limits`]): a connection that does not finish its request head in time
//! is closed, a head larger than the bound is refused, and connections beyond the cap are
//! closed at accept — so clients that open connections and send nothing, or send endless
//! headers, cannot hold the sidecar's memory or its health checks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::AbortHandle;

use std::net::{IpAddr, SocketAddr};

use parking_lot::Mutex;

use plumb_telemetry::throttle::Throttle;

use crate::proxy::Proxy;
use crate::respond::{self, Body};

/// What one listener lets its clients make it hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's head, from the connection's first byte (or from the end of
    /// the previous response on a kept-alive connection).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers).
    pub max_head_bytes: usize,
    /// Connections served at once; more are closed as they are accepted.
    pub max_connections: usize,
    /// Connections served at once from one address, so that one client cannot take every slot
    /// (on the admin listener, the kubelet's probes come from the node's address).
    pub max_per_address: usize,
}

impl Limits {
    /// The proxy listener's defaults: the pod's own application is the client.
    pub const PROXY: Limits = Limits {
        header_timeout: Duration::from_secs(30),
        max_head_bytes: 64 * 1024,
        max_connections: 1024,
        // Loopback only: every client is the pod's own application.
        max_per_address: 1024,
    };
    /// The admin listener's defaults: the kubelet and Prometheus, a handful of connections
    /// with small heads.
    pub const ADMIN: Limits = Limits {
        header_timeout: Duration::from_secs(5),
        max_head_bytes: 16 * 1024,
        max_connections: 32,
        max_per_address: 8,
    };
}

/// Serves the proxy and admin listeners until `shutdown` resolves, then stops accepting and
/// waits up to `drain` for in-flight requests to finish. Default [`Limits`].
pub async fn serve(
    proxy: Arc<Proxy>,
    proxy_listener: TcpListener,
    admin_listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) {
    serve_with(
        proxy,
        (proxy_listener, Limits::PROXY),
        (admin_listener, Limits::ADMIN),
        shutdown,
        drain,
    )
    .await;
}

/// [`serve`] with the given limits per listener.
pub async fn serve_with(
    proxy: Arc<Proxy>,
    (proxy_listener, limits): (TcpListener, Limits),
    (admin_listener, admin_limits): (TcpListener, Limits),
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) {
    let graceful = GracefulShutdown::new();
    let admin_proxy = proxy.clone();
    let _admin = Aborting(
        tokio::spawn(accept_admin(admin_listener, admin_limits, admin_proxy)).abort_handle(),
    );
    let slots = Slots::new(limits);
    // The shutdown signal waits in a task of its own: polled here, its receivers would be
    // polled again at every connection the loop accepts.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let _signal = Aborting(
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(());
        })
        .abort_handle(),
    );
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = proxy_listener.accept() => {
                let Some((tcp, slot)) = slots.admit(accepted, "proxy").await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let proxy = proxy.clone();
                let svc = service_fn(move |req: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req).await) }
                });
                let watcher = graceful.watcher();
                let header_timeout = limits.header_timeout;
                slots.spawn(slot, async move {
                    // HTTP/1 or HTTP/2 is told by the first bytes: they too must come in time.
                    let Some(io) = first_bytes(tcp, header_timeout).await else {
                        return;
                    };
                    // Boxed once here: the task's own future stays small, and tokio moves it
                    // several times as it spawns and ends it.
                    let conn = Box::pin(watcher.watch(serve_connection(io, svc, limits)));
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
}

/// A task of the server's own (the admin listener, the shutdown signal's wait), aborted when
/// the server ends, drained or dropped.
struct Aborting(AbortHandle);

impl Drop for Aborting {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listener's connection slots: so many at once, and so many from one address.
/// A listener's connections: at most `all` at once and `per_address` from one address. When
/// the listener is full, a connection from an address that holds fewer than the address that
/// holds the most evicts that address's oldest connection: clients spread over a few
/// addresses cannot lock out a new one (the kubelet's probe, another client).
struct Slots {
    all: Arc<Semaphore>,
    by_address: Arc<Mutex<crate::ConfigMap<IpAddr, Connections>>>,
    per_address: usize,
    next_id: std::sync::atomic::AtomicU64,
}

/// One address's connections, oldest first: each one's id and the handle that aborts its
/// task (set as the task is spawned, before the listener admits another connection).
#[derive(Default)]
struct Connections(std::collections::VecDeque<(u64, Option<AbortHandle>)>);

/// A connection's slot: its place among the listener's connections and its address's count,
/// both given back when dropped (with its task: [`Slots::spawn`]).
struct Slot {
    _all: OwnedSemaphorePermit,
    address: AddressCount,
}

/// One connection counted against its address; the count goes down when dropped.
struct AddressCount {
    address: IpAddr,
    id: u64,
    by_address: Arc<Mutex<crate::ConfigMap<IpAddr, Connections>>>,
}

impl Drop for AddressCount {
    fn drop(&mut self) {
        let mut by = self.by_address.lock();
        if let Some(c) = by.get_mut(&self.address) {
            c.0.retain(|(id, _)| *id != self.id);
            if c.0.is_empty() {
                by.remove(&self.address);
            }
        }
    }
}

/// How long a connection that evicted another waits for its place to be given back.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

impl Slots {
    fn new(limits: Limits) -> Slots {
        Slots {
            all: Arc::new(Semaphore::new(limits.max_connections)),
            by_address: Arc::new(Mutex::new(crate::ConfigMap::default())),
            per_address: limits.max_per_address,
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Takes an accepted connection if a slot is free for it (or can be freed by evicting the
    /// busiest address's oldest connection); closes it otherwise.
    async fn admit(
        &self,
        accepted: std::io::Result<(TcpStream, SocketAddr)>,
        listener: &'static str,
    ) -> Option<(TcpStream, Slot)> {
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(listener, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                return None;
            }
        };
        let address = peer.ip();
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        {
            let mut by = self.by_address.lock();
            let mine = by.get(&address).map_or(0, |c| c.0.len());
            if mine >= self.per_address {
                refused(listener, "connection limit per address reached");
                return None;
            }
            if self.all.available_permits() == 0 {
                // Full: the busiest address gives up its oldest connection, if it holds more
                // than this one would.
                let busiest = by
                    .iter_mut()
                    .max_by_key(|(_, c)| c.0.len())
                    .filter(|(_, c)| c.0.len() > mine + 1);
                match busiest {
                    Some((_, c)) => {
                        // Its task ends at its next await; its slot is given back as it does.
                        if let Some((_, Some(task))) = c.0.pop_front() {
                            task.abort();
                        }
                    }
                    None => {
                        refused(listener, "connection limit reached");
                        return None;
                    }
                }
            }
            by.entry(address).or_default().0.push_back((id, None));
        }
        // From here the count is given back whatever happens.
        let counted = AddressCount {
            address,
            id,
            by_address: self.by_address.clone(),
        };
        match tokio::time::timeout(EVICTION_WAIT, self.all.clone().acquire_owned()).await {
            Ok(Ok(all)) => Some((
                tcp,
                Slot {
                    _all: all,
                    address: counted,
                },
            )),
            Ok(Err(_)) | Err(_) => {
                refused(listener, "connection limit reached");
                None
            }
        }
    }

    /// Runs a connection's task, which holds its slot; evicting the connection aborts the
    /// task (nothing is polled for it on the connection's way).
    fn spawn(&self, slot: Slot, serve: impl Future<Output = ()> + Send + 'static) {
        let (address, id) = (slot.address.address, slot.address.id);
        let task = tokio::spawn(async move {
            let _slot = slot;
            serve.await;
        });
        // A task that already ended has given its entry back.
        if let Some(c) = self.by_address.lock().get_mut(&address)
            && let Some((_, handle)) = c.0.iter_mut().find(|(i, _)| *i == id)
        {
            *handle = Some(task.abort_handle());
        }
    }
}

/// Says a connection was refused, at most once a second per listener and reason (an attacker
/// sets the pace of refusals, not the size of the log), with how many since the last line.
fn refused(listener: &'static str, why: &'static str) {
    static REFUSALS: std::sync::LazyLock<Throttle<(&'static str, &'static str)>> =
        std::sync::LazyLock::new(|| Throttle::new(Duration::from_secs(1)));
    if let Some(refused) = REFUSALS.tick((listener, why), tokio::time::Instant::now()) {
        tracing::warn!(listener, refused, "{why}; closing new connections");
    }
}

/// Serves a client connection in the version its first bytes told: HTTP/1 unless they were
/// HTTP/2's preface, so hyper does not read them again to tell.
fn serve_connection<S, B>(
    io: Prefixed,
    svc: S,
    limits: Limits,
) -> auto::Connection<'static, TokioIo<Prefixed>, S, TokioExecutor>
where
    S: hyper::service::Service<Request<Incoming>, Response = hyper::Response<B>> + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut builder = if io.http2 {
        builder.http2_only()
    } else {
        builder.http1_only()
    };
    builder
        .http1()
        .max_buf_size(limits.max_head_bytes.max(8192))
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX))
        .timer(TokioTimer::new());
    builder.serve_connection(TokioIo::new(io), svc).into_owned()
}

/// Waits for a connection's first bytes (enough to tell HTTP/2's preface from HTTP/1), within
/// `timeout`; the bytes read are given back to whoever reads the connection next.
async fn first_bytes(mut tcp: TcpStream, timeout: Duration) -> Option<Prefixed> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut buf = [0u8; 24];
    let mut n = 0;
    let read = async {
        while n < PREFACE.len() {
            match tcp.read(&mut buf[n..]).await {
                Ok(0) | Err(_) => return false,
                Ok(m) => n += m,
            }
            if buf[..n] != PREFACE[..n] {
                break;
            }
        }
        true
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(true) => Some(Prefixed {
            prefix: buf,
            at: 0,
            len: n,
            http2: buf[..n] == *PREFACE,
            tcp,
        }),
        Ok(false) | Err(_) => None,
    }
}

/// A connection whose first bytes were already read: they are read again first.
struct Prefixed {
    prefix: [u8; 24],
    at: usize,
    len: usize,
    /// Whether the first bytes were HTTP/2's preface.
    http2: bool,
    tcp: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.at < self.len {
            let n = (self.len - self.at).min(buf.remaining());
            let (at, end) = (self.at, self.at + n);
            buf.put_slice(&self.prefix[at..end]);
            self.at = end;
            // And what else has come, in the same read: a request that arrived whole is then
            // parsed once, not first as its 24 bytes and then again. Nothing more yet, or an
            // error, is for the next read to find.
            if self.at == self.len && buf.remaining() > 0 {
                let _ = Pin::new(&mut self.tcp).poll_read(cx, buf);
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// The admin listener: HTTP/1.1 only (the kubelet and Prometheus speak it), bounded.
async fn accept_admin(listener: TcpListener, limits: Limits, proxy: Arc<Proxy>) {
    let slots = Slots::new(limits);
    loop {
        let Some((tcp, slot)) = slots.admit(listener.accept().await, "admin").await else {
            continue;
        };
        let proxy = proxy.clone();
        slots.spawn(slot, async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(admin(&proxy, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .max_buf_size(limits.max_head_bytes.max(8192))
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = conn.await;
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
        (&Method::GET, "/fleet") => {
            let mut fleet = proxy.table.fleet.describe();
            if let Some(policy) = proxy.table.current() {
                fleet["deadlines"] = proxy.table.learned.describe(&policy.routes);
            }
            text(
                StatusCode::OK,
                serde_json::to_string_pretty(&fleet).unwrap_or_default(),
                "application/json",
            )
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz, /readyz, /metrics, /equivalence or /fleet\n".into(),
            "text/plain",
        ),
    }
}
