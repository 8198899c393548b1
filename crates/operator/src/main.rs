//! `plumb-operator`: reconciles `LlmRoute`s and serves policy to the sidecars.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Parser;
use kube::runtime::events::Recorder;
use plumb_operator::auth::TokenReviewer;
use plumb_operator::certs::{self, Resolver};
use plumb_operator::grpc::PolicyServer;
use plumb_operator::knowledge::{self, Knowledge};
use plumb_operator::leader::Election;
use plumb_operator::policies::Policies;
use plumb_operator::reconcile::{self, Context};
use plumb_operator::webhook;
use plumb_telemetry::operator::OperatorMetrics;
use tonic::transport::Server;

/// Exit code for invalid configuration (sysexits EX_CONFIG).
const EX_CONFIG: u8 = 64;

/// Plumb's operator: reconciles LlmRoutes and pushes policy to the sidecars over gRPC.
#[derive(Debug, Parser)]
#[command(name = "plumb-operator", version, about)]
struct Args {
    /// The policy gRPC listener (TLS).
    #[arg(long, default_value = "0.0.0.0:15410")]
    policy_listen: SocketAddr,
    /// The admin listener: /healthz, /readyz, /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    admin_listen: SocketAddr,
    /// The policy listener's certificate chain (PEM); not with --manage-certificates.
    #[arg(
        long,
        required_unless_present = "manage_certificates",
        conflicts_with = "manage_certificates"
    )]
    tls_cert_file: Option<PathBuf>,
    /// The policy listener's private key (PEM).
    #[arg(
        long,
        required_unless_present = "manage_certificates",
        conflicts_with = "manage_certificates"
    )]
    tls_key_file: Option<PathBuf>,
    /// Manage the serving certificate of the policy service and the webhook: a CA and a
    /// certificate in the Secret --tls-secret (made when missing, re-issued before expiry), the
    /// CA bundle kept in --webhook-configuration.
    #[arg(long)]
    manage_certificates: bool,
    /// The Secret holding the managed certificate, in the operator's namespace.
    #[arg(long, default_value = "plumb-operator-tls")]
    tls_secret: String,
    /// The MutatingWebhookConfiguration whose CA bundle is kept.
    #[arg(long)]
    webhook_configuration: Option<String>,
    /// The DNS names the managed certificate covers (the policy and webhook Services).
    #[arg(
        long,
        value_delimiter = ',',
        required_if_eq("manage_certificates", "true")
    )]
    certificate_dns_names: Vec<String>,
    /// How long a managed certificate is valid.
    #[arg(long, default_value = "8760h", value_parser = humantime::parse_duration)]
    certificate_validity: Duration,
    /// How long before its expiry a managed certificate is re-issued.
    #[arg(long, default_value = "720h", value_parser = humantime::parse_duration)]
    certificate_renew_before: Duration,
    /// How often the managed certificate is checked (and re-read by every replica).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    certificate_check_interval: Duration,
    /// The audience sidecar tokens must be bound to.
    #[arg(long, default_value = plumb_proto::TOKEN_AUDIENCE)]
    token_audience: String,
    /// How often the token behind each control stream is verified again (a TokenReview): a
    /// stream whose pod was deleted or whose token was revoked is closed within this and a
    /// fifth: each stream's checks are spread over ±20% of it, so streams that connected
    /// together do not check together.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    token_recheck_interval: Duration,
    /// Heartbeat interval on the control streams; a sidecar silent for three is dropped.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_interval: Duration,
    /// How often the fleet's knowledge may be pushed for changes that can wait (state changes
    /// — an upstream opening, a probe's verdict, a rate-limit window — go at once).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    knowledge_push_interval: Duration,
    /// How far back error rates and latency in the knowledge look.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    knowledge_window: Duration,
    /// A route whose error rate (failures the upstream is to blame for, over the last 20 s,
    /// fleet-wide) reaches this is in an incident: its retry budget is scaled down everywhere.
    #[arg(long, default_value_t = 0.5)]
    incident_error_rate: f64,
    /// ... once it saw at least this many attempts.
    #[arg(long, default_value_t = 20)]
    incident_min_attempts: u64,
    /// The share of its retry budget a route keeps during an incident.
    #[arg(long, default_value_t = 0.1)]
    incident_retry_scale: f64,
    /// The least time between two writes of a route's knowledge to its status for a change of
    /// state.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    knowledge_status_min_interval: Duration,
    /// The least time between two writes of a route's knowledge to its status when only numbers
    /// moved.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    knowledge_status_interval: Duration,
    /// How often every route is re-read without a change (rotated Secret keys).
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    resync: Duration,
    /// Elect a leader among the replicas on a Lease (only the leader reconciles and serves
    /// policy). Off: this replica leads alone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// The Lease's name, in the operator's namespace (`POD_NAMESPACE`).
    #[arg(long, default_value = "plumb-operator-leader")]
    lease_name: String,
    /// How long the Lease lasts without renewal.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    lease_duration: Duration,
    /// How often the Lease is renewed or tried.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    lease_retry: Duration,
    /// How long the leader may go without renewing the Lease before it steps down (stops
    /// serving policy and exits); between --lease-retry and --lease-duration. Default: two
    /// thirds of --lease-duration.
    #[arg(long, value_parser = humantime::parse_duration)]
    lease_renew_deadline: Option<Duration>,
    /// The injection webhook's listener (HTTPS), served by every replica.
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_listen: SocketAddr,
    /// The webhook's certificate chain (PEM); without it the webhook is off.
    #[arg(long, requires = "webhook_key_file")]
    webhook_cert_file: Option<PathBuf>,
    /// The webhook's private key (PEM).
    #[arg(long, requires = "webhook_cert_file")]
    webhook_key_file: Option<PathBuf>,
    /// The CA certificate (PEM) injected sidecars trust for the policy service.
    #[arg(long)]
    control_plane_ca_file: Option<PathBuf>,
    /// The policy service injected sidecars connect to; default
    /// `https://plumb-policy.POD_NAMESPACE.svc:15410`.
    #[arg(long)]
    policy_service_url: Option<String>,
    /// The sidecar image injected.
    #[arg(long, default_value = concat!("ghcr.io/plumb-dev/plumb-sidecar:", env!("CARGO_PKG_VERSION")))]
    sidecar_image: String,
    /// The injected sidecar's image pull policy.
    #[arg(long, default_value = "IfNotPresent", value_parser = ["IfNotPresent", "Always", "Never"])]
    sidecar_pull_policy: String,
    /// The injected sidecar's CPU request (a pod's `plumb.dev/sidecar-cpu` overrides it).
    #[arg(long, default_value = "50m")]
    sidecar_cpu: String,
    /// The injected sidecar's memory request and limit (`plumb.dev/sidecar-memory` overrides).
    #[arg(long, default_value = "128Mi")]
    sidecar_memory: String,
    /// The egress proxy injected sidecars reach `https://` providers through (`HTTPS_PROXY` in
    /// the sidecar; `http://host:port`). Credentials in it (`user:password@`) end up in every
    /// injected Pod's spec: prefer a route's `proxy.credentialsSecret`.
    #[arg(long)]
    sidecar_https_proxy: Option<String>,
    /// The egress proxy injected sidecars reach `http://` providers through (`HTTP_PROXY`).
    #[arg(long)]
    sidecar_http_proxy: Option<String>,
    /// Hosts injected sidecars reach directly when a proxy is set (`NO_PROXY`, comma-separated);
    /// the policy service's host is always added.
    #[arg(long, default_value = ".svc,.cluster.local,127.0.0.1,localhost")]
    sidecar_no_proxy: String,
    /// `text` or `json` logs.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plumb-operator: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

