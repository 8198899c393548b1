//! What a contract may cost: bounds on schemas and CEL rules checked when they are compiled,
//! and the cost a rule would have on a given answer, checked before it is evaluated. A route's
//! contract and a client's `response_format` are both input the sidecar does not control.

use serde_json::Value;

/// The largest schema accepted, serialized.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// The deepest nesting of a schema, counting the levels its `$ref`s lead through.
pub const MAX_SCHEMA_DEPTH: usize = 128;
/// The most subschemas a schema may expand to once its local `$ref`s are followed: the cost of
/// validating grows with it, and a few kilobytes of `allOf` chained through `$defs` expand
/// exponentially.
pub const MAX_SCHEMA_EXPANSION: u64 = 20_000;

/// Checks a schema against [`MAX_SCHEMA_BYTES`], [`MAX_SCHEMA_DEPTH`] and
/// [`MAX_SCHEMA_EXPANSION`].
pub(super) fn bounded(source: &Value) -> Result<(), String> {
    let size = serde_json::to_vec(source).map_or(usize::MAX, |v| v.len());
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "the schema is {size} bytes; at most {MAX_SCHEMA_BYTES} are accepted"
        ));
    }
    let mut walk = Expansion {
        root: source,
        memo: std::collections::HashMap::new(),
        following: Vec::new(),
    };
    let n = walk.count(source, 0)?;
    if n > MAX_SCHEMA_EXPANSION {
        return Err(format!(
            "the schema expands to more than {MAX_SCHEMA_EXPANSION} subschemas through $ref; simplify it"
        ));
    }
    Ok(())
}

/// Counts the subschemas a schema expands to when its local `$ref`s are followed (a
/// reference already being followed — recursion — counts once: its cost is bounded by the
/// instance).
struct Expansion<'a> {
    root: &'a Value,
    memo: std::collections::HashMap<&'a str, u64>,
    following: Vec<&'a str>,
}

impl<'a> Expansion<'a> {
    fn count(&mut self, node: &'a Value, depth: usize) -> Result<u64, String> {
        if depth > MAX_SCHEMA_DEPTH {
            return Err(format!(
                "the schema nests deeper than {MAX_SCHEMA_DEPTH} levels (counting those its $ref leads through)"
            ));
        }
        let over = |n: u64| -> Result<u64, String> {
            if n > MAX_SCHEMA_EXPANSION {
                Err(format!(
                    "the schema expands to more than {MAX_SCHEMA_EXPANSION} subschemas through $ref; simplify it"
                ))
            } else {
                Ok(n)
            }
        };
        match node {
            Value::Object(m) => {
                let mut n: u64 = 1;
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(pointer) = r.strip_prefix('#')
                    && !self.following.contains(&r.as_str())
                {
                    let r = r.as_str();
                    let referenced = match self.memo.get(r) {
                        Some(c) => *c,
                        None => match self.root.pointer(pointer) {
                            Some(target) => {
                                self.following.push(r);
                                let c = self.count(target, depth + 1);
                                self.following.pop();
                                let c = c?;
                                self.memo.insert(r, c);
                                c
                            }
                            None => 0,
                        },
                    };
                    n = over(n.saturating_add(referenced))?;
                }
                for (k, v) in m {
                    if k != "$ref" {
                        n = over(n.saturating_add(self.count(v, depth + 1)?))?;
                    }
                }
                Ok(n)
            }
            Value::Array(items) => {
                let mut n: u64 = 0;
                for v in items {
                    n = over(n.saturating_add(self.count(v, depth + 1)?))?;
                }
                Ok(n)
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(0),
        }
    }
}

/// The longest CEL rule accepted.
pub const MAX_RULE_BYTES: usize = 2048;
/// The most operators (and so terms) in one rule: the interpreter recurses on each.
pub const MAX_RULE_OPERATORS: usize = 128;
/// The deepest nesting of parentheses, brackets and braces in one rule.
pub const MAX_RULE_NESTING: usize = 24;
/// The most comprehensions (`map`, `filter`, `all`, `exists`, `exists_one`) in one rule: each
/// can multiply the size of what it is given.
pub const MAX_RULE_COMPREHENSIONS: usize = 3;

/// Bounds what evaluating a CEL rule can cost, before it is compiled: its length, operators,
/// nesting and comprehensions (string literals do not count).
pub(super) fn rule_bounded(expression: &str) -> Result<(), String> {
    if expression.len() > MAX_RULE_BYTES {
        return Err(format!(
            "the rule is {} bytes long; at most {MAX_RULE_BYTES} are accepted",
            expression.len()
        ));
    }
    let (mut operators, mut depth, mut deepest, mut comprehensions) =
        (0usize, 0usize, 0usize, 0usize);
    let mut chars = expression.char_indices().peekable();
    let mut code = String::with_capacity(expression.len());
    while let Some((_, c)) = chars.next() {
        match c {
            '"' | '\'' => {
                // Skip the literal, escapes included.
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        break;
                    }
                }
                code.push(' ');
                continue;
            }
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '?' | '<' | '>' | '!' => operators += 1,
            '&' | '|' | '=' => {
                // Two-character operators count once.
                if chars.peek().is_some_and(|(_, d)| *d == c) {
                    chars.next();
                }
                operators += 1;
            }
            _ => {}
        }
        code.push(c);
    }
    for m in [".map(", ".filter(", ".all(", ".exists(", ".exists_one("] {
        comprehensions += code.matches(m).count();
    }
    if operators > MAX_RULE_OPERATORS {
        return Err(format!(
            "the rule has {operators} operators; at most {MAX_RULE_OPERATORS} are accepted (split it into several rules)"
        ));
    }
    if deepest > MAX_RULE_NESTING {
        return Err(format!(
            "the rule nests {deepest} levels deep; at most {MAX_RULE_NESTING} are accepted"
        ));
    }
    if comprehensions > MAX_RULE_COMPREHENSIONS {
        return Err(format!(
            "the rule has {comprehensions} comprehensions (map, filter, all, exists); at most {MAX_RULE_COMPREHENSIONS} are accepted"
        ));
    }
    Ok(())
}

