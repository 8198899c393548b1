//! Token rechecks spread out: streams that connected at the same instant do not all ask for
//! their TokenReview at the same instant a minute later, and every stream is still rechecked
//! within the longest wait the jitter allows. The policy server runs in process over in-memory
//! connections, under paused time, with tokens vouched for by a test double that notes when
//! each review was asked for.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use plumb_operator::auth::{Authenticate, Identity, Rejected};
use plumb_operator::grpc::PolicyServer;
use plumb_operator::grpc::token::Pace;
use plumb_operator::knowledge::Knowledge;
use plumb_operator::policies::Policies;
use plumb_proto::v1::policy_service_client::PolicyServiceClient;
use plumb_proto::v1::{self, sidecar_message};
use plumb_telemetry::operator::OperatorMetrics;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::{Endpoint, Uri};

/// Every token `tok-N` is pod `web-N` of `team-a`; each review is noted with its instant.
#[derive(Default)]
struct Reviews(Mutex<Vec<(String, Instant)>>);

#[tonic::async_trait]
impl Authenticate for Reviews {
    async fn review(&self, token: &str) -> Result<Identity, Rejected> {
        self.0.lock().push((token.to_owned(), Instant::now()));
        let n = token
            .strip_prefix("tok-")
            .ok_or_else(|| Rejected::Refused("unknown token".to_owned()))?;
        Ok(Identity {
            namespace: "team-a".to_owned(),
            service_account: "web".to_owned(),
            pod: format!("web-{n}"),
            expires_unix_ms: None,
        })
    }
}

const STREAMS: usize = 64;

#[tokio::test(start_paused = true)]
async fn streams_that_connect_together_recheck_their_tokens_spread_out_and_each_within_its_bound() {
    let pace = Pace {
        recheck: Duration::from_secs(60),
        retry: Duration::from_secs(10),
        min_ask_gap: Duration::from_secs(5),
        jitter: 0.2,
    };
    let reviews = Arc::new(Reviews::default());
    let (_leading, leading_rx) = watch::channel(true);
    let (acks_tx, _acks) = mpsc::channel(4096);
    let metrics = Arc::new(OperatorMetrics::new());
    let server = PolicyServer {
        leading: leading_rx,
        policies: Arc::new(Policies::new(1)),
        knowledge: Arc::new(Knowledge::new(
            plumb_knowledge::Settings::default(),
            Duration::from_secs(1),
            metrics.clone(),
        )),
        auth: reviews.clone(),
        // No heartbeat within the test: only the tokens' schedule wakes the streams.
        heartbeat: Duration::from_secs(3600),
        token_pace: pace,
        acks: acks_tx,
        metrics,
        encodings: Default::default(),
    };
    // In-memory connections: nothing but the streams' timers moves paused time on.
    let (conns_tx, conns_rx) = mpsc::unbounded_channel::<Result<_, std::io::Error>>();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(plumb_operator::grpc::service(server))
            .serve_with_incoming(tokio_stream::wrappers::UnboundedReceiverStream::new(
                conns_rx,
            )),
    );
    let channel = Endpoint::from_static("http://in-memory")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let sent = conns_tx.send(Ok(server));
            async move {
                sent.map_err(|_| std::io::Error::other("server gone"))?;
                Ok::<_, std::io::Error>(TokioIo::new(client))
            }
        }))
        .await
        .unwrap();

    let t0 = Instant::now();
    let mut held = Vec::new();
    for i in 0..STREAMS {
        let mut client = PolicyServiceClient::new(channel.clone());
        let (tx, rx) = mpsc::channel(4);
        tx.send(v1::SidecarMessage {
            kind: Some(sidecar_message::Kind::Hello(v1::Hello {
                namespace: "team-a".to_owned(),
                pod: format!("web-{i}"),
                sidecar_version: "test".to_owned(),
                serving_version: String::new(),
            })),
        })
        .await
        .unwrap();
        let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        req.metadata_mut()
            .insert("authorization", format!("Bearer tok-{i}").parse().unwrap());
        let mut inbound = client.control(req).await.unwrap().into_inner();
        // Read whatever the operator sends, so no stream waits on its sidecar.
        tokio::spawn(async move { while let Ok(Some(_)) = inbound.message().await {} });
        held.push(tx);
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "all connected at one instant");

    // Three and a half intervals: at least two rechecks of every stream, even at +20%.
    tokio::time::sleep(pace.recheck * 7 / 2).await;
    let mut by_token: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for (token, at) in reviews.0.lock().iter() {
        by_token.entry(token.clone()).or_default().push(*at - t0);
    }
    assert_eq!(by_token.len(), STREAMS, "every stream reviewed");
    let longest = pace.longest_recheck();
    let shortest = pace.recheck.mul_f64(0.8);
    let mut first_rechecks = Vec::new();
    for (token, at) in &by_token {
        assert_eq!(at[0], Duration::ZERO, "{token}: reviewed when it connected");
        assert!(at.len() >= 3, "{token}: rechecked at least twice: {at:?}");
        for pair in at.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= shortest && gap <= longest,
                "{token}: rechecked {gap:?} after the last check, not within {shortest:?}..={longest:?}: {at:?}"
            );
        }
        // And nothing went unchecked for longer at the end.
        let last = at.last().copied().unwrap_or_default();
        assert!(pace.recheck * 7 / 2 - last <= longest, "{token}: {at:?}");
        first_rechecks.push(at[1]);
    }
    first_rechecks.sort();
    let spread = first_rechecks[STREAMS - 1] - first_rechecks[0];
    assert!(
        spread >= pace.recheck / 5,
        "the first rechecks spread over at least a fifth of the interval: {first_rechecks:?}"
    );
    let mut instants = first_rechecks.clone();
    instants.dedup();
    assert!(
        instants.len() >= STREAMS * 9 / 10,
        "at most a few streams share an instant: {} distinct of {STREAMS}",
        instants.len()
    );
    drop(held);
}
