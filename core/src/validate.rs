//! Shared request validation: string lengths, list sizes, metadata limits (API §15), URLs and
//! host names. Every check returns a [`FieldError`] naming the JSON path of the offending field
//! (`tools[0].name`) and the rule it broke, which the HTTP layer turns into a 400.

use std::collections::BTreeMap;

/// Most metadata pairs an object may carry.
pub const METADATA_MAX_PAIRS: usize = 16;
/// Longest metadata key, in characters.
pub const METADATA_MAX_KEY: usize = 64;
/// Longest metadata value, in characters.
pub const METADATA_MAX_VALUE: usize = 512;

/// A request field that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// JSON path of the field, e.g. `tools[0].name` or `metadata.team`.
    pub field: String,
    /// The rule it broke, e.g. `must be at most 256 characters`.
    pub message: String,
    /// A stable `error.details.error_code` for this rule, e.g. `invalid_metadata`.
    pub code: Option<&'static str>,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            code: None,
        }
    }

    /// The same error carrying a stable `error_code`.
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// `value` has between `min` and `max` characters (Unicode scalar values).
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let count = value.chars().count();
    if count < min {
        let rule = if min == 1 {
            "must not be empty".to_owned()
        } else {
            format!("must be at least {min} characters")
        };
        return Err(FieldError::new(field, rule));
    }
    if count > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {count})"),
        ));
    }
    Ok(())
}

/// A list has at most `max` entries.
pub fn max_items(field: &str, len: usize, max: usize) -> Result<(), FieldError> {
    if len > max {
        return Err(FieldError::new(
            field,
            format!("must have at most {max} entries (got {len})"),
        ));
    }
    Ok(())
}

/// A list has between 1 and `max` entries.
pub fn non_empty_items(field: &str, len: usize, max: usize) -> Result<(), FieldError> {
    if len == 0 {
        return Err(FieldError::new(field, "must not be empty"));
    }
    max_items(field, len, max)
}

/// A complete metadata map obeys the limits: ≤16 pairs, keys 1–64 and values ≤512 characters.
/// Errors carry the `invalid_metadata` code.
pub fn metadata(field: &str, map: &BTreeMap<String, String>) -> Result<(), FieldError> {
    let invalid = |field: String, message: String| {
        FieldError::new(field, message).with_code("invalid_metadata")
    };
    if map.len() > METADATA_MAX_PAIRS {
        return Err(invalid(
            field.to_owned(),
            format!(
                "must have at most {METADATA_MAX_PAIRS} pairs (got {})",
                map.len()
            ),
        ));
    }
    for (key, value) in map {
        metadata_pair(field, key, Some(value)).map_err(|e| invalid(e.field, e.message))?;
    }
    Ok(())
}

fn metadata_pair(field: &str, key: &str, value: Option<&str>) -> Result<(), FieldError> {
    let path = format!("{field}.{key}");
    let keys = key.chars().count();
    if keys == 0 || keys > METADATA_MAX_KEY {
        return Err(FieldError::new(
            path,
            format!("metadata keys must be 1 to {METADATA_MAX_KEY} characters"),
        )
        .with_code("invalid_metadata"));
    }
    if let Some(value) = value {
        if value.chars().count() > METADATA_MAX_VALUE {
            return Err(FieldError::new(
                path,
                format!("metadata values must be at most {METADATA_MAX_VALUE} characters"),
            )
            .with_code("invalid_metadata"));
        }
    }
    Ok(())
}

/// Applies a metadata patch (§1.4): a string upserts, `null` deletes, and when `empty_deletes`
/// (environments) so does `""`. Validates the patch entries and the resulting map.
pub fn patch_metadata(
    field: &str,
    stored: &BTreeMap<String, String>,
    patch: &BTreeMap<String, Option<String>>,
    empty_deletes: bool,
) -> Result<BTreeMap<String, String>, FieldError> {
    let mut merged = stored.clone();
    for (key, value) in patch {
        metadata_pair(field, key, value.as_deref())?;
        match value {
            Some(value) if !(empty_deletes && value.is_empty()) => {
                merged.insert(key.clone(), value.clone());
            }
            _ => {
                merged.remove(key);
            }
        }
    }
    metadata(field, &merged)?;
    Ok(merged)
}

/// An absolute `http://` or `https://` URL with a host.
pub fn http_url(field: &str, value: &str) -> Result<(), FieldError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(host) if !host.is_empty() && !value.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(FieldError::new(field, "must be an absolute http(s) URL")),
    }
}

/// A DNS host name or IPv4 address (letters, digits, `-` and `.`), optionally with a leading
/// `*.` wildcard when `wildcard` is allowed.
pub fn hostname(field: &str, value: &str, wildcard: bool) -> Result<(), FieldError> {
    let name = match value.strip_prefix("*.") {
        Some(rest) if wildcard => rest,
        _ => value,
    };
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        let rule = if wildcard {
            "must be a host name, an IPv4 address or `*.domain`"
        } else {
            "must be a host name"
        };
        return Err(FieldError::new(field, rule));
    }
    Ok(())
}

/// An absolute sandbox path: starts with `/`, no `.`/`..`/empty segments, no control
/// characters, at most 1024 bytes.
pub fn mount_path(field: &str, value: &str) -> Result<(), FieldError> {
    let segments_ok = value
        .strip_prefix('/')
        .map(|rest| {
            rest.split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..")
        })
        .unwrap_or(false);
    if !segments_ok || value.len() > 1024 || value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must be an absolute path without empty, `.` or `..` segments",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters() {
        assert!(length("name", "é", 1, 1).is_ok());
        assert_eq!(
            length("name", "", 1, 5).expect_err("empty").message,
            "must not be empty"
        );
        assert!(length("name", "abcdef", 1, 5).is_err());
    }

    #[test]
    fn hosts_and_urls() {
        assert!(hostname("h", "api.example.com", false).is_ok());
        assert!(hostname("h", "10.0.0.1", true).is_ok());
        assert!(hostname("h", "*.example.com", true).is_ok());
        assert!(hostname("h", "*.example.com", false).is_err());
        assert!(hostname("h", "https://x", true).is_err());
        assert!(http_url("u", "https://mcp.example.com/sse").is_ok());
        assert!(http_url("u", "ftp://x").is_err());
        assert!(http_url("u", "https://").is_err());
        assert!(mount_path("m", "/workspace/repo").is_ok());
        assert!(mount_path("m", "/workspace/../etc").is_err());
        assert!(mount_path("m", "relative").is_err());
    }
}
