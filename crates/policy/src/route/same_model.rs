//! `spec.sameModel`: groups of targets that serve the same model (the same weights on another
//! provider or cloud), and the warning for a route whose embedding models differ without it.

use std::collections::HashMap;
use std::fmt;

use super::{InvalidRoute, Target};

/// Which targets serve the same model, by name. Each target is in one group at most; a target
/// is always the same model as itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SameModel {
    /// Target name → its group's index.
    group_of: HashMap<String, usize>,
}

impl SameModel {
    /// Whether targets `a` and `b` (by name) serve the same model.
    pub fn same(&self, a: &str, b: &str) -> bool {
        a == b
            || self
                .group_of
                .get(a)
                .is_some_and(|g| self.group_of.get(b) == Some(g))
    }

    /// Whether the route declares any group.
    pub fn is_empty(&self) -> bool {
        self.group_of.is_empty()
    }
}

/// Something a route does that compiles and serves, but is probably not what its author meant.
/// The operator writes it into the route's status; standalone, the sidecar logs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteWarning {
    /// A route that runs embedding models has serving targets in more than one model group
    /// (a `sameModel` group, or a target in none): an embeddings request never fails over from
    /// one group to another. The groups, each as `(target, model)`, in declaration order.
    EmbeddingModelsDiffer(Vec<Vec<(String, String)>>),
}

impl fmt::Display for RouteWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteWarning::EmbeddingModelsDiffer(groups) => {
                let listed: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let names: Vec<String> = g
                            .iter()
                            .map(|(name, model)| format!("{name} ({model})"))
                            .collect();
                        format!("[{}]", names.join(", "))
                    })
                    .collect();
                write!(
                    f,
                    "spec.sameModel: the targets run {} models not declared the same: {}; an embeddings request never fails over from one to another (another model's vectors would not match the caller's index); if some run the same weights, list them together in spec.sameModel",
                    groups.len(),
                    listed.join(" and ")
                )
            }
        }
    }
}

/// Compiles `spec.sameModel` against the route's serving targets: every name a target's, each
/// target in one group at most, each group at least two targets.
pub(super) fn compile<'t>(
    groups: &[Vec<String>],
    serving: impl Iterator<Item = &'t Target> + Clone,
) -> Result<SameModel, InvalidRoute> {
    let mut group_of = HashMap::new();
    for (g, names) in groups.iter().enumerate() {
        let invalid = |field: String, reason: String| InvalidRoute::SameModel { field, reason };
        if names.len() < 2 {
            return Err(invalid(
                format!("spec.sameModel[{g}]"),
                "a group names at least two targets".to_owned(),
            ));
        }
        for (i, name) in names.iter().enumerate() {
            let field = format!("spec.sameModel[{g}][{i}]");
            if !serving.clone().any(|t| &t.name == name) {
                return Err(invalid(field, format!("no target is named {name:?}")));
            }
            if let Some(other) = group_of.insert(name.clone(), g) {
                let reason = if other == g {
                    format!("{name:?} is listed twice in this group")
                } else {
                    format!(
                        "{name:?} is already in spec.sameModel[{other}]; a target is in one group at most (merge the groups)"
                    )
                };
                return Err(invalid(field, reason));
            }
        }
    }
    Ok(SameModel { group_of })
}

/// Whether an upstream model's name says it computes embeddings: `text-embedding-3-small`,
/// `nomic-embed-text`, `mxbai-embed-large`, `bge-m3`, `e5-large`, `gte-base`, `voyage-3`…
/// A heuristic, used only for a warning.
pub fn is_embedding_model(model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or_default();
    m.contains("embed")
        || ["bge-", "e5-", "gte-", "voyage-", "multilingual-e5"]
            .iter()
            .any(|p| m.starts_with(p))
}

/// The warning for a route that runs an embedding model (by its name) and whose serving
/// targets fall in more than one model group: the groups, which embeddings never fail over
/// between.
pub(super) fn warnings<'t>(
    same: &SameModel,
    serving: impl Iterator<Item = &'t Target>,
) -> Vec<RouteWarning> {
    let targets: Vec<&Target> = serving.collect();
    if !targets.iter().any(|t| is_embedding_model(&t.model)) {
        return Vec::new();
    }
    let mut groups: Vec<Vec<(String, String)>> = Vec::new();
    for t in &targets {
        let entry = (t.name.clone(), t.model.clone());
        match groups.iter_mut().find(|g| {
            g.first()
                .is_some_and(|(first, _)| same.same(first, &t.name))
        }) {
            Some(g) => g.push(entry),
            None => groups.push(vec![entry]),
        }
    }
    if groups.len() > 1 {
        vec![RouteWarning::EmbeddingModelsDiffer(groups)]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::targets_named;

    fn compiled(groups: &[&[&str]]) -> Result<SameModel, InvalidRoute> {
        let targets = targets_named(&["a", "b", "c", "d"]);
        let groups: Vec<Vec<String>> = groups
            .iter()
            .map(|g| g.iter().map(|n| (*n).to_owned()).collect())
            .collect();
        compile(&groups, targets.iter())
    }

    #[test]
    fn targets_of_one_group_are_the_same_model_and_no_others() {
        let same = compiled(&[&["a", "b"], &["c", "d"]]).unwrap_or_else(|e| panic!("{e}"));
        assert!(same.same("a", "b") && same.same("b", "a"));
        assert!(same.same("c", "d"));
        assert!(!same.same("a", "c"));
        assert!(same.same("a", "a"), "a target is its own model");
        let none = compiled(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.is_empty() && !none.same("a", "b"));
    }

    #[test]
    fn an_unknown_name_is_refused_by_its_place() {
        assert_eq!(
            compiled(&[&["a", "x"]]).unwrap_err().to_string(),
            "spec.sameModel[0][1]: no target is named \"x\""
        );
    }

    #[test]
    fn a_group_of_one_is_refused() {
        assert_eq!(
            compiled(&[&["a", "b"], &["c"]]).unwrap_err().to_string(),
            "spec.sameModel[1]: a group names at least two targets"
        );
    }

    #[test]
    fn a_target_in_two_groups_or_twice_in_one_is_refused() {
        assert_eq!(
            compiled(&[&["a", "b"], &["c", "a"]])
                .unwrap_err()
                .to_string(),
            "spec.sameModel[1][1]: \"a\" is already in spec.sameModel[0]; a target is in one group at most (merge the groups)"
        );
        assert_eq!(
            compiled(&[&["a", "a"]]).unwrap_err().to_string(),
            "spec.sameModel[0][1]: \"a\" is listed twice in this group"
        );
    }

    #[test]
    fn embedding_models_are_told_by_their_names() {
        for m in [
            "text-embedding-3-small",
            "nomic-embed-text",
            "mxbai-embed-large",
            "BAAI/bge-m3",
            "intfloat/multilingual-e5-large",
            "voyage-3",
            "amazon.titan-embed-text-v2:0",
        ] {
            assert!(is_embedding_model(m), "{m}");
        }
        for m in [
            "gpt-4o",
            "claude-sonnet-4",
            "llama-3.1-8b",
            "text-davinci-003",
        ] {
            assert!(!is_embedding_model(m), "{m}");
        }
    }
}
