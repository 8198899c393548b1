//! The scorecard's judgement: what a client got back for one request, and whether that was a
//! rescue, a safe error or an unsafe answer. `plumb-scorecard` (`make scorecard`) sends the
//! requests; this module builds them, reads what came back and renders the table.
//!
//! The rule, the same through Plumb and directly against the provider:
//!
//! - **rescued** (directly: **correct**): a success status and the complete, right answer — the
//!   simulator's deterministic text to the letter, or for a structured request JSON that
//!   satisfies the request's schema; a stream without an error event.
//! - **safe error**: the client was told, in a way its SDK turns into an exception: no answer
//!   at all (a refused or reset connection, its own timeout), an error status, or a stream that
//!   ends with an explicit error event in the client's format.
//! - **unsafe**: a success status with anything else — a truncated or empty text, a body that
//!   is not JSON, a structured answer that breaks the schema, a stream that ends (cleanly or cut
//!   at the transport level) without the complete answer and without an error event.

use std::fmt;
use std::time::Duration;

use plumb_simulator::testkit::parse_sse;
use serde_json::{Value, json};

/// The question every plain request asks.
pub const QUESTION: &str = "what is six times seven";

/// The question of a structured request.
pub const GRADE_QUESTION: &str = "grade this answer to six times seven: forty-two";

/// The schema of a structured request: a text and a score between 0 and 1.
pub fn grade_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1}
        },
        "required": ["answer", "score"],
        "additionalProperties": false
    })
}

/// `max_tokens` of Anthropic requests (the Messages API requires one); OpenAI requests set none,
/// as the SDKs do by default.
pub const ANTHROPIC_MAX_TOKENS: u32 = 1024;

/// A client's API family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `POST /v1/chat/completions`.
    Openai,
    /// `POST /v1/messages`.
    Anthropic,
}

impl Family {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Family::Openai => "/v1/chat/completions",
            Family::Anthropic => "/v1/messages",
        }
    }

    /// Short name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Openai => "openai",
            Family::Anthropic => "anthropic",
        }
    }
}

/// What a right answer is.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Exactly this text.
    Text(String),
    /// JSON satisfying this schema.
    Schema(Value),
}

impl Expect {
    /// The answer to [`QUESTION`] of the simulator's default persona.
    pub fn plain() -> Expect {
        Expect::Text(plumb_simulator::catalog::answer_text("default", QUESTION))
    }

    /// A structured answer following [`grade_schema`].
    pub fn structured() -> Expect {
        Expect::Schema(grade_schema())
    }
}

/// The body of a request for `model`: the plain question, or with `structured` the grading
/// question with [`grade_schema`] as the answer's format.
pub fn request_body(family: Family, model: &str, stream: bool, structured: bool) -> Value {
    let question = if structured { GRADE_QUESTION } else { QUESTION };
    let mut body = json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": question}],
    });
    match family {
        Family::Openai => {
            if structured {
                body["response_format"] = json!({
                    "type": "json_schema",
                    "json_schema": {"name": "grade", "strict": true, "schema": grade_schema()}
                });
            }
        }
        Family::Anthropic => {
            body["max_tokens"] = json!(ANTHROPIC_MAX_TOKENS);
            if structured {
                body["output_format"] = json!({"type": "json_schema", "schema": grade_schema()});
            }
        }
    }
    body
}

/// Everything a client got back for one request.
#[derive(Clone, Debug, Default)]
pub struct Capture {
    /// The status, when a response head came.
    pub status: Option<u16>,
    /// Its `content-type`.
    pub content_type: String,
    /// The body as far as it came.
    pub body: String,
    /// Why the exchange ended in error, when it did (before the head or while reading the
    /// body).
    pub transport_error: Option<String>,
    /// The client's own timeout ended it.
    pub timed_out: bool,
    /// From sending the request to the end of the body.
    pub elapsed: Duration,
    /// `x-plumb-attempts`.
    pub attempts: String,
    /// `x-plumb-served-by`.
    pub served_by: String,
    /// `x-plumb-failure-classes`.
    pub failure_classes: String,
}

/// The three outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The complete, right answer.
    Rescued,
    /// An explicit error.
    SafeError,
    /// Something else served as a success.
    Unsafe,
}

