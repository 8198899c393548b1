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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pace {
    /// Verify the current token again this often.
    pub recheck: Duration,
    /// After a check the API server could not answer, try again this soon (at most `recheck`).
    pub retry: Duration,
    /// Never ask for a fresh token more often than this.
    pub min_ask_gap: Duration,
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
}

/// Halfway from `now` to `expires`, but at least `gap` ahead; none when that is not before
/// the expiry.
fn next_ask(now: Instant, expires: Option<Instant>, gap: Duration) -> Option<Instant> {
    let expires = expires?;
    let at = now + (expires.saturating_duration_since(now) / 2).max(gap);
    (at < expires).then_some(at)
}

impl TokenClock {
    /// A token verified `now`, expiring at `expires` (none: it does not say).
    pub fn verified(now: Instant, expires: Option<Instant>, pace: &Pace) -> TokenClock {
        TokenClock {
            expires,
            recheck_at: now + pace.recheck,
            ask_at: next_ask(now, expires, pace.min_ask_gap),
        }
    }

    /// When the token expires, if it says.
    pub fn expires(&self) -> Option<Instant> {
        self.expires
    }

    /// A check started `now`: the next one is due a `recheck` later (the verdict may bring it
    /// forward, see [`TokenClock::unchecked`]).
    pub fn rechecking(&mut self, now: Instant, pace: &Pace) {
        self.recheck_at = now + pace.recheck;
    }

    /// The API server could not answer a check: try again soon.
    pub fn unchecked(&mut self, now: Instant, pace: &Pace) {
        self.recheck_at = now + pace.retry.min(pace.recheck);
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
    };

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
        let mut c = TokenClock::verified(t0, Some(t0 + s(3600)), &pace);
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
        let mut c = TokenClock::verified(t0, Some(t0 + s(3600)), &PACE);
        assert_eq!(c.due(t0), Due::Wait(t0 + s(60)));
        assert_eq!(c.due(t0 + s(60)), Due::Recheck);
        c.rechecking(t0 + s(60), &PACE);
        assert_eq!(c.due(t0 + s(61)), Due::Wait(t0 + s(120)));
        assert_eq!(c.due(t0 + s(3600)), Due::Expired, "before any check");
    }

    #[test]
    fn a_fresh_token_starts_over_from_its_own_expiry() {
        let t0 = Instant::now();
        let c = TokenClock::verified(t0 + s(3000), Some(t0 + s(6600)), &PACE);
        assert_eq!(c.expires(), Some(t0 + s(6600)));
        assert_eq!(c.due(t0 + s(3001)), Due::Wait(t0 + s(3060)));
        assert_eq!(c.due(t0 + s(4800)), Due::Recheck);
    }

    #[test]
    fn a_check_the_api_server_could_not_answer_is_tried_again_after_the_retry() {
        let t0 = Instant::now();
        let mut c = TokenClock::verified(t0, None, &PACE);
        c.rechecking(t0 + s(60), &PACE);
        c.unchecked(t0 + s(61), &PACE);
        assert_eq!(c.due(t0 + s(62)), Due::Wait(t0 + s(71)));
        assert_eq!(c.due(t0 + s(71)), Due::Recheck);
    }

    #[test]
    fn a_token_without_an_expiry_is_only_rechecked() {
        let t0 = Instant::now();
        let c = TokenClock::verified(t0, None, &PACE);
        assert_eq!(c.due(t0 + s(59)), Due::Wait(t0 + s(60)));
        assert_eq!(c.due(t0 + s(10_000)), Due::Recheck);
    }

    #[test]
    fn a_short_token_is_asked_for_once_and_expires() {
        let t0 = Instant::now();
        let mut c = TokenClock::verified(t0, Some(t0 + s(8)), &PACE);
        assert_eq!(c.due(t0), Due::Wait(t0 + s(5)));
        assert_eq!(c.due(t0 + s(5)), Due::Ask);
        c.asked(t0 + s(5), &PACE);
        assert_eq!(c.due(t0 + s(6)), Due::Wait(t0 + s(8)), "no more asks");
        assert_eq!(c.due(t0 + s(8)), Due::Expired);
    }
}
