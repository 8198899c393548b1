//! Equivalence: whether a fallback's answers agree with the primary's, learned ahead of time by
//! shadow sampling, and used to decide whether failover to it is a recovery.
//!
//! - [`compare`]: the comparison methods.
//! - [`shadow`]: sampling successful primary requests and asking the candidates too.
//! - [`Certifications`]: agreements and samples per route and (primary, candidate) pair, with
//!   a Wilson lower bound; kept across policy reloads, keyed by upstream so a target that
//!   changes model starts again from nothing.

pub mod compare;
pub mod limits;
pub mod shadow;

use std::collections::HashMap;
use std::time::SystemTime;

use parking_lot::Mutex;
use plumb_policy::equivalence::{Downgrades, Equivalence, EquivalenceMode};
use plumb_policy::{Route, RouteId, Target, UpstreamKey};
use plumb_telemetry::clock;
use serde::Serialize;

/// Agreements out of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Samples where the candidate agreed.
    pub agreements: u64,
    /// Samples compared.
    pub samples: u64,
}

impl Tally {
    /// The observed agreement rate (0 without samples).
    pub fn agreement(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.agreements as f64 / self.samples as f64
        }
    }

    /// The lower bound of the 95% Wilson score interval of the agreement rate: what the
    /// agreement is at least, given how few samples there may be (0 without samples).
    pub fn lower_bound(&self) -> f64 {
        plumb_knowledge::lower_bound(self.agreements, self.samples)
    }

    /// Whether this tally certifies a candidate under a route's settings.
    pub fn certifies(&self, e: &Equivalence) -> bool {
        self.samples >= u64::from(e.min_samples) && self.lower_bound() >= e.threshold
    }

    /// The verdict on a candidate with this tally under a route's settings.
    pub fn verdict(&self, e: &Equivalence) -> Verdict {
        if self.certifies(e) {
            Verdict::Certified {
                agreement: self.agreement(),
                lower: self.lower_bound(),
                samples: self.samples,
            }
        } else {
            Verdict::Uncertified {
                samples: self.samples,
            }
        }
    }
}

/// What equivalence says of the target that answered: one value per answer, written into
/// `x-plumb-equivalence`, the request span and the failover metric at the edge.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    /// The route's primary (or a peer in its priority group) answered.
    Primary,
    /// A fallback certified by shadow samples.
    Certified {
        /// The observed agreement rate.
        agreement: f64,
        /// Its 95% Wilson lower bound.
        lower: f64,
        /// Samples compared.
        samples: u64,
    },
    /// A fallback not (yet) certified.
    Uncertified {
        /// Samples compared.
        samples: u64,
    },
    /// A fallback, on a route whose equivalence is off.
    NotRequired,
    /// A fallback declared the same model as the primary's group (`spec.sameModel`): the same
    /// weights elsewhere, so nothing needs certifying.
    SameModel,
}

impl Verdict {
    /// The `outcome` label of `plumb_failover_equivalence_total` for an answer by failover
    /// (`None` for the primary).
    pub const fn failover_label(self) -> Option<&'static str> {
        match self {
            Verdict::Primary => None,
            Verdict::Certified { .. } => Some("certified"),
            Verdict::Uncertified { .. } => Some("uncertified"),
            Verdict::NotRequired => Some("not_required"),
            Verdict::SameModel => Some("same_model"),
        }
    }
}

