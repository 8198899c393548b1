//! Google's Gemini API wire format (`generativelanguage.googleapis.com`):
//! `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`, keyed by
//! `x-goog-api-key`.

use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Finish};
use crate::wire::{Event, EventKind};

/// What a Gemini path asks for: the model, and whether the answer streams.
pub fn route(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/v1beta/models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/')).then(|| (model.to_owned(), stream))
}

/// Reads a `generateContent` request for `model` (named in the path).
pub fn parse(body: &Value, model: &str, stream: bool) -> Result<ChatRequest, String> {
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .filter(|c| !c.is_empty())
        .ok_or("* GenerateContentRequest.contents: contents is not specified")?;
    let mut prompt = String::new();
    if let Some(parts) = body
        .pointer("/systemInstruction/parts")
        .and_then(Value::as_array)
    {
        texts(parts, &mut prompt);
    }
    for c in contents {
        match c.get("role").and_then(Value::as_str) {
            None | Some("user" | "model") => {}
            Some(other) => {
                return Err(format!(
                    "Please use a valid role: user, model. (got {other:?})"
                ));
            }
        }
        let parts = c
            .get("parts")
            .and_then(Value::as_array)
            .filter(|p| !p.is_empty())
            .ok_or("* GenerateContentRequest.contents.parts: contents.parts must not be empty.")?;
        texts(parts, &mut prompt);
    }
    let last = contents.last();
    // A conversation ending with a function's response is answered in text.
    let user_turn = last.and_then(|c| c.get("role")).and_then(Value::as_str) != Some("model")
        && !last
            .and_then(|c| c.get("parts"))
            .and_then(Value::as_array)
            .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let config = body.get("generationConfig");
    let get = |k: &str| config.and_then(|c| c.get(k));
    let schema = get("responseJsonSchema")
        .or_else(|| get("responseSchema"))
        .cloned();
    let json_mime = get("responseMimeType").and_then(Value::as_str) == Some("application/json");
    Ok(ChatRequest {
        model: model.to_owned(),
        stream,
        include_usage: true,
        max_tokens: get("maxOutputTokens")
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32),
        prompt,
        messages: contents.len(),
        json_object: json_mime && schema.is_none(),
        schema,
        tool_call: choose_tool(body, user_turn),
        prefill: None,
        store: false,
        background: false,
        previous_response_id: None,
    })
}

/// The text of parts: text parts and function responses (as JSON).
fn texts(parts: &[Value], out: &mut String) {
    for p in parts {
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            out.push_str(t);
            out.push('\n');
        }
        if let Some(r) = p.pointer("/functionResponse/response") {
            out.push_str(&r.to_string());
            out.push('\n');
        }
    }
}

/// The function the answer calls, if any: `ANY` (restricted to `allowedFunctionNames`), or
/// `AUTO` (the default) on a user turn.
fn choose_tool(body: &Value, user_turn: bool) -> Option<(String, Value)> {
    let declarations: Vec<(String, Value)> = body
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("functionDeclarations")?.as_array())
        .flatten()
        .filter_map(|f| {
            Some((
                f.get("name")?.as_str()?.to_owned(),
                f.get("parametersJsonSchema")
                    .or_else(|| f.get("parameters"))
                    .cloned()
                    .unwrap_or(json!({"type": "object"})),
            ))
        })
        .collect();
    let config = body.pointer("/toolConfig/functionCallingConfig");
    let allowed: Option<Vec<&str>> = config
        .and_then(|c| c.get("allowedFunctionNames"))
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect());
    let pick = || {
        declarations
            .iter()
            .find(|(n, _)| allowed.as_ref().is_none_or(|a| a.contains(&n.as_str())))
            .cloned()
    };
    match config.and_then(|c| c.get("mode")).and_then(Value::as_str) {
        Some("NONE") => None,
        Some("ANY") => pick(),
        _ if user_turn => pick(),
        _ => None,
    }
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::ToolCall => "STOP",
        Finish::Length => "MAX_TOKENS",
    }
}

fn usage(a: &Answer) -> Value {
    let mut u = json!({
        "promptTokenCount": a.prompt_tokens,
        "candidatesTokenCount": a.completion_tokens(),
        "totalTokenCount": a.prompt_tokens + a.completion_tokens() + a.thinking.len() as u32,
    });
    if !a.thinking.is_empty() {
        u["thoughtsTokenCount"] = json!(a.thinking.len());
    }
    u
}

/// The answer's part: its text or its function call.
fn answer_part(a: &Answer) -> Value {
    match &a.content {
        Content::Text(t) => json!({"text": t}),
        Content::Tool {
            name, arguments, ..
        } => {
            let args: Value = serde_json::from_str(arguments).unwrap_or(json!({}));
            json!({"functionCall": {"name": name, "args": args}})
        }
    }
}

