//! The work queue's wire shapes (API §5.3): `work`, `work_heartbeat` and the 412's
//! `current_state`.

use serde_json::{json, Value};

use super::{State, Work};
use crate::time::Timestamp;

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_string()))
}

/// The `work` object; `secret` is only set on a poll's answer.
pub fn render(work: &Work, secret: Option<&str>) -> Value {
    json!({
        "id": work.id.as_str(),
        "type": "work",
        "environment_id": work.environment_id.as_str(),
        "data": {"type": "session", "id": work.session_id.as_str()},
        "state": work.state.as_str(),
        "metadata": work.metadata,
        "secret": secret,
        "created_at": work.created_at.to_string(),
        "acknowledged_at": time(work.acknowledged_at),
        "started_at": time(work.started_at),
        "latest_heartbeat_at": time(work.latest_heartbeat_at),
        "stop_requested_at": time(work.stop_requested_at),
        "stopped_at": time(work.stopped_at),
    })
}

/// A heartbeat's answer: `last_heartbeat` is what the next heartbeat must echo (`""` when
/// there was none).
pub fn render_heartbeat(work: &Work, extended: bool) -> Value {
    json!({
        "type": "work_heartbeat",
        "last_heartbeat": work.latest_heartbeat_at.map(|t| t.to_string()).unwrap_or_default(),
        "lease_extended": extended,
        "state": work.state.as_str(),
        "ttl_seconds": ttl(work),
    })
}

/// The server's view of the lease in a 412 `heartbeat_precondition_failed`.
pub fn render_lease_state(work: &Work) -> Value {
    json!({
        "last_heartbeat": work.latest_heartbeat_at.map(|t| t.to_string()),
        "lease_extended": false,
        "state": work.state.as_str(),
        "ttl_seconds": ttl(work),
    })
}

fn ttl(work: &Work) -> u32 {
    match work.state {
        State::Stopped => 0,
        _ => work.ttl_seconds,
    }
}
