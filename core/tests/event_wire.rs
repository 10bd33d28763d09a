//! The event wire model against JSON fixtures written from the API reference: every fixture
//! parses into the typed enum and serializes back to an equal JSON value, every persisted event
//! type has a fixture, and the params of section 7.2 follow their validation rules.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use managed_agents_core::event::{self, Event, EventParams, Preview};
use serde_json::{json, Value};

fn fixtures(dir: &str) -> Vec<(PathBuf, Value)> {
    let dir = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("tests/fixtures")
    .join(dir);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("fixture dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).expect("read fixture");
            let value = serde_json::from_str(&text).expect("fixture is JSON");
            (path, value)
        })
        .collect()
}

#[test]
fn every_event_fixture_round_trips_exactly() {
    let mut seen = BTreeSet::new();
    for (path, value) in fixtures("events") {
        let event: Event = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            serde_json::to_value(&event).expect("serialize"),
            value,
            "{} does not round-trip",
            path.display()
        );
        assert_eq!(value["type"], event.type_name(), "{}", path.display());
        seen.insert(event.type_name());
    }
    let all: BTreeSet<_> = event::TYPES.iter().copied().collect();
    assert_eq!(event::TYPES.len(), 42);
    assert_eq!(seen, all, "every persisted event type has a fixture");
}

#[test]
fn every_preview_fixture_round_trips_exactly() {
    let previews = fixtures("previews");
    assert_eq!(previews.len(), 4);
    for (path, value) in previews {
        let preview: Preview = serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(serde_json::to_value(&preview).expect("serialize"), value);
        assert_eq!(value["type"], preview.type_name());
    }
}

#[test]
fn previews_are_not_events() {
    let start =
        json!({"type": "event_start", "event": {"type": "agent.message", "id": "sevt_01a"}});
    assert!(serde_json::from_value::<Event>(start).is_err());
}

#[test]
fn server_events_need_processed_at_but_client_events_may_be_queued() {
    let idle = json!({"type": "session.status_running", "id": "sevt_01a", "processed_at": null});
    let err = serde_json::from_value::<Event>(idle).expect_err("server event needs a time");
    assert!(err.to_string().contains("processed_at"), "{err}");
    let missing = json!({"type": "agent.thinking", "id": "sevt_01a"});
    assert!(serde_json::from_value::<Event>(missing).is_err());
    let queued = json!({"type": "user.message", "id": "sevt_01a", "content": []});
    let event: Event = serde_json::from_value(queued).expect("queued message");
    assert_eq!(event.processed_at, None);
    assert_eq!(
        serde_json::to_value(&event).expect("serialize")["processed_at"],
        Value::Null,
        "queued events render processed_at as null, not absent"
    );
}

#[test]
fn unknown_event_types_are_rejected() {
    let odd = json!({"type": "agent.dancing", "id": "sevt_01a", "processed_at": "2026-04-07T04:27:43.197Z"});
    assert!(serde_json::from_value::<Event>(odd).is_err());
}

fn params(value: Value) -> Result<EventParams, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn validate(value: Value) -> Result<(), String> {
    params(value)?.validate().map_err(|e| e.to_string())
}

#[test]
fn params_parse_every_sendable_type() {
    let sendable = [
        json!({"type": "user.message", "content": [{"type": "text", "text": "hi"}]}),
        json!({"type": "user.interrupt"}),
        json!({"type": "user.interrupt", "session_thread_id": "sthr_01a"}),
        json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "allow"}),
        json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "deny", "deny_message": "no", "session_thread_id": "sthr_01a"}),
        json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_01a"}),
        json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_01a", "content": [{"type": "text", "text": "22C"}], "is_error": false}),
        json!({"type": "user.tool_result", "tool_use_id": "sevt_01a", "content": [], "is_error": null}),
        json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}}),
        json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "file", "file_id": "file_01a"}, "max_iterations": 20}),
        json!({"type": "system.message", "content": [{"type": "text", "text": "be brief"}]}),
    ];
    for value in sendable {
        assert_eq!(validate(value.clone()), Ok(()), "{value}");
    }
}

