//! The policy server in process, over plain TCP on loopback, with tokens vouched for by a test
//! double instead of TokenReviews: how a control stream starts, lives and ends.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use plumb_operator::auth::{Authenticate, Identity};
use plumb_operator::grpc::PolicyServer;
use plumb_operator::knowledge::Knowledge;
use plumb_operator::policies::Policies;
use plumb_proto::v1::policy_service_client::PolicyServiceClient;
use plumb_proto::v1::policy_service_server::PolicyServiceServer;
use plumb_proto::v1::{self, operator_message, sidecar_message};
use plumb_telemetry::operator::OperatorMetrics;
use tokio::sync::{mpsc, watch};
use tonic::{Code, Status, Streaming};

/// Tokens and who they belong to.
#[derive(Default)]
struct Tokens(Mutex<HashMap<String, Identity>>);

#[tonic::async_trait]
impl Authenticate for Tokens {
    async fn review(&self, token: &str) -> Result<Identity, String> {
        self.0
            .lock()
            .get(token)
            .cloned()
            .ok_or_else(|| "invalid bearer token".to_owned())
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
        acks: acks_tx,
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PolicyServiceServer::new(server))
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
    fn token(&self, token: &str, namespace: &str, pod: &str) {
        self.tokens.0.lock().insert(
            token.to_owned(),
            Identity {
                namespace: namespace.to_owned(),
                service_account: "web".to_owned(),
                pod: Some(pod.to_owned()),
            },
        );
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
        let mut client = PolicyServiceClient::connect(self.url.clone())
            .await
            .unwrap();
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
    let _ = &h.policies;
}
