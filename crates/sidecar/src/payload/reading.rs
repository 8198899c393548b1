//! A request body read in one pass, without building it: checked as strictly as a
//! `serde_json::Value` would read it, the few fields the sidecar acts on taken on the way, and
//! where `model` and `stream_options` lie in the body. A body on its way to a target of the
//! client's own family — the common case — is then written by putting the target's model (and
//! the usage option) in place of those values and copying every other byte as the client sent
//! it, a repeated key included (a map would have kept its last value only).
//!
//! Building the body into a `serde_json::Value` tree and writing the tree out again cost about
//! 17 instructions per byte of body (BENCHMARKS.md, "A conversation's request: its body read,
//! not built"): for a conversation of a few tens of KiB, most of the sidecar's work per
//! request. Here each value is read once by a [`Take`], which keeps what it needs of it (a
//! flag, a number) and nothing else; a value no reader wants is read all the same (each
//! string decoded, each number parsed, nesting counted), so a body read here is one the tree,
//! built later for a translation or a contract, reads too, and reads the same. (One key is
//! refused where the tree would not refuse it: serde_json's marker for a raw value, as a
//! nested object's first key, which the tree takes as an instruction, not as data.)

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserializer as _;
use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Api, Needs};
use crate::object::Key;

/// What the sidecar reads of a request body.
#[derive(Debug)]
pub(super) struct Reading {
    /// The model asked for: the last `model`, when it is a string.
    pub(super) model: Option<String>,
    /// The last `stream`, when it is a boolean.
    pub(super) stream: Option<bool>,
    /// Whether the last `stream_options` asks for usage (`include_usage: true`).
    pub(super) include_usage: bool,
    /// What the request needs of a target.
    pub(super) needs: Needs,
    /// Where `model` and `stream_options` lie, to write the body with others in their place.
    pub(super) layout: Layout,
}

/// Reads `text`, a request body of `api`, which must be one JSON object (`Err`: serde's
/// words for what it is instead, or for what in it the tree would refuse).
pub(super) fn read(api: Api, text: &str) -> Result<Reading, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let top = de.deserialize_map(Top::new(api, text))?;
    de.end()?;
    let max_output = top.max_output.iter().find_map(|n| *n);
    Ok(Reading {
        model: top.model,
        stream: top.stream,
        include_usage: top.include_usage,
        needs: Needs {
            tools: top.tools,
            json_schema: top.json_schema,
            vision: top.conversation.vision,
            prefill: api == Api::Anthropic && top.conversation.assistant_last,
            ..Needs::default()
        }
        .sized(text.len(), max_output),
        layout: Layout {
            model: top.model_at,
            stream_options: top.stream_options_at,
            close: text.rfind('}').unwrap_or(text.len()),
            any: top.members > 0,
        },
    })
}

/// A reader of one JSON value, as serde_json reads it strictly: it keeps what it needs of the
/// value; the rest is read and dropped. A reader of the wrong type of value keeps nothing.
trait Take<'de> {
    fn string(&mut self, _: &str) {}
    fn boolean(&mut self, _: bool) {}
    fn unsigned(&mut self, _: u64) {}
    /// An array's elements, read (by default) and dropped.
    fn elements<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(())
    }
    /// An object's members, read (by default) and dropped.
    fn members<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::default();
        while keys.next(&mut map)?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(())
    }
}

/// The key serde_json gives a meaning of its own as an object's first (its raw values' marker):
/// a `Value` read from the body would take the string after it for JSON and put what that
/// parses to in the object's place.
const RAW_VALUE_KEY: &str = "$serde_json::private::RawValue";

/// A nested object's keys, read in turn; `Err` for serde_json's marker as the first, so that
/// a body the reading accepts reads the same as a tree.
#[derive(Default)]
struct Keys {
    read: bool,
}

impl Keys {
    fn next<'de, A: MapAccess<'de>>(
        &mut self,
        map: &mut A,
    ) -> Result<Option<Cow<'de, str>>, A::Error> {
        let key = map.next_key::<Key>()?.map(|Key(k)| k);
        if !std::mem::replace(&mut self.read, true) && key.as_deref() == Some(RAW_VALUE_KEY) {
            return Err(A::Error::custom(format_args!(
                "the key \"{RAW_VALUE_KEY}\" is reserved (serde_json's marker); rename it"
            )));
        }
        Ok(key)
    }
}

