//! A route's contract, compiled: the checks every answer passes before it reaches the client.
//!
//! A route's contract is compiled once, when the route is (schemas, CEL programs and patterns
//! that do not compile refuse the route with the field to fix), and run on every answer by
//! [`Contract::check`]. The first check that fails decides the class: not JSON, or a schema
//! broken, is [`FailureClass::SchemaViolation`]; a rule, a forbidden pattern or the length
//! limit broken is [`FailureClass::OutOfBounds`].
//!
//! Where its schemas come from, and their compilation, is `schema`; the limits on what a schema
//! or a rule may cost to check, `bounds`.

use std::fmt;
use std::sync::{Arc, LazyLock};

use plumb_api::ContractSpec;
pub use plumb_api::{ModelSubstitution, StreamCheck};
use serde_json::Value;

use crate::class::FailureClass;

mod bounds;
mod schema;

use crate::route::InvalidRoute;
pub use bounds::{
    MAX_RULE_BYTES, MAX_RULE_COMPREHENSIONS, MAX_RULE_COST, MAX_RULE_NESTING, MAX_RULE_OPERATORS,
    MAX_SCHEMA_BYTES, MAX_SCHEMA_DEPTH, MAX_SCHEMA_EXPANSION,
};
use bounds::{RuleCost, largest_collection, rule_bounded};
pub use schema::{Schema, Sources, parse_yaml};

/// The variables a rule may use.
pub const RULE_VARIABLES: [&str; 4] = ["answer", "text", "tools", "request"];

/// A compiled CEL rule.
#[derive(Clone)]
struct Rule {
    expression: String,
    message: String,
    program: Arc<cel::Program>,
    uses_request: bool,
    cost: RuleCost,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rule({:?})", self.expression)
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.expression == other.expression && self.message == other.message
    }
}

#[derive(Clone, Debug)]
struct Forbidden {
    pattern: regex::Regex,
    message: String,
}

impl PartialEq for Forbidden {
    fn eq(&self, other: &Forbidden) -> bool {
        self.pattern.as_str() == other.pattern.as_str() && self.message == other.message
    }
}

/// A compiled contract.
#[derive(Clone, Debug, PartialEq)]
pub struct Contract {
    json: bool,
    schema: Option<Schema>,
    /// Check structured answers against the schema the client sent too.
    pub request_schema: bool,
    tools: Vec<(String, Schema)>,
    rules: Vec<Rule>,
    forbidden: Vec<Forbidden>,
    max_length: Option<usize>,
    /// When streams are checked.
    pub streams: StreamCheck,
    /// What a substituted model does.
    pub model_substitution: ModelSubstitution,
}

/// A tool call of an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as the model wrote them (JSON text).
    pub arguments: String,
}

/// An answer, as the contract sees it.
#[derive(Clone, Copy, Debug)]
pub struct Answer<'a> {
    /// The answer's text (text blocks joined).
    pub text: &'a str,
    /// Its tool calls.
    pub tools: &'a [ToolCall],
    /// The client's request body.
    pub request: &'a serde_json::Map<String, Value>,
    /// The schema the client asked the answer to follow, if any.
    pub request_schema: Option<&'a Schema>,
}

/// Why an answer broke the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// `schema_violation` or `out_of_bounds`.
    pub class: FailureClass,
    /// The check that failed: `json`, `schema`, `requestSchema`, `toolArguments[NAME]`,
    /// `rules[i]`, `forbidden[i]` or `maxLength`.
    pub check: String,
    /// What is wrong, for the error and the repair prompt.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contract.{}: {}", self.check, self.message)
    }
}

/// The CEL environment every rule runs in (the standard library), built once.
static CEL_ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// The names comprehension macros bind (`list.all(x, …)`), which are not free variables.
static MACRO_VARIABLES: LazyLock<regex::Regex> = LazyLock::new(|| {
    #[allow(clippy::unwrap_used)] // a constant pattern, covered by tests
    regex::Regex::new(
        r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,(?:\s*([A-Za-z_][A-Za-z0-9_]*)\s*,)?",
    )
    .unwrap()
});

