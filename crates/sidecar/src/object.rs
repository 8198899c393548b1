//! Provider objects read with the fields Plumb acts on typed and every other field kept, in
//! one pass.
//!
//! Stream chunks and whole answers are read on the hot path of every answer, and most of
//! their fields are ones Plumb only carries (`id`, `created`, `system_fingerprint`,
//! `logprobs`, …). Serde's `#[serde(flatten)]` would keep them too, but it first buffers every
//! field of the object — the typed ones included — in an intermediate tree and reads it a
//! second time: about half of the sidecar's work per streamed event. `with_rest!` writes the
//! `Deserialize` of such a type by hand instead: a typed field is read straight from the
//! input, anything else into the type's `rest` map, and keys are borrowed from the input.
//!
//! What it reads is what the derive read: a missing field is the type's default, a field
//! marked `or_default` takes `null` as its default too (providers send `null` for absent lists
//! and objects), an unknown field is kept in `rest` as it came. `rest` is a
//! `Map<String, Value>` where Plumb reads it, or a [`Rest`] — the members as text, with no
//! tree built — where it only carries it (a stream's chunks, read from text).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// An object key, borrowed from the input unless it had to be unescaped.
pub struct Key<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// Where a type keeps the fields it does not read.
pub trait KeepRest {
    /// Keeps the value of `key`, read from `map`.
    fn keep<'de, A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error>;
}

impl KeepRest for Map<String, Value> {
    fn keep<'de, A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let value: Value = map.next_value()?;
        self.insert(key.into_owned(), value);
        Ok(())
    }
}

/// Fields carried as they came: the members of a JSON object (`"k":v,"k2":v2`) as text. Read
/// from text, a member is copied once and nothing is built; its value is read only when asked
/// for ([`Rest::get`]) or written back ([`Serialize`], as an object's members).
///
/// Only for types read from text (`serde_json::from_str` / `from_slice`): the values are taken
/// as raw JSON, which a `Value` cannot give.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rest(String);

impl Rest {
    /// Adds a member.
    pub fn push(&mut self, key: &str, value: &RawValue) {
        // A key is a JSON string: written as one, escapes and all (most need none).
        let plain = key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
        self.push_key(key, plain, value);
    }

