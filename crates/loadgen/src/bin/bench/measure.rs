//! The measurements: loads through the three paths in alternation, streams, memory, and the
//! in-process micro-benchmarks. Each returns numbers; the report judges them.

use std::time::Duration;

use bytes::Bytes;
use plumb_loadgen::{LoadConfig, Report, run};

/// One figure for each of the three ways to reach the simulator.
#[derive(Clone, Copy, Debug, Default)]
pub struct Trio<T> {
    /// Straight to the simulator.
    pub direct: T,
    /// Through the bare reverse proxy.
    pub floor: T,
    /// Through the sidecar.
    pub plumb: T,
}

/// The same figure for the two proxies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pair<T> {
    pub floor: T,
    pub plumb: T,
}

/// One way to reach the simulator: its URL, the bodies that name the simulator's models (or
/// the sidecar's routes), and the proxy's process, whose CPU and memory are read.
pub struct Path {
    pub url: String,
    pub pid: Option<u32>,
    pub bodies: &'static Bodies,
}

/// The requests of every measurement, for one way of naming the models.
pub struct Bodies {
    /// A chat completion answered at once.
    pub chat: &'static [u8],
    /// A chat completion answered after two seconds.
    pub slow: &'static [u8],
    /// A stream at 200 tokens a second.
    pub stream: &'static [u8],
    /// A stream at 8 tokens a second (about three seconds).
    pub slow_stream: &'static [u8],
}

/// Medians over the repetitions of one load through one path.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Median latency, µs.
    pub p50: f64,
    /// Each repetition's 99th percentile, µs, in the order they ran: the spread behind `p99`.
    pub p99_each: Vec<u64>,
    /// Answered requests per second.
    pub rps: f64,
    /// The proxy's CPU time per request, µs (closed loop only).
    pub cpu_us: Option<f64>,
    /// Open loop: sends behind schedule, summed over the repetitions.
    pub behind: u64,
    /// Failed requests, summed over the repetitions.
    pub errors: u64,
}

/// Medians and 99th percentiles of stream timings, µs.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamStats {
    pub ttfb: (u64, u64),
    pub ttft: (u64, u64),
    pub gap: (u64, u64),
    /// The first bytes of the slowest streams, µs, slowest first (the tail behind the p99).
    pub slowest: [u64; 5],
}

/// A proxy's peak memory while many requests were held, and how they ended.
#[derive(Clone, Debug, Default)]
pub struct Held {
    pub peak_kib: u64,
    pub answered: u64,
    pub errors: u64,
    /// What the first failure was, when one failed.
    pub first_error: Option<String>,
}

/// How one load is sent.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub connections: usize,
    pub seconds: f64,
    /// Requests per second in all (open loop); `None` for closed loop.
    pub rate: Option<f64>,
}

impl Load {
    fn warmup(self) -> f64 {
        (self.seconds / 5.0).min(2.0)
    }

    fn config(self, url: &str, body: &'static [u8]) -> LoadConfig {
        LoadConfig {
            url: url.parse().unwrap_or_default(),
            method: http::Method::POST,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: Bytes::from_static(body),
            connections: self.connections,
            duration: Duration::from_secs_f64(self.seconds),
            warmup: Duration::from_secs_f64(self.warmup()),
            rate: self.rate,
        }
    }
}

/// Runs `load` through the three paths in turn, `repeat` times, and takes the median of each
/// figure: alternating spreads a slow spell of a shared machine over all three.
pub async fn alternating(
    paths: &Trio<Path>,
    load: Load,
    repeat: usize,
) -> anyhow::Result<Trio<Summary>> {
    let mut runs: Trio<Vec<(Report, Option<f64>)>> = Trio::default();
    for _ in 0..repeat.max(1) {
        for (path, out) in [
            (&paths.direct, &mut runs.direct),
            (&paths.floor, &mut runs.floor),
            (&paths.plumb, &mut runs.plumb),
        ] {
            let before = path.pid.map(cpu_seconds);
            let report = run(load.config(&path.url, path.bodies.chat)).await?;
            // The warm-up's requests used CPU too: count them at the measured rate.
            let served = report.rps * (load.seconds + load.warmup());
            let cpu = before
                .zip(path.pid)
                .filter(|_| load.rate.is_none() && served > 0.0)
                .map(|(b, pid)| (cpu_seconds(pid) - b) / served * 1e6);
            out.push((report, cpu));
        }
    }
    Ok(Trio {
        direct: summarise(&runs.direct),
        floor: summarise(&runs.floor),
        plumb: summarise(&runs.plumb),
    })
}

