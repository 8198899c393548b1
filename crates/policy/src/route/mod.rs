//! Compiling an `LlmRoute` into the validated [`Route`] the sidecar runs.
//!
//! [`compile_with`] reads as the spec does: one function per section, each in the module named
//! after it, each refusing its own mistakes with an [`InvalidRoute`] that names the field.
//! Sections are compiled in this order, so a spec with several mistakes reports the first:
//!
//! | section            | compiled by                             | also needs                          |
//! |--------------------|-----------------------------------------|-------------------------------------|
//! | `spec.match`       | `models`                                |                                     |
//! | `spec.targets`     | `targets`, `credentials`                | the namespace (credential ids)      |
//! | `spec.deadlines`   | `deadlines`                             |                                     |
//! | `spec.classes`     | `plans`                                 |                                     |
//! | `spec.breaker`     | `breaker`                               |                                     |
//! | `spec.retryBudget` | `retry_budget`                          |                                     |
//! | `spec.lastResort`  | `last_resort`                           | the targets (takes one out)         |
//! | `spec.streaming`   | `streaming`                             | the deadlines                       |
//! | `spec.contract`    | [`Contract::compile`]                   | the schema [`Sources`]              |
//! | `spec.equivalence` | `equivalence`, [`Equivalence::compile`] | every target (takes the helper out) |
//! | `spec.sameModel`   | `same_model`                            | the serving targets                 |
//!
//! [`RouteSet`] (`set`) then puts compiled routes together, one route per model name.

use std::time::Duration;

use plumb_api::LlmRouteSpec;

use crate::class::{FailureClass, Plan};
use crate::contract::{Contract, Sources};
use crate::duration::{self, InvalidDuration};
use crate::equivalence::Equivalence;

mod breaker;
mod credentials;
mod deadlines;
mod egress;
mod equivalence;
mod last_resort;
mod models;
mod plans;
mod retry_budget;
mod same_model;
mod set;
mod streaming;
mod targets;

pub use breaker::BreakerSettings;
pub use credentials::Credentials;
pub use deadlines::{Adaptive, Deadlines, PER_OUTPUT_TOKEN, Rate};
pub use egress::{Egress, TargetProxy};
pub use last_resort::LastResort;
pub use retry_budget::RetryBudget;
pub use same_model::{RouteWarning, SameModel, is_embedding_model};
pub use set::RouteSet;
pub use streaming::AdaptiveHold;
pub use streaming::{MalformedEvents, Streaming};
pub use targets::{Capabilities, Publisher, Target, UpstreamKey};

/// A route's identity: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    /// The namespace (`default` standalone).
    pub namespace: String,
    /// The route's name.
    pub name: String,
}

/// A validated route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// Namespace and name.
    pub id: RouteId,
    /// The model names it serves (`*` for any).
    pub models: Vec<String>,
    /// The targets in normal rotation, in declaration order.
    pub targets: Vec<Target>,
    /// What happens when every target is unavailable.
    pub last_resort: LastResort,
    /// Time limits.
    pub deadlines: Deadlines,
    /// The recovery plan of each class, indexed by [`FailureClass::index`].
    pub plans: [Plan; FailureClass::ALL.len()],
    /// Breaker settings for this route's upstreams.
    pub breaker: BreakerSettings,
    /// Same-target retry budget.
    pub retry_budget: RetryBudget,
    /// Stream handling.
    pub streaming: Streaming,
    /// What every answer must satisfy, if the route says.
    pub contract: Option<Contract>,
    /// When a fallback may stand in for the primary.
    pub equivalence: Equivalence,
    /// Which targets serve the same model (`spec.sameModel`).
    pub same_model: SameModel,
}

