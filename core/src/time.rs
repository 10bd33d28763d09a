//! Timestamps: milliseconds since the Unix epoch, rendered as RFC 3339 with a `Z` suffix.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with millisecond precision, as the API renders it (`2026-04-07T04:27:43.197Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

/// A string that is not an RFC 3339 timestamp.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 timestamp: {0:?}")]
pub struct ParseError(pub String);

impl Timestamp {
    /// The time at `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// The current wall-clock time. Callers outside `core` pass it into pure functions; nothing
    /// in `fold` or `decide` reads the clock itself.
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    /// Parses any RFC 3339 timestamp (fractional seconds and offsets allowed).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| Self(t.timestamp_millis()))
            .map_err(|_| ParseError(text.to_owned()))
    }

    fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.0).unwrap_or_default()
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::Millis, true),
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_millis_with_z() {
        let t = Timestamp::parse("2026-04-07T04:27:43.197Z").expect("valid");
        assert_eq!(t.to_string(), "2026-04-07T04:27:43.197Z");
        let offset = Timestamp::parse("2026-04-07T06:27:43.197+02:00").expect("valid");
        assert_eq!(offset, t);
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
