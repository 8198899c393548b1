//! `plumb-policy`: the validated model both sides of Plumb share.
//!
//! Raw `LlmRoute` specs (from `plumb-api`) are parsed here — once, completely — into
//! [`Route`]s that cannot be invalid: durations are `Duration`s, URLs are parsed, credential
//! sources are exactly one, every failure class has a [`Plan`]. Invalid input is an
//! [`InvalidRoute`] that names the field and says what to fix; the sidecar (standalone) and
//! the operator (in a cluster) run the same code, so a route accepted by one is accepted by the
//! other.
//!
//! It depends on `plumb-api` and the schema and CEL engines; its only I/O is reading schema
//! files a route names. No Kubernetes client.
//!
//! - [`class`]: the failure classes and their default plans (the design's table).
//! - [`route`]: compiling a route, and the [`RouteSet`] a sidecar looks models up in.
//! - [`contract`]: the checks every answer passes (JSON Schema, CEL rules, patterns, length).
//! - [`equivalence`]: what failover may do, how answers are compared, what shadowing costs.
//! - [`file`](mod@file): standalone route files (multi-document YAML).

pub mod class;
pub mod contract;
pub mod duration;
pub mod equivalence;
pub mod file;
pub mod route;

pub use class::{Backoff, Blame, BreakerEffect, FailureClass, Plan};
pub use contract::{Contract, Sources};
pub use equivalence::Equivalence;
pub use file::{InvalidRoutesFile, parse_routes_file, parse_routes_file_with};
pub use plumb_api::Provider;
pub use route::{
    Adaptive, AdaptiveHold, BreakerSettings, Capabilities, Credentials, Deadlines, Egress,
    InvalidRoute, LastResort, MalformedEvents, PER_OUTPUT_TOKEN, Publisher, Rate, RetryBudget,
    Route, RouteId, RouteSet, RouteWarning, SameModel, Streaming, Target, TargetProxy, UpstreamKey,
    compile, compile_with, is_embedding_model,
};
