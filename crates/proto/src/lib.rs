//! `plumb-proto`: the policy protocol between the operator and its sidecars, generated from
//! `proto/plumb/policy/v1/policy.proto` at build time (no system `protoc`).
//!
//! One bidirectional `Control` stream per sidecar: the sidecar sends `Hello`, then `Ack`s,
//! heartbeats, `Report`s of what it learned of its upstreams and fresh `Token`s; the operator
//! sends versioned `Snapshot`s of the sidecar's namespace, the fleet's `Knowledge` of it,
//! heartbeats, `TokenRequest`s before the token it verified expires, or a `Refusal`. The sidecar
//! authenticates with its pod's ServiceAccount token in the `authorization` metadata, and again
//! with each `Token`.

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

/// The largest message the operator sends on a control stream (a namespace's whole snapshot):
/// 16 MiB. Both ends set it explicitly — the operator as its encoding limit, the sidecar as its
/// decoding limit — instead of tonic's 4 MiB default, and the operator refuses a route whose
/// snapshot would not fit rather than letting the stream fail.
pub const MAX_OPERATOR_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// The largest message a sidecar sends on a control stream (a report, a token): 4 MiB. The
/// operator's decoding limit; reports are capped well below it.
pub const MAX_SIDECAR_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// The largest token a sidecar may send in a `Token` message.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
