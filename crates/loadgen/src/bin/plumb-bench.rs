//! `plumb-bench`: the data-plane benchmark behind `make bench`.
//!
//! In one run, against the same simulator: requests sent directly to it (the baseline) and
//! through `plumb-sidecar`, one at a time, at fixed rates, and as fast as possible; the
//! sidecar's CPU time per request; its memory idle and with many requests in flight. Medians
//! and tails, and the sidecar's cost as the difference from the baseline measured in the same
//! run. Pin it with `taskset` (the Makefile does) so the sidecar has a core of its own.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use plumb_loadgen::{LoadConfig, Report, run};

/// Data-plane benchmark: direct against through the sidecar, in one run.
#[derive(Debug, Parser)]
struct Args {
    /// The sidecar binary.
    #[arg(long, default_value = "target/release/plumb-sidecar")]
    sidecar: PathBuf,
    /// The simulator binary.
    #[arg(long, default_value = "target/release/plumb-simulator")]
    simulator: PathBuf,
    /// CPU list for the sidecar (`taskset -c`); empty to not pin.
    #[arg(long, default_value = "0")]
    sidecar_cpus: String,
    /// CPU list for the simulator.
    #[arg(long, default_value = "1")]
    simulator_cpus: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Requests held in flight for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A smoke run (debug builds, short): proves the harness works; its numbers mean nothing.
    #[arg(long)]
    smoke: bool,
}

struct Proc {
    child: Child,
    url: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(cpus: &str, bin: &PathBuf, args: &[&str]) -> anyhow::Result<Proc> {
    let mut cmd = if cpus.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpus).arg(bin);
        c
    };
    let mut child = cmd
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bin.display()))?;
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let url = words
        .iter()
        .position(|w| *w == "on")
        .and_then(|i| words.get(i + 1))
        .ok_or_else(|| anyhow::anyhow!("{} did not start: {line:?}", bin.display()))?
        .to_string();
    Ok(Proc { child, url })
}

