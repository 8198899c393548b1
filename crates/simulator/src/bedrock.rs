//! AWS Bedrock's Converse wire format: `POST /model/{modelId}/converse` (JSON) and
//! `/converse-stream` (`application/vnd.amazon.eventstream` frames, written with
//! `aws-smithy-eventstream`), signed with SigV4 (see [`crate::aws`]) or carrying a Bedrock
//! API key as `Authorization: Bearer`. Errors are `{"message"}` bodies named by
//! `x-amzn-errortype`; mid-stream they are `:message-type: exception` frames.

use aws_smithy_eventstream::frame::write_message_to;
use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::chat::{Answer, ChatRequest, Content, Finish};
use crate::fault::Fault;
use crate::wire::{Event, EventKind, ProviderError};

/// The content type of a ConverseStream body.
pub const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

/// What a Bedrock path asks for: the model id (percent-decoded), and whether it streams.
pub fn route(path: &str) -> Option<(String, bool)> {
    let rest = path.strip_prefix("/model/")?;
    let (model, op) = rest.rsplit_once('/')?;
    let stream = match op {
        "converse" => false,
        "converse-stream" => true,
        _ => return None,
    };
    (!model.is_empty() && !model.contains('/'))
        .then(|| (crate::server::percent_decode(model), stream))
}

/// Reads a `Converse` request for `model` (named in the path).
pub fn parse(body: &Value, model: &str, stream: bool) -> Result<ChatRequest, String> {
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or("1 validation error detected: Value at 'messages' failed to satisfy constraint: Member must not be null")?;
    let mut prompt = String::new();
    for s in body
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(t) = s.get("text").and_then(Value::as_str) {
            prompt.push_str(t);
            prompt.push('\n');
        }
    }
    for m in messages {
        match m.get("role").and_then(Value::as_str) {
            Some("user" | "assistant") => {}
            _ => {
                return Err(
                    "Invalid role: the role of a message must be user or assistant".to_owned(),
                );
            }
        }
        let content = m
            .get("content")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
            .ok_or("The content field in the Message object is empty.")?;
        texts(content, &mut prompt);
    }
    if messages
        .last()
        .and_then(|m| m.get("role"))
        .and_then(Value::as_str)
        == Some("assistant")
    {
        // Claude on Bedrock takes a prefill; the simulator answers afresh, as most models do.
    }
    let last_results = messages
        .last()
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    let get = |k: &str| body.get("inferenceConfig").and_then(|c| c.get(k));
    Ok(ChatRequest {
        model: model.to_owned(),
        stream,
        include_usage: true,
        max_tokens: get("maxTokens")
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32),
        prompt,
        messages: messages.len(),
        schema: None,
        json_object: false,
        tool_call: choose_tool(body, !last_results),
        prefill: None,
        store: false,
        background: false,
        previous_response_id: None,
    })
}

/// The texts of content blocks: text, and tool results' text.
fn texts(content: &[Value], out: &mut String) {
    for b in content {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            out.push_str(t);
            out.push('\n');
        }
        if let Some(r) = b.pointer("/toolResult/content").and_then(Value::as_array) {
            texts(r, out);
        }
    }
}

/// The tool the answer calls: `toolChoice.tool` names it, `any` picks the first, `auto` (the
/// default) calls the first on a turn that is not a tool result.
fn choose_tool(body: &Value, fresh_turn: bool) -> Option<(String, Value)> {
    let tools: Vec<(String, Value)> = body
        .pointer("/toolConfig/tools")?
        .as_array()?
        .iter()
        .filter_map(|t| {
            let spec = t.get("toolSpec")?;
            Some((
                spec.get("name")?.as_str()?.to_owned(),
                spec.pointer("/inputSchema/json")
                    .cloned()
                    .unwrap_or(json!({"type": "object"})),
            ))
        })
        .collect();
    let choice = body.pointer("/toolConfig/toolChoice");
    if let Some(name) = choice
        .and_then(|c| c.pointer("/tool/name"))
        .and_then(Value::as_str)
    {
        return tools.into_iter().find(|(n, _)| n == name);
    }
    if choice.is_some_and(|c| c.get("any").is_some()) || fresh_turn {
        return tools.into_iter().next();
    }
    None
}

fn stop_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop => "end_turn",
        Finish::ToolCall => "tool_use",
        Finish::Length => "max_tokens",
    }
}

fn usage(a: &Answer) -> Value {
    let output = a.completion_tokens() + a.thinking.len() as u32;
    json!({"inputTokens": a.prompt_tokens, "outputTokens": output, "totalTokens": a.prompt_tokens + output})
}

