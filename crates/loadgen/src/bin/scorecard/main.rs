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

/// One request of a timed sequence (flapping, degradation).
struct Shot {
    /// When it was sent, from the start of the sequence.
    at: Duration,
    /// The primary's delay for this request, for a degradation.
    delay: Option<Duration>,
    /// Attempts on the fallback for this request, for a degradation (requests one at a time).
    fallback_attempts: usize,
    capture: Capture,
    verdict: Verdict,
}

/// A flapping outage: the primary answers 503 during `downs` (start, length), healthy
/// otherwise; a request every 250 ms for `length`, streamed and not in turn.
struct Flap {
    id: String,
    route: RouteKind,
    downs: Vec<(Duration, Duration)>,
    length: Duration,
}

/// A flapping outage's requests, and the attempts its primary saw: when (from the start of
/// the sequence) and with what status.
type Flapped = (Flap, Vec<Shot>, Vec<(Duration, u16)>);

async fn run_flap(env: Arc<Env>, flap: Flap) -> anyhow::Result<Flapped> {
    let primary = format!("sc-{}-p", flap.id);
    let start = Instant::now();
    let mut plans = Vec::new();
    for (at, len) in flap.downs.clone() {
        let env = env.clone();
        let primary = primary.clone();
        plans.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            let spec = PlanSpec {
                fault: Fault::Unavailable,
                first: None,
                for_: Some(format!("{}ms", len.as_millis())),
                share: None,
                seed: None,
            };
            env.sim.set_plan(&primary, spec)
        }));
    }
    let mut shots = Vec::new();
    let mut k = 0u32;
    loop {
        let at = Duration::from_millis(250) * k;
        if at >= flap.length {
            break;
        }
        let env = env.clone();
        let id = flap.id.clone();
        let family = flap.route.client();
        let stream = k % 2 == 1;
        shots.push(tokio::spawn(async move {
            tokio::time::sleep_until(start + at).await;
            let capture = env.through(family, &id, stream, false).await;
            let verdict = classify(family, &Expect::plain(), &capture);
            Shot {
                at,
                delay: None,
                fallback_attempts: 0,
                capture,
                verdict,
            }
        }));
        k += 1;
    }
    for p in plans {
        p.await?.map_err(|e| anyhow!("plan: {e}"))?;
    }
    let mut out = Vec::new();
    for s in shots {
        out.push(s.await?);
    }
    let offset = start.duration_since(env.sim_epoch).as_secs_f64() * 1000.0;
    let mut seen = env
        .sim
        .attempts(Some(&primary))
        .iter()
        .map(|a| {
            (
                Duration::from_secs_f64((a.at_ms - offset).max(0.0) / 1000.0),
                a.status,
            )
        })
        .collect::<Vec<_>>();
    seen.sort_by_key(|(at, _)| *at);
    Ok((flap, out, seen))
}

/// How a degrading primary is slow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slow {
    /// A stream whose head and preamble come at once and whose first token comes late
    /// (`slow_first_token`).
    FirstToken,
    /// A stream whose response head comes late (`slow_first_byte`).
    StreamHead,
    /// An unstreamed answer whose response head comes late (`slow_first_byte`).
    WholeHead,
}

impl Slow {
    fn stream(self) -> bool {
        self != Slow::WholeHead
    }

    fn fault(self) -> &'static str {
        match self {
            Slow::FirstToken => "slow_first_token",
            Slow::StreamHead | Slow::WholeHead => "slow_first_byte",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Slow::FirstToken => "t",
            Slow::StreamHead => "h",
            Slow::WholeHead => "u",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Slow::FirstToken => "streamed, head at once and the first token late",
            Slow::StreamHead => "streamed, the response head late",
            Slow::WholeHead => "unstreamed, the response head late",
        }
    }
}

/// A slow degradation: requests one after another while the primary gets slower with each.
struct Degrade {
    id: String,
    route: RouteKind,
    slow: Slow,
    delays: Vec<Duration>,
}

