//! `plumb explain`: the plan of the route that serves a model, for a person at 2 AM — the order
//! targets are tried in and why, what each failure class does, the deadlines, the breaker, the
//! retry budget and the equivalence gate — and, given a provider's status and body, the class
//! the sidecar's own classifier gives it and what its own planner does next.
//!
//! Nothing here re-decides: the class comes from `plumb_sidecar::classify::status`, each step
//! from `plumb_sidecar::plan::next`, who may follow a failure from
//! `plumb_sidecar::fallback::still_eligible`, and the client's status from
//! `plumb_sidecar::respond::client_status`.
//!
//! The plan is described here; the played failure is `scenario`.

use std::time::Duration;

use plumb_policy::equivalence::{Downgrades, EquivalenceMode};
use plumb_policy::{
    Blame, BreakerEffect, Credentials, FailureClass, LastResort, MalformedEvents, Plan, Route,
    Target,
};
use plumb_sidecar::classify;
use serde::Serialize;

use crate::render::{Output, Style, structured, table};

mod scenario;

pub use scenario::Scenario;
use scenario::scenario;

/// A provider answer to classify.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    /// Its HTTP status.
    pub status: u16,
    /// Its body.
    pub body: String,
    /// Its headers (`retry-after`, rate-limit headers).
    pub headers: http::HeaderMap,
}

/// Everything `explain` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `namespace/name`.
    pub route: String,
    /// The model asked for.
    pub model: String,
    /// How the route matched it: the name itself, or `*`.
    pub matched_by: String,
    /// Targets in the order they are tried.
    pub targets: Vec<TargetLine>,
    /// What happens when every target is unavailable.
    pub last_resort: String,
    /// Each failure class's plan.
    pub classes: Vec<ClassLine>,
    /// Deadlines, in words.
    pub deadlines: Vec<Setting>,
    /// Breaker, retry budget, streaming and equivalence, in words.
    pub settings: Vec<Setting>,
    /// What a given failure leads to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Scenario>,
}

/// One target.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetLine {
    /// Position in the order (the last resort and the comparison helper have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<usize>,
    /// Name.
    pub name: String,
    /// Provider.
    pub provider: String,
    /// Upstream model.
    pub model: String,
    /// Priority group.
    pub priority: u32,
    /// Weight in the group.
    pub weight: u32,
    /// Share of first tries inside its group, in percent.
    pub share: f64,
    /// Where the key comes from (the source, never the key).
    pub credentials: String,
    /// Context window, if declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Requests that skip it: `tools`, `jsonSchema`, `vision`, `prefill`.
    pub skipped_for: Vec<String>,
    /// Why it sits where it does.
    pub why: String,
}

/// One class's plan.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassLine {
    /// The class.
    pub class: String,
    /// How it is recognised.
    pub recognised: String,
    /// `client` or `upstream`.
    pub blame: String,
    /// `ignore`, `count` or `trip`.
    pub breaker: String,
    /// Retries on the same target.
    pub retries: u32,
    /// Whether retries wait until no other target is left.
    pub retry_only_as_last_option: bool,
    /// Backoff bounds.
    pub backoff: String,
    /// Repairs (contract classes).
    pub repairs: u32,
    /// Whether it fails over.
    pub failover: bool,
    /// Whether the route changed the default.
    pub overridden: bool,
}

/// A named setting in words.
#[derive(Clone, Debug, Serialize)]
pub struct Setting {
    /// What.
    pub name: String,
    /// Its value, explained.
    pub value: String,
}