impl std::fmt::Display for Verdict {
    /// The `x-plumb-equivalence` value (DESIGN §14): `primary`,
    /// `certified; agreement=0.97; lower=0.93; n=212`, `uncertified; n=3`, `not-required` or
    /// `same-model`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Primary => f.write_str("primary"),
            Verdict::Certified {
                agreement,
                lower,
                samples,
            } => write!(
                f,
                "certified; agreement={agreement:.2}; lower={lower:.2}; n={samples}"
            ),
            Verdict::Uncertified { samples } => write!(f, "uncertified; n={samples}"),
            Verdict::NotRequired => f.write_str("not-required"),
            Verdict::SameModel => f.write_str("same-model"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PairKey {
    route: RouteId,
    primary: UpstreamKey,
    candidate: UpstreamKey,
}

#[derive(Clone, Copy, Debug)]
struct Pair {
    tally: Tally,
    updated: SystemTime,
}

/// One pair's record, for the admin endpoint and the fleet.
#[derive(Clone, Debug, Serialize)]
pub struct PairRecord {
    /// `namespace/name`.
    pub route: String,
    /// The primary's upstream model.
    pub primary: String,
    /// The candidate's upstream model.
    pub candidate: String,
    /// Agreements and samples.
    #[serde(flatten)]
    pub tally: Tally,
    /// The observed agreement.
    pub agreement: f64,
    /// Its Wilson lower bound.
    pub lower_bound: f64,
    /// When the last sample was recorded (seconds since the Unix epoch).
    pub updated: u64,
}

/// Certifications of every route's candidates: this sidecar's own tallies, the samples not yet
/// reported to the fleet, and the fleet's tallies (which include what this sidecar reported).
#[derive(Debug, Default)]
pub struct Certifications {
    pairs: Mutex<HashMap<PairKey, Pair>>,
    unreported: Mutex<HashMap<PairKey, Tally>>,
    fleet: Mutex<HashMap<PairKey, Tally>>,
}

impl Certifications {
    /// Records one compared sample of `candidate` against `primary`.
    pub fn record(&self, route: &RouteId, primary: &Target, candidate: &Target, agreed: bool) {
        let key = PairKey {
            route: route.clone(),
            primary: primary.upstream.clone(),
            candidate: candidate.upstream.clone(),
        };
        {
            let mut unreported = self.unreported.lock();
            let t = unreported.entry(key.clone()).or_default();
            t.samples += 1;
            t.agreements += u64::from(agreed);
        }
        let mut pairs = self.pairs.lock();
        let pair = pairs.entry(key).or_insert(Pair {
            tally: Tally::default(),
            updated: SystemTime::now(),
        });
        pair.tally.samples += 1;
        pair.tally.agreements += u64::from(agreed);
        pair.updated = SystemTime::now();
    }

    /// The samples recorded since the last call, for the fleet.
    pub fn take_unreported(&self) -> Vec<plumb_proto::v1::EquivalenceSamples> {
        let taken = std::mem::take(&mut *self.unreported.lock());
        taken
            .into_iter()
            .map(|(k, t)| plumb_proto::v1::EquivalenceSamples {
                route: k.route.name,
                primary: Some(plumb_knowledge::upstream_to_proto(&k.primary)),
                candidate: Some(plumb_knowledge::upstream_to_proto(&k.candidate)),
                agreements: t.agreements,
                samples: t.samples,
            })
            .collect()
    }

    /// Samples taken for a report that could not be sent go back, to go with the next one.
    pub fn restore_unreported(
        &self,
        namespace: &str,
        samples: Vec<plumb_proto::v1::EquivalenceSamples>,
    ) {
        let mut unreported = self.unreported.lock();
        for s in samples {
            let t = unreported
                .entry(fleet_key(
                    namespace,
                    &s.route,
                    s.primary.as_ref(),
                    s.candidate.as_ref(),
                ))
                .or_default();
            t.samples += s.samples;
            t.agreements += s.agreements;
        }
    }

    /// The fleet's tallies of `namespace` (they replace the previous ones).
    pub fn set_fleet(&self, namespace: &str, certs: &[plumb_proto::v1::Certification]) {
        let map = certs
            .iter()
            .map(|c| {
                (
                    fleet_key(
                        namespace,
                        &c.route,
                        c.primary.as_ref(),
                        c.candidate.as_ref(),
                    ),
                    Tally {
                        agreements: c.agreements.min(c.samples),
                        samples: c.samples,
                    },
                )
            })
            .collect();
        *self.fleet.lock() = map;
    }

    /// Drops the fleet's tallies (the control stream is gone).
    pub fn forget_fleet(&self) {
        self.fleet.lock().clear();
    }

    /// The certification of `candidate` for `route`: its samples against every target of the
    /// primary's priority group, together — this sidecar's own, or the fleet's when the fleet
    /// has seen more (the fleet's include what this sidecar reported, so they are not added).
    pub fn of(&self, route: &Route, candidate: &Target) -> Tally {
        let own = Self::tally(&self.pairs.lock(), route, candidate, |p| p.tally);
        let fleet = Self::tally(&self.fleet.lock(), route, candidate, |t| *t);
        if fleet.samples > own.samples {
            fleet
        } else {
            own
        }
    }

    fn tally<V>(
        pairs: &HashMap<PairKey, V>,
        route: &Route,
        candidate: &Target,
        get: impl Fn(&V) -> Tally,
    ) -> Tally {
        let top = route.top_priority();
        let primaries: Vec<&UpstreamKey> = route
            .targets
            .iter()
            .filter(|t| t.priority == top)
            .map(|t| &t.upstream)
            .collect();
        pairs
            .iter()
            .filter(|(k, _)| {
                k.route == route.id
                    && k.candidate == candidate.upstream
                    && primaries.contains(&&k.primary)
            })
            .fold(Tally::default(), |acc, (_, p)| {
                let t = get(p);
                Tally {
                    agreements: acc.agreements + t.agreements,
                    samples: acc.samples + t.samples,
                }
            })
    }

    /// Every pair, for the admin endpoint.
    pub fn records(&self) -> Vec<PairRecord> {
        let pairs = self.pairs.lock();
        let mut out: Vec<PairRecord> = pairs
            .iter()
            .map(|(k, p)| PairRecord {
                route: k.route.to_string(),
                primary: k.primary.model.clone(),
                candidate: k.candidate.model.clone(),
                tally: p.tally,
                agreement: p.tally.agreement(),
                lower_bound: p.tally.lower_bound(),
                updated: clock::unix_secs(p.updated),
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.route, &a.primary, &a.candidate).cmp(&(&b.route, &b.primary, &b.candidate))
        });
        out
    }
}

fn fleet_key(
    namespace: &str,
    route: &str,
    primary: Option<&plumb_proto::v1::Upstream>,
    candidate: Option<&plumb_proto::v1::Upstream>,
) -> PairKey {
    PairKey {
        route: RouteId {
            namespace: namespace.to_owned(),
            name: route.to_owned(),
        },
        primary: plumb_knowledge::upstream_from_proto(primary),
        candidate: plumb_knowledge::upstream_from_proto(candidate),
    }
}

/// Why failover may not use a target, under the route's equivalence settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It is outside the primary's priority group and the route forbids downgrades.
    Downgrade,
    /// `enforce`, and it is not certified: the description says by how far.
    Uncertified(String),
}

