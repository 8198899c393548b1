//! `plumb-simulator`: fake LLM providers that fail on purpose, in every way real ones fail.
//!
//! It speaks the real wire formats — OpenAI Chat Completions, Embeddings and Models, Azure
//! OpenAI deployments, Anthropic Messages, OpenAI Responses, Gemini `generateContent`, AWS
//! Bedrock Converse (SigV4-verified, beside STS and a container-credentials endpoint:
//! [`aws`]), Google Vertex AI (Gemini and Claude models, behind OAuth tokens from its own
//! token endpoint and metadata server) — streamed and not, and injects faults chosen per
//! request (the `x-sim-fault` header), per model
//! (`sim-<fault>` names, or the configuration), or by a scripted plan set through the admin API
//! under `/_sim/`. Every attempt is logged so
//! tests can assert what a client did.
//!
//! It sits at the bottom of the workspace next to `api` and `proto`: tests, the demo and the
//! benchmarks use it; nothing in the data plane or the operator may depend on it.
//!
//! Start here: [`Simulator::start`], the fault catalogue in [`fault`], the models in
//! [`catalog`].

pub mod anthropic;
pub mod attempts;
pub mod aws;
pub mod bedrock;
pub mod catalog;
pub mod chat;
pub mod embed;
pub mod fault;
pub mod gemini;
pub mod google_auth;
pub mod openai;
pub mod plan;
pub mod responses;
pub mod server;
pub mod structured;
#[cfg(feature = "test-util")]
pub mod testkit;
pub mod tls;
pub mod vertex;
pub mod wire;

pub use attempts::{Api, Attempt, Outcome};
pub use catalog::{Latency, ModelSpec, SimConfig};
pub use embed::{JudgeRule, Verdict};
pub use fault::{CATALOGUE, Fault, RetryAfter};
pub use plan::PlanSpec;
pub use server::Simulator;