/// The most a rule may cost on one answer, in interpreter steps, as `RuleCost` estimates it
/// for that answer. A rule that would cost more fails the answer without being evaluated.
pub const MAX_RULE_COST: f64 = 10_000_000.0;

/// What evaluating a rule costs as a function of `n`, the largest list or map it could range
/// over: the coefficients of a polynomial in `n`. A comprehension's condition and step count
/// once per element of what it ranges over, so nested comprehensions multiply and successive
/// ones add. The compile-time bounds keep its degree at most
/// [`MAX_RULE_COMPREHENSIONS`]; this bounds what the answer can make of it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RuleCost {
    terms: Vec<f64>,
    /// List concatenations in the rule: each can build a list as large as its operands
    /// together, so the largest list ranged over is bounded by `n` times one more than this.
    concatenations: usize,
}

impl RuleCost {
    pub(super) fn of(program: &cel::Program) -> RuleCost {
        let mut concatenations = 0;
        let terms = cost(program.expression(), &mut concatenations);
        RuleCost {
            terms,
            concatenations,
        }
    }

    /// The estimated steps on inputs whose largest list or map holds `largest` items.
    pub(super) fn on(&self, largest: usize) -> f64 {
        let n = (largest.max(1) as f64) * (self.concatenations as f64 + 1.0);
        self.terms
            .iter()
            .rev()
            .fold(0.0, |acc, c| acc.mul_add(n, *c))
    }
}

