//! When a control stream acts on its sidecar's token. Pure: time is an argument.
//!
//! A stream lives no longer than the token it was verified with. Before that token expires the
//! stream asks the sidecar for a fresh one, at the midpoint of what is left each time (so a
//! sidecar whose token file has not rotated yet is asked again, ever closer to the end), and
//! the current token is verified again every `recheck` (a TokenReview fails once the pod is
//! deleted). A check the API server could not answer is tried again after `retry`.
//!
//! | when                                   | what the stream does                        |
//! | -------------------------------------- | ------------------------------------------- |
//! | the token expired                      | close                                       |
//! | `recheck` since the last verification  | verify the current (or the freshest) token again |
//! | halfway to the expiry since the last ask | ask the sidecar for a fresh token         |
//! | a fresh token verified                 | start over from its expiry                  |

use std::time::Duration;

use tokio::time::Instant;

/// How often a stream checks its token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Verify the current token again this often.
    pub recheck: Duration,
    /// After a check the API server could not answer, try again this soon (at most `recheck`).
    pub retry: Duration,
    /// Never ask for a fresh token more often than this.
    pub min_ask_gap: Duration,
    /// Each wait for a check (`recheck`, `retry`) is drawn within this share of it either
    /// way (0: exact; clamped to 0..=0.5).
    pub jitter: f64,
}

impl Pace {
    /// The longest a stream waits between two checks of its token: `recheck` stretched by the
    /// jitter.
    pub fn longest_recheck(&self) -> Duration {
        self.recheck.mul_f64(1.0 + self.share())
    }

    fn share(&self) -> f64 {
        if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 0.5)
        } else {
            0.0
        }
    }
}

/// A stream's source of jitter: a small deterministic generator (SplitMix64), seeded per
/// stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded with `seed`.
    pub fn seeded(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// Uniform in `[-1, 1]`.
    fn next_signed(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // The top 53 bits as a fraction in [0, 1].
        let unit = (z >> 11) as f64 / ((1u64 << 53) - 1) as f64;
        unit * 2.0 - 1.0
    }

    /// `d` moved by up to `pace`'s jitter share of it, either way.
    fn spread(&mut self, d: Duration, pace: &Pace) -> Duration {
        let share = pace.share();
        if share == 0.0 {
            return d;
        }
        d.mul_f64(1.0 + share * self.next_signed())
    }
}

/// What a stream must do about its token now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The token expired: close the stream.
    Expired,
    /// Verify the token again.
    Recheck,
    /// Ask the sidecar for a fresh token.
    Ask,
    /// Nothing until then.
    Wait(Instant),
}

/// A stream's schedule for its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenClock {
    expires: Option<Instant>,
    recheck_at: Instant,
    ask_at: Option<Instant>,
    jitter: Jitter,
}

/// Halfway from `now` to `expires`, but at least `gap` ahead; none when that is not before
/// the expiry.
fn next_ask(now: Instant, expires: Option<Instant>, gap: Duration) -> Option<Instant> {
    let expires = expires?;
    let at = now + (expires.saturating_duration_since(now) / 2).max(gap);
    (at < expires).then_some(at)
}

impl TokenClock {
    /// A stream's first token, verified `now`, expiring at `expires` (none: it does not say);
    /// its checks drawn from `jitter`.
    pub fn start(
        now: Instant,
        expires: Option<Instant>,
        pace: &Pace,
        mut jitter: Jitter,
    ) -> TokenClock {
        TokenClock {
            expires,
            recheck_at: now + jitter.spread(pace.recheck, pace),
            ask_at: next_ask(now, expires, pace.min_ask_gap),
            jitter,
        }
    }

    /// A fresh token verified `now`, expiring at `expires`: the schedule starts over from it.
    pub fn verified(&mut self, now: Instant, expires: Option<Instant>, pace: &Pace) {
        *self = TokenClock::start(now, expires, pace, self.jitter);
    }

    /// The current token verified again `now`: the next check is a `recheck` later; its expiry
    /// and when to ask for a fresh one stay (starting the asks over at every check would put
    /// them off until the last two checks before the expiry).
    pub fn rechecked(&mut self, now: Instant, pace: &Pace) {
        self.recheck_at = now + self.jitter.spread(pace.recheck, pace);
    }