    /// Adds a member whose key is written as it is when `plain` (it needs no escape).
    fn push_key(&mut self, key: &str, plain: bool, value: &RawValue) {
        let value = value.get();
        if self.0.is_empty() {
            // Room for a chunk's usual carried fields at once, not a growth per member.
            self.0.reserve((key.len() + value.len() + 4).max(160));
        } else {
            self.0.push(',');
        }
        if plain {
            self.0.push('"');
            self.0.push_str(key);
            self.0.push('"');
        } else {
            self.0
                .push_str(&serde_json::to_string(key).unwrap_or_else(|_| "\"\"".to_owned()));
        }
        self.0.push(':');
        self.0.push_str(value);
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One member's value, read (`None`: no such member).
    pub fn get(&self, key: &str) -> Option<Value> {
        self.members()
            .remove(key)
            .and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// Every member, its value raw (a later member of the same name wins, as in a map read).
    fn members(&self) -> BTreeMap<String, Box<RawValue>> {
        if self.0.is_empty() {
            return BTreeMap::new();
        }
        serde_json::from_str(&format!("{{{}}}", self.0)).unwrap_or_default()
    }
}

impl KeepRest for Rest {
    fn keep<'de, A: MapAccess<'de>>(
        &mut self,
        key: Cow<'de, str>,
        map: &mut A,
    ) -> Result<(), A::Error> {
        let value: &'de RawValue = map.next_value()?;
        match key {
            // Borrowed from the input, the key had no escape there, so it needs none.
            Cow::Borrowed(k) => self.push_key(k, true, value),
            Cow::Owned(k) => self.push(&k, value),
        }
        Ok(())
    }
}

impl From<Map<String, Value>> for Rest {
    fn from(map: Map<String, Value>) -> Rest {
        let mut rest = Rest::default();
        for (k, v) in map {
            if let Ok(raw) = serde_json::value::to_raw_value(&v) {
                rest.push(&k, &raw);
            }
        }
        rest
    }
}

impl Serialize for Rest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let members = self.members();
        let mut map = s.serialize_map(Some(members.len()))?;
        for (k, v) in &members {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A field's value as its type reads it.
pub fn value<'de, A: MapAccess<'de>, T: Deserialize<'de>>(map: &mut A) -> Result<T, A::Error> {
    map.next_value()
}

/// A field's value, `null` read as the type's default.
pub fn or_default<'de, A: MapAccess<'de>, T: Default + Deserialize<'de>>(
    map: &mut A,
) -> Result<T, A::Error> {
    Ok(map.next_value::<Option<T>>()?.unwrap_or_default())
}

/// Implements `Deserialize` for a struct with `Default` whose named fields are read typed
/// (each by [`value`] or [`or_default`], under its own name as the key) and whose every other
/// field goes into its `rest` (a [`KeepRest`]: a `Map<String, Value>` or a [`Rest`]).
///
/// ```ignore
/// with_rest!(Choice { index: or_default, delta: or_default, finish_reason: value });
/// ```
macro_rules! with_rest {
    ($ty:ident { $($field:ident: $read:ident),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct ObjectVisitor;
                impl<'de> serde::de::Visitor<'de> for ObjectVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($ty), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$ty, A::Error> {
                        let mut out = $ty::default();
                        while let Some($crate::object::Key(key)) = map.next_key()? {
                            match &*key {
                                $(stringify!($field) => {
                                    out.$field = $crate::object::$read(&mut map)?;
                                })*
                                _ => $crate::object::KeepRest::keep(&mut out.rest, key, &mut map)?,
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(ObjectVisitor)
            }
        }
    };
}

pub(crate) use with_rest;

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use serde_json::{Map, Value, json};

    use super::Rest;

    #[derive(Debug, Default, PartialEq)]
    struct Sample {
        name: Option<String>,
        list: Vec<u64>,
        count: u64,
        rest: Map<String, Value>,
    }
    with_rest!(Sample {
        name: value,
        list: or_default,
        count: value
    });

    #[test]
    fn typed_fields_are_read_and_the_rest_is_kept_as_it_came() {
        let s: Sample = serde_json::from_str(
            r#"{"name":"a","id":"x\"y","list":[1,2],"nested":{"k":[null]},"count":3}"#,
        )
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("a"));
        assert_eq!((s.list, s.count), (vec![1, 2], 3));
        assert_eq!(
            Value::Object(s.rest),
            json!({"id": "x\"y", "nested": {"k": [null]}})
        );
    }

    #[test]
    fn missing_and_null_fields_are_defaults_where_the_derive_made_them_so() {
        let s: Sample = serde_json::from_str(r#"{"list":null,"name":null}"#).unwrap();
        assert_eq!(s, Sample::default());
        // `value` fields keep their type's own reading of null: an integer refuses it.
        assert!(serde_json::from_str::<Sample>(r#"{"count":null}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"{"list":"no"}"#).is_err());
        assert!(serde_json::from_str::<Sample>(r#"[1]"#).is_err());
    }

    #[derive(Debug, Default, PartialEq, Serialize)]
    struct Carried {
        name: Option<String>,
        #[serde(flatten)]
        rest: Rest,
    }
    with_rest!(Carried { name: value });

    #[test]
    fn carried_fields_are_kept_as_text_and_written_back_as_members() {
        let text = r#"{"id":"c\"1","name":"n","nested":{"a":[1,null]},"n":1.50,"k\u00e9y":true,"q\"k\n":2}"#;
        let c: Carried = serde_json::from_str(text).unwrap();
        assert_eq!(c.name.as_deref(), Some("n"));
        assert_eq!(c.rest.get("id"), Some(json!("c\"1")));
        assert_eq!(c.rest.get("nested"), Some(json!({"a": [1, null]})));
        assert_eq!(c.rest.get("kéy"), Some(json!(true)));
        assert_eq!(
            c.rest.get("q\"k\n"),
            Some(json!(2)),
            "a key that needs escapes"
        );
        assert_eq!(c.rest.get("missing"), None);
        let written: Value = serde_json::to_value(&c).unwrap();
        let read: Value = serde_json::from_str(text).unwrap();
        assert_eq!(written, read, "written back whole");
        // Numbers are carried as they were written.
        assert!(serde_json::to_string(&c).unwrap().contains("\"n\":1.50"));
        let built = Rest::from(Map::from_iter([("type".to_owned(), json!("function"))]));
        assert_eq!(built.get("type"), Some(json!("function")));
        assert!(Rest::default().is_empty() && Rest::default().get("x").is_none());
    }

    #[test]
    fn escaped_keys_are_read_unescaped() {
        let s: Sample = serde_json::from_str(r#"{"na\u006de":"b","k\u00e9y":1}"#).unwrap();
        assert_eq!(s.name.as_deref(), Some("b"));
        assert_eq!(s.rest.get("kéy"), Some(&json!(1)));
    }
}
