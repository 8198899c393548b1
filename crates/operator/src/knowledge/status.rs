//! What the leader writes of the fleet's knowledge: each route's targets in its status (at a
//! bounded rate, only for material changes) and Events when an upstream opens, closes or is
//! rate-limited.

use super::*;

pub(super) fn rfc3339(ms: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.round(k8s_openapi::jiff::Unit::Second)
                .unwrap_or(t)
                .to_string()
        })
        .unwrap_or_default()
}

pub(super) fn parse_ms(s: &str) -> Option<i64> {
    s.parse::<k8s_openapi::jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

pub(super) fn upstream_key(u: &UpstreamStatus) -> UpstreamKey {
    UpstreamKey {
        base_url: u.base_url.clone(),
        model: u.model.clone(),
        credential: u.credential.clone(),
    }
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

pub(super) fn target_status(
    s: TargetSummary,
    key: &UpstreamKey,
    (threshold, min_samples): (f64, u32),
    deadlines: &plumb_policy::Deadlines,
) -> TargetStatus {
    // As a sidecar that has seen too few of its own first tokens draws it from the fleet's.
    let first_token = s.first_token.map(|(p99, samples)| {
        let deadline = deadlines
            .adaptive
            .learned(p99, samples, deadlines.first_token)
            .unwrap_or(deadlines.first_token);
        FirstTokenStatus {
            deadline_ms: round(deadline.as_secs_f64() * 1e3, 1),
            p99_ms: round(p99.as_secs_f64() * 1e3, 1),
            samples,
        }
    });
    let token_time = s.token_time.map(|(p99, samples)| {
        let per_token = deadlines
            .adaptive
            .per_token(p99, samples)
            .unwrap_or(plumb_policy::PER_OUTPUT_TOKEN);
        TokenTimeStatus {
            per_token_ms: round(per_token.as_secs_f64() * 1e3, 2),
            p99_ms: round(p99.as_secs_f64() * 1e3, 2),
            samples,
        }
    });
    TargetStatus {
        name: s.name,
        upstream: UpstreamStatus {
            base_url: key.base_url.clone(),
            model: key.model.clone(),
            credential: key.credential.clone(),
        },
        state: s.state.as_str().to_owned(),
        message: (!s.message.is_empty()).then_some(s.message),
        open_since: s.open_since_ms.map(rfc3339),
        rate_limited_until: s.rate_limited_until_ms.map(rfc3339),
        attempts: s.attempts,
        error_rate: (s.attempts > 0).then(|| round(s.error_rate, 3)),
        errors: s.errors,
        latency_ms: s.latency.map(|[p50, p95, p99]| LatencyStatus {
            p50: round(p50.as_secs_f64() * 1e3, 1),
            p95: round(p95.as_secs_f64() * 1e3, 1),
            p99: round(p99.as_secs_f64() * 1e3, 1),
        }),
        breakers: (s.breakers_reporting > 0).then_some(BreakersStatus {
            open: s.breakers_open,
            reporting: s.breakers_reporting,
        }),
        equivalence: s.equivalence.map(|(agreements, samples)| {
            let lower = plumb_knowledge::lower_bound(agreements, samples);
            EquivalenceStatus {
                agreements,
                samples,
                lower_bound: round(lower, 3),
                certified: samples >= u64::from(min_samples) && lower >= threshold,
            }
        }),
        first_token,
        token_time,
        streams_held: (s.streams_held > 0).then_some(s.streams_held),
    }
}

/// How material a difference between two statuses is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Nothing worth a write.
    None,
    /// Numbers moved: written at the slow interval.
    Numbers,
    /// A state, a window, a certification or the set of targets changed: written soon.
    State,
}

/// Compares what was written with what would be.
pub fn change(before: &[TargetStatus], after: &[TargetStatus]) -> Change {
    if before.len() != after.len() {
        return Change::State;
    }
    let mut out = Change::None;
    for (a, b) in before.iter().zip(after) {
        let certified = |t: &TargetStatus| t.equivalence.as_ref().map(|e| e.certified);
        if a.name != b.name
            || a.state != b.state
            || a.open_since != b.open_since
            || a.rate_limited_until != b.rate_limited_until
            || certified(a) != certified(b)
        {
            return Change::State;
        }
        let rate = |t: &TargetStatus| t.error_rate.unwrap_or(0.0);
        let p50 = |t: &TargetStatus| t.latency_ms.as_ref().map_or(0.0, |l| l.p50);
        let samples = |t: &TargetStatus| t.equivalence.as_ref().map_or(0, |e| e.samples);
        // The learned deadlines: what is in force, what it is drawn from and from how many.
        let first = |t: &TargetStatus| {
            t.first_token
                .as_ref()
                .map(|f| (f.deadline_ms, f.p99_ms, f.samples))
        };
        let per_token = |t: &TargetStatus| {
            t.token_time
                .as_ref()
                .map(|f| (f.per_token_ms, f.p99_ms, f.samples))
        };
        let moved = (a.attempts == 0) != (b.attempts == 0)
            || (rate(a) - rate(b)).abs() >= 0.05
            || fifth(p50(a), p50(b))
            || tenth(samples(a), samples(b))
            || learned_moved(first(a), first(b))
            || learned_moved(per_token(a), per_token(b))
            || match (a.streams_held, b.streams_held) {
                (Some(x), Some(y)) => tenth(x, y),
                (x, y) => x != y,
            }
            || a.breakers != b.breakers
            || a.message != b.message;
        if moved {
            out = Change::Numbers;
        }
    }
    out
}

/// Whether two figures differ by more than a fifth of the larger (or of 1).
fn fifth(a: f64, b: f64) -> bool {
    (a - b).abs() > 0.2 * a.max(b).max(1.0)
}

/// Whether two counts differ by more than a tenth of the first.
fn tenth(a: u64, b: u64) -> bool {
    a.abs_diff(b) * 10 > a.max(1)
}

/// Whether a learned figure (the value in force, the p99 it is drawn from, the samples) moved
/// enough to be written: it appeared or went, the value in force or its p99 moved by a fifth
/// (a learned deadline taking over from the route's is such a move), or the samples by a
/// tenth.
fn learned_moved(a: Option<(f64, f64, u64)>, b: Option<(f64, f64, u64)>) -> bool {
    match (a, b) {
        (None, None) => false,
        (Some((av, ap, an)), Some((bv, bp, bn))) => fifth(av, bv) || fifth(ap, bp) || tenth(an, bn),
        (Some(_), None) | (None, Some(_)) => true,
    }
}

/// How often status may be written.
#[derive(Clone, Copy, Debug)]
pub struct StatusPace {
    /// How often the store plans (elects probers, ends windows) and checks statuses.
    pub tick: Duration,
    /// The least time between two writes of one route's knowledge for a change of state.
    pub min_interval: Duration,
    /// ... and for numbers that moved.
    pub interval: Duration,
}

/// Runs the store for the leader: seeds it from status, then plans every tick, writes
/// statuses at a bounded rate, and publishes Events.
pub async fn run(knowledge: Arc<Knowledge>, client: Client, recorder: Recorder, pace: StatusPace) {
    let api: Api<LlmRoute> = Api::all(client.clone());
    let mut written: Written = HashMap::new();
    // Start from what the statuses say (a new leader, a restart).
    let mut wait = Duration::from_millis(200);
    loop {
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let seeded = knowledge.seed(&list.items);
                for r in &list.items {
                    if let (Some(ns), Some(s)) = (r.namespace(), &r.status) {
                        written.insert(
                            (ns, r.name_any()),
                            (s.targets.clone(), s.healthy.clone(), Instant::now()),
                        );
                    }
                }
                tracing::info!(
                    routes = list.items.len(),
                    seeded,
                    "knowledge seeded from route status"
                );
                knowledge.tick();
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list routes to seed the knowledge; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    let mut ticks = tokio::time::interval(pace.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    loop {
        ticks.tick().await;
        knowledge.tick();
        for event in knowledge.take_events() {
            announce(&knowledge, &recorder, event).await;
        }
        if last_status.elapsed() < pace.tick.max(Duration::from_millis(500)) {
            continue;
        }
        last_status = Instant::now();
        for ((ns, name), targets, healthy) in knowledge.statuses(clock::unix_ms_now()) {
            let key = (ns.clone(), name.clone());
            // A route never written gets its targets (all `Unknown` until traffic) at once, so
            // the `Healthy` column is filled from the start.
            let due = match written.get(&key) {
                None => true,
                Some((before, column, at)) => {
                    let c = if *column != Some(healthy.clone()) {
                        Change::State
                    } else {
                        change(before, &targets)
                    };
                    match c {
                        Change::None => false,
                        Change::State => at.elapsed() >= pace.min_interval,
                        Change::Numbers => at.elapsed() >= pace.interval,
                    }
                }
            };
            if !due {
                continue;
            }
            let patch = json!({
                "apiVersion": "plumb.dev/v1alpha1",
                "kind": "LlmRoute",
                "status": {"healthy": healthy, "targets": targets},
            });
            let routes: Api<LlmRoute> = Api::namespaced(client.clone(), &ns);
            match routes
                .patch_status(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&patch),
                )
                .await
            {
                Ok(_) => {
                    written.insert(key, (targets, Some(healthy), Instant::now()));
                    knowledge
                        .metrics
                        .knowledge_status_writes
                        .get_or_create(&ResultLabels { result: "ok" })
                        .inc();
                }
                Err(e) => {
                    knowledge
                        .metrics
                        .knowledge_status_writes
                        .get_or_create(&ResultLabels { result: "error" })
                        .inc();
                    tracing::debug!(namespace = %ns, route = %name, error = %e, "knowledge status not written");
                }
            }
        }
    }
}

async fn announce(knowledge: &Knowledge, recorder: &Recorder, event: FleetEvent) {
    let (namespace, targets, type_, reason, note) = match event {
        FleetEvent::Opened {
            namespace,
            upstream,
            pod,
            class,
        } => {
            let routes = knowledge.routes_using(&namespace, &upstream);
            let why = class.map(|c| format!(" after {c}")).unwrap_or_default();
            let note = format!(
                "{} ({}) is skipped by every sidecar of the namespace: the breaker of pod {pod} opened{why}; one elected sidecar probes it each cool-down",
                upstream.model, upstream.base_url
            );
            (namespace, routes, EventType::Warning, "BreakerOpened", note)
        }
        FleetEvent::Healthy {
            namespace,
            upstream,
            pod,
        } => {
            let routes = knowledge.routes_using(&namespace, &upstream);
            let note = format!(
                "{} ({}) answered the probe of pod {pod}: every sidecar uses it again",
                upstream.model, upstream.base_url
            );
            (namespace, routes, EventType::Normal, "ProbedHealthy", note)
        }
        FleetEvent::UncertifiedFailovers {
            namespace,
            route,
            target,
            count,
        } => {
            let uid = knowledge.uid_of(&namespace, &route);
            let note = format!(
                "{count} answer(s) were served by failover to target {target}, which equivalence has not certified: they may differ from the primary's (spec.equivalence.mode: enforce refuses them)"
            );
            (
                namespace,
                vec![(route, uid, target)],
                EventType::Warning,
                "UncertifiedFailover",
                note,
            )
        }
    };
    for (route, uid, target) in targets {
        let reference = ObjectReference {
            api_version: Some("plumb.dev/v1alpha1".into()),
            kind: Some("LlmRoute".into()),
            name: Some(route.clone()),
            namespace: Some(namespace.clone()),
            uid,
            ..ObjectReference::default()
        };
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(
                format!("target {target}: {note}")
                    .chars()
                    .take(1000)
                    .collect(),
            ),
            action: "Knowledge".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::debug!(error = %e, "event not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, rate: f64, p50: f64, samples: u64) -> TargetStatus {
        TargetStatus {
            name: "primary".into(),
            state: state.into(),
            attempts: 100,
            error_rate: Some(rate),
            latency_ms: Some(LatencyStatus {
                p50,
                p95: p50,
                p99: p50,
            }),
            equivalence: (samples > 0).then_some(EquivalenceStatus {
                agreements: samples,
                samples,
                lower_bound: 0.9,
                certified: samples >= 35,
            }),
            ..TargetStatus::default()
        }
    }

    #[test]
    fn only_material_changes_are_written() {
        let base = [status("Healthy", 0.10, 200.0, 100)];
        assert_eq!(
            change(&base, &[status("Healthy", 0.12, 210.0, 105)]),
            Change::None
        );
        assert_eq!(
            change(&base, &[status("Healthy", 0.16, 200.0, 100)]),
            Change::Numbers
        );
        assert_eq!(
            change(&base, &[status("Healthy", 0.10, 260.0, 100)]),
            Change::Numbers
        );
        assert_eq!(
            change(&base, &[status("Healthy", 0.10, 200.0, 120)]),
            Change::Numbers
        );
        assert_eq!(
            change(&base, &[status("Open", 0.10, 200.0, 100)]),
            Change::State
        );
        let few = [status("Healthy", 0.1, 200.0, 30)];
        assert_eq!(
            change(&few, &[status("Healthy", 0.1, 200.0, 35)]),
            Change::State,
            "certified now"
        );
        assert_eq!(change(&base, &[]), Change::State);
    }

    #[test]
    fn the_learned_deadlines_are_written_when_they_appear_or_move() {
        let base = [status("Healthy", 0.10, 200.0, 100)];
        let with = |deadline_ms: f64, p99_ms: f64, samples: u64| {
            let mut s = status("Healthy", 0.10, 200.0, 100);
            s.first_token = Some(FirstTokenStatus {
                deadline_ms,
                p99_ms,
                samples,
            });
            [s]
        };
        // Numbers no other figure moved with (a stream's first tokens, nothing else).
        assert_eq!(change(&base, &with(30_000.0, 40.0, 7)), Change::Numbers);
        assert_eq!(change(&with(30_000.0, 40.0, 7), &base), Change::Numbers);
        assert_eq!(
            change(&with(30_000.0, 40.0, 14), &with(30_000.0, 40.0, 19)),
            Change::Numbers
        );
        // The learned deadline takes over from the route's at the 20th first token.
        assert_eq!(
            change(&with(30_000.0, 40.0, 19), &with(1_000.0, 40.0, 20)),
            Change::Numbers
        );
        assert_eq!(
            change(&with(1_000.0, 400.0, 100), &with(1_500.0, 500.0, 100)),
            Change::Numbers
        );
        // One more sample, a p99 a little off: not worth a write.
        assert_eq!(
            change(&with(1_000.0, 40.0, 20), &with(1_000.0, 41.0, 21)),
            Change::None
        );
        let mut per_token = status("Healthy", 0.10, 200.0, 100);
        per_token.token_time = Some(TokenTimeStatus {
            per_token_ms: 50.0,
            p99_ms: 12.0,
            samples: 3,
        });
        assert_eq!(change(&base, &[per_token]), Change::Numbers);
        let mut held = status("Healthy", 0.10, 200.0, 100);
        held.streams_held = Some(4);
        assert_eq!(change(&base, &[held]), Change::Numbers);
    }

    #[test]
    fn a_target_status_says_what_the_fleet_knows_without_secrets() {
        let key = UpstreamKey {
            base_url: "https://llm.example/v1".into(),
            model: "gpt".into(),
            credential: "secret:llm-keys/openai".into(),
        };
        let s = TargetSummary {
            name: "primary".into(),
            state: TargetState::Open,
            message: "skipped by every sidecar".into(),
            open_since_ms: Some(1_764_000_000_000),
            attempts: 10,
            error_rate: 0.5,
            equivalence: Some((35, 35)),
            first_token: Some((Duration::from_millis(120), 400)),
            token_time: Some((Duration::from_millis(40), 25)),
            ..TargetSummary::default()
        };
        let t = target_status(s, &key, (0.9, 20), &plumb_policy::Deadlines::default());
        // 3 × p99 is under the 1 s floor: the floor is in force.
        assert_eq!(
            t.first_token,
            Some(FirstTokenStatus {
                deadline_ms: 1000.0,
                p99_ms: 120.0,
                samples: 400
            })
        );
        // 3 × the 40 ms p99, from 25 answers (at least the 20 the route asks for).
        assert_eq!(
            t.token_time,
            Some(TokenTimeStatus {
                per_token_ms: 120.0,
                p99_ms: 40.0,
                samples: 25
            })
        );
        let few = TargetSummary {
            token_time: Some((Duration::from_millis(40), 5)),
            ..TargetSummary::default()
        };
        let t2 = target_status(few, &key, (0.9, 20), &plumb_policy::Deadlines::default());
        assert_eq!(t2.token_time.map(|t| t.per_token_ms), Some(50.0));
        assert_eq!(t.open_since.as_deref(), Some("2025-11-24T16:00:00Z"));
        assert_eq!(parse_ms("2025-11-24T16:00:00Z"), Some(1_764_000_000_000));
        assert_eq!(t.upstream.credential, "secret:llm-keys/openai");
        let e = t.equivalence.unwrap_or_default();
        assert!(e.certified && (e.lower_bound - 0.901).abs() < 1e-9, "{e:?}");
    }
}
