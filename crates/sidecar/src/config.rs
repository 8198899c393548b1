//! Command-line configuration, parsed completely before any port binds.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Plumb's sidecar: keeps LLM traffic correct when providers fail.
#[derive(Clone, Debug, Parser)]
#[command(name = "plumb-sidecar", version, about)]
pub struct Args {
    /// Routes file: multi-document YAML of LlmRoute resources (standalone mode). Reloaded when
    /// it changes.
    #[arg(
        long,
        env = "PLUMB_ROUTES",
        conflicts_with = "control_plane",
        required_unless_present = "control_plane"
    )]
    pub routes: Option<PathBuf>,
    /// The operator's policy service, `https://HOST:PORT`: routes come from it instead of a
    /// file. Namespace and pod name come from `POD_NAMESPACE` and `POD_NAME`.
    #[arg(long)]
    pub control_plane: Option<String>,
    /// The pod's ServiceAccount token for the control plane (audience plumb.dev/control-plane),
    /// re-read on every connection.
    #[arg(long, default_value = "/var/run/secrets/plumb.dev/token")]
    pub token_file: PathBuf,
    /// Keep the last good policy from the control plane in this file (owner-only: it holds
    /// keys), so a restarted sidecar serves before it reconnects.
    #[arg(long)]
    pub policy_cache: Option<PathBuf>,
    /// The CA certificate (PEM text) to trust for the control plane, as the injection webhook
    /// passes it.
    #[arg(long, env = "PLUMB_CONTROL_PLANE_CA", hide_env_values = true)]
    pub control_plane_ca: Option<String>,
    /// How long the control stream may stay silent before the sidecar reconnects.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub control_plane_timeout: Duration,
    /// How often the sidecar reports what it learned of its upstreams to the operator (state
    /// changes — a breaker opening, a probe's verdict, a rate-limit window — go at once).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub report_interval: Duration,
    /// The proxy's address (loopback: only the pod's own containers may call it). Port 0 picks
    /// a free port; the address is printed.
    #[arg(long, default_value = "127.0.0.1:15400")]
    pub listen: SocketAddr,
    /// The admin address: /healthz, /readyz and /metrics for the kubelet and Prometheus.
    #[arg(long, default_value = "0.0.0.0:15401")]
    pub admin_listen: SocketAddr,
    /// Worker threads for the proxy. By default the CPUs the container may use (its CPU limit
    /// in whole cores, rounded down, at least 1), at most 2: a sidecar shares its pod's cores with the application, and
    /// without a CPU limit the node's core count (often dozens) would mean as many threads
    /// waking each other. Set it to the sidecar's CPU limit when that is higher.
    #[arg(long, env = "PLUMB_WORKERS")]
    pub workers: Option<std::num::NonZeroUsize>,
    /// Extra CA certificates (PEM) to trust for upstreams and the control plane, besides the
    /// system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// How often the routes file is checked for changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// How long a client of the proxy may take to send a request's head (and its first bytes).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Connections the proxy serves at once; more are closed as they arrive.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// How long a client of the admin listener may take to send a request's head.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub admin_header_timeout: Duration,
    /// Connections the admin listener serves at once; more are closed as they arrive.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_max_connections: u32,
    /// Connections the admin listener serves at once from one address (the kubelet probes from
    /// the node's), so one client cannot take every slot.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub admin_max_per_address: u32,
    /// The largest request body accepted from a client, in bytes.
    #[arg(long, default_value_t = 8 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_request_bytes: u64,
    /// The largest whole answer (or stream held whole for its contract) read from a provider,
    /// in bytes.
    #[arg(long, default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..))]
    pub max_response_bytes: u64,
    /// The budget for large request bodies held at once, in bytes (each body's first 64 KiB is
    /// free; the rest counts four times its size: raw, parsed and rewritten). A request that
    /// finds no room waits up to `--body-memory-wait`, then gets 503.
    #[arg(long, default_value_t = 48 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024 * 1024..))]
    pub body_memory: u64,
    /// How long a large request waits for room in the body-memory budget.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub body_memory_wait: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Log format on standard error.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
}

impl Args {
    /// The proxy listener's limits.
    pub fn proxy_limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_timeout: self.header_timeout,
            max_connections: self.max_connections as usize,
            ..crate::server::Limits::PROXY
        }
    }

    /// The bounds on bodies.
    pub fn body_limits(&self) -> crate::proxy::BodyLimits {
        let bytes = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        crate::proxy::BodyLimits {
            max_request_bytes: bytes(self.max_request_bytes),
            max_response_bytes: bytes(self.max_response_bytes),
            memory: crate::memory::Memory::new(bytes(self.body_memory), self.body_memory_wait),
        }
    }

    /// The admin listener's limits.
    pub fn admin_limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_timeout: self.admin_header_timeout,
            max_connections: self.admin_max_connections as usize,
            max_per_address: self.admin_max_per_address as usize,
            ..crate::server::Limits::ADMIN
        }
    }
}

/// The worker threads to run: `--workers` when given, else the CPUs this process may use
/// (`available_parallelism` honours a cgroup CPU limit), at most [`DEFAULT_MAX_WORKERS`].
pub fn workers(asked: Option<std::num::NonZeroUsize>, available: Option<usize>) -> usize {
    match asked {
        Some(n) => n.get(),
        None => available.unwrap_or(1).clamp(1, DEFAULT_MAX_WORKERS),
    }
}

/// The most worker threads the sidecar starts unless told otherwise.
pub const DEFAULT_MAX_WORKERS: usize = 2;

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroUsize;

    #[test]
    fn workers_follow_the_flag_else_the_cpus_allowed_at_most_two() {
        let n = |k| NonZeroUsize::new(k);
        assert_eq!(workers(n(6), Some(64)), 6, "the flag wins");
        assert_eq!(
            workers(None, Some(64)),
            2,
            "a node's many cores are not the pod's"
        );
        assert_eq!(
            workers(None, Some(1)),
            1,
            "a CPU limit of one core (or less)"
        );
        assert_eq!(workers(None, None), 1, "unknown: one");
    }
}
