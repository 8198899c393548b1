//! `plumb-api`: the `LlmRoute` custom resource (`plumb.dev/v1alpha1`) as Rust types.
//!
//! These are the raw, user-facing types: what a user writes in YAML, what the API server stores,
//! and what the CRD under `crds/` is generated from. They carry no behaviour and do no I/O; the
//! `plumb-policy` crate parses them into the validated model the sidecar runs. This crate sits
//! at the bottom of the workspace and must not depend on the Kubernetes client or runtime (only
//! on `kube`'s derive).
//!
//! Durations are strings in Go's format (`250ms`, `30s`, `1m30s`), as everywhere in Kubernetes.
//!
//! What users write is here; what the control plane reports back (the `status`) is `status`, and
//! a route's contract and equivalence gate, `contract`.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod contract;
pub use contract::{
    ConfigMapKeyRef, ContractSpec, Downgrades, EquivalenceMode, EquivalenceSpec, FieldSpec,
    ForbiddenSpec, MethodKind, MethodSpec, ModelSubstitution, RuleSpec, SchemaSource, ShadowSpec,
    StreamCheck, ToolArgumentsSpec,
};
mod status;
pub use status::{
    BreakersStatus, EquivalenceStatus, FirstTokenStatus, LatencyStatus, LlmRouteStatus,
    SidecarRejection, SidecarsStatus, TargetStatus, TokenTimeStatus, UpstreamStatus,
};

/// The API group of every Plumb resource.
pub const GROUP: &str = "plumb.dev";
/// The version of this API.
pub const VERSION: &str = "v1alpha1";

/// An LLM route: which model names it serves, the upstream targets that can answer them in
/// order of preference, and how failures of each class are recovered.
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[x_kube(
    validation = Rule::new("self.targets.all(t, self.targets.exists_one(u, u.name == t.name))").message("target names must be unique within a route"),
    validation = Rule::new("!has(self.lastResort) || !has(self.lastResort.target) || self.targets.exists(t, t.name == self.lastResort.target)").message("lastResort.target must name one of the route's targets"),
    validation = Rule::new("!has(self.lastResort) || (has(self.lastResort.mode) && self.lastResort.mode == 'target') == has(self.lastResort.target)").message("lastResort: mode 'target' and a target name go together"),
)]
#[kube(
    group = "plumb.dev",
    version = "v1alpha1",
    kind = "LlmRoute",
    plural = "llmroutes",
    shortname = "llmr",
    category = "plumb",
    namespaced,
    doc = "An LlmRoute: the model names it serves, the upstream targets that answer them, and how each class of failure is recovered.",
    status = "LlmRouteStatus",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status"}"#,
    printcolumn = r#"{"name":"Targets","type":"integer","jsonPath":".status.targetCount"}"#,
    printcolumn = r#"{"name":"Healthy","type":"string","jsonPath":".status.healthy"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LlmRouteSpec {
    /// Which requests this route serves.
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    /// The upstream targets, in order of preference (see `priority` and `weight`).
    #[schemars(length(min = 1, max = 32))]
    pub targets: Vec<TargetSpec>,
    /// Time limits for each request and each attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadlines: Option<DeadlinesSpec>,
    /// Per failure class, how this route departs from the default recovery plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<ClassOverrides>,
    /// When a target's circuit breaker opens, and how it closes again. Breakers are shared by
    /// every route that uses the same upstream (base URL, model and credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerSpec>,
    /// How many same-target retries this route may add on top of its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudgetSpec>,
    /// What to do when every target is unavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resort: Option<LastResortSpec>,
    /// How streamed answers are held, checked and repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streaming: Option<StreamingSpec>,
    /// What every answer must satisfy before it reaches the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<ContractSpec>,
    /// When a fallback may stand in for the primary, and how that is learned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalence: Option<EquivalenceSpec>,
    /// Groups of targets (by name; the last resort may be one) that serve the same model: the
    /// same weights on another provider or cloud. Targets of one group stand in for each other
    /// without certification (`x-plumb-equivalence: same-model`), and an embeddings request
    /// fails over only inside the group of the target it tried first (vectors of another model
    /// would not match the caller's index). A target may be in one group at most.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 2, max = 33)))]
    pub same_model: Vec<Vec<String>>,
}

/// What a malformed stream event (data that is not JSON) does once the stream has reached
/// the client. Garbage never reaches the client either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MalformedEvents {
    /// Stop reading this target's stream: continue elsewhere when the route can, else end
    /// with an explicit `stream_interrupted` error event.
    #[default]
    #[serde(rename = "fail")]
    Fail,
    /// Drop the event and go on.
    #[serde(rename = "skip")]
    Skip,
}