/// A complete `Converse` response.
pub fn whole(a: &Answer) -> Value {
    let mut content = Vec::new();
    if !a.thinking.is_empty() {
        content.push(json!({"reasoningContent": {"reasoningText": {"text": a.thinking.concat(), "signature": "sim-signature"}}}));
    }
    match &a.content {
        Content::Text(t) => content.push(json!({"text": t})),
        Content::Tool {
            id,
            name,
            arguments,
        } => {
            let input: Value = serde_json::from_str(arguments).unwrap_or(json!({}));
            content.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
        }
    }
    json!({
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason(a.finish),
        "usage": usage(a),
        "metrics": {"latencyMs": 1},
    })
}

/// A 200 whose answer a guardrail stopped.
pub fn blocked() -> Value {
    json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Sorry, the model cannot answer this question."}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1},
        "metrics": {"latencyMs": 1},
    })
}

/// One frame.
fn frame(headers: &[(&str, &str)], payload: &Value) -> Bytes {
    let mut m = Message::new(Bytes::from(payload.to_string()));
    for (k, v) in headers {
        m = m.add_header(Header::new(
            (*k).to_owned(),
            HeaderValue::String((*v).to_owned().into()),
        ));
    }
    let mut out = Vec::new();
    // Writing to a Vec fails only for headers or payloads past the format's limits.
    let _ = write_message_to(&m, &mut out);
    Bytes::from(out)
}

/// An event frame of the stream.
fn event(kind: &str, payload: &Value, place: EventKind) -> Event {
    Event {
        bytes: frame(
            &[
                (":event-type", kind),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            payload,
        ),
        kind: place,
    }
}

/// The frames of a streamed answer: `messageStart`, reasoning and text deltas (or a tool
/// use's start and input), `contentBlockStop`, `messageStop` with the stop reason, and
/// `metadata` with the usage.
pub fn stream(a: &Answer) -> Vec<Event> {
    let mut events = vec![event(
        "messageStart",
        &json!({"role": "assistant", "p": "abcd"}),
        EventKind::Preamble,
    )];
    let mut index = 0;
    if !a.thinking.is_empty() {
        for t in &a.thinking {
            events.push(event(
                "contentBlockDelta",
                &json!({"contentBlockIndex": index, "delta": {"reasoningContent": {"text": t}}}),
                EventKind::Thinking,
            ));
        }
        events.push(event(
            "contentBlockStop",
            &json!({"contentBlockIndex": index}),
            EventKind::Thinking,
        ));
        index += 1;
    }
    match &a.content {
        Content::Text(_) => {
            for p in &a.pieces {
                events.push(event(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"text": p}}),
                    EventKind::Token,
                ));
            }
        }
        Content::Tool { id, name, .. } => {
            events.push(event(
                "contentBlockStart",
                &json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
                EventKind::Token,
            ));
            for p in &a.pieces {
                events.push(event(
                    "contentBlockDelta",
                    &json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}}),
                    EventKind::Token,
                ));
            }
        }
    }
    events.push(event(
        "contentBlockStop",
        &json!({"contentBlockIndex": index}),
        EventKind::Tail,
    ));
    events.push(event(
        "messageStop",
        &json!({"stopReason": stop_reason(a.finish)}),
        EventKind::Tail,
    ));
    events.push(event(
        "metadata",
        &json!({"usage": usage(a), "metrics": {"latencyMs": 1}}),
        EventKind::Terminator,
    ));
    events
}

/// The stream of an answer a guardrail stopped.
pub fn blocked_stream() -> Vec<Event> {
    vec![
        event(
            "messageStart",
            &json!({"role": "assistant"}),
            EventKind::Preamble,
        ),
        event(
            "messageStop",
            &json!({"stopReason": "guardrail_intervened"}),
            EventKind::Tail,
        ),
        event(
            "metadata",
            &json!({"usage": {"inputTokens": 1, "outputTokens": 0, "totalTokens": 1}}),
            EventKind::Terminator,
        ),
    ]
}

/// A frame whose payload is not JSON.
pub fn malformed_event() -> Bytes {
    let mut m = Message::new(Bytes::from_static(
        b"{\"contentBlockIndex\": 0, \"delta\": {\"text\": \"lo",
    ));
    for (k, v) in [
        (":event-type", "contentBlockDelta"),
        (":message-type", "event"),
    ] {
        m = m.add_header(Header::new(k, HeaderValue::String(v.into())));
    }
    let mut out = Vec::new();
    let _ = write_message_to(&m, &mut out);
    Bytes::from(out)
}

