//! Exit codes, and the one error type commands end with.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success |
//! | 1 | `check` found problems; `try`'s request failed; `status` found no such route |
//! | 2 | usage error (clap's own) |
//! | 64 | invalid configuration: a routes file that does not compile, a bad kubeconfig (`EX_CONFIG`, as the sidecar and the operator use it) |
//! | 66 | an input file cannot be read (`EX_NOINPUT`) |
//! | 69 | the cluster or the sidecar cannot be reached (`EX_UNAVAILABLE`) |

use std::fmt;

/// Success.
pub const OK: u8 = 0;
/// `check` found problems, a request failed, a route is missing.
pub const FAILED: u8 = 1;
/// Usage error.
pub const USAGE: u8 = 2;
/// Invalid configuration.
pub const CONFIG: u8 = 64;
/// An input file cannot be read.
pub const NO_INPUT: u8 = 66;
/// The cluster or the sidecar cannot be reached.
pub const UNAVAILABLE: u8 = 69;

/// Why a command stopped: the exit code and one line for standard error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What to tell the user.
    pub message: String,
}

impl Failure {
    /// A failure with this code.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