/// Explains the route that serves `model`. `class` narrows the classes shown (and, without an
/// answer, plays that class's failure); `answer` classifies a provider's answer first.
pub fn explain(
    route: &Route,
    model: &str,
    class: Option<FailureClass>,
    answer: Option<&Answer>,
) -> Explanation {
    let matched_by = if route.models.iter().any(|m| m == model) {
        model.to_owned()
    } else {
        "*".to_owned()
    };
    let classes = FailureClass::ALL
        .iter()
        .copied()
        .filter(|c| class.is_none_or(|only| only == *c))
        .map(|c| class_line(c, &route.plans[c.index()]))
        .collect();
    let scenario = match (answer, class) {
        (Some(a), _) => {
            let failure = classify::status(a.status, &a.headers, a.body.as_bytes());
            Some(scenario(
                route,
                failure.class,
                Some(a.status),
                Some(failure.message),
                failure.retry_after,
            ))
        }
        (None, Some(c)) => Some(scenario(route, c, None, None, None)),
        (None, None) => None,
    };
    Explanation {
        route: route.id.to_string(),
        model: model.to_owned(),
        matched_by,
        targets: targets(route),
        last_resort: match &route.last_resort {
            LastResort::FailFast => {
                "failFast: answer at once with an error naming every target and why it is unavailable".into()
            }
            LastResort::WaitForHalfOpen => {
                "waitForHalfOpen: wait, within the total deadline, for the first breaker to let a probe through".into()
            }
            LastResort::Target(t) => format!(
                "target {}: sent there only when every target above is unavailable",
                t.name
            ),
        },
        classes,
        deadlines: deadlines(route),
        settings: settings(route),
        scenario,
    }
}

fn targets(route: &Route) -> Vec<TargetLine> {
    let top = route.top_priority();
    let mut ordered: Vec<&Target> = route.targets.iter().collect();
    // Groups by priority; inside one, heavier first (the order is weighted-random per request).
    ordered.sort_by(|a, b| a.priority.cmp(&b.priority).then(b.weight.cmp(&a.weight)));
    let mut out = Vec::new();
    for (i, t) in ordered.iter().enumerate() {
        let group: Vec<&&Target> = ordered
            .iter()
            .filter(|o| o.priority == t.priority)
            .collect();
        let total: u32 = group.iter().map(|o| o.weight).sum();
        let share = if total == 0 {
            0.0
        } else {
            f64::from(t.weight) * 100.0 / f64::from(total)
        };
        let mut why = if t.priority == top {
            if group.len() == 1 {
                format!("primary: the only target of the first group (priority {top})")
            } else {
                format!("primary group (priority {top}): {share:.0}% of first tries by weight")
            }
        } else {
            format!(
                "fallback: priority {}, tried after every target of a lower priority",
                t.priority
            )
        };
        if t.weight == 0 {
            why.push_str("; weight 0: only as failover inside its group");
        }
        if route.equivalence.mode == EquivalenceMode::Enforce && t.priority != top {
            why.push_str("; only when certified equivalent (equivalence: enforce)");
        }
        if route.equivalence.downgrades == Downgrades::Forbid && t.priority != top {
            why.push_str("; never, downgrades are forbidden");
        }
        out.push(line(t, Some(i + 1), share, why, &route.id.namespace));
    }
    if let LastResort::Target(t) = &route.last_resort {
        out.push(line(
            t,
            None,
            0.0,
            "last resort: only when every target above is unavailable".into(),
            &route.id.namespace,
        ));
    }
    if let Some(h) = &route.equivalence.helper {
        out.push(line(
            h,
            None,
            0.0,
            format!(
                "equivalence {}: compares answers, serves no client",
                route.equivalence.method.name()
            ),
            &route.id.namespace,
        ));
    }
    out
}

fn line(t: &Target, order: Option<usize>, share: f64, why: String, ns: &str) -> TargetLine {
    let c = &t.capabilities;
    let skipped_for = [
        (!c.tools, "tools"),
        (!c.json_schema, "jsonSchema"),
        (!c.vision, "vision"),
        (!c.prefill, "prefill"),
    ]
    .into_iter()
    .filter(|(skip, _)| *skip)
    .map(|(_, what)| what.to_owned())
    .collect();
    TargetLine {
        order,
        name: t.name.clone(),
        provider: provider(t),
        model: t.model.clone(),
        priority: t.priority,
        weight: t.weight,
        share: (share * 10.0).round() / 10.0,
        credentials: credentials(&t.credentials, ns),
        context_window: c.context_window,
        skipped_for,
        why,
    }
}