#[test]
fn params_reject_what_the_api_rejects() {
    let text = |n: usize| json!({"type": "text", "text": "x".repeat(n)});
    let cases = [
        (
            json!({"type": "agent.message", "content": []}),
            "unknown variant",
        ),
        (
            json!({"type": "user.message", "content": [], "extra": 1}),
            "unknown field",
        ),
        (
            json!({"type": "user.message", "content": []}),
            "content: must contain at least one block",
        ),
        (
            json!({"type": "user.message", "content": [{"type": "redacted"}]}),
            "content[0].type: redacted blocks are not allowed in user.message",
        ),
        (
            json!({"type": "user.message", "content": [text(1), {"type": "search_result", "source": "s", "title": "t", "content": [], "citations": {"enabled": false}}]}),
            "content[1].type: search_result blocks",
        ),
        (
            json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "allow", "deny_message": "x"}),
            "deny_message: may only be set when result is \"deny\"",
        ),
        (
            json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "maybe"}),
            "unknown variant",
        ),
        (
            json!({"type": "user.tool_confirmation", "tool_use_id": "agent_01a", "result": "allow"}),
            "not a valid event id",
        ),
        (
            json!({"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_01a", "content": [{"type": "redacted"}]}),
            "content[0].type: redacted blocks are not allowed in a tool result",
        ),
        (
            json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "x".repeat(262_145)}}),
            "rubric.content: must be at most 262144 characters",
        ),
        (
            json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}, "max_iterations": 21}),
            "max_iterations: must be between 1 and 20",
        ),
        (
            json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "r"}, "max_iterations": 0}),
            "max_iterations: must be between 1 and 20",
        ),
        (
            json!({"type": "user.define_outcome", "description": " ", "rubric": {"type": "text", "content": "r"}}),
            "description: must not be empty",
        ),
        (
            json!({"type": "system.message", "content": []}),
            "content: must contain between 1 and 1000 text blocks",
        ),
        (
            json!({"type": "system.message", "content": vec![text(1); 1001]}),
            "content: must contain between 1 and 1000 text blocks",
        ),
        (
            json!({"type": "system.message", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}),
            "unknown variant",
        ),
        (
            json!({"type": "user.message", "content": [{"type": "document", "source": {"type": "text", "media_type": "text/html", "data": "d"}}]}),
            "unknown variant",
        ),
    ];
    for (value, expected) in cases {
        let got = validate(value.clone()).expect_err(&value.to_string());
        assert!(
            got.contains(expected),
            "{value}\n got: {got}\nwant: {expected}"
        );
    }
    assert_eq!(
        validate(json!({"type": "system.message", "content": vec![text(1); 1000]})),
        Ok(())
    );
    assert_eq!(
        validate(
            json!({"type": "user.define_outcome", "description": "d", "rubric": {"type": "text", "content": "x".repeat(262_144)}})
        ),
        Ok(())
    );
}

#[test]
fn initial_events_allow_only_messages_and_outcomes() {
    let message =
        params(json!({"type": "user.message", "content": [{"type": "text", "text": "hi"}]}))
            .expect("params");
    let interrupt = params(json!({"type": "user.interrupt"})).expect("params");
    assert_eq!(event::validate_initial(&vec![message.clone(); 50]), Ok(()));
    let err = event::validate_initial(&vec![message.clone(); 51]).expect_err("too many");
    assert_eq!(
        err.to_string(),
        "initial_events: must contain at most 50 events"
    );
    let err = event::validate_initial(&[message, interrupt]).expect_err("interrupt");
    assert_eq!(err.field, "initial_events[1].type");
}

#[derive(Debug, serde::Deserialize)]
struct Batch {
    #[allow(dead_code)]
    events: Vec<EventParams>,
}

/// `(path, message)` of decoding `json` the way the server decodes bodies.
fn batch_error(json: &str) -> (String, String) {
    let mut de = serde_json::Deserializer::from_str(json);
    let err = serde_path_to_error::deserialize::<_, Batch>(&mut de).expect_err(json);
    (err.path().to_string(), err.inner().to_string())
}

#[test]
fn params_errors_keep_the_field_path() {
    let ok = r#"{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}"#;
    let (path, message) = batch_error(&format!(
        r#"{{"events": [{ok}, {{"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "maybe"}}]}}"#
    ));
    assert_eq!(path, "events[1].result");
    assert!(message.contains("unknown variant `maybe`"), "{message}");
    let (path, message) = batch_error(r#"{"events": [{"type": "no.such_event"}]}"#);
    assert_eq!(path, "events[0].type");
    assert!(message.contains("unknown variant"), "{message}");
    let (path, message) =
        batch_error(r#"{"events": [{"type": "user.message", "content": [], "extra": 1}]}"#);
    assert_eq!(path, "events[0].extra");
    assert!(message.contains("unknown field"), "{message}");
    let (path, message) = batch_error(r#"{"events": [{"type": "user.message"}]}"#);
    assert_eq!(path, "events[0]");
    assert!(message.contains("missing field `content`"), "{message}");
    let (path, message) = batch_error(r#"{"events": [{"content": []}]}"#);
    assert_eq!(path, "events[0]");
    assert!(message.contains("missing field `type`"), "{message}");
    // The tag after the fields: buffered, the variant's path leads the message.
    let (path, message) = batch_error(
        r#"{"events": [{"tool_use_id": "sevt_01a", "result": "maybe", "type": "user.tool_confirmation"}]}"#,
    );
    assert_eq!(path, "events[0]");
    assert!(message.starts_with("result: unknown variant"), "{message}");
    // Same wire format both ways.
    let value = json!({"type": "user.tool_confirmation", "tool_use_id": "sevt_01a", "result": "deny", "deny_message": "no"});
    let parsed = params(value.clone()).expect("parses");
    assert_eq!(serde_json::to_value(&parsed).expect("serializes"), value);
    assert!(params(json!("user.message")).is_err());
}
