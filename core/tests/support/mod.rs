//! Builders shared by the session tests: given-records, sendable params and one-line
//! summaries of decided records and folded state.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use managed_agents_core::event::{Body, Event, EventParams};
use managed_agents_core::ids::{EnvironmentId, EventId, SessionId, WorkspaceId};
use managed_agents_core::session::{Created, Fact, SessionRecord, SessionState};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Value};

/// Creation time of every test session.
pub const T0: i64 = 1_775_536_063_000; // 2026-04-07T04:27:43Z
/// "Now" of every decision.
pub const NOW: i64 = T0 + 60_000;

pub fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0 + offset_ms)
}

pub fn eid(short: &str) -> EventId {
    EventId::parse(&format!("sevt_{short}")).expect("event id")
}

pub fn config() -> Created {
    Created {
        id: SessionId::parse("sesn_01test").expect("id"),
        workspace: WorkspaceId::parse("wrkspc_01test").expect("id"),
        created_at: at(0),
        agent: serde_json::from_value(json!({
            "type": "agent", "id": "agent_01test", "version": 1, "name": "helper",
            "model": {"id": "claude-sonnet-4-5", "speed": "standard", "effort": {"type": "high"}, "inference_geo": null},
        }))
        .expect("snapshot"),
        environment_id: EnvironmentId::parse("env_01test").expect("id"),
        title: Some("first".into()),
        metadata: BTreeMap::from([("team".to_owned(), "infra".to_owned())]),
        resources: Vec::new(),
        vault_ids: Vec::new(),
        budget: None,
    }
}

pub fn created() -> SessionRecord {
    Fact::Created(Box::new(config())).into()
}

/// A server event `sevt_<short>` processed at `T0 + offset`.
pub fn ev(short: &str, offset: i64, body: Value) -> SessionRecord {
    let mut value = body;
    value["id"] = json!(format!("sevt_{short}"));
    if value.get("processed_at").is_none() {
        value["processed_at"] = json!(at(offset).to_string());
    }
    SessionRecord::Event(serde_json::from_value::<Event>(value).expect("test event"))
}

pub fn running() -> SessionRecord {
    ev("run", 1_000, json!({"type": "session.status_running"}))
}

pub fn running_at(short: &str, offset: i64) -> SessionRecord {
    ev(short, offset, json!({"type": "session.status_running"}))
}

pub fn idle() -> SessionRecord {
    idle_at("idle", 5_000)
}

pub fn idle_at(short: &str, offset: i64) -> SessionRecord {
    ev(
        short,
        offset,
        json!({"type": "session.status_idle", "stop_reason": {"type": "end_turn"}, "stop_details": null}),
    )
}

pub fn requires(ids: &[&str]) -> SessionRecord {
    let ids: Vec<_> = ids.iter().map(|s| format!("sevt_{s}")).collect();
    ev(
        "ra",
        4_000,
        json!({"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": ids}, "stop_details": null}),
    )
}

pub fn budget_paused() -> SessionRecord {
    ev(
        "bp",
        4_000,
        json!({"type": "session.status_idle", "stop_reason": {"type": "budget_reached"}, "stop_details": null}),
    )
}

pub fn rescheduled() -> SessionRecord {
    ev(
        "resched",
        2_000,
        json!({"type": "session.status_rescheduled"}),
    )
}

pub fn terminated() -> SessionRecord {
    ev("term", 9_000, json!({"type": "session.status_terminated"}))
}

pub fn deleted() -> SessionRecord {
    ev("del", 9_000, json!({"type": "session.deleted"}))
}

pub fn archived() -> SessionRecord {
    Fact::Archived { at: at(9_000) }.into()
}

pub fn tool_use(short: &str) -> SessionRecord {
    ev(
        short,
        3_000,
        json!({"type": "agent.tool_use", "name": "bash", "input": {"command": "ls"}, "evaluated_permission": "ask", "evaluation": {"type": "always_ask"}, "session_thread_id": null}),
    )
}

pub fn mcp_use(short: &str) -> SessionRecord {
    ev(
        short,
        3_000,
        json!({"type": "agent.mcp_tool_use", "mcp_server_name": "gh", "name": "search", "input": {}, "evaluated_permission": "ask", "evaluation": null, "session_thread_id": null}),
    )
}

pub fn custom_use(short: &str) -> SessionRecord {
    ev(
        short,
        3_000,
        json!({"type": "agent.custom_tool_use", "name": "weather", "input": {}, "session_thread_id": null}),
    )
}

pub fn msg(short: &str) -> SessionRecord {
    ev(
        short,
        500,
        json!({"type": "user.message", "processed_at": null, "content": [{"type": "text", "text": "hi"}]}),
    )
}

pub fn processed(shorts: &[&str], offset: i64) -> SessionRecord {
    SessionRecord::inputs_processed(shorts.iter().map(|s| eid(s)).collect(), at(offset))
}

