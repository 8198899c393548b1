//! `plumb-knowledge`: the "K" of the loop — what the fleet knows of its upstreams.
//!
//! - [`sketch`]: a mergeable latency sketch (logarithmic buckets, 2% relative accuracy) that
//!   sidecars report and the operator adds up.
//! - [`fleet`]: the operator's store. It merges every sidecar's reports per namespace and
//!   upstream (error rate by class, latency percentiles, breaker consensus, rate-limit windows,
//!   equivalence tallies) and plans what every sidecar of the namespace acts on: an upstream the
//!   fleet saw fail is skipped everywhere until the one elected prober finds it healthy, nobody
//!   sends into a rate-limit window, retry budgets tighten while the fleet's error rate is high,
//!   and certifications are shared.
//!
//! Everything here is pure: time is an argument, so the planning is tested to the millisecond.

pub mod fleet;
pub mod sketch;

pub use fleet::{Fleet, FleetEvent, Settings, TargetState, TargetSummary};
pub use sketch::Sketch;

use plumb_policy::UpstreamKey;
use plumb_proto::v1;

/// The sum of counts a sidecar reported (or the store added up), saturating: a report's numbers
/// are input, and a count stuck at `u64::MAX` is better than an overflow.
pub(crate) fn total<'a>(counts: impl IntoIterator<Item = &'a u64>) -> u64 {
    counts.into_iter().fold(0, |sum, n| sum.saturating_add(*n))
}

/// The lower bound of the 95% Wilson score interval of `agreements` out of `samples`: what the
/// agreement rate is at least, given how few samples there may be (0 without samples). The
/// sidecars certify with it, and the status shows it.
pub fn lower_bound(agreements: u64, samples: u64) -> f64 {
    if samples == 0 {
        return 0.0;
    }
    const Z: f64 = 1.959_963_984_540_054;
    let n = samples as f64;
    let p = agreements.min(samples) as f64 / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0)
}

/// The wire form of an upstream.
pub fn upstream_to_proto(k: &UpstreamKey) -> v1::Upstream {
    v1::Upstream {
        base_url: k.base_url.clone(),
        model: k.model.clone(),
        credential: k.credential.clone(),
    }
}

/// An upstream from its wire form (a missing one is the empty upstream).
pub fn upstream_from_proto(u: Option<&v1::Upstream>) -> UpstreamKey {
    u.map_or_else(
        || UpstreamKey {
            base_url: String::new(),
            model: String::new(),
            credential: String::new(),
        },
        |u| UpstreamKey {
            base_url: u.base_url.clone(),
            model: u.model.clone(),
            credential: u.credential.clone(),
        },
    )
}