/// A value read by the reader it holds: the seed and the visitor, whose result is the reader.
struct Reader<T>(T);

/// `next_value_seed`'s argument: `reader`, to read the next value.
fn by<T>(reader: T) -> Reader<T> {
    Reader(reader)
}

impl<'de, T: Take<'de>> DeserializeSeed<'de> for Reader<T> {
    type Value = T;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: Take<'de>> Visitor<'de> for Reader<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(mut self, v: bool) -> Result<T, E> {
        self.0.boolean(v);
        Ok(self.0)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<T, E> {
        Ok(self.0)
    }
    fn visit_u64<E: serde::de::Error>(mut self, v: u64) -> Result<T, E> {
        self.0.unsigned(v);
        Ok(self.0)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<T, E> {
        Ok(self.0)
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<T, E> {
        self.0.string(v);
        Ok(self.0)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        Ok(self.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, seq: A) -> Result<T, A::Error> {
        self.0.elements(seq)?;
        Ok(self.0)
    }
    fn visit_map<A: MapAccess<'de>>(mut self, map: A) -> Result<T, A::Error> {
        self.0.members(map)?;
        Ok(self.0)
    }
}

/// A value read and dropped.
struct Skip;

impl Take<'_> for Skip {}

/// The next value of `map`, read and dropped.
fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<Skip>().map(|Skip| ())
}

impl<'de> serde::Deserialize<'de> for Skip {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        by(Skip).deserialize(d)
    }
}

/// A boolean.
#[derive(Default)]
struct Bool(Option<bool>);

impl Take<'_> for Bool {
    fn boolean(&mut self, v: bool) {
        self.0 = Some(v);
    }
}

/// A non-negative integer that fits 64 bits (as `Value::as_u64` reads one).
#[derive(Default)]
struct Unsigned(Option<u64>);

impl Take<'_> for Unsigned {
    fn unsigned(&mut self, v: u64) {
        self.0 = Some(v);
    }
}

/// An array with at least one element.
#[derive(Default)]
struct NonEmpty(bool);

impl<'de> Take<'de> for NonEmpty {
    fn elements<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Skip>()?.is_some() {
            self.0 = true;
        }
        Ok(())
    }
}

/// A string that passes a test.
struct Test {
    test: fn(&str) -> bool,
    passed: bool,
}

impl Take<'_> for Test {
    fn string(&mut self, v: &str) {
        self.passed = (self.test)(v);
    }
}

/// A `type` naming an image part of a message.
fn image() -> Test {
    Test {
        test: |t| matches!(t, "image_url" | "image" | "input_image"),
        passed: false,
    }
}

/// A `type` asking for JSON-schema output.
fn json_schema() -> Test {
    Test {
        test: |t| t == "json_schema",
        passed: false,
    }
}

/// An object's `key` member, read by a fresh reader each time the key comes: the last
/// counts, as in a map.
struct Field<T> {
    key: &'static str,
    reader: fn() -> T,
    value: Option<T>,
}

impl<T> Field<T> {
    fn new(key: &'static str, reader: fn() -> T) -> Field<T> {
        Field {
            key,
            reader,
            value: None,
        }
    }
}

impl<'de, T: Take<'de>> Take<'de> for Field<T> {
    fn members<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::default();
        while let Some(key) = keys.next(&mut map)? {
            if key == self.key {
                self.value = Some(map.next_value_seed(by((self.reader)()))?);
            } else {
                skip(&mut map)?;
            }
        }
        Ok(())
    }
}

impl Field<Test> {
    fn passed(&self) -> bool {
        self.value.as_ref().is_some_and(|t| t.passed)
    }
}

/// A conversation (`messages`, or a Responses `input`): whether a message shows an image,
/// and whether the last is the assistant's.
#[derive(Default)]
struct Conversation {
    vision: bool,
    assistant_last: bool,
}

impl<'de> Take<'de> for Conversation {
    fn elements<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(message) = seq.next_element_seed(by(Message::default()))? {
            self.vision |= message.vision;
            self.assistant_last = message.assistant;
        }
        Ok(())
    }
}

/// A message: whether its content has an image part, and whether its role is the assistant.
#[derive(Default)]
struct Message {
    vision: bool,
    assistant: bool,
}

