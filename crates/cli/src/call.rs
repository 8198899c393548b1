//! `plumb try`: one request through a sidecar, and its `x-plumb-*` headers in words — who
//! answered, after which failures, whether the answer is certified — plus, for a stream, the
//! final `: plumb …` comment the sidecar writes when a stream ends badly (DESIGN §14).
//!
//! Streams are read with the sidecar's own SSE reader (`plumb_sidecar::event::SseReader`).

use std::time::Duration;

use futures_util::StreamExt;
use plumb_sidecar::event::SseReader;
use serde::Serialize;
use serde_json::{Value, json};

use crate::args::Api;
use crate::exit::{self, Failure};
use crate::render::{Output, Style, mask, structured};

/// What to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// The sidecar, `http://127.0.0.1:15400` (a trailing `/v1` is accepted).
    pub url: String,
    /// The model asked for.
    pub model: String,
    /// The prompt.
    pub prompt: String,
    /// Stream the answer.
    pub stream: bool,
    /// The API family.
    pub api: Api,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// The caller's own key, if any.
    pub api_key: Option<String>,
    /// Give up after this long.
    pub timeout: Duration,
}

/// What came back.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The HTTP status.
    pub status: u16,
    /// `x-plumb-route`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `x-plumb-served-by`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
    /// `x-plumb-attempts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// `x-plumb-failure-classes`, in order.
    pub failure_classes: Vec<String>,
    /// `x-plumb-equivalence`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equivalence: Option<String>,
    /// The model the answer names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The answer's text.
    pub answer: String,
    /// The error message, when the request failed (or the stream ended with an error event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `: plumb …` comment lines of the stream.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plumb_comments: Vec<String>,
    /// The key sent, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl Outcome {
    /// Whether the request succeeded: a 2xx, and for a stream no error event.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status) && self.error.is_none()
    }
}

/// Sends the request. `on_text` receives the answer's text as it arrives (streams piece by
/// piece).
pub async fn send(req: &Request, mut on_text: impl FnMut(&str)) -> Result<Outcome, Failure> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(req.timeout)
        .no_proxy()
        .build()
        .map_err(|e| Failure::new(exit::FAILED, format!("cannot build an HTTP client: {e}")))?;
    let base = req.url.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let messages = json!([{"role": "user", "content": req.prompt}]);
    let mut builder = match req.api {
        Api::Openai => {
            let mut body =
                json!({"model": req.model, "messages": messages, "max_tokens": req.max_tokens});
            if req.stream {
                body["stream"] = json!(true);
            }
            let b = client
                .post(format!("{base}/v1/chat/completions"))
                .json(&body);
            match &req.api_key {
                Some(k) => b.bearer_auth(k),
                None => b,
            }
        }
        Api::Anthropic => {
            let mut body =
                json!({"model": req.model, "messages": messages, "max_tokens": req.max_tokens});
            if req.stream {
                body["stream"] = json!(true);
            }
            let b = client
                .post(format!("{base}/v1/messages"))
                .header("anthropic-version", "2023-06-01")
                .json(&body);
            match &req.api_key {
                Some(k) => b.header("x-api-key", k),
                None => b,
            }
        }
        Api::Responses => {
            let mut body = json!({"model": req.model, "input": req.prompt,
                "max_output_tokens": req.max_tokens});
            if req.stream {
                body["stream"] = json!(true);
            }
            let b = client.post(format!("{base}/v1/responses")).json(&body);
            match &req.api_key {
                Some(k) => b.bearer_auth(k),
                None => b,
            }
        }
    };
    if req.stream {
        builder = builder.header("accept", "text/event-stream");
    }
    let response = builder.send().await.map_err(|e| {
        Failure::new(
            exit::UNAVAILABLE,
            format!("cannot reach the sidecar at {base}: {}", causes(&e)),
        )
    })?;
    let h = response.headers();
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut outcome = Outcome {
        status: response.status().as_u16(),
        route: get("x-plumb-route"),
        served_by: get("x-plumb-served-by"),
        attempts: get("x-plumb-attempts").and_then(|a| a.parse().ok()),
        failure_classes: get("x-plumb-failure-classes")
            .map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        equivalence: get("x-plumb-equivalence"),
        api_key: req.api_key.as_deref().map(mask),
        ..Outcome::default()
    };
    let is_stream = get("content-type").is_some_and(|c| c.starts_with("text/event-stream"));
    if is_stream {
        let mut reader = SseReader::default();
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    outcome.error = Some(format!("the stream broke: {e}"));
                    break;
                }
            };
            reader.push(&chunk);
            while let Some(event) = reader.next_event() {
                for line in String::from_utf8_lossy(&event.bytes).lines() {
                    if let Some(comment) = line.strip_prefix(": plumb") {
                        outcome.plumb_comments.push(format!("plumb{comment}"));
                    }
                }
                if event.data.is_empty() || event.data == "[DONE]" {
                    continue;
                }
                let Ok(v) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if let Some(text) = stream_text(req.api, &v) {
                    outcome.answer.push_str(&text);
                    on_text(&text);
                }
                if outcome.model.is_none() {
                    outcome.model = answer_model(req.api, &v);
                }
                if let Some(e) = error_message(&v).or_else(|| stream_error(req.api, &v)) {
                    outcome.error = Some(e);
                }
            }
        }
    } else {
        let text = response.text().await.map_err(|e| {
            Failure::new(exit::UNAVAILABLE, format!("reading the answer failed: {e}"))
        })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&outcome.status) {
            outcome.answer = whole_text(req.api, &v);
            outcome.model = answer_model(req.api, &v);
            on_text(&outcome.answer);
        } else {
            outcome.error = Some(
                error_message(&v).unwrap_or_else(|| v.as_str().unwrap_or_default().to_owned()),
            );
        }
    }
    Ok(outcome)
}