fn provider(t: &Target) -> String {
    match t.provider {
        plumb_policy::Provider::Openai => "openai",
        plumb_policy::Provider::OpenaiCompatible => "openai-compatible",
        plumb_policy::Provider::AzureOpenai => "azure-openai",
        plumb_policy::Provider::Anthropic => "anthropic",
        plumb_policy::Provider::Gemini => "gemini",
        plumb_policy::Provider::Bedrock => "bedrock",
        plumb_policy::Provider::VertexAi => "vertex-ai",
    }
    .to_owned()
}

/// The credential's source: a Secret's name and key, a variable's or file's name; never a key.
fn credentials(c: &Credentials, ns: &str) -> String {
    match c {
        Credentials::Secret(r) => format!("secret {ns}/{} key {}", r.name, r.key),
        Credentials::Env(v) => format!("env {v}"),
        Credentials::File(p) => format!("file {}", p.display()),
        Credentials::Passthrough => "the caller's key".into(),
        Credentials::None => "none".into(),
        Credentials::Aws => "the environment's AWS credentials (SigV4)".into(),
        Credentials::Google => "Google Application Default Credentials".into(),
    }
}

fn class_line(class: FailureClass, plan: &Plan) -> ClassLine {
    ClassLine {
        class: class.as_str().to_owned(),
        recognised: recognised(class).to_owned(),
        blame: match class.blame() {
            Blame::Client => "client",
            Blame::Upstream => "upstream",
        }
        .to_owned(),
        breaker: breaker_effect(class.breaker_effect()).to_owned(),
        retries: plan.retries,
        retry_only_as_last_option: plan.retry_only_as_last_option,
        backoff: if plan.retries == 0 && plan.repairs == 0 {
            "-".to_owned()
        } else {
            format!("{}..{}", dur(plan.backoff.initial), dur(plan.backoff.max))
        },
        repairs: plan.repairs,
        failover: plan.failover,
        overridden: *plan != class.default_plan(),
    }
}

fn breaker_effect(e: BreakerEffect) -> &'static str {
    match e {
        BreakerEffect::Ignore => "ignore",
        BreakerEffect::Count => "count",
        BreakerEffect::Trip => "trip",
    }
}

/// How a class is recognised (the design's table, shortened).
fn recognised(class: FailureClass) -> &'static str {
    match class {
        FailureClass::Timeout => {
            "a connect, first-byte, first-token, idle or total deadline passed; 408, 504"
        }
        FailureClass::Connect => "refused, unreachable, TLS or DNS: the request was never sent",
        FailureClass::ConnectionLost => "reset or closed after sending, before any answer",
        FailureClass::RateLimited => "429 or a provider rate-limit error",
        FailureClass::Overloaded => "503, 529 or a provider \"overloaded\" error",
        FailureClass::ServerError => "any other 5xx",
        FailureClass::Auth => "401, 403: the key is invalid, expired or not allowed",
        FailureClass::InvalidModel => "404, model not found, not in this region, deprecated",
        FailureClass::ContextLength => "400 context length exceeded",
        FailureClass::ContentFilter => "the provider's content policy refused",
        FailureClass::BadRequest => "any other 4xx: the caller's request is wrong",
        FailureClass::MalformedResponse => "a 200 that is not valid JSON, empty, or cut early",
        FailureClass::SchemaViolation => "the answer breaks the JSON requirement or a schema",
        FailureClass::OutOfBounds => "the answer breaks a rule, a forbidden pattern or maxLength",
        FailureClass::StreamInterrupted => "a stream cut, stalled or corrupted after commit",
        FailureClass::ModelSubstituted => "the answer names another model than asked for",
    }
}

