//! Comparing two answers: the pure methods (exact, canonical JSON, fields with tolerances,
//! lexical similarity, cosine of embeddings) and the judge's rubric and strict verdict.

use std::collections::HashMap;

use plumb_policy::equivalence::Field;
use serde_json::Value;

use crate::completion::Collected;

/// What is compared of an answer: its tool calls (names and parsed arguments) as canonical
/// JSON when it made any, else its text.
pub fn comparable(c: &Collected) -> String {
    if c.tools.is_empty() {
        return c.text.clone();
    }
    let calls: Vec<Value> = c
        .tools
        .iter()
        .map(|t| {
            let args = serde_json::from_str::<Value>(&t.arguments)
                .unwrap_or_else(|_| Value::String(t.arguments.clone()));
            serde_json::json!({"name": t.name, "arguments": args})
        })
        .collect();
    Value::Array(calls).to_string()
}

/// Equal texts, surrounding white space aside.
pub fn exact(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

/// Equal JSON values (key order, spacing and number spelling aside: `1` equals `1.0`);
/// texts that are not both JSON are compared exactly.
pub fn canonical_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<Value>(a.trim()),
        serde_json::from_str::<Value>(b.trim()),
    ) {
        (Ok(x), Ok(y)) => json_equal(&x, &y, 0.0),
        _ => exact(a, b),
    }
}

/// Structural equality with numbers within `tolerance` of each other.
fn json_equal(a: &Value, b: &Value, tolerance: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() <= tolerance,
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y, tolerance))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w, tolerance)))
        }
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (
            Value::Null
            | Value::Bool(_)
            | Value::Number(_)
            | Value::String(_)
            | Value::Array(_)
            | Value::Object(_),
            _,
        ) => false,
    }
}

/// The chosen fields agree: each present in both or in neither, numbers within their
/// tolerance, anything else equal as JSON. Answers that are not JSON never agree.
pub fn fields(a: &str, b: &str, chosen: &[Field]) -> bool {
    let (Ok(x), Ok(y)) = (
        serde_json::from_str::<Value>(a.trim()),
        serde_json::from_str::<Value>(b.trim()),
    ) else {
        return false;
    };
    chosen
        .iter()
        .all(|f| match (x.pointer(&f.path), y.pointer(&f.path)) {
            (None, None) => true,
            (Some(v), Some(w)) => json_equal(v, w, f.tolerance),
            (Some(_), None) | (None, Some(_)) => false,
        })
}

/// Cosine similarity of the two texts' word counts (lower-cased letters and digits), 0 to 1.
pub fn lexical(a: &str, b: &str) -> f64 {
    fn counts(s: &str) -> HashMap<String, f64> {
        let mut m = HashMap::new();
        for w in s
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *m.entry(w.to_lowercase()).or_insert(0.0) += 1.0;
        }
        m
    }
    let (x, y) = (counts(a), counts(b));
    if x.is_empty() && y.is_empty() {
        return 1.0;
    }
    let dot: f64 = x.iter().filter_map(|(w, n)| y.get(w).map(|m| n * m)).sum();
    let norm = |m: &HashMap<String, f64>| m.values().map(|n| n * n).sum::<f64>().sqrt();
    let d = norm(&x) * norm(&y);
    if d == 0.0 { 0.0 } else { dot / d }
}

/// Cosine similarity of two vectors (0 when either is empty, zero or of another length).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The judge's fixed rubric (the system message).
pub const JUDGE_RUBRIC: &str = "You compare two answers to the same request. They are equivalent when a user relying on one would reach the same decisions and facts as a user relying on the other: the same claims, numbers, choices and conclusions, whatever the wording, length or order. They are not equivalent when any fact, number, choice or conclusion differs, or when one answers and the other does not. Reply with exactly one JSON object and nothing else: {\"equivalent\": true or false, \"score\": a number from 0 to 1, \"reason\": \"at most one sentence\"}.";

/// The judge's user message: the request and the two answers, tagged.
pub fn judge_prompt(request: &str, a: &str, b: &str) -> String {
    format!(
        "<request>\n{request}\n</request>\n<answer_a>\n{a}\n</answer_a>\n<answer_b>\n{b}\n</answer_b>"
    )
}