impl Outcome {
    /// The word for the column through Plumb.
    pub fn through(self) -> &'static str {
        match self {
            Outcome::Rescued => "rescued",
            Outcome::SafeError => "safe error",
            Outcome::Unsafe => "**UNSAFE**",
        }
    }

    /// The word for the direct column.
    pub fn direct(self) -> &'static str {
        match self {
            Outcome::Rescued => "correct",
            Outcome::SafeError => "error",
            Outcome::Unsafe => "**UNSAFE**",
        }
    }
}

/// An outcome and what it was, in a few words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The outcome.
    pub outcome: Outcome,
    /// What the client got, briefly.
    pub detail: String,
    /// The model the answer names, when it names one.
    pub model: Option<String>,
}

impl Verdict {
    fn new(outcome: Outcome, detail: impl Into<String>) -> Verdict {
        Verdict {
            outcome,
            detail: detail.into(),
            model: None,
        }
    }

    fn naming(mut self, model: Option<String>) -> Verdict {
        self.model = model;
        self
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.outcome.through(), self.detail)
    }
}

/// At most `n` characters of `s` on one line, with an ellipsis when cut.
pub fn short(s: &str, n: usize) -> String {
    let one: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let one = one.replace('|', "/");
    if one.chars().count() <= n {
        one
    } else {
        let cut: String = one.chars().take(n).collect();
        format!("{}…", cut.trim_end())
    }
}

/// The message of an error body or error event, in either family's shape.
fn error_message(v: &Value) -> String {
    let err = v.get("error").unwrap_or(v);
    let kind = err
        .get("type")
        .or_else(|| err.get("code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| err.as_str())
        .unwrap_or("");
    // Plumb's own errors: "plumb: no target of the route could answer (route R, model "M"):
    // primary: auth (HTTP 401: …); fallback: …" — what each target said is the news.
    if let Some(rest) = msg.strip_prefix("plumb: ") {
        let targets = rest.split_once("): ").map_or(rest, |(_, targets)| targets);
        return targets
            .split("; ")
            .map(compact_target)
            .collect::<Vec<_>>()
            .join("; ");
    }
    match (kind.is_empty(), msg.is_empty()) {
        (false, false) => format!("{kind}: {msg}"),
        (false, true) => kind.to_owned(),
        (true, _) => msg.to_owned(),
    }
}

/// One target in Plumb's error, shortened: `primary: auth (HTTP 401: Incorrect API key …)` →
/// `primary: auth (401)`; a skipped target keeps its reason.
fn compact_target(part: &str) -> String {
    let Some((name, rest)) = part.split_once(": ") else {
        return part.to_owned();
    };
    if rest.starts_with("skipped") {
        return part.to_owned();
    }
    let (class, why) = rest.split_once(" (").unwrap_or((rest, ""));
    match why
        .strip_prefix("HTTP ")
        .and_then(|w| w.split_once(':'))
        .map(|(status, _)| status)
    {
        Some(status) => format!("{name}: {class} ({status})"),
        None => format!("{name}: {class}"),
    }
}

/// Judges what came back.
pub fn classify(family: Family, expect: &Expect, c: &Capture) -> Verdict {
    let Some(status) = c.status else {
        return if c.timed_out {
            Verdict::new(
                Outcome::SafeError,
                format!("no answer in {} s (client timeout)", c.elapsed.as_secs()),
            )
        } else {
            Verdict::new(
                Outcome::SafeError,
                format!(
                    "no response: {}",
                    short(
                        c.transport_error.as_deref().unwrap_or("connection failed"),
                        40
                    )
                ),
            )
        };
    };
    if !(200..300).contains(&status) {
        let msg = serde_json::from_str::<Value>(&c.body)
            .map(|v| error_message(&v))
            .unwrap_or_else(|_| "no error body".to_owned());
        return Verdict::new(Outcome::SafeError, format!("{status} {}", short(&msg, 200)));
    }
    if c.content_type.starts_with("text/event-stream") {
        classify_stream(family, expect, c)
    } else {
        classify_whole(family, expect, c)
    }
}

fn classify_whole(family: Family, expect: &Expect, c: &Capture) -> Verdict {
    if let Some(err) = &c.transport_error {
        let what = if c.timed_out {
            "client timeout"
        } else {
            "body cut"
        };
        return Verdict::new(
            Outcome::Unsafe,
            format!(
                "200, {what} after {} bytes: {}",
                c.body.len(),
                short(err, 30)
            ),
        );
    }
    let v: Value = match serde_json::from_str(&c.body) {
        Ok(v) => v,
        Err(_) => {
            return Verdict::new(
                Outcome::Unsafe,
                format!("200 with a body that is not JSON ({} bytes)", c.body.len()),
            );
        }
    };
    let text = match family {
        Family::Openai => v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        Family::Anthropic => v
            .get("content")
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<String>()
            })
            .unwrap_or_default(),
    };
    judge_text(expect, &text, "200").naming(model_note(&v))
}