/// An error and its causes, `: `-separated (reqwest's own message hides "connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn stream_text(api: Api, v: &Value) -> Option<String> {
    match api {
        Api::Openai => v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .map(str::to_owned),
        Api::Anthropic => (v.get("type").and_then(Value::as_str) == Some("content_block_delta"))
            .then(|| v.pointer("/delta/text").and_then(Value::as_str))
            .flatten()
            .map(str::to_owned),
        Api::Responses => (v.get("type").and_then(Value::as_str)
            == Some("response.output_text.delta"))
        .then(|| v.get("delta").and_then(Value::as_str))
        .flatten()
        .map(str::to_owned),
    }
}

/// A Responses stream's `error` event or `response.failed`.
fn stream_error(api: Api, v: &Value) -> Option<String> {
    match (api, v.get("type").and_then(Value::as_str)) {
        (Api::Responses, Some("error")) => v.get("message").and_then(Value::as_str),
        (Api::Responses, Some("response.failed")) => {
            v.pointer("/response/error/message").and_then(Value::as_str)
        }
        (Api::Openai | Api::Anthropic | Api::Responses, _) => None,
    }
    .map(str::to_owned)
}

fn whole_text(api: Api, v: &Value) -> String {
    match api {
        Api::Openai => v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Api::Anthropic => v
            .get("content")
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<String>()
            })
            .unwrap_or_default(),
        Api::Responses => v
            .get("output")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|o| o.get("type").and_then(Value::as_str) == Some("message"))
            .flat_map(|o| {
                o.get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect(),
    }
}

fn answer_model(api: Api, v: &Value) -> Option<String> {
    let m = match api {
        Api::Openai => v.get("model"),
        Api::Anthropic => v.get("model").or_else(|| v.pointer("/message/model")),
        Api::Responses => v.get("model").or_else(|| v.pointer("/response/model")),
    };
    m.and_then(Value::as_str).map(str::to_owned)
}

