//! The shared knowledge on the wire: a sidecar's `Report` decoded and merged into the operator's
//! store (`plumb_knowledge::Fleet`, as `plumb_operator::knowledge` feeds it: two pods
//! reporting, planning ticks, the knowledge pushed, each target's status summary), and the
//! operator's `Knowledge` decoded and put in force by a sidecar (`plumb_sidecar::fleet::Fleet`),
//! then asked about every upstream it names.
//!
//! Input: protobuf bytes, decoded as both messages; and the same bytes read a second way, as
//! the choices that build a report and a knowledge message field by field (names from a small
//! set, numbers often at their edges), since byte mutations of nested protobuf rarely keep its
//! lengths valid.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use plumb_fuzz::NOW_MS;
use plumb_knowledge::fleet::Settings;
use plumb_knowledge::upstream_from_proto;
use plumb_proto::v1;
use prost::Message as _;

const NS: &str = "team-a";
const NAMES: [&str; 3] = ["chat", "triage", ""];
const OUTCOMES: [&str; 6] = ["ok", "server_error", "rate_limited", "timeout", "auth", "?"];

fn pick(u: &mut Unstructured, from: &[&str]) -> Result<String> {
    Ok((*u.choose(from)?).to_owned())
}

/// A count: often at an edge.
fn count(u: &mut Unstructured) -> Result<u64> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 => 0,
        1 => u64::from(u.arbitrary::<u8>()?),
        2 => u64::MAX,
        3 => u64::MAX / 2 + 1,
        4 => u64::from(u32::MAX),
        _ => u.arbitrary()?,
    })
}

/// A time in ms since the epoch: around now, or at an edge.
fn time(u: &mut Unstructured) -> Result<i64> {
    Ok(match u.int_in_range(0..=4u8)? {
        0 => 0,
        1 => NOW_MS + i64::from(u.arbitrary::<i32>()?),
        2 => i64::MAX,
        3 => i64::MIN,
        _ => u.arbitrary()?,
    })
}

fn upstream(u: &mut Unstructured) -> Result<Option<v1::Upstream>> {
    if u.ratio(1, 8)? {
        return Ok(None);
    }
    Ok(Some(v1::Upstream {
        base_url: pick(
            u,
            &["https://api.openai.com/v1", "https://api.anthropic.com"],
        )?,
        model: pick(u, &["gpt-4o", "claude"])?,
        credential: pick(u, &["env:KEY", ""])?,
    }))
}

fn report(u: &mut Unstructured) -> Result<v1::Report> {
    let mut targets = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8)? {
        let mut outcomes = std::collections::HashMap::new();
        for _ in 0..u.int_in_range(0..=3u8)? {
            outcomes.insert(pick(u, &OUTCOMES)?, count(u)?);
        }
        let latency = sketch(u)?;
        let first_token = sketch(u)?;
        let token_time = sketch(u)?;
        targets.push(v1::TargetReport {
            route: pick(u, &NAMES)?,
            target: pick(u, &["primary", "fallback"])?,
            upstream: upstream(u)?,
            outcomes,
            latency,
            breaker: u.int_in_range(-1..=4)?,
            cooldown_ms: count(u)?,
            probes_ok: count(u)?,
            probes_failed: count(u)?,
            rate_limited_until_unix_ms: time(u)?,
            uncertified_failovers: count(u)?,
            first_token,
            streams_held: count(u)?,
            token_time,
        });
    }
    let mut equivalence = Vec::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        equivalence.push(v1::EquivalenceSamples {
            route: pick(u, &NAMES)?,
            primary: upstream(u)?,
            candidate: upstream(u)?,
            agreements: count(u)?,
            samples: count(u)?,
        });
    }
    Ok(v1::Report {
        sequence: count(u)?,
        targets,
        equivalence,
        urgent: u.arbitrary()?,
    })
}

/// A latency sketch, or none.
fn sketch(u: &mut Unstructured) -> Result<Option<v1::Sketch>> {
    if !u.arbitrary()? {
        return Ok(None);
    }
    let mut buckets = std::collections::HashMap::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        buckets.insert(u.int_in_range(-2..=600)?, count(u)?);
    }
    Ok(Some(v1::Sketch { buckets }))
}

fn knowledge(u: &mut Unstructured) -> Result<v1::Knowledge> {
    let mut upstreams = Vec::new();
    for _ in 0..u.int_in_range(0..=3u8)? {
        upstreams.push(v1::UpstreamDirective {
            upstream: upstream(u)?,
            open: u.arbitrary()?,
            prober: pick(u, &["web-1", "web-2", ""])?,
            probe_at_unix_ms: time(u)?,
            rate_limited_until_unix_ms: time(u)?,
            reason: pick(u, &["the breaker of pod web-2 opened", ""])?,
            first_token_p99_us: count(u)?,
            first_token_samples: count(u)?,
            token_time_p99_us: count(u)?,
            token_time_samples: count(u)?,
        });
    }
    let mut routes = Vec::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        routes.push(v1::RouteDirective {
            route: pick(u, &NAMES)?,
            retry_budget_scale: *u.choose(&[0.1, 1.0, -1.0, f64::NAN, f64::INFINITY, 1e300])?,
        });
    }
    Ok(v1::Knowledge {
        sequence: count(u)?,
        upstreams,
        routes,
        certifications: Vec::new(),
    })
}

/// The operator's store, fed `report` by two pods, planning and pushing as it does.
fn merge(report: &v1::Report) {
    let mut store = plumb_knowledge::Fleet::new(Settings::default());
    for pod in ["web-1", "web-2"] {
        store.connected(NS, pod);
    }
    let _ = store.report(NS, "web-1", report, NOW_MS);
    let _ = store.report(NS, "web-2", report, NOW_MS + 1_500);
    let _ = store.tick(NOW_MS + 2_000, Duration::from_secs(1));
    let k = store.knowledge(NS, NOW_MS + 2_000);
    apply(&k);
    let targets: Vec<_> = report
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            (
                t.target.clone(),
                upstream_from_proto(t.upstream.as_ref()),
                i % 2 == 0,
            )
        })
        .collect();
    for t in &report.targets {
        let _ = store.summary(NS, &t.route, &targets, NOW_MS + 2_000);
    }
    store.disconnected(NS, "web-1");
    let _ = store.tick(NOW_MS + 120_000, Duration::from_secs(1));
    let _ = store.knowledge(NS, NOW_MS + 120_000);
    let _ = (store.take_events(), store.open_upstreams());
}

/// A sidecar that is told `k`, and asked what it may do.
fn apply(k: &v1::Knowledge) {
    let sidecar = plumb_sidecar::fleet::Fleet::new();
    sidecar.set_pod("web-1");
    let _ = sidecar.apply(k);
    for d in &k.upstreams {
        let upstream = upstream_from_proto(d.upstream.as_ref());
        let _ = (sidecar.gate(&upstream), sidecar.skips(&upstream));
    }
    let _ = sidecar.describe();
    // The next knowledge no longer names them: they are used again.
    let _ = sidecar.apply(&v1::Knowledge::default());
}

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = v1::Report::decode(data) {
        merge(&report);
    }
    if let Ok(k) = v1::Knowledge::decode(data) {
        apply(&k);
    }
    let mut u = Unstructured::new(data);
    if let Ok(report) = report(&mut u) {
        merge(&report);
    }
    if let Ok(k) = knowledge(&mut u) {
        apply(&k);
    }
});
