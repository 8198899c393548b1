//! What every answer of a route must satisfy (`spec.contract`), and when a fallback may stand
//! in for the primary (`spec.equivalence`).

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The route's contract: checks every answer passes before it reaches the client, whichever
/// target produced it. A failed check is `schema_violation` (not JSON, or breaks a schema) or
/// `out_of_bounds` (breaks a rule, a forbidden pattern or the length limit), recovered as
/// `spec.classes` says (by default: one repair, then fail over).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContractSpec {
    /// The answer's text must be a JSON value. Implied by `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<bool>,
    /// A JSON Schema (draft 2020-12) the answer's text, parsed as JSON, must satisfy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaSource>,
    /// Also check a structured answer against the JSON schema the client itself sent in
    /// `response_format`. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_schema: Option<bool>,
    /// JSON Schemas for the arguments of tool calls, by tool name. Calls of tools not listed
    /// must still carry JSON arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub tool_arguments: Option<Vec<ToolArgumentsSpec>>,
    /// Semantic rules: CEL expressions that must evaluate to true, over `answer` (the parsed
    /// answer, or null when it is not JSON), `text` (the answer's text), `tools` (a list of
    /// `{name, arguments}` calls) and `request` (the client's request body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub rules: Option<Vec<RuleSpec>>,
    /// Regular expressions the answer's text must not match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub forbidden: Option<Vec<ForbiddenSpec>>,
    /// The longest answer text allowed, in characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_length: Option<u32>,
    /// When a streamed answer is checked. Default `beforeCommit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<StreamCheck>,
    /// What an answer that names another model than the target was asked for does. It is
    /// always counted as `model_substituted`. Default `accept`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_substitution: Option<ModelSubstitution>,
}

/// When a streamed answer is checked against the contract.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum StreamCheck {
    /// Hold the whole stream until it is complete and passes, then send it: the client sees
    /// nothing until the last token (the latency of a non-streamed call), and a failing answer
    /// is repaired or failed over invisibly.
    #[default]
    #[serde(rename = "beforeCommit")]
    BeforeCommit,
    /// Stream as usual and check at the end: a failing answer ends with an explicit error
    /// event instead of its normal end, so the client never takes it for a success.
    #[serde(rename = "afterCommit")]
    AfterCommit,
}

/// What an answer from a substituted model does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ModelSubstitution {
    /// Serve it (the substitution is recorded in metrics and the span).
    #[default]
    #[serde(rename = "accept")]
    Accept,
    /// Treat it as a failure of class `model_substituted`.
    #[serde(rename = "fail")]
    Fail,
}

/// A JSON Schema, given inline or by reference: exactly one of the fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("[has(self.inline), has(self.file), has(self.configMapKeyRef)].filter(x, x).size() == 1").message("set exactly one of inline, file or configMapKeyRef"),
)]
pub struct SchemaSource {
    /// The schema itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_json")]
    pub inline: Option<serde_json::Value>,
    /// A file holding the schema as JSON or YAML (standalone; relative to the routes file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// A key of a ConfigMap in the route's namespace holding the schema (in a cluster; the
    /// operator resolves it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// The ConfigMap's name, in the route's namespace.
    pub name: String,
    /// The key inside the ConfigMap.
    pub key: String,
}

fn any_json(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The schema of one tool's call arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolArgumentsSpec {
    /// The tool's (function's) name.
    #[schemars(length(min = 1, max = 64))]
    pub tool: String,
    /// The schema its arguments must satisfy.
    pub schema: SchemaSource,
}

/// A semantic rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    /// A CEL expression that must be true, e.g. `answer.score >= 0.0 && answer.score <= 1.0`.
    #[schemars(length(min = 1, max = 4096))]
    pub expression: String,
    /// What the error says when the rule fails, e.g. `score must be between 0 and 1`.
    #[schemars(length(min = 1, max = 512))]
    pub message: String,
}

