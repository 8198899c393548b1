//! Structured answers: JSON generated from a JSON Schema, in the persona's voice, or broken on
//! purpose (`schema_violation`, `out_of_bounds`).

use serde_json::{Map, Value, json};

/// What kind of instance to produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A valid instance.
    Valid,
    /// An instance that breaks the schema (a required property missing, or a wrong type).
    Violation,
    /// A valid-looking instance whose numbers are all 7 (out of any 0–1 scale).
    OutOfBounds,
}

/// Generates an instance of `schema`. `variant` picks among the valid choices (the `alt`
/// persona picks other enum members and other numbers than `default`), so two personas give
/// different but schema-valid answers.
pub fn generate(schema: &Value, variant: u8, shape: Shape) -> Value {
    let root = schema;
    let mut value = gen_value(root, schema, variant, shape, 0);
    if shape == Shape::Violation {
        value = violate(root, schema, value);
    }
    value
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let path = r.trim_start_matches('#');
        if let Some(target) = root.pointer(path) {
            return target;
        }
    }
    schema
}

fn gen_value(root: &Value, schema: &Value, variant: u8, shape: Shape, depth: u32) -> Value {
    let schema = resolve(root, schema);
    if depth > 16 {
        return Value::Null;
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.is_empty()
    {
        let idx = if variant == 0 { 0 } else { e.len() - 1 };
        return e[idx].clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            return gen_value(root, first, variant, shape, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(
                        name.clone(),
                        gen_value(root, sub, variant, shape, depth + 1),
                    );
                }
            }
            Value::Object(out)
        }
        "array" => {
            let n = schema
                .get("minItems")
                .and_then(Value::as_u64)
                .unwrap_or(1)
                .max(1);
            let item = schema.get("items").cloned().unwrap_or(json!({}));
            Value::Array(
                (0..n)
                    .map(|_| gen_value(root, &item, variant, shape, depth + 1))
                    .collect(),
            )
        }
        "integer" => {
            if shape == Shape::OutOfBounds {
                return json!(7);
            }
            let lo = bound(schema, "minimum", "exclusiveMinimum", 1.0).ceil();
            let hi = bound(schema, "maximum", "exclusiveMaximum", -1.0).floor();
            let v = pick(lo, hi, variant, 0.0, 10.0);
            json!(v.round() as i64)
        }
        "number" => {
            if shape == Shape::OutOfBounds {
                return json!(7.0);
            }
            let lo = bound(schema, "minimum", "exclusiveMinimum", 1e-3);
            let hi = bound(schema, "maximum", "exclusiveMaximum", -1e-3);
            json!(pick(lo, hi, variant, 0.75, 0.25))
        }
        "boolean" => json!(variant == 0),
        "null" => Value::Null,
        _ => {
            let base = if variant == 0 {
                "forty-two"
            } else {
                "forty-one"
            };
            let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
            let mut s = base.to_owned();
            while s.len() < min {
                s.push('x');
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
                s.truncate(max as usize);
            }
            Value::String(s)
        }
    }
}

/// The inclusive bound a schema sets (`f64::NAN` when none); an exclusive bound is nudged
/// inwards by `nudge`.
fn bound(schema: &Value, inclusive: &str, exclusive: &str, nudge: f64) -> f64 {
    if let Some(v) = schema.get(inclusive).and_then(Value::as_f64) {
        return v;
    }
    if let Some(v) = schema.get(exclusive).and_then(Value::as_f64) {
        return v + nudge;
    }
    f64::NAN
}

/// Chooses a number inside `[lo, hi]`: the default persona leans to the upper quarter, the
/// alternative one to the lower quarter, so their answers differ but both fit.
fn pick(lo: f64, hi: f64, variant: u8, unbounded_default: f64, unbounded_alt: f64) -> f64 {
    let frac = if variant == 0 { 0.75 } else { 0.25 };
    match (lo.is_nan(), hi.is_nan()) {
        (false, false) => lo + (hi - lo) * frac,
        (false, true) => lo + if variant == 0 { 1.0 } else { 2.0 },
        (true, false) => hi - if variant == 0 { 1.0 } else { 2.0 },
        (true, true) => {
            if variant == 0 {
                unbounded_default
            } else {
                unbounded_alt
            }
        }
    }
}

/// Breaks a valid instance: drops the first required property of the top-level object, or
/// gives the value the wrong type.
fn violate(root: &Value, schema: &Value, value: Value) -> Value {
    let schema = resolve(root, schema);
    match value {
        Value::Object(mut map) => {
            let required = schema
                .get("required")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(Value::as_str);
            match required {
                Some(name) => {
                    map.remove(name);
                    map.insert("unexpected_field".to_owned(), json!(true));
                    Value::Object(map)
                }
                None => {
                    // Nothing required: make the first property the wrong type instead.
                    if let Some((k, v)) = map.iter_mut().next() {
                        let broken = if v.is_string() {
                            json!(12345)
                        } else {
                            json!("not the declared type")
                        };
                        let key = k.clone();
                        map.insert(key, broken);
                        Value::Object(map)
                    } else {
                        json!("an object was expected")
                    }
                }
            }
        }
        Value::String(_) => json!(12345),
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => {
            json!({"not": "the declared type"})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "label": {"type": "string", "enum": ["positive", "neutral", "negative"]},
                "score": {"type": "number", "minimum": 0, "maximum": 1},
                "count": {"type": "integer"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "nested": {"$ref": "#/$defs/inner"}
            },
            "required": ["label", "score"],
            "$defs": {"inner": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}
        })
    }

    #[test]
    fn valid_instances_fit_and_personas_differ() {
        let a = generate(&schema(), 0, Shape::Valid);
        let b = generate(&schema(), 1, Shape::Valid);
        assert_eq!(a["label"], "positive");
        assert_eq!(b["label"], "negative");
        assert_eq!(a["score"], 0.75);
        assert_eq!(b["score"], 0.25);
        assert_eq!(a["nested"]["ok"], true);
        assert!(a["tags"].is_array());
        assert_ne!(a, b);
    }

    #[test]
    fn violation_drops_a_required_property() {
        let v = generate(&schema(), 0, Shape::Violation);
        assert!(v.get("label").is_none());
        assert_eq!(v["unexpected_field"], true);
    }

    #[test]
    fn out_of_bounds_sets_numbers_to_seven() {
        let v = generate(&schema(), 0, Shape::OutOfBounds);
        assert_eq!(v["score"], 7.0);
        assert_eq!(v["count"], 7);
        assert_eq!(v["label"], "positive");
    }
}
