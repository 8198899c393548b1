//! Integration tests: the real `plumb-sidecar` binary in front of the simulator, over loopback
//! sockets, with the simulator's attempt log as the witness of what the sidecar did; and the
//! attempt loop in-process against a scripted upstream under paused time (`pipeline`).

// Test code: a failed unwrap is a failed test; helpers need no API docs; matches on test data
// may end with a catch-all.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::wildcard_enum_match_arm,
    missing_docs,
    unreachable_pub
)]

mod basics;
mod bedrock;
mod clouds;
mod contracts;
mod crossfamily;
mod egress;
mod equivalence;
mod gemini;
mod golden;
mod leaks;
mod limits;
mod otlp;
mod pipeline;
mod recovery;
mod responses;
mod samemodel;
mod scripted;
mod spans;
mod standalone;
mod streams;
mod support;
mod vertex;
