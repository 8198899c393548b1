//! `plumb-fuzz`: what the fuzz targets (`fuzz_targets/`) and the corpus seeder
//! (`examples/seed.rs`) share — how an input is cut into stream frames, how a classify input
//! encodes a whole HTTP response, and the route whose targets requests are translated for.
//!
//! Outside the workspace and built only on nightly by `cargo fuzz`; nothing in Plumb depends on
//! it. Harness code: it may panic on what cannot happen (a fixed route that does not compile).

use http::{HeaderMap, HeaderName, HeaderValue};
use plumb_policy::Route;

/// The `created` timestamp translations are given (seconds since the epoch).
pub const CREATED: u64 = 1_700_000_000;

/// A fixed "now" for everything that takes time as an argument (2025-06-15T12:00:00Z, ms).
pub const NOW_MS: i64 = 1_750_000_000_000;

/// Cuts `bytes` into frames the way a network might: lengths from 1 to 64 bytes drawn from a
/// small generator seeded with `seed`; seed 0 keeps the bytes whole.
pub fn frames(bytes: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![bytes];
    }
    let mut state = u32::from(seed);
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // A 32-bit LCG (Numerical Recipes): cheap, and every seed gives another pattern.
        state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let len = ((state >> 24) as usize % 64 + 1).min(rest.len());
        let (head, tail) = rest.split_at(len);
        out.push(head);
        rest = tail;
    }
    out
}

/// An HTTP response as the classify target reads its input.
#[derive(Debug)]
pub struct Response<'a> {
    /// The status code of the first line (0 when it has none).
    pub status: u16,
    /// The header lines that make a valid header.
    pub headers: HeaderMap,
    /// Everything after the blank line.
    pub body: &'a [u8],
}

/// Reads `HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\n\r\n{"error": …}` (what
/// `curl -i` prints; `\n` line ends too). Nothing is refused: a line that is not a header is
/// skipped, and input without a blank line is all head.
pub fn response(data: &[u8]) -> Response<'_> {
    let (head, body) = match find(data, b"\r\n\r\n") {
        Some(i) => (&data[..i], &data[i + 4..]),
        None => match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &data[data.len()..]),
        },
    };
    let mut lines = head.split(|b| *b == b'\n');
    let status = lines
        .next()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or(0);
    let mut headers = HeaderMap::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii();
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

/// The classify input for a response: the inverse of [`response`].
pub fn encode_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A route with a target of every provider kind, and a contract that reads the request (its
/// schema and a rule over `request`), compiled by the real policy code.
pub fn route() -> Route {
    let spec = serde_json::json!({
        "match": {"models": ["fuzz"]},
        "targets": [
            {"name": "openai", "provider": "openai", "baseUrl": "https://api.openai.com/v1",
             "model": "gpt-4o", "credentials": {"none": true}},
            {"name": "claude", "provider": "anthropic", "baseUrl": "https://api.anthropic.com",
             "model": "claude-sonnet-4-5", "credentials": {"none": true}, "priority": 1,
             "capabilities": {"prefill": true}},
            {"name": "azure", "provider": "azure-openai", "baseUrl": "https://x.openai.azure.com",
             "model": "gpt-4o-prod", "apiVersion": "2024-10-21", "credentials": {"none": true},
             "priority": 2},
            {"name": "vllm", "provider": "openai-compatible", "baseUrl": "http://vllm:8000/v1",
             "model": "meta-llama/Llama-3.1-8B-Instruct", "credentials": {"none": true},
             "priority": 3}
        ],
        "contract": {
            "requestSchema": true,
            "maxLength": 10000,
            "rules": [{"expression": "size(text) <= 10000 && has(request.model)",
                       "message": "fits"}]
        }
    });
    let spec = serde_json::from_value(spec).expect("the fuzz route is an LlmRoute spec");
    plumb_policy::compile("fuzz", "route", &spec).expect("the fuzz route compiles")
}
