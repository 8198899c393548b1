//! How long the store takes to take one busy sidecar's report: the report the propagation
//! benchmark sends every second (three targets with outcomes and a latency sketch of 50
//! answers, one equivalence sample), from `--pods` pods of one namespace. Measured twice:
//! merged alone (`Fleet::report`), and admitted against the namespace's routes and merged, as
//! the operator takes each report it decodes.
//!
//! `cargo run --release -p plumb-knowledge --example merge -- [--pods N] [--reports N]`
//!
//! Prints the time per report, the median of five runs.

// A wall-clock measurement outside any runtime: no time here is ever paused.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use plumb_knowledge::fleet::admit::{self, Catalog, RouteCatalog};
use plumb_knowledge::{Fleet, Settings, Sketch};
use plumb_policy::UpstreamKey;
use plumb_proto::v1;

fn key(model: &str) -> UpstreamKey {
    plumb_knowledge::upstream_from_proto(Some(&upstream(model)))
}

/// The route the reports speak of: three targets, shadowing `gpt` with `claude`.
fn catalog() -> Catalog {
    Catalog::from([(
        "chat".to_owned(),
        RouteCatalog {
            targets: ["gpt", "claude", "mini"]
                .iter()
                .map(|m| ((*m).to_owned(), key(m)))
                .collect(),
            primaries: [key("gpt")].into(),
            samples_per_report: 300,
        },
    )])
}

fn upstream(model: &str) -> v1::Upstream {
    v1::Upstream {
        base_url: "https://llm.example/v1".into(),
        model: model.into(),
        credential: "secret:keys/openai".into(),
    }
}

fn report(seq: u64) -> v1::Report {
    let mut latency = Sketch::new();
    for i in 0..50u64 {
        latency.add(Duration::from_millis(200 + (i * 37 + seq) % 800));
    }
    let targets = ["gpt", "claude", "mini"]
        .iter()
        .enumerate()
        .map(|(i, model)| v1::TargetReport {
            route: "chat".into(),
            target: (*model).into(),
            upstream: Some(upstream(model)),
            outcomes: [
                ("ok".to_owned(), 48u64),
                ("timeout".to_owned(), (i as u64) % 2),
            ]
            .into_iter()
            .collect(),
            latency: Some(latency.to_proto()),
            breaker: v1::BreakerState::Closed as i32,
            cooldown_ms: 10_000,
            ..v1::TargetReport::default()
        })
        .collect();
    v1::Report {
        sequence: seq,
        targets,
        equivalence: vec![v1::EquivalenceSamples {
            route: "chat".into(),
            primary: Some(upstream("gpt")),
            candidate: Some(upstream("claude")),
            agreements: 2,
            samples: 2,
        }],
        urgent: false,
    }
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let pods = arg("--pods", 1_000);
    let reports = arg("--reports", 200_000);
    let names: Vec<String> = (0..pods).map(|p| format!("pod-{p}")).collect();
    // A few distinct reports, as sidecars' sketches differ.
    let sent: Vec<v1::Report> = (0..16).map(report).collect();
    let catalog = catalog();
    let limits = admit::Limits::default();
    for admitted in [false, true] {
        let mut runs = Vec::new();
        for _ in 0..5 {
            let mut fleet = Fleet::new(Settings::default());
            for p in &names {
                fleet.connected("team-a", p);
            }
            // The operator owns each report it decodes: a copy made outside the timing.
            let copies: Vec<v1::Report> = (0..reports.min(4_096))
                .map(|i| sent[i % sent.len()].clone())
                .collect();
            let mut copies = copies.into_iter().cycle();
            let mut elapsed = Duration::ZERO;
            for i in 0..reports {
                // One report per pod per second of store time, spread over the second.
                let now_ms = 1_700_000_000_000 + (i as i64 * 1_000) / pods as i64;
                let pod = &names[i % pods];
                if admitted {
                    let owned = copies.next().unwrap_or_default();
                    let start = Instant::now();
                    let (kept, _) = admit::admit_owned(owned, &catalog, now_ms, &limits);
                    fleet.report("team-a", pod, &kept, now_ms);
                    elapsed += start.elapsed();
                } else {
                    let start = Instant::now();
                    fleet.report("team-a", pod, &sent[i % sent.len()], now_ms);
                    elapsed += start.elapsed();
                }
            }
            runs.push(elapsed.as_secs_f64() / reports as f64);
        }
        runs.sort_by(f64::total_cmp);
        println!(
            "{}, {pods} pods, {reports} reports: {:.2} µs per report (median of 5; runs {:.2}–{:.2})",
            if admitted {
                "admit_owned + Fleet::report"
            } else {
                "Fleet::report"
            },
            runs[2] * 1e6,
            runs[0] * 1e6,
            runs[4] * 1e6
        );
    }
}
