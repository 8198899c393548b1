//! A new leader (or a restarted operator) starts from what the routes' statuses recorded: open
//! upstreams stay open and get a prober soon, rate-limit windows hold, and certifications keep
//! their samples.

use plumb_policy::UpstreamKey;

use super::{Fleet, Open, millis};

/// Knowledge restored from a route target's status (a new leader starts from it).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Seed {
    /// Open since (ms), with the reason.
    pub open: Option<(i64, String)>,
    /// The end of a rate-limit window (ms).
    pub rate_limited_until_ms: Option<i64>,
    /// Agreements and samples against `primary`.
    pub equivalence: Option<(UpstreamKey, u64, u64)>,
}

impl Fleet {
    /// Restores what a route target's status recorded (a new leader, or a restart).
    pub fn seed(
        &mut self,
        namespace: &str,
        route: &str,
        target: &str,
        upstream: &UpstreamKey,
        seed: Seed,
        now_ms: i64,
    ) {
        let interval = millis(self.settings.default_probe_interval);
        let ns = self.ns(namespace);
        ns.targets
            .insert((route.to_owned(), target.to_owned()), upstream.clone());
        let u = ns.upstreams.entry(upstream.clone()).or_default();
        if let Some((since_ms, reason)) = seed.open
            && u.open.is_none()
        {
            u.open = Some(Open {
                since_ms,
                reason,
                probe_at_ms: now_ms + interval.min(1_000),
                prober: None,
                round: 0,
            });
            ns.changed = true;
        }
        if let Some(until) = seed.rate_limited_until_ms
            && until > now_ms
        {
            u.rate_limited_until_ms = u.rate_limited_until_ms.max(until);
            ns.changed = true;
        }
        if let Some((primary, agreements, samples)) = seed.equivalence {
            let t = ns
                .certs
                .entry((route.to_owned(), primary, upstream.clone()))
                .or_default();
            if t.1 < samples {
                *t = (agreements.min(samples), samples);
                ns.changed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fleet::TargetState;
    use crate::fleet::fixtures::*;

    #[test]
    fn a_seeded_store_knows_what_the_status_said() {
        let mut f = fleet_of(&["a"]);
        f.seed(
            "team-a",
            "chat",
            "primary",
            &key("gpt"),
            Seed {
                open: Some((1_000, "the breaker of pod x opened".into())),
                ..Seed::default()
            },
            50_000,
        );
        f.seed(
            "team-a",
            "chat",
            "backup",
            &key("claude"),
            Seed {
                rate_limited_until_ms: Some(60_000),
                equivalence: Some((key("gpt"), 30, 31)),
                ..Seed::default()
            },
            50_000,
        );
        f.tick(50_000, Duration::from_secs(1));
        let k = f.knowledge("team-a", 50_000);
        let d = directive(&k, "gpt").unwrap_or_else(|| panic!());
        assert!(d.open);
        assert_eq!(d.prober, "a");
        assert_eq!(
            directive(&k, "claude").map(|d| d.rate_limited_until_unix_ms),
            Some(60_000)
        );
        assert_eq!(k.certifications[0].samples, 31);
        let targets = [
            ("primary".to_owned(), key("gpt"), true),
            ("backup".to_owned(), key("claude"), false),
        ];
        let s = f.summary("team-a", "chat", &targets, 50_000);
        assert_eq!(
            (s[0].state, s[0].open_since_ms),
            (TargetState::Open, Some(1_000))
        );
        assert_eq!(s[1].state, TargetState::RateLimited);
    }
}
