//! Traces: a span per client request and a child span per attempt, with the GenAI semantic
//! conventions' attributes and Plumb's own, checked with an in-process span exporter on a
//! failover. The proxy runs in this process so its spans reach the exporter.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use plumb_sidecar::keys::Keys;
use plumb_sidecar::proxy::Proxy;
use plumb_sidecar::table::{Policy, Table};
use plumb_sidecar::upstream::Upstreams;
use plumb_telemetry::Metrics;
use tracing_subscriber::layer::SubscriberExt;

use crate::support::{chat, client, header, simulator, two_openai};

fn attrs(span: &SpanData) -> HashMap<String, String> {
    span.attributes
        .iter()
        .map(|kv| (kv.key.as_str().to_owned(), kv.value.as_str().into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_one_request_span_with_an_attempt_span_per_try() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("plumb-test")));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let sim = simulator().await;
    let routes = plumb_policy::parse_routes_file(&two_openai(
        &sim,
        "sim-unavailable",
        "  classes: {overloaded: {retries: 0}}\n  contract: {rules: [{expression: \"text.contains('End of answer.')\", message: the answer must be complete}]}\n  equivalence: {mode: observe}\n",
    ))
    .unwrap();
    let keys = Keys::resolve_local(&routes, |_| None).unwrap();
    let metrics = Arc::new(Metrics::new());
    let table = Arc::new(Table::new());
    table.apply(
        Policy {
            routes,
            keys,
            version: "test".into(),
        },
        &metrics,
    );
    let proxy = Arc::new(Proxy::new(
        table,
        Arc::new(Upstreams::new(None).unwrap()),
        metrics,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(plumb_sidecar::server::serve(
        proxy,
        listener,
        admin,
        std::future::pending(),
        std::time::Duration::from_secs(1),
    ));

    let r = client()
        .post(format!("{url}/v1/chat/completions"))
        .json(&chat(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-plumb-served-by"), "fallback");
    drop(r);

    let spans = exporter.get_finished_spans().unwrap();
    let request = spans
        .iter()
        .find(|s| s.name == "chat chat")
        .expect("a request span named after the operation and model");
    let a = attrs(request);
    assert_eq!(a["gen_ai.operation.name"], "chat");
    assert_eq!(a["gen_ai.request.model"], "chat");
    assert_eq!(a["plumb.route"], "test/r");
    assert_eq!(a["plumb.served_by"], "fallback");
    assert_eq!(a["plumb.attempts"], "2");
    assert_eq!(a["plumb.failure_classes"], "overloaded");
    assert_eq!(a["plumb.equivalence"], "uncertified; n=0");
    assert_eq!(request.span_kind, opentelemetry::trace::SpanKind::Server);

    let mut attempts: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == request.span_context.span_id())
        .collect();
    attempts.sort_by_key(|s| s.start_time);
    assert_eq!(
        attempts.len(),
        2,
        "{:#?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let (first, second) = (attrs(attempts[0]), attrs(attempts[1]));
    assert_eq!(attempts[0].name, "openai sim-unavailable");
    assert_eq!(first["gen_ai.provider.name"], "openai");
    assert_eq!(first["gen_ai.request.model"], "sim-unavailable");
    assert_eq!(first["plumb.target"], "primary");
    assert_eq!(first["plumb.failure_class"], "overloaded");
    assert_eq!(first["plumb.plan"], "failover");
    assert_eq!(
        first["plumb.breaker"], "closed",
        "one failure does not open it"
    );
    assert_eq!(first["http.response.status_code"], "503");
    assert_eq!(first["server.address"], "127.0.0.1");
    assert_eq!(second["plumb.target"], "fallback");
    assert_eq!(second["http.response.status_code"], "200");
    assert!(!second.contains_key("plumb.failure_class"));
    assert_eq!(second["plumb.contract"], "passed");
    assert_eq!(second["gen_ai.response.model"], "sim-gpt-mini");
    assert_eq!(second["plumb.repair"], "false");
    assert_eq!(first["plumb.attempt"], "first");
    assert_eq!(second["plumb.attempt"], "failover");
    assert_eq!(second["plumb.breaker"], "closed");
    assert!(
        second["gen_ai.usage.input_tokens"]
            .parse::<u64>()
            .is_ok_and(|n| n > 0),
        "{second:?}"
    );
    assert!(
        second["gen_ai.usage.output_tokens"]
            .parse::<u64>()
            .is_ok_and(|n| n > 0)
    );
    assert_eq!(
        attempts[1].span_kind,
        opentelemetry::trace::SpanKind::Client
    );
    assert!(
        !a.values().any(|v| v.contains("sk-")),
        "no key in span attributes"
    );
}
