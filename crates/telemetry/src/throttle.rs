//! A log line that can repeat thousands of times a second (an attacker's refused connections,
//! every stream's token recheck while the API server is down) is written at most once per
//! interval and key, with how many times it happened since: the cause sets the pace of the
//! events, not the size of the log.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Occurrences per key, and when each key's line was last let through.
#[derive(Debug)]
pub struct Throttle<K> {
    every: Duration,
    keys: Mutex<HashMap<K, (Option<Instant>, u64)>>,
}

impl<K: Eq + Hash> Throttle<K> {
    /// Lines of one key at most once per `every`.
    pub fn new(every: Duration) -> Throttle<K> {
        Throttle {
            every,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `key` at `now`. `Some(n)` when its line is due: the
    /// occurrences since the last line, this one included; `None` while it is held back.
    pub fn tick(&self, key: K, now: Instant) -> Option<u64> {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, count) = keys.entry(key).or_insert((None, 0));
        *count += 1;
        if last.is_some_and(|at| now.duration_since(at) < self.every) {
            return None;
        }
        let n = std::mem::take(count);
        *last = Some(now);
        Some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_one_line_per_interval_with_the_count_since_the_last() {
        let t = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(
            t.tick("refused", start),
            Some(1),
            "the first says so at once"
        );
        let held = (1..=999)
            .filter_map(|i| t.tick("refused", start + Duration::from_micros(i * 900)))
            .count();
        assert_eq!(
            held, 0,
            "a thousand more within the second are counted, not written"
        );
        assert_eq!(t.tick("other", start), Some(1), "each key on its own");
        assert_eq!(
            t.tick("refused", start + Duration::from_secs(1)),
            Some(1000),
            "the next line carries them"
        );
        assert_eq!(t.tick("refused", start + Duration::from_secs(5)), Some(1));
    }
}