impl Summary {
    /// 99th percentile latency, µs: the median of the repetitions'.
    pub fn p99(&self) -> f64 {
        median(self.p99_each.iter().map(|&v| v as f64).collect())
    }
}

fn summarise(runs: &[(Report, Option<f64>)]) -> Summary {
    let cpu: Vec<f64> = runs.iter().filter_map(|(_, c)| *c).collect();
    Summary {
        p50: median(runs.iter().map(|(r, _)| r.latency_us.p50 as f64).collect()),
        p99_each: runs.iter().map(|(r, _)| r.latency_us.p99).collect(),
        rps: median(runs.iter().map(|(r, _)| r.rps).collect()),
        cpu_us: (!cpu.is_empty()).then(|| median(cpu)),
        behind: runs.iter().map(|(r, _)| r.behind).sum(),
        errors: runs.iter().map(|(r, _)| r.errors).sum(),
    }
}

/// The median of `v` (the mean of the middle two when even); 0 when empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// How each stream reaches its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connections {
    /// A connection of its own, opened just before it: the first request of a connection.
    New,
    /// One connection per path, opened before the first stream and kept open across them all,
    /// as the official SDKs' connection pools keep theirs.
    Kept,
}

/// `n` streams one at a time through each path, interleaved stream by stream.
pub async fn streams(
    paths: &Trio<Path>,
    n: usize,
    connections: Connections,
) -> anyhow::Result<Trio<StreamStats>> {
    let mut all: Trio<(Vec<u64>, Vec<u64>, Vec<u64>)> = Trio::default();
    let mut kept: Trio<Option<Sender>> = Trio::default();
    for _ in 0..n {
        for (path, out, kept) in [
            (&paths.direct, &mut all.direct, &mut kept.direct),
            (&paths.floor, &mut all.floor, &mut kept.floor),
            (&paths.plumb, &mut all.plumb, &mut kept.plumb),
        ] {
            let mut tx = match kept.take() {
                Some(mut tx) => {
                    tx.ready().await?;
                    tx
                }
                None => connect(&path.url).await?,
            };
            let (b, t, g) = stream_on(&mut tx, &path.url, path.bodies.stream).await?;
            if connections == Connections::Kept {
                *kept = Some(tx);
            }
            out.0.push(b);
            out.1.push(t);
            out.2.extend(g);
        }
    }
    let stats = |(b, t, g): (Vec<u64>, Vec<u64>, Vec<u64>)| StreamStats {
        slowest: {
            let mut sorted = b.clone();
            sorted.sort_unstable_by(|x, y| y.cmp(x));
            std::array::from_fn(|i| sorted.get(i).copied().unwrap_or_default())
        },
        ttfb: percentiles(b),
        ttft: percentiles(t),
        gap: percentiles(g),
    };
    Ok(Trio {
        direct: stats(all.direct),
        floor: stats(all.floor),
        plumb: stats(all.plumb),
    })
}

/// `n` round trips of 64 bytes to an echo server over one connection, each after a 20 ms
/// pause so that the echo's core is idle when it is reached, as a proxy's is when each of its
/// streams begins (the other paths' streams run in between): the cost of reaching the
/// proxy's core and coming back, before any proxy work. p50 and p99, µs.
pub async fn echo(addr: &str, n: usize) -> anyhow::Result<(u64, u64)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let sent = [b'x'; 64];
    let mut back = [0u8; 64];
    let mut rtt = Vec::with_capacity(n);
    for _ in 0..n {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = tokio::time::Instant::now();
        tcp.write_all(&sent).await?;
        tcp.read_exact(&mut back).await?;
        rtt.push(start.elapsed().as_micros() as u64);
    }
    Ok(percentiles(rtt))
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

/// A client connection's sending half.
type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>;

