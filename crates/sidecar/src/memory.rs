//! The body-memory budget: large request and response bodies are held only within a fixed
//! budget, so a burst of maximum-size requests queues instead of pushing the sidecar past its
//! pod's memory limit.
//!
//! A body's first [`FREE_BYTES`] cost nothing (ordinary requests never touch the budget: the
//! connection cap bounds them); every further chunk is counted at [`WEIGHT`] times its size —
//! a body is held raw, parsed, and rewritten for the target — and waits for room up to the
//! budget's wait, after which the client gets a 503 saying the sidecar is busy.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a body may hold before it counts against the budget.
pub const FREE_BYTES: usize = 64 * 1024;
/// How many times its size a counted body is taken to cost (raw, parsed, rewritten).
pub const WEIGHT: usize = 4;
/// The budget's unit.
const UNIT: usize = 1024;

/// The sidecar's budget for large bodies.
#[derive(Clone, Debug)]
pub struct Memory {
    budget: Arc<Budget>,
    units: usize,
    wait: Duration,
}

/// The room left, and the waiters for room.
///
/// Not first come, first served: a body that fits goes ahead of one waiting for more than is
/// left, so a client that declares a huge body and never sends it holds its own share and no
/// one else's turn.
#[derive(Debug)]
struct Budget {
    free: Mutex<usize>,
    room: Notify,
}

impl Budget {
    /// Takes `units` when they fit, waiting for room (without a deadline of its own).
    async fn take(&self, units: usize) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so room given back in between is not missed.
            notified.as_mut().enable();
            {
                let mut free = self.free.lock();
                if *free >= units {
                    *free -= units;
                    return;
                }
            }
            notified.await;
        }
    }

    fn give_back(&self, units: usize) {
        *self.free.lock() += units;
        self.room.notify_waiters();
    }
}

/// What one request holds of the budget; given back when dropped.
#[derive(Debug, Default)]
pub struct Held {
    budget: Option<Arc<Budget>>,
    /// Units taken.
    units: usize,
    /// Bytes accounted for so far.
    bytes: usize,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let (Some(b), true) = (&self.budget, self.units > 0) {
            b.give_back(self.units);
        }
    }
}

/// There was no room within the wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the sidecar is holding as many large bodies as its memory budget allows; retry shortly")]
pub struct Busy;

impl Held {
    /// The body size accounted for so far (the first [`FREE_BYTES`] always are).
    pub fn bytes(&self) -> usize {
        self.bytes.max(FREE_BYTES)
    }
}

impl Memory {
    /// A budget of `bytes` (counted at [`WEIGHT`]), waiting up to `wait` for room.
    pub fn new(bytes: usize, wait: Duration) -> Memory {
        let units = (bytes / UNIT).max(1);
        Memory {
            budget: Arc::new(Budget {
                free: Mutex::new(units),
                room: Notify::new(),
            }),
            units,
            wait,
        }
    }

    /// The largest body one request can hold without waiting for others (the budget, less
    /// what is free, divided by the weight).
    pub fn largest_body(&self) -> usize {
        (self.units * UNIT / WEIGHT).saturating_add(FREE_BYTES)
    }

    /// Accounts for a body that has grown to `bytes`, waiting for room if it must.
    pub async fn grow(&self, held: &mut Held, bytes: usize) -> Result<(), Busy> {
        let counted = bytes.saturating_sub(FREE_BYTES);
        let had = held.bytes.saturating_sub(FREE_BYTES);
        if counted <= had {
            return Ok(());
        }
        let more = (counted.saturating_mul(WEIGHT).div_ceil(UNIT))
            .saturating_sub(had.saturating_mul(WEIGHT).div_ceil(UNIT));
        // A body counted at more than the whole budget takes all of it (the request bound,
        // not the budget, decides whether it may be that large).
        let more = more.min(self.units.saturating_sub(held.units));
        if more > 0 {
            tokio::time::timeout(self.wait, self.budget.take(more))
                .await
                .map_err(|_| Busy)?;
            held.budget = Some(self.budget.clone());
            held.units += more;
        }
        held.bytes = bytes;
        Ok(())
    }

    /// Room left, in bytes of budget (for tests and `/fleet`-style introspection).
    pub fn available(&self) -> usize {
        *self.budget.free.lock() * UNIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn small_bodies_are_free_and_large_ones_wait_for_room_then_give_up() {
        let m = Memory::new(4 * 1024 * 1024, Duration::from_secs(2));
        let mut small = Held::default();
        m.grow(&mut small, FREE_BYTES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m.available(),
            4 * 1024 * 1024,
            "the first 64 KiB cost nothing"
        );
        // 1 MiB over the free part costs 4 MiB: the whole budget.
        let mut big = Held::default();
        m.grow(&mut big, FREE_BYTES + 1024 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.available(), 0);
        let mut second = Held::default();
        let started = tokio::time::Instant::now();
        assert_eq!(m.grow(&mut second, 2 * FREE_BYTES).await, Err(Busy));
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "it waited first"
        );
        // Room comes back when the first request ends.
        drop(big);
        m.grow(&mut second, 2 * FREE_BYTES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.available(), 4 * 1024 * 1024 - 4 * FREE_BYTES);
        assert_eq!(m.largest_body(), 1024 * 1024 + FREE_BYTES);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_fits_is_not_held_behind_one_waiting_for_more_than_is_left() {
        // 4 MiB of budget: a declared 768 KiB body takes 3 MiB; a second declared 768 KiB body
        // waits for room; a 128 KiB one (256 KiB of budget) fits in what is left at once.
        let m = Memory::new(4 * 1024 * 1024, Duration::from_secs(30));
        let mut first = Held::default();
        m.grow(&mut first, FREE_BYTES + 768 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let waiting = tokio::spawn({
            let m = m.clone();
            async move {
                let mut second = Held::default();
                m.grow(&mut second, FREE_BYTES + 768 * 1024)
                    .await
                    .map(|()| second)
            }
        });
        tokio::task::yield_now().await;
        let started = tokio::time::Instant::now();
        let mut small = Held::default();
        m.grow(&mut small, FREE_BYTES + 64 * 1024)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            started.elapsed(),
            Duration::ZERO,
            "it did not wait its turn"
        );
        // When the first ends, the waiting one gets its room.
        drop(first);
        let second = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(second.is_ok());
        drop((second, small));
        assert_eq!(m.available(), 4 * 1024 * 1024);
    }

    #[tokio::test(start_paused = true)]
    async fn growth_is_counted_once() {
        let m = Memory::new(8 * 1024 * 1024, Duration::from_secs(1));
        let mut h = Held::default();
        for kib in [100, 200, 300, 300, 1000] {
            m.grow(&mut h, kib * 1024)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let expected = 8 * 1024 * 1024 - (1000 * 1024 - FREE_BYTES) * WEIGHT;
        assert_eq!(m.available(), expected);
        drop(h);
        assert_eq!(m.available(), 8 * 1024 * 1024);
    }
}
