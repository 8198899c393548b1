//! `make bench-control`: how fast a route change reaches 100 connected sidecars, and what each
//! connected sidecar costs the operator in memory; then the shared knowledge: with all 100
//! reporting every second, how fast one sidecar's breaker opening reaches the other 99, and
//! what merging the fleet's reports costs the operator in CPU and memory.
//!
//! The real API server (behind the fake for core objects) and the release `plumb-operator`
//! process; 100 sidecar control streams opened in this process with the real protocol (TLS, a
//! token each, Hello, an Ack for every snapshot). Each round changes the route with a PUT and
//! times, per sidecar, from just before the PUT to the arrival of the snapshot that carries the
//! new generation. `PROPAGATION_LOG=plumb_operator=info` shows the operator's log with each
//! round's PUT time.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_testenv::{ApiServer, FakeCore};
use serde_json::{Value, json};
use tokio::time::Instant;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

const SIDECARS: usize = 100;
const ROUNDS: usize = 30;
const ROUTES: &str = "/apis/plumb.dev/v1alpha1/namespaces/bench/llmroutes";

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

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Per sidecar: the generation of the route it last received, and when.
type Seen = Arc<Mutex<Vec<(i64, Instant)>>>;

/// Per sidecar: when it first heard that an upstream (by model) is open.
type Heard = Arc<Mutex<std::collections::HashMap<String, Instant>>>;

/// The operator's CPU time so far (user + system), from `/proc`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn upstream(model: &str) -> v1::Upstream {
    v1::Upstream {
        base_url: "https://llm.example/v1".into(),
        model: model.into(),
        credential: "secret:bench/llm-keys/openai".into(),
    }
}

