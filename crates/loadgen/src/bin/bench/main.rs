//! `plumb-bench`: the data-plane benchmark behind `make bench`.
//!
//! In one run, against the same simulator, the same requests by three paths: straight to the
//! simulator, through the floor (`plumb-floor`, a bare hyper reverse proxy) and through
//! `plumb-sidecar` (one default route, two targets on the simulator, no contract). Loads are
//! run through the three in alternation and repeated, and the medians kept: one request at a
//! time, open loop at 2,000 req/s, closed loop over 64 connections with each proxy's CPU time
//! per request; then streams, and each proxy's memory idle and with many requests in flight.
//! Every figure of the sidecar is set against the floor's and judged against its target. Last,
//! what reaching the proxies' core costs before any proxy work: the round trip to an echo
//! server started in their place (`plumb-floor --echo`); and, pinned, each proxy's own time on
//! a core before a stream's first byte, read from its socket calls and its threads' switches
//! with `perf` ([`oncore`]).
//!
//! Two layouts: `pinned`, each proxy on a core of its own and the simulator and this harness on
//! the other; `shared`, nothing pinned, as a sidecar shares its pod's cores. The harness pins
//! itself (`taskset -a -p`), so `make bench` runs it as is.

use std::io::{BufRead, BufReader};
use std::path::{Path as FsPath, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::{Parser, ValueEnum};

mod measure;
mod micro;
mod oncore;
mod report;

use measure::{Bodies, Connections, Load, Pair, Path, Trio};
use report::Figures;

/// Data-plane benchmark: direct, through the floor and through the sidecar, in one run.
#[derive(Debug, Parser)]
struct Args {
    /// The sidecar binary.
    #[arg(long, default_value = "target/release/plumb-sidecar")]
    sidecar: PathBuf,
    /// The simulator binary.
    #[arg(long, default_value = "target/release/plumb-simulator")]
    simulator: PathBuf,
    /// The floor binary (the bare reverse proxy).
    #[arg(long, default_value = "target/release/plumb-floor")]
    floor: PathBuf,
    /// Which layouts to measure.
    #[arg(long, value_enum, default_value_t = LayoutChoice::Both)]
    layout: LayoutChoice,
    /// Pinned layout: the CPU list (`taskset -c`) of each proxy.
    #[arg(long, default_value = "0")]
    proxy_cpus: String,
    /// Pinned layout: the CPU list of the simulator and this harness.
    #[arg(long, default_value = "1")]
    harness_cpus: String,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Alternating repetitions of each load; the report keeps the medians.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Streams measured one at a time through each path.
    #[arg(long, default_value_t = 200)]
    streams: usize,
    /// Requests (and streams) held in flight for the memory measurements.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Write the Markdown report here too.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A smoke run (debug builds, short): proves the harness works; its numbers mean nothing.
    #[arg(long)]
    smoke: bool,
    /// Only the in-process figures (no proxies started).
    #[arg(long)]
    in_process_only: bool,
    /// Only the streams one at a time through the three paths, their first-byte times
    /// printed (no report): a quick look at the first-byte path.
    #[arg(long)]
    streams_only: bool,
    /// With `--streams-only`: leave out the proxies' own time on a core (its `perf` recording
    /// takes minutes), for a run of many streams.
    #[arg(long)]
    no_on_core: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LayoutChoice {
    Pinned,
    Shared,
    Both,
}

/// Where the processes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// Each proxy on a core of its own; the simulator and the harness on another.
    Pinned,
    /// Nothing pinned: harness, simulator and proxies share every core.
    Shared,
}

struct Proc {
    child: Child,
    url: String,
}

/// The open loop's rate in all, over its connections.
const RATE: f64 = 2000.0;
const OPEN_CONNECTIONS: usize = 32;
/// The closed loop's connections, for the maximum throughput.
const MAX_CONNECTIONS: usize = 64;

const SIM_BODIES: Bodies = Bodies {
    chat: br#"{"model":"sim-gpt","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    slow: br#"{"model":"sim-slow","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    stream: br#"{"model":"sim-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#,
    slow_stream: br#"{"model":"sim-slow-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#,
};
const ROUTE_BODIES: Bodies = Bodies {
    chat: br#"{"model":"bench","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    slow: br#"{"model":"bench-slow","messages":[{"role":"user","content":"what is six times seven"}]}"#,
    stream: br#"{"model":"bench-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#,
    slow_stream: br#"{"model":"bench-slow-stream","stream":true,"messages":[{"role":"user","content":"what is six times seven"}]}"#,
};

/// The simulator's models: each answer at once, or after two seconds, or streamed; each with a
/// twin for the route's fallback.
const SIM_CONFIG: &str = "models:
  sim-gpt: {}
  sim-gpt-fallback: {}
  sim-slow: {latency: {kind: fixed, ms: 2000}}
  sim-slow-fallback: {latency: {kind: fixed, ms: 2000}}
  sim-stream: {token_rate: 200}
  sim-stream-fallback: {token_rate: 200}
  sim-slow-stream: {token_rate: 8}
  sim-slow-stream-fallback: {token_rate: 8}
";

impl Layout {
    fn title(self) -> &'static str {
        match self {
            Layout::Pinned => "Pinned: each proxy on a core of its own",
            Layout::Shared => "Shared: nothing pinned",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Layout::Pinned => {
                "The proxy (floor or sidecar) on one core; the simulator and the harness on the other."
            }
            Layout::Shared => {
                "Harness, simulator and proxy all share the two cores, as a sidecar shares its pod's."
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    rt.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("plumb-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let layouts: &[Layout] = match args.layout {
        _ if args.in_process_only => &[],
        LayoutChoice::Pinned => &[Layout::Pinned],
        LayoutChoice::Shared => &[Layout::Shared],
        LayoutChoice::Both => &[Layout::Pinned, Layout::Shared],
    };
    let mut report = String::from("# plumb-bench\n\n");
    if args.smoke {
        report.push_str("SMOKE RUN (debug builds, short): these numbers are not measurements; see BENCHMARKS.md and `make bench`.\n\n");
    }
    report.push_str(&format!(
        "Straight to the simulator, through the floor (`plumb-floor`, a bare hyper reverse proxy) and through the sidecar \
         (one route, two targets, default settings, no contract), {} s per load after a warm-up, ratios Plumb / floor. \
         Added latencies are differences from straight to the simulator in the same run, with their sign.\n\n",
        args.seconds
    ));
    if args.streams_only {
        for &layout in layouts {
            streams_only(&args, layout, &dir).await?;
        }
        let _ = std::fs::remove_dir_all(dir);
        return Ok(());
    }
    let mut failures = 0;
    for &layout in layouts {
        let figures = run_layout(&args, layout, &dir).await?;
        failures += figures.failures();
        report.push_str(&report::render(layout, &figures));
        report.push('\n');
    }
    let fleet_ns = micro::fleet_micro(if args.smoke { 200 } else { 200_000 })?;
    let (check_ns, parse_ns) = micro::contract_micro(if args.smoke { 200 } else { 20_000 })?;
    let (openai_ns, anthropic_ns, value_ns) =
        micro::event_micro(if args.smoke { 200 } else { 100_000 });
    let (request_ns, tree_ns, request_bytes) =
        micro::request_micro(if args.smoke { 20 } else { 2_000 })?;
    report.push_str(&format!(
        "## In process\n\n\
         - shared knowledge, median per attempt (the fleet's gate, the outcome and latency counted for the report): {:.2} µs\n\
         - contract check, median per answer: {:.1} µs (schema + 3 CEL rules), against {:.1} µs to parse the same answer as JSON\n\
         - a stream event read and typed as the relay reads each one, median: {:.2} µs for an OpenAI chunk, {:.2} µs for an Anthropic delta, against {:.2} µs to parse the OpenAI chunk's data as JSON\n\
         - a conversation's request ({request_bytes} bytes) read and its body written for a target of the client's family, median: {:.1} µs, against {:.1} µs to parse the same bytes as JSON\n",
        fleet_ns / 1000.0,
        check_ns / 1000.0,
        parse_ns / 1000.0,
        openai_ns / 1000.0,
        anthropic_ns / 1000.0,
        value_ns / 1000.0,
        request_ns / 1000.0,
        tree_ns / 1000.0
    ));
    println!("{report}");
    if let Some(out) = &args.out {
        std::fs::write(out, &report)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    anyhow::ensure!(
        failures == 0,
        "{failures} requests or streams failed (see the report): these figures are not a measurement"
    );
    Ok(())
}

/// The simulator, the floor and the sidecar, started in a layout, and the three paths to the
/// simulator through them.
struct Started {
    sim: Proc,
    floor: Proc,
    sidecar: Proc,
    paths: Trio<Path>,
}

/// Starts the simulator, the floor and the sidecar in `layout` and measures all of it.
async fn run_layout(args: &Args, layout: Layout, dir: &FsPath) -> anyhow::Result<Figures> {
    let Started {
        sim,
        floor,
        sidecar,
        paths,
    } = start(args, layout, dir).await?;
    let rss_idle_kib = Pair {
        floor: measure::rss_kib(floor.child.id()),
        plumb: measure::rss_kib(sidecar.child.id()),
    };
    let seconds = args.seconds;
    let load = |connections, rate| Load {
        connections,
        seconds,
        rate,
    };
    let one = measure::alternating(&paths, load(1, None), args.repeat).await?;
    let open =
        measure::alternating(&paths, load(OPEN_CONNECTIONS, Some(RATE)), args.repeat).await?;
    let max = measure::alternating(&paths, load(MAX_CONNECTIONS, None), args.repeat).await?;
    let streams = measure::streams(&paths, args.streams, Connections::New).await?;
    let streams_kept = measure::streams(&paths, args.streams, Connections::Kept).await?;
    let on_core = match layout {
        Layout::Pinned => Some(on_core(&paths, (args.streams / 2).max(1), dir).await),
        Layout::Shared => None,
    };
    let hop = hop(args, layout).await?;
    let held = Pair {
        floor: measure::held_requests(&paths.floor, args.in_flight).await?,
        plumb: measure::held_requests(&paths.plumb, args.in_flight).await?,
    };
    let held_streams = Pair {
        floor: measure::held_streams(&paths.floor, args.in_flight).await,
        plumb: measure::held_streams(&paths.plumb, args.in_flight).await,
    };
    drop((sidecar, floor, sim));
    Ok(Figures {
        one,
        open,
        rate: RATE,
        max,
        connections: MAX_CONNECTIONS,
        streams,
        streams_kept,
        on_core,
        hop,
        rss_idle_kib,
        held,
        held_streams,
        in_flight: args.in_flight,
        repeat: args.repeat.max(1),
    })
}

/// Starts the simulator, the floor and the sidecar in `layout`.
async fn start(args: &Args, layout: Layout, dir: &FsPath) -> anyhow::Result<Started> {
    let (sim_cpus, proxy_cpus) = match layout {
        Layout::Pinned => (args.harness_cpus.as_str(), args.proxy_cpus.as_str()),
        Layout::Shared => ("", ""),
    };
    // The harness first: what it starts without `taskset` inherits its CPUs.
    let harness = match layout {
        Layout::Pinned => args.harness_cpus.clone(),
        Layout::Shared => online_cpus()?,
    };
    if !repin(std::process::id(), &harness) {
        // Unpinning is only a precaution (the harness may have been started pinned); pinning
        // is the layout itself.
        anyhow::ensure!(
            layout == Layout::Shared,
            "cannot pin the harness to CPUs {harness:?} (is taskset installed?)"
        );
        eprintln!(
            "plumb-bench: cannot move the harness to CPUs {harness:?}; it stays where it was started"
        );
    }
    let sim_config = dir.join("simulator.yaml");
    std::fs::write(&sim_config, SIM_CONFIG)?;
    let sim_config = sim_config.display().to_string();
    let sim = spawn(
        sim_cpus,
        &args.simulator,
        &[
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--config",
            &sim_config,
        ],
    )?;
    let routes = dir.join("routes.yaml");
    std::fs::write(&routes, routes_yaml(&sim.url))?;
    let routes = routes.display().to_string();
    let floor = spawn(
        proxy_cpus,
        &args.floor,
        &["--listen", "127.0.0.1:0", "--upstream", &sim.url],
    )?;
    let sidecar = spawn(
        proxy_cpus,
        &args.sidecar,
        &[
            "--routes",
            &routes,
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ],
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let paths = Trio {
        direct: Path {
            url: format!("{}/v1/chat/completions", sim.url),
            pid: None,
            bodies: &SIM_BODIES,
        },
        floor: Path {
            url: format!("{}/v1/chat/completions", floor.url),
            pid: Some(floor.child.id()),
            bodies: &SIM_BODIES,
        },
        plumb: Path {
            url: format!("{}/v1/chat/completions", sidecar.url),
            pid: Some(sidecar.child.id()),
            bodies: &ROUTE_BODIES,
        },
    };
    Ok(Started {
        sim,
        floor,
        sidecar,
        paths,
    })
}

/// The first byte's p50 / p99 on each path, and what each proxy added to the p50 over
/// straight to the simulator, as `--streams-only` prints it.
fn first_bytes(s: &Trio<measure::StreamStats>) -> String {
    let added = |ttfb: (u64, u64)| ttfb.0 as i64 - s.direct.ttfb.0 as i64;
    format!(
        "direct {} / {}; floor {} / {} (added {:+}); plumb {} / {} (added {:+})",
        s.direct.ttfb.0,
        s.direct.ttfb.1,
        s.floor.ttfb.0,
        s.floor.ttfb.1,
        added(s.floor.ttfb),
        s.plumb.ttfb.0,
        s.plumb.ttfb.1,
        added(s.plumb.ttfb),
    )
}

/// `--streams-only`: the streams one at a time, and nothing else (a quick look at the
/// first-byte path while working on it).
async fn streams_only(args: &Args, layout: Layout, dir: &FsPath) -> anyhow::Result<()> {
    let started = start(args, layout, dir).await?;
    let faults_before = minor_faults(&started.paths);
    let s = measure::streams(&started.paths, args.streams, Connections::New).await?;
    // Counted over the new connections' pass only: per stream, as the report's figure is.
    let faults = minor_faults(&started.paths)
        .zip(faults_before)
        .map(|(after, before)| {
            let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / args.streams.max(1) as f64;
            format!(
                "floor {:.1}, plumb {:.1}",
                per(after.0, before.0),
                per(after.1, before.1)
            )
        });
    let kept = measure::streams(&started.paths, args.streams, Connections::Kept).await?;
    let hop = hop(args, layout).await?;
    let own = if args.no_on_core {
        "not measured (--no-on-core)".to_owned()
    } else {
        match on_core(&started.paths, args.streams, dir).await {
            Ok(oncore::Recorded { spans, .. }) => {
                let show = |s: &oncore::Spans| match s.medians_us() {
                    Some(m) => format!(
                        "{:.0} (request {:.0}, sent {:.0}, answer {:.0}) + {:.0} in system calls",
                        m.own, m.request, m.sent, m.answer, m.calls
                    ),
                    None => "no stream seen".to_owned(),
                };
                format!("floor {}, plumb {}", show(&spans.floor), show(&spans.plumb))
            }
            Err(why) => format!("not measured: {why}"),
        }
    };
    println!(
        "{}: stream first byte p50 / p99 µs, new connections: {}; kept-alive connections: {}; \
         round trip to the proxies' core {} / {}; own code on a core before the first byte p50 µs: {own}; \
         minor page faults per stream (new connections): {}; the slowest first bytes µs (new connections): direct {:?}, floor {:?}, plumb {:?}",
        layout.title(),
        first_bytes(&s),
        first_bytes(&kept),
        hop.0,
        hop.1,
        faults.as_deref().unwrap_or("not known"),
        s.direct.slowest,
        s.floor.slowest,
        s.plumb.slowest,
    );
    Ok(())
}

/// The floor's and the sidecar's minor page faults so far (`/proc/PID/stat`, field 10): a
/// page first touched costs a fault, and a stream after an idle pause pays for each page it
/// touches anew.
fn minor_faults(paths: &Trio<Path>) -> Option<(u64, u64)> {
    let read = |pid: u32| -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        rest.split(' ').nth(7)?.parse().ok()
    };
    Some((read(paths.floor.pid?)?, read(paths.plumb.pid?)?))
}

/// The streams one at a time again, the floor's and the sidecar's system calls and switches
/// recorded: each proxy's own time on a core before the first byte ([`oncore`]). A second pass,
/// so that the recording does not slow the first; its own first bytes say how much it did.
async fn on_core(paths: &Trio<Path>, n: usize, dir: &FsPath) -> Result<oncore::Recorded, String> {
    let (Some(floor), Some(plumb)) = (paths.floor.pid, paths.plumb.pid) else {
        return Err("the proxies' process ids are not known".to_owned());
    };
    let recording = oncore::Recording::start(&[floor, plumb], dir).await?;
    // Each on a new connection: the record tells a stream's calls by its client socket.
    let streamed = measure::streams(paths, n, Connections::New).await;
    let mut spans = recording.finish()?;
    let streamed = streamed.map_err(|e| format!("a stream failed while recorded: {e}"))?;
    Ok(oncore::Recorded {
        spans: Pair {
            floor: spans.remove(&floor).unwrap_or_default(),
            plumb: spans.remove(&plumb).unwrap_or_default(),
        },
        first_byte: Pair {
            floor: streamed.floor.ttfb.0,
            plumb: streamed.plumb.ttfb.0,
        },
    })
}

/// The round trip from the harness to where the proxies run and back, with no proxy work:
/// an echo server (`plumb-floor --echo`) started in the proxies' place. p50 and p99, µs.
async fn hop(args: &Args, layout: Layout) -> anyhow::Result<(u64, u64)> {
    let cpus = match layout {
        Layout::Pinned => args.proxy_cpus.as_str(),
        Layout::Shared => "",
    };
    let echo = spawn(cpus, &args.floor, &["--echo", "--listen", "127.0.0.1:0"])?;
    measure::echo(&echo.url, args.streams.max(1)).await
}

/// One route as a default route is: two targets on the simulator, the primary and a fallback
/// at the next priority, every default on, no contract. One such route per kind of answer.
fn routes_yaml(sim: &str) -> String {
    [
        ("bench", "sim-gpt"),
        ("bench-slow", "sim-slow"),
        ("bench-stream", "sim-stream"),
        ("bench-slow-stream", "sim-slow-stream"),
    ]
    .iter()
    .map(|(route, model)| {
        format!(
            "apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {{name: {route}}}
spec:
  match: {{models: [{route}]}}
  targets:
    - {{name: primary, provider: openai, baseUrl: '{sim}/v1', model: {model}, credentials: {{none: true}}}}
    - {{name: fallback, provider: openai, baseUrl: '{sim}/v1', model: {model}-fallback, credentials: {{none: true}}, priority: 1}}
"
        )
    })
    .collect::<Vec<_>>()
    .join("---\n")
}

/// Starts a process (under `taskset -c cpus` unless `cpus` is empty) and reads the URL it
/// prints as `... listening on URL ...`.
fn spawn(cpus: &str, bin: &FsPath, args: &[&str]) -> anyhow::Result<Proc> {
    let mut cmd = if cpus.is_empty() {
        Command::new(bin)
    } else {
        let mut c = Command::new("taskset");
        c.arg("-c").arg(cpus).arg(bin);
        c
    };
    let mut child = cmd
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {}: {e}", bin.display()))?;
    let mut line = String::new();
    BufReader::new(
        child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?,
    )
    .read_line(&mut line)?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let url = words
        .iter()
        .position(|w| *w == "on")
        .and_then(|i| words.get(i + 1))
        .ok_or_else(|| anyhow::anyhow!("{} did not start: {line:?}", bin.display()))?
        .to_string();
    Ok(Proc { child, url })
}

/// Moves every thread of a running process to `cpus`.
fn repin(pid: u32, cpus: &str) -> bool {
    !cpus.is_empty()
        && Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

/// Every CPU the machine has online, as a `taskset -c` list.
fn online_cpus() -> anyhow::Result<String> {
    Ok(std::fs::read_to_string("/sys/devices/system/cpu/online")?
        .trim()
        .to_owned())
}