/// Whether failover may use `target`: primary-grade targets and those declared the same model
/// as one of them always may (the same weights are neither a downgrade nor a gamble); others as
/// the route's mode and downgrade rule say.
pub fn gate(route: &Route, certs: &Certifications, target: &Target) -> Result<(), Refusal> {
    if route.is_primary_grade(target) || same_model_as_primary(route, target) {
        return Ok(());
    }
    let e = &route.equivalence;
    if e.downgrades == Downgrades::Forbid {
        return Err(Refusal::Downgrade);
    }
    if e.mode != EquivalenceMode::Enforce {
        return Ok(());
    }
    let t = certs.of(route, target);
    if t.certifies(e) {
        return Ok(());
    }
    Err(Refusal::Uncertified(
        if t.samples < u64::from(e.min_samples) {
            format!(
                "not certified as equivalent: {} of the {} samples needed",
                t.samples, e.min_samples
            )
        } else {
            format!(
                "not certified as equivalent: agreement {:.2}, lower bound {:.2} < {:.2} over {} samples",
                t.agreement(),
                t.lower_bound(),
                e.threshold,
                t.samples
            )
        },
    ))
}

/// Whether `target` is declared the same model as a target of the primary's group.
pub fn same_model_as_primary(route: &Route, target: &Target) -> bool {
    route
        .targets
        .iter()
        .any(|t| route.is_primary_grade(t) && route.same_model(t, target))
}

/// What equivalence says of an answer served by `target`.
pub fn verdict(route: &Route, certs: &Certifications, target: &Target) -> Verdict {
    if route.is_primary_grade(target) {
        return Verdict::Primary;
    }
    if same_model_as_primary(route, target) {
        return Verdict::SameModel;
    }
    match route.equivalence.mode {
        EquivalenceMode::Off => Verdict::NotRequired,
        EquivalenceMode::Observe | EquivalenceMode::Enforce => {
            certs.of(route, target).verdict(&route.equivalence)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_lower_bounds_of_known_tallies() {
        let t = |agreements, samples| Tally {
            agreements,
            samples,
        };
        assert_eq!(t(0, 0).lower_bound(), 0.0);
        // All of n agree: n / (n + z²).
        assert!((t(20, 20).lower_bound() - 20.0 / (20.0 + 3.8415)).abs() < 1e-3);
        assert!((t(35, 35).lower_bound() - 0.9010).abs() < 1e-3);
        // 95 of 100: about 0.888 (Wilson).
        assert!((t(95, 100).lower_bound() - 0.8882).abs() < 1e-3);
        assert!(t(0, 50).lower_bound() < 1e-12);
        let e = Equivalence::default();
        assert!(
            !t(34, 34).certifies(&e),
            "threshold 0.9 needs 35 agreeing samples"
        );
        assert!(t(35, 35).certifies(&e));
        assert_eq!(t(3, 3).verdict(&e).to_string(), "uncertified; n=3");
        assert_eq!(
            t(35, 35).verdict(&e).to_string(),
            "certified; agreement=1.00; lower=0.90; n=35"
        );
        assert_eq!(Verdict::SameModel.to_string(), "same-model", "DESIGN §14");
        assert_eq!(Verdict::SameModel.failover_label(), Some("same_model"));
    }
}
