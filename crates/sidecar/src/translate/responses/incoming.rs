//! An OpenAI Responses request read into a [`Conversation`], for a target that speaks Chat
//! Completions or Anthropic Messages.
//!
//! What depends on OpenAI's servers — `previous_response_id`, `conversation`, stored prompts,
//! background mode, built-in tools, item references — has no counterpart elsewhere and is
//! refused by name, so the target is skipped. Reasoning items a client sends back are OpenAI's
//! own (often encrypted) thoughts: another provider cannot read them, and they are left out.
//! `store`, `metadata`, `truncation`, `service_tier` and `prompt_cache_key` ask OpenAI to keep
//! or bill the response a certain way; another provider keeps nothing, and they are left out
//! too (the README says so).

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use crate::translate::conversation::{
    Conversation, JsonFormat, Part, Role, Tool, ToolChoice, Untranslatable, lenient, owned_str,
    refuse_unknown,
};

/// The top-level fields of a Responses request that translation reads. Whatever else the
/// client set lands in `rest` and is refused.
#[derive(Deserialize)]
struct Incoming {
    #[serde(default, rename = "model")]
    _model: IgnoredAny,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    instructions: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
    #[serde(default, rename = "stream_options")]
    _stream_options: IgnoredAny,
    #[serde(default, deserialize_with = "lenient")]
    max_output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    parallel_tool_calls: Option<bool>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    reasoning: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    user: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    safety_identifier: Option<String>,
    #[serde(default)]
    include: Option<Value>,
    /// Background mode runs on OpenAI's servers; `false` is the default.
    #[serde(default, deserialize_with = "lenient")]
    background: Option<bool>,
    // Asks OpenAI to keep or bill the response a certain way; nothing to keep elsewhere.
    #[serde(default, rename = "store")]
    _store: IgnoredAny,
    #[serde(default, rename = "metadata")]
    _metadata: IgnoredAny,
    #[serde(default, rename = "truncation")]
    _truncation: IgnoredAny,
    #[serde(default, rename = "service_tier")]
    _service_tier: IgnoredAny,
    #[serde(default, rename = "prompt_cache_key")]
    _prompt_cache_key: IgnoredAny,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Conversation {
    /// Reads an OpenAI Responses request.
    pub fn from_responses(body: &Map<String, Value>) -> Result<Conversation, Untranslatable> {
        let body = Incoming::deserialize(body)
            .map_err(|e| Untranslatable::new(format!("request ({e})")))?;
        refuse_unknown(&body.rest)?;
        include(body.include.as_ref())?;
        if body.background == Some(true) {
            return Err(Untranslatable::new("background"));
        }
        let mut c = Conversation {
            stream: body.stream.unwrap_or(false),
            // A Responses stream always ends with its usage.
            include_usage: true,
            max_tokens: body.max_output_tokens,
            temperature: body.temperature,
            top_p: body.top_p,
            user: body.safety_identifier.or(body.user),
            parallel_tool_calls: body.parallel_tool_calls,
            reasoning_effort: reasoning(body.reasoning.as_ref())?,
            ..Conversation::default()
        };
        if let Some(instructions) = body.instructions.filter(|i| !i.is_empty()) {
            c.system.push(instructions);
        }
        match body.input {
            Some(Value::String(s)) => c.say(Role::User, vec![Part::Text(s)]),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    read_item(&mut c, item, &format!("input[{i}]"))?;
                }
            }
            Some(Value::Null) | None => return Err(Untranslatable::new("input")),
            Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => {
                return Err(Untranslatable::new("input"));
            }
        }
        c.tools = tools(body.tools.unwrap_or_default())?;
        c.tool_choice = tool_choice(body.tool_choice.as_ref())?;
        c.format = text_format(body.text.as_ref())?;
        Ok(c)
    }
}

/// `include` asks for extra output fields; only encrypted reasoning (which a non-OpenAI
/// target simply has none of) translates.
fn include(include: Option<&Value>) -> Result<(), Untranslatable> {
    for (i, v) in include
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if v.as_str() != Some("reasoning.encrypted_content") {
            return Err(Untranslatable::new(format!(
                "include[{i}] {}",
                v.as_str().unwrap_or("?")
            )));
        }
    }
    Ok(())
}

/// `reasoning.effort`, when the client asks for thinking.
fn reasoning(reasoning: Option<&Value>) -> Result<Option<String>, Untranslatable> {
    let Some(r) = reasoning.filter(|r| !r.is_null()) else {
        return Ok(None);
    };
    match r.get("effort") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(e)) => match e.as_str() {
            "none" | "minimal" | "low" | "medium" | "high" | "xhigh" => Ok(Some(e.clone())),
            _ => Err(Untranslatable::new(format!("reasoning.effort {e}"))),
        },
        Some(Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
            Err(Untranslatable::new("reasoning.effort"))
        }
    }
}

