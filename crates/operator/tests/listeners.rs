//! The admin and webhook listeners under clients that misbehave: connections that never finish
//! their request head or their TLS handshake are closed after the timeout, and do not keep
//! others from being served.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use plumb_operator::listener::Limits;
use plumb_operator::webhook;
use plumb_telemetry::operator::OperatorMetrics;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Timeouts short enough for a quick test and long enough that a well-behaved client on a busy
/// machine is served well within them.
const LIMITS: Limits = Limits {
    max_connections: 8,
    handshake: Duration::from_secs(3),
    header_read: Duration::from_secs(3),
    max_header_bytes: 16 * 1024,
    request: Duration::from_secs(30),
};

/// The least time before a stalled connection may be closed (the timers cannot fire early).
const AT_LEAST: Duration = Duration::from_millis(2_900);

async fn admin(limits: Limits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(plumb_operator::admin::serve(
        listener,
        Arc::new(OperatorMetrics::new()),
        Arc::new(AtomicBool::new(true)),
        limits,
    ));
    addr
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Waits until the server closes `stream`; returns how long that took from `since`, and what
/// the server sent before closing.
async fn closed_after(stream: &mut TcpStream, since: Instant) -> (Duration, String) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "still open after 10 s");
    (since.elapsed(), String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test]
async fn an_admin_client_that_never_finishes_its_headers_is_closed_after_the_timeout_and_others_are_served()
 {
    let addr = admin(LIMITS).await;
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    // Meanwhile a well-behaved client is answered at once.
    let r = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        opened.elapsed() < LIMITS.header_read,
        "served while the others stall"
    );
    for s in &mut stalled {
        let (after, sent) = closed_after(s, opened).await;
        assert!(after >= AT_LEAST, "closed after {after:?}");
        assert!(!sent.contains("200 OK"), "{sent}");
    }
    // A connection that sends nothing at all is closed too.
    let silent_at = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (after, _) = closed_after(&mut silent, silent_at).await;
    assert!(after >= AT_LEAST, "closed after {after:?}");
}

#[tokio::test]
async fn an_admin_request_head_over_the_limit_is_refused() {
    let addr = admin(LIMITS).await;
    let r = client()
        .get(format!("http://{addr}/healthz"))
        .header("x-padding", "a".repeat(32 * 1024))
        .send()
        .await;
    match r {
        Ok(r) => assert_eq!(r.status(), 431),
        // hyper may close before the client finished writing.
        Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
    }
    let ok = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_slot_and_are_served_once_one_frees() {
    let addr = admin(Limits {
        max_connections: 2,
        ..LIMITS
    })
    .await;
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /").await.unwrap();
        stalled.push(s);
    }
    // Give the server the time to take both before the third comes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let waited = opened.elapsed();
    assert!(
        waited >= AT_LEAST,
        "the third waited for a slot: {waited:?}"
    );
}

#[tokio::test]
async fn a_webhook_client_that_never_finishes_its_tls_handshake_is_closed_after_the_timeout_and_others_are_served()
 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = plumb_testenv::write_serving_pki(dir.path()).unwrap();
    let tls = webhook::server::acceptor(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inject = webhook::Inject {
        image: "plumb-sidecar:test".into(),
        pull_policy: "IfNotPresent".into(),
        control_plane: "https://plumb-policy.plumb-system.svc:15410".into(),
        control_plane_ca: String::new(),
        cpu: "50m".into(),
        memory: "64Mi".into(),
        audience: "plumb.dev/control-plane".into(),
        env: Vec::new(),
    };
    tokio::spawn(webhook::server::serve(
        listener,
        tls,
        Arc::new(inject),
        LIMITS,
    ));
    let opened = Instant::now();
    // One says nothing; one starts a ClientHello and stops.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = trusting
        .post(format!("https://127.0.0.1:{}/inject", addr.port()))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a real client is served meanwhile");
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert!(opened.elapsed() < LIMITS.handshake);
    for s in [&mut silent, &mut partial] {
        let (after, _) = closed_after(s, opened).await;
        assert!(after >= AT_LEAST, "closed after {after:?}");
    }
    // A client that finished its handshake but never its headers is closed as well.
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates({
                let mut roots = rustls::RootCertStore::empty();
                for c in rustls_pki_types::pem::PemObject::pem_file_iter(&ca).unwrap() {
                    roots.add(c.unwrap()).unwrap();
                }
                roots
            })
            .with_no_client_auth(),
    ));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    let mut tls = connector
        .connect(
            rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    tls.write_all(b"POST /inject HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "still open after 10 s");
    assert!(started.elapsed() >= AT_LEAST);
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}
