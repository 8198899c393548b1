//! `spec.classes`: the route's overrides of each failure class's recovery plan.

use plumb_api::{BackoffSpec, ClassOverrides, ClassPolicySpec};

use super::{InvalidRoute, dur};
use crate::class::{Backoff, FailureClass, Plan};

/// Compiles `spec.classes`: every class starts from its default plan, and each override
/// replaces what it sets. Classes are checked in [`FailureClass::ALL`] order.
pub(super) fn compile(
    overrides: Option<&ClassOverrides>,
) -> Result<[Plan; FailureClass::ALL.len()], InvalidRoute> {
    let mut plans = FailureClass::ALL.map(FailureClass::default_plan);
    let Some(overrides) = overrides else {
        return Ok(plans);
    };
    for class in FailureClass::ALL {
        let (spec, key) = entry(overrides, class);
        if let Some(spec) = spec {
            let plan = &mut plans[class.index()];
            *plan = apply(&format!("spec.classes.{key}"), class, *plan, spec)?;
        }
    }
    Ok(plans)
}

/// A class's override and its key under `spec.classes`.
fn entry(o: &ClassOverrides, class: FailureClass) -> (Option<&ClassPolicySpec>, &'static str) {
    let (spec, key) = match class {
        FailureClass::Timeout => (&o.timeout, "timeout"),
        FailureClass::Connect => (&o.connect, "connect"),
        FailureClass::ConnectionLost => (&o.connection_lost, "connectionLost"),
        FailureClass::RateLimited => (&o.rate_limited, "rateLimited"),
        FailureClass::Overloaded => (&o.overloaded, "overloaded"),
        FailureClass::ServerError => (&o.server_error, "serverError"),
        FailureClass::Auth => (&o.auth, "auth"),
        FailureClass::InvalidModel => (&o.invalid_model, "invalidModel"),
        FailureClass::ContextLength => (&o.context_length, "contextLength"),
        FailureClass::ContentFilter => (&o.content_filter, "contentFilter"),
        FailureClass::BadRequest => (&o.bad_request, "badRequest"),
        FailureClass::MalformedResponse => (&o.malformed_response, "malformedResponse"),
        FailureClass::SchemaViolation => (&o.schema_violation, "schemaViolation"),
        FailureClass::OutOfBounds => (&o.out_of_bounds, "outOfBounds"),
        FailureClass::StreamInterrupted => (&o.stream_interrupted, "streamInterrupted"),
        FailureClass::ModelSubstituted => (&o.model_substituted, "modelSubstituted"),
    };
    (spec.as_ref(), key)
}

/// Applies one class's override (at `field`) to its plan: retries 0 to 10, repairs 0 to 3
/// and only for the classes a repair can fix, a backoff whose max is at least its initial.
fn apply(
    field: &str,
    class: FailureClass,
    mut plan: Plan,
    spec: &ClassPolicySpec,
) -> Result<Plan, InvalidRoute> {
    if let Some(r) = spec.retries {
        if r > 10 {
            return Err(InvalidRoute::OutOfRange {
                field: format!("{field}.retries"),
                value: r.to_string(),
                expected: "0 to 10",
            });
        }
        plan.retries = r;
    }
    if let Some(n) = spec.repairs {
        if !repairable(class) && n > 0 {
            return Err(InvalidRoute::OutOfRange {
                field: format!("{field}.repairs"),
                value: n.to_string(),
                expected: "0: only schemaViolation and outOfBounds can be repaired",
            });
        }
        if n > 3 {
            return Err(InvalidRoute::OutOfRange {
                field: format!("{field}.repairs"),
                value: n.to_string(),
                expected: "0 to 3",
            });
        }
        plan.repairs = n;
    }
    if let Some(f) = spec.failover {
        plan.failover = f;
    }
    if let Some(BackoffSpec { initial, max }) = &spec.backoff {
        let initial = dur(
            &format!("{field}.backoff.initial"),
            initial.as_ref(),
            plan.backoff.initial,
        )?;
        let max = dur(
            &format!("{field}.backoff.max"),
            max.as_ref(),
            plan.backoff.max.max(initial),
        )?;
        if max < initial {
            return Err(InvalidRoute::OutOfRange {
                field: format!("{field}.backoff.max"),
                value: format!("{max:?}"),
                expected: "at least backoff.initial",
            });
        }
        plan.backoff = Backoff { initial, max };
    }
    Ok(plan)
}

