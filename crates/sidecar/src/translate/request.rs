//! Requests: OpenAI Chat Completions ⇄ [`Conversation`] ⇄ Anthropic Messages.

use serde_json::{Map, Value, json};

/// The default answer limit when an OpenAI request (where it is optional) goes to Anthropic
/// (where it is required).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// A request field the other family cannot express.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} cannot be expressed for the other API family")]
pub struct Untranslatable {
    /// The field, as the client wrote it.
    pub field: String,
}

fn no(field: impl Into<String>) -> Untranslatable {
    Untranslatable {
        field: field.into(),
    }
}

/// Who speaks in a turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The user (tool results included).
    User,
    /// The model.
    Assistant,
}

/// An image, by URL or inline.
#[derive(Clone, Debug, PartialEq)]
pub enum Image {
    /// An `http(s)` URL.
    Url(String),
    /// Base64 data with its media type.
    Base64 {
        /// `image/png` and the like.
        media_type: String,
        /// The data.
        data: String,
    },
}

/// One piece of a turn.
#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image.
    Image(Image),
    /// The model calls a tool.
    ToolCall {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments.
        input: Value,
    },
    /// A tool's result, given back by the user side.
    ToolResult {
        /// The call it answers.
        id: String,
        /// Its content.
        content: Vec<Part>,
        /// Whether the tool failed.
        is_error: bool,
    },
}

/// One turn.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub parts: Vec<Part>,
}

/// A tool the model may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// JSON Schema of its input.
    pub schema: Value,
}

impl Tool {
    /// Reads a tool declaration whose schema sits under `schema_key` (`parameters` for OpenAI,
    /// `input_schema` for Anthropic).
    fn read(v: &Value, schema_key: &str) -> Tool {
        Tool {
            name: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            description: v
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            schema: v
                .get(schema_key)
                .cloned()
                .unwrap_or(json!({"type": "object", "properties": {}})),
        }
    }
}

/// How the model must use tools.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolChoice {
    /// As it sees fit.
    Auto,
    /// Never.
    None,
    /// At least one.
    Required,
    /// This one.
    Named(String),
}

/// Structured output.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonFormat {
    /// The schema's name (OpenAI requires one).
    pub name: String,
    /// The schema.
    pub schema: Value,
    /// OpenAI's `strict`.
    pub strict: Option<bool>,
}

/// A chat request in neither family's shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conversation {
    /// System instructions, in order.
    pub system: Vec<String>,
    /// The turns.
    pub turns: Vec<Turn>,
    /// Tools.
    pub tools: Vec<Tool>,
    /// Tool choice.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come at once.
    pub parallel_tool_calls: Option<bool>,
    /// Structured output.
    pub format: Option<JsonFormat>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Answer token limit.
    pub max_tokens: Option<u64>,
    /// Stream the answer.
    pub stream: bool,
    /// OpenAI: usage in the stream.
    pub include_usage: bool,
    /// The end user's id.
    pub user: Option<String>,
}

fn text_of(v: &Value, field: &str) -> Result<Vec<Part>, Untranslatable> {
    match v {
        Value::String(s) => Ok(vec![Part::Text(s.clone())]),
        Value::Null => Ok(Vec::new()),
        Value::Array(parts) => parts.iter().map(|p| openai_part(p, field)).collect(),
        Value::Bool(_) | Value::Number(_) | Value::Object(_) => Err(no(field)),
    }
}

fn openai_part(p: &Value, field: &str) -> Result<Part, Untranslatable> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::Text(
            p.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )),
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| no(format!("{field}.image_url")))?;
            if p.pointer("/image_url/detail").is_some_and(|d| d != "auto") {
                return Err(no(format!("{field}.image_url.detail")));
            }
            Ok(Part::Image(image_from_url(url)))
        }
        Some(other) => Err(no(format!("{field}: content part {other}"))),
        None => Err(no(field)),
    }
}

fn image_from_url(url: &str) -> Image {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return Image::Base64 {
            media_type: media_type.to_owned(),
            data: data.to_owned(),
        };
    }
    Image::Url(url.to_owned())
}

fn number(body: &Map<String, Value>, key: &str) -> Option<f64> {
    body.get(key).and_then(Value::as_f64)
}