fn error_message(v: &Value) -> Option<String> {
    v.pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `x-plumb-equivalence` in words.
fn equivalence_words(value: &str) -> String {
    let mut parts = value.split(';').map(str::trim);
    let kind = parts.next().unwrap_or_default();
    let fields: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| *v)
            .unwrap_or("?")
    };
    match kind {
        "primary" => "the primary answered: nothing to certify".to_owned(),
        "same-model" => "a target declared to run the same model answered".to_owned(),
        "not-required" => "the route does not ask for equivalence".to_owned(),
        "certified" => format!(
            "a certified fallback answered (agreement {}, lower bound {}, {} samples)",
            field("agreement"),
            field("lower"),
            field("n")
        ),
        "uncertified" => format!(
            "an UNCERTIFIED fallback answered ({} samples): its answers were not shown to agree with the primary's",
            field("n")
        ),
        other => format!("{other} (as the sidecar reported it)"),
    }
}

impl Outcome {
    /// As the user asked for it. In table form the answer itself is not repeated (it was
    /// printed as it arrived) unless `with_answer`.
    pub fn render(
        &self,
        output: Output,
        style: Style,
        with_answer: bool,
    ) -> Result<String, String> {
        if let Some(s) = structured(output, self)? {
            return Ok(s);
        }
        let mut out = String::new();
        if with_answer && !self.answer.is_empty() {
            out.push_str(&self.answer);
            out.push('\n');
        }
        out.push('\n');
        let verdict = if self.ok() {
            style.good(&format!("HTTP {}", self.status))
        } else {
            style.bad(&format!("HTTP {}", self.status))
        };
        out.push_str(&verdict);
        if let Some(r) = &self.route {
            out.push_str(&format!(" · route {r}"));
        }
        out.push('\n');
        let served = match (&self.served_by, &self.model) {
            (Some(t), Some(m)) => format!("answered by target {t} (model {m})"),
            (Some(t), None) => format!("answered by target {t}"),
            (None, _) if self.ok() => "no x-plumb-served-by header: was this a sidecar?".into(),
            (None, _) => "no target answered".into(),
        };
        out.push_str(&format!("  {served}\n"));
        let attempts = self.attempts.unwrap_or(0);
        let history = if self.failure_classes.is_empty() {
            if attempts <= 1 {
                "on the first attempt".to_owned()
            } else {
                format!("after {attempts} attempts")
            }
        } else {
            format!(
                "after {} failed attempt{}: {} ({attempts} attempts in all)",
                self.failure_classes.len(),
                if self.failure_classes.len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.failure_classes.join(" → ")
            )
        };
        out.push_str(&format!("  {history}\n"));
        if let Some(e) = &self.equivalence {
            let words = equivalence_words(e);
            let words = if e.starts_with("uncertified") {
                style.warn(&words)
            } else {
                words
            };
            out.push_str(&format!("  {words}\n"));
        }
        if let Some(e) = &self.error {
            out.push_str(&format!("  {} {e}\n", style.bad("error:")));
        }
        for c in &self.plumb_comments {
            out.push_str(&format!("  {} {c}\n", style.warn("stream:")));
        }
        if let Some(k) = &self.api_key {
            out.push_str(&format!("  {}\n", style.dim(&format!("sent key {k}"))));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalence_headers_read_as_sentences() {
        assert_eq!(
            equivalence_words("certified; agreement=0.97; lower=0.93; n=212"),
            "a certified fallback answered (agreement 0.97, lower bound 0.93, 212 samples)"
        );
        assert!(equivalence_words("uncertified; n=3").contains("3 samples"));
        assert!(equivalence_words("primary").contains("primary"));
    }

    #[test]
    fn failures_are_listed_in_order() {
        let o = Outcome {
            status: 200,
            served_by: Some("fallback".into()),
            attempts: Some(3),
            failure_classes: vec!["rate_limited".into(), "overloaded".into()],
            ..Outcome::default()
        };
        let text = o.render(Output::Table, Style::plain(), false).unwrap();
        assert!(
            text.contains("after 2 failed attempts: rate_limited → overloaded (3 attempts in all)"),
            "{text}"
        );
    }
}