/// A new HTTP/1 connection to `url`'s authority, served by a task of its own.
async fn connect(url: &str) -> anyhow::Result<Sender> {
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let tcp = tokio::net::TcpStream::connect(&authority).await?;
    tcp.set_nodelay(true)?;
    let (tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(tx)
}

/// One stream on a new connection: the time from sending the request to the first body byte
/// and to the first token (the first chunk with non-empty content), and the gaps between the
/// arrivals of its events.
pub async fn stream_once(url: &str, body: &'static [u8]) -> anyhow::Result<(u64, u64, Vec<u64>)> {
    stream_on(&mut connect(url).await?, url, body).await
}

/// One stream on `tx`, read to its end (so that the connection may carry the next): as
/// [`stream_once`].
async fn stream_on(
    tx: &mut Sender,
    url: &str,
    body: &'static [u8],
) -> anyhow::Result<(u64, u64, Vec<u64>)> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let req = http::Request::post(uri.path())
        .header("host", authority)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(body)))?;
    let start = tokio::time::Instant::now();
    let resp = tx.send_request(req).await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "stream answered {}",
        resp.status()
    );
    let mut body = resp.into_body();
    let mut first = None;
    let mut first_token = None;
    let mut last = None;
    let mut gaps = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        let now = tokio::time::Instant::now();
        if first.is_none() {
            first = Some(now.duration_since(start).as_micros() as u64);
        }
        let token = data
            .windows(11)
            .position(|w| w == b"\"content\":\"")
            .is_some_and(|i| data.get(i + 11) != Some(&b'"'));
        if first_token.is_none() && token {
            first_token = Some(now.duration_since(start).as_micros() as u64);
        }
        if let Some(l) = last {
            gaps.push(now.duration_since(l).as_micros() as u64);
        }
        last = Some(now);
    }
    Ok((first.unwrap_or(0), first_token.unwrap_or(0), gaps))
}

/// The proxy's peak memory while `n` connections each hold one request that the simulator
/// answers after two seconds (all sent within the first 1.9 s, none after).
pub async fn held_requests(path: &Path, n: usize) -> anyhow::Result<Held> {
    let load = Load {
        connections: n,
        seconds: 1.9,
        rate: None,
    };
    let mut config = load.config(&path.url, path.bodies.slow);
    config.warmup = Duration::ZERO;
    let (held, peak_kib) = while_sampling(path.pid, run(config)).await;
    let held = held?;
    Ok(Held {
        peak_kib,
        answered: held.requests,
        errors: held.errors,
        first_error: (held.errors > 0).then(|| format!("statuses {:?}", held.statuses)),
    })
}

/// The proxy's peak memory while `n` streams of about three seconds are open at once.
pub async fn held_streams(path: &Path, n: usize) -> Held {
    let streams = async {
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (url, body) = (path.url.clone(), path.bodies.slow_stream);
            tasks.push(tokio::spawn(async move { stream_once(&url, body).await }));
        }
        let (mut answered, mut first_error) = (0, None);
        for t in tasks {
            match t.await {
                Ok(Ok(_)) => answered += 1,
                Ok(Err(e)) => {
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        (answered, first_error)
    };
    let ((answered, first_error), peak_kib) = while_sampling(path.pid, streams).await;
    Held {
        peak_kib,
        answered,
        errors: n as u64 - answered,
        first_error,
    }
}

/// Runs `work` while sampling the resident memory of `pid` every 100 ms; its peak.
async fn while_sampling<T>(pid: Option<u32>, work: impl Future<Output = T>) -> (T, u64) {
    let pid = pid.unwrap_or(0);
    let mut peak = rss_kib(pid);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return (out, peak.max(rss_kib(pid))),
            _ = tick.tick() => peak = peak.max(rss_kib(pid)),
        }
    }
}

/// Resident memory of a process, in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of a process (and its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static BODIES: Bodies = Bodies {
        chat: b"{}",
        slow: b"{}",
        stream: b"{}",
        slow_stream: b"{}",
    };

    /// A server that answers every request with a stream of one token, counting the
    /// connections it accepts: its URL.
    async fn counting_server(accepted: Arc<AtomicUsize>) -> String {
        use hyper::service::service_fn;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let answer = service_fn(|_req| async {
                    let events = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from_static(events.as_bytes())),
                    ))
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), answer),
                );
            }
        });
        format!("http://{addr}/v1/chat/completions")
    }

    #[tokio::test]
    async fn kept_streams_reuse_one_connection_per_path_and_new_ones_open_their_own() {
        for (connections, opened) in [(Connections::Kept, 3), (Connections::New, 3 * 4)] {
            let accepted = Arc::new(AtomicUsize::new(0));
            let url = counting_server(accepted.clone()).await;
            let path = || Path {
                url: url.clone(),
                pid: None,
                bodies: &BODIES,
            };
            let paths = Trio {
                direct: path(),
                floor: path(),
                plumb: path(),
            };
            streams(&paths, 4, connections).await.unwrap();
            assert_eq!(
                accepted.load(Ordering::SeqCst),
                opened,
                "{connections:?}: connections opened for 4 streams through 3 paths"
            );
        }
    }
}
