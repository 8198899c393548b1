//! `make bench-control`: how fast a route change reaches 100 connected sidecars, and what each
//! connected sidecar costs the operator in memory.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    for i in 0..SIDECARS {
        let s: Seen = Arc::new(Mutex::new(vec![(0, Instant::now())]));
        seen.push(s.clone());
        let mut grpc = v1::policy_service_client::PolicyServiceClient::new(channel.clone());
        tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(8);
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
                            s.lock().unwrap()[0] = (r.generation, at);
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
                    _ => {}
                }
            }
        });
    }
    let all_at = |g: i64, seen: &[Seen]| seen.iter().all(|s| s.lock().unwrap()[0].0 >= g);
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
            let (_, at) = s.lock().unwrap()[0];
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            round_max = round_max.max(ms);
            samples.push(ms);
        }
        last_of_round.push(round_max);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort_by(f64::total_cmp);
    last_of_round.sort_by(f64::total_cmp);
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
    let _ = operator.kill();
    let _ = operator.wait();
}
