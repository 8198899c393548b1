//! `make bench-control`: how fast a route change reaches the connected sidecars of its
//! namespace, and what each connected sidecar costs the operator in memory; then the shared
//! knowledge: with every sidecar reporting every second, how fast one sidecar's breaker opening
//! reaches the others of its namespace, and what merging the fleet's reports costs the operator
//! in CPU and memory.
//!
//! The real API server (behind the fake for core objects) and the release `plumb-operator`
//! process; `--sidecars` control streams (default 100) spread over `--namespaces` namespaces
//! (default 1), each namespace with its route, opened in this process with the real protocol:
//! each stream its own TLS connection, a token each, Hello, an Ack for every snapshot, and the
//! sidecar's keep-alive. Each round changes one namespace's route with a PUT and times, per
//! sidecar of that namespace, from just before the PUT to the arrival of the snapshot that
//! carries the new generation. `PROPAGATION_LOG=plumb_operator=info` shows the operator's log
//! with each round's PUT time.
//!
//! ```text
//! propagation [--sidecars 100] [--namespaces 1] [--rounds 30] [--connect-at-once 64]
//! ```
//!
//! Every open stream takes a file descriptor here and one in the operator: run with
//! `ulimit -n` above `--sidecars` (the make targets raise it to the hard limit).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use parking_lot::Mutex;
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_testenv::{ApiServer, FakeCore};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

/// The propagation benchmark.
#[derive(Parser, Debug)]
struct Args {
    /// Sidecar control streams, each its own TLS connection.
    #[arg(long, default_value_t = 100)]
    sidecars: usize,
    /// Namespaces the sidecars are spread over (round-robin), each with its route.
    #[arg(long, default_value_t = 1)]
    namespaces: usize,
    /// Route changes, and breaker openings, timed.
    #[arg(long, default_value_t = 30)]
    rounds: usize,
    /// Streams being opened at once (TLS handshake, TokenReview, Hello, first snapshot).
    #[arg(long, default_value_t = 64)]
    connect_at_once: usize,
}

/// The route every namespace has: three targets the sidecars report on, shadow sampling so
/// equivalence samples are admitted, and `down`, whose breaker the knowledge rounds open.
fn route(namespace: &str, models: &Value, rv: Option<&Value>) -> Value {
    let target = |name: &str, model: &str, priority: u32| {
        json!({"name": name, "provider": "openai", "baseUrl": "https://llm.example/v1",
            "model": model, "credentials": {"none": true}, "priority": priority})
    };
    let mut r = json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute",
        "metadata": {"name": "chat", "namespace": namespace},
        "spec": {"match": {"models": models},
            "targets": [target("gpt", "gpt", 0), target("claude", "claude", 1),
                target("mini", "mini", 2), target("down", "down", 3)],
            "equivalence": {"mode": "observe", "shadow": {"rate": 0.05}}}});
    if let Some(rv) = rv {
        r["metadata"]["resourceVersion"] = rv.clone();
    }
    r
}

fn routes_url(fake: &FakeCore, namespace: &str) -> String {
    format!(
        "{}/apis/plumb.dev/v1alpha1/namespaces/{namespace}/llmroutes",
        fake.url
    )
}

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

