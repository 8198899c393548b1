//! The per-route retry budget, which stops retry storms: retries as a share of requests over a
//! sliding window, scaled down by the fleet during an incident. What to retry, and how long to
//! wait first, is the planner's ([`crate::plan`]).

use std::time::Duration;

use parking_lot::Mutex;
use plumb_policy::RetryBudget;
use tokio::time::Instant;

use crate::window::SlidingWindow;

/// How far back the budget counts.
const WINDOW: Duration = Duration::from_secs(10);

/// The retry budget of one route: over the last ten seconds, same-target retries may add at
/// most `ratio` of the requests, plus `min_per_second` a second.
#[derive(Debug)]
pub struct Budget {
    /// The settings, and requests and retries over the last ten seconds.
    settings: Mutex<(RetryBudget, SlidingWindow)>,
    /// The share the fleet allows (1 but during an incident), in millionths.
    scale: std::sync::atomic::AtomicU32,
}

impl Budget {
    /// A fresh budget.
    pub fn new(settings: RetryBudget) -> Budget {
        Budget {
            settings: Mutex::new((settings, SlidingWindow::new(WINDOW, Instant::now()))),
            scale: std::sync::atomic::AtomicU32::new(1_000_000),
        }
    }

    /// Applies a reloaded route's settings, keeping the counts.
    pub fn update(&self, settings: RetryBudget) {
        self.settings.lock().0 = settings;
    }

    /// Scales the budget (the fleet's directive during an incident; 1 is the whole budget).
    pub fn set_scale(&self, scale: f64) {
        self.scale.store(
            (scale.clamp(0.0, 1.0) * 1e6) as u32,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The scale in force.
    pub fn scale(&self) -> f64 {
        f64::from(self.scale.load(std::sync::atomic::Ordering::Relaxed)) / 1e6
    }

    /// Counts a client request.
    pub fn request(&self) {
        self.settings.lock().1.add(Instant::now(), 1, 0);
    }

    /// Whether one more retry fits the budget, without taking it.
    pub fn has_room(&self) -> bool {
        let mut g = self.settings.lock();
        let (settings, counts) = &mut *g;
        Self::fits(settings, counts.totals(Instant::now()), self.scale())
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn try_retry(&self) -> bool {
        let scale = self.scale();
        let mut g = self.settings.lock();
        let (settings, counts) = &mut *g;
        let now = Instant::now();
        if !Self::fits(settings, counts.totals(now), scale) {
            return false;
        }
        counts.add(now, 0, 1);
        true
    }

    /// Whether one more retry fits, given the requests and retries in the window.
    fn fits(settings: &RetryBudget, (requests, retries): (u32, u32), scale: f64) -> bool {
        let allowed = scale
            * (settings.ratio * f64::from(requests) + f64::from(settings.min_per_second) * 10.0);
        f64::from(retries) + 1.0 <= allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budget_allows_a_floor_and_a_share() {
        let b = Budget::new(RetryBudget {
            ratio: 0.2,
            min_per_second: 1,
        });
        // The floor: ten retries per ten seconds with no requests at all.
        for _ in 0..10 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
        // A hundred requests earn twenty more.
        for _ in 0..100 {
            b.request();
        }
        for _ in 0..20 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
        // Ten seconds later the window is fresh.
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.try_retry());
    }

    #[tokio::test(start_paused = true)]
    async fn the_fleet_scales_the_budget_down_during_an_incident() {
        let b = Budget::new(RetryBudget {
            ratio: 0.2,
            min_per_second: 1,
        });
        b.set_scale(0.1);
        for _ in 0..100 {
            b.request();
        }
        // A tenth of (20 + 10).
        for _ in 0..3 {
            assert!(b.try_retry());
        }
        assert!(!b.try_retry());
        b.set_scale(1.0);
        assert!(b.try_retry());
    }

    #[tokio::test(start_paused = true)]
    async fn zero_floor_and_ratio_allows_no_retry() {
        let b = Budget::new(RetryBudget {
            ratio: 0.0,
            min_per_second: 0,
        });
        b.request();
        assert!(!b.try_retry());
    }
}