/// How streamed answers are held, checked and repaired.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StreamingSpec {
    /// Events held back after the first token before anything reaches the client, so an early
    /// failure still fails over invisibly. Default 0: commit at the first token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_events: Option<u32>,
    /// Bytes held back at most (the hold ends at whichever limit comes first). Default 64Ki.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_bytes: Option<u32>,
    /// Longest the hold may last after the first token (Go duration). Default `0s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub hold_for: Option<String>,
    /// What a malformed event does after commit. Default `fail`: the stream's part from that
    /// target ends there, and is continued elsewhere like a cut when it can be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_events: Option<MalformedEvents>,
    /// Hold the start of an upstream's streams while its recent streams break: once at least
    /// `minStreams` streams ran in the last two minutes and `failureRate` of them broke after
    /// their first token, its streams are held for `events` events before they reach the
    /// client, so a break fails over invisibly; streaming returns to normal when it is
    /// healthy again. On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive_hold: Option<AdaptiveHoldSpec>,
    /// After a cut, a stall, an error event or a malformed event, ask a fallback that declares
    /// `prefill` (certified, where equivalence is enforced) to continue from the text already
    /// sent; the client receives the whole answer once. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<bool>,
}

/// When streams of a breaking upstream are held.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdaptiveHoldSpec {
    /// Hold when an upstream's streams break. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The share of recent streams that broke after their first token from which streams are
    /// held (0 to 1). Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub failure_rate: Option<f64>,
    /// Recent streams needed before the rate counts. Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_streams: Option<u32>,
    /// Events held after the first token. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub events: Option<u32>,
}

/// The requests a route serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    /// Model names (or aliases) clients ask for, exactly as they send them in the request's
    /// `model` field. `*` matches every model no other route matches.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 253)))]
    pub models: Vec<String>,
}

/// The API family and dialect of a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Provider {
    /// OpenAI (`baseUrl` like `https://api.openai.com/v1`).
    #[serde(rename = "openai")]
    Openai,
    /// Any server speaking OpenAI Chat Completions: vLLM, Ollama, DeepSeek, Mistral… (`baseUrl`
    /// up to and including `/v1`).
    #[serde(rename = "openai-compatible")]
    OpenaiCompatible,
    /// Azure OpenAI (`baseUrl` like `https://NAME.openai.azure.com`; `model` is the deployment).
    #[serde(rename = "azure-openai")]
    AzureOpenai,
    /// Anthropic Messages (`baseUrl` like `https://api.anthropic.com`, without `/v1`).
    #[serde(rename = "anthropic")]
    Anthropic,
    /// Google's Gemini API with an API key (`baseUrl` like
    /// `https://generativelanguage.googleapis.com`, without `/v1beta`: Plumb asks
    /// `{baseUrl}/v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`).
    /// The key goes in the `x-goog-api-key` header, never in the URL.
    #[serde(rename = "gemini")]
    Gemini,
    /// AWS Bedrock's Converse API (`baseUrl` like
    /// `https://bedrock-runtime.us-east-1.amazonaws.com`: Plumb asks
    /// `{baseUrl}/model/{modelId}/converse` and `/converse-stream`, the model id
    /// percent-encoded). Requests are signed with SigV4 (`credentials: {aws: true}`), or carry
    /// a Bedrock API key as `Authorization: Bearer` (`secretRef`, `env` or `file`).
    #[serde(rename = "bedrock")]
    Bedrock,
    /// Google Vertex AI (`baseUrl` like `https://us-east5-aiplatform.googleapis.com`, or
    /// `https://aiplatform.googleapis.com` for the `global` region), with `project` and
    /// `region`. A `model` starting with `claude-` is Anthropic's, asked at
    /// `…/publishers/anthropic/models/{model}:rawPredict` (`:streamRawPredict`) in the Messages
    /// shape; any other is Google's, asked at `…/publishers/google/models/{model}:generateContent`
    /// (`:streamGenerateContent?alt=sse`). Authenticated with an OAuth access token
    /// (`Authorization: Bearer`) from a service-account key or `credentials.google: true`.
    #[serde(rename = "vertex-ai")]
    VertexAi,
}