/// The cost polynomial of one expression (see [`RuleCost`]).
fn cost(e: &cel::IdedExpr, concatenations: &mut usize) -> Vec<f64> {
    use cel::common::ast::{EntryExpr, Expr};
    let mut total = vec![1.0];
    let add = |total: &mut Vec<f64>, part: Vec<f64>| {
        if total.len() < part.len() {
            total.resize(part.len(), 0.0);
        }
        for (t, p) in total.iter_mut().zip(part) {
            *t += p;
        }
    };
    match &e.expr {
        Expr::Call(call) => {
            if call.func_name == cel::common::ast::operators::ADD {
                *concatenations += 1;
            }
            if let Some(target) = &call.target {
                add(&mut total, cost(target, concatenations));
            }
            for arg in &call.args {
                add(&mut total, cost(arg, concatenations));
            }
        }
        Expr::Comprehension(c) => {
            for part in [&c.iter_range, &c.accu_init, &c.result] {
                add(&mut total, cost(part, concatenations));
            }
            // Once per element: the polynomial times n.
            let mut body = cost(&c.loop_cond, concatenations);
            add(&mut body, cost(&c.loop_step, concatenations));
            body.insert(0, 0.0);
            add(&mut total, body);
        }
        Expr::Select(s) => add(&mut total, cost(&s.operand, concatenations)),
        Expr::List(l) => {
            for element in &l.elements {
                add(&mut total, cost(element, concatenations));
            }
        }
        Expr::Map(m) => {
            for entry in &m.entries {
                if let EntryExpr::MapEntry(me) = &entry.expr {
                    add(&mut total, cost(&me.key, concatenations));
                    add(&mut total, cost(&me.value, concatenations));
                }
            }
        }
        Expr::Struct(st) => {
            for entry in &st.entries {
                if let EntryExpr::StructField(f) = &entry.expr {
                    add(&mut total, cost(&f.value, concatenations));
                }
            }
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
    total
}

/// The most items any list or map in `value` holds, at any depth.
pub(super) fn largest_collection(value: &Value) -> usize {
    let mut largest = 0;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => {
                largest = largest.max(items.len());
                stack.extend(items);
            }
            Value::Object(fields) => {
                largest = largest.max(fields.len());
                stack.extend(fields.values());
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }
    largest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{Contract, Schema, Sources};
    use crate::route::InvalidRoute;
    use plumb_api::ContractSpec;
    use serde_json::json;

    /// `allOf` chained through `$defs`, each level naming the next twice: 2^k to validate.
    fn exponential(k: usize) -> Value {
        let mut defs = serde_json::Map::new();
        for i in 0..k {
            defs.insert(
                format!("d{i}"),
                json!({"allOf": [{"$ref": format!("#/$defs/d{}", i + 1)}, {"$ref": format!("#/$defs/d{}", i + 1)}]}),
            );
        }
        defs.insert(format!("d{k}"), json!({"type": "object"}));
        json!({"$defs": defs, "$ref": "#/$defs/d0"})
    }

    #[test]
    fn a_schema_that_expands_exponentially_is_refused_at_compile() {
        let e = Schema::compile(exponential(28)).err().unwrap_or_default();
        assert!(e.contains("expands to more than 20000 subschemas"), "{e}");
        // A modest chain is fine, and validates.
        let s = Schema::compile(exponential(8)).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.errors(&json!({})).is_none());
        assert!(s.errors(&json!(1)).is_some());
    }

    fn rule(expression: &str) -> Result<Contract, InvalidRoute> {
        let spec: ContractSpec =
            serde_json::from_value(json!({"rules": [{"expression": expression, "message": "m"}]}))
                .unwrap_or_else(|e| panic!("{e}"));
        Contract::compile(&spec, &Sources::default())
    }

    #[test]
    fn rules_that_would_overflow_the_stack_or_blow_up_memory_are_refused_at_compile() {
        // 2,041 terms: under the CRD's 4,096 characters, and once enough to overflow the
        // interpreter's stack on the first answer.
        let terms = vec!["1"; 2041].join("+");
        let e = rule(&format!("{terms} > 0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("at most 2048 are accepted"), "{e}");
        let terms = vec!["1"; 500].join("+");
        let e = rule(&format!("{terms} > 0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("operators; at most 128"), "{e}");
        // Twenty-four chained maps doubling a list: 2^24 elements per check.
        let maps = ".map(a, a + a)".repeat(24);
        let e = rule(&format!("[1]{maps}.size() > 0"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("comprehensions"), "{e}");
        let nested = format!("{}1{} > 0", "(".repeat(40), ")".repeat(40));
        let e = rule(&nested)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("nests 40 levels deep"), "{e}");
        // Ordinary rules, operators inside strings included, are fine.
        assert!(rule("answer.score >= 0.0 && answer.score <= 1.0").is_ok());
        assert!(rule("text.contains('+-*/%&&||==!') || text.size() < 10").is_ok());
        assert!(rule("tools.all(t, t.name != 'rm') && answer.items.exists(i, i > 0)").is_ok());
    }

    fn cost_of(expression: &str) -> RuleCost {
        RuleCost::of(&cel::Program::compile(expression).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn a_rules_cost_grows_with_the_answer_as_its_comprehensions_nest() {
        // No comprehension: the answer's size does not matter.
        let flat = cost_of("answer.score >= 0.0 && answer.score <= 1.0");
        assert_eq!(flat.on(1), flat.on(1_000_000));
        // One: linear. Two in a row: still linear. Two nested: quadratic. Three: cubic.
        let one = cost_of("answer.items.all(i, i > 0)");
        assert!(one.on(2000) / one.on(1000) < 2.1);
        let successive = cost_of("answer.a.all(i, i > 0) && answer.b.exists(j, j < 0)");
        assert!(successive.on(2000) / successive.on(1000) < 2.1);
        let nested = cost_of("answer.items.all(i, answer.items.all(j, i != j))");
        assert!(nested.on(2000) / nested.on(1000) > 3.9);
        let cubic = cost_of("answer.a.all(i, answer.a.all(j, answer.a.all(k, i + j > k)))");
        assert!(cubic.on(1000) > MAX_RULE_COST, "{}", cubic.on(1000));
        assert!(cubic.on(10) < MAX_RULE_COST);
        // Ordinary rules on large answers stay far below the bound.
        assert!(
            one.on(100_000) < MAX_RULE_COST / 10.0,
            "{}",
            one.on(100_000)
        );
        // Concatenation widens what may be ranged over.
        let wide = cost_of("(answer.a + answer.a).all(i, i > 0)");
        assert!(wide.on(1000) > one.on(1000) * 1.5);
    }

    #[test]
    fn the_largest_collection_is_found_at_any_depth() {
        assert_eq!(largest_collection(&json!("text")), 0);
        assert_eq!(
            largest_collection(&json!({"a": [1, 2, 3], "b": {"c": [[1, 2, 3, 4, 5]]}})),
            5
        );
    }

    #[test]
    fn huge_deep_and_recursive_schemas() {
        let huge = json!({"enum": vec!["x".repeat(100); 1000]});
        let e = Schema::compile(huge).err().unwrap_or_default();
        assert!(e.contains("at most 65536 are accepted"), "{e}");
        let mut deep = json!({"type": "string"});
        for _ in 0..200 {
            deep = json!({"items": deep});
        }
        let e = Schema::compile(deep).err().unwrap_or_default();
        assert!(e.contains("nests deeper than 128 levels"), "{e}");
        // A recursive schema (a tree) is legitimate: recursion counts once.
        let tree = json!({"$defs": {"node": {"type": "object", "properties": {
            "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            "$ref": "#/$defs/node"});
        assert!(Schema::compile(tree).is_ok());
    }
}
