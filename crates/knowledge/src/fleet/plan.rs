//! The planning: what every sidecar of a namespace acts on. Open upstreams get one prober per
//! interval, in turn; rate-limit windows end; routes enter and leave incidents; uncertified
//! failovers are announced at a bounded rate; and the namespace's knowledge goes out in its wire
//! form, with the fleet's certifications.

use std::collections::BTreeMap;
use std::time::Duration;

use plumb_policy::UpstreamKey;
use plumb_proto::v1;

use super::window::Slots;
use super::{Fleet, FleetEvent, Settings, millis};
use crate::upstream_to_proto;

/// Which namespaces' knowledge to push.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pushes {
    /// These, now.
    pub namespaces: Vec<String>,
}

/// How far back a route's error rate looks for an incident.
const INCIDENT_SPAN: Duration = Duration::from_secs(20);

impl Fleet {
    /// The periodic step: plans every namespace and says which to push now — those with an
    /// urgent change, and those with any change not pushed for `every`.
    pub fn tick(&mut self, now_ms: i64, every: Duration) -> Pushes {
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        let mut out = Pushes::default();
        for name in names {
            self.plan(&name, now_ms);
            if let Some(ns) = self.namespaces.get(&name)
                && ns.changed
                && (ns.urgent || now_ms - ns.last_push_ms >= millis(every))
            {
                out.namespaces.push(name);
            }
        }
        out
    }

    /// Elects probers, moves probe rounds on, ends rate-limit windows, and starts and ends
    /// incidents in one namespace.
    pub(super) fn plan(&mut self, namespace: &str, now_ms: i64) {
        let settings = self.settings;
        let slots = Slots::of(settings.window);
        let slot = slots.at(now_ms);
        let mut events = Vec::new();
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let active_within = millis(settings.active_within);
        for (key, u) in &mut ns.upstreams {
            let interval_ms = u.probe_interval_ms(&settings);
            if let Some(open) = &mut u.open {
                // The prober had its interval and said nothing: next one, now.
                if open.prober.is_some() && now_ms >= open.probe_at_ms.saturating_add(interval_ms) {
                    open.round = open.round.saturating_add(1);
                    open.probe_at_ms = now_ms;
                    open.prober = None;
                }
                if open.prober.is_none() {
                    let eligible = candidates(&ns.targets, &ns.pods, key, now_ms, active_within);
                    if !eligible.is_empty() {
                        let i = (open.round % eligible.len() as u64) as usize;
                        open.prober = Some(eligible[i].clone());
                        ns.changed = true;
                        ns.urgent = true;
                    }
                }
            }
            if u.rate_limited_until_ms != 0 && u.rate_limited_until_ms <= now_ms {
                u.rate_limited_until_ms = 0;
                ns.changed = true;
            }
        }
        for route in ns.routes.values_mut() {
            let (attempts, failures) = route
                .traffic
                .recent(slot, slots.covering(INCIDENT_SPAN))
                .fold((0u64, 0u64), |(a, f), t| {
                    (a.saturating_add(t.attempts), f.saturating_add(t.failures))
                });
            let incident = in_incident(route.incident, attempts, failures, &settings);
            if incident != route.incident {
                route.incident = incident;
                ns.changed = true;
                ns.urgent = true;
            }
        }
        let every = millis(settings.event_every);
        for ((route, target), (count, last)) in &mut ns.uncertified {
            if *count > 0 && now_ms.saturating_sub(*last) >= every {
                events.push(FleetEvent::UncertifiedFailovers {
                    namespace: namespace.to_owned(),
                    route: route.clone(),
                    target: target.clone(),
                    count: *count,
                });
                *count = 0;
                *last = now_ms;
            }
        }
        self.events.extend(events);
    }