/// One upstream that can answer the route's requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("self.provider != 'azure-openai' || has(self.apiVersion)").message("azure-openai targets need apiVersion (for example \"2024-10-21\")"),
    validation = Rule::new("self.provider != 'bedrock' || has(self.region)").message("bedrock targets need region (for example \"us-east-1\")"),
    validation = Rule::new("self.provider != 'vertex-ai' || (has(self.project) && has(self.region))").message("vertex-ai targets need project (the Google Cloud project) and region (for example \"us-east5\" or \"global\")"),
    validation = Rule::new("!has(self.region) || self.provider == 'bedrock' || self.provider == 'vertex-ai'").message("region is for bedrock and vertex-ai targets only"),
    validation = Rule::new("!has(self.project) || self.provider == 'openai' || self.provider == 'vertex-ai'").message("project is for openai and vertex-ai targets only"),
    validation = Rule::new("!has(self.credentials.aws) || !self.credentials.aws || self.provider == 'bedrock'").message("credentials aws: true is for bedrock targets"),
    validation = Rule::new("!has(self.credentials.google) || !self.credentials.google || self.provider == 'vertex-ai'").message("credentials google: true is for vertex-ai targets"),
)]
pub struct TargetSpec {
    /// A name unique within the route; shown in `x-plumb-served-by`, metrics and status.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// The provider's API: `openai`, `openai-compatible`, `azure-openai`, `anthropic`,
    /// `gemini` (Google's Gemini API with an API key, sent in the `x-goog-api-key` header), or
    /// `bedrock` (AWS Bedrock's Converse API, signed with SigV4 or with a Bedrock API key), or
    /// `vertex-ai` (Google Vertex AI: Gemini models, and Claude models for a `model` starting
    /// with `claude-`).
    pub provider: Provider,
    /// The provider's base URL, `http://` or `https://`: up to and including `/v1` for `openai`
    /// and `openai-compatible` (`https://api.openai.com/v1`); the resource for `azure-openai`
    /// (`https://NAME.openai.azure.com`); without a version for `anthropic`
    /// (`https://api.anthropic.com`) and `gemini` (`https://generativelanguage.googleapis.com`:
    /// Plumb asks `{baseUrl}/v1beta/models/{model}:generateContent`, or
    /// `:streamGenerateContent?alt=sse` for a stream); the regional runtime endpoint for
    /// `bedrock` (`https://bedrock-runtime.us-east-1.amazonaws.com`); the regional endpoint for
    /// `vertex-ai` (`https://us-east5-aiplatform.googleapis.com`, `https://aiplatform.googleapis.com`
    /// for `global`: Plumb asks `{baseUrl}/v1/projects/{project}/locations/{region}/publishers/…`).
    #[schemars(length(max = 2048), regex(pattern = r"^https?://[^\s?#]+$"))]
    pub base_url: String,
    /// The model to ask the upstream for (for Azure OpenAI, the deployment name).
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// Azure OpenAI's `api-version` query parameter (required for `azure-openai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// The OpenAI organization to bill and rate-limit (`OpenAI-Organization`), for a key
    /// that belongs to several; `openai` targets only. With passthrough credentials the
    /// caller's own header is forwarded instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub organization: Option<String>,
    /// The OpenAI project to bill and rate-limit (`OpenAI-Project`) of an `openai` target
    /// (with passthrough credentials the caller's own header is forwarded instead); the Google
    /// Cloud project id of a `vertex-ai` target, required there. Refused for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub project: Option<String>,
    /// The cloud region: the AWS region of a `bedrock` target (`us-east-1`), the Google Cloud
    /// location of a `vertex-ai` target (`us-east5`, or `global`). Required for those two and
    /// refused for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Where the API key comes from.
    pub credentials: CredentialsSpec,
    /// Priority group: every target of the lowest number is tried before any of the next.
    /// Defaults to 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Share of traffic inside its priority group, relative to the other targets' weights.
    /// Defaults to 1; 0 takes no traffic except as failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// What the target can do; requests that need what it cannot do skip it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<CapabilitiesSpec>,
    /// How this target reaches its provider: through an HTTP proxy of its own, or directly
    /// (`none: true`). Unset, the sidecar's `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`
    /// environment decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySpec>,
}