/// A complete `GenerateContentResponse`.
pub fn whole(a: &Answer, id: &str) -> Value {
    let mut parts = Vec::new();
    if !a.thinking.is_empty() {
        parts.push(json!({"text": a.thinking.concat(), "thought": true}));
    }
    parts.push(answer_part(a));
    json!({
        "candidates": [{
            "content": {"parts": parts, "role": "model"},
            "finishReason": finish_reason(a.finish),
            "index": 0,
        }],
        "usageMetadata": usage(a),
        "modelVersion": a.model,
        "responseId": id,
    })
}

/// A 200 whose answer a safety filter stopped: a candidate with `finishReason: SAFETY` and
/// no content, as Gemini sends it.
pub fn blocked(model: &str, id: &str, prompt_tokens: u32) -> Value {
    json!({
        "candidates": [{
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true},
                {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
            ],
        }],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens},
        "modelVersion": model,
        "responseId": id,
    })
}

/// One `data:` event of a stream, framed as Google frames them (CRLF).
fn event(data: &Value, kind: EventKind) -> Event {
    Event {
        bytes: bytes::Bytes::from(format!("data: {data}\r\n\r\n")),
        kind,
    }
}

/// The events of a streamed answer: each a partial `GenerateContentResponse` — thoughts,
/// then the answer piece by piece (a function call comes whole, in one event), then the
/// finish reason with the usage. Gemini sends no end marker.
pub fn stream(a: &Answer, id: &str) -> Vec<Event> {
    let partial = |parts: Value| {
        json!({
            "candidates": [{"content": {"parts": parts, "role": "model"}, "index": 0}],
            "usageMetadata": {"promptTokenCount": a.prompt_tokens, "totalTokenCount": a.prompt_tokens},
            "modelVersion": a.model,
            "responseId": id,
        })
    };
    let mut events = Vec::with_capacity(a.pieces.len() + a.thinking.len() + 1);
    for t in &a.thinking {
        events.push(event(
            &partial(json!([{"text": t, "thought": true}])),
            EventKind::Thinking,
        ));
    }
    match &a.content {
        Content::Text(_) => {
            for p in &a.pieces {
                events.push(event(&partial(json!([{"text": p}])), EventKind::Token));
            }
        }
        Content::Tool { .. } => {
            events.push(event(&partial(json!([answer_part(a)])), EventKind::Token));
        }
    }
    events.push(event(
        &json!({
            "candidates": [{
                "content": {"parts": [{"text": ""}], "role": "model"},
                "finishReason": finish_reason(a.finish),
                "index": 0,
            }],
            "usageMetadata": usage(a),
            "modelVersion": a.model,
            "responseId": id,
        }),
        EventKind::Tail,
    ));
    events
}

/// The stream of an answer a safety filter stopped at once.
pub fn blocked_stream(model: &str, id: &str, prompt_tokens: u32) -> Vec<Event> {
    vec![event(&blocked(model, id, prompt_tokens), EventKind::Tail)]
}

/// An event that looks like Gemini's but is not JSON.
pub const MALFORMED_EVENT: &[u8] =
    b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"lo\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_model_and_whether_it_streams() {
        assert_eq!(
            route("/v1beta/models/gemini-2.5-flash:generateContent"),
            Some(("gemini-2.5-flash".to_owned(), false))
        );
        assert_eq!(
            route("/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
            Some(("gemini-2.5-flash".to_owned(), true))
        );
        assert_eq!(route("/v1beta/models/m:countTokens"), None);
        assert_eq!(route("/v1/models/m:generateContent"), None);
    }

    #[test]
    fn a_request_reads_its_prompt_schema_and_forced_function() {
        let body = json!({
            "systemInstruction": {"parts": [{"text": "be brief"}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [
                {"name": "a", "parametersJsonSchema": {"type": "object"}},
                {"name": "b", "parametersJsonSchema": {"type": "object", "properties": {"x": {"type": "integer"}}}}
            ]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["b"]}},
            "generationConfig": {"maxOutputTokens": 9, "responseMimeType": "application/json",
                "responseJsonSchema": {"type": "object"}}
        });
        let r = parse(&body, "m", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.prompt, "be brief\nhi\n");
        assert_eq!(r.max_tokens, Some(9));
        assert!(r.stream && !r.json_object);
        assert_eq!(r.schema, Some(json!({"type": "object"})));
        assert_eq!(r.tool_call.map(|(n, _)| n).as_deref(), Some("b"));
        assert!(parse(&json!({"contents": []}), "m", false).is_err());
    }

    #[test]
    fn a_function_response_turn_is_answered_in_text() {
        let body = json!({
            "contents": [
                {"role": "user", "parts": [{"text": "x"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"output": "sunny"}}}]}
            ],
            "tools": [{"functionDeclarations": [{"name": "w"}]}]
        });
        let r = parse(&body, "m", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.tool_call, None);
        assert!(r.prompt.contains("sunny"));
    }
}
