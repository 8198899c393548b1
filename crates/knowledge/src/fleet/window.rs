//! The sliding windows traffic is counted in: the settings' window cut into [`BUCKETS`] slots
//! of equal length, each slot a bucket of a [`Ring`] that is reused once the window moved past
//! it.

use std::time::Duration;

use super::millis;

/// How many buckets a window holds.
pub(super) const BUCKETS: usize = 6;

/// Time cut into slots: slot `n` holds `[n · ms, (n + 1) · ms)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slots {
    ms: i64,
}

/// Counts over a sliding window of [`BUCKETS`] slots.
#[derive(Clone, Debug, Default)]
pub(super) struct Ring<T> {
    slots: [(i64, T); BUCKETS],
}

impl Slots {
    /// The slots of `window`: a [`BUCKETS`]th of it each, at least a millisecond.
    pub(super) fn of(window: Duration) -> Slots {
        Slots {
            ms: (millis(window) / BUCKETS as i64).max(1),
        }
    }

    /// The slot `now_ms` falls in.
    pub(super) fn at(self, now_ms: i64) -> i64 {
        now_ms.div_euclid(self.ms)
    }

    /// How many slots make up the last `span` (at least one).
    pub(super) fn covering(self, span: Duration) -> i64 {
        (millis(span) / self.ms).max(1)
    }
}

impl<T: Default> Ring<T> {
    /// The bucket of `slot`, emptied first if it still holds an older slot.
    pub(super) fn at(&mut self, slot: i64) -> &mut T {
        let i = slot.rem_euclid(BUCKETS as i64) as usize;
        if self.slots[i].0 != slot {
            self.slots[i] = (slot, T::default());
        }
        &mut self.slots[i].1
    }

    /// The buckets of the last `n` slots up to `slot`.
    pub(super) fn recent(&self, slot: i64, n: i64) -> impl Iterator<Item = &T> {
        self.slots
            .iter()
            .filter(move |(s, _)| *s <= slot && *s > slot - n)
            .map(|(_, t)| t)
    }

    /// The buckets of the whole window up to `slot`.
    pub(super) fn window(&self, slot: i64) -> impl Iterator<Item = &T> {
        self.recent(slot, BUCKETS as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_is_six_slots_of_ten_seconds() {
        let slots = Slots::of(Duration::from_secs(60));
        assert_eq!((slots.at(9_999), slots.at(10_000)), (0, 1));
        assert_eq!(slots.at(-1), -1, "before the epoch too");
        assert_eq!(slots.covering(Duration::from_secs(20)), 2);
        assert_eq!(slots.covering(Duration::from_millis(1)), 1, "at least one");
        assert_eq!(
            Slots::of(Duration::ZERO).at(7),
            7,
            "at least a millisecond each"
        );
    }

    #[test]
    fn a_bucket_is_reused_once_the_window_moved_past_it() {
        let mut ring = Ring::<u64>::default();
        *ring.at(0) += 1;
        *ring.at(1) += 2;
        assert_eq!(ring.window(1).sum::<u64>(), 3);
        assert_eq!(ring.recent(1, 1).sum::<u64>(), 2);
        // Slot 6 takes slot 0's bucket, empty.
        *ring.at(6) += 4;
        assert_eq!(ring.window(6).sum::<u64>(), 6);
        assert_eq!(ring.window(7).sum::<u64>(), 4, "slot 1 left the window");
    }
}