/// A pattern the answer must not contain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForbiddenSpec {
    /// A regular expression (Rust `regex` syntax; `(?i)` for case-insensitive).
    #[schemars(length(min = 1, max = 1024))]
    pub pattern: String,
    /// What the error says when it matches. Default: the pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// When a fallback may stand in for the primary, and how Plumb learns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EquivalenceSpec {
    /// What failover may do. Default `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EquivalenceMode>,
    /// The least lower confidence bound (Wilson, 95%) of the agreement rate that certifies a
    /// candidate (0 to 1). Default 0.9.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub threshold: Option<f64>,
    /// The fewest compared samples that can certify a candidate. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub min_samples: Option<u32>,
    /// `forbid`: never serve a target outside the primary's priority group — for work where
    /// no fallback is equivalent. Default `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrades: Option<Downgrades>,
    /// How two answers are compared. Default `canonicalJson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<MethodSpec>,
    /// Shadow sampling, which certifies fallbacks. Off unless `rate` is above 0: it sends
    /// prompts to other providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowSpec>,
}

/// What failover may do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EquivalenceMode {
    /// Fail over to any healthy target.
    #[default]
    #[serde(rename = "off")]
    Off,
    /// Fail over to any healthy target, and report the certification of the one that answered.
    #[serde(rename = "observe")]
    Observe,
    /// Fail over only to candidates certified above the threshold with enough samples;
    /// otherwise answer with an error that says why.
    #[serde(rename = "enforce")]
    Enforce,
}

/// Whether failover may leave the primary's priority group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Downgrades {
    /// It may.
    #[default]
    #[serde(rename = "allow")]
    Allow,
    /// It may not.
    #[serde(rename = "forbid")]
    Forbid,
}

/// How to compare a candidate's answer with the primary's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(
    validation = Rule::new("!has(self.kind) || !(self.kind in ['embedding', 'judge']) || has(self.target)").message("the embedding and judge methods need a target"),
    validation = Rule::new("!has(self.kind) || self.kind != 'fields' || has(self.fields)").message("the fields method needs fields"),
)]
pub struct MethodSpec {
    /// The method. Default `canonicalJson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MethodKind>,
    /// For `fields`: the JSON fields compared, each with a tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub fields: Option<Vec<FieldSpec>>,
    /// For `lexical` and `embedding`: the least similarity (0 to 1) that counts as agreement.
    /// Default 0.8 for `lexical`, 0.9 for `embedding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_similarity: Option<f64>,
    /// For `embedding` and `judge`: the name of the route's target that embeds or judges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A comparison method.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum MethodKind {
    /// The texts are equal (surrounding whitespace aside).
    #[serde(rename = "exact")]
    Exact,
    /// Both parse as JSON and are equal as values (key order, spacing and number spelling
    /// aside); texts that are not JSON are compared exactly.
    #[default]
    #[serde(rename = "canonicalJson")]
    CanonicalJson,
    /// The chosen fields are equal, numbers within their tolerance.
    #[serde(rename = "fields")]
    Fields,
    /// Word-level similarity (cosine of word counts) of at least `minSimilarity`.
    #[serde(rename = "lexical")]
    Lexical,
    /// Cosine similarity of the answers' embeddings, from the embeddings endpoint of
    /// `target`, of at least `minSimilarity`.
    #[serde(rename = "embedding")]
    Embedding,
    /// An LLM judge (`target`) with a fixed rubric, answering with strict JSON.
    #[serde(rename = "judge")]
    Judge,
}

/// One compared field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    /// A JSON Pointer into the parsed answer, e.g. `/verdict` or `/items/0/score`.
    #[schemars(length(max = 1024))]
    pub path: String,
    /// For numbers, the largest absolute difference that still agrees. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub tolerance: Option<f64>,
}

/// Shadow sampling: a share of the primary's successful answers is also requested from the
/// fallback candidates, off the request path, and compared.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShadowSpec {
    /// The share of successful primary requests sampled (0 to 1). Default 0: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub rate: Option<f64>,
    /// Shadow requests in flight at once, at most. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub max_concurrent: Option<u32>,
    /// Shadow requests per minute, at most. Default 60.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests_per_minute: Option<u32>,
    /// Tokens (estimated prompt plus answer) spent on shadow requests per minute, at most.
    /// Default 100000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens_per_minute: Option<u32>,
}
