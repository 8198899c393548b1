//! What `plumb explain` plays: a failure of the first target, repeated, through the sidecar's
//! own planner, step by step, down to what the client receives.

use std::time::Duration;

use plumb_policy::equivalence::EquivalenceMode;
use plumb_policy::{BreakerEffect, FailureClass, LastResort, Route, Target};
use plumb_sidecar::fallback::still_eligible;
use plumb_sidecar::payload::Api;
use plumb_sidecar::plan::{self, Because, Committed, Interruption, Next, Situation, TargetVerdict};
use serde::Serialize;

use super::{dur, recognised};

/// What a failure of the first target leads to.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Scenario {
    /// The target that failed.
    pub target: String,
    /// The status given, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The class the sidecar gives it.
    pub class: String,
    /// Why, in words.
    pub meaning: String,
    /// The provider's own message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message: Option<String>,
    /// The provider's asked wait, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<String>,
    /// The breaker's part.
    pub breaker: String,
    /// The steps, in order, if the same failure repeats.
    pub steps: Vec<String>,
    /// What the steps assume of the moment.
    pub assumes: String,
    /// What the client receives if nothing answers.
    pub client_sees: String,
}

/// Plays a failure of `class` on the first target, repeated on every attempt, through the
/// sidecar's planner.
pub(super) fn scenario(
    route: &Route,
    class: FailureClass,
    status: Option<u16>,
    provider_message: Option<String>,
    retry_after: Option<Duration>,
) -> Scenario {
    let plan = route.plans[class.index()];
    let mut order: Vec<&Target> = route.targets.iter().collect();
    order.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    let first = order.first().copied().unwrap_or(&route.targets[0]);
    let others: Vec<&Target> = order
        .iter()
        .copied()
        .filter(|t| t.name != first.name)
        .chain(route.last_resort_target())
        .collect();
    let eligible: Vec<&Target> = others
        .iter()
        .copied()
        .filter(|c| still_eligible(class, first, c))
        .collect();
    let now = tokio::time::Instant::now();
    let deadline = now + route.deadlines.total;
    let mut steps = Vec::new();
    let mut retries = 0;
    let mut repairs = 0;
    let repairable = matches!(
        class,
        FailureClass::SchemaViolation | FailureClass::OutOfBounds
    );
    // After commit a stream is never retried: the sidecar's `after_commit` decides between a
    // continuation elsewhere and an explicit error event.
    let committed = class == FailureClass::StreamInterrupted;
    if committed {
        let continuers: Vec<&str> = others
            .iter()
            .filter(|t| t.capabilities.prefill)
            .map(|t| t.name.as_str())
            .collect();
        let step = match plan::after_commit(
            Interruption::Cut,
            route.streaming.continuation,
            !continuers.is_empty(),
        ) {
            Committed::ContinueElsewhere => format!(
                "continue the answer on {} (it declares prefill) from the text already sent{}; the client receives it once",
                continuers.join(", then "),
                if route.equivalence.mode == EquivalenceMode::Enforce {
                    ", if certified"
                } else {
                    ""
                }
            ),
            Committed::EndWithError => {
                let why = if route.streaming.continuation {
                    "no other target declares prefill"
                } else {
                    "streaming.continuation is off"
                };
                format!(
                    "end the client's stream with an explicit error event and a `: plumb stream_interrupted` comment ({why})"
                )
            }
        };
        steps.push(step);
    }
    // At most the plan's retries and repairs, and a few more to be safe from a bad plan.
    for _ in 0..=(plan.retries + plan.repairs + 1) {
        if committed {
            break;
        }
        let s = Situation {
            class,
            plan,
            retries,
            repairs,
            repairable,
            others_left: !eligible.is_empty(),
            retry_after,
            now,
            deadline,
            budget_left: true,
            target: TargetVerdict::Available,
            jitter: 1.0,
            state_elsewhere: false,
        };
        match plan::next(&s) {
            Next::Repair => {
                repairs += 1;
                steps.push(format!(
                    "repair: ask {} again, told what was wrong with its answer",
                    first.name
                ));
            }
            Next::Retry(wait) => {
                retries += 1;
                let why = if retry_after.is_some() {
                    "as the provider asked".to_owned()
                } else {
                    "at most; full jitter picks a random wait up to this bound".to_owned()
                };
                steps.push(format!("retry {} after {} ({why})", first.name, dur(wait)));
            }
            Next::Failover(because) => {
                let ruled_out: Vec<&str> = others
                    .iter()
                    .filter(|o| !eligible.iter().any(|e| e.name == o.name))
                    .map(|o| o.name.as_str())
                    .collect();
                let mut text = if eligible.is_empty() {
                    format!(
                        "no other target may follow ({}): the client gets the error",
                        because_text(because)
                    )
                } else {
                    format!(
                        "fail over ({}): {}",
                        because_text(because),
                        eligible
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", then ")
                    )
                };
                if !ruled_out.is_empty() {
                    text.push_str(&format!(
                        "; {} ruled out after {class}",
                        ruled_out.join(", ")
                    ));
                }
                steps.push(text);
                break;
            }
            Next::Stop(because) => {
                steps.push(format!(
                    "stop ({}): the client gets the error, no other target is tried",
                    because_text(because)
                ));
                break;
            }
        }
    }
    let breaker = match class.breaker_effect() {
        BreakerEffect::Ignore => {
            "not counted against the breaker (not the target's fault)".to_owned()
        }
        BreakerEffect::Count => format!(
            "counts toward {}'s breaker ({} in a row open it)",
            first.name, route.breaker.consecutive_failures
        ),
        BreakerEffect::Trip => format!(
            "opens {}'s breaker at once: it cannot succeed until someone fixes it",
            first.name
        ),
    };
    let openai = plumb_sidecar::respond::client_status(class, Api::Openai, false);
    let anthropic = plumb_sidecar::respond::client_status(class, Api::Anthropic, false);
    let client_sees = if openai == anthropic {
        format!(
            "if nothing answers: HTTP {} naming {class}, every target tried and the provider's words",
            openai.as_u16()
        )
    } else {
        format!(
            "if nothing answers: HTTP {} (OpenAI clients) or {} (Anthropic clients) naming {class}, every target tried and the provider's words",
            openai.as_u16(),
            anthropic.as_u16()
        )
    };
    Scenario {
        target: first.name.clone(),
        status,
        class: class.as_str().to_owned(),
        meaning: recognised(class).to_owned(),
        provider_message: provider_message.filter(|m| !m.is_empty()),
        retry_after: retry_after.map(dur),
        breaker,
        steps,
        assumes: "the same failure on every attempt of this target, its breaker closed, the retry budget with room, the deadline untouched; waits are the backoff's upper bound".to_owned(),
        client_sees,
    }
}

fn because_text(b: Because) -> &'static str {
    match b {
        Because::RetriesSpent => "retries spent",
        Because::KeptForLastOption => "retried only when no other target is left",
        Because::TargetUnavailable => "the target's breaker is open",
        Because::WaitBeyondDeadline => "the wait does not fit the deadline",
        Because::BudgetSpent => "the retry budget is spent",
        Because::DeadlinePassed => "the deadline passed",
        Because::StateElsewhere => "another OpenAI account may hold the state the request names",
    }
}

trait LastResortTarget {
    fn last_resort_target(&self) -> Option<&Target>;
}

impl LastResortTarget for Route {
    fn last_resort_target(&self) -> Option<&Target> {
        match &self.last_resort {
            LastResort::Target(t) => Some(t),
            LastResort::FailFast | LastResort::WaitForHalfOpen => None,
        }
    }
}
