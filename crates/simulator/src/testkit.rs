//! Helpers for tests that read the simulator's (or the sidecar's) streams: parse server-sent
//! events and collect the text they carry. Only built with the `test-util` feature.

use serde_json::Value;

/// One parsed server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    /// The `event:` name, if any.
    pub event: Option<String>,
    /// The `data:` payload.
    pub data: String,
}

impl Sse {
    /// The payload as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }
}

/// Splits a stream's text into events, as the SSE format reads them: CRLF or LF lines, one
/// optional space after the field's colon, several `data:` lines joined with newlines.
/// Comment-only blocks are left out; a final block without its blank line (a cut stream) is
/// kept.
pub fn parse_sse(text: &str) -> Vec<Sse> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter(|b| {
            b.lines()
                .any(|l| l.starts_with("data:") || l.starts_with("event:"))
        })
        .map(|block| {
            let mut event = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event:") {
                    event = Some(e.trim().to_owned());
                } else if let Some(d) = line.strip_prefix("data:") {
                    if !data.is_empty() {
                        data.push('\n');
                    }
                    data.push_str(d.strip_prefix(' ').unwrap_or(d));
                }
            }
            Sse { event, data }
        })
        .collect()
}

/// Reads a streamed body to its end, keeping what arrived before an error.
pub async fn read_stream(mut resp: reqwest::Response) -> (String, Option<reqwest::Error>) {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => out.extend_from_slice(&c),
            Ok(None) => return (String::from_utf8_lossy(&out).into_owned(), None),
            Err(e) => return (String::from_utf8_lossy(&out).into_owned(), Some(e)),
        }
    }
}

/// The text an OpenAI stream carried.
pub fn openai_stream_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter_map(Sse::json)
        .filter_map(|v| {
            v.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// The text an Anthropic stream carried.
pub fn anthropic_stream_text(events: &[Sse]) -> String {
    events
        .iter()
        .filter_map(Sse::json)
        .filter_map(|v| {
            v.pointer("/delta/text")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}
