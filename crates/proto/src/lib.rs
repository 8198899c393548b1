//! `plumb-proto`: the policy protocol between the operator and its sidecars, generated from
//! `proto/plumb/policy/v1/policy.proto` at build time (no system `protoc`).
//!
//! One bidirectional `Control` stream per sidecar: the sidecar sends `Hello`, then `Ack`s,
//! heartbeats and `Report`s of what it learned of its upstreams; the operator sends versioned
//! `Snapshot`s of the sidecar's namespace, the fleet's `Knowledge` of it, heartbeats, or a
//! `Refusal`. The sidecar authenticates with its pod's ServiceAccount token in the
//! `authorization` metadata.

/// `plumb.policy.v1`.
pub mod v1 {
    #![allow(
        missing_docs,
        clippy::wildcard_enum_match_arm,
        clippy::derive_partial_eq_without_eq
    )]
    tonic::include_proto!("plumb.policy.v1");
}

/// The audience a sidecar's ServiceAccount token is bound to (DESIGN §14).
pub const TOKEN_AUDIENCE: &str = "plumb.dev/control-plane";