/// A target's own egress proxy: exactly one of `url` or `none: true`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("has(self.url) != (has(self.none) && self.none)").message("set exactly one of url or none: true"),
    validation = Rule::new("!has(self.credentialsSecret) || has(self.url)").message("credentialsSecret goes with url"),
)]
pub struct ProxySpec {
    /// The proxy, `http://host:port` (HTTPS targets are tunnelled through it with `CONNECT`,
    /// TLS end to end; HTTP targets are sent to it in absolute form). Without user name or
    /// password: give those with `credentialsSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub url: Option<String>,
    /// A key of a Secret in the route's namespace holding `user:password` for the proxy
    /// (sent as `Proxy-Authorization: Basic`). Like every Secret a route names, it must be
    /// labelled `plumb.dev/credentials: "true"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<SecretKeyRef>,
    /// Connect directly, whatever the sidecar's proxy environment says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<bool>,
}

/// Where a target's API key comes from: exactly one of the fields. For a `vertex-ai` target,
/// `secretRef`, `env` and `file` hold a service-account JSON key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("[has(self.secretRef), has(self.env), has(self.file), has(self.passthrough) && self.passthrough, has(self.none) && self.none, has(self.aws) && self.aws, has(self.google) && self.google].filter(x, x).size() == 1").message("set exactly one of secretRef, env, file, passthrough: true, none: true, aws: true or google: true"),
)]
pub struct CredentialsSpec {
    /// A key of a Secret in the route's namespace (in a cluster; the operator resolves it).
    /// Only Secrets labelled `plumb.dev/credentials: "true"` may be named; any other is
    /// refused in the route's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// An environment variable of the sidecar holding the key (standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// A file holding the key, read at start and on every reload (standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Forward the caller's own key. Only ever sent to targets of the same provider that also
    /// declare passthrough.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passthrough: Option<bool>,
    /// Send no key at all (local model servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none: Option<bool>,
    /// The AWS credentials of the sidecar's environment, in the order of the AWS default
    /// chain: environment keys, then web identity (IRSA), then the container-credentials
    /// endpoint (EKS Pod Identity). Requests are signed with SigV4; `bedrock` targets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<bool>,
    /// Google Application Default Credentials of the sidecar's environment: the
    /// service-account key file named by `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata
    /// server (GKE Workload Identity). `vertex-ai` targets only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<bool>,
}

/// A key of a Secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// The Secret's name, in the route's namespace.
    pub name: String,
    /// The key inside the Secret.
    pub key: String,
}

/// What a target can do. Unset fields take the provider's usual abilities.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CapabilitiesSpec {
    /// Context window in tokens; requests estimated to need more skip this target. Unset means
    /// unknown (never skipped for size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Tool (function) calling. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<bool>,
    /// Structured output with a JSON schema. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<bool>,
    /// Image input. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vision: Option<bool>,
    /// Continuing a partial assistant message (prefill). Default true for `anthropic`, false
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill: Option<bool>,
}

/// Time limits. Each is a Go duration string.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeadlinesSpec {
    /// The whole request, every retry and failover included, until the answer (or, for a
    /// stream, its first event) reaches the client. Default `120s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub total: Option<String>,
    /// Opening a connection to a target, TLS included. Default `3s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub connect: Option<String>,
    /// From sending an attempt to the target's response head. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub first_byte: Option<String>,
    /// From sending a streamed attempt to its first event. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub first_token: Option<String>,
    /// Longest silence between two events of a stream. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub stream_idle: Option<String>,
    /// Longest a stream may last once it reached the client. Default `10m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub stream_max: Option<String>,
    /// Deadlines learned per upstream from what it measured: the first-token deadline in force
    /// is `multiplier × p99` of the upstream's recent first tokens, at least `floor`, at most
    /// `firstToken`, once `minSamples` were seen. On by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSpec>,
}

/// How deadlines are learned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdaptiveSpec {
    /// Learn deadlines. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How many times the upstream's p99 the deadline is (1 to 100). Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 100.0))]
    pub multiplier: Option<f64>,
    /// The shortest learned deadline. Default `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub floor: Option<String>,
    /// Samples before a learned deadline replaces the route's. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_samples: Option<u32>,
}

