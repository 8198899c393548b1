//! `plumb-simulator`: run fake LLM providers that fail on purpose.
//!
//! Prints `plumb-simulator listening on URL` on standard output once it accepts connections,
//! so scripts and tests can bind port 0 and read the address it got.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use plumb_simulator::{CATALOGUE, SimConfig, Simulator};

/// Fake LLM providers (OpenAI, Azure OpenAI, Anthropic wire formats) that fail on purpose.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// Configuration file (YAML or JSON): models, keys, personas, latency, default faults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve HTTPS with a generated certificate; the CA is written to --ca-out.
    #[arg(long, requires = "ca_out")]
    tls: bool,
    /// Where to write the CA certificate (PEM) when serving HTTPS.
    #[arg(long)]
    ca_out: Option<PathBuf>,
    /// Also write the listening URL to this file.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Worker threads (default: one per core). 1 runs everything on one thread.
    #[arg(long)]
    workers: Option<usize>,
    /// Print the fault catalogue and exit.
    #[arg(long)]
    list_faults: bool,
    /// Print the effective configuration (YAML) and exit.
    #[arg(long)]
    print_config: bool,
    /// Log format on standard error.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.list_faults {
        for (name, what) in CATALOGUE {
            println!("{name:<20} {what}");
        }
        return ExitCode::SUCCESS;
    }
    let config = match load_config(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("plumb-simulator: invalid configuration: {e:#}");
            return ExitCode::from(64);
        }
    };
    if args.print_config {
        match serde_saphyr::to_string(&config) {
            Ok(yaml) => print!("{yaml}"),
            Err(e) => {
                eprintln!("plumb-simulator: {e}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    plumb_telemetry::init_logging(&args.log_format);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.workers {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plumb-simulator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plumb-simulator: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<SimConfig> {
    let Some(path) = path else {
        return Ok(SimConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

async fn run(args: Args, config: SimConfig) -> anyhow::Result<()> {
    let mut sim = Simulator::start(config, args.listen, args.tls)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    if let (Some(path), Some(pem)) = (&args.ca_out, sim.ca_pem()) {
        std::fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    }
    let url = sim.base_url();
    if let Some(path) = &args.addr_file {
        std::fs::write(path, &url).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "plumb-simulator listening on {url}")?;
    out.flush()?;
    drop(out);
    tracing::info!(%url, "serving");
    tokio::select! {
        () = sim.wait() => Ok(()),
        () = plumb_telemetry::shutdown::signal() => Ok(()),
    }
}
