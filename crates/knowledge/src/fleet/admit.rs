//! What a sidecar's report may speak of, before it reaches the store.
//!
//! Any pod of a namespace can send reports, and the store keeps what they name: unchecked, a
//! report could invent routes, targets, upstreams and outcome names by the million (the
//! operator's memory is everyone's), announce a rate-limit window a year long, or certify
//! pairs no route compares. So every report is held against the namespace's compiled routes
//! first, and what they do not allow is dropped and counted:
//!
//! | in a report                         | admitted when                                                 | else |
//! | ----------------------------------- | ------------------------------------------------------------- | ---- |
//! | a target report                     | among the first [`Limits::targets`], its route and target compiled, its upstream the target's | dropped |
//! | an outcome                          | `ok` or a failure class                                       | dropped |
//! | a count (attempts, latency samples, probes, failovers) | at most [`Limits::count`] per report | clamped |
//! | a rate-limit window                 | ahead of now, at most [`Limits::window_ahead`] ahead          | a past one is ignored, a far one clamped |
//! | a breaker cool-down                 | at most [`Limits::cooldown`]                                  | clamped |
//! | equivalence samples                 | among the first [`Limits::equivalence`], for a route that shadows, a primary against another target of it, at most its per-report budget | dropped, or clamped to the budget |
//! | any name                            | at most [`Limits::name_bytes`] long                           | dropped |
//!
//! Pure: time is an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use plumb_policy::{FailureClass, UpstreamKey};
use plumb_proto::v1;

use super::millis;

/// What one compiled route lets its sidecars report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteCatalog {
    /// Target name → the upstream it calls.
    pub targets: BTreeMap<String, UpstreamKey>,
    /// The upstreams of its primary-grade targets: shadow samples compare a candidate with one
    /// of them.
    pub primaries: BTreeSet<UpstreamKey>,
    /// The samples one report may carry per (primary, candidate) pair: 0 when the route does
    /// not shadow.
    pub samples_per_report: u64,
}

/// A namespace's compiled routes, by name.
pub type Catalog = BTreeMap<String, RouteCatalog>;

/// How much a report may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Target reports per report.
    pub targets: usize,
    /// Equivalence entries per report.
    pub equivalence: usize,
    /// Any count per report (attempts per outcome, probes, failovers).
    pub count: u64,
    /// How far ahead a rate-limit window may end (the sidecar clamps `retry-after` alike).
    pub window_ahead: Duration,
    /// The longest breaker cool-down (it paces the probes of an open upstream).
    pub cooldown: Duration,
    /// The longest route, target, outcome or upstream field.
    pub name_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            targets: 256,
            equivalence: 256,
            count: 1_000_000,
            window_ahead: Duration::from_secs(3600),
            cooldown: Duration::from_secs(3600),
            name_bytes: 2048,
        }
    }
}

/// Why part of a report was not taken as sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dropped {
    /// A target report past [`Limits::targets`].
    TooManyTargets,
    /// A route the namespace has not compiled.
    UnknownRoute,
    /// A target its route does not have.
    UnknownTarget,
    /// An upstream that is not the one the target calls.
    WrongUpstream,
    /// An outcome that is neither `ok` nor a failure class.
    UnknownOutcome,
    /// A name longer than [`Limits::name_bytes`].
    Oversized,
    /// A count above [`Limits::count`], clamped.
    CountClamped,
    /// A rate-limit window further ahead than [`Limits::window_ahead`], clamped.
    WindowClamped,
    /// A breaker cool-down above [`Limits::cooldown`], clamped.
    CooldownClamped,
    /// An equivalence entry past [`Limits::equivalence`].
    TooManySamples,
    /// Equivalence samples for a route that does not shadow.
    NotShadowing,
    /// Equivalence samples for a pair the route does not compare.
    UnknownPair,
    /// More samples than the route's shadow budget allows in one report, clamped.
    SamplesOverBudget,
}