impl<'de> Take<'de> for Message {
    fn members<A: MapAccess<'de>>(&mut self, mut map: A) -> Result<(), A::Error> {
        let mut keys = Keys::default();
        while let Some(key) = keys.next(&mut map)? {
            match key.as_ref() {
                "content" => self.vision = map.next_value_seed(by(Parts::default()))?.0,
                "role" => {
                    let role = Test {
                        test: |r| r == "assistant",
                        passed: false,
                    };
                    self.assistant = map.next_value_seed(by(role))?.passed;
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(())
    }
}

/// A message's content as parts: whether one is an image.
#[derive(Default)]
struct Parts(bool);

impl<'de> Take<'de> for Parts {
    fn elements<A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(part) = seq.next_element_seed(by(Field::new("type", image)))? {
            self.0 |= part.passed();
        }
        Ok(())
    }
}

/// How deep a top-level member's value may nest, as the tree reads the whole body: serde's
/// limit of 127 levels, less the body's own.
const NESTED: u8 = 126;

/// A value read and dropped that nests at most as deep as it holds: the check of a value
/// read as raw JSON, which serde_json skips without counting its depth.
struct Within(u8);

impl<'de> DeserializeSeed<'de> for Within {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Within {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(Within(inner))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        let mut keys = Keys::default();
        while keys.next(&mut map)?.is_some() {
            map.next_value_seed(Within(inner))?;
        }
        Ok(())
    }
}

impl Within {
    /// The levels left inside an array or object here.
    fn deeper<E: serde::de::Error>(self) -> Result<u8, E> {
        self.0
            .checked_sub(1)
            .ok_or_else(|| E::custom("recursion limit exceeded"))
    }
}

/// A top-level value kept as raw JSON (for its place in the body), checked as strictly as
/// the rest.
fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de RawValue, A::Error> {
    let value: &'de RawValue = map.next_value()?;
    Within(NESTED)
        .deserialize(&mut serde_json::Deserializer::from_str(value.get()))
        .map_err(A::Error::custom)?;
    Ok(value)
}

/// The body's top level: what the sidecar acts on, read member by member.
struct Top<'a> {
    api: Api,
    /// The body, for where a raw value lies in it.
    text: &'a str,
    members: usize,
    model: Option<String>,
    model_at: Vec<Range<usize>>,
    stream: Option<bool>,
    include_usage: bool,
    stream_options_at: Vec<Range<usize>>,
    tools: bool,
    json_schema: bool,
    conversation: Conversation,
    /// `max_completion_tokens`, `max_tokens` and `max_output_tokens`, the first the one
    /// that counts.
    max_output: [Option<u64>; 3],
}

impl<'a> Top<'a> {
    fn new(api: Api, text: &'a str) -> Top<'a> {
        Top {
            api,
            text,
            members: 0,
            model: None,
            model_at: Vec::new(),
            stream: None,
            include_usage: false,
            stream_options_at: Vec::new(),
            tools: false,
            json_schema: false,
            conversation: Conversation::default(),
            max_output: [None; 3],
        }
    }

    /// Where `value`, read from the body, lies in it.
    fn at(&self, value: &RawValue) -> Range<usize> {
        let start = value.get().as_ptr() as usize - self.text.as_ptr() as usize;
        start..start + value.get().len()
    }

    /// The member that says what output format the client asks for, in its API.
    fn format_key(&self) -> Option<&'static str> {
        match self.api {
            Api::Openai => Some("response_format"),
            Api::Anthropic => Some("output_format"),
            Api::Responses => Some("text"),
            Api::Gemini | Api::Bedrock => None,
        }
    }

    /// The member that holds the conversation, in its API.
    fn conversation_key(&self) -> Option<&'static str> {
        match self.api {
            Api::Openai | Api::Anthropic => Some("messages"),
            // A string input has no images; message items may have `input_image` parts.
            Api::Responses => Some("input"),
            Api::Gemini | Api::Bedrock => None,
        }
    }
}

/// Whether the output format (the member [`Top::format_key`] names) asks for JSON-schema
/// output, read by `api`'s rule.
fn asks_json_schema<'de, A: MapAccess<'de>>(api: Api, map: &mut A) -> Result<bool, A::Error> {
    Ok(match api {
        Api::Openai => map
            .next_value_seed(by(Field::new("type", json_schema)))?
            .passed(),
        // Anthropic's `output_format`, whatever its value.
        Api::Anthropic => skip(map).map(|()| true)?,
        Api::Responses => map
            .next_value_seed(by(Field::new("format", || Field::new("type", json_schema))))?
            .value
            .is_some_and(|f| f.passed()),
        Api::Gemini | Api::Bedrock => skip(map).map(|()| false)?,
    })
}

