//! Compiling an `LlmRoute` into the validated [`Route`] the sidecar runs.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use plumb_api::MalformedEvents;
use plumb_api::{
    BackoffSpec, ClassOverrides, ClassPolicySpec, LastResortMode, LlmRouteSpec, Provider,
    SecretKeyRef, TargetSpec,
};

use crate::class::{Backoff, FailureClass, Plan};
use crate::contract::{Contract, Sources};
use crate::duration::{self, InvalidDuration};
use crate::equivalence::Equivalence;

/// A route's identity: namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteId {
    /// The namespace (`default` standalone).
    pub namespace: String,
    /// The route's name.
    pub name: String,
}

impl std::fmt::Display for RouteId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
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
        let last = match &self.last_resort {
            LastResort::Target(t) => Some(t.as_ref()),
            LastResort::FailFast | LastResort::WaitForHalfOpen => None,
        };
        self.targets.iter().chain(last)
    }

    /// Every target, the last resort and the comparison's helper included.
    pub fn all_targets(&self) -> impl Iterator<Item = &Target> {
        self.serving_targets()
            .chain(self.equivalence.helper.as_deref())
    }
}

/// How streamed answers are held, checked and repaired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Streaming {
    /// Events held after the first token before commit.
    pub hold_events: u32,
    /// Bytes held at most.
    pub hold_bytes: u32,
    /// Longest hold after the first token.
    pub hold_for: Duration,
    /// What a malformed event does after commit.
    pub malformed: MalformedEvents,
    /// Continue from a prefill-capable fallback after a cut.
    pub continuation: bool,
}

impl Default for Streaming {
    fn default() -> Self {
        Streaming {
            hold_events: 0,
            hold_bytes: 64 * 1024,
            hold_for: Duration::ZERO,
            malformed: MalformedEvents::Fail,
            continuation: false,
        }
    }
}

/// One validated target.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Unique within the route.
    pub name: String,
    /// The provider's API.
    pub provider: Provider,
    /// The base URL, without a trailing slash.
    pub base_url: http::Uri,
    /// The upstream model (Azure: deployment).
    pub model: String,
    /// Azure's `api-version`.
    pub api_version: Option<String>,
    /// Where the key comes from.
    pub credentials: Credentials,
    /// Priority group (lower first).
    pub priority: u32,
    /// Weight inside the group.
    pub weight: u32,
    /// What it can do.
    pub capabilities: Capabilities,
    /// The identity of the upstream, shared by every route that uses it.
    pub upstream: UpstreamKey,
}

/// Where a target's API key comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Credentials {
    /// A Secret's key (resolved by the operator).
    Secret(SecretKeyRef),
    /// An environment variable of the sidecar.
    Env(String),
    /// A file.
    File(PathBuf),
    /// The caller's own key.
    Passthrough,
    /// No key.
    None,
}

impl Credentials {
    /// A stable identity of the credential *source* (never the secret itself), used to key
    /// breakers and to tell whether two targets use different keys.
    pub fn identity(&self, namespace: &str) -> String {
        match self {
            Credentials::Secret(r) => format!("secret:{namespace}/{}/{}", r.name, r.key),
            Credentials::Env(v) => format!("env:{v}"),
            Credentials::File(p) => format!("file:{}", p.display()),
            Credentials::Passthrough => "passthrough".to_owned(),
            Credentials::None => "none".to_owned(),
        }
    }
}

/// What a target can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Context window in tokens, if declared.
    pub context_window: Option<u32>,
    /// Tool calling.
    pub tools: bool,
    /// JSON-schema structured output.
    pub json_schema: bool,
    /// Image input.
    pub vision: bool,
    /// Assistant prefill.
    pub prefill: bool,
}

/// The identity of an upstream: base URL, model and credential source. Breakers and shared
/// knowledge are keyed by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UpstreamKey {
    /// Base URL.
    pub base_url: String,
    /// Upstream model.
    pub model: String,
    /// [`Credentials::identity`].
    pub credential: String,
}

impl std::fmt::Display for UpstreamKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.base_url, self.model, self.credential)
    }
}

/// Time limits of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    /// Whole request until the answer (or a stream's first event) reaches the client.
    pub total: Duration,
    /// Connection, TLS included.
    pub connect: Duration,
    /// Until the response head.
    pub first_byte: Duration,
    /// Until a stream's first event.
    pub first_token: Duration,
    /// Longest silence inside a stream.
    pub stream_idle: Duration,
    /// Longest stream once committed.
    pub stream_max: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            total: Duration::from_secs(120),
            connect: Duration::from_secs(3),
            first_byte: Duration::from_secs(60),
            first_token: Duration::from_secs(30),
            stream_idle: Duration::from_secs(30),
            stream_max: Duration::from_secs(600),
        }
    }
}

