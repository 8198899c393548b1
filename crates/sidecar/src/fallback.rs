//! The order in which a request tries a route's targets, and the targets it must skip.
//!
//! Priority groups first (lowest number first); inside a group a weighted random order, so
//! weights share traffic. Targets that cannot honour the request — another API family, or a
//! missing capability (tools, JSON schema, vision, prefill, a context window too small for the
//! estimate) — are skipped before they are tried, and named in the error if nothing answers.

use std::fmt;

use plumb_policy::{FailureClass, Route, Target};

use crate::payload::{ClientRequest, Operation};

/// Why a target was not tried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// It speaks the other API family and the request cannot be translated: the field that
    /// has no equivalent.
    Untranslatable(String),
    /// The request has tools the target cannot call.
    Tools,
    /// The request asks for JSON-schema output.
    JsonSchema,
    /// The request carries images.
    Vision,
    /// The request continues a partial assistant message.
    Prefill,
    /// The request depends on state an OpenAI account keeps (`previous_response_id`,
    /// `conversation`), which a target of another provider cannot see: the field.
    ServerState(&'static str),
    /// The request is estimated larger than the context window.
    ContextWindow {
        /// Estimated tokens.
        needed: u32,
        /// The window.
        window: u32,
    },
    /// The target forwards the caller's key, and the caller sent none.
    NoCallerKey,
    /// Its breaker is open.
    BreakerOpen,
    /// The fleet skips its upstream (another sidecar's breaker opened), for this reason.
    FleetOpen(String),
    /// Its upstream is inside a rate-limit window the provider announced, for this long.
    RateLimited(std::time::Duration),
    /// An earlier failure rules it out (context length, auth).
    RuledOut(FailureClass),
    /// Outside the primary's priority group, and the route forbids downgrades.
    Downgrade,
    /// The route enforces equivalence and this target is not certified (by how far).
    Uncertified(String),
    /// An embeddings request, and this target is not declared the same model as the request's
    /// primary (named): its vectors would not match the caller's index.
    OtherModel(String),
}

impl Skip {
    /// Why, as a metric label.
    pub const fn label(&self) -> &'static str {
        match self {
            Skip::Untranslatable(_)
            | Skip::Tools
            | Skip::JsonSchema
            | Skip::Vision
            | Skip::Prefill
            | Skip::ServerState(_)
            | Skip::ContextWindow { .. } => "unfit",
            Skip::NoCallerKey => "no_caller_key",
            Skip::BreakerOpen => "breaker_open",
            Skip::FleetOpen(_) => "fleet_open",
            Skip::RateLimited(_) => "rate_limited",
            Skip::RuledOut(_) => "ruled_out",
            Skip::Downgrade => "downgrade",
            Skip::Uncertified(_) => "uncertified",
            Skip::OtherModel(_) => "other_model",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::Untranslatable(field) => write!(
                f,
                "speaks the other API family, which cannot express {field}"
            ),
            Skip::Tools => f.write_str("cannot call tools"),
            Skip::JsonSchema => f.write_str("cannot follow a JSON schema"),
            Skip::Vision => f.write_str("cannot read images"),
            Skip::Prefill => f.write_str("cannot continue a partial assistant message"),
            Skip::ServerState(field) => write!(
                f,
                "the request's {field} is state an OpenAI account keeps, which this target cannot see"
            ),
            Skip::ContextWindow { needed, window } => {
                write!(
                    f,
                    "context window {window} is smaller than the ~{needed} tokens needed"
                )
            }
            Skip::NoCallerKey => f.write_str("forwards the caller's key and the caller sent none"),
            Skip::BreakerOpen => f.write_str("circuit breaker open"),
            Skip::FleetOpen(why) => write!(f, "skipped fleet-wide: {why}"),
            Skip::RateLimited(wait) => write!(
                f,
                "inside the provider's rate-limit window for another {:.1}s",
                wait.as_secs_f64()
            ),
            Skip::RuledOut(FailureClass::ContextLength) => {
                f.write_str("its context window is not larger than the one that was exceeded")
            }
            Skip::RuledOut(FailureClass::Auth) => {
                f.write_str("uses the same credentials that were refused")
            }
            Skip::RuledOut(class) => write!(f, "ruled out after {class}"),
            Skip::Downgrade => f.write_str(
                "outside the primary's priority group, and the route forbids downgrades",
            ),
            Skip::Uncertified(why) => f.write_str(why),
            Skip::OtherModel(first) => write!(
                f,
                "embeddings fail over only to the same model, and it is not declared sameModel with {first}"
            ),
        }
    }
}