/// What the webhook injects, and its TLS: the managed certificate, or its own files.
fn webhook_setup(
    args: &Args,
    managed: Option<(&Arc<Resolver>, &str)>,
) -> Result<Option<(tokio_rustls::TlsAcceptor, webhook::Inject)>, String> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let (tls, ca) = match (managed, &args.webhook_cert_file, &args.webhook_key_file) {
        (Some((resolver, ca)), _, _) => (
            webhook::server::resolver_acceptor(resolver.clone())?,
            ca.to_owned(),
        ),
        (None, Some(cert), Some(key)) => {
            let tls = webhook::server::acceptor(&read(cert)?, &read(key)?)?;
            let ca_file = args
                .control_plane_ca_file
                .as_ref()
                .ok_or("--control-plane-ca-file is needed with the webhook: injected sidecars must trust the policy service")?;
            let ca = String::from_utf8(read(ca_file)?)
                .map_err(|_| format!("{}: not PEM text", ca_file.display()))?;
            (tls, ca)
        }
        (None, _, _) => return Ok(None),
    };
    for (flag, q) in [
        ("--sidecar-cpu", &args.sidecar_cpu),
        ("--sidecar-memory", &args.sidecar_memory),
    ] {
        if !webhook::positive_quantity(q) {
            return Err(format!("{flag}: {q:?} is not a Kubernetes quantity"));
        }
    }
    for (flag, url) in [
        ("--sidecar-https-proxy", &args.sidecar_https_proxy),
        ("--sidecar-http-proxy", &args.sidecar_http_proxy),
    ] {
        if let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty())
            && !url.trim().starts_with("http://")
        {
            // Not quoted back: it may hold a password.
            return Err(format!(
                "{flag}: the proxy must be an http:// URL (https:// upstreams are tunnelled through it, TLS end to end)"
            ));
        }
    }
    let namespace = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "plumb-system".into());
    let control_plane = args
        .policy_service_url
        .clone()
        .unwrap_or_else(|| format!("https://plumb-policy.{namespace}.svc:15410"));
    Ok(Some((
        tls,
        webhook::Inject {
            image: args.sidecar_image.clone(),
            pull_policy: args.sidecar_pull_policy.clone(),
            env: webhook::proxy_env(
                args.sidecar_https_proxy.as_deref(),
                args.sidecar_http_proxy.as_deref(),
                &args.sidecar_no_proxy,
                &control_plane,
            ),
            control_plane,
            control_plane_ca: ca,
            cpu: args.sidecar_cpu.clone(),
            memory: args.sidecar_memory.clone(),
            audience: args.token_audience.clone(),
        },
    )))
}

