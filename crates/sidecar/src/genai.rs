//! The OpenTelemetry GenAI client metrics, through the OpenTelemetry SDK (exported over OTLP
//! when the environment asks for it; no-ops otherwise): `gen_ai.client.operation.duration`,
//! `gen_ai.client.token.usage` and `gen_ai.client.operation.time_to_first_chunk`, with the
//! conventions' attributes plus `plumb.route` and `plumb.target`. Attribute values are bounded:
//! model names a route serves, target names, fixed classes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use plumb_policy::{Provider, Target};
use tokio::time::Instant;

use crate::payload::{ClientRequest, Operation};

struct Instruments {
    duration: Histogram<f64>,
    tokens: Histogram<u64>,
    first_chunk: Histogram<f64>,
}

/// The semantic conventions' advised bucket boundaries for durations (seconds).
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// … and for token counts.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Whether the process exports these metrics. Off (the default) the functions below build no
/// attributes and record nothing: a no-op meter still cost an allocation per attribute.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the GenAI metrics on: the process set up a meter provider that exports them.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Created at first use, after the process set up its meter provider.
fn instruments() -> &'static Instruments {
    static I: OnceLock<Instruments> = OnceLock::new();
    I.get_or_init(|| {
        let meter = opentelemetry::global::meter("plumb-sidecar");
        Instruments {
            duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            first_chunk: meter
                .f64_histogram("gen_ai.client.operation.time_to_first_chunk")
                .with_unit("s")
                .with_description(
                    "Time to the first chunk of a streamed answer reaching the client",
                )
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
        }
    })
}

/// The conventions' `gen_ai.provider.name` of a target.
pub fn provider_name(provider: Provider) -> &'static str {
    match provider {
        Provider::Openai | Provider::OpenaiCompatible => "openai",
        Provider::AzureOpenai => "azure.ai.openai",
        Provider::Anthropic => "anthropic",
        Provider::Gemini => "gcp.gemini",
        Provider::Bedrock => "aws.bedrock",
        Provider::VertexAi => "gcp.vertex_ai",
    }
}

fn operation(request: &ClientRequest) -> &'static str {
    match request.operation {
        Operation::Chat => "chat",
        Operation::Embeddings => "embeddings",
    }
}

/// The attributes of a request no target answered.
pub fn request_attributes(request: &ClientRequest, route: &str) -> Vec<KeyValue> {
    if !enabled() {
        return Vec::new();
    }
    vec![
        KeyValue::new("gen_ai.operation.name", operation(request)),
        KeyValue::new("gen_ai.request.model", request.model.clone()),
        KeyValue::new("plumb.route", route.to_owned()),
    ]
}

/// The attributes of an answer from `target`.
pub fn attributes(request: &ClientRequest, target: &Target, route: &str) -> Vec<KeyValue> {
    let mut a = request_attributes(request, route);
    if !enabled() {
        return a;
    }
    a.push(KeyValue::new(
        "gen_ai.provider.name",
        provider_name(target.provider),
    ));
    a.push(KeyValue::new("plumb.target", target.name.clone()));
    a
}

/// The tokens a stream reports as it goes: OpenAI's usage chunk (`usage.prompt_tokens`,
/// `usage.completion_tokens`), Anthropic's `message_start` (`message.usage.input_tokens`) and
/// `message_delta` (`usage.output_tokens`, cumulative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamUsage {
    input: Option<u64>,
    output: Option<u64>,
}

impl StreamUsage {
    /// Reads one stream event.
    pub fn observe(&mut self, event: &crate::event::Event) {
        let (input, output) = event.usage();
        self.add(input, output);
    }

    fn add(&mut self, input: Option<u64>, output: Option<u64>) {
        if let Some(n) = input {
            self.input = Some(n);
        }
        if let Some(n) = output {
            self.output = Some(self.output.map_or(n, |o| o.max(n)));
        }
    }

    /// Output tokens, once counted.
    pub fn output(&self) -> Option<u64> {
        self.output
    }

    /// Input and output tokens, once the input is known.
    pub fn tokens(&self) -> Option<(u64, u64)> {
        Some((self.input?, self.output.unwrap_or(0)))
    }
}

/// Records the operation's duration; `error` is the class the client was answered with.
pub fn record_duration(started: Instant, attributes: &[KeyValue], error: Option<&str>) {
    if !enabled() {
        return;
    }
    let mut a = attributes.to_vec();
    if let Some(e) = error {
        a.push(KeyValue::new("error.type", e.to_owned()));
    }
    instruments()
        .duration
        .record(started.elapsed().as_secs_f64(), &a);
}

/// Records the tokens of an answer.
pub fn record_tokens(usage: Option<(u64, u64)>, attributes: &[KeyValue]) {
    let Some((input, output)) = usage.filter(|_| enabled()) else {
        return;
    };
    for (kind, n) in [("input", input), ("output", output)] {
        let mut a = attributes.to_vec();
        a.push(KeyValue::new("gen_ai.token.type", kind));
        instruments().tokens.record(n, &a);
    }
}

/// Records a stream's time to its first chunk reaching the client.
pub fn record_first_chunk_after(after: std::time::Duration, attributes: &[KeyValue]) {
    if !enabled() {
        return;
    }
    instruments()
        .first_chunk
        .record(after.as_secs_f64(), attributes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_streams_of_both_families() {
        use crate::event::{Event, RawEvent};
        use crate::payload::Api;
        let event = |family: Api, data: &str| {
            Event::parse(
                family,
                &RawEvent {
                    bytes: bytes::Bytes::new(),
                    name: None,
                    data: data.to_owned(),
                },
            )
        };
        let mut openai = StreamUsage::default();
        openai.observe(&event(
            Api::Openai,
            r#"{"choices":[{"delta":{"content":"usage"}}]}"#,
        ));
        openai.observe(&event(Api::Openai, r#"{"choices":[],"usage":null}"#));
        assert_eq!(openai.tokens(), None);
        openai.observe(&event(
            Api::Openai,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30}}"#,
        ));
        assert_eq!(openai.tokens(), Some((12, 30)));
        let mut anthropic = StreamUsage::default();
        anthropic.observe(&event(
            Api::Anthropic,
            r#"{"type":"message_start","message":{"usage":{"input_tokens":25,"output_tokens":1}}}"#,
        ));
        anthropic.observe(&event(
            Api::Anthropic,
            r#"{"type":"message_delta","usage":{"output_tokens":15}}"#,
        ));
        assert_eq!(anthropic.tokens(), Some((25, 15)));
    }
}
