//! What the API server checks before the operator sees a route: the CRD's OpenAPI schema and
//! its CEL rules (`x-kubernetes-validations`), taken from the `LlmRoute` types the CRD under
//! `crds/` is generated from, so the two cannot drift.
//!
//! The schema is OpenAPI v3 as Kubernetes reads it; [`to_json_schema`] turns it into the JSON
//! Schema the `jsonschema` crate checks: `nullable` becomes a `null` type, and an object that
//! lists its properties refuses others (`kubectl apply` validates strictly and the API server
//! then refuses unknown fields). The CEL rules run on the `cel` interpreter with `self` bound to
//! the value they sit on, as the API server does.

use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use kube::CustomResourceExt;
use plumb_api::LlmRoute;
use serde_json::{Map, Value};

/// One thing the API server would refuse.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// The field, dotted (`spec.targets[0].name`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Whether it is a CEL rule (else the schema).
    pub rule: bool,
}

/// The compiled checks.
struct Checks {
    validator: jsonschema::Validator,
    /// The CRD's schema as written (for the CEL rules, which sit on its nodes).
    openapi: Value,
}

static CHECKS: LazyLock<Result<Checks, String>> = LazyLock::new(|| {
    let crd = serde_json::to_value(LlmRoute::crd()).map_err(|e| e.to_string())?;
    let mut openapi = crd
        .pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .ok_or("the generated CRD has no openAPIV3Schema")?;
    // A status copied from a cluster is ignored when applied (it is a subresource).
    // apiVersion, kind and metadata are the API server's own, checked before the schema.
    if let Some(props) = openapi.get_mut("properties").and_then(Value::as_object_mut) {
        props.remove("status");
        props.insert("apiVersion".into(), serde_json::json!({"type": "string"}));
        props.insert("kind".into(), serde_json::json!({"type": "string"}));
        props.insert(
            "metadata".into(),
            serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
    }
    let validator =
        jsonschema::draft4::new(&to_json_schema(&openapi)).map_err(|e| e.to_string())?;
    Ok(Checks { validator, openapi })
});

/// Every schema violation and failed CEL rule of one `LlmRoute` document.
pub fn check(doc: &Value) -> Result<Vec<Violation>, String> {
    let checks = CHECKS.as_ref().map_err(Clone::clone)?;
    let mut out: Vec<Violation> = Vec::new();
    for e in checks.validator.iter_errors(doc) {
        let field = pointer_to_field(e.instance_path().as_str());
        let kind = e.kind();
        if let ValidationErrorKind::AdditionalProperties { unexpected } = kind {
            // One problem per unknown field, placed at the field itself.
            for name in unexpected {
                out.push(Violation {
                    field: join(&field, name),
                    message: format!("unknown field {name:?}"),
                    rule: false,
                });
            }
        } else if let ValidationErrorKind::Required { property } = kind {
            out.push(Violation {
                field: join(&field, property.as_str().unwrap_or_default()),
                message: "required field missing".to_owned(),
                rule: false,
            });
        } else if let ValidationErrorKind::Enum { options } = kind {
            // Every allowed value, not the validator's first two.
            let options = options
                .as_array()
                .map(|o| {
                    o.iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            out.push(Violation {
                field,
                message: format!("{} is not one of {options}", e.instance()),
                rule: false,
            });
        } else {
            out.push(Violation {
                field,
                message: e.to_string(),
                rule: false,
            });
        }
    }
    // The API server runs CEL rules only on values that fit the schema.
    if out.is_empty() {
        rules(&checks.openapi, doc, "", &mut out);
    }
    Ok(out)
}

/// The OpenAPI v3 schema as JSON Schema (draft 4).
pub fn to_json_schema(openapi: &Value) -> Value {
    let Value::Object(o) = openapi else {
        return openapi.clone();
    };
    let mut out = Map::new();
    for (k, v) in o {
        let v = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .map(|p| {
                        p.iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s)))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            "items" | "additionalProperties" if v.is_object() => to_json_schema(v),
            "anyOf" | "allOf" | "oneOf" => Value::Array(
                v.as_array()
                    .map(|a| a.iter().map(to_json_schema).collect())
                    .unwrap_or_default(),
            ),
            // Kubernetes' own keywords and formats mean nothing to a JSON Schema validator.
            "nullable" | "format" => continue,
            k if k.starts_with("x-kubernetes-") => continue,
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if o.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(t)) = o.get("type") {
            out.insert("type".into(), serde_json::json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    let preserves = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserves {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    out.into()
}

/// Runs the CEL rules of `schema` and of every node under it on `value`.
fn rules(schema: &Value, value: &Value, field: &str, out: &mut Vec<Violation>) {
    if value.is_null() {
        return;
    }
    if let Some(list) = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
    {
        for rule in list {
            let expression = rule.get("rule").and_then(Value::as_str).unwrap_or_default();
            let message = rule
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| format!("failed rule: {expression}"), str::to_owned);
            match evaluate(expression, value) {
                Ok(true) => {}
                Ok(false) => out.push(Violation {
                    field: field.to_owned(),
                    message,
                    rule: true,
                }),
                Err(e) => out.push(Violation {
                    field: field.to_owned(),
                    message: format!("{message} (the rule could not be evaluated: {e})"),
                    rule: true,
                }),
            }
        }
    }
    match value {
        Value::Object(fields) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|s| s.is_object());
            for (name, v) in fields {
                let sub = props.and_then(|p| p.get(name)).or(extra);
                if let Some(sub) = sub {
                    rules(sub, v, &join(field, name), out);
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    rules(sub, v, &format!("{field}[{i}]"), out);
                }
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
    }
}

/// One CEL rule with `self` bound to `value`.
fn evaluate(expression: &str, value: &Value) -> Result<bool, String> {
    let program = cel::Program::compile(expression).map_err(|e| e.to_string())?;
    let mut ctx = cel::Context::default();
    let bound = cel::to_value(value).map_err(|e| e.to_string())?;
    ctx.add_variable("self", bound).map_err(|e| e.to_string())?;
    match program.execute(&ctx) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("gave {other:?}, not a boolean")),
        Err(e) => Err(e.to_string()),
    }
}

/// `/spec/targets/0/name` → `spec.targets[0].name`.
pub fn pointer_to_field(pointer: &str) -> String {
    let mut field = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            field.push_str(&format!("[{seg}]"));
        } else {
            field = join(&field, &seg);
        }
    }
    field
}