/// Breaker settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub consecutive_failures: u32,
    /// Failure rate over the window that opens it.
    pub failure_rate: f64,
    /// The window.
    pub window: Duration,
    /// Attempts in the window before the rate counts.
    pub min_requests: u32,
    /// Wait before probing.
    pub cooldown: Duration,
    /// Probes at once while half-open.
    pub half_open_probes: u32,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: Duration::from_secs(30),
            min_requests: 20,
            cooldown: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }
}

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
    /// A target has no upstream model.
    #[error("{field}: name the upstream model (for azure-openai, the deployment)")]
    EmptyUpstreamModel {
        /// The field.
        field: String,
    },
    /// An Azure target without `apiVersion`.
    #[error("{field}: azure-openai targets need apiVersion (for example \"2024-10-21\")")]
    MissingApiVersion {
        /// The field.
        field: String,
    },
    /// Not exactly one credential source.
    #[error(
        "{field}: set exactly one of secretRef, env, file, passthrough: true or none: true (found {found})"
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
    /// Another route already serves this model.
    #[error("spec.match.models: {model:?} is already served by route {by}")]
    ModelTaken {
        /// The model.
        model: String,
        /// The route that serves it.
        by: RouteId,
    },
}

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
    let id = RouteId {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    if spec.matches.models.is_empty() {
        return Err(InvalidRoute::NoModels);
    }
    for (i, m) in spec.matches.models.iter().enumerate() {
        if m.trim().is_empty() {
            return Err(InvalidRoute::EmptyModel {
                field: format!("spec.match.models[{i}]"),
            });
        }
    }
    if spec.targets.is_empty() {
        return Err(InvalidRoute::NoTargets);
    }
    let mut names = HashSet::new();
    let mut targets = Vec::with_capacity(spec.targets.len());
    for (i, t) in spec.targets.iter().enumerate() {
        let field = format!("spec.targets[{i}]");
        let target = compile_target(&field, namespace, t)?;
        if !names.insert(target.name.clone()) {
            return Err(InvalidRoute::DuplicateTarget {
                field: format!("{field}.name"),
                name: target.name,
            });
        }
        targets.push(target);
    }

    let d = spec.deadlines.clone().unwrap_or_default();
    let defaults = Deadlines::default();
    let deadlines = Deadlines {
        total: dur("spec.deadlines.total", d.total.as_ref(), defaults.total)?,
        connect: dur(
            "spec.deadlines.connect",
            d.connect.as_ref(),
            defaults.connect,
        )?,
        first_byte: dur(
            "spec.deadlines.firstByte",
            d.first_byte.as_ref(),
            defaults.first_byte,
        )?,
        first_token: dur(
            "spec.deadlines.firstToken",
            d.first_token.as_ref(),
            defaults.first_token,
        )?,
        stream_idle: dur(
            "spec.deadlines.streamIdle",
            d.stream_idle.as_ref(),
            defaults.stream_idle,
        )?,
        stream_max: dur(
            "spec.deadlines.streamMax",
            d.stream_max.as_ref(),
            defaults.stream_max,
        )?,
    };
    if deadlines.total.is_zero() {
        return Err(InvalidRoute::OutOfRange {
            field: "spec.deadlines.total".to_owned(),
            value: "0".to_owned(),
            expected: "a positive duration",
        });
    }
    for (field, value, given) in [
        ("spec.deadlines.connect", deadlines.connect, &d.connect),
        (
            "spec.deadlines.firstByte",
            deadlines.first_byte,
            &d.first_byte,
        ),
        (
            "spec.deadlines.firstToken",
            deadlines.first_token,
            &d.first_token,
        ),
    ] {
        // A default longer than a user's short total is simply capped by the total; only a
        // value the user wrote is an error.
        if let Some(given) = given
            && value > deadlines.total
        {
            return Err(InvalidRoute::DeadlineExceedsTotal {
                field: field.to_owned(),
                value: given.clone(),
            });
        }
    }

    let plans = compile_plans(spec.classes.as_ref())?;

    let b = spec.breaker.clone().unwrap_or_default();
    let bd = BreakerSettings::default();
    let breaker = BreakerSettings {
        consecutive_failures: at_least_one(
            "spec.breaker.consecutiveFailures",
            b.consecutive_failures,
            bd.consecutive_failures,
        )?,
        failure_rate: ratio("spec.breaker.failureRate", b.failure_rate, bd.failure_rate)?,
        window: dur("spec.breaker.window", b.window.as_ref(), bd.window)?,
        min_requests: at_least_one("spec.breaker.minRequests", b.min_requests, bd.min_requests)?,
        cooldown: dur("spec.breaker.cooldown", b.cooldown.as_ref(), bd.cooldown)?,
        half_open_probes: at_least_one(
            "spec.breaker.halfOpenProbes",
            b.half_open_probes,
            bd.half_open_probes,
        )?,
    };

    let rb = spec.retry_budget.clone().unwrap_or_default();
    let rbd = RetryBudget::default();
    let retry_budget = RetryBudget {
        ratio: ratio("spec.retryBudget.ratio", rb.ratio, rbd.ratio)?,
        min_per_second: rb.min_per_second.unwrap_or(rbd.min_per_second),
    };

    let lr = spec.last_resort.clone().unwrap_or_default();
    let last_resort = match (lr.mode, lr.target) {
        (LastResortMode::FailFast, None) => LastResort::FailFast,
        (LastResortMode::WaitForHalfOpen, None) => LastResort::WaitForHalfOpen,
        (LastResortMode::FailFast | LastResortMode::WaitForHalfOpen, Some(_)) => {
            return Err(InvalidRoute::LastResortTarget(
                "a target is named but mode is not \"target\"",
            ));
        }
        (LastResortMode::Target, None) => {
            return Err(InvalidRoute::LastResortTarget(
                "mode \"target\" needs the name of one of the route's targets",
            ));
        }
        (LastResortMode::Target, Some(name)) => {
            let idx = targets
                .iter()
                .position(|t| t.name == name)
                .ok_or(InvalidRoute::UnknownLastResortTarget(name))?;
            let t = targets.remove(idx);
            if targets.is_empty() {
                return Err(InvalidRoute::NoRotationTarget);
            }
            LastResort::Target(Box::new(t))
        }
    };

    let st = spec.streaming.clone().unwrap_or_default();
    let sd = Streaming::default();
    let streaming = Streaming {
        hold_events: st.hold_events.unwrap_or(sd.hold_events),
        hold_bytes: st.hold_bytes.unwrap_or(sd.hold_bytes),
        hold_for: dur("spec.streaming.holdFor", st.hold_for.as_ref(), sd.hold_for)?,
        malformed: st.malformed_events.unwrap_or(sd.malformed),
        continuation: st.continuation.unwrap_or(sd.continuation),
    };
    if streaming.hold_for > deadlines.first_token.max(deadlines.total) {
        return Err(InvalidRoute::DeadlineExceedsTotal {
            field: "spec.streaming.holdFor".to_owned(),
            value: st.hold_for.unwrap_or_default(),
        });
    }

    let contract = spec
        .contract
        .as_ref()
        .map(|c| Contract::compile(c, sources))
        .transpose()?;
    let everyone: Vec<&Target> = targets
        .iter()
        .chain(match &last_resort {
            LastResort::Target(t) => Some(t.as_ref()),
            LastResort::FailFast | LastResort::WaitForHalfOpen => None,
        })
        .collect();
    let mut equivalence = match &spec.equivalence {
        Some(e) => Equivalence::compile(e, &everyone)?,
        None => Equivalence::default(),
    };
    drop(everyone);
    if let Some(name) = equivalence.method.helper().map(str::to_owned) {
        let field = "spec.equivalence.method.target".to_owned();
        if matches!(&last_resort, LastResort::Target(t) if t.name == name) {
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
        equivalence.helper = Some(Box::new(helper));
    }

    Ok(Route {
        id,
        models: spec.matches.models.clone(),
        targets,
        last_resort,
        deadlines,
        plans,
        breaker,
        retry_budget,
        streaming,
        contract,
        equivalence,
    })
}

fn compile_target(field: &str, namespace: &str, t: &TargetSpec) -> Result<Target, InvalidRoute> {
    if t.name.trim().is_empty() {
        return Err(InvalidRoute::EmptyTargetName {
            field: format!("{field}.name"),
        });
    }
    let dns_label = t.name.len() <= 63
        && t.name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !t.name.starts_with('-')
        && !t.name.ends_with('-');
    if !dns_label {
        return Err(InvalidRoute::TargetName {
            field: format!("{field}.name"),
            name: t.name.clone(),
        });
    }
    let url_field = format!("{field}.baseUrl");
    let bad_url = |reason| InvalidRoute::BaseUrl {
        field: url_field.clone(),
        value: t.base_url.clone(),
        reason,
    };
    let trimmed = t.base_url.trim_end_matches('/');
    let base_url: http::Uri = trimmed.parse().map_err(|_| bad_url("is not a URL"))?;
    match base_url.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(bad_url("must start with http:// or https://")),
    }
    if base_url.host().is_none_or(str::is_empty) {
        return Err(bad_url("has no host"));
    }
    if base_url.query().is_some() {
        return Err(bad_url("must not carry a query string"));
    }
    if t.model.trim().is_empty() {
        return Err(InvalidRoute::EmptyUpstreamModel {
            field: format!("{field}.model"),
        });
    }
    if t.provider == Provider::AzureOpenai && t.api_version.as_deref().is_none_or(str::is_empty) {
        return Err(InvalidRoute::MissingApiVersion {
            field: format!("{field}.apiVersion"),
        });
    }
    let c = &t.credentials;
    let found = usize::from(c.secret_ref.is_some())
        + usize::from(c.env.is_some())
        + usize::from(c.file.is_some())
        + usize::from(c.passthrough == Some(true))
        + usize::from(c.none == Some(true));
    let credentials = match (&c.secret_ref, &c.env, &c.file, c.passthrough, c.none) {
        _ if found != 1 => {
            return Err(InvalidRoute::Credentials {
                field: format!("{field}.credentials"),
                found,
            });
        }
        (Some(r), ..) => Credentials::Secret(r.clone()),
        (_, Some(v), ..) if !v.is_empty() => Credentials::Env(v.clone()),
        (_, _, Some(p), ..) if !p.is_empty() => Credentials::File(PathBuf::from(p)),
        (_, _, _, Some(true), _) => Credentials::Passthrough,
        (_, _, _, _, Some(true)) => Credentials::None,
        _ => {
            return Err(InvalidRoute::Credentials {
                field: format!("{field}.credentials"),
                found: 0,
            });
        }
    };
    let caps = t.capabilities.clone().unwrap_or_default();
    let capabilities = Capabilities {
        context_window: caps.context_window,
        tools: caps.tools.unwrap_or(true),
        json_schema: caps.json_schema.unwrap_or(true),
        vision: caps.vision.unwrap_or(true),
        prefill: caps.prefill.unwrap_or(match t.provider {
            Provider::Anthropic => true,
            Provider::Openai | Provider::OpenaiCompatible | Provider::AzureOpenai => false,
        }),
    };
    let upstream = UpstreamKey {
        base_url: trimmed.to_owned(),
        model: t.model.clone(),
        credential: credentials.identity(namespace),
    };
    Ok(Target {
        name: t.name.clone(),
        provider: t.provider,
        base_url,
        model: t.model.clone(),
        api_version: t.api_version.clone(),
        credentials,
        priority: t.priority.unwrap_or(0),
        weight: t.weight.unwrap_or(1),
        capabilities,
        upstream,
    })
}