/// What a busy sidecar reports each second: three targets with outcomes and latency, and a
/// few equivalence samples.
fn steady_report(seq: u64) -> v1::Report {
    let mut latency = plumb_knowledge::Sketch::new();
    for i in 0..50u64 {
        latency.add(Duration::from_millis(200 + (i * 37 + seq) % 800));
    }
    let targets = ["gpt", "claude", "mini"]
        .iter()
        .enumerate()
        .map(|(i, m)| v1::TargetReport {
            route: "chat".into(),
            target: (*m).into(),
            upstream: Some(upstream(m)),
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = ApiServer::start()
        .await
        .expect("the API server (run `make tools` first)");
    let crd: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../crds/plumb.dev_llmroutes.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    api.install_crd(&crd).await.unwrap();
    let fake = FakeCore::start(&api).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = fake.kubeconfig(dir.path()).unwrap();
    let (ca, cert, key) = plumb_testenv::write_serving_pki(dir.path()).unwrap();
    for i in 0..SIDECARS {
        fake.add_token(
            &format!("tok-{i}"),
            "bench",
            "app",
            &format!("app-{i}"),
            plumb_proto::TOKEN_AUDIENCE,
        );
    }
    let bin = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("plumb-operator");
    let mut operator = Command::new(&bin)
        .args([
            "--policy-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--heartbeat-interval",
            "5s",
            "--resync",
            "1h",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "RUST_LOG",
            std::env::var("PROPAGATION_LOG").unwrap_or_else(|_| "error".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it with --release)", bin.display()));
    let mut line = String::new();
    BufReader::new(operator.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let policy_url = words[2].to_owned();
    let pid = operator.id();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let route = |models: Value, rv: Option<&Value>| {
        let mut r = json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
            "metadata": {"name": "chat", "namespace": "bench"},
            "spec": {"match": {"models": models}, "targets": [{"name": "t", "provider": "openai",
                "baseUrl": "http://127.0.0.1:9/v1", "model": "m", "credentials": {"none": true}}]}});
        if let Some(rv) = rv {
            r["metadata"]["resourceVersion"] = rv.clone();
        }
        r
    };
    let created = client
        .post(format!("{}{ROUTES}", fake.url))
        .json(&route(json!(["chat"]), None))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kib(pid);

    let pem = std::fs::read(&ca).unwrap();
    let channel = Endpoint::from_shared(policy_url.clone())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut seen: Vec<Seen> = Vec::new();
    let mut heard: Vec<Heard> = Vec::new();
    let mut senders = Vec::new();
    for i in 0..SIDECARS {
        let s: Seen = Arc::new(Mutex::new(vec![(0, Instant::now())]));
        seen.push(s.clone());
        let h: Heard = Arc::default();
        heard.push(h.clone());
        let mut grpc = v1::policy_service_client::PolicyServiceClient::new(channel.clone());
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        senders.push(tx.clone());
        tokio::spawn(async move {
            tx.send(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Hello(v1::Hello {
                    namespace: "bench".into(),
                    pod: format!("app-{i}"),
                    sidecar_version: "bench".into(),
                    serving_version: String::new(),
                })),
            })
            .await
            .unwrap();
            let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
            req.metadata_mut()
                .insert("authorization", format!("Bearer tok-{i}").parse().unwrap());
            let mut inbound = grpc.control(req).await.unwrap().into_inner();
            while let Ok(Some(m)) = inbound.message().await {
                match m.kind {
                    Some(operator_message::Kind::Snapshot(snap)) => {
                        let at = Instant::now();
                        if let Some(r) = snap.routes.first() {
                            s.lock()[0] = (r.generation, at);
                        }
                        let _ = tx
                            .send(v1::SidecarMessage {
                                kind: Some(sidecar_message::Kind::Ack(v1::Ack {
                                    version: snap.version,
                                    rejected: vec![],
                                })),
                            })
                            .await;
                    }
                    Some(operator_message::Kind::Heartbeat(hb)) => {
                        let _ = tx
                            .send(v1::SidecarMessage {
                                kind: Some(sidecar_message::Kind::Heartbeat(hb)),
                            })
                            .await;
                    }
                    Some(operator_message::Kind::Knowledge(k)) => {
                        let at = Instant::now();
                        let mut h = h.lock();
                        for d in k.upstreams.iter().filter(|d| d.open) {
                            if let Some(u) = &d.upstream {
                                h.entry(u.model.clone()).or_insert(at);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
    }
    let all_at = |g: i64, seen: &[Seen]| seen.iter().all(|s| s.lock()[0].0 >= g);
    let start = Instant::now();
    while !all_at(1, &seen) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "sidecars did not all connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_connected = rss_kib(pid);

    let mut samples: Vec<f64> = Vec::new();
    let mut last_of_round: Vec<f64> = Vec::new();
    for round in 0..ROUNDS {
        let cur: Value = client
            .get(format!("{}{ROUTES}/chat", fake.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let g = cur["metadata"]["generation"].as_i64().unwrap() + 1;
        let models = json!(["chat", format!("chat-{round}")]);
        let t0 = Instant::now();
        if std::env::var("PROPAGATION_LOG").is_ok() {
            eprintln!("round {round} PUT at {:?}", std::time::SystemTime::now());
        }
        let r = client
            .put(format!("{}{ROUTES}/chat", fake.url))
            .json(&route(models, Some(&cur["metadata"]["resourceVersion"])))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        while !all_at(g, &seen) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {round} did not propagate"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut round_max: f64 = 0.0;
        for s in &seen {
            let (_, at) = s.lock()[0];
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            round_max = round_max.max(ms);
            samples.push(ms);
        }
        last_of_round.push(round_max);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort_by(f64::total_cmp);
    last_of_round.sort_by(f64::total_cmp);

    // The shared knowledge. The baseline: the same 100 connected sidecars, silent.
    let (cpu_silent0, wall_silent0) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_silent =
        (cpu_time(pid) - cpu_silent0).as_secs_f64() / wall_silent0.elapsed().as_secs_f64();
    // Every sidecar reports every second, as a busy one does.
    let rss_before_reports = rss_kib(pid);
    let reporters: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Spread the sidecars over the second, as independent pods are.
                tokio::time::sleep(Duration::from_millis((i as u64 * 10) % 1000)).await;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                for seq in 1.. {
                    tick.tick().await;
                    let msg = v1::SidecarMessage {
                        kind: Some(sidecar_message::Kind::Report(steady_report(seq))),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu0, wall0) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let cpu_share = (cpu_time(pid) - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64();
    let rss_reporting = rss_kib(pid);

    // Rounds: one sidecar's breaker opens on a fresh upstream; every other sidecar hears of it.
    let mut heard_ms: Vec<f64> = Vec::new();
    let mut last_heard: Vec<f64> = Vec::new();
    for round in 0..ROUNDS {
        let model = format!("down-{round}");
        let reporter = round % SIDECARS;
        let mut report = v1::Report {
            sequence: 1_000_000 + round as u64,
            targets: vec![v1::TargetReport {
                route: "chat".into(),
                target: "down".into(),
                upstream: Some(upstream(&model)),
                outcomes: [("server_error".to_owned(), 5u64)].into_iter().collect(),
                breaker: v1::BreakerState::Open as i32,
                cooldown_ms: 10_000,
                ..v1::TargetReport::default()
            }],
            equivalence: Vec::new(),
            urgent: true,
        };
        let t0 = Instant::now();
        senders[reporter]
            .send(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Report(report.clone())),
            })
            .await
            .unwrap();
        let others = || (0..SIDECARS).filter(|i| *i != reporter);
        while !others().all(|i| heard[i].lock().contains_key(&model)) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "round {round}: the fleet did not hear of {model}"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut round_max: f64 = 0.0;
        for i in others() {
            let at = heard[i].lock()[&model];
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            round_max = round_max.max(ms);
            heard_ms.push(ms);
        }
        last_heard.push(round_max);
        // The probe succeeds: closed again, so the knowledge stays the size of a real one.
        report.targets[0].breaker = v1::BreakerState::Closed as i32;
        report.targets[0].probes_ok = 1;
        report.targets[0].outcomes = [("ok".to_owned(), 1u64)].into_iter().collect();
        senders[reporter]
            .send(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Report(report)),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in reporters {
        r.abort();
    }
    heard_ms.sort_by(f64::total_cmp);
    last_heard.sort_by(f64::total_cmp);
    let per_sidecar_kib = rss_connected.saturating_sub(rss_before) as f64 / SIDECARS as f64;
    println!("| measure | result |");
    println!("| --- | --- |");
    println!(
        "| route change → snapshot at a sidecar, {SIDECARS} sidecars × {ROUNDS} changes | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms (goal p99 ≤ 200 ms) |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
    println!(
        "| route change → the last of {SIDECARS} sidecars has it | p50 {:.1} ms, p99 {:.1} ms |",
        percentile(&last_of_round, 0.5),
        percentile(&last_of_round, 0.99)
    );
    println!(
        "| operator RSS | {:.1} MB with no sidecar, {:.1} MB with {SIDECARS}: **{per_sidecar_kib:.0} KiB per connected sidecar** |",
        rss_before as f64 / 1024.0,
        rss_connected as f64 / 1024.0
    );
    println!(
        "| breaker opening at one sidecar → knowledge at each of the other {}, all {SIDECARS} reporting every second, {ROUNDS} openings | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms (goal p99 ≤ 1 s) |",
        SIDECARS - 1,
        percentile(&heard_ms, 0.5),
        percentile(&heard_ms, 0.99),
        percentile(&heard_ms, 1.0)
    );
    println!(
        "| breaker opening → the last of the other {} has it | p50 {:.1} ms, p99 {:.1} ms |",
        SIDECARS - 1,
        percentile(&last_heard, 0.5),
        percentile(&last_heard, 0.99)
    );
    println!(
        "| operator CPU merging {SIDECARS} reports a second (3 targets, latency sketch, equivalence samples each) and pushing the knowledge back | **{:.1}% of one core** (baseline, the same sidecars silent: {:.1}%) |",
        cpu_share * 100.0,
        cpu_silent * 100.0
    );
    println!(
        "| operator RSS with {SIDECARS} sidecars reporting | {:.1} MB ({:+.1} MB against connected and silent) |",
        rss_reporting as f64 / 1024.0,
        (rss_reporting as f64 - rss_before_reports as f64) / 1024.0
    );
    let _ = operator.kill();
    let _ = operator.wait();
}
