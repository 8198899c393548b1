//! Without a trace exporter and with logs that do not carry span context, a span is not built
//! at all (the sidecar's per-request spans then cost nothing), while log lines still are.

use plumb_telemetry::otel::{SpanContext, init};

#[test]
fn spans_nobody_wants_are_not_built_and_events_still_are() {
    let otel = init("text", "spans-test", SpanContext::None).expect("initialised");
    assert!(
        otel.is_none(),
        "run without OTEL_EXPORTER_OTLP_* in the environment"
    );
    let span = tracing::info_span!("request", plumb.route = "r");
    assert!(
        span.is_disabled(),
        "an info span was built though no layer wants it"
    );
    assert!(
        tracing::event_enabled!(tracing::Level::INFO),
        "info events are logged"
    );
}