fn deadlines(route: &Route) -> Vec<Setting> {
    let d = &route.deadlines;
    let a = &d.adaptive;
    let set = |name: &str, value: String| Setting {
        name: name.to_owned(),
        value,
    };
    let mut first_token = dur(d.first_token);
    if a.enabled {
        first_token.push_str(&format!(
            " (learned per upstream: {}× its recent p99, at least {}, once {} first tokens were seen)",
            trim(a.multiplier),
            dur(a.floor),
            a.min_samples
        ));
    }
    let mut total = format!(
        "{} for every attempt, retry and failover together",
        dur(d.total)
    );
    if d.scale_with_length {
        total.push_str("; unstreamed requests get 50 ms per max_tokens on first byte and total");
    }
    vec![
        set("total", total),
        set("connect", dur(d.connect)),
        set("first byte", dur(d.first_byte)),
        set("first token", first_token),
        set("stream idle", dur(d.stream_idle)),
        set("stream max", dur(d.stream_max)),
    ]
}

fn settings(route: &Route) -> Vec<Setting> {
    let b = &route.breaker;
    let r = &route.retry_budget;
    let s = &route.streaming;
    let e = &route.equivalence;
    let set = |name: &str, value: String| Setting {
        name: name.to_owned(),
        value,
    };
    let hold = if s.hold_events == 0 {
        "commits at the first token".to_owned()
    } else {
        format!(
            "holds {} events (at most {} bytes, {}) before commit",
            s.hold_events,
            s.hold_bytes,
            dur(s.hold_for)
        )
    };
    let malformed = match s.malformed {
        MalformedEvents::Fail => "a malformed event ends that target's part",
        MalformedEvents::Skip => "malformed events are dropped",
    };
    let adaptive_hold = if s.adaptive_hold.enabled {
        format!(
            "holds {} events while {}% of an upstream's last streams (at least {}) broke",
            s.adaptive_hold.events,
            trim(s.adaptive_hold.failure_rate * 100.0),
            s.adaptive_hold.min_streams
        )
    } else {
        "no adaptive hold".to_owned()
    };
    let continuation = if s.continuation {
        "a cut stream is continued by a prefill-capable fallback"
    } else {
        "a cut stream ends with an explicit error event"
    };
    let gate = match e.mode {
        EquivalenceMode::Off => "off: any healthy target may answer".to_owned(),
        EquivalenceMode::Observe => format!(
            "observe: any healthy target may answer; certification (lower bound ≥ {}, n ≥ {}) is reported",
            trim(e.threshold),
            e.min_samples
        ),
        EquivalenceMode::Enforce => format!(
            "enforce: a fallback outside the primary group answers only when certified (Wilson lower bound ≥ {} over ≥ {} samples)",
            trim(e.threshold),
            e.min_samples
        ),
    };
    let shadow = if e.shadow.rate > 0.0 {
        format!(
            "{}% of successful primary requests shadowed, compared by {} (at most {} in flight, {}/min)",
            trim(e.shadow.rate * 100.0),
            e.method.name(),
            e.shadow.max_concurrent,
            e.shadow.requests_per_minute
        )
    } else {
        "no shadow sampling".to_owned()
    };
    let downgrades = match e.downgrades {
        Downgrades::Allow => "failover may leave the primary group",
        Downgrades::Forbid => "failover never leaves the primary group",
    };
    vec![
        set(
            "breaker",
            format!(
                "opens after {} consecutive failures, or {}% of at least {} attempts in {}; first probe after {}, doubling up to {}; {} probe(s) at a time",
                b.consecutive_failures,
                trim(b.failure_rate * 100.0),
                b.min_requests,
                dur(b.window),
                dur(b.cooldown),
                dur(b.max_cooldown),
                b.half_open_probes
            ),
        ),
        set(
            "retry budget",
            format!(
                "retries and repairs may add {}% of the route's requests over 10 s, plus {} per second",
                trim(r.ratio * 100.0),
                r.min_per_second
            ),
        ),
        set(
            "streaming",
            format!("{hold}; {malformed}; {adaptive_hold}; {continuation}"),
        ),
        set("equivalence", format!("{gate}; {downgrades}; {shadow}")),
        set(
            "contract",
            match &route.contract {
                Some(_) => "every answer is checked against the route's contract and the schema the client asks for".into(),
                None => "none".into(),
            },
        ),
    ]
}

