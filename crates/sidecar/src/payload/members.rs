//! A request body read without building it: the members of its top level as raw JSON, the few
//! fields the sidecar acts on read from them, and where `model` and `stream_options` lie in the
//! body. A body on its way to a target of the client's own family — the common case — is then
//! written by putting the target's model (and the usage option) in place of those values and
//! copying every other byte as the client sent it, a repeated key included (a map would have
//! kept its last value only).
//!
//! Building the body into a `serde_json::Value` tree and writing the tree out again cost about
//! 17 instructions per byte of body (BENCHMARKS.md, "A conversation's request: its body read,
//! not built"): for a conversation of a few tens of KiB, most of the sidecar's work per
//! request. Reading the members costs two scans of the bytes (one checks them as strictly as
//! the tree would, one finds the members), and allocates little beyond the list of members.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::object::Key;

/// One member of an object: its key, unescaped, and its value as raw JSON.
struct Member<'a> {
    key: Cow<'a, str>,
    value: &'a RawValue,
}

/// An object's members in the order they came. A key may repeat; as in a map read from the
/// same text, the last one counts.
pub(super) struct Members<'a>(Vec<Member<'a>>);

impl<'a> Members<'a> {
    /// The members of a body, which must be one JSON object (`Err`: serde's words for what it
    /// is instead). It is checked as strictly as a `serde_json::Value` would read it, before
    /// its members are read: the members' raw values are only skipped over, which lets through
    /// what the tree, read later for a translation or a contract, would refuse (a lone
    /// surrogate escaped in a string, a number beyond `f64`, nesting deeper than 128).
    pub(super) fn of_body(text: &'a str) -> Result<Members<'a>, serde_json::Error> {
        serde_json::from_str::<Checked>(text)?;
        serde_json::from_str(text)
    }

    /// The members of a value that is an object; `None` for any other value.
    pub(super) fn of(value: &'a RawValue) -> Option<Members<'a>> {
        is(value, b'{')
            .then(|| serde_json::from_str(value.get()).ok())
            .flatten()
    }

    /// The value of `key`, the last when it repeats.
    pub(super) fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|m| m.key == key).map(|m| m.value)
    }

    /// The values of every `key` member, as ranges of `text`, the body they were read from.
    fn ranges_of(&self, key: &str, text: &str) -> Vec<Range<usize>> {
        let base = text.as_ptr() as usize;
        self.0
            .iter()
            .filter(|m| m.key == key)
            .map(|m| {
                let start = m.value.get().as_ptr() as usize - base;
                start..start + m.value.get().len()
            })
            .collect()
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::new();
                while let Some(Key(key)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push(Member { key, value });
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// Whether a value starts with `first` (a raw value has no white space before it). Every
/// reader below looks before it parses: a value of another type would be an error, and serde
/// writes an error's message, a string's whole text in it, for nothing.
fn is(value: &RawValue, first: u8) -> bool {
    value.get().as_bytes().first() == Some(&first)
}

/// A JSON value read as strictly as a `serde_json::Value` is (its strings decoded, its
/// numbers in range, its depth within serde's limit), with nothing built.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct CheckedVisitor;
        impl<'de> Visitor<'de> for CheckedVisitor {
            type Value = Checked;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Checked, E> {
                Ok(Checked)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Checked, A::Error> {
                while seq.next_element::<Checked>()?.is_some() {}
                Ok(Checked)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
                while map.next_key::<Checked>()?.is_some() {
                    map.next_value::<Checked>()?;
                }
                Ok(Checked)
            }
        }
        d.deserialize_any(CheckedVisitor)
    }
}

/// The elements of a value that is an array; `None` for any other value.
pub(super) fn elements(value: &RawValue) -> Option<Vec<&RawValue>> {
    is(value, b'[')
        .then(|| serde_json::from_str(value.get()).ok())
        .flatten()
}

/// A string value, borrowed unless it had escapes; `None` for any other value.
pub(super) fn string(value: &RawValue) -> Option<Cow<'_, str>> {
    if !is(value, b'"') {
        return None;
    }
    let text = value.get();
    // Without a backslash, the text between the quotes is the string.
    if !text.contains('\\') {
        return text.get(1..text.len() - 1).map(Cow::Borrowed);
    }
    match serde_json::from_str::<&str>(text) {
        Ok(s) => Some(Cow::Borrowed(s)),
        Err(_) => serde_json::from_str::<String>(value.get())
            .ok()
            .map(Cow::Owned),
    }
}

/// The string value of `key` in a value that is an object.
pub(super) fn string_in<'a>(object: &'a RawValue, key: &str) -> Option<Cow<'a, str>> {
    Members::of(object)?.get(key).and_then(string)
}