/// Moves every thread of a running process to `cpus`.
fn repin(pid: u32, cpus: &str) -> bool {
    !cpus.is_empty()
        && Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Resident memory of a process, in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
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

fn load(
    url: &str,
    body: &Bytes,
    headers: &[(&str, &str)],
    connections: usize,
    seconds: f64,
    rate: Option<f64>,
) -> LoadConfig {
    LoadConfig {
        url: url.parse().unwrap_or_default(),
        method: http::Method::POST,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        body: body.clone(),
        connections,
        duration: Duration::from_secs_f64(seconds),
        warmup: Duration::from_secs_f64((seconds / 5.0).min(2.0)),
        rate,
    }
}

fn us(v: u64) -> String {
    format!("{v} µs")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("plumb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The default models, plus one that holds every answer for two seconds.
    let sim_config = dir.join("simulator.yaml");
    std::fs::write(
        &sim_config,
        "models:\n  sim-gpt: {}\n  sim-slow: {latency: {kind: fixed, ms: 2000}}\n  sim-stream: {token_rate: 200}\n  sim-slow-stream: {token_rate: 8}\n",
    )?;
    let sim_config_arg = sim_config.display().to_string();
    let sim = spawn(
        &args.simulator_cpus,
        &args.simulator,
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--config",
            &sim_config_arg,
        ],
    )?;
    let routes = dir.join("routes.yaml");
    std::fs::write(
        &routes,
        format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench}}\nspec:\n  match: {{models: [bench]}}\n  targets:\n    - {{name: sim, provider: openai, baseUrl: '{url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-slow}}\nspec:\n  match: {{models: [bench-slow]}}\n  targets:\n    - {{name: slow, provider: openai, baseUrl: '{url}/v1', model: sim-slow, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-stream}}\nspec:\n  match: {{models: [bench-stream]}}\n  targets:\n    - {{name: stream, provider: openai, baseUrl: '{url}/v1', model: sim-stream, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-slow-stream}}\nspec:\n  match: {{models: [bench-slow-stream]}}\n  targets:\n    - {{name: slow-stream, provider: openai, baseUrl: '{url}/v1', model: sim-slow-stream, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-json}}\nspec:\n  match: {{models: [bench-json]}}\n  targets:\n    - {{name: sim, provider: openai, baseUrl: '{url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-contract}}\nspec:\n  match: {{models: [bench-contract]}}\n  targets:\n    - {{name: sim, provider: openai, baseUrl: '{url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n{CONTRACT}",
            url = sim.url
        ),
    )?;
    let routes_arg = routes.display().to_string();
    let sidecar = spawn(
        &args.sidecar_cpus,
        &args.sidecar,
        &[
            "--routes",
            &routes_arg,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    )?;
    let pid = sidecar.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_idle = rss_kib(pid);

    let direct_url = format!("{}/v1/chat/completions", sim.url);
    let sidecar_url = format!("{}/v1/chat/completions", sidecar.url);
    let direct_body = Bytes::from_static(
        br#"{"model":"sim-gpt","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    );
    let sidecar_body = Bytes::from_static(
        br#"{"model":"bench","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    );
    let json = [("content-type", "application/json")];
    let s = args.seconds;
    let mut rows: Vec<String> = Vec::new();
    let mut lines: Vec<String> = Vec::new();

    // One request at a time.
    let d1 = run(load(&direct_url, &direct_body, &json, 1, s, None)).await?;
    let p1 = run(load(&sidecar_url, &sidecar_body, &json, 1, s, None)).await?;
    let added50 = p1.latency_us.p50.saturating_sub(d1.latency_us.p50);
    let added99 = p1.latency_us.p99.saturating_sub(d1.latency_us.p99);
    rows.push(row("one at a time, sidecar on its own core", &d1, &p1));
    lines.push(format!(
        "added latency one at a time, sidecar on its own core: p50 {} (target ≤ 150 µs), p99 {} (target ≤ 1 ms)",
        us(added50),
        us(added99)
    ));
    // The same with the sidecar sharing the caller's core, as in a pod limited to one CPU:
    // no idle core has to be woken for each hop.
    if !args.simulator_cpus.is_empty() && repin(pid, &args.simulator_cpus) {
        let d = run(load(&direct_url, &direct_body, &json, 1, s, None)).await?;
        let p = run(load(&sidecar_url, &sidecar_body, &json, 1, s, None)).await?;
        rows.push(row(
            "one at a time, sidecar sharing the caller's core",
            &d,
            &p,
        ));
        lines.push(format!(
            "added latency one at a time, sidecar sharing the caller's core: p50 {}, p99 {}",
            us(p.latency_us.p50.saturating_sub(d.latency_us.p50)),
            us(p.latency_us.p99.saturating_sub(d.latency_us.p99))
        ));
        let streams = if args.smoke { 5 } else { 200 };
        let ds = stream_stats(&direct_url, STREAM_DIRECT, streams).await?;
        let ps = stream_stats(&sidecar_url, STREAM_SIDECAR, streams).await?;
        report_streams(
            "sidecar sharing the caller's core",
            &ds,
            &ps,
            &mut rows,
            &mut lines,
        );
        // The cost of a contract: the same structured request through a route without one
        // and through a route with a typical schema and three CEL rules.
        let plain = Bytes::from_static(JSON_PLAIN);
        let checked = Bytes::from_static(JSON_CONTRACT);
        let pj = run(load(&sidecar_url, &plain, &json, 1, s, None)).await?;
        let pc = run(load(&sidecar_url, &checked, &json, 1, s, None)).await?;
        rows.push(row(
            "structured, no contract → with contract (sharing the caller's core)",
            &pj,
            &pc,
        ));
        lines.push(format!(
            "contract (schema + 3 CEL rules), end to end: p50 {} → {} ({}), p99 {} → {} ({})",
            us(pj.latency_us.p50),
            us(pc.latency_us.p50),
            signed(pc.latency_us.p50, pj.latency_us.p50),
            us(pj.latency_us.p99),
            us(pc.latency_us.p99),
            signed(pc.latency_us.p99, pj.latency_us.p99),
        ));
        repin(pid, &args.sidecar_cpus);
    }
    let fleet_ns = fleet_micro(if args.smoke { 200 } else { 200_000 })?;
    lines.push(format!(
        "shared knowledge in process, median per attempt (ask the fleet's gate, count the outcome and latency for the report): {:.2} µs, {:.1}% of the added latency p50 above",
        fleet_ns / 1000.0,
        fleet_ns / 10.0 / (added50.max(1) as f64)
    ));
    let (check_ns, parse_ns) = contract_micro(if args.smoke { 200 } else { 20_000 })?;
    lines.push(format!(
        "contract check in process, median per answer: {:.1} µs (schema + 3 CEL rules), against {:.1} µs to parse the same answer as JSON",
        check_ns / 1000.0,
        parse_ns / 1000.0
    ));

    // Fixed rates, open loop.
    for rate in [500.0, 2000.0] {
        let d = run(load(&direct_url, &direct_body, &json, 32, s, Some(rate))).await?;
        let p = run(load(&sidecar_url, &sidecar_body, &json, 32, s, Some(rate))).await?;
        rows.push(row(&format!("{rate:.0} req/s"), &d, &p));
        lines.push(format!(
            "added latency at {rate:.0} req/s: p50 {}, p99 {} (sends behind schedule: direct {}, via sidecar {})",
            us(p.latency_us.p50.saturating_sub(d.latency_us.p50)),
            us(p.latency_us.p99.saturating_sub(d.latency_us.p99)),
            d.behind,
            p.behind
        ));
    }

    // As fast as possible, with the sidecar's CPU time per request.
    let dmax = run(load(&direct_url, &direct_body, &json, 64, s, None)).await?;
    let cpu_before = cpu_seconds(pid);
    let pmax = run(load(&sidecar_url, &sidecar_body, &json, 64, s, None)).await?;
    let cpu = cpu_seconds(pid) - cpu_before;
    // The warm-up's requests used CPU too; count them at the measured rate.
    let warm = (s / 5.0).min(2.0);
    let served = pmax.rps * (s + warm);
    let cpu_per_req_us = if served > 0.0 {
        cpu / served * 1e6
    } else {
        0.0
    };
    rows.push(row("max throughput (64 conns)", &dmax, &pmax));
    lines.push(format!(
        "throughput through the sidecar: {:.0} req/s (target ≥ 10,000); direct: {:.0} req/s",
        pmax.rps, dmax.rps
    ));
    lines.push(format!("sidecar CPU per request: {cpu_per_req_us:.1} µs"));

    // Memory with many requests in flight: each held 2 s by the simulator.
    let slow_body = Bytes::from_static(br#"{"model":"bench-slow","messages":[{"role":"user","content":"what is six times seven"}]}"#);
    let hold = load(&sidecar_url, &slow_body, &json, args.in_flight, 4.0, None);
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(rss_kib(pid));
        }
        peak
    });
    let held = run(hold).await?;
    let rss_busy = sampler.await.unwrap_or(0);
    lines.push(format!("sidecar RSS: idle {:.1} MB (target ≤ 10 MB); with {} requests in flight {:.1} MB ({} answered, {} errors)",
        rss_idle as f64 / 1024.0, args.in_flight, rss_busy as f64 / 1024.0, held.requests, held.errors));

    // Streams: time to the first byte and the gaps between events, one stream at a time, at
    // 200 tokens a second from the simulator.
    let streams = if args.smoke { 5 } else { 200 };
    let ds = stream_stats(&direct_url, STREAM_DIRECT, streams).await?;
    let ps = stream_stats(&sidecar_url, STREAM_SIDECAR, streams).await?;
    report_streams("sidecar on its own core", &ds, &ps, &mut rows, &mut lines);
    rows.push(format!(
        "| stream, gap between events | {} | {} | {} | {} | | |\n",
        us(ds.gap.0),
        us(ds.gap.1),
        us(ps.gap.0),
        us(ps.gap.1)
    ));
    lines.push(format!(
        "streams, sidecar on its own core: added gap between events p50 {}, p99 {} (target: none measurable)",
        signed(ps.gap.0, ds.gap.0),
        signed(ps.gap.1, ds.gap.1)
    ));
    // Memory with many streams open at once (each about three seconds long).
    let open = args.in_flight;
    let sampler = tokio::spawn(async move {
        let mut peak = 0;
        for _ in 0..30 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            peak = peak.max(rss_kib(pid));
        }
        peak
    });
    let slow_stream: &'static [u8] = br#"{"model":"bench-slow-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#;
    let mut tasks = Vec::new();
    for _ in 0..open {
        let url = sidecar_url.clone();
        tasks.push(tokio::spawn(
            async move { stream_once(&url, slow_stream).await },
        ));
    }
    let mut completed = 0;
    for t in tasks {
        if matches!(t.await, Ok(Ok(_))) {
            completed += 1;
        }
    }
    let rss_streams = sampler.await.unwrap_or(0);
    lines.push(format!(
        "sidecar RSS with {open} concurrent streams: {:.1} MB ({completed} completed)",
        rss_streams as f64 / 1024.0
    ));

    let mut report = String::new();
    if args.smoke {
        report.push_str("SMOKE RUN (debug builds, unpinned, short): these numbers are not measurements; see BENCHMARKS.md and `make bench`.\n\n");
    }
    report.push_str("| load | direct p50 | direct p99 | via sidecar p50 | via sidecar p99 | direct req/s | via sidecar req/s |\n");
    report.push_str("| --- | --- | --- | --- | --- | --- | --- |\n");
    for r in &rows {
        report.push_str(r);
    }
    report.push('\n');
    for l in &lines {
        report.push_str(&format!("- {l}\n"));
    }
    println!("{report}");
    if let Some(out) = args.out {
        std::fs::write(out, &report)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// The contract of the `bench-contract` route: the simulator's structured answer
/// (`{answer, score}`), a typical schema and three CEL rules.
const CONTRACT: &str = r#"  contract:
    schema:
      inline:
        type: object
        required: [answer, score]
        additionalProperties: false
        properties:
          answer: {type: string, minLength: 1, maxLength: 4000}
          score: {type: number, minimum: 0, maximum: 1}
    rules:
      - expression: "answer.score >= 0.0 && answer.score <= 1.0"
        message: score must be between 0 and 1
      - expression: "size(answer.answer) > 0 && size(answer.answer) <= 4000"
        message: the answer must not be empty or longer than 4000 characters
      - expression: "!answer.answer.contains('As an AI')"
        message: no boilerplate disclaimers
"#;
const JSON_PLAIN: &[u8] = br#"{"model":"bench-json","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"rate the answer"}]}"#;
const JSON_CONTRACT: &[u8] = br#"{"model":"bench-contract","response_format":{"type":"json_object"},"messages":[{"role":"user","content":"rate the answer"}]}"#;

/// Median nanoseconds per contract check of a typical answer, and per plain JSON parse of it,
/// over batches of `n` in this process.
fn contract_micro(n: usize) -> anyhow::Result<(f64, f64)> {
    let yaml = format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: c}}\nspec:\n  match: {{models: [c]}}\n  targets:\n    - {{name: t, provider: openai, baseUrl: 'http://h/v1', model: m, credentials: {{none: true}}}}\n{CONTRACT}"
    );
    let set = plumb_policy::parse_routes_file(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = set.lookup("c").ok_or_else(|| anyhow::anyhow!("no route"))?;
    let contract = route
        .contract
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no contract"))?;
    let text = r#"{"answer":"The answer is forty-two. It was computed carefully, checked twice, and agrees with the reference table.","score":0.82}"#;
    let request: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(JSON_CONTRACT)?;
    let answer = plumb_policy::contract::Answer {
        text,
        tools: &[],
        request: &request,
        request_schema: None,
    };
    contract
        .check(&answer)
        .map_err(|v| anyhow::anyhow!("the benchmark's answer breaks its contract: {v}"))?;
    let median = |f: &dyn Fn()| {
        let mut per: Vec<f64> = (0..11)
            .map(|_| {
                let start = tokio::time::Instant::now();
                for _ in 0..n {
                    f();
                }
                start.elapsed().as_nanos() as f64 / n as f64
            })
            .collect();
        per.sort_by(f64::total_cmp);
        per[per.len() / 2]
    };
    let check = median(&|| {
        std::hint::black_box(contract.check(std::hint::black_box(&answer)).is_ok());
    });
    let parse = median(&|| {
        std::hint::black_box(
            serde_json::from_str::<serde_json::Value>(std::hint::black_box(text)).is_ok(),
        );
    });
    Ok((check, parse))
}

/// Median nanoseconds per attempt of what the shared knowledge adds to the request path: the
/// fleet's gate before the attempt and the outcome counted for the next report after it (a
/// sidecar with a control plane; standalone only the gate runs).
fn fleet_micro(n: usize) -> anyhow::Result<f64> {
    let yaml = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: c}\nspec:\n  match: {models: [c]}\n  targets:\n    - {name: t, provider: openai, baseUrl: 'http://h/v1', model: m, credentials: {none: true}}\n";
    let set = plumb_policy::parse_routes_file(yaml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let route = set.lookup("c").ok_or_else(|| anyhow::anyhow!("no route"))?;
    let target = &route.targets[0];
    let fleet = plumb_sidecar::fleet::Fleet::new();
    fleet.set_pod("bench-0");
    let mut per: Vec<f64> = (0..11)
        .map(|i| {
            let start = tokio::time::Instant::now();
            for j in 0..n {
                std::hint::black_box(fleet.gate(&target.upstream));
                fleet.record(
                    "c",
                    target,
                    None,
                    plumb_sidecar::fleet::Outcome {
                        latency: std::time::Duration::from_micros(200 + (j % 1000) as u64),
                        breaker: plumb_sidecar::breaker::BreakerState::Closed,
                        cooldown: std::time::Duration::from_secs(10),
                        probe: false,
                        retry_after: None,
                    },
                );
            }
            let ns = start.elapsed().as_nanos() as f64 / n as f64;
            // A report drains what accumulated, as the control stream does every second.
            std::hint::black_box(fleet.report(i, None, Vec::new()));
            ns
        })
        .collect();
    per.sort_by(f64::total_cmp);
    Ok(per[per.len() / 2])
}

const STREAM_DIRECT: &[u8] =
    br#"{"model":"sim-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#;
const STREAM_SIDECAR: &[u8] =
    br#"{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#;

/// Medians and 99th percentiles of stream timings, microseconds.
struct StreamStats {
    ttfb: (u64, u64),
    ttft: (u64, u64),
    gap: (u64, u64),
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn signed(a: u64, b: u64) -> String {
    let d = a as i64 - b as i64;
    format!("{d} µs")
}

/// One stream: the time from sending the request to the first body byte and to the first
/// token (the first chunk with non-empty content), and the gaps between the arrivals of its
/// events.
async fn stream_once(url: &str, body: &'static [u8]) -> anyhow::Result<(u64, u64, Vec<u64>)> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url.parse()?;
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let tcp = tokio::net::TcpStream::connect(&authority).await?;
    tcp.set_nodelay(true)?;
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = http::Request::post(uri.path())
        .header("host", authority)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from_static(body)))?;
    let start = tokio::time::Instant::now();
    let resp = tx.send_request(req).await?;
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

async fn stream_stats(url: &str, body: &'static [u8], n: usize) -> anyhow::Result<StreamStats> {
    let mut ttfb = Vec::with_capacity(n);
    let mut ttft = Vec::with_capacity(n);
    let mut gaps = Vec::new();
    for _ in 0..n {
        let (b, t, g) = stream_once(url, body).await?;
        ttfb.push(b);
        ttft.push(t);
        gaps.extend(g);
    }
    Ok(StreamStats {
        ttfb: percentiles(ttfb),
        ttft: percentiles(ttft),
        gap: percentiles(gaps),
    })
}

/// The first-byte and first-token rows and lines of one stream measurement.
fn report_streams(
    layout: &str,
    d: &StreamStats,
    p: &StreamStats,
    rows: &mut Vec<String>,
    lines: &mut Vec<String>,
) {
    for (what, dv, pv) in [
        ("first byte", d.ttfb, p.ttfb),
        ("first token", d.ttft, p.ttft),
    ] {
        rows.push(format!(
            "| stream {what}, {layout} | {} | {} | {} | {} | | |\n",
            us(dv.0),
            us(dv.1),
            us(pv.0),
            us(pv.1)
        ));
    }
    lines.push(format!(
        "streams, {layout}: added time to first byte p50 {}, p99 {} (target ≤ 300 µs); to first token p50 {}, p99 {}",
        signed(p.ttfb.0, d.ttfb.0),
        signed(p.ttfb.1, d.ttfb.1),
        signed(p.ttft.0, d.ttft.0),
        signed(p.ttft.1, d.ttft.1)
    ));
}

fn row(name: &str, direct: &Report, sidecar: &Report) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {:.0} | {:.0} |\n",
        us(direct.latency_us.p50),
        us(direct.latency_us.p99),
        us(sidecar.latency_us.p50),
        us(sidecar.latency_us.p99),
        direct.rps,
        sidecar.rps
    )
}
