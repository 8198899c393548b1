//! The policy server in process, over plain TCP on loopback, with tokens vouched for by a test
//! double instead of TokenReviews: how a control stream starts, lives and ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plumb_operator::auth::{Authenticate, Identity, Rejected};
use plumb_operator::grpc::PolicyServer;
use plumb_operator::grpc::token::Pace;
use plumb_operator::knowledge::Knowledge;
use plumb_operator::policies::Policies;
use plumb_proto::v1::policy_service_client::PolicyServiceClient;
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_telemetry::operator::OperatorMetrics;
use tokio::sync::{mpsc, watch};
use tonic::{Code, Status, Streaming};

/// Tokens and what a TokenReview says of each now.
#[derive(Default)]
struct Tokens(Mutex<HashMap<String, Result<Identity, Rejected>>>);

#[tonic::async_trait]
impl Authenticate for Tokens {
    async fn review(&self, token: &str) -> Result<Identity, Rejected> {
        self.0
            .lock()
            .get(token)
            .cloned()
            .unwrap_or_else(|| Err(Rejected::Refused("invalid bearer token".to_owned())))
    }
}

struct Harness {
    url: String,
    tokens: Arc<Tokens>,
    leading: watch::Sender<bool>,
    policies: Arc<Policies>,
    metrics: Arc<OperatorMetrics>,
    _acks: mpsc::Receiver<String>,
}