impl Dropped {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dropped::TooManyTargets => "too_many_targets",
            Dropped::UnknownRoute => "unknown_route",
            Dropped::UnknownTarget => "unknown_target",
            Dropped::WrongUpstream => "wrong_upstream",
            Dropped::UnknownOutcome => "unknown_outcome",
            Dropped::Oversized => "oversized",
            Dropped::CountClamped => "count_clamped",
            Dropped::WindowClamped => "window_clamped",
            Dropped::CooldownClamped => "cooldown_clamped",
            Dropped::TooManySamples => "too_many_samples",
            Dropped::NotShadowing => "not_shadowing",
            Dropped::UnknownPair => "unknown_pair",
            Dropped::SamplesOverBudget => "samples_over_budget",
        }
    }
}

impl RouteCatalog {
    /// What a compiled route allows: its targets (the equivalence helper included), its
    /// primaries, and five minutes of its shadow budget per report when it shadows.
    pub fn of(route: &plumb_policy::Route) -> RouteCatalog {
        let shadow = &route.equivalence.shadow;
        RouteCatalog {
            targets: route
                .all_targets()
                .map(|t| (t.name.clone(), t.upstream.clone()))
                .collect(),
            primaries: route
                .all_targets()
                .filter(|t| route.is_primary_grade(t))
                .map(|t| t.upstream.clone())
                .collect(),
            samples_per_report: if shadow.rate > 0.0 {
                u64::from(shadow.requests_per_minute.max(1)) * 5
            } else {
                0
            },
        }
    }
}

fn upstream_too_long(u: Option<&v1::Upstream>, max: usize) -> bool {
    u.is_some_and(|u| u.base_url.len() > max || u.model.len() > max || u.credential.len() > max)
}

/// Tallies what was dropped.
#[derive(Default)]
struct Tally(BTreeMap<Dropped, u64>);

impl Tally {
    fn add(&mut self, why: Dropped, n: u64) {
        if n > 0 {
            let c = self.0.entry(why).or_default();
            *c = c.saturating_add(n);
        }
    }

    /// `v` clamped to `max`, counting a clamp as `why`.
    fn clamp(&mut self, v: u64, max: u64, why: Dropped) -> u64 {
        if v > max {
            self.add(why, 1);
            max
        } else {
            v
        }
    }
}

/// Clamps a sketch's counts, each to at most [`Limits::count`], in place.
fn clamp_sketch(s: &mut v1::Sketch, limits: &Limits, tally: &mut Tally) {
    for n in s.buckets.values_mut() {
        *n = tally.clamp(*n, limits.count, Dropped::CountClamped);
    }
}

/// Whether a reported upstream is `key` (a missing one is the empty upstream), compared field
/// by field without building a key.
fn is_upstream(u: Option<&v1::Upstream>, key: &UpstreamKey) -> bool {
    match u {
        Some(u) => {
            u.base_url == key.base_url && u.model == key.model && u.credential == key.credential
        }
        None => key.base_url.is_empty() && key.model.is_empty() && key.credential.is_empty(),
    }
}

/// One target report held against the catalog: what may be kept of it (in place), or why
/// none.
fn admit_target(
    t: &mut v1::TargetReport,
    catalog: &Catalog,
    now_ms: i64,
    limits: &Limits,
    tally: &mut Tally,
) -> Result<(), Dropped> {
    let max = limits.name_bytes;
    if t.route.len() > max || t.target.len() > max || upstream_too_long(t.upstream.as_ref(), max) {
        return Err(Dropped::Oversized);
    }
    let route = catalog.get(&t.route).ok_or(Dropped::UnknownRoute)?;
    let upstream = route.targets.get(&t.target).ok_or(Dropped::UnknownTarget)?;
    if !is_upstream(t.upstream.as_ref(), upstream) {
        return Err(Dropped::WrongUpstream);
    }
    t.outcomes.retain(|outcome, n| {
        let known = outcome == "ok" || outcome.parse::<FailureClass>().is_ok();
        if !known {
            tally.add(Dropped::UnknownOutcome, 1);
            return false;
        }
        *n = tally.clamp(*n, limits.count, Dropped::CountClamped);
        true
    });
    let until = t.rate_limited_until_unix_ms;
    let latest = now_ms.saturating_add(millis(limits.window_ahead));
    t.rate_limited_until_unix_ms = if until <= now_ms {
        0
    } else if until > latest {
        tally.add(Dropped::WindowClamped, 1);
        latest
    } else {
        until
    };
    for s in [&mut t.latency, &mut t.first_token, &mut t.token_time]
        .into_iter()
        .flatten()
    {
        clamp_sketch(s, limits, tally);
    }
    let cooldown_max = u64::try_from(millis(limits.cooldown)).unwrap_or(u64::MAX);
    t.streams_held = tally.clamp(t.streams_held, limits.count, Dropped::CountClamped);
    t.cooldown_ms = tally.clamp(t.cooldown_ms, cooldown_max, Dropped::CooldownClamped);
    t.probes_ok = tally.clamp(t.probes_ok, limits.count, Dropped::CountClamped);
    t.probes_failed = tally.clamp(t.probes_failed, limits.count, Dropped::CountClamped);
    t.uncertified_failovers =
        tally.clamp(t.uncertified_failovers, limits.count, Dropped::CountClamped);
    Ok(())
}

