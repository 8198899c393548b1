//! A mergeable latency sketch.
//!
//! Values (in microseconds) fall into logarithmic buckets: bucket `i` holds values in
//! `(γ^(i-1), γ^i]` with γ = 1.04, and a quantile is answered with the bucket's geometric
//! middle, so it is within 2% of the true value whatever the distribution. Two sketches merge by
//! adding counts per bucket, so the operator can add up what a hundred sidecars saw without
//! losing accuracy — unlike averaging their percentiles. One minute of a busy target fits in a
//! few dozen buckets.

use std::collections::BTreeMap;
use std::time::Duration;

use plumb_proto::v1;

/// The bucket growth factor.
const GAMMA: f64 = 1.04;

/// Counts per logarithmic bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sketch {
    buckets: BTreeMap<i32, u64>,
    count: u64,
}

fn index(micros: f64) -> i32 {
    if micros <= 1.0 {
        return 0;
    }
    (micros.ln() / GAMMA.ln()).ceil() as i32
}

/// The index of an hour: no latency is longer.
const MAX_INDEX: i32 = 562;

/// Whether a bucket index from the wire is a plausible latency (0 to an hour).
fn plausible(i: i32) -> bool {
    (0..=MAX_INDEX).contains(&i)
}

fn value(index: i32) -> f64 {
    // Computed once per plausible bucket: a sidecar asks for a p99 after every value it adds.
    static VALUES: std::sync::LazyLock<Vec<f64>> =
        std::sync::LazyLock::new(|| (0..=MAX_INDEX).map(middle).collect());
    usize::try_from(index)
        .ok()
        .and_then(|i| VALUES.get(i).copied())
        .unwrap_or_else(|| middle(index))
}

/// The geometric middle of (γ^(i-1), γ^i]: at most (γ-1)/2 off either end.
fn middle(index: i32) -> f64 {
    GAMMA.powf(f64::from(index) - 0.5)
}

/// The value of the `q` quantile of `count` values counted in buckets, given in ascending order
/// by `up` and in descending order by `down` (the same buckets): the bucket of the smallest value
/// whose 1-based rank is at least `q`·`count`. A rank in the upper half is found from the top,
/// past the few buckets above it: the p99 a sidecar asks for after every sample it adds is one
/// or two buckets from the top and dozens from the bottom.
fn at_rank(
    count: u64,
    q: f64,
    mut up: impl Iterator<Item = (i32, u64)>,
    down: impl Iterator<Item = (i32, u64)>,
) -> Option<Duration> {
    if count == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
    // From the top only while the buckets add up to `count` exactly: a count that saturated
    // (sketches from the wire) does not say how many values lie above a bucket. (A rank above
    // the count, which rounding gives only past 2^53 values, is left to the walk from the
    // bottom, which finds no such value, as before.)
    let index = if count < u64::MAX && rank > count / 2 && rank <= count {
        // A bucket holds the value of rank `rank` when at most `count − rank` values lie above
        // it, and the bucket below does not.
        let most_above = count - rank;
        let mut above = 0u64;
        let mut found = None;
        for (i, n) in down {
            found = Some(i);
            above = above.saturating_add(n);
            if above > most_above {
                break;
            }
        }
        found?
    } else {
        let mut seen = 0u64;
        up.find(|(_, n)| {
            seen = seen.saturating_add(*n);
            seen >= rank
        })?
        .0
    };
    Some(Duration::from_secs_f64(value(index) / 1e6))
}