async fn run_degrade(env: Arc<Env>, d: Degrade) -> anyhow::Result<(Degrade, Vec<Shot>)> {
    let primary = format!("sc-{}-p", d.id);
    let fallback = format!("sc-{}-f", d.id);
    let family = d.route.client();
    let start = Instant::now();
    let mut out = Vec::new();
    for delay in &d.delays {
        let fault: Fault = format!("{}:delay={}ms", d.slow.fault(), delay.as_millis())
            .parse()
            .map_err(|e| anyhow!("{e}"))?;
        env.sim
            .set_plan(
                &primary,
                PlanSpec {
                    fault,
                    first: Some(1_000),
                    for_: None,
                    share: None,
                    seed: None,
                },
            )
            .map_err(|e| anyhow!("plan: {e}"))?;
        let at = start.elapsed();
        let before = env.sim.attempts(Some(&fallback)).len();
        let capture = env.through(family, &d.id, d.slow.stream(), false).await;
        let verdict = classify(family, &Expect::plain(), &capture);
        out.push(Shot {
            at,
            delay: Some(*delay),
            fallback_attempts: env.sim.attempts(Some(&fallback)).len() - before,
            capture,
            verdict,
        });
    }
    if env.progress {
        eprintln!("{:<34} done", d.id);
    }
    Ok((d, out))
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

/// An outcome for the table: the word, what was served when it is news, and the model the
/// answer names when it is none of those asked for.
fn cell(v: &Verdict, direct: bool, asked: &[&str]) -> String {
    let word = if direct {
        v.outcome.direct()
    } else {
        v.outcome.through()
    };
    let mut out =
        if v.outcome == Outcome::Rescued && (v.detail == "complete" || v.detail == "valid JSON") {
            word.to_owned()
        } else {
            // Plumb's errors name every target and why: they get the room.
            format!(
                "{word}: {}",
                short(&v.detail, if direct { 48 } else { 130 })
            )
        };
    if let Some(m) = v.model.as_deref().filter(|m| !asked.contains(m)) {
        out.push_str(&format!(" (answer names `{m}`)"));
    }
    out
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
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

/// The primary's attempts in a flapping outage, runs of answered ones folded:
/// `0.00: 503, 0.01: 503, …, 7.00–9.75: 200 ×12`.
fn primary_attempts(seen: &[(Duration, u16)]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < seen.len() {
        let (at, status) = seen[i];
        let mut j = i;
        while j + 1 < seen.len() && seen[j + 1].1 == status && status == 200 {
            j += 1;
        }
        if j > i {
            parts.push(format!(
                "{:.2}–{:.2}: {status} ×{}",
                at.as_secs_f64(),
                seen[j].0.as_secs_f64(),
                j - i + 1
            ));
        } else {
            parts.push(format!("{:.2}: {status}", at.as_secs_f64()));
        }
        i = j + 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

fn render(
    args: &Args,
    results: &[Scored],
    flaps: &[Flapped],
    degrades: &[(Degrade, Vec<Shot>)],
    skipped: &[&str],
    wall: Duration,
) -> (String, usize) {
    let mut r = String::new();
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let kind = if args.quick {
        "quick card"
    } else {
        "full card"
    };
    r.push_str(&format!(
        "Scorecard ({kind}), commit {}, {date}, {:.0} s wall time. Each fault with its default parameters on every attempt to the primary of a default route (a primary and one fallback of the other family); the same request sent directly to the primary's model with the same fault.\n\n",
        git_commit(),
        wall.as_secs_f64()
    ));
    r.push_str("| fault | client | stream | through Plumb | ms | attempts (primary + fallback) | served by | failure classes | direct to the provider |\n");
    r.push_str("| --- | --- | --- | --- | ---: | --- | --- | --- | --- |\n");
    let mut through = Tally::default();
    let mut direct = Tally::default();
    let mut by_route: BTreeMap<RouteKind, (Tally, Tally)> = BTreeMap::new();
    let mut unsafe_lines = Vec::new();
    for res in results {
        let s = &res.scenario;
        through.add(res.through_verdict.outcome);
        direct.add(res.direct_verdict.outcome);
        let e = by_route.entry(s.route).or_default();
        e.0.add(res.through_verdict.outcome);
        e.1.add(res.direct_verdict.outcome);
        if res.through_verdict.outcome == Outcome::Unsafe {
            unsafe_lines.push(format!(
                "{} {} {}: {}",
                s.label(),
                s.route.client().as_str(),
                if s.stream { "streamed" } else { "unstreamed" },
                res.through_verdict.detail
            ));
        }
        let attempts = if res.through.attempts.is_empty() {
            format!("– ({} + {})", res.sim_attempts.0, res.sim_attempts.1)
        } else {
            format!(
                "{} ({} + {})",
                res.through.attempts, res.sim_attempts.0, res.sim_attempts.1
            )
        };
        r.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.label(),
            s.route.client().as_str(),
            if s.stream { "yes" } else { "no" },
            cell(
                &res.through_verdict,
                false,
                &[s.id.as_str(), &s.primary(), &s.fallback()]
            ),
            res.through.elapsed.as_millis(),
            attempts,
            or_dash(&res.through.served_by),
            or_dash(&res.through.failure_classes),
            cell(
                &res.direct_verdict,
                true,
                &[s.route.primary_model(s.fault.is_none())]
            ),
        ));
    }
    r.push('\n');
    if !skipped.is_empty() {
        r.push_str(&format!(
            "Not in the quick card: {} (it waits out the default 60 s first-byte deadline; `make scorecard` runs it).\n\n",
            skipped
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let mut seq_tally = Tally::default();
    for (flap, shots, seen) in flaps {
        let mut t = Tally::default();
        for s in shots {
            t.add(s.verdict.outcome);
            seq_tally.add(s.verdict.outcome);
            if s.verdict.outcome == Outcome::Unsafe {
                unsafe_lines.push(format!(
                    "flapping outage, {} request at {} ms: {}",
                    flap.route.client().as_str(),
                    s.at.as_millis(),
                    s.verdict.detail
                ));
            }
        }
        let downs: Vec<String> = flap
            .downs
            .iter()
            .map(|(a, l)| format!("{:.1}–{:.1} s", a.as_secs_f64(), (*a + *l).as_secs_f64()))
            .collect();
        r.push_str(&format!(
            "**Flapping outage**, {} client: the primary answers 503 during {} and is healthy otherwise; a request every 250 ms for {} s (streamed and not in turn): {} rescued, {} safe errors, {} unsafe.",
            flap.route.client().as_str(),
            downs.join(" and "),
            flap.length.as_secs(),
            t.rescued,
            t.safe,
            t.unsafe_
        ));
        for (a, l) in &flap.downs {
            let up = *a + *l;
            let next_down = flap
                .downs
                .iter()
                .map(|(s, _)| *s)
                .find(|s| *s > up)
                .unwrap_or(flap.length);
            // The first request of the up phase from which every later one went to the primary.
            let phase: Vec<&Shot> = shots
                .iter()
                .filter(|s| s.at >= up && s.at < next_down)
                .collect();
            let back = phase.iter().position(|s| s.capture.served_by == "primary");
            match back {
                Some(i) => r.push_str(&format!(
                    " Back up at {:.1} s: the primary answered again from the request sent at {:.2} s ({} ms after it recovered){}.",
                    up.as_secs_f64(),
                    phase[i].at.as_secs_f64(),
                    (phase[i].at - up).as_millis(),
                    if phase[i..].iter().all(|s| s.capture.served_by == "primary") {
                        ""
                    } else {
                        ", though not every later request"
                    }
                )),
                None => r.push_str(&format!(
                    " Back up at {:.1} s: the primary answered none of the requests sent before {:.1} s.",
                    up.as_secs_f64(),
                    next_down.as_secs_f64()
                )),
            }
        }
        let timeline: String = shots
            .iter()
            .map(
                |s| match (s.verdict.outcome, s.capture.served_by.as_str()) {
                    (Outcome::Unsafe, _) => '!',
                    (Outcome::SafeError, _) => 'x',
                    (Outcome::Rescued, "primary") => 'P',
                    (Outcome::Rescued, _) => 'f',
                },
            )
            .collect();
        r.push_str(&format!(
            " Who answered, every 250 ms: `{timeline}` (P primary, f fallback, x safe error, ! unsafe). Attempts on the primary (s: status): {}.\n\n",
            primary_attempts(seen)
        ));
    }

    for (d, shots) in degrades {
        let mut t = Tally::default();
        let mut primary_up_to = None;
        let mut failovers = Vec::new();
        let mut slowest = Duration::ZERO;
        for s in shots {
            t.add(s.verdict.outcome);
            seq_tally.add(s.verdict.outcome);
            slowest = slowest.max(s.capture.elapsed);
            let delay = s.delay.unwrap_or_default();
            if s.verdict.outcome == Outcome::Unsafe {
                unsafe_lines.push(format!(
                    "slow degradation, {} client, {}, primary delay {} ms: {}",
                    d.route.client().as_str(),
                    d.slow.describe(),
                    delay.as_millis(),
                    s.verdict.detail
                ));
            }
            if s.capture.served_by == "primary"
                && s.fallback_attempts == 0
                && s.verdict.outcome == Outcome::Rescued
            {
                primary_up_to = Some(delay);
            } else {
                let by = match (s.capture.served_by.as_str(), s.fallback_attempts) {
                    ("", _) => "nobody".to_owned(),
                    ("primary", n) if n > 0 => "primary, continued by the fallback".to_owned(),
                    (who, _) => who.to_owned(),
                };
                failovers.push(format!(
                    "{} → {} ms, {}, served by {by}",
                    delay.as_millis(),
                    s.capture.elapsed.as_millis(),
                    s.verdict.outcome.through()
                ));
            }
        }
        let first = d.delays.first().copied().unwrap_or_default();
        let last = d.delays.last().copied().unwrap_or_default();
        let ramp_top = d.delays.iter().rev().nth(1).copied().unwrap_or_default();
        r.push_str(&format!(
            "**Slow degradation**, {} client, {}: {} requests one after another while the primary's delay grows (20 at {} ms, then 30% slower each up to {} ms, then one at {} ms): {} rescued, {} safe errors, {} unsafe; the primary served up to a delay of {} ms; {} not answered by the primary alone (primary's delay → client's wait: {}); slowest answer {} ms.\n\n",
            d.route.client().as_str(),
            d.slow.describe(),
            shots.len(),
            first.as_millis(),
            ramp_top.as_millis(),
            last.as_millis(),
            t.rescued,
            t.safe,
            t.unsafe_,
            primary_up_to.map_or("–".to_owned(), |d| d.as_millis().to_string()),
            failovers.len(),
            if failovers.is_empty() { "none".to_owned() } else { failovers.join(", ") },
            slowest.as_millis(),
        ));
    }

    for (route, (t, dt)) in &by_route {
        r.push_str(&format!(
            "- {} client: through Plumb {} rescued, {} safe errors, {} unsafe; directly {} correct, {} errors, {} unsafe\n",
            route.client().as_str(),
            t.rescued,
            t.safe,
            t.unsafe_,
            dt.rescued,
            dt.safe,
            dt.unsafe_
        ));
    }
    if !flaps.is_empty() || !degrades.is_empty() {
        r.push_str(&format!(
            "- flapping and degradation requests through Plumb: {} rescued, {} safe errors, {} unsafe\n",
            seq_tally.rescued, seq_tally.safe, seq_tally.unsafe_
        ));
    }
    r.push_str(&format!(
        "\n**Summary**: {} scenarios through Plumb: {} rescued, {} safe errors, {} unsafe. Directly: {} correct, {} errors, {} unsafe.\n",
        results.len(),
        through.rescued,
        through.safe,
        through.unsafe_,
        direct.rescued,
        direct.safe,
        direct.unsafe_
    ));
    if !unsafe_lines.is_empty() {
        r.push_str("\nUnsafe through Plumb:\n\n");
        for l in &unsafe_lines {
            r.push_str(&format!("- {l}\n"));
        }
    }
    let total_unsafe = through.unsafe_ + seq_tally.unsafe_;
    (r, total_unsafe)
}
