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
    #[arg(long, env = "PLUMB_ROUTES")]
    pub routes: PathBuf,
    /// The proxy's address (loopback: only the pod's own containers may call it). Port 0 picks
    /// a free port; the address is printed.
    #[arg(long, default_value = "127.0.0.1:15400")]
    pub listen: SocketAddr,
    /// The admin address: /healthz, /readyz and /metrics for the kubelet and Prometheus.
    #[arg(long, default_value = "0.0.0.0:15401")]
    pub admin_listen: SocketAddr,
    /// Extra CA certificates (PEM) to trust for upstreams, besides the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// How often the routes file is checked for changes.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub reload_interval: Duration,
    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, default_value = "25s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
    /// Log format on standard error.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    pub log_format: String,
}
