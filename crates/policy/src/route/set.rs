//! The routes in force, and the model names a sidecar looks them up by.

use std::collections::HashMap;
use std::sync::Arc;

use super::{InvalidRoute, Route, RouteId};

/// The routes in force, indexed by the model names they serve.
#[derive(Clone, Debug, Default)]
pub struct RouteSet {
    routes: Vec<Arc<Route>>,
    by_model: HashMap<String, usize>,
    wildcard: Option<usize>,
}

impl RouteSet {
    /// Builds a set from compiled routes. Two routes may not serve the same model: the one
    /// later in `(namespace, name)` order is refused with [`InvalidRoute::ModelTaken`] and the
    /// rest are kept.
    pub fn new(mut routes: Vec<Route>) -> (RouteSet, Vec<(RouteId, InvalidRoute)>) {
        routes.sort_by(|a, b| a.id.cmp(&b.id));
        let mut set = RouteSet::default();
        let mut refused = Vec::new();
        'routes: for route in routes {
            for model in &route.models {
                let taken = if model == "*" {
                    set.wildcard.map(|i| &set.routes[i].id)
                } else {
                    set.by_model.get(model).map(|&i| &set.routes[i].id)
                };
                if let Some(by) = taken {
                    let err = InvalidRoute::ModelTaken {
                        model: model.clone(),
                        by: by.clone(),
                    };
                    refused.push((route.id.clone(), err));
                    continue 'routes;
                }
            }
            let idx = set.routes.len();
            for model in &route.models {
                if model == "*" {
                    set.wildcard = Some(idx);
                } else {
                    set.by_model.insert(model.clone(), idx);
                }
            }
            set.routes.push(Arc::new(route));
        }
        (set, refused)
    }

    /// The route serving `model`: an exact match, else the `*` route.
    pub fn lookup(&self, model: &str) -> Option<&Arc<Route>> {
        self.by_model
            .get(model)
            .or(self.wildcard.as_ref())
            .map(|&i| &self.routes[i])
    }

    /// Every route.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The model names served, `*` excluded, sorted.
    pub fn models(&self) -> Vec<&str> {
        let mut m: Vec<&str> = self.by_model.keys().map(String::as_str).collect();
        m.sort_unstable();
        m
    }

    /// Whether the set has no route.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::tests::route;

    fn id(namespace: &str, name: &str) -> RouteId {
        RouteId {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    #[test]
    fn an_empty_set_serves_nothing() {
        let (set, refused) = RouteSet::new(Vec::new());
        assert!(set.is_empty());
        assert!(refused.is_empty());
        assert!(set.lookup("m").is_none());
    }

    #[test]
    fn exact_model_names_win_over_the_wildcard() {
        let (set, refused) = RouteSet::new(vec![
            route("ns", "any", &["*"]),
            route("ns", "chat", &["gpt-4o", "claude"]),
        ]);
        assert!(refused.is_empty());
        assert_eq!(
            set.lookup("gpt-4o").map(|r| r.id.name.as_str()),
            Some("chat")
        );
        assert_eq!(set.lookup("other").map(|r| r.id.name.as_str()), Some("any"));
        assert_eq!(set.models(), ["claude", "gpt-4o"]);
        assert_eq!(set.routes().len(), 2);
    }

    #[test]
    fn a_model_served_twice_refuses_the_later_route_and_keeps_the_rest() {
        let (set, refused) = RouteSet::new(vec![
            route("ns", "b", &["m", "x"]),
            route("ns", "a", &["m"]),
            route("ns", "c", &["y"]),
        ]);
        let err = InvalidRoute::ModelTaken {
            model: "m".to_owned(),
            by: id("ns", "a"),
        };
        assert_eq!(
            err.to_string(),
            "spec.match.models: \"m\" is already served by route ns/a"
        );
        assert_eq!(refused, [(id("ns", "b"), err)]);
        assert!(
            set.lookup("x").is_none(),
            "nothing of the refused route is kept"
        );
        assert_eq!(set.models(), ["m", "y"]);
    }

    #[test]
    fn a_second_wildcard_route_is_refused() {
        let (_, refused) = RouteSet::new(vec![route("b", "r", &["*"]), route("a", "r", &["*"])]);
        assert_eq!(
            refused,
            [(
                id("b", "r"),
                InvalidRoute::ModelTaken {
                    model: "*".to_owned(),
                    by: id("a", "r"),
                }
            )]
        );
    }
}
