//! The chat request in neither family's shape: [`Conversation`], and what both families'
//! readers and writers share.
//!
//! `openai` and `anthropic` each read their family's request into a conversation and write a
//! conversation back out as their family's request; nothing here knows either wire format.
//!
//! Reading is deliberately lenient about types: a field of the wrong type counts as absent
//! (see [`lenient`]), except where a reader names the field as [`Untranslatable`].

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

/// A request field the other family cannot express.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} cannot be expressed for the other API family")]
pub struct Untranslatable {
    /// The field, as the client wrote it.
    pub field: String,
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
    /// How hard a reasoning model should think (`low`, `medium`, `high`, …).
    pub reasoning_effort: Option<String>,
}

impl Untranslatable {
    /// The error for `field`.
    pub(crate) fn new(field: impl Into<String>) -> Untranslatable {
        Untranslatable {
            field: field.into(),
        }
    }
}

impl Part {
    /// Reads a `{"type": "text", "text": …}` part, spelled the same in both families; a
    /// missing text reads as empty.
    pub(super) fn read_text(v: &Value) -> Part {
        Part::Text(owned_str(v, "text"))
    }
}

impl Tool {
    /// Reads a tool declaration whose schema sits under `schema_key` (`parameters` for OpenAI,
    /// `input_schema` for Anthropic). A tool without a schema takes no arguments.
    pub(super) fn read(v: &Value, schema_key: &str) -> Tool {
        Tool {
            name: owned_str(v, "name"),
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

impl ToolChoice {
    /// `auto`, `none` or `required`, spelled the same in both OpenAI families.
    pub(super) fn mode(s: &str) -> Option<ToolChoice> {
        match s {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => None,
        }
    }
}

impl JsonFormat {
    /// The schema's name when the client gave none (Anthropic has no name to give).
    pub(super) const DEFAULT_NAME: &str = "answer";

    /// The schema under `schema`, or the empty (anything goes) schema.
    pub(super) fn schema_of(v: &Value) -> Value {
        v.get("schema").cloned().unwrap_or(json!({}))
    }
}

impl Conversation {
    /// Adds what `role` says. Consecutive turns of one role merge: Anthropic requires the
    /// roles to alternate, and OpenAI's tool messages are user turns here.
    pub(super) fn say(&mut self, role: Role, parts: Vec<Part>) {
        if let Some(last) = self.turns.last_mut()
            && last.role == role
        {
            last.parts.extend(parts);
        } else {
            self.turns.push(Turn { role, parts });
        }
    }
}

/// Reads an optional field leniently: a value of the wrong type counts as absent, as it did
/// when the readers walked the JSON by hand.
pub(super) fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    Ok(T::deserialize(Value::deserialize(d)?).ok())
}

/// Like [`lenient`], but `Some` whenever the field is present, even as `null`: for a field
/// that hides another one merely by being there.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    lenient(d).map(Some)
}

/// Refuses the first field (in key order) of `rest` that is set: the fields a reader does not
/// declare have no counterpart in the other family, and dropping them would change the request.
pub(super) fn refuse_unknown(rest: &Map<String, Value>) -> Result<(), Untranslatable> {
    match rest.iter().find(|(_, v)| !v.is_null()) {
        Some((k, _)) => Err(Untranslatable::new(k.clone())),
        None => Ok(()),
    }
}

/// The string under `key`, or the empty string when it is missing or not a string.
pub(super) fn owned_str(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// Writes a request, built from one of the families' request types, as a JSON object.
///
/// Those types hold only strings, numbers, booleans and JSON values, so writing cannot fail;
/// were it ever to, the request is refused rather than sent half-written.
pub(super) fn object(request: &impl Serialize) -> Result<Map<String, Value>, Untranslatable> {
    match serde_json::to_value(request) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) | Value::Array(_),
        ) => Err(Untranslatable::new("request (not a JSON object)")),
        Err(e) => Err(Untranslatable::new(format!("request ({e})"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_turns_of_one_role_merge_into_one() {
        let mut c = Conversation::default();
        c.say(Role::User, vec![Part::Text("a".into())]);
        c.say(Role::User, vec![Part::Text("b".into())]);
        c.say(Role::Assistant, vec![Part::Text("c".into())]);
        assert_eq!(
            c.turns,
            vec![
                Turn {
                    role: Role::User,
                    parts: vec![Part::Text("a".into()), Part::Text("b".into())],
                },
                Turn {
                    role: Role::Assistant,
                    parts: vec![Part::Text("c".into())],
                },
            ]
        );
    }

    #[test]
    fn a_tool_without_a_schema_takes_no_arguments() {
        let tool = Tool::read(&json!({"name": "now"}), "parameters");
        assert_eq!(
            tool,
            Tool {
                name: "now".into(),
                description: None,
                schema: json!({"type": "object", "properties": {}}),
            }
        );
    }

    #[test]
    fn unknown_fields_set_to_null_are_not_refused() {
        let rest = json!({"logprobs": null, "seed": null});
        assert_eq!(refuse_unknown(rest.as_object().unwrap()), Ok(()));
    }

    #[test]
    fn the_first_unknown_field_set_is_refused_by_name() {
        let rest = json!({"a": null, "b": 1, "c": true});
        assert_eq!(
            refuse_unknown(rest.as_object().unwrap()),
            Err(Untranslatable::new("b"))
        );
    }

    #[test]
    fn lenient_fields_of_the_wrong_type_read_as_absent() {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default, deserialize_with = "lenient")]
            n: Option<u64>,
        }
        let n = |v: Value| Body::deserialize(&v).unwrap().n;
        assert_eq!(n(json!({"n": 3})), Some(3));
        assert_eq!(n(json!({"n": "3"})), None);
        assert_eq!(n(json!({"n": 3.5})), None);
        assert_eq!(n(json!({"n": -1})), None);
        assert_eq!(n(json!({})), None);
    }
}
