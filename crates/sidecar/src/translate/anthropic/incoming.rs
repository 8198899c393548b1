//! An Anthropic Messages request read into a [`Conversation`].

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use crate::translate::conversation::{
    Conversation, Image, JsonFormat, Part, Role, Tool, ToolChoice, Untranslatable, lenient,
    owned_str, refuse_unknown,
};

/// The top-level fields of a Messages request that translation reads. Whatever else the client
/// set lands in `rest` and is refused.
#[derive(Deserialize)]
struct Incoming {
    /// Replaced by the target's model.
    #[serde(default, rename = "model")]
    _model: IgnoredAny,
    #[serde(default, deserialize_with = "lenient")]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default, deserialize_with = "lenient")]
    max_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient")]
    stream: Option<bool>,
    #[serde(default, deserialize_with = "lenient")]
    temperature: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    top_p: Option<f64>,
    #[serde(default, deserialize_with = "lenient")]
    stop_sequences: Option<Vec<Value>>,
    #[serde(default, deserialize_with = "lenient")]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
    /// Only `user_id` translates.
    #[serde(default, deserialize_with = "lenient")]
    metadata: Option<Map<String, Value>>,
    #[serde(default)]
    output_format: Option<Value>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl Conversation {
    /// Reads an Anthropic Messages request.
    pub fn from_anthropic(body: &Map<String, Value>) -> Result<Conversation, Untranslatable> {
        let body = Incoming::read(body)?;
        let mut c = Conversation {
            stream: body.stream.unwrap_or(false),
            // Anthropic streams always carry usage.
            include_usage: true,
            max_tokens: body.max_tokens,
            temperature: body.temperature,
            top_p: body.top_p,
            stop: body
                .stop_sequences
                .iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            user: body
                .metadata
                .as_ref()
                .and_then(|m| m.get("user_id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            system: system(body.system.as_ref())?,
            ..Conversation::default()
        };
        let messages = body
            .messages
            .ok_or_else(|| Untranslatable::new("messages"))?;
        for (i, m) in messages.iter().enumerate() {
            let (role, parts) = message(m, &format!("messages[{i}]"))?;
            c.say(role, parts);
        }
        c.tools = tools(body.tools.unwrap_or_default())?;
        let choice = body.tool_choice.as_ref().filter(|v| !v.is_null());
        c.tool_choice = choice.map(tool_choice).transpose()?;
        if choice
            .and_then(|c| c.get("disable_parallel_tool_use"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            c.parallel_tool_calls = Some(false);
        }
        c.format = output_format(body.output_format.as_ref())?;
        Ok(c)
    }
}

impl Incoming {
    /// Reads the fields, refusing any the other family cannot express.
    fn read(body: &Map<String, Value>) -> Result<Incoming, Untranslatable> {
        let incoming = Incoming::deserialize(body)
            .map_err(|e| Untranslatable::new(format!("request ({e})")))?;
        refuse_unknown(&incoming.rest)?;
        if let Some(meta) = &incoming.metadata
            && meta.keys().any(|k| k != "user_id")
        {
            return Err(Untranslatable::new("metadata"));
        }
        Ok(incoming)
    }
}

/// The system prompt: a string or text blocks.
fn system(system: Option<&Value>) -> Result<Vec<String>, Untranslatable> {
    let refused = || Untranslatable::new("system");
    match system {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match b.get("type").and_then(Value::as_str) {
                Some("text") => Ok(owned_str(b, "text")),
                Some(_) | None => Err(refused()),
            })
            .collect(),
        Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => Err(refused()),
    }
}

/// `messages[i]` (named `field`): who speaks, and what.
fn message(m: &Value, field: &str) -> Result<(Role, Vec<Part>), Untranslatable> {
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(_) | None => return Err(Untranslatable::new(format!("{field}.role"))),
    };
    let parts = match m.get("content") {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(j, b)| block(b, &format!("{field}.content[{j}]")))
            .collect::<Result<_, _>>()?,
        Some(Value::Null | Value::Bool(_) | Value::Number(_) | Value::Object(_)) | None => {
            return Err(Untranslatable::new(format!("{field}.content")));
        }
    };
    Ok((role, parts))
}

/// A content block (named `field`; blocks inside a tool result go by their result's name).
fn block(b: &Value, field: &str) -> Result<Part, Untranslatable> {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::read_text(b)),
        Some("image") => {
            let source = b
                .get("source")
                .ok_or_else(|| Untranslatable::new(format!("{field}.source")))?;
            Ok(Part::Image(image(source, field)?))
        }
        Some("tool_use") => Ok(Part::ToolCall {
            id: owned_str(b, "id"),
            name: owned_str(b, "name"),
            input: b.get("input").cloned().unwrap_or(json!({})),
        }),
        Some("tool_result") => Ok(Part::ToolResult {
            id: owned_str(b, "tool_use_id"),
            content: tool_result_content(b.get("content"), field)?,
            is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
        }),
        Some(other) => Err(Untranslatable::new(format!("{field}: {other} block"))),
        None => Err(Untranslatable::new(field)),
    }
}

fn image(source: &Value, field: &str) -> Result<Image, Untranslatable> {
    match source.get("type").and_then(Value::as_str) {
        Some("base64") => Ok(Image::Base64 {
            media_type: source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png")
                .to_owned(),
            data: owned_str(source, "data"),
        }),
        Some("url") => Ok(Image::Url(owned_str(source, "url"))),
        Some(_) | None => Err(Untranslatable::new(format!("{field}.source"))),
    }
}

fn tool_result_content(content: Option<&Value>, field: &str) -> Result<Vec<Part>, Untranslatable> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(inner)) => inner.iter().map(|i| block(i, field)).collect(),
        Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => {
            Err(Untranslatable::new(format!("{field}.content")))
        }
    }
}

/// Client tools only: server tools (web search and the like) run at Anthropic.
fn tools(tools: Vec<Value>) -> Result<Vec<Tool>, Untranslatable> {
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty != "custom")
            {
                return Err(Untranslatable::new(format!("tools[{i}] (a server tool)")));
            }
            Ok(Tool::read(t, "input_schema"))
        })
        .collect()
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, Untranslatable> {
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok(ToolChoice::Auto),
        Some("any") => Ok(ToolChoice::Required),
        Some("none") => Ok(ToolChoice::None),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| Untranslatable::new("tool_choice.name"))?;
            Ok(ToolChoice::Named(name.to_owned()))
        }
        Some(_) | None => Err(Untranslatable::new("tool_choice")),
    }
}

fn output_format(format: Option<&Value>) -> Result<Option<JsonFormat>, Untranslatable> {
    let Some(format) = format.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if format.get("type").and_then(Value::as_str) != Some("json_schema") {
        return Err(Untranslatable::new("output_format"));
    }
    Ok(Some(JsonFormat {
        name: JsonFormat::DEFAULT_NAME.to_owned(),
        schema: JsonFormat::schema_of(format),
        // Anthropic's structured output is always strict.
        strict: Some(true),
    }))
}