/// A process's CPU time so far (user + system), from `/proc`.
fn cpu_time(pid: &str) -> Duration {
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

/// The CPU a process used over `span`, as a share of one core.
async fn cpu_share(pid: &str, span: Duration) -> f64 {
    let (cpu0, wall0) = (cpu_time(pid), Instant::now());
    tokio::time::sleep(span).await;
    (cpu_time(pid) - cpu0).as_secs_f64() / wall0.elapsed().as_secs_f64()
}

/// Reconciles so far, from the operator's metrics.
async fn reconciles(client: &reqwest::Client, admin: &str) -> f64 {
    let text = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("plumb_operator_reconciles_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What one simulated sidecar has received.
#[derive(Default)]
struct Probe {
    /// The generation of the route it last received, and when.
    route: Mutex<(i64, Option<Instant>)>,
    /// The `down` upstream as the fleet's knowledge last said.
    down: Mutex<Down>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Down {
    open: bool,
    /// How many times it was heard to open.
    opens: usize,
    /// When it was last heard to open.
    at: Option<Instant>,
}

/// One simulated sidecar: where its messages go, and what it received.
struct Sidecar {
    namespace: usize,
    tx: mpsc::Sender<v1::SidecarMessage>,
    probe: Arc<Probe>,
}

/// The upstreams of the route's targets, as the operator keys them.
struct Upstreams {
    gpt: v1::Upstream,
    claude: v1::Upstream,
    mini: v1::Upstream,
    down: v1::Upstream,
}

impl Upstreams {
    fn of(route: &Value) -> Upstreams {
        let set = plumb_policy::parse_routes_file(&route.to_string()).unwrap();
        let r = &set.routes()[0];
        let of = |name: &str| {
            let t = r.all_targets().find(|t| t.name == name).unwrap();
            plumb_knowledge::upstream_to_proto(&t.upstream)
        };
        Upstreams {
            gpt: of("gpt"),
            claude: of("claude"),
            mini: of("mini"),
            down: of("down"),
        }
    }
}

/// What a busy sidecar reports each second: three targets with outcomes and latency, and a
/// few equivalence samples.
fn steady_report(seq: u64, u: &Upstreams) -> v1::Report {
    let mut latency = plumb_knowledge::Sketch::new();
    for i in 0..50u64 {
        latency.add(Duration::from_millis(200 + (i * 37 + seq) % 800));
    }
    let targets = [("gpt", &u.gpt), ("claude", &u.claude), ("mini", &u.mini)]
        .iter()
        .enumerate()
        .map(|(i, (name, upstream))| v1::TargetReport {
            route: "chat".into(),
            target: (*name).into(),
            upstream: Some((*upstream).clone()),
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
            primary: Some(u.gpt.clone()),
            candidate: Some(u.claude.clone()),
            agreements: 2,
            samples: 2,
        }],
        urgent: false,
    }
}

/// `down`'s breaker at one sidecar: open (with failures), or closed again by a probe.
fn down_report(seq: u64, u: &Upstreams, open: bool) -> v1::Report {
    let mut t = v1::TargetReport {
        route: "chat".into(),
        target: "down".into(),
        upstream: Some(u.down.clone()),
        cooldown_ms: 10_000,
        ..v1::TargetReport::default()
    };
    if open {
        t.breaker = v1::BreakerState::Open as i32;
        t.outcomes = [("server_error".to_owned(), 5u64)].into_iter().collect();
    } else {
        t.breaker = v1::BreakerState::Closed as i32;
        t.probes_ok = 1;
        t.outcomes = [("ok".to_owned(), 1u64)].into_iter().collect();
    }
    v1::Report {
        sequence: seq,
        targets: vec![t],
        equivalence: Vec::new(),
        urgent: true,
    }
}

/// Opens sidecar `i`'s control stream on its own connection and answers the operator as a
/// sidecar does, recording what arrives in `probe`.
async fn sidecar(
    i: usize,
    namespace: String,
    endpoint: Endpoint,
    probe: Arc<Probe>,
    down_model: String,
) -> mpsc::Sender<v1::SidecarMessage> {
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) => {
                eprintln!("sidecar {i}: cannot connect ({e}); again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut grpc = v1::policy_service_client::PolicyServiceClient::new(channel);
    let (tx, rx) = mpsc::channel(8);
    tx.send(v1::SidecarMessage {
        kind: Some(sidecar_message::Kind::Hello(v1::Hello {
            namespace,
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
    let answers = tx.clone();
    tokio::spawn(async move {
        while let Ok(Some(m)) = inbound.message().await {
            match m.kind {
                Some(operator_message::Kind::Snapshot(snap)) => {
                    let at = Instant::now();
                    if let Some(r) = snap.routes.first() {
                        *probe.route.lock() = (r.generation, Some(at));
                    }
                    let _ = answers
                        .send(v1::SidecarMessage {
                            kind: Some(sidecar_message::Kind::Ack(v1::Ack {
                                version: snap.version,
                                rejected: vec![],
                            })),
                        })
                        .await;
                }
                Some(operator_message::Kind::Heartbeat(hb)) => {
                    let _ = answers
                        .send(v1::SidecarMessage {
                            kind: Some(sidecar_message::Kind::Heartbeat(hb)),
                        })
                        .await;
                }
                Some(operator_message::Kind::Knowledge(k)) => {
                    let at = Instant::now();
                    let open = k.upstreams.iter().any(|d| {
                        d.open && d.upstream.as_ref().is_some_and(|u| u.model == down_model)
                    });
                    let mut d = probe.down.lock();
                    if open && !d.open {
                        d.opens += 1;
                        d.at = Some(at);
                    }
                    d.open = open;
                }
                _ => {}
            }
        }
    });
    tx
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    assert!(
        args.sidecars >= 2 * args.namespaces && args.namespaces >= 1,
        "at least two sidecars per namespace"
    );
    let (n, namespaces, rounds) = (args.sidecars, args.namespaces, args.rounds);
    let ns_name = |j: usize| {
        if namespaces == 1 {
            "bench".to_owned()
        } else {
            format!("bench-{j}")
        }
    };
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
    for i in 0..n {
        fake.add_token(
            &format!("tok-{i}"),
            &ns_name(i % namespaces),
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
    // PROPAGATION_WRAP runs the operator under a tool (`heaptrack`, say: what each connection
    // holds, BENCHMARKS.md). The memory figures are then the tool's process's, and at the end
    // the harness stops the tool's process, not the operator under it: stop that one by its id.
    let wrap = std::env::var("PROPAGATION_WRAP")
        .ok()
        .filter(|w| !w.is_empty());
    let mut operator = match &wrap {
        Some(w) => {
            let mut c = Command::new(w);
            c.arg(&bin);
            c
        }
        None => Command::new(&bin),
    };
    let mut operator = operator
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
    let mut out = BufReader::new(operator.stdout.take().unwrap());
    // The operator's first line says where it listens (a wrapping tool may speak first).
    while !line.starts_with("plumb-operator policy") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the operator ended");
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let policy_url = words[2].to_owned();
    let admin_url = words[4].to_owned();
    let pid = operator.id();
    let pid_s = pid.to_string();

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let first = route(&ns_name(0), &json!(["chat"]), None);
    let upstreams = Arc::new(Upstreams::of(&first));
    for j in 0..namespaces {
        let created = client
            .post(routes_url(&fake, &ns_name(j)))
            .json(&route(&ns_name(j), &json!(["chat"]), None))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = rss_kib(pid);

    // Connect: each sidecar its own TLS connection (and HTTP/2 connection), as in a cluster.
    let pem = std::fs::read(&ca).unwrap();
    let endpoint = Endpoint::from_shared(policy_url.clone())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(10));
    let at_once = Arc::new(tokio::sync::Semaphore::new(args.connect_at_once.max(1)));
    let (cpu_connect0, connect0) = (cpu_time(&pid_s), Instant::now());
    let opening: Vec<_> = (0..n)
        .map(|i| {
            let probe = Arc::new(Probe::default());
            let (endpoint, at_once) = (endpoint.clone(), at_once.clone());
            let (namespace, down) = (ns_name(i % namespaces), upstreams.down.model.clone());
            let p = probe.clone();
            let task = tokio::spawn(async move {
                let _permit = at_once.acquire_owned().await.unwrap();
                let tx = sidecar(i, namespace, endpoint, p.clone(), down).await;
                // Held until the first snapshot arrived: the stream is fully open.
                while p.route.lock().0 < 1 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                tx
            });
            (probe, task)
        })
        .collect();
    let mut sidecars = Vec::with_capacity(n);
    for (i, (probe, task)) in opening.into_iter().enumerate() {
        let tx = tokio::time::timeout(Duration::from_secs(600), task)
            .await
            .expect("sidecars did not all connect in 10 minutes")
            .unwrap();
        sidecars.push(Sidecar {
            namespace: i % namespaces,
            tx,
            probe,
        });
    }
    let connect_s = connect0.elapsed().as_secs_f64();
    let connect_cpu = (cpu_time(&pid_s) - cpu_connect0).as_secs_f64();
    // Let the acknowledgements' reconciles and status writes settle.
    tokio::time::sleep(Duration::from_secs(if n > 1000 { 5 } else { 1 })).await;
    let rss_connected = rss_kib(pid);
    let members: Vec<Vec<usize>> = (0..namespaces)
        .map(|j| (0..n).filter(|i| sidecars[*i].namespace == j).collect())
        .collect();

    // Route changes, one namespace a round.
    let reconciles_before = reconciles(&client, &admin_url).await;
    let mut samples: Vec<f64> = Vec::new();
    let mut last_of_round: Vec<f64> = Vec::new();
    for round in 0..rounds {
        let j = round % namespaces;
        let url = format!("{}/chat", routes_url(&fake, &ns_name(j)));
        let cur: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        let g = cur["metadata"]["generation"].as_i64().unwrap() + 1;
        let models = json!(["chat", format!("chat-{round}")]);
        let t0 = Instant::now();
        if std::env::var("PROPAGATION_LOG").is_ok() {
            eprintln!("round {round} PUT at {:?}", std::time::SystemTime::now());
        }
        let r = client
            .put(&url)
            .json(&route(
                &ns_name(j),
                &models,
                Some(&cur["metadata"]["resourceVersion"]),
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let arrived = || {
            members[j]
                .iter()
                .all(|i| sidecars[*i].probe.route.lock().0 >= g)
        };
        while !arrived() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round} did not propagate"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let mut round_max: f64 = 0.0;
        for i in &members[j] {
            let (_, at) = *sidecars[*i].probe.route.lock();
            let ms = at.unwrap().duration_since(t0).as_secs_f64() * 1000.0;
            round_max = round_max.max(ms);
            samples.push(ms);
        }
        last_of_round.push(round_max);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    samples.sort_by(f64::total_cmp);
    last_of_round.sort_by(f64::total_cmp);
    // The acknowledgements' reconciles settle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let reconciles_rounds = reconciles(&client, &admin_url).await - reconciles_before;

    // The shared knowledge. The baseline: the same connected sidecars, silent.
    let cpu_silent = cpu_share(&pid_s, Duration::from_secs(5)).await;
    let rss_before_reports = rss_kib(pid);
    // Every sidecar reports every second, as a busy one does, spread over the second as
    // independent pods are. A few reports, built once: building is not what is measured.
    let steady: Arc<Vec<v1::Report>> =
        Arc::new((0..16).map(|s| steady_report(s, &upstreams)).collect());
    let reporters: Vec<_> = sidecars
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (tx, steady) = (s.tx.clone(), steady.clone());
            let offset = Duration::from_micros((i as u64 * 1_000_000) / n as u64);
            tokio::spawn(async move {
                tokio::time::sleep(offset).await;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                for seq in 1u64.. {
                    tick.tick().await;
                    let mut report = steady[(seq % 16) as usize].clone();
                    report.sequence = seq;
                    let msg = v1::SidecarMessage {
                        kind: Some(sidecar_message::Kind::Report(report)),
                    };
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (cpu_harness0, wall_harness0) = (cpu_time("self"), Instant::now());
    let cpu_reporting = cpu_share(&pid_s, Duration::from_secs(10)).await;
    let cpu_harness =
        (cpu_time("self") - cpu_harness0).as_secs_f64() / wall_harness0.elapsed().as_secs_f64();
    let rss_reporting = rss_kib(pid);

    // Rounds: one sidecar's breaker opens on `down`; every other of its namespace hears of it;
    // then its probe closes it again.
    let mut heard_ms: Vec<f64> = Vec::new();
    let mut last_heard: Vec<f64> = Vec::new();
    for round in 0..rounds {
        let j = round % namespaces;
        let reporter = members[j][(round / namespaces) % members[j].len()];
        let others: Vec<usize> = members[j]
            .iter()
            .copied()
            .filter(|i| *i != reporter)
            .collect();
        let before: Vec<usize> = others
            .iter()
            .map(|i| sidecars[*i].probe.down.lock().opens)
            .collect();
        let seq = 1_000_000 + 2 * round as u64;
        let t0 = Instant::now();
        sidecars[reporter]
            .tx
            .send(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Report(down_report(
                    seq, &upstreams, true,
                ))),
            })
            .await
            .unwrap();
        let heard = || {
            others
                .iter()
                .zip(&before)
                .all(|(i, b)| sidecars[*i].probe.down.lock().opens > *b)
        };
        while !heard() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "round {round}: namespace {j} did not hear of the opening"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut round_max: f64 = 0.0;
        for i in &others {
            let at = sidecars[*i].probe.down.lock().at.unwrap();
            let ms = at.duration_since(t0).as_secs_f64() * 1000.0;
            round_max = round_max.max(ms);
            heard_ms.push(ms);
        }
        last_heard.push(round_max);
        // The probe succeeds: closed again, everywhere, before the next round.
        sidecars[reporter]
            .tx
            .send(v1::SidecarMessage {
                kind: Some(sidecar_message::Kind::Report(down_report(
                    seq + 1,
                    &upstreams,
                    false,
                ))),
            })
            .await
            .unwrap();
        let t1 = Instant::now();
        while others.iter().any(|i| sidecars[*i].probe.down.lock().open) {
            assert!(
                t1.elapsed() < Duration::from_secs(60),
                "round {round}: namespace {j} did not hear of the closing"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in reporters {
        r.abort();
    }
    heard_ms.sort_by(f64::total_cmp);
    last_heard.sort_by(f64::total_cmp);
    let per_ns = n / namespaces;
    let per_sidecar_kib = rss_connected.saturating_sub(rss_before) as f64 / n as f64;
    println!(
        "{n} sidecars over {namespaces} namespace(s) ({per_ns} each), {rounds} rounds; connected in {connect_s:.1} s (operator CPU {connect_cpu:.1} s)\n"
    );
    println!("| measure | result |");
    println!("| --- | --- |");
    println!(
        "| route change → snapshot at each sidecar of the namespace ({per_ns}), {rounds} changes | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
    println!(
        "| route change → the last of the namespace's {per_ns} has it | p50 {:.1} ms, p99 {:.1} ms |",
        percentile(&last_of_round, 0.5),
        percentile(&last_of_round, 0.99)
    );
    println!(
        "| reconciles for the {rounds} changes and their acknowledgements | {reconciles_rounds:.0} ({:.1} a change) |",
        reconciles_rounds / rounds as f64
    );
    println!(
        "| operator RSS | {:.1} MB with no sidecar, {:.1} MB with {n}: **{per_sidecar_kib:.1} KiB per connected sidecar** |",
        rss_before as f64 / 1024.0,
        rss_connected as f64 / 1024.0
    );
    println!(
        "| breaker opening at one sidecar → knowledge at each of the other {}, all {n} reporting every second, {rounds} openings | p50 **{:.1} ms**, p99 **{:.1} ms**, max {:.1} ms |",
        per_ns - 1,
        percentile(&heard_ms, 0.5),
        percentile(&heard_ms, 0.99),
        percentile(&heard_ms, 1.0)
    );
    println!(
        "| breaker opening → the last of the other {} has it | p50 {:.1} ms, p99 {:.1} ms |",
        per_ns - 1,
        percentile(&last_heard, 0.5),
        percentile(&last_heard, 0.99)
    );
    println!(
        "| operator CPU merging {n} reports a second (3 targets, latency sketch, equivalence samples each) and pushing the knowledge back | **{:.1}% of one core** (the same sidecars silent: {:.1}%; this harness meanwhile: {:.1}%) |",
        cpu_reporting * 100.0,
        cpu_silent * 100.0,
        cpu_harness * 100.0
    );
    println!(
        "| operator RSS with {n} sidecars reporting | {:.1} MB ({:+.1} MB against connected and silent) |",
        rss_reporting as f64 / 1024.0,
        (rss_reporting as f64 - rss_before_reports as f64) / 1024.0
    );
    let _ = operator.kill();
    let _ = operator.wait();
}