fn compile_plans(
    overrides: Option<&ClassOverrides>,
) -> Result<[Plan; FailureClass::ALL.len()], InvalidRoute> {
    let mut plans = FailureClass::ALL.map(FailureClass::default_plan);
    let Some(o) = overrides else {
        return Ok(plans);
    };
    let entries: [(FailureClass, &Option<ClassPolicySpec>, &str); 15] = [
        (FailureClass::Timeout, &o.timeout, "timeout"),
        (FailureClass::Connect, &o.connect, "connect"),
        (FailureClass::RateLimited, &o.rate_limited, "rateLimited"),
        (FailureClass::Overloaded, &o.overloaded, "overloaded"),
        (FailureClass::ServerError, &o.server_error, "serverError"),
        (FailureClass::Auth, &o.auth, "auth"),
        (FailureClass::InvalidModel, &o.invalid_model, "invalidModel"),
        (
            FailureClass::ContextLength,
            &o.context_length,
            "contextLength",
        ),
        (
            FailureClass::ContentFilter,
            &o.content_filter,
            "contentFilter",
        ),
        (FailureClass::BadRequest, &o.bad_request, "badRequest"),
        (
            FailureClass::MalformedResponse,
            &o.malformed_response,
            "malformedResponse",
        ),
        (
            FailureClass::SchemaViolation,
            &o.schema_violation,
            "schemaViolation",
        ),
        (FailureClass::OutOfBounds, &o.out_of_bounds, "outOfBounds"),
        (
            FailureClass::StreamInterrupted,
            &o.stream_interrupted,
            "streamInterrupted",
        ),
        (
            FailureClass::ModelSubstituted,
            &o.model_substituted,
            "modelSubstituted",
        ),
    ];
    for (class, spec, key) in entries {
        let Some(spec) = spec else { continue };
        let field = format!("spec.classes.{key}");
        let plan = &mut plans[class.index()];
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
            let repairable = matches!(
                class,
                FailureClass::SchemaViolation | FailureClass::OutOfBounds
            );
            if !repairable && n > 0 {
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
    }
    Ok(plans)
}

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