async fn start() -> Harness {
    let tokens = Arc::new(Tokens::default());
    let (leading, leading_rx) = watch::channel(true);
    let (acks_tx, acks) = mpsc::channel(1024);
    let metrics = Arc::new(OperatorMetrics::new());
    let policies = Arc::new(Policies::new(1));
    let server = PolicyServer {
        leading: leading_rx,
        policies: policies.clone(),
        knowledge: Arc::new(Knowledge::new(
            plumb_knowledge::Settings::default(),
            Duration::from_millis(100),
            metrics.clone(),
        )),
        auth: tokens.clone(),
        heartbeat: Duration::from_secs(1),
        // Checked often, so tests see a deleted pod quickly.
        token_pace: Pace {
            recheck: Duration::from_millis(300),
            retry: Duration::from_millis(300),
            min_ask_gap: Duration::from_millis(200),
            jitter: 0.2,
        },
        acks: acks_tx,
        metrics: metrics.clone(),
        encodings: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(plumb_operator::grpc::service(server))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    Harness {
        url,
        tokens,
        leading,
        policies,
        metrics,
        _acks: acks,
    }
}

impl Harness {
    /// Vouches for `token` as pod `pod` of `namespace`, without an expiry.
    fn token(&self, token: &str, namespace: &str, pod: &str) {
        self.token_until(token, namespace, pod, None);
    }

    /// Vouches for `token`, expiring `expires_in` from now.
    fn token_until(&self, token: &str, namespace: &str, pod: &str, expires_in: Option<Duration>) {
        let expires_unix_ms = expires_in
            .map(|d| plumb_telemetry::clock::unix_ms_now() + i64::try_from(d.as_millis()).unwrap());
        self.review_says(
            token,
            Ok(Identity {
                namespace: namespace.to_owned(),
                service_account: "web".to_owned(),
                pod: pod.to_owned(),
                expires_unix_ms,
            }),
        );
    }

    /// What a TokenReview of `token` answers from now on.
    fn review_says(&self, token: &str, verdict: Result<Identity, Rejected>) {
        self.tokens.0.lock().insert(token.to_owned(), verdict);
    }

    /// Opens a control stream as a sidecar of `namespace` with `token`: the sender of its
    /// messages (Hello already sent) and what the operator sends.
    async fn open(
        &self,
        token: &str,
        namespace: &str,
    ) -> Result<
        (
            mpsc::Sender<v1::SidecarMessage>,
            Streaming<v1::OperatorMessage>,
        ),
        Status,
    > {
        // As the sidecar must: accept snapshots up to the operator's documented limit.
        let mut client = PolicyServiceClient::connect(self.url.clone())
            .await
            .unwrap()
            .max_decoding_message_size(plumb_proto::MAX_OPERATOR_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel(16);
        tx.send(v1::SidecarMessage {
            kind: Some(sidecar_message::Kind::Hello(v1::Hello {
                namespace: namespace.to_owned(),
                pod: "claimed".to_owned(),
                sidecar_version: "test".to_owned(),
                serving_version: String::new(),
            })),
        })
        .await
        .unwrap();
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let inbound = client.control(req).await?.into_inner();
        Ok((tx, inbound))
    }

    async fn metrics_text(&self) -> String {
        self.metrics.encode_for(None).0
    }
}

/// Reads until the operator ends the stream; returns its closing status and the messages
/// before it. Panics if it does not end within `within`.
async fn until_closed(
    inbound: &mut Streaming<v1::OperatorMessage>,
    within: Duration,
) -> (Status, Vec<v1::OperatorMessage>) {
    let mut seen = Vec::new();
    let end = tokio::time::timeout(within, async {
        loop {
            match inbound.message().await {
                Ok(Some(m)) => seen.push(m),
                Ok(None) => return Status::ok("closed without a status"),
                Err(s) => return s,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream was still open after {within:?}; saw {seen:?}"));
    (end, seen)
}

/// The next snapshot on the stream.
async fn snapshot(inbound: &mut Streaming<v1::OperatorMessage>) -> v1::Snapshot {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), inbound.message())
            .await
            .expect("a snapshot within 10 s")
            .unwrap()
            .unwrap();
        if let Some(operator_message::Kind::Snapshot(s)) = m.kind {
            return s;
        }
    }
}

#[tokio::test]
async fn a_replica_that_stops_leading_closes_its_streams_and_refuses_new_ones() {
    let h = start().await;
    h.token("tok-a", "team-a", "web-1");
    let (_tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    snapshot(&mut inbound).await;
    h.leading.send_replace(false);
    let (status, _) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("stopped leading"), "{status:?}");
    let refused = h.open("tok-a", "team-a").await.err().unwrap();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(
        h.metrics_text()
            .await
            .contains(r#"plumb_operator_refused_streams_total{reason="not_leader"} 1"#)
    );
}

fn kind(m: &v1::OperatorMessage) -> &'static str {
    match &m.kind {
        Some(operator_message::Kind::Snapshot(_)) => "snapshot",
        Some(operator_message::Kind::Heartbeat(_)) => "heartbeat",
        Some(operator_message::Kind::Refusal(_)) => "refusal",
        Some(operator_message::Kind::Knowledge(_)) => "knowledge",
        Some(operator_message::Kind::TokenRequest(_)) => "token_request",
        None => "none",
    }
}

fn token_message(token: &str) -> v1::SidecarMessage {
    v1::SidecarMessage {
        kind: Some(sidecar_message::Kind::Token(v1::Token {
            token: token.to_owned(),
        })),
    }
}

#[tokio::test]
async fn a_stream_is_closed_when_its_token_expires_and_no_fresh_one_comes() {
    let h = start().await;
    let started = tokio::time::Instant::now();
    h.token_until(
        "tok-a",
        "team-a",
        "web-1",
        Some(Duration::from_millis(1500)),
    );
    let (_tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    let (status, seen) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    let lived = started.elapsed();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("expired"), "{status:?}");
    assert!(
        lived >= Duration::from_millis(1400),
        "closed after {lived:?}"
    );
    let kinds: Vec<&str> = seen.iter().map(kind).collect();
    assert!(kinds.contains(&"token_request"), "asked first: {kinds:?}");
    assert_eq!(kinds.last(), Some(&"refusal"), "{kinds:?}");
    assert!(
        h.metrics_text()
            .await
            .contains(r#"plumb_operator_closed_streams_total{reason="token_expired"} 1"#)
    );
}

#[tokio::test]
async fn a_sidecar_that_answers_with_a_fresh_token_keeps_its_stream_and_its_updates() {
    let h = start().await;
    h.token_until(
        "tok-a",
        "team-a",
        "web-1",
        Some(Duration::from_millis(1500)),
    );
    h.token_until("tok-a-2", "team-a", "web-1", Some(Duration::from_secs(60)));
    let (tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    let mut answered = 0;
    // Well past the first token's expiry, answering every question with the fresh token.
    let until = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(m) = tokio::time::timeout_at(until, inbound.message()).await {
        let m = m.unwrap().unwrap_or_else(|| panic!("the stream ended"));
        match kind(&m) {
            "token_request" => {
                tx.send(token_message("tok-a-2")).await.unwrap();
                answered += 1;
            }
            "refusal" => panic!("refused: {m:?}"),
            _ => {}
        }
    }
    assert!(answered >= 1);
    // Still open, still served.
    h.policies
        .serve(
            "team-a",
            "chat",
            1,
            "{}".into(),
            std::collections::BTreeMap::new(),
        )
        .unwrap();
    loop {
        let snap = snapshot(&mut inbound).await;
        if snap.routes.iter().any(|r| r.name == "chat") {
            break;
        }
    }
}

#[tokio::test]
async fn a_stream_whose_pod_is_gone_is_closed_at_the_next_check_and_gets_no_more_keys() {
    let h = start().await;
    h.token_until("tok-a", "team-a", "web-1", Some(Duration::from_secs(3600)));
    let (_tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    snapshot(&mut inbound).await;
    // The pod is deleted: the API server no longer accepts its bound token.
    h.review_says(
        "tok-a",
        Err(Rejected::Refused("pod \"web-1\" not found".to_owned())),
    );
    let (status, seen) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status.message().contains("pod \"web-1\" not found"),
        "{status:?}"
    );
    assert_eq!(seen.last().map(kind), Some("refusal"));
    // A key rotated afterwards has nowhere to go.
    h.policies
        .serve(
            "team-a",
            "chat",
            1,
            "{}".into(),
            std::collections::BTreeMap::from([(
                ("llm-keys".into(), "openai".into()),
                b"rotated".to_vec(),
            )]),
        )
        .unwrap();
    assert!(matches!(inbound.message().await, Ok(None) | Err(_)));
    assert!(
        h.metrics_text()
            .await
            .contains(r#"plumb_operator_closed_streams_total{reason="token_refused"} 1"#)
    );
}

#[tokio::test]
async fn a_fresh_token_of_another_pod_closes_the_stream() {
    let h = start().await;
    h.token("tok-a", "team-a", "web-1");
    h.token("tok-b", "team-a", "web-2");
    let (tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    snapshot(&mut inbound).await;
    tx.send(token_message("tok-b")).await.unwrap();
    let (status, _) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("\"web-2\""), "{status:?}");
}

#[tokio::test]
async fn a_check_the_api_server_cannot_answer_keeps_the_stream_until_the_token_expires() {
    let h = start().await;
    h.token_until(
        "tok-a",
        "team-a",
        "web-1",
        Some(Duration::from_millis(2500)),
    );
    let (_tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    let opened = tokio::time::Instant::now();
    h.review_says(
        "tok-a",
        Err(Rejected::Unchecked("connection refused".to_owned())),
    );
    let (status, _) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    assert!(
        opened.elapsed() >= Duration::from_millis(2000),
        "not closed for an unanswered check: {:?}",
        opened.elapsed()
    );
    assert!(status.message().contains("expired"), "{status:?}");
}

#[tokio::test]
async fn a_token_not_bound_to_a_pod_is_refused_with_what_to_present_instead() {
    let h = start().await;
    h.review_says("tok-unbound", Err(Rejected::NotBoundToPod));
    let refused = h.open("tok-unbound", "team-a").await.err().unwrap();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(
        refused.message().contains("not bound to a pod")
            && refused.message().contains("projected ServiceAccount token"),
        "{refused:?}"
    );
    assert!(
        h.metrics_text()
            .await
            .contains(r#"plumb_operator_refused_streams_total{reason="token_not_bound"} 1"#)
    );
}

#[tokio::test]
async fn a_snapshot_over_tonics_default_four_mib_reaches_a_sidecar_whole() {
    let h = start().await;
    h.token("tok-a", "team-a", "web-1");
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(6 * 1024 * 1024));
    assert!(
        h.policies
            .serve("team-a", "chat", 1, big.clone(), Default::default())
            .unwrap()
    );
    let (_tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    let snap = snapshot(&mut inbound).await;
    assert_eq!(snap.routes.len(), 1);
    assert_eq!(snap.routes[0].spec_json.len(), big.len(), "whole, not cut");
}

#[tokio::test]
async fn a_sidecar_message_over_the_limit_closes_the_stream_saying_so() {
    let h = start().await;
    h.token("tok-a", "team-a", "web-1");
    let (tx, mut inbound) = h.open("tok-a", "team-a").await.unwrap();
    snapshot(&mut inbound).await;
    let huge = v1::SidecarMessage {
        kind: Some(sidecar_message::Kind::Report(v1::Report {
            targets: vec![v1::TargetReport {
                route: "x".repeat(5 * 1024 * 1024),
                ..v1::TargetReport::default()
            }],
            ..v1::Report::default()
        })),
    };
    tx.send(huge).await.unwrap();
    let (status, _) = until_closed(&mut inbound, Duration::from_secs(10)).await;
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("over the 4194304-byte limit"),
        "{status:?}"
    );
    assert!(
        h.metrics_text()
            .await
            .contains(r#"plumb_operator_closed_streams_total{reason="message_too_large"} 1"#)
    );
}

/// The real sidecar's control loop, in process: it answers the operator's token requests with
/// the token file's current content, so a rotated token keeps its stream open past the old
/// one's expiry.
#[tokio::test]
async fn the_sidecar_answers_token_requests_and_keeps_its_stream_past_the_first_tokens_expiry() {
    let h = start().await;
    h.token_until(
        "tok-old",
        "team-a",
        "web-1",
        Some(Duration::from_millis(1500)),
    );
    h.token_until("tok-new", "team-a", "web-1", Some(Duration::from_secs(60)));
    h.policies
        .serve(
            "team-a",
            "chat",
            1,
            "{}".into(),
            std::collections::BTreeMap::new(),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-old\n").unwrap();
    let table = Arc::new(plumb_sidecar::table::Table::new());
    let cp = plumb_sidecar::control::ControlPlane {
        url: h.url.clone(),
        token_file: token_file.clone(),
        ca_file: None,
        ca_pem: None,
        cache: None,
        namespace: "team-a".to_owned(),
        pod: "web-1".to_owned(),
        silence: Duration::from_secs(30),
        report_interval: Duration::from_secs(1),
    };
    let sidecar = tokio::spawn(plumb_sidecar::control::run(
        cp,
        table.clone(),
        Arc::new(plumb_telemetry::Metrics::new()),
    ));
    let started = tokio::time::Instant::now();
    while table.current().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no policy arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The kubelet rotates the token; the old one expires while the stream is open.
    std::fs::write(&token_file, "tok-new\n").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = table
        .current()
        .map(|p| p.version.clone())
        .unwrap_or_default();
    h.policies
        .serve(
            "team-a",
            "chat",
            2,
            "{}".into(),
            std::collections::BTreeMap::new(),
        )
        .unwrap();
    let started = tokio::time::Instant::now();
    while table
        .current()
        .map(|p| p.version.clone())
        .unwrap_or_default()
        == before
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the update never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let m = h.metrics_text().await;
    assert!(
        !m.contains("plumb_operator_closed_streams_total{"),
        "the operator closed no stream: {m}"
    );
    sidecar.abort();
}
