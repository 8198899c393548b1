//! Merging a sidecar's report into the store: traffic into the windows, breakers into the
//! consensus, probe results into the open upstream's round, rate-limit resets into the earliest
//! window, and equivalence samples into the tallies.

use plumb_policy::{Blame, FailureClass};
use plumb_proto::v1;

use super::window::Slots;
use super::{Fleet, FleetEvent, Open, failed};
use crate::{total, upstream_from_proto};

impl Fleet {
    /// Merges one sidecar's report. Returns whether the namespace's knowledge must be pushed
    /// at once (a state changed). Its numbers are the sidecar's word: counts saturate, and a
    /// time past the end of `i64` milliseconds stays there.
    pub fn report(&mut self, namespace: &str, pod: &str, report: &v1::Report, now_ms: i64) -> bool {
        let slot = Slots::of(self.settings.window).at(now_ms);
        let settings = self.settings;
        let mut events = Vec::new();
        let mut urgent = false;
        let ns = self.namespaces.entry(namespace.to_owned()).or_default();
        let activity = ns.pods.entry(pod.to_owned()).or_default();
        for t in &report.targets {
            let attempts = total(t.outcomes.values());
            if attempts > 0 {
                activity.insert(t.route.clone(), now_ms);
            }
        }
        for t in &report.targets {
            let key = upstream_from_proto(t.upstream.as_ref());
            ns.targets
                .insert((t.route.clone(), t.target.clone()), key.clone());
            let route = ns.routes.entry(t.route.clone()).or_default();
            let rt = route.traffic.at(slot);
            for (outcome, n) in &t.outcomes {
                rt.attempts = rt.attempts.saturating_add(*n);
                let upstream_fault = outcome
                    .parse::<FailureClass>()
                    .is_ok_and(|c| c.blame() == Blame::Upstream);
                if upstream_fault {
                    rt.failures = rt.failures.saturating_add(*n);
                }
            }
            let u = ns.upstreams.entry(key.clone()).or_default();
            let traffic = u.traffic.at(slot);
            for (outcome, n) in &t.outcomes {
                let count = traffic.outcomes.entry(outcome.clone()).or_default();
                *count = count.saturating_add(*n);
            }
            // Straight from the wire form: no sketch is built per report.
            if let Some(s) = &t.latency {
                traffic.latency.merge_proto(s);
            }
            if let Some(s) = &t.first_token {
                traffic.first_token.merge_proto(s);
            }
            if let Some(s) = &t.token_time {
                traffic.token_time.merge_proto(s);
            }
            traffic.streams_held = traffic.streams_held.saturating_add(t.streams_held);
            if t.cooldown_ms > 0 {
                u.cooldown_ms = t.cooldown_ms;
            }
            let interval_ms = u.probe_interval_ms(&settings);
            // A state the sidecar does not know of counts as no opinion: not open.
            let breaker =
                v1::BreakerState::try_from(t.breaker).unwrap_or(v1::BreakerState::Unspecified);
            let before = u.breakers.insert(pod.to_owned(), breaker);
            let opened =
                breaker == v1::BreakerState::Open && before != Some(v1::BreakerState::Open);
            if opened && u.open.is_none() {
                let class = t
                    .outcomes
                    .iter()
                    .filter(|(o, _)| failed(o))
                    .max_by_key(|(_, n)| **n)
                    .map(|(o, _)| o.clone());
                u.open = Some(Open {
                    since_ms: now_ms,
                    reason: match &class {
                        Some(c) => format!("the breaker of pod {pod} opened after {c}"),
                        None => format!("the breaker of pod {pod} opened"),
                    },
                    probe_at_ms: now_ms.saturating_add(interval_ms),
                    prober: None,
                    round: 0,
                });
                events.push(FleetEvent::Opened {
                    namespace: namespace.to_owned(),
                    upstream: key.clone(),
                    pod: pod.to_owned(),
                    class,
                });
                urgent = true;
            }
            if u.open.is_some() && t.probes_ok > 0 {
                u.open = None;
                events.push(FleetEvent::Healthy {
                    namespace: namespace.to_owned(),
                    upstream: key.clone(),
                    pod: pod.to_owned(),
                });
                urgent = true;
            } else if let Some(open) = &mut u.open
                && t.probes_failed > 0
            {
                open.round = open.round.saturating_add(1);
                open.probe_at_ms = now_ms.saturating_add(interval_ms);
                open.prober = None;
                urgent = true;
            }
            let until = t.rate_limited_until_unix_ms;
            if until > now_ms {
                let current = u.rate_limited_until_ms;
                let next = if current > now_ms {
                    current.min(until)
                } else {
                    until
                };
                if next != current {
                    u.rate_limited_until_ms = next;
                    urgent = true;
                }
            }
            if t.uncertified_failovers > 0 {
                let pending = ns
                    .uncertified
                    .entry((t.route.clone(), t.target.clone()))
                    .or_insert((0, i64::MIN));
                pending.0 = pending.0.saturating_add(t.uncertified_failovers);
            }
        }
        for e in &report.equivalence {
            let key = (
                e.route.clone(),
                upstream_from_proto(e.primary.as_ref()),
                upstream_from_proto(e.candidate.as_ref()),
            );
            let tally = ns.certs.entry(key).or_default();
            tally.0 = tally.0.saturating_add(e.agreements.min(e.samples));
            tally.1 = tally.1.saturating_add(e.samples);
            ns.changed = true;
        }
        if urgent {
            ns.changed = true;
            ns.urgent = true;
        }
        self.events.extend(events);
        if urgent {
            // Elect the probers of anything that just opened before the push goes out.
            self.plan(namespace, now_ms);
        }
        urgent
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::fixtures::*;
    use crate::upstream_to_proto;

    #[test]
    fn one_breaker_opening_opens_the_upstream_for_everyone_at_once() {
        let mut f = fleet_of(&["a", "b", "c"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("timeout", 5)]);
        t.breaker = v1::BreakerState::Open as i32;
        assert!(f.report("team-a", "a", &report(vec![t]), 10_000), "urgent");
        let k = f.knowledge("team-a", 10_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!("{k:?}"));
        assert!(d.open);
        assert_eq!(d.probe_at_unix_ms, 11_000, "one cool-down later");
        assert_eq!(d.prober, "a", "the only pod with traffic probes");
        assert!(d.reason.contains("timeout"), "{}", d.reason);
        assert_eq!(
            f.take_events(),
            vec![FleetEvent::Opened {
                namespace: "team-a".into(),
                upstream: key("gpt"),
                pod: "a".into(),
                class: Some("timeout".into()),
            }]
        );
        // Another namespace knows nothing of it.
        assert!(f.knowledge("team-b", 10_000).upstreams.is_empty());
    }

    #[test]
    fn the_earliest_announced_reset_holds_until_it_passes() {
        let mut f = fleet_of(&["a", "b"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("rate_limited", 1)]);
        t.rate_limited_until_unix_ms = 13_000;
        assert!(f.report("team-a", "a", &report(vec![t.clone()]), 10_000));
        t.rate_limited_until_unix_ms = 12_500;
        assert!(f.report("team-a", "b", &report(vec![t.clone()]), 10_100));
        t.rate_limited_until_unix_ms = 14_000;
        assert!(
            !f.report("team-a", "b", &report(vec![t.clone()]), 10_200),
            "a later reset within the window changes nothing"
        );
        let k = f.knowledge("team-a", 10_200);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert_eq!(d.rate_limited_until_unix_ms, 12_500);
        assert!(!d.open);
        // Once it passed, a new 429 starts a new window.
        f.tick(12_600, Duration::from_secs(1));
        assert!(directive(&f.knowledge("team-a", 12_600), "gpt").is_none());
        t.rate_limited_until_unix_ms = 16_000;
        assert!(f.report("team-a", "a", &report(vec![t]), 13_000));
        assert_eq!(
            directive(&f.knowledge("team-a", 13_000), "gpt").map(|d| d.rate_limited_until_unix_ms),
            Some(16_000)
        );
    }

    #[test]
    fn certifications_add_up_across_the_fleet() {
        let mut f = fleet_of(&["a", "b"]);
        let sample = |agreements, samples| v1::Report {
            equivalence: vec![v1::EquivalenceSamples {
                route: "chat".into(),
                primary: Some(upstream_to_proto(&key("gpt"))),
                candidate: Some(upstream_to_proto(&key("claude"))),
                agreements,
                samples,
            }],
            ..report(Vec::new())
        };
        f.report("team-a", "a", &sample(10, 10), 0);
        f.report("team-a", "b", &sample(4, 5), 0);
        let pushes = f.tick(2_000, Duration::from_secs(1));
        assert_eq!(pushes.namespaces, vec!["team-a".to_owned()]);
        let k = f.knowledge("team-a", 2_000);
        assert_eq!(k.certifications.len(), 1);
        assert_eq!(
            (k.certifications[0].agreements, k.certifications[0].samples),
            (14, 15)
        );
        let targets = [
            ("primary".to_owned(), key("gpt"), true),
            ("backup".to_owned(), key("claude"), false),
        ];
        let s = f.summary("team-a", "chat", &targets, 2_000);
        assert_eq!(s[0].equivalence, None, "the primary needs none");
        assert_eq!(s[1].equivalence, Some((14, 15)));
    }

    #[test]
    fn counts_at_the_edge_of_u64_saturate_instead_of_overflowing() {
        // Found by fuzzing (decode_knowledge): two pods each reporting 2^63 attempts or more
        // overflowed the route's window.
        let mut f = fleet_of(&["a", "b"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("server_error", u64::MAX), ("ok", 1)]);
        t.latency = Some(v1::Sketch {
            buckets: [(1, u64::MAX), (2, u64::MAX)].into(),
        });
        t.uncertified_failovers = u64::MAX;
        let r = v1::Report {
            equivalence: vec![v1::EquivalenceSamples {
                route: "chat".into(),
                primary: Some(upstream_to_proto(&key("gpt"))),
                candidate: Some(upstream_to_proto(&key("claude"))),
                agreements: u64::MAX,
                samples: u64::MAX,
            }],
            ..report(vec![t])
        };
        f.report("team-a", "a", &r, 0);
        f.report("team-a", "b", &r, 0);
        f.tick(1_000, Duration::from_secs(1));
        let targets = [
            ("primary".to_owned(), key("gpt"), true),
            ("backup".to_owned(), key("claude"), false),
        ];
        let s = f.summary("team-a", "chat", &targets, 1_000);
        assert_eq!(s[0].attempts, u64::MAX);
        assert_eq!(s[0].errors.get("server_error"), Some(&u64::MAX));
        assert!(s[0].latency.is_some());
        assert_eq!(s[1].equivalence, Some((u64::MAX, u64::MAX)));
    }

    #[test]
    fn a_cooldown_at_the_edge_of_u64_puts_the_next_probe_at_the_end_of_time() {
        let mut f = fleet_of(&["a"]);
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("timeout", 1)]);
        t.breaker = v1::BreakerState::Open as i32;
        t.cooldown_ms = u64::MAX;
        f.report("team-a", "a", &report(vec![t.clone()]), 10_000);
        t.probes_failed = 1;
        f.report("team-a", "a", &report(vec![t]), 20_000);
        f.tick(30_000, Duration::from_secs(1));
        let k = f.knowledge("team-a", 30_000);
        assert_eq!(
            directive(&k, "gpt").map(|d| d.probe_at_unix_ms),
            Some(i64::MAX)
        );
    }
}
