//! OTLP export against a receiver in the test (the OTLP protobuf services over gRPC, and the
//! HTTP/protobuf endpoint): spans and GenAI metrics arrive with their attributes; nothing is
//! exported without `OTEL_*` configuration.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use parking_lot::Mutex;

use crate::support::{
    Sidecar, chat, eventually, header, openai_text, parse_sse, read_all, refused, simulator,
    two_openai,
};

/// Spans received: name and attributes.
type Spans = Arc<Mutex<Vec<(String, Vec<KeyValue>)>>>;
/// Metrics received: name and each data point's attributes.
type MetricPoints = Arc<Mutex<Vec<(String, Vec<Vec<KeyValue>>)>>>;

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    spans: Spans,
    metrics: MetricPoints,
}

impl Receiver {
    fn take_traces(&self, req: ExportTraceServiceRequest) {
        let mut spans = self.spans.lock();
        for rs in req.resource_spans {
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((s.name, s.attributes));
                }
            }
        }
    }

    fn take_metrics(&self, req: ExportMetricsServiceRequest) {
        use opentelemetry_proto::tonic::metrics::v1::metric::Data;
        let mut out = self.metrics.lock();
        for rm in req.resource_metrics {
            for sm in rm.scope_metrics {
                for m in sm.metrics {
                    let points = match m.data {
                        Some(Data::Histogram(h)) => {
                            h.data_points.into_iter().map(|p| p.attributes).collect()
                        }
                        Some(Data::Sum(s)) => {
                            s.data_points.into_iter().map(|p| p.attributes).collect()
                        }
                        _ => Vec::new(),
                    };
                    out.push((m.name, points));
                }
            }
        }
    }

    /// Everything received, spans and metric points, as text (for the secret-leak tier).
    pub(crate) fn dump(&self) -> String {
        format!("{:?}\n{:?}", self.spans.lock(), self.metrics.lock())
    }

    fn span(&self, name: &str) -> Option<Vec<KeyValue>> {
        self.spans
            .lock()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a.clone())
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.take_traces(req.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.take_metrics(req.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            AnyValue::BoolValue(b) => Some(b.to_string()),
            AnyValue::DoubleValue(d) => Some(d.to_string()),
            _ => None,
        }
    })
}

/// Spans and GenAI metrics of a failover reach a gRPC OTLP receiver.
/// An OTLP gRPC receiver (traces and metrics) on a free port, and its endpoint.
pub(crate) async fn grpc_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = receiver.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(served.clone()))
            .add_service(MetricsServiceServer::new(served))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });
    (receiver, format!("http://{addr}"))
}

