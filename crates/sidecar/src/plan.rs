//! The planner: what follows a failed attempt. A pure function of what is known at that moment
//! — the failure's class and its plan, how often this target was retried or repaired, whether
//! other targets are left, the provider's `retry-after`, the clock and the deadline, the retry
//! budget, and whether the breaker and the fleet would let the same target be tried again. It
//! does no I/O and reads no clock: the attempt loop in [`crate::proxy`] measures, asks, and
//! carries the answer out.
//!
//! ```text
//!  failure ─▶ repair? ── the answer broke the contract, repairs left, budget, time ──▶ Repair
//!                │ no
//!                ▼
//!             retry? ── retries left, not kept for the last option, the target still
//!                │      admits attempts, the wait fits the deadline, budget ─────────▶ Retry(wait)
//!                │ no
//!                ▼
//!             the plan fails over? ── yes ─▶ Failover(why)      no ─▶ Stop(why)
//! ```
//!
//! After commit a stream cannot be retried; [`after_commit`] decides whether another target
//! continues it or the client gets an explicit error event.

use std::time::Duration;

use plumb_policy::{FailureClass, Plan};
use tokio::time::Instant;

/// Room left for the attempt itself after a wait: a retry whose wait ends closer to the
/// deadline than this is not worth sending.
pub const ATTEMPT_MARGIN: Duration = Duration::from_millis(50);

/// Everything the planner knows after one failed attempt.
#[derive(Clone, Copy, Debug)]
pub struct Situation {
    /// The failure's class.
    pub class: FailureClass,
    /// The route's plan for that class.
    pub plan: Plan,
    /// Retries already made on this target for this request.
    pub retries: u32,
    /// Repairs already made on this target for this request.
    pub repairs: u32,
    /// Whether the failure carries an answer the target could repair (a contract failure).
    pub repairable: bool,
    /// Whether another target can still be tried after this one.
    pub others_left: bool,
    /// How long the provider asked to wait.
    pub retry_after: Option<Duration>,
    /// Now.
    pub now: Instant,
    /// The request's total deadline.
    pub deadline: Instant,
    /// Whether the route's retry budget has room for one more retry or repair.
    pub budget_left: bool,
    /// Whether the same target would admit another attempt now.
    pub target: TargetVerdict,
    /// A uniform random number in `[0, 1)` for the backoff's jitter.
    pub jitter: f64,
    /// The failure says the state the request names (a previous response, a conversation) is
    /// not held by this account: another account may hold it.
    pub state_elsewhere: bool,
}

/// Whether a target admits another attempt, after its breaker and the fleet have had their say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetVerdict {
    /// It does.
    Available,
    /// Its breaker is open.
    BreakerOpen,
    /// The fleet skips it.
    FleetOpen,
}

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try the same target again after this wait.
    Retry(Duration),
    /// Ask the same target again, told what was wrong with its answer.
    Repair,
    /// Move on to the next target.
    Failover(Because),
    /// End the request with this failure.
    Stop(Because),
}

/// Why the same target is not tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Because {
    /// The plan's retries are used up (or it has none).
    RetriesSpent,
    /// The plan retries this class only when no other target is left, and one is.
    KeptForLastOption,
    /// The breaker or the fleet would refuse the target.
    TargetUnavailable,
    /// The backoff or the provider's `retry-after` does not fit before the deadline.
    WaitBeyondDeadline,
    /// The route's retry budget is spent.
    BudgetSpent,
    /// The request's deadline has passed: nothing more is tried anywhere.
    DeadlinePassed,
    /// The state the request names (a previous response, a conversation) is not held by this
    /// account; another may hold it.
    StateElsewhere,
}

impl Next {
    /// The name in spans: `retry`, `repair`, `failover`, `stop`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Next::Retry(_) => "retry",
            Next::Repair => "repair",
            Next::Failover(_) => "failover",
            Next::Stop(_) => "stop",
        }
    }

    /// Whether the retry budget, not the plan, kept the same target from another attempt.
    pub const fn budget_spent(self) -> bool {
        match self {
            Next::Failover(b) | Next::Stop(b) => matches!(b, Because::BudgetSpent),
            Next::Retry(_) | Next::Repair => false,
        }
    }
}