fn push_turn(turns: &mut Vec<Turn>, role: Role, parts: Vec<Part>) {
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

impl Conversation {
    /// Reads an OpenAI Chat Completions request.
    pub fn from_openai(body: &Map<String, Value>) -> Result<Conversation, Untranslatable> {
        const KNOWN: &[&str] = &[
            "model",
            "messages",
            "stream",
            "stream_options",
            "max_tokens",
            "max_completion_tokens",
            "temperature",
            "top_p",
            "stop",
            "tools",
            "tool_choice",
            "parallel_tool_calls",
            "response_format",
            "user",
            "n",
        ];
        for (k, v) in body {
            if !KNOWN.contains(&k.as_str()) && !v.is_null() {
                return Err(no(k.clone()));
            }
        }
        if body
            .get("n")
            .and_then(Value::as_u64)
            .is_some_and(|n| n != 1)
        {
            return Err(no("n"));
        }
        let mut c = Conversation {
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: body
                .get("stream_options")
                .and_then(|o| o.get("include_usage"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_tokens: body
                .get("max_completion_tokens")
                .or_else(|| body.get("max_tokens"))
                .and_then(Value::as_u64),
            temperature: number(body, "temperature"),
            top_p: number(body, "top_p"),
            user: body.get("user").and_then(Value::as_str).map(str::to_owned),
            parallel_tool_calls: body.get("parallel_tool_calls").and_then(Value::as_bool),
            ..Conversation::default()
        };
        match body.get("stop") {
            Some(Value::String(s)) => c.stop.push(s.clone()),
            Some(Value::Array(a)) => c
                .stop
                .extend(a.iter().filter_map(Value::as_str).map(str::to_owned)),
            Some(Value::Null) | None => {}
            Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => return Err(no("stop")),
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| no("messages"))?;
        for (i, m) in messages.iter().enumerate() {
            let field = format!("messages[{i}]");
            if m.get("name").is_some_and(|n| !n.is_null()) {
                return Err(no(format!("{field}.name")));
            }
            let content = m.get("content").unwrap_or(&Value::Null);
            match m.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => {
                    for p in text_of(content, &field)? {
                        match p {
                            Part::Text(t) => c.system.push(t),
                            Part::Image(_) | Part::ToolCall { .. } | Part::ToolResult { .. } => {
                                return Err(no(format!("{field}: images in a system message")));
                            }
                        }
                    }
                }
                Some("user") => push_turn(&mut c.turns, Role::User, text_of(content, &field)?),
                Some("assistant") => {
                    let mut parts = text_of(content, &field)?;
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
                        let f = call
                            .get("function")
                            .ok_or_else(|| no(format!("{field}.tool_calls[{j}]")))?;
                        let args = f.get("arguments").and_then(Value::as_str).unwrap_or("{}");
                        let input: Value =
                            serde_json::from_str(if args.trim().is_empty() { "{}" } else { args })
                                .map_err(|_| {
                                    no(format!(
                                        "{field}.tool_calls[{j}].function.arguments (not JSON)"
                                    ))
                                })?;
                        parts.push(Part::ToolCall {
                            id: call
                                .get("id")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            name: f
                                .get("name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                            input,
                        });
                    }
                    push_turn(&mut c.turns, Role::Assistant, parts);
                }
                Some("tool") => {
                    let id = m
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let content = text_of(content, &field)?;
                    push_turn(
                        &mut c.turns,
                        Role::User,
                        vec![Part::ToolResult {
                            id,
                            content,
                            is_error: false,
                        }],
                    );
                }
                Some(other) => return Err(no(format!("{field}.role {other}"))),
                None => return Err(no(format!("{field}.role"))),
            }
        }
        for (i, t) in body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(no(format!("tools[{i}].type")));
            }
            let f = t
                .get("function")
                .ok_or_else(|| no(format!("tools[{i}].function")))?;
            c.tools.push(Tool::read(f, "parameters"));
        }
        c.tool_choice = match body.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(match s.as_str() {
                "auto" => ToolChoice::Auto,
                "none" => ToolChoice::None,
                "required" => ToolChoice::Required,
                _ => return Err(no("tool_choice")),
            }),
            Some(v) => Some(ToolChoice::Named(
                v.pointer("/function/name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| no("tool_choice"))?
                    .to_owned(),
            )),
        };
        match body
            .get("response_format")
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str)
        {
            None | Some("text") => {}
            Some("json_schema") => {
                let js = body
                    .get("response_format")
                    .and_then(|f| f.get("json_schema"))
                    .ok_or_else(|| no("response_format.json_schema"))?;
                c.format = Some(JsonFormat {
                    name: js
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("answer")
                        .to_owned(),
                    schema: js.get("schema").cloned().unwrap_or(json!({})),
                    strict: js.get("strict").and_then(Value::as_bool),
                });
            }
            Some(other) => return Err(no(format!("response_format {other}"))),
        }
        Ok(c)
    }

    /// Reads an Anthropic Messages request.
    pub fn from_anthropic(body: &Map<String, Value>) -> Result<Conversation, Untranslatable> {
        const KNOWN: &[&str] = &[
            "model",
            "messages",
            "system",
            "max_tokens",
            "stream",
            "temperature",
            "top_p",
            "stop_sequences",
            "tools",
            "tool_choice",
            "metadata",
            "output_format",
        ];
        for (k, v) in body {
            if !KNOWN.contains(&k.as_str()) && !v.is_null() {
                return Err(no(k.clone()));
            }
        }
        let mut c = Conversation {
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            include_usage: true,
            max_tokens: body.get("max_tokens").and_then(Value::as_u64),
            temperature: number(body, "temperature"),
            top_p: number(body, "top_p"),
            stop: body
                .get("stop_sequences")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            user: body
                .get("metadata")
                .and_then(|m| m.get("user_id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..Conversation::default()
        };
        if let Some(meta) = body.get("metadata").and_then(Value::as_object)
            && meta.keys().any(|k| k != "user_id")
        {
            return Err(no("metadata"));
        }
        match body.get("system") {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => c.system.push(s.clone()),
            Some(Value::Array(blocks)) => {
                for b in blocks {
                    match b.get("type").and_then(Value::as_str) {
                        Some("text") => c.system.push(
                            b.get("text")
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                        ),
                        _ => return Err(no("system")),
                    }
                }
            }
            Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => return Err(no("system")),
        }
        let messages = body
            .get("messages")
            .and_then(Value::as_array)
            .ok_or_else(|| no("messages"))?;
        for (i, m) in messages.iter().enumerate() {
            let field = format!("messages[{i}]");
            let role = match m.get("role").and_then(Value::as_str) {
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                _ => return Err(no(format!("{field}.role"))),
            };
            let parts = match m.get("content") {
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(blocks)) => blocks
                    .iter()
                    .enumerate()
                    .map(|(j, b)| anthropic_block(b, &format!("{field}.content[{j}]")))
                    .collect::<Result<_, _>>()?,
                _ => return Err(no(format!("{field}.content"))),
            };
            push_turn(&mut c.turns, role, parts);
        }
        for (i, t) in body
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if t.get("type")
                .and_then(Value::as_str)
                .is_some_and(|ty| ty != "custom")
            {
                return Err(no(format!("tools[{i}] (a server tool)")));
            }
            c.tools.push(Tool::read(t, "input_schema"));
        }
        if let Some(choice) = body.get("tool_choice").filter(|v| !v.is_null()) {
            c.tool_choice = Some(match choice.get("type").and_then(Value::as_str) {
                Some("auto") => ToolChoice::Auto,
                Some("any") => ToolChoice::Required,
                Some("none") => ToolChoice::None,
                Some("tool") => ToolChoice::Named(
                    choice
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| no("tool_choice.name"))?
                        .to_owned(),
                ),
                _ => return Err(no("tool_choice")),
            });
            if choice
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                == Some(true)
            {
                c.parallel_tool_calls = Some(false);
            }
        }
        if let Some(f) = body.get("output_format").filter(|v| !v.is_null()) {
            if f.get("type").and_then(Value::as_str) != Some("json_schema") {
                return Err(no("output_format"));
            }
            c.format = Some(JsonFormat {
                name: "answer".to_owned(),
                schema: f.get("schema").cloned().unwrap_or(json!({})),
                strict: Some(true),
            });
        }
        Ok(c)
    }

    /// Writes an OpenAI Chat Completions request for `model`.
    pub fn to_openai(&self, model: &str) -> Result<Map<String, Value>, Untranslatable> {
        let mut messages = Vec::new();
        if !self.system.is_empty() {
            messages.push(json!({"role": "system", "content": self.system.join("\n\n")}));
        }
        for turn in &self.turns {
            match turn.role {
                Role::User => {
                    let mut rest = Vec::new();
                    for p in &turn.parts {
                        match p {
                            Part::ToolResult {
                                id,
                                content,
                                is_error,
                            } => {
                                let mut text = String::new();
                                for c in content {
                                    match c {
                                        Part::Text(t) => text.push_str(t),
                                        Part::Image(_)
                                        | Part::ToolCall { .. }
                                        | Part::ToolResult { .. } => {
                                            return Err(no("tool_result content other than text"));
                                        }
                                    }
                                }
                                if *is_error {
                                    text = format!("Error: {text}");
                                }
                                messages.push(
                                    json!({"role": "tool", "tool_call_id": id, "content": text}),
                                );
                            }
                            Part::Text(_) | Part::Image(_) => rest.push(p),
                            Part::ToolCall { .. } => return Err(no("tool_use in a user turn")),
                        }
                    }
                    if !rest.is_empty() {
                        let content = match rest.as_slice() {
                            [Part::Text(t)] => json!(t),
                            parts => Value::Array(
                                parts
                                    .iter()
                                    .map(|p| match p {
                                        Part::Image(Image::Url(u)) => json!({"type": "image_url", "image_url": {"url": u}}),
                                        Part::Image(Image::Base64 { media_type, data }) => {
                                            json!({"type": "image_url", "image_url": {"url": format!("data:{media_type};base64,{data}")}})
                                        }
                                        Part::Text(t) => json!({"type": "text", "text": t}),
                                        Part::ToolCall { .. } | Part::ToolResult { .. } => Value::Null,
                                    })
                                    .collect(),
                            ),
                        };
                        messages.push(json!({"role": "user", "content": content}));
                    }
                }
                Role::Assistant => {
                    let mut text = String::new();
                    let mut calls = Vec::new();
                    for p in &turn.parts {
                        match p {
                            Part::Text(t) => text.push_str(t),
                            Part::ToolCall { id, name, input } => calls.push(json!({
                                "id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()}
                            })),
                            Part::Image(_) | Part::ToolResult { .. } => return Err(no("images or tool results in an assistant turn")),
                        }
                    }
                    let mut m = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { json!(text) }});
                    if !calls.is_empty() {
                        m["tool_calls"] = Value::Array(calls);
                    }
                    messages.push(m);
                }
            }
        }
        let mut out = Map::new();
        out.insert("model".into(), json!(model));
        out.insert("messages".into(), Value::Array(messages));
        if let Some(n) = self.max_tokens {
            out.insert("max_tokens".into(), json!(n));
        }
        if let Some(t) = self.temperature {
            out.insert("temperature".into(), json!(t));
        }
        if let Some(p) = self.top_p {
            out.insert("top_p".into(), json!(p));
        }
        if !self.stop.is_empty() {
            out.insert("stop".into(), json!(self.stop));
        }
        if self.stream {
            out.insert("stream".into(), json!(true));
            // Always ask: the answer's usage must reach the client whatever its family.
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
        if !self.tools.is_empty() {
            let tools: Vec<Value> = self
                .tools
                .iter()
                .map(|t| {
                    let mut f = json!({"name": t.name, "parameters": t.schema});
                    if let Some(d) = &t.description {
                        f["description"] = json!(d);
                    }
                    json!({"type": "function", "function": f})
                })
                .collect();
            out.insert("tools".into(), Value::Array(tools));
        }
        if let Some(choice) = &self.tool_choice {
            out.insert(
                "tool_choice".into(),
                match choice {
                    ToolChoice::Auto => json!("auto"),
                    ToolChoice::None => json!("none"),
                    ToolChoice::Required => json!("required"),
                    ToolChoice::Named(n) => json!({"type": "function", "function": {"name": n}}),
                },
            );
        }
        if let Some(p) = self.parallel_tool_calls {
            out.insert("parallel_tool_calls".into(), json!(p));
        }
        if let Some(f) = &self.format {
            let mut js = json!({"name": f.name, "schema": f.schema});
            if let Some(s) = f.strict {
                js["strict"] = json!(s);
            }
            out.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": js}),
            );
        }
        if let Some(u) = &self.user {
            out.insert("user".into(), json!(u));
        }
        Ok(out)
    }

    /// Writes an Anthropic Messages request for `model`.
    pub fn to_anthropic(&self, model: &str) -> Result<Map<String, Value>, Untranslatable> {
        if self
            .turns
            .first()
            .is_some_and(|t| t.role == Role::Assistant)
        {
            return Err(no(
                "messages (a conversation that starts with the assistant)",
            ));
        }
        if self.temperature.is_some_and(|t| t > 1.0) {
            return Err(no("temperature above 1"));
        }
        fn block(p: &Part) -> Value {
            match p {
                Part::Text(t) => json!({"type": "text", "text": t}),
                Part::Image(Image::Url(u)) => {
                    json!({"type": "image", "source": {"type": "url", "url": u}})
                }
                Part::Image(Image::Base64 { media_type, data }) => {
                    json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
                }
                Part::ToolCall { id, name, input } => {
                    json!({"type": "tool_use", "id": id, "name": name, "input": input})
                }
                Part::ToolResult {
                    id,
                    content,
                    is_error,
                } => {
                    let inner: Vec<Value> = content.iter().map(block).collect();
                    let mut b = json!({"type": "tool_result", "tool_use_id": id, "content": inner});
                    if *is_error {
                        b["is_error"] = json!(true);
                    }
                    b
                }
            }
        }
        let messages: Vec<Value> = self
            .turns
            .iter()
            .map(|t| {
                let role = match t.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                let content = match t.parts.as_slice() {
                    [Part::Text(s)] => json!(s),
                    parts => Value::Array(parts.iter().map(block).collect()),
                };
                json!({"role": role, "content": content})
            })
            .collect();
        let mut out = Map::new();
        out.insert("model".into(), json!(model));
        out.insert("messages".into(), Value::Array(messages));
        out.insert(
            "max_tokens".into(),
            json!(self.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
        );
        if !self.system.is_empty() {
            out.insert("system".into(), json!(self.system.join("\n\n")));
        }
        if let Some(t) = self.temperature {
            out.insert("temperature".into(), json!(t));
        }
        if let Some(p) = self.top_p {
            out.insert("top_p".into(), json!(p));
        }
        if !self.stop.is_empty() {
            out.insert("stop_sequences".into(), json!(self.stop));
        }
        if self.stream {
            out.insert("stream".into(), json!(true));
        }
        if !self.tools.is_empty() {
            let tools: Vec<Value> = self
                .tools
                .iter()
                .map(|t| {
                    let mut v = json!({"name": t.name, "input_schema": t.schema});
                    if let Some(d) = &t.description {
                        v["description"] = json!(d);
                    }
                    v
                })
                .collect();
            out.insert("tools".into(), Value::Array(tools));
        }
        let mut choice = self.tool_choice.as_ref().map(|c| match c {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Named(n) => json!({"type": "tool", "name": n}),
        });
        if self.parallel_tool_calls == Some(false) {
            choice.get_or_insert_with(|| json!({"type": "auto"}))["disable_parallel_tool_use"] =
                json!(true);
        }
        if let Some(c) = choice {
            out.insert("tool_choice".into(), c);
        }
        if let Some(f) = &self.format {
            out.insert(
                "output_format".into(),
                json!({"type": "json_schema", "schema": f.schema}),
            );
        }
        if let Some(u) = &self.user {
            out.insert("metadata".into(), json!({"user_id": u}));
        }
        Ok(out)
    }
}

