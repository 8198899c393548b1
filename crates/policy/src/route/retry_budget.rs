//! `spec.retryBudget`: how many same-target retries a route may add.

use plumb_api::RetryBudgetSpec;

use super::{InvalidRoute, ratio};

/// Same-target retry budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    /// Retries as a share of requests.
    pub ratio: f64,
    /// Retries per second always allowed.
    pub min_per_second: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            min_per_second: 5,
        }
    }
}

/// Compiles `spec.retryBudget`: a ratio from 0 to 1; any floor, zero included.
pub(super) fn compile(spec: Option<&RetryBudgetSpec>) -> Result<RetryBudget, InvalidRoute> {
    let unset = RetryBudgetSpec::default();
    let rb = spec.unwrap_or(&unset);
    let rbd = RetryBudget::default();
    Ok(RetryBudget {
        ratio: ratio("spec.retryBudget.ratio", rb.ratio, rbd.ratio)?,
        min_per_second: rb.min_per_second.unwrap_or(rbd.min_per_second),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(yaml: &str) -> Result<RetryBudget, InvalidRoute> {
        let spec: RetryBudgetSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec))
    }

    #[test]
    fn an_unset_budget_allows_a_fifth_of_requests_and_five_a_second() {
        assert_eq!(compile(None), Ok(RetryBudget::default()));
        assert_eq!(
            budget("{}"),
            Ok(RetryBudget {
                ratio: 0.2,
                min_per_second: 5
            })
        );
    }

    #[test]
    fn a_budget_can_forbid_retries_entirely() {
        assert_eq!(
            budget("{ratio: 0, minPerSecond: 0}"),
            Ok(RetryBudget {
                ratio: 0.0,
                min_per_second: 0
            })
        );
    }

    #[test]
    fn a_ratio_outside_zero_to_one_is_refused() {
        let err = budget("{ratio: -1}").unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::OutOfRange {
                field: "spec.retryBudget.ratio".to_owned(),
                value: "-1".to_owned(),
                expected: "a number from 0 to 1",
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.retryBudget.ratio: -1 is out of range; expected a number from 0 to 1"
        );
    }
}