pub fn params(value: Value) -> EventParams {
    serde_json::from_value(value).expect("test params")
}

pub fn p_msg() -> EventParams {
    params(json!({"type": "user.message", "content": [{"type": "text", "text": "hello"}]}))
}

pub fn p_interrupt() -> EventParams {
    params(json!({"type": "user.interrupt"}))
}

pub fn p_confirm(short: &str, result: &str) -> EventParams {
    params(
        json!({"type": "user.tool_confirmation", "tool_use_id": format!("sevt_{short}"), "result": result}),
    )
}

pub fn p_deny(short: &str, message: &str) -> EventParams {
    params(
        json!({"type": "user.tool_confirmation", "tool_use_id": format!("sevt_{short}"), "result": "deny", "deny_message": message}),
    )
}

pub fn p_custom(short: &str) -> EventParams {
    params(
        json!({"type": "user.custom_tool_result", "custom_tool_use_id": format!("sevt_{short}"), "content": [{"type": "text", "text": "22C"}]}),
    )
}

pub fn p_tool_result(short: &str) -> EventParams {
    params(
        json!({"type": "user.tool_result", "tool_use_id": format!("sevt_{short}"), "content": [{"type": "text", "text": "ok"}], "is_error": false}),
    )
}

pub fn p_outcome() -> EventParams {
    params(
        json!({"type": "user.define_outcome", "description": "a report", "rubric": {"type": "text", "content": "has a summary"}}),
    )
}

pub fn p_system() -> EventParams {
    params(json!({"type": "system.message", "content": [{"type": "text", "text": "be brief"}]}))
}

fn short(id: &EventId) -> &str {
    id.as_str().trim_start_matches("sevt_")
}

/// One token per record: `user.message@queued`, `idle(requires_action:c1)`, `running`, …
pub fn summarize_record(record: &SessionRecord) -> String {
    match record {
        SessionRecord::Fact(Fact::Created(_)) => "internal.session_created".into(),
        SessionRecord::Fact(Fact::Archived { .. }) => "internal.session_archived".into(),
        SessionRecord::Fact(Fact::InputsProcessed { .. }) => "internal.inputs_processed".into(),
        SessionRecord::Fact(Fact::ResourceAdded { .. }) => "internal.resource_added".into(),
        SessionRecord::Fact(Fact::ResourceUpdated { .. }) => "internal.resource_updated".into(),
        SessionRecord::Fact(Fact::ResourceRemoved { .. }) => "internal.resource_removed".into(),
        SessionRecord::Fact(Fact::IdempotencyKey { key, .. }) => format!("key({key})"),
        SessionRecord::Fact(Fact::ThreadOf { .. }) => "internal.thread_of".into(),
        SessionRecord::Fact(Fact::ThreadUsage { thread, .. }) => format!("usage({thread})"),
        SessionRecord::Fact(Fact::ContextCompacted { .. }) => "internal.context_compacted".into(),
        SessionRecord::Fact(Fact::TurnRestarted { .. }) => "internal.turn_restarted".into(),
        SessionRecord::Fact(Fact::RunnerClaimed { .. }) => "internal.runner_claimed".into(),
        SessionRecord::Event(event) => match &event.body {
            Body::SessionStatusRunning => "running".into(),
            Body::SessionStatusIdle(idle) => {
                let reason = serde_json::to_value(&idle.stop_reason).expect("json");
                let mut text = format!("idle({}", reason["type"].as_str().unwrap_or("?"));
                if let Some(ids) = reason["event_ids"].as_array() {
                    let ids: Vec<_> = ids
                        .iter()
                        .map(|v| v.as_str().unwrap_or("?").trim_start_matches("sevt_"))
                        .collect();
                    text.push(':');
                    text.push_str(&ids.join(","));
                }
                text + ")"
            }
            body if body.is_client() => format!(
                "{}@{}",
                event.type_name(),
                if event.processed_at.is_some() {
                    "now"
                } else {
                    "queued"
                }
            ),
            _ => event.type_name().to_owned(),
        },
    }
}

/// `status [pending=…] [inputs=…] [turn] [interrupt] [archived] [deleted]`.
pub fn summarize_state(state: &SessionState) -> String {
    let mut text = state.status.as_str().to_owned();
    if !state.pending_actions.is_empty() {
        let ids: Vec<_> = state.pending_actions.iter().map(short).collect();
        text += &format!(" pending={}", ids.join(","));
    }
    if !state.inputs.is_empty() {
        let ids: Vec<_> = state.inputs.iter().map(|i| short(&i.id)).collect();
        text += &format!(" inputs={}", ids.join(","));
    }
    if state.needs_turn() {
        text += " turn";
    }
    if state.interrupt.is_some() {
        text += " interrupt";
    }
    if state.archived_at.is_some() {
        text += " archived";
    }
    if state.deleted {
        text += " deleted";
    }
    text
}