fn anthropic_block(b: &Value, field: &str) -> Result<Part, Untranslatable> {
    match b.get("type").and_then(Value::as_str) {
        Some("text") => Ok(Part::Text(
            b.get("text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        )),
        Some("image") => {
            let src = b
                .get("source")
                .ok_or_else(|| no(format!("{field}.source")))?;
            match src.get("type").and_then(Value::as_str) {
                Some("base64") => Ok(Part::Image(Image::Base64 {
                    media_type: src
                        .get("media_type")
                        .and_then(Value::as_str)
                        .unwrap_or("image/png")
                        .to_owned(),
                    data: src
                        .get("data")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                })),
                Some("url") => Ok(Part::Image(Image::Url(
                    src.get("url")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                ))),
                _ => Err(no(format!("{field}.source"))),
            }
        }
        Some("tool_use") => Ok(Part::ToolCall {
            id: b
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            name: b
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            input: b.get("input").cloned().unwrap_or(json!({})),
        }),
        Some("tool_result") => {
            let content = match b.get("content") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                Some(Value::Array(inner)) => inner
                    .iter()
                    .map(|i| anthropic_block(i, field))
                    .collect::<Result<_, _>>()?,
                Some(Value::Bool(_) | Value::Number(_) | Value::Object(_)) => {
                    return Err(no(format!("{field}.content")));
                }
            };
            Ok(Part::ToolResult {
                id: b
                    .get("tool_use_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                content,
                is_error: b.get("is_error").and_then(Value::as_bool).unwrap_or(false),
            })
        }
        Some(other) => Err(no(format!("{field}: {other} block"))),
        None => Err(no(field)),
    }
}
