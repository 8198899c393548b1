//! `spec.match.models`: the model names a route serves.

use super::InvalidRoute;

/// Compiles `spec.match.models`: at least one name, none empty. `*` serves any model.
pub(super) fn compile(models: &[String]) -> Result<Vec<String>, InvalidRoute> {
    if models.is_empty() {
        return Err(InvalidRoute::NoModels);
    }
    for (i, m) in models.iter().enumerate() {
        if m.trim().is_empty() {
            return Err(InvalidRoute::EmptyModel {
                field: format!("spec.match.models[{i}]"),
            });
        }
    }
    Ok(models.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(models: &[&str]) -> Vec<String> {
        models.iter().map(|&m| m.to_owned()).collect()
    }

    #[test]
    fn model_names_are_kept_in_order_wildcard_included() {
        assert_eq!(
            compile(&names(&["gpt-4o", "*"])),
            Ok(names(&["gpt-4o", "*"]))
        );
    }

    #[test]
    fn a_route_without_models_is_refused() {
        let err = compile(&[]).unwrap_err();
        assert_eq!(err, InvalidRoute::NoModels);
        assert_eq!(
            err.to_string(),
            "spec.match.models: list at least one model name (or \"*\")"
        );
    }

    #[test]
    fn a_blank_model_name_is_refused_with_its_index() {
        let err = compile(&names(&["m", " "])).unwrap_err();
        assert_eq!(
            err,
            InvalidRoute::EmptyModel {
                field: "spec.match.models[1]".to_owned()
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.match.models[1]: a model name must not be empty"
        );
    }
}
