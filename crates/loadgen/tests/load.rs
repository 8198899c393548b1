//! The harness against an in-process simulator: it counts, measures and paces.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use plumb_loadgen::{LoadConfig, run};
use plumb_simulator::{SimConfig, Simulator};

fn config(url: &str, rate: Option<f64>) -> LoadConfig {
    LoadConfig {
        url: url.parse().unwrap(),
        method: http::Method::POST,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from_static(
            br#"{"model":"sim-gpt","messages":[{"role":"user","content":"hi"}]}"#,
        ),
        connections: 4,
        duration: Duration::from_millis(600),
        warmup: Duration::from_millis(100),
        rate,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_counts_every_answer_as_a_success() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let report = run(config(
        &format!("{}/v1/chat/completions", sim.base_url()),
        None,
    ))
    .await
    .unwrap();
    assert!(report.requests > 20, "{report:?}");
    assert_eq!(report.errors, 0);
    assert_eq!(report.statuses.get(&200), Some(&report.requests));
    assert!(report.latency_us.p50 > 0 && report.latency_us.p50 <= report.latency_us.p99);
    // The simulator saw at least what the harness counted (warm-up included).
    assert!(sim.attempts(None).len() as u64 >= report.requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_sends_at_most_the_asked_rate() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let report = run(config(
        &format!("{}/v1/chat/completions", sim.base_url()),
        Some(200.0),
    ))
    .await
    .unwrap();
    // 200 req/s for 0.6 s is 120 requests; never more, and most of them on a busy machine.
    assert!(report.requests <= 121, "{report:?}");
    assert!(report.requests >= 60, "{report:?}");
}

#[tokio::test]
async fn errors_and_statuses_are_counted() {
    let sim = Simulator::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap(), false)
        .await
        .unwrap();
    let mut c = config(&format!("{}/v1/chat/completions", sim.base_url()), None);
    c.headers
        .push(("x-sim-fault".into(), "server_error".into()));
    let report = run(c).await.unwrap();
    assert!(report.requests > 0);
    assert_eq!(report.errors, report.requests);
    assert_eq!(report.statuses.get(&500), Some(&report.requests));
}

#[tokio::test]
async fn nothing_listening_is_a_clear_error() {
    // Bound and never listening: refused for as long as the socket lives, and its port cannot
    // be given to another server meanwhile (a listener bound and dropped frees it).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let err = run(config(&format!("http://{addr}/"), None))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