/// Decides what follows a failed attempt.
pub fn next(s: &Situation) -> Next {
    if s.now >= s.deadline {
        return Next::Stop(Because::DeadlinePassed);
    }
    // Not the caller's mistake while another account may hold what the request names.
    if s.state_elsewhere && s.others_left {
        return Next::Failover(Because::StateElsewhere);
    }
    // A contract failure is repaired first, as often as the plan allows: the same target,
    // told what was wrong.
    if s.repairable && s.repairs < s.plan.repairs && s.budget_left {
        return Next::Repair;
    }
    let move_on = |because| {
        if s.plan.failover {
            Next::Failover(because)
        } else {
            Next::Stop(because)
        }
    };
    if s.retries >= s.plan.retries {
        return move_on(Because::RetriesSpent);
    }
    if s.plan.retry_only_as_last_option && s.others_left {
        return move_on(Because::KeptForLastOption);
    }
    match s.target {
        TargetVerdict::Available => {}
        TargetVerdict::BreakerOpen | TargetVerdict::FleetOpen => {
            return move_on(Because::TargetUnavailable);
        }
    }
    let wait = s
        .retry_after
        .unwrap_or_else(|| s.plan.backoff.delay(s.retries, s.jitter));
    let fits = s
        .now
        .checked_add(wait)
        .and_then(|t| t.checked_add(ATTEMPT_MARGIN))
        .is_some_and(|t| t <= s.deadline);
    if !fits {
        // The provider's wait does not fit the deadline: moving on beats hammering.
        return move_on(Because::WaitBeyondDeadline);
    }
    if !s.budget_left {
        return move_on(Because::BudgetSpent);
    }
    Next::Retry(wait)
}

/// Why a committed stream stopped before its answer was complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interruption {
    /// The upstream's connection broke, or it ended the stream early.
    Cut,
    /// No event for longer than the stream-idle deadline.
    Stall,
    /// The stream lasted longer than the route's `streamMax`.
    TooLong,
    /// The provider sent an error event.
    ErrorEvent,
    /// An event that is not valid JSON, on a route that fails on them.
    Malformed,
}

impl Interruption {
    /// The name in the client's error event, logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Interruption::Cut => "cut",
            Interruption::Stall => "stall",
            Interruption::TooLong => "too_long",
            Interruption::ErrorEvent => "error_event",
            Interruption::Malformed => "malformed",
        }
    }
}

impl std::fmt::Display for Interruption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What follows the interruption of a committed stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Another target continues the answer from the text already sent.
    ContinueElsewhere,
    /// The client's stream ends with an explicit error event.
    EndWithError,
}