impl<'de> Visitor<'de> for Top<'de> {
    type Value = Top<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Top<'de>, A::Error> {
        while let Some(Key(key)) = map.next_key()? {
            self.members += 1;
            let key: &str = &key;
            match key {
                "model" => {
                    let value = raw(&mut map)?;
                    self.model_at.push(self.at(value));
                    self.model = string(value).map(Cow::into_owned);
                }
                "stream" => self.stream = map.next_value_seed(by(Bool::default()))?.0,
                "stream_options" => {
                    let value = raw(&mut map)?;
                    self.stream_options_at.push(self.at(value));
                    self.include_usage = by(Field::new("include_usage", Bool::default))
                        .deserialize(&mut serde_json::Deserializer::from_str(value.get()))
                        .map_err(A::Error::custom)?
                        .value
                        .and_then(|b| b.0)
                        .unwrap_or(false);
                }
                "tools" => self.tools = map.next_value_seed(by(NonEmpty::default()))?.0,
                "max_completion_tokens" | "max_tokens" | "max_output_tokens" => {
                    let i = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
                        .iter()
                        .position(|k| *k == key)
                        .unwrap_or(0);
                    self.max_output[i] = map.next_value_seed(by(Unsigned::default()))?.0;
                }
                k if Some(k) == self.format_key() => {
                    self.json_schema = asks_json_schema(self.api, &mut map)?;
                }
                k if Some(k) == self.conversation_key() => {
                    self.conversation = map.next_value_seed(by(Conversation::default()))?;
                }
                _ => skip(&mut map)?,
            }
        }
        Ok(self)
    }
}

/// A string value, borrowed unless it had escapes; `None` for any other value.
fn string(value: &RawValue) -> Option<Cow<'_, str>> {
    let text = value.get();
    if !text.starts_with('"') {
        return None;
    }
    // Without a backslash, the text between the quotes is the string.
    if !text.contains('\\') {
        return text.get(1..text.len() - 1).map(Cow::Borrowed);
    }
    serde_json::from_str::<Cow<str>>(text).ok()
}

/// Where a body's top-level `model` and `stream_options` values lie, to write the body with
/// others in their place.
#[derive(Clone, Debug, Default)]
pub(super) struct Layout {
    /// The values of its `model` members (one, unless the client repeated the key).
    model: Vec<Range<usize>>,
    /// The values of its `stream_options` members.
    stream_options: Vec<Range<usize>>,
    /// Where its closing brace is.
    close: usize,
    /// Whether the object has any member.
    any: bool,
}

/// The `stream_options` that ask for a stream's usage.
pub(super) const USAGE_OPTION: &str = r#"{"include_usage":true}"#;

impl Layout {
    /// `body` (the text the layout was read from) with `model` as its model, and with
    /// [`USAGE_OPTION`] as its `stream_options` when `usage`; a member it lacks is added at
    /// its end. Every other byte is the client's.
    pub(super) fn write(&self, body: &[u8], model: &str, usage: bool) -> Vec<u8> {
        let model = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".to_owned());
        let mut edits: Vec<(&Range<usize>, &str)> =
            self.model.iter().map(|r| (r, model.as_str())).collect();
        if usage {
            edits.extend(self.stream_options.iter().map(|r| (r, USAGE_OPTION)));
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = Vec::with_capacity(body.len() + model.len() + USAGE_OPTION.len() + 32);
        let mut at = 0;
        for (range, value) in edits {
            out.extend_from_slice(&body[at..range.start]);
            out.extend_from_slice(value.as_bytes());
            at = range.end;
        }
        out.extend_from_slice(&body[at..self.close]);
        let mut added = Vec::new();
        if self.model.is_empty() {
            added.push(("model", model.as_str()));
        }
        if usage && self.stream_options.is_empty() {
            added.push(("stream_options", USAGE_OPTION));
        }
        for (i, (key, value)) in added.into_iter().enumerate() {
            if self.any || i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(value.as_bytes());
        }
        out.extend_from_slice(&body[self.close..]);
        out
    }
}

#[cfg(test)]
mod tests;
