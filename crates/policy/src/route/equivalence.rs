//! `spec.equivalence`: when a fallback may stand in for the primary. The settings compile in
//! [`crate::equivalence`]; here the target the comparison calls (embedding, judge) is taken
//! out of rotation, since it serves comparisons only.

use plumb_api::EquivalenceSpec;

use super::{InvalidRoute, LastResort, Target};
use crate::equivalence::Equivalence;

/// Compiles `spec.equivalence` against every target, the last resort included, then moves
/// the comparison's helper target out of `targets` into [`Equivalence::helper`].
pub(super) fn compile(
    spec: Option<&EquivalenceSpec>,
    targets: &mut Vec<Target>,
    last_resort: &LastResort,
) -> Result<Equivalence, InvalidRoute> {
    let mut equivalence = match spec {
        Some(e) => {
            let everyone: Vec<&Target> = targets.iter().chain(last_resort.target()).collect();
            Equivalence::compile(e, &everyone)?
        }
        None => Equivalence::default(),
    };
    if let Some(name) = equivalence.method.helper() {
        equivalence.helper = Some(Box::new(take_helper(name, targets, last_resort)?));
    }
    Ok(equivalence)
}

/// Takes the helper named `name` out of rotation. It may not be the last resort, and at
/// least one target must stay in rotation.
fn take_helper(
    name: &str,
    targets: &mut Vec<Target>,
    last_resort: &LastResort,
) -> Result<Target, InvalidRoute> {
    let field = "spec.equivalence.method.target".to_owned();
    if last_resort.target().is_some_and(|t| t.name == name) {
        return Err(InvalidRoute::Contract {
            field,
            reason: format!(
                "{name:?} is the last resort; the comparison needs a target of its own"
            ),
        });
    }
    let idx =
        targets
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| InvalidRoute::Contract {
                field: field.clone(),
                reason: format!("no target is named {name:?}"),
            })?;
    let helper = targets.remove(idx);
    if targets.is_empty() {
        return Err(InvalidRoute::Contract {
            field,
            reason: "at least one target must stay in normal rotation".to_owned(),
        });
    }
    Ok(helper)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::targets_named;

    fn equivalence(
        yaml: &str,
        targets: &mut Vec<Target>,
        last_resort: &LastResort,
    ) -> Result<Equivalence, InvalidRoute> {
        let spec: EquivalenceSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec), targets, last_resort)
    }

    fn contract(reason: &str) -> InvalidRoute {
        InvalidRoute::Contract {
            field: "spec.equivalence.method.target".to_owned(),
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn unset_equivalence_is_off_and_keeps_every_target() {
        let mut targets = targets_named(&["a", "b"]);
        assert_eq!(
            compile(None, &mut targets, &LastResort::FailFast),
            Ok(Equivalence::default())
        );
        assert_eq!(targets.len(), 2);
    }

    #[test]
    fn a_method_without_a_helper_keeps_every_target() {
        let mut targets = targets_named(&["a", "b"]);
        let e = equivalence("{mode: observe}", &mut targets, &LastResort::FailFast).unwrap();
        assert_eq!(e.helper, None);
        assert_eq!(targets.len(), 2);
    }

    #[test]
    fn the_judge_leaves_rotation_to_serve_comparisons_only() {
        let mut targets = targets_named(&["a", "b", "c"]);
        let e = equivalence(
            "{method: {kind: judge, target: b}}",
            &mut targets,
            &LastResort::FailFast,
        )
        .unwrap();
        assert_eq!(e.helper.map(|t| t.name), Some("b".to_owned()));
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn the_last_resort_cannot_be_the_judge() {
        let mut targets = targets_named(&["a", "b"]);
        let b = targets.remove(1);
        let err = equivalence(
            "{method: {kind: judge, target: b}}",
            &mut targets,
            &LastResort::Target(Box::new(b)),
        )
        .unwrap_err();
        assert_eq!(
            err,
            contract("\"b\" is the last resort; the comparison needs a target of its own")
        );
        assert_eq!(
            err.to_string(),
            "spec.equivalence.method.target: \"b\" is the last resort; the comparison needs a target of its own"
        );
    }

    #[test]
    fn the_only_target_in_rotation_cannot_be_the_judge() {
        let err = equivalence(
            "{method: {kind: judge, target: a}}",
            &mut targets_named(&["a"]),
            &LastResort::FailFast,
        )
        .unwrap_err();
        assert_eq!(
            err,
            contract("at least one target must stay in normal rotation")
        );
        assert_eq!(
            err.to_string(),
            "spec.equivalence.method.target: at least one target must stay in normal rotation"
        );
    }

    #[test]
    fn a_judge_naming_no_target_is_refused() {
        let expected = contract("no target is named \"nowhere\"");
        assert_eq!(
            equivalence(
                "{method: {kind: judge, target: nowhere}}",
                &mut targets_named(&["a", "b"]),
                &LastResort::FailFast,
            ),
            Err(expected.clone()),
            "refused while compiling the method"
        );
        assert_eq!(
            take_helper(
                "nowhere",
                &mut targets_named(&["a", "b"]),
                &LastResort::FailFast
            ),
            Err(expected),
            "and again when taking it out of rotation"
        );
    }
}