/// Decides what follows the interruption of a committed stream: another target continues it
/// when the route allows continuation, the answer so far can be resumed (text only), and the
/// interruption left nothing wrong in what was sent. A cut, a stall or an error event leave
/// the client's text whole; so does a malformed event — whatever it carried never reached the
/// client, and the continuation takes up from what did. A stream too long would only grow
/// longer.
pub const fn after_commit(why: Interruption, continuation: bool, resumable: bool) -> Committed {
    let repairable = match why {
        Interruption::Cut
        | Interruption::Stall
        | Interruption::ErrorEvent
        | Interruption::Malformed => true,
        Interruption::TooLong => false,
    };
    if repairable && continuation && resumable {
        Committed::ContinueElsewhere
    } else {
        Committed::EndWithError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The situations every class is tried in.
    #[derive(Clone, Copy, Debug)]
    enum Case {
        FirstAttempt,
        RetriesExhausted,
        LastOption,
        DeadlineNear,
        BudgetEmpty,
        RetryAfterBeyondDeadline,
    }

    const CASES: [Case; 6] = [
        Case::FirstAttempt,
        Case::RetriesExhausted,
        Case::LastOption,
        Case::DeadlineNear,
        Case::BudgetEmpty,
        Case::RetryAfterBeyondDeadline,
    ];

    fn situation(class: FailureClass, case: Case) -> Situation {
        let now = Instant::now();
        let plan = class.default_plan();
        let mut s = Situation {
            class,
            plan,
            retries: 0,
            repairs: 0,
            repairable: matches!(
                class,
                FailureClass::SchemaViolation | FailureClass::OutOfBounds
            ),
            others_left: true,
            retry_after: None,
            now,
            deadline: now + Duration::from_secs(120),
            budget_left: true,
            target: TargetVerdict::Available,
            // The backoff's ceiling, so the waits below are exact.
            jitter: 1.0,
            state_elsewhere: false,
        };
        match case {
            Case::FirstAttempt => {}
            Case::RetriesExhausted => {
                s.retries = plan.retries;
                s.repairs = plan.repairs;
            }
            Case::LastOption => s.others_left = false,
            Case::DeadlineNear => {
                s.others_left = false;
                s.deadline = now + Duration::from_millis(10);
            }
            Case::BudgetEmpty => {
                s.others_left = false;
                s.budget_left = false;
            }
            Case::RetryAfterBeyondDeadline => {
                s.others_left = false;
                s.retry_after = Some(Duration::from_secs(300));
            }
        }
        s
    }

    /// What the default plans say, written out class by class rather than derived from the
    /// plans, so a change to a default shows up here.
    fn expected(class: FailureClass, case: Case) -> Next {
        use Because::*;
        let ms = Duration::from_millis;
        let fo = Next::Failover;
        let stop = Next::Stop;
        match (class, case) {
            // A silent provider is retried only when nothing else is left.
            (FailureClass::Timeout, Case::FirstAttempt) => fo(KeptForLastOption),
            (FailureClass::Timeout, Case::LastOption) => Next::Retry(ms(100)),
            (FailureClass::Connect, Case::FirstAttempt | Case::LastOption) => Next::Retry(ms(50)),
            (FailureClass::RateLimited, Case::FirstAttempt | Case::LastOption) => {
                Next::Retry(ms(500))
            }
            (FailureClass::Overloaded, Case::FirstAttempt | Case::LastOption) => {
                Next::Retry(ms(250))
            }
            (FailureClass::ServerError, Case::FirstAttempt | Case::LastOption) => {
                Next::Retry(ms(100))
            }
            (FailureClass::MalformedResponse, Case::FirstAttempt | Case::LastOption) => {
                Next::Retry(ms(50))
            }
            (
                FailureClass::Timeout
                | FailureClass::Connect
                | FailureClass::RateLimited
                | FailureClass::Overloaded
                | FailureClass::ServerError
                | FailureClass::MalformedResponse,
                Case::RetriesExhausted,
            ) => fo(RetriesSpent),
            (
                FailureClass::Timeout
                | FailureClass::Connect
                | FailureClass::RateLimited
                | FailureClass::Overloaded
                | FailureClass::ServerError
                | FailureClass::MalformedResponse,
                Case::DeadlineNear,
            ) => fo(WaitBeyondDeadline),
            (
                FailureClass::Timeout
                | FailureClass::Connect
                | FailureClass::RateLimited
                | FailureClass::Overloaded
                | FailureClass::ServerError
                | FailureClass::MalformedResponse,
                Case::BudgetEmpty,
            ) => fo(BudgetSpent),
            (
                FailureClass::Timeout
                | FailureClass::Connect
                | FailureClass::RateLimited
                | FailureClass::Overloaded
                | FailureClass::ServerError
                | FailureClass::MalformedResponse,
                Case::RetryAfterBeyondDeadline,
            ) => fo(WaitBeyondDeadline),
            // Contract failures: one repair, then the next target.
            (
                FailureClass::SchemaViolation | FailureClass::OutOfBounds,
                Case::FirstAttempt
                | Case::LastOption
                | Case::DeadlineNear
                | Case::RetryAfterBeyondDeadline,
            ) => Next::Repair,
            (
                FailureClass::SchemaViolation | FailureClass::OutOfBounds,
                Case::RetriesExhausted | Case::BudgetEmpty,
            ) => fo(RetriesSpent),
            // Never retried on the same target; the next one may still answer. A connection
            // lost after the request was sent is among them: it may have been taken.
            (
                FailureClass::Auth
                | FailureClass::ConnectionLost
                | FailureClass::InvalidModel
                | FailureClass::ContextLength
                | FailureClass::StreamInterrupted
                | FailureClass::ModelSubstituted,
                _,
            ) => fo(RetriesSpent),
            // The caller's fault: no retry, no failover.
            (FailureClass::ContentFilter | FailureClass::BadRequest, _) => stop(RetriesSpent),
        }
    }

    #[test]
    fn state_held_elsewhere_moves_on_while_another_account_is_left_and_stops_after() {
        let mut s = situation(FailureClass::BadRequest, Case::FirstAttempt);
        assert!(matches!(next(&s), Next::Stop(_)), "bad_request stops");
        s.state_elsewhere = true;
        assert_eq!(next(&s), Next::Failover(Because::StateElsewhere));
        s.others_left = false;
        assert!(
            matches!(next(&s), Next::Stop(_)),
            "the last account's 404 is the caller's"
        );
    }

    #[test]
    fn every_class_in_every_situation_follows_its_default_plan() {
        for class in FailureClass::ALL {
            for case in CASES {
                let s = situation(class, case);
                assert_eq!(next(&s), expected(class, case), "{class} in {case:?}");
            }
        }
    }

    #[test]
    fn a_passed_deadline_stops_everything() {
        for class in FailureClass::ALL {
            let mut s = situation(class, Case::FirstAttempt);
            s.deadline = s.now;
            assert_eq!(next(&s), Next::Stop(Because::DeadlinePassed), "{class}");
        }
    }

    #[test]
    fn retry_after_is_honoured_when_it_fits() {
        let mut s = situation(FailureClass::RateLimited, Case::FirstAttempt);
        s.retry_after = Some(Duration::from_secs(2));
        assert_eq!(next(&s), Next::Retry(Duration::from_secs(2)));
        // It must leave room for the attempt itself.
        s.deadline = s.now + Duration::from_secs(2) + ATTEMPT_MARGIN / 2;
        assert_eq!(next(&s), Next::Failover(Because::WaitBeyondDeadline));
    }

    #[test]
    fn an_enormous_retry_after_is_not_an_overflow() {
        let mut s = situation(FailureClass::RateLimited, Case::FirstAttempt);
        s.retry_after = Some(Duration::MAX);
        assert_eq!(next(&s), Next::Failover(Because::WaitBeyondDeadline));
    }

    #[test]
    fn a_target_whose_breaker_or_fleet_refuses_it_is_not_retried() {
        for verdict in [TargetVerdict::BreakerOpen, TargetVerdict::FleetOpen] {
            let mut s = situation(FailureClass::ServerError, Case::FirstAttempt);
            s.target = verdict;
            assert_eq!(next(&s), Next::Failover(Because::TargetUnavailable));
        }
    }

    #[test]
    fn a_plan_without_failover_stops_where_it_would_have_moved_on() {
        let mut s = situation(FailureClass::ServerError, Case::BudgetEmpty);
        s.plan.failover = false;
        assert_eq!(next(&s), Next::Stop(Because::BudgetSpent));
        assert!(next(&s).budget_spent());
    }

    #[test]
    fn the_jitter_scales_the_backoff_up_to_its_ceiling() {
        let mut s = situation(FailureClass::ServerError, Case::FirstAttempt);
        s.jitter = 0.5;
        assert_eq!(next(&s), Next::Retry(Duration::from_millis(50)));
        s.jitter = 0.0;
        assert_eq!(next(&s), Next::Retry(Duration::ZERO));
    }

    #[test]
    fn repairs_come_before_retries_and_cost_budget() {
        let mut s = situation(FailureClass::SchemaViolation, Case::FirstAttempt);
        s.plan.retries = 2;
        assert_eq!(next(&s), Next::Repair);
        s.repairs = 1;
        assert_eq!(next(&s), Next::Retry(Duration::from_millis(100)));
        s.repairs = 0;
        s.budget_left = false;
        assert_eq!(next(&s), Next::Failover(Because::BudgetSpent));
    }

    #[test]
    fn only_clean_interruptions_are_continued_elsewhere() {
        use Interruption::*;
        for why in [Cut, Stall, ErrorEvent, Malformed] {
            assert_eq!(after_commit(why, true, true), Committed::ContinueElsewhere);
            assert_eq!(after_commit(why, false, true), Committed::EndWithError);
            assert_eq!(after_commit(why, true, false), Committed::EndWithError);
        }
        assert_eq!(after_commit(TooLong, true, true), Committed::EndWithError);
    }
}
