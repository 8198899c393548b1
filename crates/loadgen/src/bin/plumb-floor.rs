//! `plumb-floor`: the floor `make bench` measures the sidecar against.
//!
//! A bare hyper 1 reverse proxy to one upstream: each request's method, path, query, headers
//! (less the hop-by-hop ones) and body are streamed to the upstream over a keep-alive pool
//! (hyper-util's client), and its answer is streamed back. Nothing else: no routing, no parsing,
//! no retries, no telemetry. What the sidecar costs beyond this is what its features cost.
//!
//! Prints `plumb-floor listening on http://ADDR` on standard output once it accepts
//! connections, as the simulator and the sidecar do, so a harness can bind port 0.
//!
//! `--echo` runs no proxy at all: each connection's bytes are written straight back. Placed
//! where a proxy runs, it measures what any proxy pays there before doing anything, the round
//! trip to its core and back (`plumb-floor echo listening on ADDR`).

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Parser;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// A bare reverse proxy to one upstream: the floor the sidecar is measured against.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream's base URL, `http://HOST:PORT` with an optional path prefix.
    #[arg(long, required_unless_present = "echo")]
    upstream: Option<Uri>,
    /// Worker threads (default: as the sidecar's, the cores the process may run on, at most 2).
    #[arg(long)]
    workers: Option<std::num::NonZeroUsize>,
    /// Echo each connection's bytes back instead of proxying (no `--upstream`).
    #[arg(long, conflicts_with = "upstream")]
    echo: bool,
}

/// Where every request goes.
struct Upstream {
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// Prepended to every request's path; empty or `/prefix` without a trailing slash.
    prefix: String,
}

type Pool = Client<HttpConnector, Incoming>;
type Answer = Response<Either<Incoming, Empty<Bytes>>>;

/// Headers that belong to one connection, not to the request (RFC 9110, section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn main() -> ExitCode {
    let args = Args::parse();
    let upstream = match args.upstream.as_ref().map(upstream).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("plumb-floor: invalid configuration: {e:#}");
            return ExitCode::from(64);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    // The sidecar's own rule, so both run the same number of workers.
    rt.worker_threads(plumb_sidecar::config::workers(
        args.workers,
        std::thread::available_parallelism().ok().map(|n| n.get()),
    ));
    let result = rt
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| match upstream {
            Some(upstream) => rt.block_on(serve(args.listen, Arc::new(upstream))),
            None => rt.block_on(echo(args.listen)),
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plumb-floor: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn upstream(url: &Uri) -> anyhow::Result<Upstream> {
    anyhow::ensure!(
        url.scheme() == Some(&Scheme::HTTP),
        "--upstream must be http://HOST:PORT[/prefix], got {url}"
    );
    let authority = url
        .authority()
        .cloned()
        .with_context(|| format!("--upstream has no host: {url}"))?;
    Ok(Upstream {
        scheme: Scheme::HTTP,
        host: HeaderValue::from_str(authority.as_str())?,
        authority,
        prefix: url.path().trim_end_matches('/').to_owned(),
    })
}

/// Binds `listen` and prints where it listens, `plumb-floor {said}ADDR`, once it does.
async fn bind(listen: SocketAddr, said: &str) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "plumb-floor {said}{addr}")?;
    out.flush()?;
    Ok(listener)
}

/// Accepts the next connection, with Nagle off; on an error (out of file descriptors, say)
/// waits for some to close rather than spin.
async fn accept(listener: &TcpListener) -> tokio::net::TcpStream {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                let _ = tcp.set_nodelay(true);
                return tcp;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn serve(listen: SocketAddr, upstream: Arc<Upstream>) -> anyhow::Result<()> {
    let listener = bind(listen, "listening on http://").await?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let pool: Pool = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    loop {
        let tcp = accept(&listener).await;
        let (pool, upstream) = (pool.clone(), upstream.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(pool.clone(), upstream.clone(), req));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Writes each connection's bytes straight back.
async fn echo(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = bind(listen, "echo listening on ").await?;
    loop {
        let mut tcp = accept(&listener).await;
        tokio::spawn(async move {
            let (mut rx, mut tx) = tcp.split();
            let _ = tokio::io::copy(&mut rx, &mut tx).await;
        });
    }
}

async fn forward(
    pool: Pool,
    upstream: Arc<Upstream>,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", PathAndQuery::as_str);
    let uri = Uri::builder()
        .scheme(upstream.scheme.clone())
        .authority(upstream.authority.clone())
        .path_and_query(format!("{}{path}", upstream.prefix))
        .build();
    let Ok(uri) = uri else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    parts.version = http::Version::HTTP_11;
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    parts.headers.insert(header::HOST, upstream.host.clone());
    match pool.request(Request::from_parts(parts, body)).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            for name in HOP_BY_HOP {
                parts.headers.remove(name);
            }
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(_) => Ok(status(StatusCode::BAD_GATEWAY)),
    }
}

fn status(code: StatusCode) -> Answer {
    let mut resp = Response::new(Either::Right(Empty::new()));
    *resp.status_mut() = code;
    resp
}