/// Overrides of the default recovery plan, one optional entry per failure class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassOverrides {
    /// A connect, first-byte, first-token, idle or total deadline passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<ClassPolicySpec>,
    /// No connection: refused, unreachable, TLS or DNS failed (the request was never sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ClassPolicySpec>,
    /// The connection was reset or closed after the request was sent, before any byte of the
    /// answer came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_lost: Option<ClassPolicySpec>,
    /// 429 or a provider rate-limit error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<ClassPolicySpec>,
    /// 503, 529 or a provider "overloaded" error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overloaded: Option<ClassPolicySpec>,
    /// Any other 5xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_error: Option<ClassPolicySpec>,
    /// 401, 403: the target's key is invalid or lacks permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ClassPolicySpec>,
    /// The model does not exist, is not available in the region, or is deprecated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invalid_model: Option<ClassPolicySpec>,
    /// The prompt is longer than the target's context window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<ClassPolicySpec>,
    /// The provider's content policy rejected the request or the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_filter: Option<ClassPolicySpec>,
    /// Any other 4xx: the request itself is wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bad_request: Option<ClassPolicySpec>,
    /// A 200 whose body or stream event is not valid JSON, is empty, or lacks required fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_response: Option<ClassPolicySpec>,
    /// The answer breaks the contract's JSON requirement or a schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_violation: Option<ClassPolicySpec>,
    /// The answer breaks a contract rule, a forbidden pattern or the length limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_bounds: Option<ClassPolicySpec>,
    /// A stream cut, stalled or corrupted after it reached the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_interrupted: Option<ClassPolicySpec>,
    /// The answer names another model (only a failure with `contract.modelSubstitution: fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_substituted: Option<ClassPolicySpec>,
}

/// How to recover from one failure class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClassPolicySpec {
    /// Retries on the same target before moving on (0 to 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub retries: Option<u32>,
    /// For `schemaViolation` and `outOfBounds`: how many times to re-ask the same target with
    /// the validation error added to the conversation, before retries and failover (0 to 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 3))]
    pub repairs: Option<u32>,
    /// Whether to fail over to the next target once retries are spent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<bool>,
    /// Backoff before each retry: exponential from `initial`, capped at `max`, with full jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffSpec>,
}

/// Exponential backoff with full jitter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackoffSpec {
    /// The first backoff's upper bound (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub initial: Option<String>,
    /// The largest backoff (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub max: Option<String>,
}

/// Circuit breaker settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BreakerSpec {
    /// Consecutive failures that open the breaker. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Failure rate over `window` that opens the breaker (0 to 1). Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub failure_rate: Option<f64>,
    /// The window the failure rate is measured over. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub window: Option<String>,
    /// Attempts in the window before the failure rate counts. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// How long a breaker that opens waits before letting a probe through. Each failed probe
    /// doubles the wait, up to `maxCooldown`; a success resets it. Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub cooldown: Option<String>,
    /// The longest wait before a probe, however many probes failed. Default `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"))]
    pub max_cooldown: Option<String>,
    /// Probe requests allowed at once while half-open. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
}

/// The retry budget: same-target retries may add at most `ratio` of the route's requests,
/// plus `minPerSecond` so a quiet route can still retry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudgetSpec {
    /// Retries as a share of requests, over the last 10 seconds (0 to 1). Default 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub ratio: Option<f64>,
    /// Retries per second always allowed. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_per_second: Option<u32>,
}

/// What happens when every target is unavailable (breakers open or skipped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum LastResortMode {
    /// Answer at once with an error that names the targets and why each is unavailable.
    #[default]
    #[serde(rename = "failFast")]
    FailFast,
    /// Wait, within the request's deadline, for the first target to let a probe through.
    #[serde(rename = "waitForHalfOpen")]
    WaitForHalfOpen,
    /// Send the request to the target named in `target`, which takes no other traffic.
    #[serde(rename = "target")]
    Target,
}

/// The last resort.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LastResortSpec {
    /// What to do. Default `failFast`.
    #[serde(default)]
    pub mode: LastResortMode,
    /// With `mode: target`, the name of one of the route's targets, kept out of normal
    /// rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_route_parses_from_yaml() {
        let yaml = r#"
apiVersion: plumb.dev/v1alpha1
kind: LlmRoute
metadata: {name: chat, namespace: default}
spec:
  match: {models: [chat]}
  targets:
    - name: primary
      provider: openai
      baseUrl: https://api.openai.com/v1
      model: gpt-4o
      credentials: {env: OPENAI_API_KEY}
"#;
        let route: LlmRoute = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(route.spec.matches.models, vec!["chat"]);
        assert_eq!(route.spec.targets[0].provider, Provider::Openai);
        assert_eq!(
            route.spec.targets[0].credentials.env.as_deref(),
            Some("OPENAI_API_KEY")
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let yaml = "match: {models: [a]}\ntargets: []\nretries: 3\n";
        let err = serde_saphyr::from_str::<LlmRouteSpec>(yaml)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("retries"), "{err}");
    }
}