/// A boolean value; `None` for any other value.
pub(super) fn boolean(value: &RawValue) -> Option<bool> {
    match value.get() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// A non-negative integer that fits 64 bits; `None` for any other value (as `Value::as_u64`).
pub(super) fn unsigned(value: &RawValue) -> Option<u64> {
    // Digits only: JSON has no sign but `-`, and an exponent or a fraction is not an integer.
    let text = value.get();
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())
        .flatten()
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
    /// The layout of `text`, whose top level is `members`.
    pub(super) fn of(text: &str, members: &Members) -> Layout {
        Layout {
            model: members.ranges_of("model", text),
            stream_options: members.ranges_of("stream_options", text),
            close: text.rfind('}').unwrap_or(text.len()),
            any: !members.0.is_empty(),
        }
    }

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
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::payload::{Api, ClientRequest, Needs, Operation};

    fn written(body: &str, model: &str, usage: bool) -> String {
        let members = Members::of_body(body).unwrap_or_else(|e| panic!("{e}"));
        let layout = Layout::of(body, &members);
        String::from_utf8(layout.write(body.as_bytes(), model, usage))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The oracle: what the sidecar read from the body built into a tree, before it read the
    /// members instead.
    fn tree_needs(api: Api, body: &Map<String, Value>, len: usize) -> Needs {
        let tools = body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty());
        let json_schema = match api {
            Api::Openai => {
                body.get("response_format")
                    .and_then(|f| f.get("type"))
                    .and_then(Value::as_str)
                    == Some("json_schema")
            }
            Api::Anthropic => body.get("output_format").is_some(),
            Api::Responses => {
                body.get("text")
                    .and_then(|t| t.pointer("/format/type"))
                    .and_then(Value::as_str)
                    == Some("json_schema")
            }
            Api::Gemini | Api::Bedrock => false,
        };
        let messages = match api {
            Api::Openai | Api::Anthropic => body.get("messages").and_then(Value::as_array),
            // A string input has no images; message items may have `input_image` parts.
            Api::Responses => body.get("input").and_then(Value::as_array),
            Api::Gemini | Api::Bedrock => None,
        };
        let vision = messages.is_some_and(|ms| {
            ms.iter().any(|m| {
                m.get("content")
                    .and_then(Value::as_array)
                    .is_some_and(|parts| {
                        parts.iter().any(|p| {
                            matches!(
                                p.get("type").and_then(Value::as_str),
                                Some("image_url" | "image" | "input_image")
                            )
                        })
                    })
            })
        });
        let prefill = api == Api::Anthropic
            && messages
                .and_then(|ms| ms.last())
                .and_then(|m| m.get("role"))
                .and_then(Value::as_str)
                == Some("assistant");
        let max_output = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_u64));
        Needs {
            tools,
            json_schema,
            vision,
            prefill,
            ..Needs::default()
        }
        .sized(len, max_output)
    }

    #[test]
    fn a_body_reads_as_its_tree_read() {
        let bodies = [
            (
                Api::Openai,
                r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
            ),
            (
                Api::Openai,
                r#"{"model":"m","stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":9,"max_tokens":3,"tools":[{"type":"function"}],"response_format":{"type":"json_schema","json_schema":{}},"messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u"}}]}]}"#,
            ),
            (
                Api::Openai,
                r#"{"model":"m","stream":"yes","stream_options":{"include_usage":1},"max_tokens":-1,"tools":[],"response_format":{"type":"json_object"},"messages":[1,"s",null,{"content":{"type":"image_url"}},{"content":[null,{"type":7}]}]}"#,
            ),
            (
                Api::Openai,
                r#"{"model":"m","messages":{"role":"user"},"tools":{},"max_tokens":1e3,"max_output_tokens":5}"#,
            ),
            (
                Api::Anthropic,
                r#"{"model":"m","max_tokens":5,"output_format":null,"messages":[{"role":"user","content":[{"type":"image","source":{}}]},{"role":"assistant","content":"The"}]}"#,
            ),
            (
                Api::Anthropic,
                r#"{"model":"m","max_tokens":5,"messages":[{"role":"assistant"},{"role":"user","content":"x"}],"role":"assistant"}"#,
            ),
            (Api::Anthropic, r#"{"model":"m","messages":[]}"#),
            (
                Api::Responses,
                r#"{"model":"m","input":"hi","text":{"format":{"type":"json_schema","schema":{}}},"max_output_tokens":40}"#,
            ),
            (
                Api::Responses,
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_image","image_url":"u"}]}],"text":{"format":"json_schema"}}"#,
            ),
            (
                Api::Openai,
                r#"{"model":"m","tools":[1],"tools":[],"messages":[{"role":"user","content":[{"type":"image_url"}]}],"messages":[]}"#,
            ),
        ];
        for (api, body) in bodies {
            let tree: Map<String, Value> =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
            let r = ClientRequest::parse(api, Operation::Chat, body.as_bytes())
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(r.needs, tree_needs(api, &tree, body.len()), "{body}");
            assert_eq!(
                r.stream,
                tree.get("stream").and_then(Value::as_bool).unwrap_or(false),
                "{body}"
            );
            assert_eq!(
                r.include_usage(),
                tree.get("stream_options")
                    .and_then(|o| o.get("include_usage"))
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
                "{body}"
            );
            assert_eq!(r.body(), &tree, "{body}");
        }
    }

    #[test]
    fn the_model_is_put_in_place_and_every_other_byte_is_the_clients() {
        let body = "{ \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\"}],\n  \"model\" : \"alias\", \"temperature\": 1.50 }\n";
        assert_eq!(
            written(body, "up\"stream", false),
            "{ \"messages\": [{\"role\": \"user\", \"content\": \"h\\u00e9\"}],\n  \"model\" : \"up\\\"stream\", \"temperature\": 1.50 }\n"
        );
    }

    #[test]
    fn members_it_lacks_are_added_at_the_end() {
        assert_eq!(
            written("{}", "m", true),
            r#"{"model":"m","stream_options":{"include_usage":true}}"#
        );
        assert_eq!(
            written(r#"{"stream":true} "#, "m", true),
            r#"{"stream":true,"model":"m","stream_options":{"include_usage":true}} "#
        );
        assert_eq!(
            written(r#"{"model":"a","stream_options":{"x":1}}"#, "m", false),
            r#"{"model":"m","stream_options":{"x":1}}"#
        );
        assert_eq!(
            written(r#"{"stream_options":{"x":1},"model":"a"}"#, "m", true),
            r#"{"stream_options":{"include_usage":true},"model":"m"}"#
        );
    }

    #[test]
    fn a_repeated_key_is_replaced_everywhere_and_read_from_its_last() {
        let body = r#"{"model":"a","n":1,"model":"b"}"#;
        assert_eq!(
            written(body, "m", false),
            r#"{"model":"m","n":1,"model":"m"}"#
        );
        let members = Members::of_body(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(members.get("model").and_then(string).as_deref(), Some("b"));
    }

    #[test]
    fn values_are_read_as_a_map_reads_them() {
        let body = r#"{"mo\u0064el":"m\"1","s":true,"n":7,"f":7.0,"neg":-1,"o":{"k":[1,{"t":"x"}]},"nil":null}"#;
        let members = Members::of_body(body).unwrap_or_else(|e| panic!("{e}"));
        let tree: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            members.get("model").and_then(string).as_deref(),
            tree["model"].as_str()
        );
        assert_eq!(members.get("s").and_then(boolean), tree["s"].as_bool());
        for k in ["n", "f", "neg", "s", "nil"] {
            assert_eq!(members.get(k).and_then(unsigned), tree[k].as_u64(), "{k}");
        }
        let o = members.get("o").and_then(Members::of);
        let k = o.and_then(|o| o.get("k")).and_then(elements);
        assert_eq!(k.map(|k| k.len()), Some(2));
        assert!(members.get("nil").is_some() && members.get("nil").and_then(Members::of).is_none());
        assert!(members.get("missing").is_none());
    }

    #[test]
    fn only_a_json_object_is_a_body() {
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        for bad in [
            "[1]",
            "\"s\"",
            "{",
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            r#"{"a":"\x"}"#,
            // What the tree refuses, checked before the members are read.
            r#"{"a":"\ud800"}"#,
            r#"{"a":[{"b":1e400}]}"#,
            &deep,
        ] {
            assert!(Members::of_body(bad).is_err(), "{bad}");
            assert!(
                serde_json::from_str::<Map<String, Value>>(bad).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            json!(Members::of_body(" {} ").map(|m| m.0.len()).ok()),
            json!(0)
        );
    }
}