/// The buckets of two sketches in one order (`before(x, y)`: bucket `x` comes before `y`), one
/// index on both sides being one bucket with both counts.
fn merged<'a>(
    a: impl Iterator<Item = (&'a i32, &'a u64)>,
    b: impl Iterator<Item = (&'a i32, &'a u64)>,
    before: impl Fn(i32, i32) -> bool,
) -> impl Iterator<Item = (i32, u64)> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some((ai, an)), Some((bi, bn))) if ai == bi => {
            let bucket = (**ai, an.saturating_add(**bn));
            a.next();
            b.next();
            Some(bucket)
        }
        (Some((ai, _)), Some((bi, _))) if before(**ai, **bi) => a.next().map(|(i, n)| (*i, *n)),
        (_, Some(_)) => b.next().map(|(i, n)| (*i, *n)),
        (Some(_), None) => a.next().map(|(i, n)| (*i, *n)),
        (None, None) => None,
    })
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Sketch {
        Sketch::default()
    }

    /// Adds one value.
    pub fn add(&mut self, d: Duration) {
        // Saturating, as a merge is: a sketch merged from the wire may be full already.
        let bucket = self
            .buckets
            .entry(index(d.as_secs_f64() * 1e6))
            .or_default();
        *bucket = bucket.saturating_add(1);
        self.count = self.count.saturating_add(1);
    }

    /// Adds every value of another sketch (counts saturate: a sketch from the wire holds what
    /// its sender said).
    pub fn merge(&mut self, other: &Sketch) {
        for (i, n) in &other.buckets {
            let count = self.buckets.entry(*i).or_default();
            *count = count.saturating_add(*n);
        }
        self.count = self.count.saturating_add(other.count);
    }

    /// Adds every value of a sketch in its wire form, as [`Sketch::merge`] of
    /// [`Sketch::from_proto`] would, without building that sketch: the operator merges every
    /// report's sketches this way, each bucket straight into its own.
    pub fn merge_proto(&mut self, s: &v1::Sketch) {
        for (i, n) in &s.buckets {
            if !plausible(*i) || *n == 0 {
                continue;
            }
            match self.buckets.get_mut(i) {
                Some(count) => *count = count.saturating_add(*n),
                None => {
                    self.buckets.insert(*i, *n);
                }
            }
            self.count = self.count.saturating_add(*n);
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `q` quantile (0 to 1), within 2%; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let up = self.buckets.iter().map(|(i, n)| (*i, *n));
        let down = self.buckets.iter().rev().map(|(i, n)| (*i, *n));
        at_rank(self.count, q, up, down)
    }

    /// The `q` quantile of two sketches together, as [`Sketch::quantile`] of their merge would
    /// answer, without building it (a sidecar asks after every sample it adds).
    pub fn quantile_of_both(a: &Sketch, b: &Sketch, q: f64) -> Option<Duration> {
        let count = a.count.saturating_add(b.count);
        let up = merged(a.buckets.iter(), b.buckets.iter(), |x, y| x < y);
        let down = merged(a.buckets.iter().rev(), b.buckets.iter().rev(), |x, y| x > y);
        at_rank(count, q, up, down)
    }

    /// The wire form.
    pub fn to_proto(&self) -> v1::Sketch {
        v1::Sketch {
            buckets: self.buckets.iter().map(|(i, n)| (*i, *n)).collect(),
        }
    }

    /// From the wire form. Bucket indexes outside any plausible latency (over an hour) are
    /// dropped, so a confused sender cannot grow the store; counts saturate.
    pub fn from_proto(s: &v1::Sketch) -> Sketch {
        let buckets: BTreeMap<i32, u64> = s
            .buckets
            .iter()
            .filter(|(i, n)| plausible(**i) && **n > 0)
            .map(|(i, n)| (*i, *n))
            .collect();
        let count = crate::total(buckets.values());
        Sketch { buckets, count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1e3)
    }

    #[test]
    fn quantiles_are_within_two_percent() {
        let mut s = Sketch::new();
        // 1..=1000 ms: the true p50 is 500 ms, p95 950 ms, p99 990 ms.
        for v in 1..=1000 {
            s.add(ms(f64::from(v)));
        }
        for (q, truth) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0), (1.0, 1000.0)] {
            let got = s.quantile(q).map_or(0.0, |d| d.as_secs_f64() * 1e3);
            assert!(
                (got - truth).abs() / truth <= 0.02,
                "q{q}: {got} against {truth}"
            );
        }
        assert_eq!(s.count(), 1000);
    }

    #[test]
    fn bucket_values_from_the_table_are_the_computed_ones_everywhere() {
        for i in [
            -3,
            -1,
            0,
            1,
            2,
            100,
            MAX_INDEX - 1,
            MAX_INDEX,
            MAX_INDEX + 1,
            5_000,
        ] {
            assert_eq!(value(i).to_bits(), middle(i).to_bits(), "bucket {i}");
        }
        assert!(value(1) < value(2) && value(MAX_INDEX) < value(MAX_INDEX + 1));
    }

    #[test]
    fn merged_sketches_answer_as_one_sketch_of_everything() {
        let (mut a, mut b, mut all) = (Sketch::new(), Sketch::new(), Sketch::new());
        for v in 1..=500 {
            a.add(ms(f64::from(v)));
            all.add(ms(f64::from(v)));
        }
        for v in 501..=1000 {
            b.add(ms(f64::from(v) * 3.0));
            all.add(ms(f64::from(v) * 3.0));
        }
        a.merge(&b);
        assert_eq!(a, all);
        // Half the values are under 500 ms, the other half between 1.5 s and 3 s.
        let p90 = a.quantile(0.9).map_or(0.0, |d| d.as_secs_f64());
        assert!((p90 - 2.7).abs() / 2.7 <= 0.02, "{p90}");
    }

    #[test]
    fn the_wire_form_round_trips_and_drops_nonsense() {
        let mut s = Sketch::new();
        s.add(ms(12.0));
        s.add(ms(0.0001));
        s.add(ms(40_000.0));
        assert_eq!(Sketch::from_proto(&s.to_proto()), s);
        let mut bad = s.to_proto();
        bad.buckets.insert(-5, 7);
        bad.buckets.insert(i32::MAX, 7);
        bad.buckets.insert(10, 0);
        assert_eq!(Sketch::from_proto(&bad), s);
        let mut huge = v1::Sketch::default();
        huge.buckets.insert(1, u64::MAX);
        huge.buckets.insert(2, u64::MAX);
        let mut merged = Sketch::from_proto(&huge);
        assert_eq!(merged.count(), u64::MAX, "saturates");
        merged.merge(&Sketch::from_proto(&huge));
        assert_eq!(merged.count(), u64::MAX);
        assert_eq!(Sketch::new().quantile(0.5), None);
    }

    #[test]
    fn the_quantile_of_two_is_the_quantile_of_their_merge() {
        let (mut a, mut b) = (Sketch::new(), Sketch::new());
        for i in 1..=300u64 {
            a.add(ms((i * 7 % 500 + 1) as f64));
        }
        for i in 1..=40u64 {
            b.add(ms((i * 13 % 2000 + 1) as f64));
        }
        let mut merged = a.clone();
        merged.merge(&b);
        for q in [0.0, 0.01, 0.3, 0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                Sketch::quantile_of_both(&a, &b, q),
                merged.quantile(q),
                "q = {q}"
            );
            assert_eq!(
                Sketch::quantile_of_both(&b, &a, q),
                merged.quantile(q),
                "q = {q}"
            );
        }
        let empty = Sketch::new();
        assert_eq!(Sketch::quantile_of_both(&a, &empty, 0.99), a.quantile(0.99));
        assert_eq!(Sketch::quantile_of_both(&empty, &b, 0.5), b.quantile(0.5));
        assert_eq!(Sketch::quantile_of_both(&empty, &empty, 0.5), None);
    }

    #[test]
    fn the_hour_is_the_last_plausible_bucket() {
        assert_eq!(index(3_600.0 * 1e6), MAX_INDEX);
    }

    #[test]
    fn merging_the_wire_form_is_merging_the_sketch_built_from_it() {
        let mut a = Sketch::new();
        for v in [0.0001, 3.0, 12.0, 12.1, 800.0, 40_000.0] {
            a.add(ms(v));
        }
        let mut b = Sketch::new();
        for v in 1..=300 {
            b.add(ms(f64::from(v) * 7.0));
        }
        let mut wire = b.to_proto();
        // Nonsense is dropped the same way.
        wire.buckets.insert(-5, 7);
        wire.buckets.insert(i32::MAX, 7);
        wire.buckets.insert(MAX_INDEX + 1, 7);
        wire.buckets.insert(10, 0);
        wire.buckets.insert(1, u64::MAX);
        let mut built = a.clone();
        built.merge(&Sketch::from_proto(&wire));
        let mut direct = a;
        direct.merge_proto(&wire);
        assert_eq!(direct, built);
        direct.merge_proto(&wire);
        assert_eq!(direct.count(), u64::MAX, "saturates");
        let mut empty = Sketch::new();
        empty.merge_proto(&v1::Sketch::default());
        assert!(empty.is_empty());
    }

    #[test]
    fn counts_from_the_wire_saturate_when_summed_and_merged() {
        let s = Sketch::from_proto(&v1::Sketch {
            buckets: [(1, u64::MAX), (2, u64::MAX)].into(),
        });
        assert_eq!(s.count(), u64::MAX);
        let mut merged = s.clone();
        merged.merge(&s);
        assert_eq!(merged.count(), u64::MAX);
        assert!(merged.quantile(1.0).is_some());
    }

    /// The `q` quantile as the walk from the bottom finds it.
    fn walked_up(buckets: &[(i32, u64)], q: f64) -> Option<Duration> {
        let count = buckets.iter().map(|(_, n)| n).sum::<u64>();
        let rank = ((q * count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        buckets.iter().find_map(|(i, n)| {
            seen += n;
            (seen >= rank).then(|| Duration::from_secs_f64(value(*i) / 1e6))
        })
    }

    #[test]
    fn a_high_quantile_found_from_the_top_is_the_one_found_from_the_bottom() {
        let (mut a, mut b) = (Sketch::new(), Sketch::new());
        for i in 1..=997u64 {
            a.add(ms((i * 7919 % 3001) as f64 / 3.0));
        }
        for i in 1..=61u64 {
            b.add(ms((i * 104_729 % 9000 + 100) as f64));
        }
        let mut both = a.clone();
        both.merge(&b);
        for s in [&a, &b, &both] {
            let buckets: Vec<(i32, u64)> = s.buckets.iter().map(|(i, n)| (*i, *n)).collect();
            for k in 0..=1000 {
                let q = f64::from(k) / 1000.0;
                assert_eq!(s.quantile(q), walked_up(&buckets, q), "q = {q}");
            }
        }
        for k in 0..=1000 {
            let q = f64::from(k) / 1000.0;
            assert_eq!(
                Sketch::quantile_of_both(&a, &b, q),
                both.quantile(q),
                "q = {q}"
            );
            assert_eq!(
                Sketch::quantile_of_both(&b, &a, q),
                both.quantile(q),
                "q = {q}"
            );
        }
        // Two values in two buckets: the lower half is the lower one, the upper the upper.
        let mut two = Sketch::new();
        two.add(ms(5.0));
        two.add(ms(50.0));
        let at = |v: f64| Some(Duration::from_secs_f64(value(index(v * 1e3)) / 1e6));
        assert_eq!(two.quantile(0.0), at(5.0));
        assert_eq!(two.quantile(0.5), at(5.0));
        assert_eq!(two.quantile(0.51), at(50.0));
        assert_eq!(two.quantile(1.0), at(50.0));
    }
}
