//! `plumb-scorecard`: every fault of the simulator's catalogue through a sidecar with default
//! routes, and the same request sent directly to the provider, judged the same way
//! (`plumb_loadgen::scorecard`). `make scorecard` runs the whole card; `--quick` (`make
//! scorecard-quick`) a subset that takes seconds. Exits non-zero when anything through the
//! sidecar was unsafe.
//!
//! The simulator runs in this process. Every scenario has a route of its own, with default
//! settings and two targets — the primary, whose every attempt fails with the fault, and one
//! fallback of the other family at priority 1, each with its provider's key — on models of its
//! own on the simulator, so no scenario's breaker, learned deadline or retry budget touches
//! another's and they can run at once; the simulator's attempt log then counts each scenario's
//! attempts per target. `--only` runs the scenarios whose name contains a word, and prints what
//! each got in full on standard error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Parser;
use plumb_loadgen::scorecard::{
    Capture, Expect, Family, Outcome, Tally, Verdict, classify, expect_for, request_body, short,
    wants_structured,
};
use plumb_simulator::catalog::{ModelSpec, default_models};
use plumb_simulator::{CATALOGUE, Fault, PlanSpec, SimConfig, Simulator};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Every fault of the simulator through a sidecar with default routes, against direct calls.
mod render;
mod sequences;

use render::*;
use sequences::*;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The sidecar binary.
    #[arg(long, default_value = "target/debug/plumb-sidecar")]
    sidecar: PathBuf,
    /// A subset that takes seconds: the OpenAI client's route only, every fault but `hang`
    /// (which waits out the default 60 s first-byte deadline), a short flapping outage, no slow
    /// degradation.
    #[arg(long)]
    quick: bool,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The client's timeout per request, seconds.
    #[arg(long, default_value_t = 180.0)]
    timeout: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Only the fault scenarios whose name contains this (`b-stream-cut`, `hang`, `-s`), and no
    /// flapping or degradation: for looking into one result.
    #[arg(long)]
    only: Option<String>,
}

/// Which default route a scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RouteKind {
    /// An OpenAI client; OpenAI primary, Anthropic fallback.
    A,
    /// An Anthropic client; Anthropic primary, OpenAI fallback.
    B,
}

impl RouteKind {
    fn client(self) -> Family {
        match self {
            RouteKind::A => Family::Openai,
            RouteKind::B => Family::Anthropic,
        }
    }

    fn fallback_family(self) -> Family {
        match self {
            RouteKind::A => Family::Anthropic,
            RouteKind::B => Family::Openai,
        }
    }

    /// The simulator model the primary copies, and what a direct client calls.
    fn primary_model(self, reasoning: bool) -> &'static str {
        match (self, reasoning) {
            (RouteKind::A, false) => "sim-gpt",
            (RouteKind::B, false) => "sim-claude",
            (RouteKind::A, true) => "sim-gpt-reasoner",
            (RouteKind::B, true) => "sim-claude-thinker",
        }
    }

    fn fallback_model(self) -> &'static str {
        match self {
            RouteKind::A => "sim-claude",
            RouteKind::B => "sim-gpt-mini",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            RouteKind::A => "a",
            RouteKind::B => "b",
        }
    }
}

/// One request through the sidecar and the same one directly.
#[derive(Clone, Debug)]
struct Scenario {
    /// The route's name, the model the client asks for, and the stem of its simulator models.
    id: String,
    /// The fault's catalogue name, or `None` for a healthy reasoning model.
    fault: Option<String>,
    route: RouteKind,
    stream: bool,
}

impl Scenario {
    fn new(fault: Option<&str>, route: RouteKind, stream: bool) -> Scenario {
        let what = fault.unwrap_or("reasoning").replace('_', "-");
        let s = if stream { "s" } else { "u" };
        Scenario {
            id: format!("{}-{what}-{s}", route.tag()),
            fault: fault.map(str::to_owned),
            route,
            stream,
        }
    }

    fn primary(&self) -> String {
        format!("sc-{}-p", self.id)
    }

    fn fallback(&self) -> String {
        format!("sc-{}-f", self.id)
    }

    fn structured(&self) -> bool {
        self.fault.as_deref().is_some_and(wants_structured)
    }

    fn expect(&self) -> Expect {
        self.fault.as_deref().map_or_else(Expect::plain, expect_for)
    }