/// A duration as people write it: `250ms`, `2s`, `1.5s`, `2m`, `1m30s`.
pub fn dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        return format!("{}s", trim(secs));
    }
    let whole = d.as_secs();
    let (m, s) = (whole / 60, whole % 60);
    match (m >= 60, s) {
        (true, _) => format!(
            "{}h{}",
            m / 60,
            if m % 60 == 0 {
                String::new()
            } else {
                format!("{}m", m % 60)
            }
        ),
        (false, 0) => format!("{m}m"),
        (false, s) => format!("{m}m{s}s"),
    }
}

/// A number without trailing zeros (`0.5`, `3`, `0.25`).
fn trim(x: f64) -> String {
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl Explanation {
    /// As the user asked for it.
    pub fn render(&self, output: Output, style: Style) -> Result<String, String> {
        if let Some(s) = structured(output, self)? {
            return Ok(s);
        }
        let mut out = String::new();
        let matched = if self.matched_by == "*" {
            " (matched by \"*\")".to_owned()
        } else {
            String::new()
        };
        out.push_str(&format!(
            "{} serves {:?}{matched}\n\n",
            style.bold(&format!("Route {}", self.route)),
            self.model
        ));
        out.push_str(&style.bold("Targets, in the order they are tried"));
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.order.map_or_else(|| "-".into(), |o| o.to_string()),
                    t.name.clone(),
                    t.provider.clone(),
                    t.model.clone(),
                    t.priority.to_string(),
                    t.weight.to_string(),
                    t.context_window
                        .map_or_else(|| "-".into(), |c| c.to_string()),
                    if t.skipped_for.is_empty() {
                        "-".into()
                    } else {
                        t.skipped_for.join(",")
                    },
                    t.credentials.clone(),
                    t.why.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "#",
                "TARGET",
                "PROVIDER",
                "MODEL",
                "PRIO",
                "WEIGHT",
                "CONTEXT",
                "SKIPPED FOR",
                "KEY FROM",
                "WHY",
            ],
            &rows,
            style,
        ));
        out.push_str(&format!(
            "\nWhen every target is unavailable: {}\n\n",
            self.last_resort
        ));
        out.push_str(&style.bold("What each failure class does"));
        out.push('\n');
        let rows: Vec<Vec<String>> = self
            .classes
            .iter()
            .map(|c| {
                let retries = if c.retry_only_as_last_option && c.retries > 0 {
                    format!("{} (last option)", c.retries)
                } else {
                    c.retries.to_string()
                };
                vec![
                    c.class.clone(),
                    retries,
                    c.backoff.clone(),
                    c.repairs.to_string(),
                    if c.failover {
                        style.good("yes")
                    } else {
                        style.warn("no")
                    },
                    c.breaker.clone(),
                    c.blame.clone(),
                    if c.overridden {
                        style.warn("route")
                    } else {
                        "default".into()
                    },
                    c.recognised.clone(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "CLASS",
                "RETRIES",
                "BACKOFF",
                "REPAIRS",
                "FAILOVER",
                "BREAKER",
                "BLAME",
                "PLAN",
                "RECOGNISED BY",
            ],
            &rows,
            style,
        ));
        out.push('\n');
        out.push_str(&style.bold("Deadlines"));
        out.push('\n');
        for d in &self.deadlines {
            out.push_str(&format!("  {:<12} {}\n", d.name, d.value));
        }
        out.push('\n');
        for s in &self.settings {
            out.push_str(&format!(
                "{} {}\n",
                style.bold(&format!("{:<13}", s.name)),
                s.value
            ));
        }
        if let Some(s) = &self.scenario {
            out.push('\n');
            let head = match s.status {
                Some(code) => format!("When {} answers {code}", s.target),
                None => format!("When {} fails with {}", s.target, s.class),
            };
            out.push_str(&style.bold(&head));
            out.push('\n');
            out.push_str(&format!(
                "  class        {} — {}\n",
                style.warn(&s.class),
                s.meaning
            ));
            if let Some(m) = &s.provider_message {
                out.push_str(&format!("  provider     {m:?}\n"));
            }
            if let Some(w) = &s.retry_after {
                out.push_str(&format!("  retry-after  {w}\n"));
            }
            out.push_str(&format!("  breaker      {}\n", s.breaker));
            for (i, step) in s.steps.iter().enumerate() {
                let label = if i == 0 { "next" } else { "" };
                out.push_str(&format!("  {label:<12} {}. {step}\n", i + 1));
            }
            out.push_str(&format!("  client sees  {}\n", s.client_sees));
            out.push_str(&format!(
                "  {}\n",
                style.dim(&format!("(assuming {})", s.assumes))
            ));
        }
        Ok(out)
    }
}

