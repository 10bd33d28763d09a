//! A tri-state field for update bodies: absent (preserve), `null` (clear) or a value.
//!
//! API §1.4: the SDK omits unset fields and sends `null` for `None`, and many update endpoints
//! give the two different meanings. Declare update fields as `#[serde(default)] Patch<T>`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One field of an update body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// The field was not sent: keep the stored value.
    #[default]
    Absent,
    /// The field was sent as `null`.
    Null,
    /// The field was sent with a value.
    Value(T),
}

impl<T> Patch<T> {
    /// Whether the field was omitted.
    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }

    /// The sent value, treating `null` and absent alike.
    pub fn value(self) -> Option<T> {
        match self {
            Patch::Value(value) => Some(value),
            _ => None,
        }
    }

    /// `None` when absent, `Some(None)` for `null`, `Some(Some(v))` for a value.
    pub fn into_option(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(value) => Some(Some(value)),
        }
    }
}

impl<T> From<Option<T>> for Patch<T> {
    fn from(value: Option<T>) -> Self {
        value.map_or(Patch::Null, Patch::Value)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Patch<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(deserializer).map(Patch::from)
    }
}

/// Serialises `null` for both absent and null; pair with
/// `#[serde(skip_serializing_if = "Patch::is_absent")]` to omit absent fields.
impl<T: Serialize> Serialize for Patch<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Patch::Value(value) => value.serialize(serializer),
            _ => serializer.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Serialize)]
    struct Body {
        #[serde(default, skip_serializing_if = "Patch::is_absent")]
        system: Patch<String>,
    }

    #[test]
    fn absent_null_and_value_differ() {
        let absent: Body = serde_json::from_str("{}").expect("valid");
        let null: Body = serde_json::from_str(r#"{"system":null}"#).expect("valid");
        let value: Body = serde_json::from_str(r#"{"system":"hi"}"#).expect("valid");
        assert_eq!(absent.system, Patch::Absent);
        assert_eq!(null.system, Patch::Null);
        assert_eq!(value.system, Patch::Value("hi".to_owned()));
        assert_eq!(serde_json::to_string(&absent).expect("ok"), "{}");
        assert_eq!(
            serde_json::to_string(&null).expect("ok"),
            r#"{"system":null}"#
        );
    }
}