    fn label(&self) -> String {
        match &self.fault {
            Some(f) => format!("`{f}`"),
            None => "reasoning model, healthy (thinks 2 s)".to_owned(),
        }
    }
}

/// What one scenario gave.
struct Scored {
    scenario: Scenario,
    through: Capture,
    through_verdict: Verdict,
    /// Attempts the simulator saw on the primary and the fallback.
    sim_attempts: (usize, usize),
    direct_verdict: Verdict,
}

/// A child process killed when dropped.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plumb-scorecard: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(card(args)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(unsafe_count) => {
            eprintln!("plumb-scorecard: {unsafe_count} unsafe result(s) through the sidecar");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("plumb-scorecard: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A copy of a built-in model under another name, optionally failing every attempt.
fn copy_model(name: &str, fault: Option<Fault>) -> anyhow::Result<ModelSpec> {
    let mut spec = default_models()
        .get(name)
        .cloned()
        .ok_or_else(|| anyhow!("the simulator has no model {name}"))?;
    spec.fault = fault;
    Ok(spec)
}

/// The sidecar's keys, one per provider as a real route has (from its environment). With the
/// same credentials on both targets a 401 from the primary would rightly skip the fallback
/// ("uses the same credentials that were refused").
const KEYS: [(&str, &str); 2] = [
    ("PLUMB_SCORECARD_OPENAI_KEY", "sk-scorecard-openai-0000"),
    (
        "PLUMB_SCORECARD_ANTHROPIC_KEY",
        "sk-ant-scorecard-anthropic-0000",
    ),
];

fn target_yaml(name: &str, family: Family, sim: &str, model: &str, priority: u32) -> String {
    let (provider, base, key) = match family {
        Family::Openai => ("openai", format!("{sim}/v1"), KEYS[0].0),
        Family::Anthropic => ("anthropic", sim.to_owned(), KEYS[1].0),
    };
    let priority = if priority > 0 {
        format!("      priority: {priority}\n")
    } else {
        String::new()
    };
    format!(
        "    - name: {name}\n      provider: {provider}\n      baseUrl: {base}\n      model: {model}\n      credentials: {{env: {key}}}\n{priority}"
    )
}

/// A default route: the primary, and one fallback at priority 1; nothing else set.
fn route_yaml(
    id: &str,
    route: RouteKind,
    sim: &str,
    primary_model: &str,
    fallback_model: &str,
) -> String {
    format!(
        "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: {id}, namespace: scorecard}}\nspec:\n  match: {{models: [{id}]}}\n  targets:\n{}{}",
        target_yaml("primary", route.client(), sim, primary_model, 0),
        target_yaml("fallback", route.fallback_family(), sim, fallback_model, 1),
    )
}

fn spawn_sidecar(bin: &PathBuf, routes: &PathBuf, log: &PathBuf) -> anyhow::Result<(Proc, String)> {
    let log_file = std::fs::File::create(log)?;
    let mut child = Command::new(bin)
        .arg("--routes")
        .arg(routes)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .envs(KEYS)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file))
        .spawn()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let proc = Proc { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    // "plumb-sidecar listening on http://A admin http://B"
    let words: Vec<&str> = line.split_whitespace().collect();
    let url = words
        .iter()
        .position(|w| *w == "on")
        .and_then(|i| words.get(i + 1))
        .ok_or_else(|| {
            anyhow!(
                "{} did not start ({line:?}); its log: {}",
                bin.display(),
                log.display()
            )
        })?
        .to_string();
    Ok((proc, url))
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Sends one request and reads whatever comes back, to the end.
async fn send(
    client: &reqwest::Client,
    url: &str,
    family: Family,
    body: &Value,
    fault_header: Option<&str>,
    timeout: Duration,
) -> Capture {
    let start = Instant::now();
    let mut req = client.post(url).json(body).timeout(timeout);
    req = match family {
        Family::Openai => req.bearer_auth("sk-scorecard-client"),
        Family::Anthropic => req
            .header("x-api-key", "sk-ant-scorecard-client")
            .header("anthropic-version", "2023-06-01"),
    };
    if let Some(f) = fault_header {
        req = req.header("x-sim-fault", f);
    }
    let mut c = Capture::default();
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            c.timed_out = e.is_timeout();
            c.transport_error = Some(error_chain(&e));
            c.elapsed = start.elapsed();
            return c;
        }
    };
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    c.status = Some(resp.status().as_u16());
    c.content_type = header("content-type");
    c.attempts = header("x-plumb-attempts");
    c.served_by = header("x-plumb-served-by");
    c.failure_classes = header("x-plumb-failure-classes");
    let mut bytes = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                c.timed_out = e.is_timeout();
                c.transport_error = Some(error_chain(&e));
                break;
            }
        }
    }
    c.body = String::from_utf8_lossy(&bytes).into_owned();
    c.elapsed = start.elapsed();
    c
}

