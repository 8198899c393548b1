//! Shadow sampling's limits per route — shadows in flight, and a per-minute budget of requests
//! and estimated tokens — kept in the policy table across reloads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use plumb_policy::RouteId;
use plumb_policy::equivalence::Shadow;
use tokio::time::Instant;

/// The per-minute window of a route's shadow budget.
#[derive(Debug)]
struct Window {
    started: Instant,
    requests: u32,
    tokens: u64,
}

/// One route's shadow limits in force.
#[derive(Debug)]
pub struct Limiter {
    in_flight: AtomicU32,
    window: Mutex<Window>,
}

impl Default for Limiter {
    fn default() -> Self {
        Limiter {
            in_flight: AtomicU32::new(0),
            window: Mutex::new(Window {
                started: Instant::now(),
                requests: 0,
                tokens: 0,
            }),
        }
    }
}

/// A shadow in flight; leaving frees its place.
#[derive(Debug)]
pub struct InFlight(Arc<Limiter>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    /// A place among the shadows in flight, if one is free.
    pub(crate) fn enter(self: &Arc<Self>, max: u32) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(self.clone()))
    }

    /// Takes `requests` and `tokens` from this minute's budget, if both fit.
    pub(crate) fn reserve(&self, s: &Shadow, requests: u32, tokens: u64) -> bool {
        let mut w = self.window.lock();
        let now = Instant::now();
        if now.duration_since(w.started) >= Duration::from_secs(60) {
            *w = Window {
                started: now,
                requests: 0,
                tokens: 0,
            };
        }
        let fits = w.requests.saturating_add(requests) <= s.requests_per_minute
            && w.tokens.saturating_add(tokens) <= u64::from(s.tokens_per_minute);
        if fits {
            w.requests += requests;
            w.tokens += tokens;
        }
        fits
    }
}

/// Every route's limiter, kept across reloads.
#[derive(Debug, Default)]
pub struct Shadows {
    limiters: Mutex<HashMap<RouteId, Arc<Limiter>>>,
}

impl Shadows {
    pub(crate) fn limiter(&self, id: &RouteId) -> Arc<Limiter> {
        self.limiters.lock().entry(id.clone()).or_default().clone()
    }
}
