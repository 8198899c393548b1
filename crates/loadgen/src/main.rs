//! `plumb-loadgen`: HTTP load for Plumb's benchmarks. See the library docs.

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use plumb_loadgen::{LoadConfig, Report};

/// Closed- or open-loop HTTP/1.1 load with latency percentiles.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Target URL (http only).
    #[arg(long)]
    url: http::Uri,
    /// Request method.
    #[arg(long, default_value = "POST")]
    method: http::Method,
    /// Request body.
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Request body from a file.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// A header, `name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long to measure (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// How long to send before measuring.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Total requests per second (open loop); closed loop when unset.
    #[arg(long)]
    rate: Option<f64>,
    /// Print the report as one JSON line.
    #[arg(long)]
    json: bool,
    /// Worker threads for the load generator itself.
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plumb-loadgen: {e:#}");
            ExitCode::from(64)
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let body = match (&args.body, &args.body_file) {
        (Some(b), _) => Bytes::from(b.clone()),
        (None, Some(path)) => Bytes::from(std::fs::read(path)?),
        (None, None) => Bytes::new(),
    };
    let headers = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("header {h:?} is not `name: value`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = LoadConfig {
        url: args.url,
        method: args.method,
        headers,
        body,
        connections: args.connections,
        duration: args.duration,
        warmup: args.warmup,
        rate: args.rate,
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let report = rt
        .enable_all()
        .build()?
        .block_on(plumb_loadgen::run(config))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_human(&report);
    }
    Ok(())
}

fn print_human(r: &Report) {
    let l = &r.latency_us;
    println!(
        "{} requests in {:.1}s: {:.0} req/s, {} errors {:?}",
        r.requests, r.seconds, r.rps, r.errors, r.statuses
    );
    println!(
        "latency µs: p50 {} p90 {} p99 {} p99.9 {} max {} mean {:.0}",
        l.p50, l.p90, l.p99, l.p999, l.max, l.mean
    );
}