/// One equivalence entry held against the catalog, clamped in place.
fn admit_samples(
    e: &mut v1::EquivalenceSamples,
    catalog: &Catalog,
    limits: &Limits,
    tally: &mut Tally,
) -> Result<(), Dropped> {
    let max = limits.name_bytes;
    if e.route.len() > max
        || upstream_too_long(e.primary.as_ref(), max)
        || upstream_too_long(e.candidate.as_ref(), max)
    {
        return Err(Dropped::Oversized);
    }
    let route = catalog.get(&e.route).ok_or(Dropped::UnknownRoute)?;
    if route.samples_per_report == 0 {
        return Err(Dropped::NotShadowing);
    }
    let (primary, candidate) = (e.primary.as_ref(), e.candidate.as_ref());
    let compared = route.primaries.iter().any(|p| {
        is_upstream(primary, p)
            && !is_upstream(candidate, p)
            && route.targets.values().any(|u| is_upstream(candidate, u))
    });
    if !compared {
        return Err(Dropped::UnknownPair);
    }
    e.samples = tally.clamp(
        e.samples,
        route.samples_per_report,
        Dropped::SamplesOverBudget,
    );
    e.agreements = e.agreements.min(e.samples);
    Ok(())
}

/// The part of `report` the namespace's routes (`catalog`) allow, at `now_ms`, and what was
/// dropped or clamped, by reason.
pub fn admit(
    report: &v1::Report,
    catalog: &Catalog,
    now_ms: i64,
    limits: &Limits,
) -> (v1::Report, BTreeMap<Dropped, u64>) {
    admit_owned(report.clone(), catalog, now_ms, limits)
}

