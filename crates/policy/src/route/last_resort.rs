//! `spec.lastResort`: what happens when every target is unavailable.

use plumb_api::{LastResortMode, LastResortSpec};

use super::{InvalidRoute, Target};

/// What happens when every target is unavailable.
#[derive(Clone, Debug, PartialEq)]
pub enum LastResort {
    /// Answer with an error at once.
    FailFast,
    /// Wait within the deadline for the first target to allow a probe.
    WaitForHalfOpen,
    /// Use this target, which is kept out of normal rotation.
    Target(Box<Target>),
}

impl LastResort {
    /// The last-resort target, if the route has one.
    pub(crate) fn target(&self) -> Option<&Target> {
        match self {
            LastResort::Target(t) => Some(t),
            LastResort::FailFast | LastResort::WaitForHalfOpen => None,
        }
    }
}

/// Compiles `spec.lastResort`. Mode `target` takes the named target out of `targets` (normal
/// rotation), which must keep at least one.
pub(super) fn compile(
    spec: Option<&LastResortSpec>,
    targets: &mut Vec<Target>,
) -> Result<LastResort, InvalidRoute> {
    let lr = spec.cloned().unwrap_or_default();
    match (lr.mode, lr.target) {
        (LastResortMode::FailFast, None) => Ok(LastResort::FailFast),
        (LastResortMode::WaitForHalfOpen, None) => Ok(LastResort::WaitForHalfOpen),
        (LastResortMode::FailFast | LastResortMode::WaitForHalfOpen, Some(_)) => Err(
            InvalidRoute::LastResortTarget("a target is named but mode is not \"target\""),
        ),
        (LastResortMode::Target, None) => Err(InvalidRoute::LastResortTarget(
            "mode \"target\" needs the name of one of the route's targets",
        )),
        (LastResortMode::Target, Some(name)) => {
            let idx = targets
                .iter()
                .position(|t| t.name == name)
                .ok_or(InvalidRoute::UnknownLastResortTarget(name))?;
            let t = targets.remove(idx);
            if targets.is_empty() {
                return Err(InvalidRoute::NoRotationTarget);
            }
            Ok(LastResort::Target(Box::new(t)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::targets_named;

    fn last_resort(yaml: &str, targets: &mut Vec<Target>) -> Result<LastResort, InvalidRoute> {
        let spec: LastResortSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        compile(Some(&spec), targets)
    }

    #[test]
    fn an_unset_last_resort_fails_fast_and_keeps_every_target() {
        let mut targets = targets_named(&["a", "b"]);
        assert_eq!(compile(None, &mut targets), Ok(LastResort::FailFast));
        assert_eq!(targets.len(), 2);
    }

    #[test]
    fn wait_for_half_open_keeps_every_target() {
        let mut targets = targets_named(&["a", "b"]);
        assert_eq!(
            last_resort("{mode: waitForHalfOpen}", &mut targets),
            Ok(LastResort::WaitForHalfOpen)
        );
        assert_eq!(targets.len(), 2);
        assert_eq!(LastResort::WaitForHalfOpen.target(), None);
    }

    #[test]
    fn a_last_resort_target_leaves_normal_rotation() {
        let mut targets = targets_named(&["a", "b", "c"]);
        let lr = last_resort("{mode: target, target: b}", &mut targets).unwrap();
        assert_eq!(lr.target().map(|t| t.name.as_str()), Some("b"));
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
    }

    #[test]
    fn a_named_target_with_another_mode_is_refused() {
        for mode in ["failFast", "waitForHalfOpen"] {
            let err = last_resort(
                &format!("{{mode: {mode}, target: a}}"),
                &mut targets_named(&["a", "b"]),
            )
            .unwrap_err();
            assert_eq!(
                err,
                InvalidRoute::LastResortTarget("a target is named but mode is not \"target\"")
            );
            assert_eq!(
                err.to_string(),
                "spec.lastResort.target: a target is named but mode is not \"target\""
            );
        }
    }

    #[test]
    fn mode_target_without_a_name_is_refused() {
        let err = last_resort("{mode: target}", &mut targets_named(&["a", "b"])).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::LastResortTarget(
                "mode \"target\" needs the name of one of the route's targets"
            )
        );
        assert_eq!(
            err.to_string(),
            "spec.lastResort.target: mode \"target\" needs the name of one of the route's targets"
        );
    }

    #[test]
    fn a_last_resort_naming_no_target_is_refused() {
        let err =
            last_resort("{mode: target, target: nope}", &mut targets_named(&["a"])).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::UnknownLastResortTarget("nope".to_owned())
        );
        assert_eq!(
            err.to_string(),
            "spec.lastResort.target: no target is named \"nope\""
        );
    }

    #[test]
    fn the_only_target_cannot_be_the_last_resort() {
        let err = last_resort("{mode: target, target: a}", &mut targets_named(&["a"])).unwrap_err();
        assert_eq!(err, InvalidRoute::NoRotationTarget);
        assert_eq!(
            err.to_string(),
            "spec.lastResort.target: at least one target must stay in normal rotation"
        );
    }
}
