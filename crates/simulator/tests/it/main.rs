//! Integration tests: the `plumb-simulator` binary over real sockets, driven by a plain HTTP
//! client.

// Test code: a failed unwrap is a failed test, and helpers need no API docs.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod anthropic;
mod bedrock;
mod faults;
mod gemini;
mod openai;
mod plans;
mod streams;
mod support;
mod vertex;