/// Whether a repair (re-asking with the validation error) can fix an answer of this class.
fn repairable(class: FailureClass) -> bool {
    match class {
        FailureClass::SchemaViolation | FailureClass::OutOfBounds => true,
        FailureClass::Timeout
        | FailureClass::Connect
        | FailureClass::ConnectionLost
        | FailureClass::RateLimited
        | FailureClass::Overloaded
        | FailureClass::ServerError
        | FailureClass::Auth
        | FailureClass::InvalidModel
        | FailureClass::ContextLength
        | FailureClass::ContentFilter
        | FailureClass::BadRequest
        | FailureClass::MalformedResponse
        | FailureClass::StreamInterrupted
        | FailureClass::ModelSubstituted => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::duration::InvalidDuration;

    fn plans(yaml: &str) -> Result<[Plan; FailureClass::ALL.len()], InvalidRoute> {
        let spec: ClassOverrides = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec))
    }

    fn out_of_range(field: &str, value: &str, expected: &'static str) -> InvalidRoute {
        InvalidRoute::OutOfRange {
            field: field.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }

    #[test]
    fn without_overrides_every_class_keeps_its_default_plan() {
        let defaults = FailureClass::ALL.map(FailureClass::default_plan);
        assert_eq!(compile(None), Ok(defaults));
        assert_eq!(plans("{}"), Ok(defaults));
    }

    #[test]
    fn an_override_replaces_only_what_it_sets() {
        let p = plans(
            "{serverError: {retries: 4, failover: false, backoff: {initial: 100ms, max: 2s}}, outOfBounds: {repairs: 3}}",
        )
        .unwrap();
        let server = FailureClass::ServerError.default_plan();
        assert_eq!(
            p[FailureClass::ServerError.index()],
            Plan {
                retries: 4,
                failover: false,
                backoff: Backoff {
                    initial: Duration::from_millis(100),
                    max: Duration::from_secs(2),
                },
                ..server
            }
        );
        assert_eq!(
            p[FailureClass::OutOfBounds.index()],
            Plan {
                repairs: 3,
                ..FailureClass::OutOfBounds.default_plan()
            }
        );
        assert_eq!(
            p[FailureClass::Timeout.index()],
            FailureClass::Timeout.default_plan()
        );
    }

    #[test]
    fn every_class_has_its_key_under_spec_classes() {
        for class in FailureClass::ALL {
            let (_, key) = entry(&ClassOverrides::default(), class);
            let p = plans(&format!("{{{key}: {{retries: 10}}}}")).unwrap();
            assert_eq!(p[class.index()].retries, 10, "{key}");
        }
    }

    #[test]
    fn a_backoff_initial_above_the_default_max_raises_the_max_with_it() {
        let p = plans("{timeout: {backoff: {initial: 20s}}}").unwrap();
        let b = p[FailureClass::Timeout.index()].backoff;
        assert_eq!(b.initial, Duration::from_secs(20));
        assert_eq!(b.max, Duration::from_secs(20));
    }

    #[test]
    fn more_than_ten_retries_are_refused() {
        let err = plans("{serverError: {retries: 11}}").unwrap_err();
        assert_eq!(
            err,
            out_of_range("spec.classes.serverError.retries", "11", "0 to 10")
        );
        assert_eq!(
            err.to_string(),
            "spec.classes.serverError.retries: 11 is out of range; expected 0 to 10"
        );
    }

    #[test]
    fn repairs_are_refused_for_classes_a_repair_cannot_fix() {
        let err = plans("{timeout: {repairs: 1}}").unwrap_err();
        assert_eq!(
            err,
            out_of_range(
                "spec.classes.timeout.repairs",
                "1",
                "0: only schemaViolation and outOfBounds can be repaired"
            )
        );
        assert_eq!(
            err.to_string(),
            "spec.classes.timeout.repairs: 1 is out of range; expected 0: only schemaViolation and outOfBounds can be repaired"
        );
        assert!(plans("{timeout: {repairs: 0}}").is_ok(), "zero is allowed");
    }

    #[test]
    fn more_than_three_repairs_are_refused() {
        assert_eq!(
            plans("{schemaViolation: {repairs: 4}}"),
            Err(out_of_range(
                "spec.classes.schemaViolation.repairs",
                "4",
                "0 to 3"
            ))
        );
    }

    #[test]
    fn a_backoff_max_below_its_initial_is_refused() {
        let err = plans("{timeout: {backoff: {initial: 2s, max: 1s}}}").unwrap_err();
        assert_eq!(
            err,
            out_of_range(
                "spec.classes.timeout.backoff.max",
                "1s",
                "at least backoff.initial"
            )
        );
        assert_eq!(
            err.to_string(),
            "spec.classes.timeout.backoff.max: 1s is out of range; expected at least backoff.initial"
        );
    }

    #[test]
    fn a_backoff_that_does_not_parse_is_refused_with_its_field() {
        assert_eq!(
            plans("{auth: {backoff: {initial: x}}}"),
            Err(InvalidRoute::Duration {
                field: "spec.classes.auth.backoff.initial".to_owned(),
                value: "x".to_owned(),
                reason: InvalidDuration::Number,
            })
        );
    }

    #[test]
    fn classes_are_checked_in_failure_class_order() {
        assert_eq!(
            plans("{modelSubstituted: {retries: 12}, connect: {retries: 11}}"),
            Err(out_of_range(
                "spec.classes.connect.retries",
                "11",
                "0 to 10"
            ))
        );
    }
}