/// Why `target` cannot serve `req`, if it cannot.
pub fn unfit(target: &Target, req: &ClientRequest, caller_key: bool) -> Option<Skip> {
    let caps = &target.capabilities;
    let needs = &req.needs;
    if req.family_for(target) != req.api
        && let Err(e) = req.body_for(target)
    {
        return Some(Skip::Untranslatable(e.field));
    }
    if needs.tools && !caps.tools {
        return Some(Skip::Tools);
    }
    if needs.json_schema && !caps.json_schema {
        return Some(Skip::JsonSchema);
    }
    if needs.vision && !caps.vision {
        return Some(Skip::Vision);
    }
    if needs.prefill && !caps.prefill {
        return Some(Skip::Prefill);
    }
    if let Some(window) = caps.context_window
        && needs.tokens > window
    {
        return Some(Skip::ContextWindow {
            needed: needs.tokens,
            window,
        });
    }
    if target.credentials == plumb_policy::Credentials::Passthrough && !caller_key {
        return Some(Skip::NoCallerKey);
    }
    None
}

/// The targets of `route` in the order this request tries them, and those it skips.
pub fn order<'r>(
    route: &'r Route,
    req: &ClientRequest,
    caller_key: bool,
) -> (Vec<&'r Target>, Vec<(&'r Target, Skip)>) {
    let mut fit = Vec::with_capacity(route.targets.len());
    let mut skipped = Vec::new();
    // State lives with one of the route's OpenAI accounts (whichever answered before): each
    // is asked in turn, and an account that does not hold it says so with a 404.
    let state = req.server_state();
    for t in &route.targets {
        if let Some(field) = state
            && req.family_for(t) != req.api
        {
            skipped.push((t, Skip::ServerState(field)));
            continue;
        }
        match unfit(t, req, caller_key) {
            Some(skip) => skipped.push((t, skip)),
            None => fit.push(t),
        }
    }
    // Efraimidis–Spirakis: sort by u^(1/w) descending gives a weighted random order; weight 0
    // goes last in its group.
    let mut keyed: Vec<(u32, f64, &Target)> = fit
        .into_iter()
        .map(|t| {
            let key = if t.weight == 0 {
                -1.0
            } else {
                fastrand::f64().powf(1.0 / f64::from(t.weight))
            };
            (t.priority, key, t)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
    (keyed.into_iter().map(|(_, _, t)| t).collect(), skipped)
}

/// The target whose model an embeddings request must keep: the first of its order when that
/// one is in the primary's priority group (weights still share traffic inside the group), else
/// the route's primary — so a primary that cannot take the request (its context window, say)
/// is not silently replaced by another model.
pub fn embeddings_anchor<'r>(route: &'r Route, order: &[&'r Target]) -> &'r Target {
    order
        .first()
        .copied()
        .filter(|t| route.is_primary_grade(t))
        .unwrap_or_else(|| route.primary())
}

/// Why `candidate` may not answer an embeddings request whose model is `anchor`'s
/// ([`embeddings_anchor`]): vectors of another model would not match the caller's index, so
/// embeddings move only to targets declared the same model (`spec.sameModel`), whatever the
/// route's equivalence says. Other operations are never held back here.
pub fn other_model(
    route: &Route,
    req: &ClientRequest,
    anchor: &Target,
    candidate: &Target,
) -> Option<Skip> {
    match req.operation {
        Operation::Embeddings if !route.same_model(anchor, candidate) => {
            Some(Skip::OtherModel(anchor.name.clone()))
        }
        Operation::Embeddings | Operation::Chat => None,
    }
}

/// Whether, after `failed` failed with `class`, the request may still go to `candidate`.
/// Context-length failures never move to a window known not to be larger; auth failures only
/// to other credentials; every other class leaves the candidate as it was.
pub fn still_eligible(class: FailureClass, failed: &Target, candidate: &Target) -> bool {
    match class {
        // Only a window known not to be larger is passed over: an unknown one may be (another
        // provider's model), and trying it costs one quick 400 if it is not.
        FailureClass::ContextLength => match (
            failed.capabilities.context_window,
            candidate.capabilities.context_window,
        ) {
            (Some(f), Some(c)) => c > f,
            (None | Some(_), None) | (None, Some(_)) => true,
        },
        FailureClass::Auth => failed.upstream.credential != candidate.upstream.credential,
        FailureClass::Timeout
        | FailureClass::Connect
        | FailureClass::ConnectionLost
        | FailureClass::RateLimited
        | FailureClass::Overloaded
        | FailureClass::ServerError
        | FailureClass::InvalidModel
        | FailureClass::ContentFilter
        | FailureClass::BadRequest
        | FailureClass::MalformedResponse
        | FailureClass::SchemaViolation
        | FailureClass::OutOfBounds
        | FailureClass::StreamInterrupted
        | FailureClass::ModelSubstituted => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::payload::Api;
    use crate::payload::Operation;

    fn route(targets: serde_json::Value) -> Route {
        let spec = serde_json::from_value(json!({"match": {"models": ["m"]}, "targets": targets}))
            .unwrap_or_else(|e| panic!("{e}"));
        plumb_policy::compile("d", "r", &spec).unwrap_or_else(|e| panic!("{e}"))
    }

    fn target(name: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut t = json!({"name": name, "provider": "openai", "baseUrl": "http://h/v1", "model": name, "credentials": {"none": true}});
        if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
            t.extend(extra.clone());
        }
        t
    }

    fn req(body: serde_json::Value) -> ClientRequest {
        ClientRequest::parse(Api::Openai, Operation::Chat, body.to_string().as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn priority_groups_come_first_and_weights_share_traffic() {
        let r = route(json!([
            target("backup", json!({"priority": 1})),
            target("a", json!({"weight": 3})),
            target("b", json!({"weight": 1})),
            target("never-first", json!({"weight": 0})),
        ]));
        let q = req(json!({"model": "m", "messages": []}));
        let mut first_a = 0;
        for _ in 0..4000 {
            let (order, _) = order(&r, &q, false);
            let names: Vec<&str> = order.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names[2], "never-first");
            assert_eq!(names[3], "backup");
            if names[0] == "a" {
                first_a += 1;
            }
        }
        // Weight 3 against 1: about three quarters.
        assert!((2700..3300).contains(&first_a), "{first_a}");
    }

    #[test]
    fn targets_that_cannot_honour_the_request_are_skipped() {
        let r = route(json!([
            target("small", json!({"capabilities": {"contextWindow": 100}})),
            target("no-tools", json!({"capabilities": {"tools": false}})),
            target(
                "claude",
                json!({"provider": "anthropic", "baseUrl": "http://h"})
            ),
            target("byok", json!({"credentials": {"passthrough": true}})),
            target("ok", json!({"capabilities": {"contextWindow": 100000}})),
        ]));
        let q = req(
            json!({"model": "m", "max_tokens": 500, "tools": [{"type": "function"}], "messages": []}),
        );
        let (order, skipped) = order(&r, &q, false);
        assert_eq!(
            order.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["ok"]
        );
        let why: Vec<(&str, Skip)> = skipped
            .into_iter()
            .map(|(t, s)| (t.name.as_str(), s))
            .collect();
        assert!(matches!(
            why[0],
            ("small", Skip::ContextWindow { window: 100, .. })
        ));
        assert_eq!(why[1], ("no-tools", Skip::Tools));
        assert_eq!(
            why[2],
            ("claude", Skip::Untranslatable("tools[0].function".into()))
        );
        assert_eq!(why[3], ("byok", Skip::NoCallerKey));
    }

    #[test]
    fn context_length_never_fails_over_to_a_window_known_not_to_be_larger_and_auth_only_to_other_keys()
     {
        let r = route(json!([
            target("small", json!({"capabilities": {"contextWindow": 8000}})),
            target(
                "same",
                json!({"capabilities": {"contextWindow": 8000}, "credentials": {"env": "K"}})
            ),
            target("large", json!({"capabilities": {"contextWindow": 128000}})),
            target("unknown", json!({})),
        ]));
        let [small, same, large, unknown] =
            [&r.targets[0], &r.targets[1], &r.targets[2], &r.targets[3]];
        assert!(!still_eligible(FailureClass::ContextLength, small, same));
        assert!(still_eligible(FailureClass::ContextLength, small, large));
        assert!(
            still_eligible(FailureClass::ContextLength, small, unknown),
            "an unknown window may be larger"
        );
        assert!(
            !still_eligible(FailureClass::Auth, small, large),
            "same credential source"
        );
        assert!(still_eligible(FailureClass::Auth, small, same));
        assert!(still_eligible(FailureClass::Overloaded, small, unknown));
    }
}
