//! Helpers shared by the object tests: timestamps, JSON subset matching and error summaries.
#![allow(dead_code, unreachable_pub)]

use managed_agents_core::object::Error;
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};

/// `2026-01-01T00:00:00Z` plus `minutes`.
pub fn at(minutes: i64) -> Timestamp {
    Timestamp::from_millis(1_767_225_600_000 + minutes * 60_000)
}

/// Whether every key of `expected` is in `actual` with a matching value (recursively; arrays
/// must have the same length and match element-wise).
pub fn subset(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| subset(av, ev))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(av, ev)| subset(av, ev))
        }
        _ => actual == expected,
    }
}

/// Panics with both values when `expected` is not a subset of `actual`.
pub fn assert_subset(case: &str, actual: &Value, expected: &Value) {
    assert!(
        subset(actual, expected),
        "case {case}:\n actual:   {}\n expected: {}",
        serde_json::to_string_pretty(actual).unwrap_or_default(),
        serde_json::to_string_pretty(expected).unwrap_or_default()
    );
}

/// `{status, code, field, message}` of an error, for matching with [`subset`].
pub fn summary(error: &Error) -> Value {
    json!({
        "status": error.status(),
        "code": error.error_code(),
        "field": error.field(),
        "message": error.to_string(),
    })
}

/// Compares a command outcome with `then`: `{"records": [...]}` (subset-matched) or
/// `{"error": {...}}` (subset of [`summary`]).
pub fn check_outcome<R: serde::Serialize>(
    case: &str,
    outcome: Result<Vec<R>, Error>,
    then: &Value,
) {
    match (outcome, then.get("records"), then.get("error")) {
        (Ok(records), Some(expected), None) => {
            let actual = serde_json::to_value(&records).expect("records serialise");
            assert_subset(case, &actual, expected);
        }
        (Err(error), None, Some(expected)) => assert_subset(case, &summary(&error), expected),
        (Ok(records), _, _) => panic!(
            "case {case}: expected an error, got records {}",
            serde_json::to_string(&records).unwrap_or_default()
        ),
        (Err(error), _, _) => panic!("case {case}: expected records, got error {error:?}"),
    }
}

/// A string of `n` `x` characters.
pub fn long(n: usize) -> String {
    "x".repeat(n)
}

/// A metadata map with `n` pairs.
pub fn pairs(n: usize) -> Value {
    Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect())
}
