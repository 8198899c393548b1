//! An OpenAI Chat Completions request read into a [`Conversation`].

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::translate::conversation::{
    Conversation, JsonFormat, Part, Role, Tool, ToolChoice, Untranslatable, lenient, owned_str,
    present, refuse_unknown,
};

/// The top-level fields of a Chat Completions request that translation reads. Whatever else
/// the client set lands in `rest` and is refused.
#[derive(Deserialize)]
struct Incoming {
    /// Replaced by the target's model.
    #[serde(default, rename = "model")]
    _model: IgnoredAny,
    #[serde(default, deserialize_with = "lenient")]
    messages: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<Value>,
    /// The newer name of `max_tokens`, which it hides whenever present (even as `null`).
    #[serde(default, deserialize_with = "present")]
    max_completion_tokens: Option<Option<u64>>,
    #[serde(default, deserialize_with = "lenient")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    response_format: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    user: Option<String>,
    /// How many answers; only one translates.
    #[serde(default, deserialize_with = "lenient")]
    n: Option<u64>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Conversation {
    /// Reads an OpenAI Chat Completions request.
    pub fn from_openai(body: &Map<String, Value>) -> Result<Conversation, Untranslatable> {
        let body = Incoming::read(body)?;
        let mut c = Conversation {
            stream: body.stream.unwrap_or(false),
            include_usage: body
                .stream_options
                .as_ref()
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_tokens: body.max_completion_tokens.unwrap_or(body.max_tokens),
            temperature: body.temperature,
            top_p: body.top_p,
            user: body.user,
            parallel_tool_calls: body.parallel_tool_calls,
            stop: stop(body.stop.as_ref())?,
            ..Conversation::default()
        };
        let messages = body
            .messages
            .ok_or_else(|| Untranslatable::new("messages"))?;
        for (i, m) in messages.iter().enumerate() {
            read_message(&mut c, m, &format!("messages[{i}]"))?;
        }
        c.tools = tools(body.tools.unwrap_or_default())?;
        c.tool_choice = tool_choice(body.tool_choice.as_ref())?;
        c.format = response_format(body.response_format.as_ref())?;
        Ok(c)
    }
}

impl Incoming {
    /// Reads the fields, refusing any the other family cannot express.
    fn read(body: &Map<String, Value>) -> Result<Incoming, Untranslatable> {
        let incoming = Incoming::deserialize(body)
            .map_err(|e| Untranslatable::new(format!("request ({e})")))?;
        refuse_unknown(&incoming.rest)?;
        if incoming.n.is_some_and(|n| n != 1) {
            return Err(Untranslatable::new("n"));
        }
        Ok(incoming)
    }
}

fn stop(stop: Option<&Value>) -> Result<Vec<String>, Untranslatable> {
    match stop {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => Ok(a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()),
        Some(Value::Null) | None => Ok(Vec::new()),
        Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => {
            Err(Untranslatable::new("stop"))
        }
    }
}

/// Reads `messages[i]` (named `field`) into `c`.
fn read_message(c: &mut Conversation, m: &Value, field: &str) -> Result<(), Untranslatable> {
    if m.get("name").is_some_and(|n| !n.is_null()) {
        return Err(Untranslatable::new(format!("{field}.name")));
    }
    let content = m.get("content").unwrap_or(&Value::Null);
    match m.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => c.system.extend(system_text(content, field)?),
        Some("user") => c.say(Role::User, parts(content, field)?),
        Some("assistant") => c.say(Role::Assistant, assistant_parts(m, content, field)?),
        Some("tool") => c.say(Role::User, vec![tool_result(m, content, field)?]),
        Some(other) => return Err(Untranslatable::new(format!("{field}.role {other}"))),
        None => return Err(Untranslatable::new(format!("{field}.role"))),
    }
    Ok(())
}

/// A message's content: a string, `null` or an array of parts.
fn parts(content: &Value, field: &str) -> Result<Vec<Part>, Untranslatable> {
    match content {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts.iter().map(|p| part(p, field)).collect(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Err(Untranslatable::new(field)),
    }
}

fn part(p: &Value, field: &str) -> Result<Part, Untranslatable> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::read_text(p)),
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| Untranslatable::new(format!("{field}.image_url")))?;
            // Anthropic has no detail level: only the default translates.
            if p.pointer("/image_url/detail").is_some_and(|d| d != "auto") {
                return Err(Untranslatable::new(format!("{field}.image_url.detail")));
            }
            Ok(Part::Image(super::image_from_url(url)))
        }
        Some(other) => Err(Untranslatable::new(format!(
            "{field}: content part {other}"
        ))),
        None => Err(Untranslatable::new(field)),
    }
}

fn system_text(content: &Value, field: &str) -> Result<Vec<String>, Untranslatable> {
    parts(content, field)?
        .into_iter()
        .map(|p| match p {
            Part::Text(t) => Ok(t),
            Part::Image(_) | Part::ToolCall { .. } | Part::ToolResult { .. } => Err(
                Untranslatable::new(format!("{field}: images in a system message")),
            ),
        })
        .collect()
}

/// An assistant message's content, then its refusal, then its tool calls.
fn assistant_parts(m: &Value, content: &Value, field: &str) -> Result<Vec<Part>, Untranslatable> {
    let mut parts = parts(content, field)?;
    if let Some(refusal) = m.get("refusal").and_then(Value::as_str) {
        parts.push(Part::Text(refusal.to_owned()));
    }
    for (j, call) in m
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        parts.push(tool_call(call, &format!("{field}.tool_calls[{j}]"))?);
    }
    Ok(parts)
}

fn tool_call(call: &Value, field: &str) -> Result<Part, Untranslatable> {
    let f = call
        .get("function")
        .ok_or_else(|| Untranslatable::new(field))?;
    let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
    let args = if args.trim().is_empty() { "{}" } else { args };
    let input = serde_json::from_str(args)
        .map_err(|_| Untranslatable::new(format!("{field}.function.arguments (not JSON)")))?;
    Ok(Part::ToolCall {
        id: owned_str(call, "id"),
        name: owned_str(f, "name"),
        input,
    })
}

fn tool_result(m: &Value, content: &Value, field: &str) -> Result<Part, Untranslatable> {
    Ok(Part::ToolResult {
        id: owned_str(m, "tool_call_id"),
        content: parts(content, field)?,
        is_error: false,
    })
}

fn tools(tools: Vec<Value>) -> Result<Vec<Tool>, Untranslatable> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(Untranslatable::new(format!("tools[{i}].type")));
            }
            let f = t
                .get("function")
                .ok_or_else(|| Untranslatable::new(format!("tools[{i}].function")))?;
            Ok(Tool::read(f, "parameters"))
        })
        .collect()
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, Untranslatable> {
    let refused = || Untranslatable::new("tool_choice");
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => ToolChoice::mode(s).map(Some).ok_or_else(refused),
        Some(v @ (Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_))) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(refused)?;
            Ok(Some(ToolChoice::Named(name.to_owned())))
        }
    }
}

fn response_format(format: Option<&Value>) -> Result<Option<JsonFormat>, Untranslatable> {
    let Some(format) = format else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_schema") => {
            let js = format
                .get("json_schema")
                .ok_or_else(|| Untranslatable::new("response_format.json_schema"))?;
            Ok(Some(JsonFormat {
                name: js
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or(JsonFormat::DEFAULT_NAME)
                    .to_owned(),
                schema: JsonFormat::schema_of(js),
                strict: js.get("strict").and_then(Value::as_bool),
            }))
        }
        Some(other) => Err(Untranslatable::new(format!("response_format {other}"))),
    }
}
