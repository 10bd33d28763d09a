//! Query strings as the SDKs encode them: bracketed arrays (`statuses[]=a`, percent-encoded or
//! not, and bare repeated `statuses=a`), bracketed range keys (`created_at[gte]=…`), booleans and
//! list limits.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use managed_agents_core::storage::TimeRange;
use managed_agents_core::time::Timestamp;

use crate::error::Error;

/// The decoded query string as ordered `(name, value)` pairs.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes a raw query string.
    pub fn parse(raw: &str) -> Self {
        Self {
            pairs: form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// The single value of `name`, if present. A repeated scalar is a 400.
    pub fn one(&self, name: &str) -> Result<Option<&str>, Error> {
        let mut values = self.pairs.iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v.as_str());
        if values.next().is_some() {
            return Err(Error::invalid(format!(
                "{name}: given more than once; expected a single value"
            )));
        }
        Ok(first)
    }

    /// Every value of the array `name`, given as `name[]` or bare repeated `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        let bracketed = format!("{name}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| *k == bracketed || k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean `name` (`true`/`false`), `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, Error> {
        match self.one(name)? {
            None => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(other) => Err(Error::invalid(format!(
                "{name}: expected true or false, got {other:?}"
            ))),
        }
    }

    /// An unsigned integer `name`, if present.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, Error> {
        self.one(name)?
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    Error::invalid(format!(
                        "{name}: expected a non-negative integer, got {text:?}"
                    ))
                })
            })
            .transpose()
    }

    /// `limit`, between 1 and `max`, `default` when absent.
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, Error> {
        match self.uint("limit")? {
            None => Ok(default),
            Some(n) if n >= 1 && n <= max as u64 => Ok(n as usize),
            Some(n) => Err(Error::invalid(format!(
                "limit: must be between 1 and {max}, got {n}"
            ))),
        }
    }

    /// The range filter `name[gt|gte|lt|lte]` of RFC 3339 timestamps; `allowed` lists the bounds
    /// this endpoint supports.
    pub fn time_range(&self, name: &str, allowed: &[&str]) -> Result<TimeRange, Error> {
        let mut range = TimeRange::default();
        for bound in ["gt", "gte", "lt", "lte"] {
            let key = format!("{name}[{bound}]");
            let Some(text) = self.one(&key)? else {
                continue;
            };
            if !allowed.contains(&bound) {
                return Err(Error::invalid(format!(
                    "{key}: not supported on this endpoint"
                )));
            }
            let t = Timestamp::parse(text).map_err(|_| {
                Error::invalid(format!(
                    "{key}: expected an RFC 3339 timestamp, got {text:?}"
                ))
            })?;
            let slot = match bound {
                "gt" => &mut range.gt,
                "gte" => &mut range.gte,
                "lt" => &mut range.lt,
                _ => &mut range.lte,
            };
            *slot = Some(t);
        }
        Ok(range)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::parse(parts.uri.query().unwrap_or("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_accept_encoded_brackets_and_bare_repeats() {
        let q = Query::parse("statuses%5B%5D=idle&statuses[]=running&statuses=terminated");
        assert_eq!(q.all("statuses"), ["idle", "running", "terminated"]);
    }

    #[test]
    fn ranges_parse_bracketed_keys() {
        let q = Query::parse("created_at%5Bgte%5D=2026-01-01T00%3A00%3A00Z");
        let range = q.time_range("created_at", &["gte", "lte"]).expect("valid");
        assert_eq!(
            range.gte.map(|t| t.to_string()).as_deref(),
            Some("2026-01-01T00:00:00.000Z")
        );
        let bad = Query::parse("created_at[gt]=2026-01-01T00:00:00Z");
        assert!(bad.time_range("created_at", &["gte"]).is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(Query::parse("").limit(20, 100).ok(), Some(20));
        assert!(Query::parse("limit=0").limit(20, 100).is_err());
        assert!(Query::parse("limit=101").limit(20, 100).is_err());
        assert!(Query::parse("limit=x").limit(20, 100).is_err());
    }
}
