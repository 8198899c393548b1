//! Provider objects read with the fields Plumb acts on typed and every other field kept, in
//! one pass.
//!
//! Stream chunks and whole answers are read on the hot path of every answer, and most of
//! their fields are ones Plumb only carries (`id`, `created`, `system_fingerprint`,
//! `logprobs`, …). Serde's `#[serde(flatten)]` would keep them too, but it first buffers every
//! field of the object — the typed ones included — in an intermediate tree and reads it a
//! second time: about half of the sidecar's work per streamed event. [`with_rest!`] writes the
//! `Deserialize` of such a type by hand instead: a typed field is read straight from the
//! input, anything else into the type's `rest` map, and keys are borrowed from the input.
//!
//! What it reads is what the derive read: a missing field is the type's default, a field
//! marked `or_default` takes `null` as its default too (providers send `null` for absent lists
//! and objects), an unknown field is kept in `rest` as it came.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

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
/// field goes into its `rest: Map<String, Value>`.
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
                                _ => {
                                    let v: serde_json::Value = map.next_value()?;
                                    out.rest.insert(key.into_owned(), v);
                                }
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
    use serde_json::{Map, Value, json};

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

    #[test]
    fn escaped_keys_are_read_unescaped() {
        let s: Sample = serde_json::from_str(r#"{"na\u006de":"b","k\u00e9y":1}"#).unwrap();
        assert_eq!(s.name.as_deref(), Some("b"));
        assert_eq!(s.rest.get("kéy"), Some(&json!(1)));
    }
}
