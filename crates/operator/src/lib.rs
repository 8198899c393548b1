//! `plumb-operator`: Plumb's control plane.
//!
//! Start reading at [`reconcile`]: the loop that turns each `LlmRoute` into policy and status.
//! Then:
//!
//! | module | what |
//! | --- | --- |
//! | [`policies`] | per namespace, the last good routes and their keys as versioned snapshots, and what each sidecar acknowledged |
//! | [`status`] | `Accepted`, `Programmed`, `Degraded` from what was found (pure) |
//! | [`grpc`] | the policy server: one authenticated TLS stream per sidecar |
//! | [`knowledge`] | the fleet's knowledge: reports in, directives out, per-target status, Events (the merging and planning are `plumb-knowledge`) |
//! | [`credentials`] | the Secrets routes may take keys from: only those labelled `plumb.dev/credentials: "true"` |
//! | [`auth`] | sidecar identity by TokenReview |
//! | [`certs`] | the serving certificate: generated, stored in a Secret, re-issued before expiry, CA bundle patched |
//! | [`leader`] | leader election on a Lease; the leader labels its pod for the policy Service |
//! | [`webhook`] | sidecar injection: the Pod patch and its HTTPS server |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` |
//! | [`listener`] | the admin and webhook listeners' bounds: connections, handshake and header time, header size |

pub mod admin;
pub mod auth;
pub mod certs;
pub mod credentials;
pub mod grpc;
pub mod knowledge;
pub mod leader;
pub mod listener;
pub mod policies;
pub mod reconcile;
pub mod status;
pub mod webhook;
