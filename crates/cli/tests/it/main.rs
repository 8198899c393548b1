//! `plumb` as users run it: the binary, its output and its exit codes.
//!
//! - `golden`: `check`, `explain`, `init` and `completion` against files under
//!   `tests/golden/` (regenerate with `PLUMB_BLESS=1`);
//! - `status`: `plumb status` against a real API server (`plumb-testenv`), with `LlmRoute`s
//!   whose status the test writes, and `check --cluster` against its Secrets;
//! - `parity`: `plumb check` against the real API server, case by case;
//! - `call`: `plumb try` through a real `plumb-sidecar --routes` in front of the simulator.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod call;
mod golden;
mod parity;
mod status;
mod support;
