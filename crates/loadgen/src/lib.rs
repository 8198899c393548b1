//! `plumb-loadgen`: the load harness behind Plumb's benchmarks.
//!
//! Sends HTTP/1.1 requests over keep-alive connections, closed-loop (each connection sends its
//! next request as soon as the last answer is read) or open-loop at a fixed total rate, and
//! reports throughput and latency percentiles. In open-loop mode each connection sends on its
//! own schedule; latency is measured from the actual send (tokio's timer is millisecond-grained,
//! so measuring from the due time would add the timer's own lateness), and every send that fell
//! more than an interval behind its schedule is counted, so a slow server cannot hide its
//! queueing.
//!
//! The load harness depends on nothing else in the workspace; benchmarks point it at the
//! simulator directly and through the sidecar, in the same run. [`scorecard`] is the judgement
//! behind `plumb-scorecard` (`make scorecard`): every fault of the simulator's catalogue,
//! through the sidecar and directly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub mod scorecard;

/// What to send and how hard.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The target, `http://HOST:PORT/path`.
    pub url: Uri,
    /// Request method.
    pub method: Method,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Bytes,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// How long to measure.
    pub duration: Duration,
    /// How long to send before measuring.
    pub warmup: Duration,
    /// Total requests per second across all connections; `None` is closed-loop (as fast as
    /// the server answers).
    pub rate: Option<f64>,
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Requests answered during the measured window.
    pub requests: u64,
    /// Requests that failed at the transport level or got a non-2xx status.
    pub errors: u64,
    /// Count of responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Length of the measured window, seconds.
    pub seconds: f64,
    /// Answered requests per second.
    pub rps: f64,
    /// Latency percentiles, microseconds, from each request's send to its full answer.
    pub latency_us: Percentiles,
    /// Open loop: requests sent more than one interval after they were due (the harness or
    /// the server fell behind the asked rate).
    pub behind: u64,
}

/// Latency summary in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

/// The run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The URL has no host or port, or is not `http`.
    #[error("the URL must be http://HOST:PORT/..., got {0}")]
    Url(String),
    /// The latency histogram could not be created.
    #[error("creating the latency histogram")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// The target cannot be reached at all.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

struct Worker {
    hist: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    errors: u64,
    behind: u64,
}

impl Percentiles {
    /// Summarises a histogram.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Latencies are recorded from 1 µs to 10 minutes with three significant digits.
const MAX_LATENCY_US: u64 = 600_000_000;

fn new_histogram() -> Result<Histogram<u64>, LoadError> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// Runs the load and reports what it measured.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    let addr = target_addr(&config.url)?;
    // Fail early and clearly when nothing listens.
    TcpStream::connect(addr)
        .await
        .map_err(|source| LoadError::Connect { addr, source })?;
    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let connections = config.connections.max(1);
    let empty = new_histogram()?;
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let config = config.clone();
        let hist = empty.clone();
        tasks.push(tokio::spawn(async move {
            worker(config, addr, hist, i, connections, start, measure_from, end).await
        }));
    }
    let mut hist = empty;
    let mut statuses = BTreeMap::new();
    let mut errors = 0;
    let mut behind = 0;
    for t in tasks {
        if let Ok(w) = t.await {
            behind += w.behind;
            let _ = hist.add(&w.hist);
            for (k, v) in w.statuses {
                *statuses.entry(k).or_insert(0) += v;
            }
            errors += w.errors;
        }
    }
    let seconds = config.duration.as_secs_f64();
    let requests = hist.len();
    Ok(Report {
        requests,
        errors,
        statuses,
        seconds,
        rps: requests as f64 / seconds,
        latency_us: Percentiles::of(&hist),
        behind,
    })
}

fn target_addr(url: &Uri) -> Result<SocketAddr, LoadError> {
    if url.scheme_str() != Some("http") {
        return Err(LoadError::Url(url.to_string()));
    }
    let host = url.host().ok_or_else(|| LoadError::Url(url.to_string()))?;
    let port = url.port_u16().unwrap_or(80);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    format!("{host}:{port}")
        .parse()
        .or_else(|_| {
            std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
                .ok()
                .and_then(|mut a| a.next())
                .ok_or(())
        })
        .map_err(|()| LoadError::Url(url.to_string()))
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Option<Sender> {
    let tcp = TcpStream::connect(addr).await.ok()?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(tcp)).await.ok()?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Some(sender)
}

#[allow(clippy::too_many_arguments)] // one call site; a struct would only rename them
async fn worker(
    config: LoadConfig,
    addr: SocketAddr,
    hist: Histogram<u64>,
    index: usize,
    connections: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Worker {
    let mut w = Worker {
        hist,
        statuses: BTreeMap::new(),
        errors: 0,
        behind: 0,
    };
    // Open loop: this connection's share of the rate, its first slot offset so the
    // connections interleave evenly.
    let interval = config
        .rate
        .filter(|r| *r > 0.0)
        .map(|r| Duration::from_secs_f64(connections as f64 / r));
    let mut due = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(index as f64 / connections as f64)
        });
    let authority = config
        .url
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let path = config
        .url
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut sender: Option<Sender> = None;
    loop {
        if interval.is_some() {
            tokio::time::sleep_until(due).await;
            if due >= end {
                break;
            }
        } else if Instant::now() >= end {
            break;
        }
        let sent_at = if interval.is_some() {
            due
        } else {
            Instant::now()
        };
        if let Some(i) = interval {
            due += i;
        }
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            sender = connect(addr).await;
        }
        let Some(s) = sender.as_mut() else {
            w.errors += u64::from(sent_at >= measure_from);
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let mut req = Request::builder()
            .method(config.method.clone())
            .uri(path.as_str())
            .header(http::header::HOST, authority.as_str());
        for (k, v) in &config.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let Ok(req) = req.body(Full::new(config.body.clone())) else {
            w.errors += 1;
            break;
        };
        let result = match s.ready().await {
            Ok(()) => s.send_request(req).await,
            Err(e) => Err(e),
        };
        let status = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match resp.into_body().collect().await {
                    Ok(_) => Some(status),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let done = Instant::now();
        if sent_at < measure_from || done > end + Duration::from_secs(5) {
            if status.is_none() {
                sender = None;
            }
            continue;
        }
        match status {
            Some(code) => {
                *w.statuses.entry(code).or_insert(0) += 1;
                if !(200..300).contains(&code) {
                    w.errors += 1;
                }
                let us = done.saturating_duration_since(sent_at).as_micros().max(1) as u64;
                let _ = w.hist.record(us.min(MAX_LATENCY_US));
            }
            None => {
                w.errors += 1;
                sender = None;
            }
        }
    }
    w
}