    /// The namespace's knowledge as sidecars get it; marks it pushed.
    pub fn knowledge(&mut self, namespace: &str, now_ms: i64) -> v1::Knowledge {
        self.sequence += 1;
        let sequence = self.sequence;
        let scale = self.settings.incident_retry_scale;
        let slot = super::window::Slots::of(self.settings.window).at(now_ms);
        let ns = self.ns(namespace);
        ns.changed = false;
        ns.urgent = false;
        ns.last_push_ms = now_ms;
        let upstreams = ns
            .upstreams
            .iter()
            .map(|(k, u)| (k, u, u.first_tokens(slot), u.token_times(slot)))
            .filter(|(_, u, first, per_token)| {
                u.open.is_some()
                    || u.rate_limited_until_ms > now_ms
                    || first.count() > 0
                    || per_token.count() > 0
            })
            .map(|(k, u, first, per_token)| v1::UpstreamDirective {
                first_token_p99_us: p99_us(&first),
                first_token_samples: first.count(),
                token_time_p99_us: p99_us(&per_token),
                token_time_samples: per_token.count(),
                upstream: Some(upstream_to_proto(k)),
                open: u.open.is_some(),
                prober: u
                    .open
                    .as_ref()
                    .and_then(|o| o.prober.clone())
                    .unwrap_or_default(),
                probe_at_unix_ms: u.open.as_ref().map_or(0, |o| o.probe_at_ms),
                rate_limited_until_unix_ms: if u.rate_limited_until_ms > now_ms {
                    u.rate_limited_until_ms
                } else {
                    0
                },
                reason: u
                    .open
                    .as_ref()
                    .map(|o| o.reason.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let routes = ns
            .routes
            .iter()
            .filter(|(_, r)| r.incident)
            .map(|(name, _)| v1::RouteDirective {
                route: name.clone(),
                retry_budget_scale: scale,
            })
            .collect();
        let certifications = ns
            .certs
            .iter()
            .map(|((route, p, c), (agreements, samples))| v1::Certification {
                route: route.clone(),
                primary: Some(upstream_to_proto(p)),
                candidate: Some(upstream_to_proto(c)),
                agreements: *agreements,
                samples: *samples,
            })
            .collect();
        v1::Knowledge {
            sequence,
            upstreams,
            routes,
            certifications,
        }
    }
}

/// A sketch's p99 in microseconds (0: empty).
fn p99_us(s: &crate::Sketch) -> u64 {
    s.quantile(0.99)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Who may probe `upstream`: the pods that sent traffic within `active_within` on a route using
/// it, else every connected pod.
fn candidates<'a>(
    targets: &BTreeMap<(String, String), UpstreamKey>,
    pods: &'a BTreeMap<String, BTreeMap<String, i64>>,
    upstream: &UpstreamKey,
    now_ms: i64,
    active_within: i64,
) -> Vec<&'a String> {
    let routes: Vec<&String> = targets
        .iter()
        .filter(|(_, k)| *k == upstream)
        .map(|((r, _), _)| r)
        .collect();
    let active: Vec<&String> = pods
        .iter()
        .filter(|(_, active)| {
            routes.iter().any(|r| {
                active
                    .get(*r)
                    .is_some_and(|at| now_ms - at <= active_within)
            })
        })
        .map(|(p, _)| p)
        .collect();
    if active.is_empty() {
        pods.keys().collect()
    } else {
        active
    }
}

/// Whether a route is in an incident, given whether it was and its recent attempts and
/// failures: it enters at the threshold and leaves below half of it.
fn in_incident(was: bool, attempts: u64, failures: u64, settings: &Settings) -> bool {
    let rate = if attempts == 0 {
        0.0
    } else {
        failures as f64 / attempts as f64
    };
    let threshold = if was {
        settings.incident_error_rate / 2.0
    } else {
        settings.incident_error_rate
    };
    attempts >= settings.incident_min_attempts && rate >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixtures::*;

    #[test]
    fn the_fleets_first_tokens_reach_every_sidecar_and_the_summary() {
        let mut f = fleet_of(&["a", "b"]);
        // Two pods report their streams' first tokens: 100 ms and 300 ms.
        for (pod, ms) in [("a", 100), ("b", 300)] {
            let mut t = target("chat", "primary", "gpt");
            t.outcomes = outcomes(&[("ok", 50)]);
            let mut s = crate::Sketch::new();
            for _ in 0..50 {
                s.add(Duration::from_millis(ms));
            }
            t.first_token = Some(s.to_proto());
            t.streams_held = 2;
            f.report("team-a", pod, &report(vec![t]), 9_000);
        }
        // The route's status sees them too, with the attempts the fleet held.
        let summary = f.summary(
            "team-a",
            "chat",
            &[("primary".to_owned(), key("gpt"), true)],
            9_500,
        );
        assert_eq!(summary[0].first_token.map(|(_, n)| n), Some(100));
        assert_eq!(summary[0].streams_held, 4);
        let k = f.knowledge("team-a", 9_500);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!(d.first_token_samples, 100);
        assert!(
            (290_000..=310_000).contains(&d.first_token_p99_us),
            "{}",
            d.first_token_p99_us
        );
        assert!(
            !d.open,
            "knowledge of a healthy upstream, not a directive to skip it"
        );
    }

    #[test]
    fn the_fleets_time_per_token_reaches_every_sidecar() {
        let mut f = fleet_of(&["a", "b"]);
        // Two pods report the time per output token of their answers: 5 ms and 20 ms.
        for (pod, ms) in [("a", 5), ("b", 20)] {
            let mut t = target("chat", "primary", "gpt");
            t.outcomes = outcomes(&[("ok", 30)]);
            let mut s = crate::Sketch::new();
            for _ in 0..30 {
                s.add(Duration::from_millis(ms));
            }
            t.token_time = Some(s.to_proto());
            f.report("team-a", pod, &report(vec![t]), 9_000);
        }
        let k = f.knowledge("team-a", 9_500);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!((d.token_time_samples, d.first_token_samples), (60, 0));
        assert!(
            (19_500..=20_500).contains(&d.token_time_p99_us),
            "{}",
            d.token_time_p99_us
        );
        // Out of the window, forgotten.
        let k = f.knowledge("team-a", 9_500 + 120_000);
        assert!(directive(&k, "gpt").is_none_or(|d| d.token_time_samples == 0));
    }

    #[test]
    fn one_prober_per_interval_in_turn_until_a_probe_succeeds() {
        let pods = ["a", "b", "c"];
        let mut f = fleet_of(&pods);
        // Every pod has traffic on the route.
        for p in pods {
            let mut t = target("chat", "backup", "claude");
            t.outcomes = outcomes(&[("ok", 3)]);
            f.report("team-a", p, &report(vec![t]), 9_000);
        }
        let mut t = target("chat", "primary", "gpt");
        t.breaker = v1::BreakerState::Open as i32;
        f.report("team-a", "b", &report(vec![t]), 10_000);
        let first = directive(&f.knowledge("team-a", 10_000), "gpt")
            .map(|d| d.prober.clone())
            .unwrap_or_default();
        assert!(pods.contains(&first.as_str()));
        // The prober's probe fails: the next pod, one interval later.
        let mut probe = target("chat", "primary", "gpt");
        probe.probes_failed = 1;
        probe.breaker = v1::BreakerState::Open as i32;
        assert!(f.report("team-a", &first, &report(vec![probe]), 11_000));
        let k = f.knowledge("team-a", 11_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!(d.probe_at_unix_ms, 12_000);
        assert_ne!(d.prober, first, "probers take turns");
        let second = d.prober.clone();
        // The second prober gets no traffic: after its interval the turn passes on.
        assert!(f.tick(12_500, Duration::from_secs(1)).namespaces.is_empty());
        let pushes = f.tick(13_000, Duration::from_secs(1));
        assert_eq!(pushes.namespaces, vec!["team-a".to_owned()]);
        let third = directive(&f.knowledge("team-a", 13_000), "gpt")
            .map(|d| d.prober.clone())
            .unwrap_or_default();
        assert_ne!(third, second);
        // Its probe succeeds: closed everywhere.
        let mut ok = target("chat", "primary", "gpt");
        ok.probes_ok = 1;
        ok.outcomes = outcomes(&[("ok", 1)]);
        assert!(f.report("team-a", &third, &report(vec![ok]), 13_100));
        assert!(directive(&f.knowledge("team-a", 13_100), "gpt").is_none());
        assert!(
            f.take_events()
                .iter()
                .any(|e| matches!(e, FleetEvent::Healthy { pod, .. } if *pod == third))
        );
    }

    #[test]
    fn an_incident_scales_the_retry_budget_down_until_the_rate_falls_to_half() {
        let mut f = fleet_of(&["a"]);
        let at = |f: &mut Fleet, ms: i64, ok: u64, overloaded: u64, bad_request: u64| {
            let mut t = target("chat", "primary", "gpt");
            t.outcomes = outcomes(&[
                ("ok", ok),
                ("overloaded", overloaded),
                ("bad_request", bad_request),
            ]);
            f.report("team-a", "a", &report(vec![t]), ms);
            f.tick(ms, Duration::from_secs(1));
            f.knowledge("team-a", ms).routes
        };
        // The caller's own faults are no incident.
        assert!(at(&mut f, 1_000, 10, 0, 90).is_empty());
        // 40 of 130 attempts in the last 20 s are the upstream's fault: 31%, below 50%.
        assert!(at(&mut f, 21_000, 40, 40, 50).is_empty());
        // 140 of 230: 61%.
        let incident = at(&mut f, 22_000, 0, 100, 0);
        assert_eq!(incident.len(), 1);
        assert_eq!(incident[0].route, "chat");
        assert!((incident[0].retry_budget_scale - 0.1).abs() < 1e-9);
        // 30%: still above half the threshold, the incident goes on.
        assert_eq!(at(&mut f, 42_000, 70, 30, 0).len(), 1);
        // Healthy again.
        assert!(at(&mut f, 62_000, 100, 0, 0).is_empty());
    }

    #[test]
    fn uncertified_failovers_are_announced_at_a_bounded_rate() {
        let mut f = fleet_of(&["a"]);
        let mut t = target("chat", "cheap", "mini");
        t.uncertified_failovers = 3;
        f.report("team-a", "a", &report(vec![t.clone()]), 0);
        f.tick(0, Duration::from_secs(1));
        assert_eq!(
            f.take_events(),
            vec![FleetEvent::UncertifiedFailovers {
                namespace: "team-a".into(),
                route: "chat".into(),
                target: "cheap".into(),
                count: 3
            }]
        );
        f.report("team-a", "a", &report(vec![t.clone()]), 1_000);
        f.report("team-a", "a", &report(vec![t]), 2_000);
        f.tick(2_000, Duration::from_secs(1));
        assert!(f.take_events().is_empty(), "not again within five minutes");
        f.tick(300_000, Duration::from_secs(1));
        assert!(matches!(
            f.take_events().as_slice(),
            [FleetEvent::UncertifiedFailovers { count: 6, .. }]
        ));
    }
}