/// A class by its snake_case name.
pub fn parse_class(name: &str) -> Result<FailureClass, String> {
    FailureClass::ALL
        .iter()
        .copied()
        .find(|c| c.as_str() == name)
        .ok_or_else(|| {
            format!(
                "unknown failure class {name:?}; one of: {}",
                FailureClass::ALL.map(FailureClass::as_str).join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(dur(Duration::from_millis(250)), "250ms");
        assert_eq!(dur(Duration::from_millis(1500)), "1.5s");
        assert_eq!(dur(Duration::from_secs(120)), "2m");
        assert_eq!(dur(Duration::from_secs(90)), "1m30s");
        assert_eq!(dur(Duration::from_secs(3600)), "1h");
    }

    fn route(yaml_targets: &str, extra: &str) -> Route {
        let text = format!(
            "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {{name: r}}\nspec:\n  match: {{models: [m]}}\n  targets:\n{yaml_targets}{extra}"
        );
        let set = plumb_policy::parse_routes_file(&text).unwrap_or_else(|e| panic!("{e}"));
        set.routes()[0].as_ref().clone()
    }

    const TWO: &str = "    - {name: a, provider: openai, baseUrl: 'http://h/v1', model: x, credentials: {none: true}}\n    - {name: b, provider: anthropic, baseUrl: 'http://h', model: y, credentials: {none: true}, priority: 1}\n";

    #[test]
    fn a_cut_stream_is_continued_by_a_prefill_target_or_ends_with_an_error_event() {
        let r = route(TWO, "");
        let e = explain(&r, "m", Some(FailureClass::StreamInterrupted), None);
        let steps = e.scenario.unwrap().steps;
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(
            steps[0].starts_with("continue the answer on b"),
            "{steps:?}"
        );

        let r = route(TWO, "  streaming: {continuation: false}\n");
        let e = explain(&r, "m", Some(FailureClass::StreamInterrupted), None);
        let steps = e.scenario.unwrap().steps;
        assert!(
            steps[0].contains("streaming.continuation is off"),
            "{steps:?}"
        );
    }

    #[test]
    fn a_timeout_fails_over_at_once_while_another_target_is_left() {
        let r = route(TWO, "");
        let e = explain(&r, "m", Some(FailureClass::Timeout), None);
        let steps = e.scenario.unwrap().steps;
        assert_eq!(
            steps,
            ["fail over (retried only when no other target is left): b"],
            "{steps:?}"
        );
    }

    #[test]
    fn classes_parse_by_their_snake_case_names() {
        assert_eq!(parse_class("rate_limited"), Ok(FailureClass::RateLimited));
        assert!(parse_class("nope").is_err());
    }
}
