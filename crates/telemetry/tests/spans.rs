//! Without a trace exporter and with logs that do not carry span context, a span is not built
//! at all (the sidecar's per-request spans then cost nothing), while log lines still are.
//!
//! A binary of its own: it installs the process's global subscriber.

use plumb_telemetry::otel::{SpanContext, install};

#[test]
fn spans_nobody_wants_are_not_built_and_events_still_are() {
    install("text", "spans-test", SpanContext::None, None, "info")
        .unwrap_or_else(|e| panic!("{e}"));
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