/// Reads `input[i]` (named `field`) into `c`.
fn read_item(c: &mut Conversation, item: &Value, field: &str) -> Result<(), Untranslatable> {
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        // A message item may leave out its type.
        None | Some("message") => read_message(c, item, field),
        Some("function_call") => {
            let args = item
                .get("arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let args = if args.trim().is_empty() { "{}" } else { args };
            let input = serde_json::from_str(args)
                .map_err(|_| Untranslatable::new(format!("{field}.arguments (not JSON)")))?;
            c.say(
                Role::Assistant,
                vec![Part::ToolCall {
                    id: owned_str(item, "call_id"),
                    name: owned_str(item, "name"),
                    input,
                }],
            );
            Ok(())
        }
        Some("function_call_output") => {
            let content = match item.get("output") {
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| content_part(p, field))
                    .collect::<Result<_, _>>()?,
                Some(_) | None => return Err(Untranslatable::new(format!("{field}.output"))),
            };
            c.say(
                Role::User,
                vec![Part::ToolResult {
                    id: owned_str(item, "call_id"),
                    content,
                    is_error: false,
                }],
            );
            Ok(())
        }
        // OpenAI's own thoughts from an earlier turn: nothing another provider can read.
        Some("reasoning") => Ok(()),
        Some(other) => Err(Untranslatable::new(format!("{field}: {other} items"))),
    }
}

fn read_message(c: &mut Conversation, m: &Value, field: &str) -> Result<(), Untranslatable> {
    let content = m.get("content").unwrap_or(&Value::Null);
    let parts = match content {
        Value::String(s) => vec![Part::Text(s.clone())],
        Value::Array(parts) => parts
            .iter()
            .map(|p| content_part(p, field))
            .collect::<Result<Vec<_>, _>>()?,
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_) => {
            return Err(Untranslatable::new(format!("{field}.content")));
        }
    };
    match m.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => {
            for p in parts {
                match p {
                    Part::Text(t) => c.system.push(t),
                    Part::Image(_) | Part::ToolCall { .. } | Part::ToolResult { .. } => {
                        return Err(Untranslatable::new(format!(
                            "{field}: images in a system message"
                        )));
                    }
                }
            }
        }
        Some("user") => c.say(Role::User, parts),
        Some("assistant") => c.say(Role::Assistant, parts),
        Some(other) => return Err(Untranslatable::new(format!("{field}.role {other}"))),
        None => return Err(Untranslatable::new(format!("{field}.role"))),
    }
    Ok(())
}

fn content_part(p: &Value, field: &str) -> Result<Part, Untranslatable> {
    match p.get("type").and_then(Value::as_str) {
        Some("input_text" | "output_text") => Ok(Part::read_text(p)),
        Some("refusal") => Ok(Part::Text(owned_str(p, "refusal"))),
        Some("input_image") => {
            // `detail` (which the SDK's type requires) is a resolution hint; the other
            // providers pick their own, and it is left out.
            let url = p
                .get("image_url")
                .and_then(Value::as_str)
                .ok_or_else(|| Untranslatable::new(format!("{field}: an image by file_id")))?;
            Ok(Part::Image(crate::translate::openai::image_from_url(url)))
        }
        Some(other) => Err(Untranslatable::new(format!(
            "{field}: content part {other}"
        ))),
        None => Err(Untranslatable::new(field)),
    }
}

/// Function tools; a built-in tool (web search, file search, code interpreter, …) runs on
/// OpenAI's servers and has no counterpart elsewhere.
fn tools(tools: Vec<Value>) -> Result<Vec<Tool>, Untranslatable> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| match t.get("type").and_then(Value::as_str) {
            Some("function") => Ok(Tool::read(t, "parameters")),
            Some(other) => Err(Untranslatable::new(format!(
                "tools[{i}] (the built-in tool {other})"
            ))),
            None => Err(Untranslatable::new(format!("tools[{i}].type"))),
        })
        .collect()
}

fn tool_choice(choice: Option<&Value>) -> Result<Option<ToolChoice>, Untranslatable> {
    let refused = || Untranslatable::new("tool_choice");
    match choice {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => ToolChoice::mode(s).map(Some).ok_or_else(refused),
        Some(v @ Value::Object(_)) if v.get("type").and_then(Value::as_str) == Some("function") => {
            let name = v.get("name").and_then(Value::as_str).ok_or_else(refused)?;
            Ok(Some(ToolChoice::Named(name.to_owned())))
        }
        Some(Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_)) => {
            Err(refused())
        }
    }
}

/// `text.format`: plain text, or a JSON schema.
fn text_format(text: Option<&Value>) -> Result<Option<JsonFormat>, Untranslatable> {
    let Some(format) = text.and_then(|t| t.get("format")).filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        None | Some("text") => Ok(None),
        Some("json_schema") => Ok(Some(JsonFormat {
            name: format
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or(JsonFormat::DEFAULT_NAME)
                .to_owned(),
            schema: JsonFormat::schema_of(format),
            strict: format.get("strict").and_then(Value::as_bool),
        })),
        Some(other) => Err(Untranslatable::new(format!("text.format {other}"))),
    }
}
