//! `plumb`: the command line of Plumb — check, explain, inspect and try `LlmRoute`s.
//!
//! One binary, `plumb`, also installed as the kubectl plugin `kubectl-plumb` (it behaves the
//! same under either name). It sits on top of the workspace: it runs the policy compiler the
//! sidecar and the operator run (`plumb-policy`), the sidecar's classifier and planner
//! (`plumb-sidecar` as a library, never the other way round), and the Kubernetes client for
//! `status` and `check --cluster`. Nothing depends on it.
//!
//! | command | module |
//! | --- | --- |
//! | `plumb check` | [`check`] (with [`schema`], [`locate`], and [`cluster`] for `--cluster`) |
//! | `plumb explain` | [`explain`] |
//! | `plumb status` | [`status`] |
//! | `plumb try` | [`call`] |
//! | `plumb init` | [`starter`] |
//!
//! Exit codes are [`exit`].

#![forbid(unsafe_code)]

pub mod args;
pub mod call;
pub mod check;
pub mod cluster;
pub mod exit;
pub mod explain;
pub mod locate;
pub mod render;
pub mod run;
pub mod schema;
pub mod starter;
pub mod status;