/// The policy listener's TLS connections, handshakes done concurrently.
fn tls_incoming(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<
    Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>,
> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await
                {
                    let _ = tx.send(Ok(tls)).await;
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

async fn run(args: Args) -> ExitCode {
    let _otel = match plumb_telemetry::otel::init(
        &args.log_format,
        "plumb-operator",
        plumb_telemetry::otel::SpanContext::Full,
    ) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("plumb-operator: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "plumb-operator: cannot reach the Kubernetes API (KUBECONFIG or in-cluster config): {e}"
            );
            return ExitCode::from(EX_CONFIG);
        }
    };
    // The serving certificate: managed in a Secret, or from files.
    let (resolver, managed) = if args.manage_certificates {
        let manager = certs::Manager {
            client: client.clone(),
            namespace: std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "plumb-system".into()),
            secret: args.tls_secret.clone(),
            webhook_configuration: args.webhook_configuration.clone(),
            dns_names: args.certificate_dns_names.clone(),
            validity: args.certificate_validity,
            renew_before: args.certificate_renew_before,
        };
        let material = match manager.ensure().await {
            Ok(m) => m,
            Err(e) => {
                eprintln!("plumb-operator: cannot set up the serving certificate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let key = match certs::certified_key(&material.cert_pem, &material.key_pem) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("plumb-operator: the serving certificate is unusable: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = manager.patch_ca_bundle(&material.ca_pem).await {
            tracing::warn!(error = %e, "cannot patch the webhook's CA bundle yet; retrying at each check");
        }
        let resolver = certs::Resolver::new(key);
        let ca = material.ca_pem.clone();
        tokio::spawn(manager.run(resolver.clone(), args.certificate_check_interval, material));
        (resolver, Some(ca))
    } else {
        let (Some(cert), Some(key)) = (&args.tls_cert_file, &args.tls_key_file) else {
            return ExitCode::from(EX_CONFIG);
        };
        let read =
            |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        match read(cert).and_then(|c| read(key).and_then(|k| certs::certified_key(&c, &k))) {
            Ok(k) => (certs::Resolver::new(k), None),
            Err(e) => {
                eprintln!(
                    "plumb-operator: invalid configuration: the policy listener's certificate or key: {e}"
                );
                return ExitCode::from(EX_CONFIG);
            }
        }
    };
    let policy_tls = match certs::server_config(resolver.clone()) {
        Ok(c) => tokio_rustls::TlsAcceptor::from(Arc::new(c)),
        Err(e) => {
            eprintln!("plumb-operator: the policy listener's TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    let webhook = match webhook_setup(&args, managed.as_deref().map(|ca| (&resolver, ca))) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("plumb-operator: invalid configuration: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let epoch = plumb_telemetry::clock::unix_ms_now().unsigned_abs();
    let policies = Arc::new(Policies::new(epoch));
    let metrics = Arc::new(OperatorMetrics::new());
    let (acks_tx, acks_rx) = tokio::sync::mpsc::channel(4096);
    let bind = |addr| async move { tokio::net::TcpListener::bind(addr).await };
    let (policy_listener, admin_listener) = match (
        bind(args.policy_listen).await,
        bind(args.admin_listen).await,
    ) {
        (Ok(p), Ok(a)) => (p, a),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("plumb-operator: cannot listen: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let (Ok(policy_addr), Ok(admin_addr)) =
        (policy_listener.local_addr(), admin_listener.local_addr())
    else {
        return ExitCode::FAILURE;
    };
    let webhook_addr = match webhook {
        Some((acceptor, inject)) => {
            match tokio::net::TcpListener::bind(args.webhook_listen).await {
                Ok(l) => {
                    let addr = l.local_addr().ok();
                    tokio::spawn(webhook::server::serve(
                        l,
                        acceptor,
                        Arc::new(inject),
                        plumb_operator::listener::Limits::default(),
                    ));
                    addr
                }
                Err(e) => {
                    eprintln!("plumb-operator: cannot listen for the webhook: {e}");
                    return ExitCode::from(EX_CONFIG);
                }
            }
        }
        None => {
            tracing::info!(
                "no webhook certificate given: sidecar injection is off on this replica"
            );
            None
        }
    };
    let ready = Arc::new(AtomicBool::new(false));
    tokio::spawn(plumb_operator::admin::serve(
        admin_listener,
        metrics.clone(),
        ready.clone(),
        plumb_operator::listener::Limits::default(),
    ));
    let (leading_tx, leading) = tokio::sync::watch::channel(!args.leader_elect);
    let election = args.leader_elect.then(|| {
        let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        Election {
            namespace: env("POD_NAMESPACE").unwrap_or_else(|| "plumb-system".into()),
            lease: args.lease_name.clone(),
            identity: env("POD_NAME")
                .or_else(|| env("HOSTNAME"))
                .unwrap_or_else(|| format!("plumb-operator-{epoch}")),
            duration: args.lease_duration,
            retry: args.lease_retry,
            renew_deadline: args
                .lease_renew_deadline
                .unwrap_or(args.lease_duration * 2 / 3),
        }
    });
    if let Some(e) = &election {
        if let Err(invalid) = e.validate() {
            eprintln!("plumb-operator: invalid configuration: {invalid}");
            return ExitCode::from(EX_CONFIG);
        }
        let (e, client) = (e.clone(), client.clone());
        tokio::spawn(async move {
            let ended = e.run(client, leading_tx).await;
            // Out of the loop with nothing stale in memory: start again as a follower.
            eprintln!(
                "plumb-operator: no longer the leader ({ended}); exiting to rejoin as a follower"
            );
            std::process::exit(1);
        });
    }
    if !(0.0..=1.0).contains(&args.incident_error_rate)
        || !(0.0..=1.0).contains(&args.incident_retry_scale)
    {
        eprintln!(
            "plumb-operator: invalid configuration: --incident-error-rate and --incident-retry-scale must be between 0 and 1"
        );
        return ExitCode::from(EX_CONFIG);
    }
    let knowledge = Arc::new(Knowledge::new(
        plumb_knowledge::Settings {
            window: args.knowledge_window.max(Duration::from_secs(6)),
            incident_error_rate: args.incident_error_rate,
            incident_min_attempts: args.incident_min_attempts,
            incident_retry_scale: args.incident_retry_scale,
            ..plumb_knowledge::Settings::default()
        },
        args.knowledge_push_interval,
        metrics.clone(),
    ));
    let server = PolicyServer {
        leading: leading.clone(),
        policies: policies.clone(),
        knowledge: knowledge.clone(),
        auth: Arc::new(TokenReviewer::new(
            client.clone(),
            args.token_audience.clone(),
        )),
        heartbeat: args.heartbeat_interval,
        token_pace: plumb_operator::grpc::token::Pace {
            recheck: args.token_recheck_interval.max(Duration::from_secs(1)),
            retry: Duration::from_secs(10),
            min_ask_gap: Duration::from_secs(5),
            // Streams that connected together recheck spread over ±20% of the interval.
            jitter: 0.2,
        },
        acks: acks_tx,
        metrics: metrics.clone(),
        encodings: Default::default(),
    };
    let grpc = Server::builder()
        .http2_keepalive_interval(Some(args.heartbeat_interval))
        .add_service(plumb_operator::grpc::service(server))
        .serve_with_incoming_shutdown(
            tls_incoming(policy_listener, policy_tls),
            plumb_telemetry::shutdown::signal(),
        );
    let (secrets, secrets_writer) = kube::runtime::reflector::store();
    let ctx = Arc::new(Context {
        secrets,
        client: client.clone(),
        policies,
        knowledge: knowledge.clone(),
        recorder: Recorder::new(
            client.clone(),
            reconcile::reporter(std::env::var("POD_NAME").ok()),
        ),
        metrics,
        resync: args.resync,
    });
    // Only the leader reconciles, keeps the fleet's knowledge and writes status.
    let pace = knowledge::StatusPace {
        tick: Duration::from_millis(250),
        min_interval: args.knowledge_status_min_interval,
        interval: args.knowledge_status_interval,
    };
    let knowledge_recorder = Recorder::new(
        client.clone(),
        reconcile::reporter(std::env::var("POD_NAME").ok()),
    );
    let mut became = leading.clone();
    let knowledge_client = client.clone();
    let controller = tokio::spawn(async move {
        if became.wait_for(|l| *l).await.is_ok() {
            tokio::spawn(knowledge::run(
                knowledge,
                knowledge_client,
                knowledge_recorder,
                pace,
            ));
            reconcile::run(ctx, acks_rx, secrets_writer).await;
        }
    });
    let mut out = std::io::stdout().lock();
    let _ = match webhook_addr {
        Some(w) => writeln!(
            out,
            "plumb-operator policy https://{policy_addr} admin http://{admin_addr} webhook https://{w}"
        ),
        None => writeln!(
            out,
            "plumb-operator policy https://{policy_addr} admin http://{admin_addr}"
        ),
    };
    let _ = out.flush();
    drop(out);
    ready.store(true, Ordering::Release);
    let result = grpc.await;
    controller.abort();
    if let Some(e) = &election
        && *leading.borrow()
    {
        e.release(&client).await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plumb-operator: the policy server failed: {e}");
            ExitCode::FAILURE
        }
    }
}