/// Why a route was refused. Each variant names the field to fix.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum InvalidRoute {
    /// No model names.
    #[error("spec.match.models: list at least one model name (or \"*\")")]
    NoModels,
    /// An empty model name.
    #[error("{field}: a model name must not be empty")]
    EmptyModel {
        /// The field.
        field: String,
    },
    /// No targets.
    #[error("spec.targets: a route needs at least one target")]
    NoTargets,
    /// Two targets share a name.
    #[error("{field}: the target name {name:?} is used twice; names must be unique in a route")]
    DuplicateTarget {
        /// The field.
        field: String,
        /// The name.
        name: String,
    },
    /// A target has no name.
    #[error("{field}: give the target a name")]
    EmptyTargetName {
        /// The field.
        field: String,
    },
    /// A target name that is not a DNS label (the CRD's rule, kept standalone too).
    #[error(
        "{field}: {name:?} must be lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit"
    )]
    TargetName {
        /// The field.
        field: String,
        /// The name given.
        name: String,
    },
    /// A base URL is unusable.
    #[error("{field}: {value:?} {reason}")]
    BaseUrl {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A base URL with a user name or password in it (`https://user:password@host`). The
    /// value is not repeated: it holds a secret.
    #[error(
        "{field}: the URL carries a user name or password (user:password@host), which would be shown wherever the upstream is (status, /fleet, metrics); take it out and give the key with credentials (secretRef, env or file)"
    )]
    CredentialsInUrl {
        /// The field.
        field: String,
    },
    /// A target has no upstream model.
    #[error("{field}: name the upstream model (for azure-openai, the deployment)")]
    EmptyUpstreamModel {
        /// The field.
        field: String,
    },
    /// An `organization` or `project` that cannot be sent.
    #[error("{field}: {reason}")]
    OpenaiAccount {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `vertex-ai` target without its project or region, or a field or credential source
    /// only `vertex-ai` targets take on another.
    #[error("{field}: {reason}")]
    Vertex {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// An Azure target without `apiVersion`.
    #[error("{field}: azure-openai targets need apiVersion (for example \"2024-10-21\")")]
    MissingApiVersion {
        /// The field.
        field: String,
    },
    /// A `region` missing where the provider needs one, or given where it means nothing, or
    /// `aws: true` credentials on a target that is not `bedrock`.
    #[error("{field}: {reason}")]
    Region {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Not exactly one credential source.
    #[error(
        "{field}: set exactly one of secretRef, env, file, passthrough: true, none: true, aws: true or google: true (found {found})"
    )]
    Credentials {
        /// The field.
        field: String,
        /// How many were set.
        found: usize,
    },
    /// A duration that does not parse.
    #[error("{field}: {value:?} {reason}")]
    Duration {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: InvalidDuration,
    },
    /// A number outside its range.
    #[error("{field}: {value} is out of range; expected {expected}")]
    OutOfRange {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
    /// A deadline longer than the total deadline it lives in.
    #[error("{field}: {value:?} is longer than spec.deadlines.total; it could never apply")]
    DeadlineExceedsTotal {
        /// The field.
        field: String,
        /// The value.
        value: String,
    },
    /// `lastResort.mode: target` without a target, or a target with another mode.
    #[error("spec.lastResort.target: {0}")]
    LastResortTarget(&'static str),
    /// The last-resort target names no target of the route.
    #[error("spec.lastResort.target: no target is named {0:?}")]
    UnknownLastResortTarget(String),
    /// The only target is the last resort.
    #[error("spec.lastResort.target: at least one target must stay in normal rotation")]
    NoRotationTarget,
    /// A contract or equivalence setting that cannot be used.
    #[error("{field}: {reason}")]
    Contract {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A target's `proxy` that cannot be used.
    #[error("{field}: {reason}")]
    Proxy {
        /// The field.
        field: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proxy URL that cannot be used.
    #[error("{field}: {value:?} {reason}")]
    ProxyUrl {
        /// The field.
        field: String,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A proxy URL with a user name or password in it. The value is not repeated: it holds a
    /// secret.
    #[error(
        "{field}: the proxy URL carries a user name or password (user:password@host), which would be shown wherever the route is; take it out and give them with proxy.credentialsSecret"
    )]
    ProxyCredentialsInUrl {
        /// The field.
        field: String,
    },
    /// A `sameModel` group that cannot be used.
    #[error("{field}: {reason}")]
    SameModel {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// Another route already serves this model.
    #[error("spec.match.models: {model:?} is already served by route {by}")]
    ModelTaken {
        /// The model.
        model: String,
        /// The route that serves it.
        by: RouteId,
    },
}

impl std::fmt::Display for RouteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Route {
    /// The primary: the first target of the lowest priority group. Shadow sampling compares
    /// fallbacks with it.
    pub fn primary(&self) -> &Target {
        let top = self.top_priority();
        self.targets
            .iter()
            .find(|t| t.priority == top)
            .unwrap_or(&self.targets[0])
    }

    /// The lowest priority number: the primary's group. Targets of that group are the
    /// primary's peers by declaration and need no certification.
    pub fn top_priority(&self) -> u32 {
        self.targets.iter().map(|t| t.priority).min().unwrap_or(0)
    }

    /// Whether `target` is in the primary's priority group (and not the last resort).
    pub fn is_primary_grade(&self, target: &Target) -> bool {
        target.priority == self.top_priority() && self.targets.iter().any(|t| t.name == target.name)
    }

    /// The targets that may answer clients: those in rotation, then the last resort.
    pub fn serving_targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.iter().chain(self.last_resort.target())
    }

    /// Whether `a` and `b` are declared to serve the same model (`spec.sameModel`).
    pub fn same_model(&self, a: &Target, b: &Target) -> bool {
        self.same_model.same(&a.name, &b.name)
    }

    /// What this route does that compiles but is probably not meant (for the status, or the
    /// log standalone).
    pub fn warnings(&self) -> Vec<RouteWarning> {
        same_model::warnings(&self.same_model, self.serving_targets())
    }

    /// Every target, the last resort and the comparison's helper included.
    pub fn all_targets(&self) -> impl Iterator<Item = &Target> {
        self.serving_targets()
            .chain(self.equivalence.helper.as_deref())
    }
}

/// Compiles one route. `namespace` and `name` come from the resource's metadata (standalone:
/// `default` unless the document says otherwise). Schemas given by file are read relative to
/// the working directory; ConfigMap references are refused (see [`compile_with`]).
pub fn compile(namespace: &str, name: &str, spec: &LlmRouteSpec) -> Result<Route, InvalidRoute> {
    compile_with(namespace, name, spec, &Sources::default())
}

/// Compiles one route, taking schemas given by reference from `sources`.
pub fn compile_with(
    namespace: &str,
    name: &str,
    spec: &LlmRouteSpec,
    sources: &Sources,
) -> Result<Route, InvalidRoute> {
    let models = models::compile(&spec.matches.models)?;
    let mut targets = targets::compile(namespace, &spec.targets)?;
    let deadlines = deadlines::compile(spec.deadlines.as_ref())?;
    let plans = plans::compile(spec.classes.as_ref())?;
    let breaker = breaker::compile(spec.breaker.as_ref())?;
    let retry_budget = retry_budget::compile(spec.retry_budget.as_ref())?;
    let last_resort = last_resort::compile(spec.last_resort.as_ref(), &mut targets)?;
    let streaming = streaming::compile(spec.streaming.as_ref(), &deadlines)?;
    // A route without a contract still follows the schema a client asks for.
    let contract = Some(match spec.contract.as_ref() {
        Some(c) => Contract::compile(c, sources)?,
        None => Contract::client_schema_only(),
    });
    let equivalence = equivalence::compile(spec.equivalence.as_ref(), &mut targets, &last_resort)?;
    let same_model =
        same_model::compile(&spec.same_model, targets.iter().chain(last_resort.target()))?;
    Ok(Route {
        id: RouteId {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        },
        models,
        targets,
        last_resort,
        deadlines,
        plans,
        breaker,
        retry_budget,
        streaming,
        contract,
        equivalence,
        same_model,
    })
}

/// A Go duration field: `default` when unset.
fn dur(field: &str, value: Option<&String>, default: Duration) -> Result<Duration, InvalidRoute> {
    match value {
        None => Ok(default),
        Some(v) => duration::parse(v).map_err(|reason| InvalidRoute::Duration {
            field: field.to_owned(),
            value: v.clone(),
            reason,
        }),
    }
}

/// A share from 0 to 1: `default` when unset.
fn ratio(field: &str, value: Option<f64>, default: f64) -> Result<f64, InvalidRoute> {
    match value {
        None => Ok(default),
        Some(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Some(v) => Err(InvalidRoute::OutOfRange {
            field: field.to_owned(),
            value: v.to_string(),
            expected: "a number from 0 to 1",
        }),
    }
}

/// A count that must be at least one: `default` when unset.
fn at_least_one(field: &str, value: Option<u32>, default: u32) -> Result<u32, InvalidRoute> {
    match value {
        None => Ok(default),
        Some(0) => Err(InvalidRoute::OutOfRange {
            field: field.to_owned(),
            value: "0".to_owned(),
            expected: "1 or more",
        }),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use plumb_api::TargetSpec;

    use super::*;

    fn spec(yaml: &str) -> LlmRouteSpec {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Plain openai targets with these names, for the sections that work on compiled targets.
    pub(super) fn targets_named(names: &[&str]) -> Vec<Target> {
        let specs: Vec<TargetSpec> = names
            .iter()
            .map(|n| {
                serde_saphyr::from_str(&format!(
                    "{{name: {n}, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {{none: true}}}}"
                ))
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        targets::compile("ns", &specs).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A route with one plain target, serving `models`.
    pub(super) fn route(namespace: &str, name: &str, models: &[&str]) -> Route {
        let models: Vec<String> = models.iter().map(|m| format!("{m:?}")).collect();
        let yaml = MINIMAL.replace("models: [m]", &format!("models: [{}]", models.join(", ")));
        compile(namespace, name, &spec(&yaml)).unwrap_or_else(|e| panic!("{e}"))
    }

    const MINIMAL: &str = "
match: {models: [m]}
targets:
  - {name: a, provider: openai, baseUrl: http://h/v1, model: up, credentials: {none: true}}
";

    #[test]
    fn a_minimal_route_takes_every_default() {
        let route = compile("ns", "r", &spec(MINIMAL)).unwrap();
        assert_eq!(route.id.to_string(), "ns/r");
        assert_eq!(route.models, ["m"]);
        assert_eq!(route.targets.len(), 1);
        assert_eq!(route.last_resort, LastResort::FailFast);
        assert_eq!(route.deadlines, Deadlines::default());
        assert_eq!(
            route.plans,
            FailureClass::ALL.map(FailureClass::default_plan)
        );
        assert_eq!(route.breaker, BreakerSettings::default());
        assert_eq!(route.retry_budget, RetryBudget::default());
        assert_eq!(route.streaming, Streaming::default());
        assert_eq!(route.contract, Some(Contract::client_schema_only()));
        assert_eq!(route.equivalence, Equivalence::default());
    }

    #[test]
    fn the_first_section_in_spec_order_reports_its_mistake() {
        let both = format!("{MINIMAL}deadlines: {{total: 0}}\nbreaker: {{failureRate: 2}}\n");
        assert_eq!(
            compile("ns", "r", &spec(&both)).unwrap_err().to_string(),
            "spec.deadlines.total: 0 is out of range; expected a positive duration"
        );
        let both = format!("{MINIMAL}lastResort: {{mode: target}}\nstreaming: {{holdFor: x}}\n");
        assert_eq!(
            compile("ns", "r", &spec(&both)).unwrap_err(),
            InvalidRoute::LastResortTarget(
                "mode \"target\" needs the name of one of the route's targets"
            )
        );
    }

    #[test]
    fn the_contract_section_is_compiled_with_the_sources_given() {
        let with_contract = format!("{MINIMAL}contract: {{maxLength: 0}}\n");
        assert_eq!(
            compile("ns", "r", &spec(&with_contract))
                .unwrap_err()
                .to_string(),
            "spec.contract.maxLength: 0 is out of range; expected 1 or more"
        );
        let json = format!("{MINIMAL}contract: {{json: true}}\n");
        assert!(compile("ns", "r", &spec(&json)).unwrap().contract.is_some());
    }

    const EMBEDDINGS: &str = "
match: {models: [embed]}
targets:
  - {name: openai, provider: openai, baseUrl: http://h/v1, model: text-embedding-3-small, credentials: {none: true}}
  - {name: azure, provider: azure-openai, baseUrl: http://a, model: emb-deploy, apiVersion: '2024-10-21', credentials: {none: true}}
  - {name: local, provider: openai-compatible, baseUrl: http://l/v1, model: nomic-embed-text, credentials: {none: true}, priority: 1}
";

    #[test]
    fn same_model_groups_may_name_the_last_resort_and_are_checked_after_it() {
        let yaml = format!(
            "{EMBEDDINGS}lastResort: {{mode: target, target: local}}\nsameModel: [[openai, local]]\n"
        );
        let route = compile("ns", "r", &spec(&yaml)).unwrap();
        let [openai, azure] = [&route.targets[0], &route.targets[1]];
        let local = route.last_resort.target().unwrap();
        assert!(route.same_model(openai, local));
        assert!(!route.same_model(openai, azure));
        let unknown = format!("{EMBEDDINGS}sameModel: [[openai, nope]]\n");
        assert_eq!(
            compile("ns", "r", &spec(&unknown)).unwrap_err().to_string(),
            "spec.sameModel[0][1]: no target is named \"nope\""
        );
    }

    #[test]
    fn embedding_targets_not_declared_the_same_model_are_a_warning() {
        let pair = |n: &str, m: &str| (n.to_owned(), m.to_owned());
        let route = compile("ns", "r", &spec(EMBEDDINGS)).unwrap();
        let warnings = route.warnings();
        assert_eq!(
            warnings,
            [RouteWarning::EmbeddingModelsDiffer(vec![
                vec![pair("openai", "text-embedding-3-small")],
                vec![pair("azure", "emb-deploy")],
                vec![pair("local", "nomic-embed-text")],
            ])]
        );
        assert!(
            warnings[0].to_string().starts_with(
                "spec.sameModel: the targets run 3 models not declared the same: [openai (text-embedding-3-small)] and [azure (emb-deploy)] and [local (nomic-embed-text)]; an embeddings request never fails over from one to another"
            ),
            "{}",
            warnings[0]
        );
        let partly = format!("{EMBEDDINGS}sameModel: [[openai, azure]]\n");
        let route = compile("ns", "r", &spec(&partly)).unwrap();
        assert_eq!(
            route.warnings(),
            [RouteWarning::EmbeddingModelsDiffer(vec![
                vec![
                    pair("openai", "text-embedding-3-small"),
                    pair("azure", "emb-deploy")
                ],
                vec![pair("local", "nomic-embed-text")],
            ])],
            "local is still apart from both"
        );
        let all = format!("{EMBEDDINGS}sameModel: [[openai, azure, local]]\n");
        assert!(
            compile("ns", "r", &spec(&all))
                .unwrap()
                .warnings()
                .is_empty()
        );
        assert!(
            compile("ns", "r", &spec(MINIMAL))
                .unwrap()
                .warnings()
                .is_empty(),
            "no embedding model, no warning"
        );
    }

    #[test]
    fn route_ids_display_as_namespace_slash_name() {
        let id = RouteId {
            namespace: "team".to_owned(),
            name: "chat".to_owned(),
        };
        assert_eq!(id.to_string(), "team/chat");
    }
}
