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
        "models:\n  sim-gpt: {}\n  sim-slow: {latency: {kind: fixed, ms: 2000}}\n",
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
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench}}\nspec:\n  match: {{models: [bench]}}\n  targets:\n    - {{name: sim, provider: openai, baseUrl: '{url}/v1', model: sim-gpt, credentials: {{none: true}}}}\n---\napiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: bench-slow}}\nspec:\n  match: {{models: [bench-slow]}}\n  targets:\n    - {{name: slow, provider: openai, baseUrl: '{url}/v1', model: sim-slow, credentials: {{none: true}}}}\n",
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
        repin(pid, &args.sidecar_cpus);
    }

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
