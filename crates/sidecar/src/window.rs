//! Two counts over a sliding window, kept in ten buckets: what a circuit breaker judges an
//! upstream by (successes, failures) and what a retry budget allows (requests, retries).
//!
//! The window slides a bucket at a time: a count leaves it between nine and ten tenths of
//! the span after it was added. Time is an argument, so callers and tests decide what "now" is.

use std::time::Duration;

use tokio::time::Instant;

/// How many buckets a window is cut into.
const BUCKETS: usize = 10;

/// Two counts over a sliding window of [`BUCKETS`] buckets.
#[derive(Debug)]
pub struct SlidingWindow {
    /// How long one bucket lasts.
    bucket: Duration,
    /// When the head bucket began.
    start: Instant,
    buckets: [(u32, u32); BUCKETS],
    head: usize,
}

impl SlidingWindow {
    /// An empty window over `span` from `now`: buckets of a tenth of it, at least a millisecond.
    pub fn new(span: Duration, now: Instant) -> SlidingWindow {
        SlidingWindow {
            bucket: (span / BUCKETS as u32).max(Duration::from_millis(1)),
            start: now,
            buckets: [(0, 0); BUCKETS],
            head: 0,
        }
    }

    /// Adds `first` and `second` to the two counts at `now`. Counts saturate.
    pub fn add(&mut self, now: Instant, first: u32, second: u32) {
        self.advance(now);
        let b = &mut self.buckets[self.head];
        b.0 = b.0.saturating_add(first);
        b.1 = b.1.saturating_add(second);
    }

    /// The two counts over the window that ends at `now`.
    pub fn totals(&mut self, now: Instant) -> (u32, u32) {
        self.advance(now);
        self.buckets.iter().fold((0, 0), |(a, b), (x, y)| {
            (a.saturating_add(*x), b.saturating_add(*y))
        })
    }

    /// Forgets every count: the window starts again at `now`.
    pub fn clear(&mut self, now: Instant) {
        self.start = now;
        self.buckets = [(0, 0); BUCKETS];
    }

    /// Moves the head to the bucket of `now`, emptying the buckets it passes.
    fn advance(&mut self, now: Instant) {
        let mut steps = 0;
        while now.duration_since(self.start) >= self.bucket && steps < BUCKETS {
            self.start += self.bucket;
            self.head = (self.head + 1) % BUCKETS;
            self.buckets[self.head] = (0, 0);
            steps += 1;
        }
        if now.duration_since(self.start) >= self.bucket {
            // Idle for longer than the whole window: start over.
            self.clear(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn after(ms: u64) -> Instant {
        tokio::time::advance(Duration::from_millis(ms)).await;
        Instant::now()
    }

    #[tokio::test(start_paused = true)]
    async fn counts_inside_the_window_add_up() {
        let mut w = SlidingWindow::new(Duration::from_secs(10), Instant::now());
        w.add(Instant::now(), 1, 0);
        w.add(after(3_000).await, 2, 1);
        w.add(after(5_000).await, 0, 4);
        assert_eq!(w.totals(Instant::now()), (3, 5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_leaves_the_window_once_the_window_moved_past_it() {
        let mut w = SlidingWindow::new(Duration::from_secs(10), Instant::now());
        w.add(Instant::now(), 1, 1);
        w.add(after(1_000).await, 2, 0);
        // Nine buckets later the first one is still in.
        assert_eq!(w.totals(after(8_999).await), (3, 1));
        // The tenth bucket takes the first one's place.
        assert_eq!(w.totals(after(1).await), (2, 0));
        assert_eq!(w.totals(after(1_000).await), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_for_longer_than_the_window_starts_over_from_now() {
        let mut w = SlidingWindow::new(Duration::from_secs(10), Instant::now());
        w.add(Instant::now(), 5, 5);
        w.add(after(25_500).await, 1, 0);
        assert_eq!(w.totals(Instant::now()), (1, 0));
        // Buckets now begin at the restart, not on the old boundaries.
        assert_eq!(w.totals(after(9_999).await), (1, 0));
        assert_eq!(w.totals(after(1).await), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn clear_forgets_every_count() {
        let mut w = SlidingWindow::new(Duration::from_secs(10), Instant::now());
        w.add(Instant::now(), 3, 4);
        w.add(after(2_000).await, 3, 4);
        w.clear(Instant::now());
        assert_eq!(w.totals(Instant::now()), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_window_too_short_to_cut_has_buckets_of_a_millisecond() {
        let mut w = SlidingWindow::new(Duration::ZERO, Instant::now());
        w.add(Instant::now(), 1, 0);
        assert_eq!(w.totals(after(9).await), (1, 0));
        assert_eq!(w.totals(after(1).await), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn counts_saturate_instead_of_overflowing() {
        let mut w = SlidingWindow::new(Duration::from_secs(10), Instant::now());
        w.add(Instant::now(), u32::MAX, 1);
        w.add(after(1_000).await, 1, u32::MAX);
        assert_eq!(w.totals(Instant::now()), (u32::MAX, u32::MAX));
    }
}