    /// When the token expires, if it says.
    pub fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// A check started `now`: the next one is due a `recheck` later (the verdict may bring it
    /// forward, see [`TokenClock::unchecked`]).
    pub fn rechecking(&mut self, now: Instant, pace: &Pace) {
        self.recheck_at = now + self.jitter.spread(pace.recheck, pace);
    }

    /// The API server could not answer a check: try again soon.
    pub fn unchecked(&mut self, now: Instant, pace: &Pace) {
        self.recheck_at = now + self.jitter.spread(pace.retry.min(pace.recheck), pace);
    }

    /// The sidecar was asked for a fresh token `now`.
    pub fn asked(&mut self, now: Instant, pace: &Pace) {
        self.ask_at = next_ask(now, self.expires, pace.min_ask_gap);
    }

    /// What is due at `now`: expiry first, then a check, then a question.
    pub fn due(&self, now: Instant) -> Due {
        if self.expires.is_some_and(|e| e <= now) {
            return Due::Expired;
        }
        if self.recheck_at <= now {
            return Due::Recheck;
        }
        if self.ask_at.is_some_and(|a| a <= now) {
            return Due::Ask;
        }
        let next = [self.expires, Some(self.recheck_at), self.ask_at]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(self.recheck_at);
        Due::Wait(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACE: Pace = Pace {
        recheck: Duration::from_secs(60),
        retry: Duration::from_secs(10),
        min_ask_gap: Duration::from_secs(5),
        jitter: 0.0,
    };

    const SEED: Jitter = Jitter(7);

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn a_fresh_token_is_asked_for_halfway_to_the_expiry_each_time_never_closer_than_the_gap() {
        let pace = Pace {
            recheck: s(86_400),
            ..PACE
        };
        let t0 = Instant::now();
        let mut c = TokenClock::start(t0, Some(t0 + s(3600)), &pace, SEED);
        let (mut now, mut asks) = (t0, Vec::new());
        loop {
            match c.due(now) {
                Due::Wait(next) => now = next,
                Due::Ask => {
                    asks.push((now - t0).as_millis());
                    c.asked(now, &pace);
                }
                Due::Expired => break,
                Due::Recheck => panic!("no recheck within a day"),
            }
        }
        assert_eq!(now, t0 + s(3600), "closed at the expiry");
        assert_eq!(asks[..4], [1_800_000, 2_700_000, 3_150_000, 3_375_000]);
        assert_eq!(asks.len(), 10, "{asks:?}");
        assert!(asks.windows(2).all(|w| w[1] - w[0] >= 5_000), "{asks:?}");
        assert!(asks.iter().all(|a| *a < 3_600_000));
    }

    #[test]
    fn the_token_is_verified_again_every_recheck_and_expiry_comes_first() {
        let t0 = Instant::now();
        let mut c = TokenClock::start(t0, Some(t0 + s(3600)), &PACE, SEED);
        assert_eq!(c.due(t0), Due::Wait(t0 + s(60)));
        assert_eq!(c.due(t0 + s(60)), Due::Recheck);
        c.rechecking(t0 + s(60), &PACE);
        assert_eq!(c.due(t0 + s(61)), Due::Wait(t0 + s(120)));
        assert_eq!(c.due(t0 + s(3600)), Due::Expired, "before any check");
    }

    #[test]
    fn a_fresh_token_starts_over_from_its_own_expiry() {
        let t0 = Instant::now();
        let c = TokenClock::start(t0 + s(3000), Some(t0 + s(6600)), &PACE, SEED);
        assert_eq!(c.expires(), Some(t0 + s(6600)));
        assert_eq!(c.due(t0 + s(3001)), Due::Wait(t0 + s(3060)));
        assert_eq!(c.due(t0 + s(4800)), Due::Recheck);
    }

    #[test]
    fn a_check_the_api_server_could_not_answer_is_tried_again_after_the_retry() {
        let t0 = Instant::now();
        let mut c = TokenClock::start(t0, None, &PACE, SEED);
        c.rechecking(t0 + s(60), &PACE);
        c.unchecked(t0 + s(61), &PACE);
        assert_eq!(c.due(t0 + s(62)), Due::Wait(t0 + s(71)));
        assert_eq!(c.due(t0 + s(71)), Due::Recheck);
    }

    #[test]
    fn a_token_without_an_expiry_is_only_rechecked() {
        let t0 = Instant::now();
        let c = TokenClock::start(t0, None, &PACE, SEED);
        assert_eq!(c.due(t0 + s(59)), Due::Wait(t0 + s(60)));
        assert_eq!(c.due(t0 + s(10_000)), Due::Recheck);
    }

    #[test]
    fn a_short_token_is_asked_for_once_and_expires() {
        let t0 = Instant::now();
        let mut c = TokenClock::start(t0, Some(t0 + s(8)), &PACE, SEED);
        assert_eq!(c.due(t0), Due::Wait(t0 + s(5)));
        assert_eq!(c.due(t0 + s(5)), Due::Ask);
        c.asked(t0 + s(5), &PACE);
        assert_eq!(c.due(t0 + s(6)), Due::Wait(t0 + s(8)), "no more asks");
        assert_eq!(c.due(t0 + s(8)), Due::Expired);
    }

    #[test]
    fn streams_that_start_together_recheck_spread_over_the_jitter_and_stay_within_it() {
        let pace = Pace {
            jitter: 0.2,
            ..PACE
        };
        let t0 = Instant::now();
        let mut clocks: Vec<TokenClock> = (0..200)
            .map(|i| TokenClock::start(t0, None, &pace, Jitter::seeded(i)))
            .collect();
        let firsts: Vec<Duration> = clocks
            .iter()
            .map(|c| match c.due(t0) {
                Due::Wait(at) => at - t0,
                other @ (Due::Expired | Due::Recheck | Due::Ask) => panic!("{other:?}"),
            })
            .collect();
        let (min, max) = (
            firsts.iter().min().copied().unwrap_or_default(),
            firsts.iter().max().copied().unwrap_or_default(),
        );
        assert!(min >= s(48) && max <= s(72), "{min:?}..{max:?}");
        assert!(
            max - min >= s(20),
            "spread over most of ±20%: {min:?}..{max:?}"
        );
        let mut distinct = firsts.clone();
        distinct.sort();
        distinct.dedup();
        assert!(
            distinct.len() >= 190,
            "{} distinct instants",
            distinct.len()
        );
        // Every later check of every stream stays within 48–72 s of the one before.
        for c in &mut clocks {
            let mut at = t0;
            for _ in 0..20 {
                let Due::Wait(next) = c.due(at) else {
                    panic!("nothing due between checks")
                };
                let gap = next - at;
                assert!(gap >= s(48) && gap <= pace.longest_recheck(), "{gap:?}");
                at = next;
                assert_eq!(c.due(at), Due::Recheck);
                c.rechecking(at, &pace);
            }
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_no_jitter_is_exact() {
        let pace = Pace {
            jitter: 0.2,
            ..PACE
        };
        let t0 = Instant::now();
        let a = TokenClock::start(t0, None, &pace, Jitter::seeded(42));
        let b = TokenClock::start(t0, None, &pace, Jitter::seeded(42));
        assert_eq!(a, b);
        let exact = TokenClock::start(t0, None, &PACE, Jitter::seeded(42));
        assert_eq!(exact.due(t0), Due::Wait(t0 + s(60)));
        let wild = Pace {
            jitter: f64::NAN,
            ..PACE
        };
        assert_eq!(
            TokenClock::start(t0, None, &wild, Jitter::seeded(42)).due(t0),
            Due::Wait(t0 + s(60)),
            "a share that is not a number is none"
        );
        assert_eq!(
            Pace {
                jitter: 3.0,
                ..PACE
            }
            .longest_recheck(),
            s(90),
            "at most half either way"
        );
    }

    #[test]
    fn a_recheck_of_the_same_token_keeps_the_time_to_ask_for_a_fresh_one() {
        let t0 = Instant::now();
        let mut c = TokenClock::start(t0, Some(t0 + s(3600)), &PACE, SEED);
        let mut now = t0;
        // Rechecked every minute: the ask still comes halfway to the expiry.
        loop {
            match c.due(now) {
                Due::Wait(next) => now = next,
                Due::Recheck => c.rechecked(now, &PACE),
                Due::Ask => break,
                Due::Expired => panic!("never asked"),
            }
        }
        assert_eq!(now, t0 + s(1800));
    }
}