impl Contract {
    /// The contract of a route that sets none: the schema the client asked the answer to
    /// follow, when it sent one, is checked — before a stream reaches the client, so a broken
    /// answer is repaired or failed over invisibly — and nothing else.
    pub fn client_schema_only() -> Contract {
        Contract {
            json: false,
            schema: None,
            request_schema: true,
            tools: Vec::new(),
            rules: Vec::new(),
            forbidden: Vec::new(),
            max_length: None,
            streams: StreamCheck::BeforeCommit,
            model_substitution: ModelSubstitution::default(),
        }
    }

    /// Whether checking an answer does anything: the route's own checks, or the client's
    /// schema when it sent one and the contract follows it.
    pub fn applies(&self, client_schema: bool) -> bool {
        self.json
            || self.schema.is_some()
            || !self.tools.is_empty()
            || !self.rules.is_empty()
            || !self.forbidden.is_empty()
            || self.max_length.is_some()
            || (self.request_schema && client_schema)
    }

    /// Compiles `spec.contract`.
    pub fn compile(spec: &ContractSpec, sources: &Sources) -> Result<Contract, InvalidRoute> {
        let schema = match &spec.schema {
            None => None,
            Some(s) => Some(sources.compiled("spec.contract.schema", s)?),
        };
        let mut tools = Vec::new();
        for (i, t) in spec.tool_arguments.iter().flatten().enumerate() {
            let field = format!("spec.contract.toolArguments[{i}]");
            if tools.iter().any(|(name, _)| name == &t.tool) {
                return Err(InvalidRoute::Contract {
                    field: format!("{field}.tool"),
                    reason: format!("the tool {:?} is listed twice", t.tool),
                });
            }
            let compiled = sources.compiled(&format!("{field}.schema"), &t.schema)?;
            tools.push((t.tool.clone(), compiled));
        }
        let mut rules = Vec::new();
        for (i, r) in spec.rules.iter().flatten().enumerate() {
            let field = format!("spec.contract.rules[{i}].expression");
            rule_bounded(&r.expression).map_err(|reason| InvalidRoute::Contract {
                field: field.clone(),
                reason,
            })?;
            let program =
                cel::Program::compile(&r.expression).map_err(|e| InvalidRoute::Contract {
                    field: field.clone(),
                    reason: format!("not a valid CEL expression: {e}"),
                })?;
            let bound: Vec<&str> = MACRO_VARIABLES
                .captures_iter(&r.expression)
                .flat_map(|c| [c.get(1), c.get(2)])
                .flatten()
                .map(|m| m.as_str())
                .collect();
            let references = program.references();
            let mut unknown: Vec<&str> = references
                .variables()
                .into_iter()
                .filter(|v| !RULE_VARIABLES.contains(v) && !bound.contains(v))
                .collect();
            unknown.sort_unstable();
            if let Some(v) = unknown.first() {
                return Err(InvalidRoute::Contract {
                    field,
                    reason: format!(
                        "unknown variable {v:?}; rules can use {}",
                        RULE_VARIABLES.join(", ")
                    ),
                });
            }
            let uses_request = references.has_variable("request");
            rules.push(Rule {
                expression: r.expression.clone(),
                message: r.message.clone(),
                cost: RuleCost::of(&program),
                program: Arc::new(program),
                uses_request,
            });
        }
        let mut forbidden = Vec::new();
        for (i, f) in spec.forbidden.iter().flatten().enumerate() {
            let pattern = regex::RegexBuilder::new(&f.pattern)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| InvalidRoute::Contract {
                    field: format!("spec.contract.forbidden[{i}].pattern"),
                    reason: format!("not a valid regular expression: {e}"),
                })?;
            forbidden.push(Forbidden {
                message: f.message.clone().unwrap_or_else(|| {
                    format!("the answer matches the forbidden pattern {:?}", f.pattern)
                }),
                pattern,
            });
        }
        if spec.max_length == Some(0) {
            return Err(InvalidRoute::OutOfRange {
                field: "spec.contract.maxLength".to_owned(),
                value: "0".to_owned(),
                expected: "1 or more",
            });
        }
        Ok(Contract {
            json: spec.json.unwrap_or(false) || schema.is_some(),
            schema,
            request_schema: spec.request_schema.unwrap_or(true),
            tools,
            rules,
            forbidden,
            max_length: spec.max_length.map(|n| n as usize),
            streams: spec.streams.unwrap_or_default(),
            model_substitution: spec.model_substitution.unwrap_or_default(),
        })
    }

    /// Checks an answer. The first failed check is the violation.
    pub fn check(&self, a: &Answer<'_>) -> Result<(), Violation> {
        let schema_violation = |check: &str, message: String| Violation {
            class: FailureClass::SchemaViolation,
            check: check.to_owned(),
            message,
        };
        let out_of_bounds = |check: String, message: String| Violation {
            class: FailureClass::OutOfBounds,
            check,
            message,
        };
        // An answer of tool calls alone has no text to parse: its arguments are checked.
        let text_answer = !a.text.is_empty() || a.tools.is_empty();
        let wants_json =
            text_answer && (self.json || (self.request_schema && a.request_schema.is_some()));
        let parsed: Option<Value> = if wants_json {
            match serde_json::from_str::<Value>(a.text.trim()) {
                Ok(v) => Some(v),
                Err(e) => {
                    return Err(schema_violation(
                        "json",
                        format!("the answer is not JSON: {e}"),
                    ));
                }
            }
        } else {
            serde_json::from_str::<Value>(a.text.trim()).ok()
        };
        if let (Some(schema), Some(v), true) = (&self.schema, &parsed, text_answer)
            && let Some(errors) = schema.errors(v)
        {
            return Err(schema_violation("schema", errors));
        }
        if let (Some(schema), Some(v), true, true) =
            (a.request_schema, &parsed, text_answer, self.request_schema)
            && let Some(errors) = schema.errors(v)
        {
            return Err(schema_violation("requestSchema", errors));
        }
        let mut tool_values = Vec::with_capacity(a.tools.len());
        for call in a.tools {
            // The check names a tool only when the route declares it: the model chooses the
            // name, and the check is a metric label, which must stay bounded.
            let check = if self.tools.iter().any(|(n, _)| *n == call.name) {
                format!("toolArguments[{}]", call.name)
            } else {
                "toolArguments".to_owned()
            };
            let args = if call.arguments.trim().is_empty() {
                Value::Object(serde_json::Map::new())
            } else {
                serde_json::from_str::<Value>(&call.arguments).map_err(|e| {
                    schema_violation(
                        &check,
                        format!("the arguments of {} are not JSON: {e}", call.name),
                    )
                })?
            };
            if let Some((_, schema)) = self.tools.iter().find(|(n, _)| *n == call.name)
                && let Some(errors) = schema.errors(&args)
            {
                return Err(schema_violation(&check, errors));
            }
            tool_values.push(serde_json::json!({"name": call.name, "arguments": args}));
        }
        if let Some(max) = self.max_length {
            let n = a.text.chars().count();
            if n > max {
                return Err(out_of_bounds(
                    "maxLength".to_owned(),
                    format!("the answer is {n} characters long; at most {max} are allowed"),
                ));
            }
        }
        for (i, f) in self.forbidden.iter().enumerate() {
            if f.pattern.is_match(a.text) {
                return Err(out_of_bounds(format!("forbidden[{i}]"), f.message.clone()));
            }
        }
        if self.rules.is_empty() {
            return Ok(());
        }
        let mut ctx = cel::Context::with_env(CEL_ENV.clone());
        let answer = parsed.unwrap_or(Value::Null);
        fn bind<T: serde::Serialize + ?Sized>(ctx: &mut cel::Context<'_, '_>, name: &str, v: &T) {
            if let Ok(value) = cel::to_value(v) {
                let _ = ctx.add_variable(name, value);
            }
        }
        bind(&mut ctx, "answer", &answer);
        bind(&mut ctx, "tools", &tool_values);
        let _ = ctx.add_variable("text", a.text.to_owned());
        if self.rules.iter().any(|r| r.uses_request) {
            bind(&mut ctx, "request", a.request);
        }
        // What the rules could range over, for their cost on this answer.
        let tools_value = Value::Array(tool_values);
        let mut largest = largest_collection(&answer).max(largest_collection(&tools_value));
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.uses_request {
                largest = largest.max(a.request.len()).max(
                    a.request
                        .values()
                        .map(largest_collection)
                        .max()
                        .unwrap_or(0),
                );
            }
            let cost = rule.cost.on(largest);
            if cost > MAX_RULE_COST {
                return Err(out_of_bounds(
                    format!("rules[{i}]"),
                    format!(
                        "{} (not checked: the rule would take about {cost:.0} steps on this answer, whose largest list holds {largest} items; at most {MAX_RULE_COST} are allowed)",
                        rule.message
                    ),
                ));
            }
            match rule.program.execute(&ctx) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => {
                    return Err(out_of_bounds(format!("rules[{i}]"), rule.message.clone()));
                }
                Ok(other) => {
                    return Err(out_of_bounds(
                        format!("rules[{i}]"),
                        format!("{} (the rule gave {other:?}, not a boolean)", rule.message),
                    ));
                }
                Err(e) => {
                    return Err(out_of_bounds(
                        format!("rules[{i}]"),
                        format!(
                            "{} (the answer lacks what the rule reads: {e})",
                            rule.message
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cluster_route_cannot_read_files_and_errors_never_repeat_a_referenced_document() {
        // A route author pointing `file:` at the operator's ServiceAccount token read it back
        // in the route's status, through the schema error.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let secret = dir.path().join("token");
        std::fs::write(&secret, "eyJhbGciOiJSUzI1NiIs.secret-token")
            .unwrap_or_else(|e| panic!("{e}"));
        let spec: ContractSpec =
            serde_json::from_value(json!({"schema": {"file": secret.display().to_string()}}))
                .unwrap_or_else(|e| panic!("{e}"));
        let e = Contract::compile(&spec, &Sources::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("read only beside a routes file"), "{e}");
        assert!(!e.contains("secret-token") && !e.contains("eyJ"), "{e}");
        // Standalone, the file is read, but its content is still not repeated when it is not
        // a schema.
        let e = Contract::compile(&spec, &Sources::in_dir(dir.path()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!e.contains("secret-token") && !e.contains("eyJ"), "{e}");
        // Nor a ConfigMap's.
        let mut sources = Sources::default();
        sources.config_maps.insert(
            ("cm".to_owned(), "k".to_owned()),
            "\"private text\"".to_owned(),
        );
        let spec: ContractSpec = serde_json::from_value(
            json!({"schema": {"configMapKeyRef": {"name": "cm", "key": "k"}}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = Contract::compile(&spec, &sources)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("not a valid JSON Schema"), "{e}");
        assert!(!e.contains("private text"), "{e}");
    }

    fn contract(yaml: &str) -> Contract {
        let spec: ContractSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        Contract::compile(&spec, &Sources::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn refused(yaml: &str) -> String {
        let spec: ContractSpec = serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        match Contract::compile(&spec, &Sources::default()) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e.to_string(),
        }
    }

    fn check(c: &Contract, text: &str) -> Result<(), Violation> {
        c.check(&Answer {
            text,
            tools: &[],
            request: json!({"model": "m", "max_tokens": 50})
                .as_object()
                .unwrap_or_else(|| panic!()),
            request_schema: None,
        })
    }

    #[test]
    fn a_rule_too_costly_for_the_answer_fails_it_without_being_evaluated() {
        // Three nested comprehensions over a 2,000-item list: 8e9 steps, minutes of a core.
        let c = contract(
            "rules:\n  - expression: \"answer.a.all(i, answer.a.all(j, answer.a.all(k, i + j + k > 0)))\"\n    message: ordered\n",
        );
        let big = serde_json::to_string(&json!({"a": vec![1; 2000]})).unwrap_or_default();
        let v = check(&c, &big).err().unwrap_or_else(|| panic!("passed"));
        assert_eq!(v.class, FailureClass::OutOfBounds);
        assert_eq!(v.check, "rules[0]");
        assert!(
            v.message
                .starts_with("ordered (not checked: the rule would take about")
                && v.message.contains("whose largest list holds 2000 items"),
            "{}",
            v.message
        );
        // The same rule on a small answer is evaluated.
        assert!(check(&c, r#"{"a": [1, 2, 3]}"#).is_ok());
        // An ordinary rule over a large answer is evaluated too.
        let linear =
            contract("rules:\n  - expression: \"answer.a.all(i, i > 0)\"\n    message: positive\n");
        assert!(check(&linear, &big).is_ok());
    }

    const SCORED: &str = r#"
schema:
  inline:
    type: object
    required: [answer, score]
    properties:
      answer: {type: string}
      score: {type: number}
rules:
  - expression: "answer.score >= 0.0 && answer.score <= 1.0"
    message: score must be between 0 and 1
  - expression: "size(answer.answer) <= request.max_tokens"
    message: the answer must fit the request's max_tokens
forbidden:
  - pattern: "(?i)as an ai language model"
maxLength: 200
"#;

    #[test]
    fn a_compliant_answer_passes() {
        let c = contract(SCORED);
        assert_eq!(check(&c, r#"{"answer": "yes", "score": 0.5}"#), Ok(()));
    }

    #[test]
    fn each_check_names_itself_and_its_class() {
        let c = contract(SCORED);
        let v = check(&c, "not json").err().unwrap_or_else(|| panic!());
        assert_eq!(
            (v.class, v.check.as_str()),
            (FailureClass::SchemaViolation, "json")
        );
        let v = check(&c, r#"{"answer": "yes"}"#)
            .err()
            .unwrap_or_else(|| panic!());
        assert_eq!(
            (v.class, v.check.as_str()),
            (FailureClass::SchemaViolation, "schema")
        );
        assert!(v.message.contains("score"), "{}", v.message);
        let v = check(&c, r#"{"answer": "yes", "score": 7}"#)
            .err()
            .unwrap_or_else(|| panic!());
        assert_eq!(
            (v.class, v.check.as_str()),
            (FailureClass::OutOfBounds, "rules[0]")
        );
        assert_eq!(v.message, "score must be between 0 and 1");
        let long = format!(r#"{{"answer": "{}", "score": 0.1}}"#, "x".repeat(60));
        let v = check(&c, &long).err().unwrap_or_else(|| panic!());
        assert_eq!(v.check, "rules[1]");
        let v = check(
            &c,
            r#"{"answer": "As an AI language model, no", "score": 0.1}"#,
        )
        .err()
        .unwrap_or_else(|| panic!());
        assert_eq!(
            (v.class, v.check.as_str()),
            (FailureClass::OutOfBounds, "forbidden[0]")
        );
        let huge = format!(r#"{{"answer": "{}", "score": 0.1}}"#, "y".repeat(300));
        let v = check(&c, &huge).err().unwrap_or_else(|| panic!());
        assert_eq!(v.check, "maxLength");
    }

    #[test]
    fn a_rule_reading_what_the_answer_lacks_fails_with_its_message() {
        let c = contract(
            "rules: [{expression: 'answer.verdict in [\"yes\", \"no\"]', message: verdict must be yes or no}]",
        );
        let v = check(&c, r#"{"other": 1}"#)
            .err()
            .unwrap_or_else(|| panic!());
        assert!(
            v.message.starts_with("verdict must be yes or no"),
            "{}",
            v.message
        );
        assert_eq!(check(&c, r#"{"verdict": "no"}"#), Ok(()));
        // Rules over plain text work without JSON.
        let c = contract(
            "rules: [{expression: 'text.endsWith(\"End of answer.\")', message: truncated}]",
        );
        assert_eq!(check(&c, "It is 42. End of answer."), Ok(()));
        assert!(check(&c, "It is 42.").is_err());
    }

    #[test]
    fn tool_arguments_are_checked_by_tool() {
        let c = contract(
            "toolArguments: [{tool: weather, schema: {inline: {type: object, required: [city], properties: {city: {type: string}}}}}]\nrules: [{expression: 'tools.all(t, t.name != \"delete\")', message: no deletes}]",
        );
        let call = |name: &str, args: &str| {
            let tools = [ToolCall {
                name: name.to_owned(),
                arguments: args.to_owned(),
            }];
            c.check(&Answer {
                text: "",
                tools: &tools,
                request: &serde_json::Map::new(),
                request_schema: None,
            })
        };
        assert_eq!(call("weather", r#"{"city": "Oslo"}"#), Ok(()));
        let v = call("weather", r#"{"town": "Oslo"}"#)
            .err()
            .unwrap_or_else(|| panic!());
        assert_eq!(v.check, "toolArguments[weather]");
        let v = call("other", "{broken").err().unwrap_or_else(|| panic!());
        assert_eq!(v.class, FailureClass::SchemaViolation);
        assert_eq!(
            v.check, "toolArguments",
            "a tool the route does not declare is not named in the label"
        );
        assert!(v.message.contains("other"), "the message still names it");
        let v = call("delete", "{}").err().unwrap_or_else(|| panic!());
        assert_eq!(
            (v.class, v.message.as_str()),
            (FailureClass::OutOfBounds, "no deletes")
        );
    }

    #[test]
    fn the_clients_own_schema_is_followed_unless_turned_off() {
        let schema = Schema::compile(json!({"type": "object", "required": ["a"]}))
            .unwrap_or_else(|e| panic!("{e}"));
        let run = |c: &Contract, text: &str| {
            c.check(&Answer {
                text,
                tools: &[],
                request: &serde_json::Map::new(),
                request_schema: Some(&schema),
            })
        };
        let c = contract("maxLength: 100");
        assert_eq!(
            run(&c, r#"{"b": 1}"#).err().map(|v| v.check),
            Some("requestSchema".to_owned())
        );
        assert_eq!(
            run(&c, "prose").err().map(|v| v.check),
            Some("json".to_owned())
        );
        assert_eq!(run(&c, r#"{"a": 1}"#), Ok(()));
        let c = contract("requestSchema: false");
        assert_eq!(run(&c, r#"{"b": 1}"#), Ok(()));
    }

    #[test]
    fn bad_contracts_are_refused_with_the_field_to_fix() {
        let e = refused("rules: [{expression: 'answer.score >', message: m}]");
        assert!(
            e.starts_with("spec.contract.rules[0].expression: not a valid CEL"),
            "{e}"
        );
        let e = refused("rules: [{expression: 'answr.score > 1', message: m}]");
        assert!(e.contains("unknown variable \"answr\""), "{e}");
        // Comprehension variables are bound, not unknown.
        contract(
            "rules: [{expression: 'answer.tags.all(t, t.size() < 5) && answer.m.exists(k, v, v > 0)', message: m}]",
        );
        let e = refused("forbidden: [{pattern: '(unclosed'}]");
        assert!(e.starts_with("spec.contract.forbidden[0].pattern"), "{e}");
        let e = refused("schema: {inline: {type: 5}}");
        assert!(
            e.starts_with("spec.contract.schema: not a valid JSON Schema"),
            "{e}"
        );
        let e = refused("schema: {file: /nonexistent/schema.json}");
        assert!(e.contains("read only beside a routes file"), "{e}");
        let e = refused("schema: {configMapKeyRef: {name: s, key: k}}");
        assert!(e.contains("operator resolves it"), "{e}");
        let e = refused("schema: {inline: {}, file: x.json}");
        assert!(e.contains("exactly one"), "{e}");
    }

    #[test]
    fn schemas_come_from_files_relative_to_the_routes_file_and_from_config_maps() {
        let dir = std::env::temp_dir().join(format!("plumb-contract-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join("s.yaml"), "type: object\nrequired: [x]\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let spec: ContractSpec =
            serde_saphyr::from_str("schema: {file: s.yaml}").unwrap_or_else(|e| panic!("{e}"));
        let c = Contract::compile(&spec, &Sources::in_dir(&dir)).unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&c, "{}").is_err());
        assert_eq!(check(&c, r#"{"x": 1}"#), Ok(()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut sources = Sources::default();
        sources
            .config_maps
            .insert(("s".into(), "k".into()), r#"{"type": "array"}"#.into());
        let spec: ContractSpec =
            serde_saphyr::from_str("schema: {configMapKeyRef: {name: s, key: k}}")
                .unwrap_or_else(|e| panic!("{e}"));
        let c = Contract::compile(&spec, &sources).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(check(&c, "[]"), Ok(()));
    }
}
