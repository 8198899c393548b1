//! Scripted fault plans, set per model through the admin API: "the first N attempts fail with
//! F", "fail with F for T after the plan is set", "fail a share p of attempts with F".

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::fault::Fault;

/// A plan as the admin API receives it: a fault and exactly one of `first`, `for`, `share`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// The fault to apply.
    pub fault: Fault,
    /// Fail this many attempts, then answer healthily.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<u32>,
    /// Fail for this long after the plan is set (`5s`, `250ms`), then answer healthily.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    /// Fail this share of attempts (0 to 1), at random.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<f64>,
    /// Seed for `share`, for reproducible runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A plan that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidPlan {
    /// None or several of `first`, `for`, `share`.
    #[error("a plan needs exactly one of \"first\", \"for\" or \"share\"")]
    Mode,
    /// `for` is not a duration.
    #[error("\"for\" must be a duration such as 5s or 250ms, got {0:?}")]
    Duration(String),
    /// `share` is outside 0..=1.
    #[error("\"share\" must be between 0 and 1")]
    Share,
}

#[derive(Debug)]
enum Mode {
    First { remaining: u32 },
    Until { deadline: Instant },
    Share { p: f64, rng: fastrand::Rng },
}

#[derive(Debug)]
struct Active {
    spec: PlanSpec,
    mode: Mode,
}

/// The plans in force, by model name; `*` applies to models that have none of their own.
#[derive(Debug, Default)]
pub struct Plans {
    inner: Mutex<HashMap<String, Active>>,
}

impl Plans {
    /// Sets (replaces) the plan of a model, starting now.
    pub fn set(&self, model: &str, spec: PlanSpec) -> Result<(), InvalidPlan> {
        let mode = match (spec.first, spec.for_.as_deref(), spec.share) {
            (Some(n), None, None) => Mode::First { remaining: n },
            (None, Some(d), None) => {
                let d: Duration = crate::fault::parse_duration("for", d)
                    .map_err(|_| InvalidPlan::Duration(d.to_owned()))?;
                Mode::Until {
                    deadline: Instant::now() + d,
                }
            }
            (None, None, Some(p)) => {
                if !(0.0..=1.0).contains(&p) {
                    return Err(InvalidPlan::Share);
                }
                let rng = spec.seed.map(fastrand::Rng::with_seed).unwrap_or_default();
                Mode::Share { p, rng }
            }
            _ => return Err(InvalidPlan::Mode),
        };
        self.inner
            .lock()
            .insert(model.to_owned(), Active { spec, mode });
        Ok(())
    }

    /// Removes a model's plan.
    pub fn remove(&self, model: &str) -> bool {
        self.inner.lock().remove(model).is_some()
    }

    /// Removes every plan.
    pub fn clear(&self) {
        self.inner.lock().clear();
    }

    /// The plans in force, as set.
    pub fn list(&self) -> HashMap<String, PlanSpec> {
        self.inner
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.spec.clone()))
            .collect()
    }

    /// The fault this attempt gets from the plans, if any; counts the attempt against a
    /// `first` plan.
    pub fn next_fault(&self, model: &str) -> Option<Fault> {
        let mut plans = self.inner.lock();
        let active = if plans.contains_key(model) {
            plans.get_mut(model)
        } else {
            plans.get_mut("*")
        }?;
        let hit = match &mut active.mode {
            Mode::First { remaining } => {
                if *remaining > 0 {
                    *remaining -= 1;
                    true
                } else {
                    false
                }
            }
            Mode::Until { deadline } => Instant::now() < *deadline,
            Mode::Share { p, rng } => rng.f64() < *p,
        };
        hit.then(|| active.spec.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> PlanSpec {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn first_n_attempts_fail_then_healthy() {
        let plans = Plans::default();
        plans
            .set("m", spec(r#"{"fault":"server_error","first":2}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plans.next_fault("m"), Some(Fault::ServerError));
        assert_eq!(plans.next_fault("m"), Some(Fault::ServerError));
        assert_eq!(plans.next_fault("m"), None);
        assert_eq!(plans.next_fault("other"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn timed_plan_fails_until_its_deadline() {
        let plans = Plans::default();
        plans
            .set("*", spec(r#"{"fault":"unavailable","for":"5s"}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plans.next_fault("any"), Some(Fault::Unavailable));
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert_eq!(plans.next_fault("any"), Some(Fault::Unavailable));
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(plans.next_fault("any"), None);
    }

    #[test]
    fn share_plan_fails_about_that_share() {
        let plans = Plans::default();
        plans
            .set("m", spec(r#"{"fault":"overloaded","share":0.3,"seed":42}"#))
            .unwrap_or_else(|e| panic!("{e}"));
        let hits = (0..10_000)
            .filter(|_| plans.next_fault("m").is_some())
            .count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
    }

    #[test]
    fn plans_need_exactly_one_mode() {
        let plans = Plans::default();
        assert_eq!(
            plans.set("m", spec(r#"{"fault":"hang"}"#)),
            Err(InvalidPlan::Mode)
        );
        assert_eq!(
            plans.set("m", spec(r#"{"fault":"hang","first":1,"share":0.5}"#)),
            Err(InvalidPlan::Mode)
        );
        assert_eq!(
            plans.set("m", spec(r#"{"fault":"hang","share":1.5}"#)),
            Err(InvalidPlan::Share)
        );
        assert_eq!(
            plans.set("m", spec(r#"{"fault":"hang","for":"soon"}"#)),
            Err(InvalidPlan::Duration("soon".into()))
        );
    }
}