fn join(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_owned()
    } else {
        format!("{field}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn route(spec: Value) -> Value {
        json!({"apiVersion": "plumb.dev/v1alpha1", "kind": "LlmRoute", "metadata": {"name": "r"}, "spec": spec})
    }

    fn target(name: &str) -> Value {
        json!({"name": name, "provider": "openai", "baseUrl": "http://h/v1", "model": "m", "credentials": {"none": true}})
    }

    #[test]
    fn a_valid_route_passes_schema_and_rules() {
        let doc = route(json!({"match": {"models": ["m"]}, "targets": [target("a")]}));
        assert_eq!(check(&doc).unwrap(), vec![]);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_refused_by_the_schema() {
        let mut t = target("Bad_Name");
        t["retries"] = json!(3);
        let doc = route(json!({"match": {"models": ["m"]}, "targets": [t]}));
        let v = check(&doc).unwrap();
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"spec.targets[0].name"), "{v:?}");
        assert!(fields.contains(&"spec.targets[0].retries"), "{v:?}");
        assert!(v.iter().all(|v| !v.rule));
    }

    #[test]
    fn a_missing_required_field_names_itself() {
        let doc = route(json!({"match": {"models": ["m"]}}));
        let v = check(&doc).unwrap();
        assert_eq!(v[0].field, "spec.targets", "{v:?}");
    }

    #[test]
    fn cel_rules_run_with_self_bound_to_their_node() {
        let doc = route(json!({"match": {"models": ["m"]}, "targets": [target("a"), target("a")]}));
        let v = check(&doc).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].field, "spec");
        assert_eq!(v[0].message, "target names must be unique within a route");
        assert!(v[0].rule);

        let mut t = target("a");
        t["credentials"] = json!({"env": "A", "file": "/k"});
        let doc = route(json!({"match": {"models": ["m"]}, "targets": [t]}));
        let v = check(&doc).unwrap();
        assert_eq!(v[0].field, "spec.targets[0].credentials", "{v:?}");
    }

    #[test]
    fn pointers_become_field_paths() {
        assert_eq!(
            pointer_to_field("/spec/targets/0/name"),
            "spec.targets[0].name"
        );
        assert_eq!(pointer_to_field(""), "");
    }
}
