//! The session projections: stored records round-trip through their byte encoding, the
//! Session object renders every field of API section 6.4 (checked against JSON fixtures), and
//! queued client events show `processed_at` only once the runner processed them.

mod support;

use std::fs;
use std::path::Path;

use managed_agents_core::event::Body;
use managed_agents_core::session::{fold, SessionRecord};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};
use support::*;

fn fixture(name: &str) -> Value {
    let path = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("tests/fixtures/sessions")
    .join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture JSON")
}

fn a_day() -> Vec<SessionRecord> {
    vec![
        created(),
        msg("m1"),
        running(),
        processed(&["m1"], 1_200),
        ev("mrs", 1_300, json!({"type": "span.model_request_start"})),
        ev(
            "mre",
            2_000,
            json!({"type": "span.model_request_end", "model_request_start_id": "sevt_mrs", "is_error": false,
            "model_usage": {"input_tokens": 100, "output_tokens": 40, "cache_creation_input_tokens": 30, "cache_read_input_tokens": 5, "speed": null}}),
        ),
        ev(
            "out",
            2_100,
            json!({"type": "user.define_outcome", "description": "a report", "rubric": {"type": "text", "content": "r"}, "max_iterations": null, "outcome_id": "outc_01a"}),
        ),
        ev(
            "oes",
            2_200,
            json!({"type": "span.outcome_evaluation_start", "outcome_id": "outc_01a", "iteration": 0}),
        ),
        ev(
            "oee",
            2_500,
            json!({"type": "span.outcome_evaluation_end", "outcome_id": "outc_01a", "iteration": 0, "outcome_evaluation_start_id": "sevt_oes",
            "result": "satisfied", "explanation": "good", "usage": {"input_tokens": 10, "output_tokens": 2, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "speed": null}}),
        ),
        idle(),
        ev(
            "upd",
            6_000,
            json!({"type": "session.updated", "title": "renamed", "metadata": {"team": "infra", "tier": "gold"}}),
        ),
        archived(),
    ]
}

#[test]
fn records_round_trip_through_bytes() {
    for record in a_day()
        .into_iter()
        .chain([deleted(), terminated(), requires(&["t1"])])
    {
        let bytes = record.encode();
        let back = SessionRecord::decode(&bytes).expect("decode");
        assert_eq!(back, record);
        let json: Value = serde_json::from_slice(&bytes).expect("json");
        let kind = json["type"].as_str().expect("type");
        assert_eq!(record.is_public(), !kind.starts_with("internal."), "{kind}");
    }
    assert!(SessionRecord::decode(b"{\"type\":\"internal.bogus\"}").is_err());
    assert!(SessionRecord::decode(b"not json").is_err());
}

#[test]
fn a_new_session_renders_every_field() {
    let state = fold(&[created()]);
    let now = Timestamp::from_millis(T0 + 90_000);
    assert_eq!(state.render(now).expect("exists"), fixture("new.json"));
}

#[test]
fn a_used_session_renders_usage_stats_outcomes_and_updates() {
    let state = fold(&a_day());
    let now = Timestamp::from_millis(T0 + 90_000);
    assert_eq!(
        state.render(now).expect("exists"),
        fixture("after_turn.json")
    );
}

#[test]
fn a_running_session_counts_active_time_until_now() {
    let state = fold(&[created(), msg("m1"), running()]);
    let rendered = state
        .render(Timestamp::from_millis(T0 + 11_000))
        .expect("exists");
    assert_eq!(rendered["status"], "running");
    assert_eq!(
        rendered["stats"],
        json!({"active_seconds": 10.0, "duration_seconds": 11.0})
    );
    assert_eq!(rendered["usage"]["active_seconds"], 10.0);
}

#[test]
fn missing_and_deleted_sessions_do_not_render() {
    assert_eq!(fold(&[]).render(Timestamp::from_millis(NOW)), None);
    assert!(!fold(&[created(), deleted()]).exists());
}

#[test]
fn queued_events_show_processed_at_once_processed() {
    let queued = msg("m1");
    let event = queued.event().expect("public").clone();
    let before = fold(&[created(), queued.clone()]);
    assert_eq!(before.render_event(&event).processed_at, None);
    let after = fold(&[created(), queued, running(), processed(&["m1"], 1_200)]);
    let shown = after.render_event(&event);
    assert_eq!(shown.processed_at, Some(at(1_200)));
    assert_eq!(
        serde_json::to_value(&shown).expect("json")["processed_at"],
        "2026-04-07T04:27:44.200Z"
    );
    assert!(matches!(shown.body, Body::UserMessage(_)));
    let server = running();
    let server_event = server.event().expect("public");
    assert_eq!(after.render_event(server_event), *server_event);
}