/// A judge's verdict: strict JSON with a boolean `equivalent` (a `score` and `reason` may
/// accompany it). Anything else is not a verdict, and the sample is not counted.
pub fn judge_verdict(text: &str) -> Result<bool, String> {
    let v: Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("the judge did not answer with JSON: {e}"))?;
    v.get("equivalent")
        .and_then(Value::as_bool)
        .ok_or_else(|| "the judge's verdict has no boolean \"equivalent\"".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_policy::contract::ToolCall;

    #[test]
    fn exact_ignores_only_surrounding_white_space() {
        assert!(exact("The answer is 42.", " The answer is 42.\n"));
        assert!(!exact("The answer is 42.", "The answer is 42"));
    }

    #[test]
    fn canonical_json_ignores_order_spacing_and_number_spelling() {
        assert!(canonical_json(
            r#"{"a": 1, "b": [true, null]}"#,
            r#"{"b":[true,null],"a":1.0}"#
        ));
        assert!(!canonical_json(r#"{"a": 1}"#, r#"{"a": 2}"#));
        assert!(!canonical_json(r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#));
        assert!(!canonical_json(r#"{"a": "1"}"#, r#"{"a": 1}"#));
        assert!(canonical_json("plain", "plain"));
        assert!(!canonical_json("plain", "other"));
    }

    #[test]
    fn fields_compare_only_the_chosen_paths_within_tolerance() {
        let chosen = [
            Field {
                path: "/verdict".into(),
                tolerance: 0.0,
            },
            Field {
                path: "/score".into(),
                tolerance: 0.05,
            },
        ];
        let a = r#"{"verdict": "approve", "score": 0.82, "reason": "long text"}"#;
        assert!(fields(
            a,
            r#"{"verdict": "approve", "score": 0.85, "reason": "other"}"#,
            &chosen
        ));
        assert!(!fields(
            a,
            r#"{"verdict": "approve", "score": 0.9}"#,
            &chosen
        ));
        assert!(!fields(
            a,
            r#"{"verdict": "reject", "score": 0.82}"#,
            &chosen
        ));
        assert!(!fields(a, r#"{"score": 0.82}"#, &chosen), "missing in one");
        assert!(!fields(a, "not json", &chosen));
    }

    #[test]
    fn lexical_similarity_of_known_pairs() {
        assert!((lexical("the cat sat", "The cat sat.") - 1.0).abs() < 1e-9);
        assert_eq!(lexical("alpha beta", "gamma delta"), 0.0);
        let s = lexical(
            "The answer is forty-two, checked twice.",
            "The answer is forty-two; it was checked.",
        );
        assert!((0.6..0.95).contains(&s), "{s}");
    }

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert!(cosine(&[1.0, 0.0], &[0.0, 1.0]).abs() < 1e-12);
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), 0.0);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 2.0]), 0.0);
    }

    #[test]
    fn judge_verdicts_must_be_strict() {
        assert_eq!(
            judge_verdict(r#"{"equivalent": true, "score": 0.9, "reason": "same"}"#),
            Ok(true)
        );
        assert_eq!(judge_verdict(r#" {"equivalent": false} "#), Ok(false));
        assert!(judge_verdict("Yes, they are equivalent.").is_err());
        assert!(judge_verdict(r#"{"equivalent": "yes"}"#).is_err());
        let p = judge_prompt("q", "A", "B");
        assert!(
            p.contains("<answer_a>\nA\n</answer_a>") && p.contains("<answer_b>\nB\n</answer_b>")
        );
    }

    #[test]
    fn tool_calls_compare_by_name_and_parsed_arguments() {
        let call = |args: &str| Collected {
            tools: vec![ToolCall {
                name: "weather".into(),
                arguments: args.into(),
            }],
            ..Collected::default()
        };
        assert!(canonical_json(
            &comparable(&call(r#"{"city":"Oslo","days":2}"#)),
            &comparable(&call(r#"{ "days": 2, "city": "Oslo" }"#))
        ));
        assert!(!canonical_json(
            &comparable(&call(r#"{"city":"Oslo"}"#)),
            &comparable(&call(r#"{"city":"Bergen"}"#))
        ));
    }
}