struct Env {
    sim: Simulator,
    /// About when the simulator started: its attempt log's times count from here.
    sim_epoch: Instant,
    sidecar_url: String,
    client: reqwest::Client,
    timeout: Duration,
    /// Print a line per scenario as it ends.
    progress: bool,
}

impl Env {
    async fn through(
        &self,
        family: Family,
        model: &str,
        stream: bool,
        structured: bool,
    ) -> Capture {
        let url = format!("{}{}", self.sidecar_url, family.path());
        let body = request_body(family, model, stream, structured);
        send(&self.client, &url, family, &body, None, self.timeout).await
    }

    async fn direct(&self, s: &Scenario) -> Capture {
        let family = s.route.client();
        let url = format!("{}{}", self.sim.base_url(), family.path());
        let model = s.route.primary_model(s.fault.is_none());
        let body = request_body(family, model, s.stream, s.structured());
        send(
            &self.client,
            &url,
            family,
            &body,
            s.fault.as_deref(),
            self.timeout,
        )
        .await
    }
}

async fn run_scenario(env: Arc<Env>, s: Scenario) -> Scored {
    let family = s.route.client();
    let expect = s.expect();
    let (through, direct) = tokio::join!(
        env.through(family, &s.id, s.stream, s.structured()),
        env.direct(&s)
    );
    let through_verdict = classify(family, &expect, &through);
    let direct_verdict = classify(family, &expect, &direct);
    let sim_attempts = (
        env.sim.attempts(Some(&s.primary())).len(),
        env.sim.attempts(Some(&s.fallback())).len(),
    );
    if env.progress {
        eprintln!(
            "{:<26} {:>6} ms  {} | direct {} ({})",
            s.id,
            through.elapsed.as_millis(),
            through_verdict,
            direct_verdict.outcome.direct(),
            direct_verdict.detail
        );
    }
    Scored {
        scenario: s,
        through,
        through_verdict,
        sim_attempts,
        direct_verdict,
    }
}

