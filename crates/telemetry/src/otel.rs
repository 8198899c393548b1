//! OTLP export of traces and metrics, configured by the standard `OTEL_*` environment
//! variables and off when none names an endpoint.
//!
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
//!   `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) turns export on; `OTEL_SDK_DISABLED=true`,
//!   `OTEL_TRACES_EXPORTER=none` and `OTEL_METRICS_EXPORTER=none` turn it off.
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` (or the per-signal `…_PROTOCOL`): `grpc` or `http/protobuf`
//!   (the default, as the specification says). Headers, timeouts, compression and TLS follow the
//!   exporter's own `OTEL_EXPORTER_OTLP_*` variables; `OTEL_SERVICE_NAME` and
//!   `OTEL_RESOURCE_ATTRIBUTES` name the resource; `OTEL_METRIC_EXPORT_INTERVAL` sets how often
//!   metrics go out.
//!
//! Export never blocks the request path: spans and metrics are queued and sent by the SDK's
//! background workers, and a queue that fills while the collector is away drops, not waits.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

/// The exporters in force; dropping it flushes and stops them.
pub struct Otel {
    /// Spans, when exported.
    pub tracer_provider: Option<SdkTracerProvider>,
    /// Metrics, when exported.
    pub meter_provider: Option<SdkMeterProvider>,
}

impl Drop for Otel {
    fn drop(&mut self) {
        if let Some(t) = self.tracer_provider.take() {
            let _ = t.shutdown();
        }
        if let Some(m) = self.meter_provider.take() {
            let _ = m.shutdown();
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether OTLP export of a signal (`TRACES` or `METRICS`) is asked for.
fn wanted(signal: &str) -> bool {
    if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return false;
    }
    let exporter = env(&format!("OTEL_{signal}_EXPORTER")).unwrap_or_else(|| "otlp".into());
    exporter != "none"
        && (env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).is_some())
}

/// `grpc` or `http/protobuf` for a signal.
fn grpc(signal: &str) -> Result<bool, String> {
    let protocol = env(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"))
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "http/protobuf".into());
    match protocol.as_str() {
        "grpc" => Ok(true),
        "http/protobuf" => Ok(false),
        other => Err(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL {other:?} is not supported; use grpc or http/protobuf"
        )),
    }
}

/// The HTTP endpoint of a signal: the specification appends `/v1/traces` or `/v1/metrics` to
/// the generic endpoint, not to a signal-specific one.
fn http_endpoint(signal: &str, path: &str) -> Option<String> {
    env(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")).or_else(|| {
        env("OTEL_EXPORTER_OTLP_ENDPOINT").map(|e| format!("{}/{path}", e.trim_end_matches('/')))
    })
}

/// Starts the exporters the environment asks for (none: `Ok(None)`). Call inside the Tokio
/// runtime: the gRPC exporter's connection lives on it.
pub fn from_env(default_service: &str) -> Result<Option<Otel>, String> {
    let (traces, metrics) = (wanted("TRACES"), wanted("METRICS"));
    if !traces && !metrics {
        return Ok(None);
    }
    let resource = Resource::builder()
        .with_service_name(env("OTEL_SERVICE_NAME").unwrap_or_else(|| default_service.into()))
        .build();
    let tracer_provider = if traces {
        let exporter = if grpc("TRACES")? {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
        } else {
            let mut b = opentelemetry_otlp::SpanExporter::builder().with_http();
            if let Some(e) = http_endpoint("TRACES", "v1/traces") {
                b = b.with_endpoint(e);
            }
            b.build()
        }
        .map_err(|e| format!("the OTLP span exporter: {e}"))?;
        Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource.clone())
                .build(),
        )
    } else {
        None
    };
    let meter_provider = if metrics {
        let exporter = if grpc("METRICS")? {
            opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
        } else {
            let mut b = opentelemetry_otlp::MetricExporter::builder().with_http();
            if let Some(e) = http_endpoint("METRICS", "v1/metrics") {
                b = b.with_endpoint(e);
            }
            b.build()
        }
        .map_err(|e| format!("the OTLP metric exporter: {e}"))?;
        let interval = env("OTEL_METRIC_EXPORT_INTERVAL")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(60), Duration::from_millis);
        let reader = PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        Some(
            SdkMeterProvider::builder()
                .with_reader(reader)
                .with_resource(resource)
                .build(),
        )
    } else {
        None
    };
    Ok(Some(Otel {
        tracer_provider,
        meter_provider,
    }))
}

/// What a log line says of the spans it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanContext {
    /// Each line is prefixed with its spans and their fields (the operator's reconciles).
    Full,
    /// Lines carry only their own fields; spans exist for the trace exporter alone. The
    /// sidecar's lines name their route and target themselves, and without an exporter its
    /// per-request spans then cost nothing (formatting every span's fields for the log was
    /// about a tenth of its CPU per request).
    None,
}

/// Sets up logging on standard error (`text` or `json`, filtered by `RUST_LOG`, default
/// `info`) and, when the environment asks for OTLP, span export through the tracing layer.
/// Returns the exporters to keep alive (and flush on drop).
pub fn init(format: &str, service: &str, context: SpanContext) -> Result<Option<Otel>, String> {
    let otel = from_env(service)?;
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    install(format, service, context, otel, &directives)
}

/// [`init`] with what it reads from the environment given: the exporters and the log filter's
/// directives (as `RUST_LOG` writes them; `info` when they do not parse).
pub fn install(
    format: &str,
    service: &str,
    context: SpanContext,
    otel: Option<Otel>,
    directives: &str,
) -> Result<Option<Otel>, String> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::FilterExt as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The directives, applied to each layer on its own: a span that no layer wants is then
    // not built at all.
    let filter = || {
        tracing_subscriber::EnvFilter::try_new(directives)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
    };
    type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;
    let mut layers: Vec<Boxed> = Vec::with_capacity(2);
    if let Some(p) = otel.as_ref().and_then(|o| o.tracer_provider.as_ref()) {
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer(service.to_owned()))
                .with_filter(filter())
                .boxed(),
        );
    }
    // The log layer sees spans only when its lines carry them.
    let logged = filter().and(tracing_subscriber::filter::filter_fn(move |m| {
        m.is_event() || context == SpanContext::Full
    }));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    layers.push(if format == "json" {
        fmt.json().with_filter(logged).boxed()
    } else {
        fmt.with_filter(logged).boxed()
    });
    let initialised = tracing_subscriber::registry().with(layers).try_init();
    initialised.map_err(|e| e.to_string())?;
    if let Some(m) = otel.as_ref().and_then(|o| o.meter_provider.as_ref()) {
        opentelemetry::global::set_meter_provider(m.clone());
    }
    Ok(otel)
}