#[tokio::test]
async fn otlp_e2e_spans_and_genai_metrics_reach_a_grpc_receiver() {
    let (receiver, endpoint) = grpc_receiver().await;
    let sim = simulator().await;
    let sc = Sidecar::start_with(
        &two_openai(
            &sim,
            "sim-unavailable",
            "  classes: {overloaded: {retries: 0}}\n",
        ),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_SERVICE_NAME", "checkout-sidecar"),
        ],
    )
    .unwrap();
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    assert!(
        eventually(|| async { receiver.span("chat chat").is_some() }).await,
        "no request span arrived"
    );
    let request = receiver.span("chat chat").unwrap();
    assert_eq!(
        attr(&request, "gen_ai.operation.name").as_deref(),
        Some("chat")
    );
    assert_eq!(
        attr(&request, "plumb.served_by").as_deref(),
        Some("fallback")
    );
    assert_eq!(
        attr(&request, "plumb.failure_classes").as_deref(),
        Some("overloaded")
    );
    let attempt = receiver.span("openai sim-gpt-mini").unwrap();
    assert_eq!(
        attr(&attempt, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(
        attr(&attempt, "gen_ai.response.model").as_deref(),
        Some("sim-gpt-mini")
    );
    let failed = receiver.span("openai sim-unavailable").unwrap();
    assert_eq!(
        attr(&failed, "plumb.failure_class").as_deref(),
        Some("overloaded")
    );
    assert_eq!(attr(&failed, "plumb.plan").as_deref(), Some("failover"));

    assert!(
        eventually(|| async {
            let m = receiver.metrics.lock();
            [
                "gen_ai.client.operation.duration",
                "gen_ai.client.token.usage",
            ]
            .iter()
            .all(|n| {
                m.iter()
                    .any(|(name, points)| name == n && !points.is_empty())
            })
        })
        .await,
        "the GenAI metrics did not arrive"
    );
    let metrics = receiver.metrics.lock().clone();
    let (_, duration) = metrics
        .iter()
        .find(|(n, _)| n == "gen_ai.client.operation.duration")
        .unwrap();
    let point = &duration[0];
    assert_eq!(
        attr(point, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(attr(point, "plumb.target").as_deref(), Some("fallback"));
    assert_eq!(attr(point, "gen_ai.request.model").as_deref(), Some("chat"));
    let (_, tokens) = metrics
        .iter()
        .find(|(n, _)| n == "gen_ai.client.token.usage")
        .unwrap();
    let kinds: Vec<String> = tokens
        .iter()
        .filter_map(|p| attr(p, "gen_ai.token.type"))
        .collect();
    assert!(
        kinds.contains(&"input".into()) && kinds.contains(&"output".into()),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn otlp_e2e_streamed_answers_count_their_tokens() {
    let (receiver, endpoint) = grpc_receiver().await;
    let sim = simulator().await;
    let sc = Sidecar::start_with(
        &two_openai(&sim, "sim-gpt", ""),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    )
    .unwrap();
    // The client does not ask for usage: Plumb asks OpenAI for it, counts the tokens, and
    // the client's stream is exactly what it asked for.
    let r = sc.openai(chat(true)).send().await.unwrap();
    assert_eq!(header(&r, "x-plumb-served-by"), "primary");
    let (body, err) = read_all(r).await;
    assert!(err.is_none(), "{err:?}");
    let events = parse_sse(&body);
    assert!(
        events.iter().all(|e| !e.data.contains("\"usage\":{")),
        "no usage chunk the client did not ask for"
    );
    assert!(!openai_text(&events).is_empty());
    assert!(
        eventually(|| async {
            let m = receiver.metrics.lock();
            m.iter().any(|(name, points)| {
                name == "gen_ai.client.token.usage"
                    && points
                        .iter()
                        .any(|p| attr(p, "gen_ai.token.type").as_deref() == Some("output"))
            })
        })
        .await,
        "the streamed answer's tokens were not counted"
    );
}

/// The HTTP/protobuf protocol reaches `/v1/traces` on the endpoint.
#[tokio::test]
async fn otlp_e2e_spans_reach_an_http_protobuf_receiver() {
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = receiver.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let served = served.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let served = served.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            if path == "/v1/traces" {
                                served
                                    .take_traces(ExportTraceServiceRequest::decode(body).unwrap());
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let sim = simulator().await;
    let sc = Sidecar::start_with(
        &two_openai(&sim, "sim-gpt", ""),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &format!("http://{addr}")),
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
    .unwrap();
    let r = sc.openai(chat(false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        eventually(|| async { receiver.span("chat chat").is_some() }).await,
        "no span arrived over HTTP"
    );
    assert!(receiver.span("openai sim-gpt").is_some());
}

/// A collector that is not there changes nothing for clients: every request is answered.
#[tokio::test]
async fn otlp_e2e_a_dead_collector_never_fails_a_request() {
    let (_dead, dead) = refused();
    let endpoint = format!("http://{dead}");
    let sim = simulator().await;
    for protocol in ["grpc", "http/protobuf"] {
        let sc = Sidecar::start_with(
            &two_openai(&sim, "sim-gpt", ""),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
                ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ],
        )
        .unwrap();
        for _ in 0..20 {
            let r = sc.openai(chat(false)).send().await.unwrap();
            assert_eq!(r.status(), 200, "{protocol}");
        }
    }
}