/// The exception Bedrock names for an error of `status` (and the simulator's words for it).
pub fn exception(err: &ProviderError) -> &'static str {
    match err.status {
        429 if err.openai_code == Some("quota") => "ServiceQuotaExceededException",
        429 => "ThrottlingException",
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        408 => "ModelTimeoutException",
        424 => "ModelErrorException",
        503 | 529 => "ServiceUnavailableException",
        400..=499 => "ValidationException",
        _ => "InternalServerException",
    }
}

/// The error body: `{"message": …}` (the exception goes in `x-amzn-errortype`).
pub fn body(err: &ProviderError) -> Value {
    json!({"message": err.message})
}

/// The error as an exception frame, mid-stream.
pub fn exception_frame(err: &ProviderError) -> Event {
    let name = exception(err);
    let mut lower = name.to_owned();
    if let Some(first) = lower.get_mut(0..1) {
        first.make_ascii_lowercase();
    }
    Event {
        bytes: frame(
            &[
                (":exception-type", &lower),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            &json!({"message": err.message}),
        ),
        kind: EventKind::Tail,
    }
}

/// The error a status fault produces from Bedrock, in its words.
pub fn for_fault(
    fault: &Fault,
    model: &str,
    key: Option<&str>,
    context: (u32, u32),
) -> Option<ProviderError> {
    let e = |status: u16, message: String| ProviderError {
        status,
        ..ProviderError::bad_request(message)
    };
    Some(match fault {
        Fault::RateLimited { .. } => e(
            429,
            "Too many requests, please wait before trying again.".to_owned(),
        ),
        Fault::Unauthorized => e(
            403,
            "The security token included in the request is invalid.".to_owned(),
        ),
        Fault::Forbidden => e(
            403,
            "You don't have access to the model with the specified model ID.".to_owned(),
        ),
        Fault::ModelNotFound => e(
            404,
            format!(
                "Could not resolve the foundation model from the provided model identifier {model}."
            ),
        ),
        Fault::ContextLength => {
            let (window, asked) = context;
            e(
                400,
                format!("Input is too long for requested model. ({asked} tokens > {window})"),
            )
        }
        Fault::ServerError => e(
            500,
            "The system encountered an unexpected error during processing. Try your request again."
                .to_owned(),
        ),
        Fault::Unavailable | Fault::Overloaded => {
            e(503, "Bedrock is unable to process your request.".to_owned())
        }
        Fault::KeyEcho { how, after: 0 } => e(500, how.message(key.unwrap_or(""))),
        // A guardrail's stop is a 200 (see [`blocked`]).
        Fault::ContentFilter
        | Fault::ConnectionReset
        | Fault::Hang
        | Fault::SlowFirstByte { .. }
        | Fault::SlowFirstToken { .. }
        | Fault::StreamCut { .. }
        | Fault::StreamStall { .. }
        | Fault::StreamError { .. }
        | Fault::MalformedEvent { .. }
        | Fault::MissingDone
        | Fault::BrokenJson
        | Fault::EmptyContent
        | Fault::SchemaViolation
        | Fault::OutOfBounds
        | Fault::ModelSubstituted { .. }
        | Fault::KeyEcho { .. } => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_percent_decoded_model_and_whether_it_streams() {
        assert_eq!(
            route("/model/anthropic.claude-v2%3A1/converse"),
            Some(("anthropic.claude-v2:1".to_owned(), false))
        );
        assert_eq!(
            route(
                "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse-stream"
            ),
            Some((
                "arn:aws:bedrock:us-east-1:1:inference-profile/us.x".to_owned(),
                true
            ))
        );
        assert_eq!(route("/model/m/invoke"), None);
    }

    #[test]
    fn a_request_reads_its_prompt_limit_and_forced_tool() {
        let body = json!({
            "system": [{"text": "be brief"}],
            "messages": [{"role": "user", "content": [{"text": "hi"}]}],
            "inferenceConfig": {"maxTokens": 9},
            "toolConfig": {"tools": [
                {"toolSpec": {"name": "a", "inputSchema": {"json": {"type": "object"}}}},
                {"toolSpec": {"name": "b", "inputSchema": {"json": {"type": "object"}}}}
            ], "toolChoice": {"tool": {"name": "b"}}}
        });
        let r = parse(&body, "m", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.prompt, "be brief\nhi\n");
        assert_eq!(r.max_tokens, Some(9));
        assert_eq!(r.tool_call.map(|(n, _)| n).as_deref(), Some("b"));
        assert!(parse(&json!({"messages": []}), "m", false).is_err());
    }
}