fn git_commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn card(args: Args) -> anyhow::Result<usize> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let wall = Instant::now();
    let routes: &[RouteKind] = if args.quick {
        &[RouteKind::A]
    } else {
        &[RouteKind::A, RouteKind::B]
    };
    let mut scenarios = Vec::new();
    let mut skipped = Vec::new();
    // The slowest first, so they overlap everything else.
    let mut names: Vec<&str> = CATALOGUE.iter().map(|(n, _)| *n).collect();
    names.sort_by_key(|n| u8::from(*n != "hang"));
    for name in names {
        if args.quick && name == "hang" {
            skipped.push(name);
            continue;
        }
        for &route in routes {
            for stream in [false, true] {
                scenarios.push(Scenario::new(Some(name), route, stream));
            }
        }
    }
    for &route in routes {
        for stream in [false, true] {
            scenarios.push(Scenario::new(None, route, stream));
        }
    }
    if let Some(only) = &args.only {
        scenarios.retain(|s| s.id.contains(only.as_str()));
    }
    let flaps: Vec<Flap> = if args.only.is_some() {
        Vec::new()
    } else if args.quick {
        vec![Flap {
            id: "a-flapping".into(),
            route: RouteKind::A,
            downs: vec![(Duration::ZERO, Duration::from_secs(2))],
            length: Duration::from_secs(5),
        }]
    } else {
        routes
            .iter()
            .map(|&route| Flap {
                id: format!("{}-flapping", route.tag()),
                route,
                downs: vec![
                    (Duration::ZERO, Duration::from_secs(3)),
                    (Duration::from_secs(5), Duration::from_secs(2)),
                ],
                length: Duration::from_secs(20),
            })
            .collect()
    };
    // Twenty requests at 100 ms (enough samples to learn a deadline), then 30% slower each,
    // then one step past the default first-token deadline (30 s).
    let delays: Vec<Duration> = (0..20)
        .map(|_| Duration::from_millis(100))
        .chain((1..=18).map(|j| Duration::from_secs_f64(0.1 * 1.3f64.powi(j))))
        .map(|d| Duration::from_millis(d.as_millis() as u64))
        .chain([Duration::from_secs(45)])
        .collect();
    let degrades: Vec<Degrade> = if args.quick || args.only.is_some() {
        Vec::new()
    } else {
        let mut v = Vec::new();
        for &route in routes {
            for slow in [Slow::FirstToken, Slow::StreamHead, Slow::WholeHead] {
                v.push(Degrade {
                    id: format!("{}-degrading-{}", route.tag(), slow.tag()),
                    route,
                    slow,
                    delays: delays.clone(),
                });
            }
        }
        v
    };

    // The simulator's models: a primary and a fallback of its own for each scenario.
    let mut config = SimConfig::default();
    for s in &scenarios {
        let fault = match &s.fault {
            Some(f) => Some(f.parse::<Fault>().map_err(|e| anyhow!("{f}: {e}"))?),
            None => None,
        };
        config.models.insert(
            s.primary(),
            copy_model(s.route.primary_model(s.fault.is_none()), fault)?,
        );
        config
            .models
            .insert(s.fallback(), copy_model(s.route.fallback_model(), None)?);
    }
    let sequences: Vec<(String, RouteKind)> = flaps
        .iter()
        .map(|f| (f.id.clone(), f.route))
        .chain(degrades.iter().map(|d| (d.id.clone(), d.route)))
        .collect();
    for (id, route) in &sequences {
        config.models.insert(
            format!("sc-{id}-p"),
            copy_model(route.primary_model(false), None)?,
        );
        config.models.insert(
            format!("sc-{id}-f"),
            copy_model(route.fallback_model(), None)?,
        );
    }
    let sim_epoch = Instant::now();
    let sim = Simulator::start(config, "127.0.0.1:0".parse()?, false).await?;
    let sim_url = sim.base_url();

    let dir = std::env::temp_dir().join(format!("plumb-scorecard-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut docs = Vec::new();
    for s in &scenarios {
        docs.push(route_yaml(
            &s.id,
            s.route,
            &sim_url,
            &s.primary(),
            &s.fallback(),
        ));
    }
    for (id, route) in &sequences {
        docs.push(route_yaml(
            id,
            *route,
            &sim_url,
            &format!("sc-{id}-p"),
            &format!("sc-{id}-f"),
        ));
    }
    let routes_path = dir.join("routes.yaml");
    std::fs::write(&routes_path, docs.join("---\n"))?;
    let log_path = dir.join("sidecar.log");
    let (_sidecar, sidecar_url) = spawn_sidecar(&args.sidecar, &routes_path, &log_path)?;

    let timeout = Duration::from_secs_f64(args.timeout);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()?;
    let env = Arc::new(Env {
        sim,
        sim_epoch,
        sidecar_url,
        client,
        timeout,
        progress: !args.quick,
    });
    eprintln!(
        "plumb-scorecard: {} scenarios, {} timed sequences; sidecar log {}",
        scenarios.len(),
        sequences.len(),
        log_path.display()
    );

    let flap_tasks: Vec<_> = flaps
        .into_iter()
        .map(|f| tokio::spawn(run_flap(env.clone(), f)))
        .collect();
    let degrade_tasks: Vec<_> = degrades
        .into_iter()
        .map(|d| tokio::spawn(run_degrade(env.clone(), d)))
        .collect();
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::new();
    for s in scenarios {
        let env = env.clone();
        let permits = permits.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await;
            run_scenario(env, s).await
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await?);
    }
    let mut flap_results = Vec::new();
    for t in flap_tasks {
        flap_results.push(t.await??);
    }
    let mut degrade_results = Vec::new();
    for t in degrade_tasks {
        degrade_results.push(t.await??);
    }

    let (report, unsafe_count) = render(
        &args,
        &results,
        &flap_results,
        &degrade_results,
        &skipped,
        wall.elapsed(),
    );
    println!("{report}");
    if let Some(summary) = report.lines().find(|l| l.starts_with("**Summary**")) {
        eprintln!(
            "plumb-scorecard: {}",
            summary.trim_start_matches("**Summary**: ")
        );
    }
    if let Some(out) = &args.out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(out, &report)?;
    }
    if unsafe_count == 0 {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!(
            "plumb-scorecard: kept the routes and the sidecar's log in {}",
            dir.display()
        );
    }
    Ok(unsafe_count)
}
