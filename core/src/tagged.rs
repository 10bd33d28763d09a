//! Internally tagged enums (`{"type": "...", ...}`) that keep serde paths in their errors.
//!
//! `#[serde(tag = "type")]` buffers the whole object before it picks a variant, so an error
//! inside a variant loses its path: a bad `result` of the second event reads
//! `events[1]: unknown variant ...` instead of `events[1].result: ...`. [`deserialize`] reads
//! the tag first and, when it is the first key (as every SDK sends it), deserializes the
//! variant from the rest of the same map, so a path-tracking deserializer (the server's
//! `serde_path_to_error`) sees every field. When the tag comes later, the object is buffered and
//! the variant's own path is put in front of the message (`events[1]: result: ...`).
//!
//! The wire format is the one `#[serde(tag = "type")]` reads; serialization stays derived.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// An enum deserialized from an object whose `TAG` key names the variant.
pub(crate) trait Tagged: Sized {
    /// The key holding the variant name.
    const TAG: &'static str = "type";
    /// What the value is, for "invalid type" errors.
    const EXPECTING: &'static str;
    /// The variant names (a fieldless enum with the wire names as renames).
    type Tag: DeserializeOwned;
    /// Deserializes the fields of variant `tag` (the object without its tag) from `fields`.
    fn variant<'de, D: Deserializer<'de>>(tag: Self::Tag, fields: D) -> Result<Self, D::Error>;
}

/// The `Deserialize` implementation of a [`Tagged`] enum.
pub(crate) fn deserialize<'de, T: Tagged, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_map(TaggedVisitor(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: Tagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(first) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(T::TAG));
        };
        if first == T::TAG {
            let tag = map.next_value::<T::Tag>()?;
            return T::variant(tag, MapAccessDeserializer::new(map));
        }
        // The tag comes later: buffer the object, then deserialize the variant from it.
        let mut fields = Map::new();
        fields.insert(first, map.next_value::<Value>()?);
        let mut tag = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == T::TAG && tag.is_none() {
                tag = Some(map.next_value::<T::Tag>()?);
            } else {
                let value = map.next_value::<Value>()?;
                fields.insert(key, value);
            }
        }
        let tag = tag.ok_or_else(|| de::Error::missing_field(T::TAG))?;
        let mut track = serde_path_to_error::Track::new();
        let fields = serde_path_to_error::Deserializer::new(Value::Object(fields), &mut track);
        T::variant(tag, fields).map_err(|err: serde_json::Error| {
            let path = track.path().to_string();
            if path.is_empty() || path == "." {
                de::Error::custom(err)
            } else {
                de::Error::custom(format!("{path}: {err}"))
            }
        })
    }
}