/// The model an answer names, for the detail.
fn model_note(v: &Value) -> Option<String> {
    v.get("model")
        .or_else(|| v.pointer("/message/model"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn classify_stream(family: Family, expect: &Expect, c: &Capture) -> Verdict {
    let events = parse_sse(&c.body);
    let mut text = String::new();
    let mut terminated = false;
    let mut malformed = 0usize;
    let mut model = None;
    for ev in &events {
        if ev.data.trim() == "[DONE]" {
            terminated = true;
            continue;
        }
        let is_error_event = ev.event.as_deref() == Some("error");
        let parsed: Option<Value> = serde_json::from_str(&ev.data).ok();
        let Some(v) = parsed else {
            if is_error_event {
                return Verdict::new(Outcome::SafeError, "error event (not JSON)");
            }
            if !ev.data.is_empty() {
                malformed += 1;
            }
            continue;
        };
        if is_error_event
            || v.get("error").is_some_and(|e| !e.is_null())
            || v.get("type").and_then(Value::as_str) == Some("error")
        {
            return Verdict::new(
                Outcome::SafeError,
                format!(
                    "error event after {} chars: {}",
                    text.chars().count(),
                    short(&error_message(&v), 200)
                ),
            );
        }
        if model.is_none() {
            model = model_note(&v);
        }
        match family {
            Family::Openai => {
                if let Some(t) = v
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
                {
                    text.push_str(t);
                }
            }
            Family::Anthropic => {
                if ev.event.as_deref() == Some("message_stop")
                    || v.get("type").and_then(Value::as_str) == Some("message_stop")
                {
                    terminated = true;
                }
                if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
        }
    }
    if let Some(err) = &c.transport_error {
        let what = if c.timed_out { "client timeout" } else { "cut" };
        return Verdict::new(
            Outcome::Unsafe,
            format!(
                "stream {what} after {} chars, no error event: {}",
                text.chars().count(),
                short(err, 30)
            ),
        );
    }
    let mut how = String::from("stream");
    if malformed > 0 {
        how.push_str(&format!(", {malformed} malformed event(s)"));
    }
    if !terminated {
        how.push_str(", no terminator");
    }
    judge_text(expect, &text, &how).naming(model)
}

/// Whether `text` is the right answer; `how` says how it came (`200`, `stream, no terminator`).
fn judge_text(expect: &Expect, text: &str, how: &str) -> Verdict {
    match expect {
        Expect::Text(want) => {
            if text == want {
                let note = if how == "200" || how == "stream" {
                    "complete".to_owned()
                } else {
                    format!("complete; {how}")
                };
                return Verdict::new(Outcome::Rescued, note);
            }
            let n = text.chars().count();
            let m = want.chars().count();
            let what = if text.is_empty() {
                "empty answer".to_owned()
            } else if want.starts_with(text) {
                format!("truncated: {n} of {m} chars")
            } else {
                format!("wrong text: {}", short(text, 40))
            };
            Verdict::new(Outcome::Unsafe, format!("{how}, {what}"))
        }
        Expect::Schema(schema) => {
            let parsed: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(_) => {
                    let what = if text.is_empty() {
                        "empty answer".to_owned()
                    } else {
                        format!("not JSON: {}", short(text, 30))
                    };
                    return Verdict::new(Outcome::Unsafe, format!("{how}, {what}"));
                }
            };
            let validator = match jsonschema::draft202012::new(schema) {
                Ok(v) => v,
                Err(e) => {
                    return Verdict::new(Outcome::Unsafe, format!("schema did not compile: {e}"));
                }
            };
            let first_error = validator.iter_errors(&parsed).next().map(|e| e.to_string());
            match first_error {
                None => {
                    let note = if how == "200" || how == "stream" {
                        "valid JSON".to_owned()
                    } else {
                        format!("valid JSON; {how}")
                    };
                    Verdict::new(Outcome::Rescued, note)
                }
                Some(e) => Verdict::new(
                    Outcome::Unsafe,
                    format!("{how}, breaks the schema: {}", short(&e, 40)),
                ),
            }
        }
    }
}

/// Whether structured output is what this fault is about: the content faults are judged on a
/// structured request, every other fault on the plain question.
pub fn wants_structured(fault: &str) -> bool {
    matches!(fault, "schema_violation" | "out_of_bounds")
}

/// The expectation for a fault's request.
pub fn expect_for(fault: &str) -> Expect {
    if wants_structured(fault) {
        Expect::structured()
    } else {
        Expect::plain()
    }
}

/// Counts of each outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Rescued (or correct, directly).
    pub rescued: usize,
    /// Safe errors.
    pub safe: usize,
    /// Unsafe answers.
    pub unsafe_: usize,
}

impl Tally {
    /// Counts one outcome.
    pub fn add(&mut self, o: Outcome) {
        match o {
            Outcome::Rescued => self.rescued += 1,
            Outcome::SafeError => self.safe += 1,
            Outcome::Unsafe => self.unsafe_ += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want() -> String {
        plumb_simulator::catalog::answer_text("default", QUESTION)
    }

    fn openai_stream(pieces: &[&str], done: bool) -> String {
        let mut s = String::new();
        for p in pieces {
            s.push_str(&format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "delta": {"content": p}}]})
            ));
        }
        if done {
            s.push_str("data: [DONE]\n\n");
        }
        s
    }

    fn ok(content_type: &str, body: String) -> Capture {
        Capture {
            status: Some(200),
            content_type: content_type.to_owned(),
            body,
            ..Capture::default()
        }
    }

    #[test]
    fn a_complete_openai_stream_is_rescued_and_a_truncated_one_is_unsafe() {
        let text = want();
        let (a, b) = text.split_at(20);
        let c = ok("text/event-stream", openai_stream(&[a, b], true));
        assert_eq!(
            classify(Family::Openai, &Expect::plain(), &c).outcome,
            Outcome::Rescued
        );
        // Ends "normally" with [DONE] but short: served as a success, so unsafe.
        let c = ok("text/event-stream", openai_stream(&[a], true));
        let v = classify(Family::Openai, &Expect::plain(), &c);
        assert_eq!(v.outcome, Outcome::Unsafe, "{v}");
        assert!(v.detail.contains("truncated"), "{v}");
        // Cut at the transport level without an error event: unsafe too.
        let mut c = ok("text/event-stream", openai_stream(&[a], false));
        c.transport_error = Some("connection closed".into());
        assert_eq!(
            classify(Family::Openai, &Expect::plain(), &c).outcome,
            Outcome::Unsafe
        );
    }

    #[test]
    fn an_explicit_error_event_is_a_safe_error_in_either_family() {
        let mut body = openai_stream(&["On "], false);
        body.push_str("data: {\"error\":{\"type\":\"overloaded_error\",\"message\":\"cut\"}}\n\n");
        let v = classify(
            Family::Openai,
            &Expect::plain(),
            &ok("text/event-stream", body),
        );
        assert_eq!(v.outcome, Outcome::SafeError, "{v}");
        let body = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\"}}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";
        let v = classify(
            Family::Anthropic,
            &Expect::plain(),
            &ok("text/event-stream", body.to_owned()),
        );
        assert_eq!(v.outcome, Outcome::SafeError, "{v}");
        assert!(v.detail.contains("Overloaded"), "{v}");
    }

    #[test]
    fn an_anthropic_stream_needs_its_text_and_says_when_message_stop_is_missing() {
        let text = want();
        let delta = |t: &str| {
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}})
            )
        };
        let stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
        let body = format!("{}{stop}", delta(&text));
        let v = classify(
            Family::Anthropic,
            &Expect::plain(),
            &ok("text/event-stream", body),
        );
        assert_eq!(v.outcome, Outcome::Rescued, "{v}");
        let v = classify(
            Family::Anthropic,
            &Expect::plain(),
            &ok("text/event-stream", delta(&text)),
        );
        assert_eq!(v.outcome, Outcome::Rescued, "{v}");
        assert!(v.detail.contains("no terminator"), "{v}");
    }

    #[test]
    fn whole_answers_are_judged_on_their_text_and_errors_on_their_status() {
        let body = json!({"choices": [{"message": {"content": want()}}]}).to_string();
        let v = classify(
            Family::Openai,
            &Expect::plain(),
            &ok("application/json", body),
        );
        assert_eq!(v.outcome, Outcome::Rescued, "{v}");
        let v = classify(
            Family::Openai,
            &Expect::plain(),
            &ok("application/json", "{\"choices\": [{\"mess".into()),
        );
        assert_eq!(v.outcome, Outcome::Unsafe, "{v}");
        let body = json!({"content": [{"type": "text", "text": ""}]}).to_string();
        let v = classify(
            Family::Anthropic,
            &Expect::plain(),
            &ok("application/json", body),
        );
        assert_eq!(v.outcome, Outcome::Unsafe, "{v}");
        assert!(v.detail.contains("empty"), "{v}");
        let c = Capture {
            status: Some(503),
            body: json!({"error": {"type": "server_error", "message": "down"}}).to_string(),
            ..Capture::default()
        };
        let v = classify(Family::Openai, &Expect::plain(), &c);
        assert_eq!(v.outcome, Outcome::SafeError, "{v}");
        assert!(v.detail.contains("503"), "{v}");
        let c = Capture {
            timed_out: true,
            elapsed: Duration::from_secs(180),
            ..Capture::default()
        };
        assert_eq!(
            classify(Family::Openai, &Expect::plain(), &c).outcome,
            Outcome::SafeError
        );
    }

    #[test]
    fn structured_answers_must_satisfy_the_schema() {
        let answer = |a: Value| {
            ok(
                "application/json",
                json!({"choices": [{"message": {"content": a.to_string()}}]}).to_string(),
            )
        };
        let good = answer(json!({"answer": "forty-two", "score": 0.9}));
        assert_eq!(
            classify(Family::Openai, &Expect::structured(), &good).outcome,
            Outcome::Rescued
        );
        let out_of_bounds = answer(json!({"answer": "forty-two", "score": 7}));
        assert_eq!(
            classify(Family::Openai, &Expect::structured(), &out_of_bounds).outcome,
            Outcome::Unsafe
        );
        let missing = answer(json!({"answer": "forty-two"}));
        assert_eq!(
            classify(Family::Openai, &Expect::structured(), &missing).outcome,
            Outcome::Unsafe
        );
    }

    #[test]
    fn plumb_errors_are_shortened_to_each_target_and_why() {
        let body = json!({"error": {"type": "plumb_error", "message": "plumb: no target of the route could answer (route ns/r, model \"r\"): primary: auth (HTTP 401: Incorrect API key provided: sk-…); fallback: skipped (uses the same credentials that were refused)"}});
        let c = Capture {
            status: Some(502),
            body: body.to_string(),
            ..Capture::default()
        };
        let v = classify(Family::Openai, &Expect::plain(), &c);
        assert_eq!(v.outcome, Outcome::SafeError);
        assert_eq!(
            v.detail,
            "502 primary: auth (401); fallback: skipped (uses the same credentials that were refused)"
        );
    }

    #[test]
    fn request_bodies_carry_the_format_each_family_uses() {
        let o = request_body(Family::Openai, "m", true, true);
        assert_eq!(o["response_format"]["type"], "json_schema");
        assert!(o.get("max_tokens").is_none());
        let a = request_body(Family::Anthropic, "m", false, true);
        assert_eq!(a["output_format"]["schema"], grade_schema());
        assert_eq!(a["max_tokens"], ANTHROPIC_MAX_TOKENS);
    }
}
