//! `plumb-sidecar`: parse the configuration, set up logging, serve.
//!
//! Exit codes: 64 for invalid configuration (one line on standard error says what to fix),
//! 0 after a clean drain on SIGTERM or SIGINT.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use plumb_sidecar::config::Args;
use plumb_sidecar::control::{self, ControlPlane};
use plumb_sidecar::egress::ProxyEnv;
use plumb_sidecar::proxy::Proxy;
use plumb_sidecar::table::Table;
use plumb_sidecar::upstream::Upstreams;
use plumb_sidecar::{server, standalone};
use plumb_telemetry::{Metrics, ReloadLabels};

const EX_CONFIG: u8 = 64;

/// mimalloc: per-thread free lists for every size, where glibc's malloc locks an arena to free
/// a buffer another worker allocated (see BENCHMARKS.md, "The allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where the policy comes from.
enum Source {
    /// A routes file, its first policy and fingerprint.
    File(std::path::PathBuf, plumb_sidecar::table::Policy, u64),
    /// The operator.
    ControlPlane(ControlPlane),
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) if e.use_stderr() => {
            let _ = e.print();
            return ExitCode::from(EX_CONFIG);
        }
        Err(e) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
    };
    // Where the policy comes from: a routes file (standalone), or the control plane.
    let source = match (&args.routes, &args.control_plane) {
        (Some(path), _) => match standalone::load(path) {
            Ok((policy, hash)) => Source::File(path.clone(), policy, hash),
            Err(e) => {
                eprintln!("plumb-sidecar: invalid configuration: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        (None, Some(url)) => {
            let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
            let (Some(namespace), Some(pod)) = (env("POD_NAMESPACE"), env("POD_NAME")) else {
                eprintln!(
                    "plumb-sidecar: invalid configuration: --control-plane needs POD_NAMESPACE and POD_NAME (from the downward API)"
                );
                return ExitCode::from(EX_CONFIG);
            };
            if !url.starts_with("https://") {
                eprintln!(
                    "plumb-sidecar: invalid configuration: --control-plane must be an https:// URL, not {url:?}"
                );
                return ExitCode::from(EX_CONFIG);
            }
            Source::ControlPlane(ControlPlane {
                url: url.clone(),
                token_file: args.token_file.clone(),
                ca_file: args.ca_file.clone(),
                ca_pem: args.control_plane_ca.clone(),
                cache: args.policy_cache.clone(),
                namespace,
                pod,
                silence: args.control_plane_timeout,
                report_interval: args
                    .report_interval
                    .max(std::time::Duration::from_millis(50)),
            })
        }
        (None, None) => {
            eprintln!(
                "plumb-sidecar: invalid configuration: give --routes FILE or --control-plane URL"
            );
            return ExitCode::from(EX_CONFIG);
        }
    };
    // HTTPS_PROXY, HTTP_PROXY and NO_PROXY, read once (their errors never show a password).
    let proxies = match ProxyEnv::from_env() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("plumb-sidecar: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let proxied = (!proxies.is_empty()).then(|| proxies.to_string());
    let upstreams = match Upstreams::new(args.ca_file.as_deref()) {
        Ok(u) => u.with_proxies(proxies),
        Err(e) => {
            eprintln!("plumb-sidecar: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let workers = plumb_sidecar::config::workers(
        args.workers,
        std::thread::available_parallelism().ok().map(|n| n.get()),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plumb-sidecar: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One process-wide TLS provider (ring), for the clients that do not name theirs (the OTLP
    // HTTP exporter's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    rt.block_on(async move {
        // Logs, and OTLP export when the OTEL_* environment asks for it (inside the runtime:
        // the gRPC exporter's connection lives on it).
        let otel = match plumb_telemetry::otel::init(
            &args.log_format,
            "plumb-sidecar",
            plumb_telemetry::otel::SpanContext::None,
        ) {
            Ok(o) => o,
            Err(e) => {
                eprintln!("plumb-sidecar: invalid configuration: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        if otel.as_ref().is_some_and(|o| o.meter_provider.is_some()) {
            plumb_sidecar::genai::enable();
        }
        if let Some(proxies) = &proxied {
            tracing::info!(%proxies, "upstreams are reached through the egress proxy");
        }
        let metrics = Arc::new(Metrics::new());
        let table = Arc::new(Table::new());
        match &source {
            Source::File(_, policy, _) => {
                standalone::log_warnings(&policy.routes);
                tracing::info!(version = %policy.version, routes = policy.routes.routes().len(), "routes loaded");
            }
            Source::ControlPlane(cp) => {
                // A cached policy serves until the control plane answers.
                if let Some(snapshot) = cp.cache.as_deref().and_then(|p| control::load_cache(p, &cp.namespace)) {
                    tracing::info!(version = %snapshot.version, "serving the cached policy until the control plane answers");
                    control::apply(&snapshot, &table, &metrics, None);
                }
            }
        }
        let proxy = Arc::new(Proxy { limits: args.body_limits(), ..Proxy::new(table.clone(), Arc::new(upstreams), metrics.clone()) });
        let bind = |addr| async move { tokio::net::TcpListener::bind(addr).await };
        let (proxy_listener, admin_listener) = match (bind(args.listen).await, bind(args.admin_listen).await) {
            (Ok(p), Ok(a)) => (p, a),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("plumb-sidecar: cannot listen: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        };
        let (Ok(addr), Ok(admin_addr)) = (proxy_listener.local_addr(), admin_listener.local_addr()) else {
            return ExitCode::FAILURE;
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "plumb-sidecar listening on http://{addr} admin http://{admin_addr}");
        let _ = out.flush();
        drop(out);
        let watch = match source {
            Source::File(path, policy, hash) => {
                table.apply(policy, &metrics);
                metrics.policy_loads.get_or_create(&ReloadLabels { result: "applied" }).inc();
                tokio::spawn(standalone::watch(path, table, metrics, args.reload_interval, hash))
            }
            Source::ControlPlane(cp) => tokio::spawn(control::run(cp, table, metrics)),
        };
        // The accept loop runs on a worker, not on this thread (`block_on`'s): a new
        // connection is then accepted and read by the same thread, without a hand-off between
        // two (see BENCHMARKS.md, "A new connection's first request").
        let served = tokio::spawn(server::serve_with(
            proxy,
            (proxy_listener, args.proxy_limits()),
            (admin_listener, args.admin_limits()),
            plumb_telemetry::shutdown::signal(),
            args.drain_timeout,
        ))
        .await;
        watch.abort();
        match served {
            Ok(()) => {
                tracing::info!("drained; exiting");
                ExitCode::SUCCESS
            }
            // A panic in the accept loop: the process ends in failure, for the kubelet to restart it.
            Err(e) => {
                tracing::error!(error = %e, "the server task failed");
                ExitCode::FAILURE
            }
        }
    })
}