/// [`admit`] of a report the caller owns: what is kept is kept in place, nothing is copied
/// (the operator admits every report it decodes this way).
pub fn admit_owned(
    mut report: v1::Report,
    catalog: &Catalog,
    now_ms: i64,
    limits: &Limits,
) -> (v1::Report, BTreeMap<Dropped, u64>) {
    let mut tally = Tally::default();
    if report.targets.len() > limits.targets {
        tally.add(
            Dropped::TooManyTargets,
            (report.targets.len() - limits.targets) as u64,
        );
        report.targets.truncate(limits.targets);
    }
    report.targets.retain_mut(
        |t| match admit_target(t, catalog, now_ms, limits, &mut tally) {
            Ok(()) => true,
            Err(why) => {
                tally.add(why, 1);
                false
            }
        },
    );
    if report.equivalence.len() > limits.equivalence {
        tally.add(
            Dropped::TooManySamples,
            (report.equivalence.len() - limits.equivalence) as u64,
        );
        report.equivalence.truncate(limits.equivalence);
    }
    report
        .equivalence
        .retain_mut(|e| match admit_samples(e, catalog, limits, &mut tally) {
            Ok(()) => true,
            Err(why) => {
                tally.add(why, 1);
                false
            }
        });
    (report, tally.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::fixtures::*;
    use crate::upstream_to_proto;

    const NOW: i64 = 1_000_000;

    fn catalog() -> Catalog {
        Catalog::from([(
            "chat".to_owned(),
            RouteCatalog {
                targets: BTreeMap::from([
                    ("primary".to_owned(), key("gpt")),
                    ("backup".to_owned(), key("claude")),
                ]),
                primaries: BTreeSet::from([key("gpt")]),
                samples_per_report: 300,
            },
        )])
    }

    fn one(t: v1::TargetReport) -> (Vec<v1::TargetReport>, BTreeMap<Dropped, u64>) {
        let (r, dropped) = admit(&report(vec![t]), &catalog(), NOW, &Limits::default());
        (r.targets, dropped)
    }

    fn samples(primary: &str, candidate: &str, agreements: u64, n: u64) -> v1::EquivalenceSamples {
        v1::EquivalenceSamples {
            route: "chat".into(),
            primary: Some(upstream_to_proto(&key(primary))),
            candidate: Some(upstream_to_proto(&key(candidate))),
            agreements,
            samples: n,
        }
    }

    #[test]
    fn a_report_on_the_namespaces_own_routes_passes_whole() {
        let mut t = target("chat", "primary", "gpt");
        t.outcomes = outcomes(&[("ok", 10), ("timeout", 2)]);
        t.rate_limited_until_unix_ms = NOW + 30_000;
        let (kept, dropped) = one(t.clone());
        assert_eq!(kept, vec![t]);
        assert!(dropped.is_empty(), "{dropped:?}");
    }

    #[test]
    fn unknown_routes_targets_and_upstreams_are_dropped_and_counted() {
        let (kept, dropped) = one(target("invented", "primary", "gpt"));
        assert!(kept.is_empty());
        assert_eq!(dropped, BTreeMap::from([(Dropped::UnknownRoute, 1)]));
        let (_, dropped) = one(target("chat", "invented", "gpt"));
        assert_eq!(dropped, BTreeMap::from([(Dropped::UnknownTarget, 1)]));
        // The primary's name with another upstream: someone else's breaker to open.
        let (_, dropped) = one(target("chat", "primary", "someone-elses-model"));
        assert_eq!(dropped, BTreeMap::from([(Dropped::WrongUpstream, 1)]));
    }

    #[test]
    fn unknown_outcomes_are_dropped_and_counts_are_clamped() {
        let mut t = target("chat", "primary", "gpt");
        let mut many = outcomes(&[("ok", u64::MAX), ("server_error", 3)]);
        for i in 0..1000 {
            many.insert(format!("made-up-{i}"), 1);
        }
        t.outcomes = many;
        t.uncertified_failovers = u64::MAX;
        t.latency = Some(v1::Sketch {
            buckets: [(100, u64::MAX), (101, 7)].into_iter().collect(),
        });
        let (kept, dropped) = one(t);
        assert_eq!(
            kept[0].outcomes,
            outcomes(&[("ok", 1_000_000), ("server_error", 3)])
        );
        assert_eq!(kept[0].uncertified_failovers, 1_000_000);
        assert_eq!(
            kept[0]
                .latency
                .as_ref()
                .map(|s| s.buckets.get(&100).copied()),
            Some(Some(1_000_000))
        );
        assert_eq!(
            dropped,
            BTreeMap::from([(Dropped::UnknownOutcome, 1000), (Dropped::CountClamped, 3)])
        );
    }

    #[test]
    fn a_rate_limit_window_is_at_most_an_hour_ahead_and_a_past_one_is_ignored() {
        let mut t = target("chat", "primary", "gpt");
        t.rate_limited_until_unix_ms = NOW + 365 * 86_400_000;
        let (kept, dropped) = one(t.clone());
        assert_eq!(kept[0].rate_limited_until_unix_ms, NOW + 3_600_000);
        assert_eq!(dropped, BTreeMap::from([(Dropped::WindowClamped, 1)]));
        t.rate_limited_until_unix_ms = NOW - 1;
        let (kept, dropped) = one(t.clone());
        assert_eq!(kept[0].rate_limited_until_unix_ms, 0);
        assert!(dropped.is_empty());
        t.rate_limited_until_unix_ms = i64::MAX;
        assert_eq!(one(t).0[0].rate_limited_until_unix_ms, NOW + 3_600_000);
    }

    #[test]
    fn a_breaker_cool_down_is_at_most_an_hour() {
        let mut t = target("chat", "primary", "gpt");
        t.cooldown_ms = u64::MAX;
        let (kept, dropped) = one(t);
        assert_eq!(kept[0].cooldown_ms, 3_600_000);
        assert_eq!(dropped, BTreeMap::from([(Dropped::CooldownClamped, 1)]));
    }

    #[test]
    fn oversized_names_and_too_many_targets_are_dropped() {
        let long = "x".repeat(4096);
        let (_, dropped) = one(target(&long, "primary", "gpt"));
        assert_eq!(dropped, BTreeMap::from([(Dropped::Oversized, 1)]));
        let (_, dropped) = one(target("chat", "primary", &long));
        assert_eq!(dropped, BTreeMap::from([(Dropped::Oversized, 1)]));
        let flood = report(vec![target("chat", "primary", "gpt"); 1000]);
        let (r, dropped) = admit(&flood, &catalog(), NOW, &Limits::default());
        assert_eq!(r.targets.len(), 256);
        assert_eq!(dropped, BTreeMap::from([(Dropped::TooManyTargets, 744)]));
    }

    #[test]
    fn equivalence_samples_must_compare_a_primary_with_another_target_of_a_shadowing_route() {
        let with = |e: Vec<v1::EquivalenceSamples>, c: &Catalog| {
            admit(
                &v1::Report {
                    equivalence: e,
                    ..report(Vec::new())
                },
                c,
                NOW,
                &Limits::default(),
            )
        };
        let (r, dropped) = with(vec![samples("gpt", "claude", 9, 10)], &catalog());
        assert_eq!(r.equivalence, vec![samples("gpt", "claude", 9, 10)]);
        assert!(dropped.is_empty());
        // A forged certification: the candidate as primary, a pair nobody compares, an
        // unknown route.
        let (r, dropped) = with(
            vec![
                samples("claude", "gpt", 10, 10),
                samples("gpt", "invented", 10, 10),
                samples("gpt", "gpt", 10, 10),
                v1::EquivalenceSamples {
                    route: "invented".into(),
                    ..samples("gpt", "claude", 10, 10)
                },
            ],
            &catalog(),
        );
        assert!(r.equivalence.is_empty());
        assert_eq!(
            dropped,
            BTreeMap::from([(Dropped::UnknownRoute, 1), (Dropped::UnknownPair, 3)])
        );
        // More than five minutes of the shadow budget in one report.
        let (r, dropped) = with(
            vec![samples("gpt", "claude", 1_000_000, 1_000_000)],
            &catalog(),
        );
        assert_eq!(
            (r.equivalence[0].agreements, r.equivalence[0].samples),
            (300, 300)
        );
        assert_eq!(dropped, BTreeMap::from([(Dropped::SamplesOverBudget, 1)]));
        // A route that does not shadow has no samples to report.
        let mut quiet = catalog();
        if let Some(c) = quiet.get_mut("chat") {
            c.samples_per_report = 0;
        }
        let (r, dropped) = with(vec![samples("gpt", "claude", 9, 10)], &quiet);
        assert!(r.equivalence.is_empty());
        assert_eq!(dropped, BTreeMap::from([(Dropped::NotShadowing, 1)]));
        let (r, dropped) = with(vec![samples("gpt", "claude", 1, 1); 300], &catalog());
        assert_eq!(r.equivalence.len(), 256);
        assert_eq!(dropped, BTreeMap::from([(Dropped::TooManySamples, 44)]));
    }

    #[test]
    fn a_compiled_routes_catalog_has_its_targets_primaries_and_shadow_budget() {
        let set = plumb_policy::parse_routes_file(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: chat, namespace: team-a}\nspec:\n  match: {models: [chat]}\n  targets:\n    - {name: primary, provider: openai, baseUrl: 'http://h/v1', model: gpt, credentials: {none: true}}\n    - {name: backup, provider: openai, baseUrl: 'http://h/v1', model: claude, credentials: {none: true}, priority: 1}\n  equivalence: {mode: observe, shadow: {rate: 0.1, requestsPerMinute: 12}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = RouteCatalog::of(&set.routes()[0]);
        assert_eq!(
            c.targets.keys().collect::<Vec<_>>(),
            vec!["backup", "primary"]
        );
        assert_eq!(c.primaries.len(), 1);
        assert!(c.primaries.iter().all(|u| u.model == "gpt"));
        assert_eq!(c.samples_per_report, 60);
    }
}
