//! `plumb-sidecar`: Plumb's data plane.
//!
//! A proxy in the application's pod that serves the OpenAI and Anthropic APIs on loopback,
//! routes each request by its `model` to an `LlmRoute`, classifies every failure of every
//! attempt into one [`plumb_policy::FailureClass`], recovers as the class's plan says (retry
//! with backoff that honours the provider, fail over, fail fast, open a circuit breaker), and
//! tells the client who answered and how.
//!
//! Start reading at [`proxy`]: it shows the whole request path in order. Then:
//!
//! | module | what |
//! | --- | --- |
//! | [`plan`] | the pure planner: what follows a failure (retry, repair, fail over, stop) |
//! | [`attempt`] | one attempt on the wire, of any kind: head, hold, body |
//! | [`observe`] | one record per attempt and per request; every metric, span field, log line and fleet report comes from it |
//! | [`classify`] | the one place failures get their class |
//! | [`completion`] | whole answers of either family, read once into typed form |
//! | [`event`] | the one SSE reader, and each stream event read once into a typed event of its family |
//! | [`object`] | provider objects read in one pass: the fields Plumb acts on typed, the rest kept |
//! | [`fallback`] | target order, capability skips, who may follow which failure |
//! | [`retry`] | the per-route retry budget |
//! | [`breaker`] | circuit breakers per upstream |
//! | [`stream`] | committed streams and their explicit interruption |
//! | [`upstream`] | connection pools and each provider's request |
//! | [`egress`] | which HTTP proxy, if any, carries a request (`HTTPS_PROXY`, `NO_PROXY`, a target's own) |
//! | [`cloud`] | credentials the sidecar refreshes itself: the AWS chain and SigV4 for Bedrock; OAuth access tokens from service-account keys or the metadata server for Vertex AI |
//! | [`vertex`] | Google Vertex AI's paths and bodies |
//! | [`translate`] | OpenAI ⇄ Anthropic requests, answers and stream events; Responses to either; any of them to Gemini and Bedrock and their answers back |
//! | [`verify`] | every answer against the route's contract; substituted models |
//! | [`equivalence`] | shadow sampling, comparison methods, certification, failover gating |
//! | [`genai`] | the OpenTelemetry GenAI client metrics |
//! | [`respond`] | client-format errors and `x-plumb-*` headers |
//! | [`table`], [`standalone`], [`control`] | the policy in force; from routes files or from the operator |
//!
//! It must never link the Kubernetes client or runtime: `make test` checks its dependency
//! tree.

pub mod attempt;
pub mod breaker;
pub mod classify;
pub mod cloud;
pub mod completion;
pub mod config;
pub mod control;
pub mod egress;
pub mod equivalence;
pub mod event;
pub mod fallback;
pub mod fleet;
pub mod genai;
pub mod keys;
pub mod learned;
pub mod memory;
pub mod object;
pub mod observe;
pub mod payload;
pub mod plan;
pub mod proxy;
pub mod respond;
pub mod retry;
pub mod server;
pub mod standalone;
pub mod stream;
pub mod table;
pub mod translate;
pub mod upstream;
pub mod verify;
pub mod vertex;
mod window;

/// A map keyed by configuration (an upstream, a route), never by what a client sends: hashed
/// with foldhash, several times cheaper than the standard SipHash on such keys, which every
/// request looks up about ten times.
pub type ConfigMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
