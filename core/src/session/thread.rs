//! Session threads (API §10) as projections of a folded session.
//!
//! Every session has one primary thread: the session's own agent loop, whose events are the
//! session's log. Its id is derived from the session id (`sthr_` + the session id's body), so
//! it needs no record and is the same in every process. Child threads (a coordinator's
//! delegations) are not implemented yet: a session has exactly its primary thread, and the
//! thread's status, usage, stats and times are the session's.

use serde::Serialize;
use serde_json::Value;

use super::state::{SessionState, Status};
use crate::agent::AgentSnapshot;
use crate::event::Usage;
use crate::ids::{SessionId, ThreadId};
use crate::time::Timestamp;

/// The statuses a thread can have, as `statuses[]` names them.
pub const STATUSES: [&str; 4] = ["running", "idle", "rescheduling", "terminated"];

/// The primary thread of session `session`.
pub fn primary_id(session: &SessionId) -> ThreadId {
    ThreadId::primary_of(session)
}

#[derive(Serialize)]
struct Stats {
    active_seconds: f64,
    duration_seconds: f64,
    startup_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Object<'a> {
    id: ThreadId,
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
    status: &'static str,
    agent: Option<&'a AgentSnapshot>,
    parent_thread_id: Option<&'a str>,
    workflow_run_id: Option<&'a str>,
    stats: Option<Stats>,
    usage: Option<Usage>,
    created_at: Timestamp,
    updated_at: Timestamp,
    archived_at: Option<Timestamp>,
}

fn millis_to_seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

impl SessionState {
    /// The session's threads in creation order: its primary thread.
    pub fn thread_ids(&self) -> Vec<ThreadId> {
        self.config
            .as_ref()
            .map(|config| vec![primary_id(&config.id)])
            .unwrap_or_default()
    }

    /// The `session_thread` object of thread `id` as of `now` (`None` when the session has no
    /// such thread). `stats` stay `null` until the thread first changed status, `usage` until
    /// it first went idle.
    pub fn render_thread(&self, id: &ThreadId, now: Timestamp) -> Option<Value> {
        let config = self.config.as_ref()?;
        if *id != primary_id(&config.id) {
            return None;
        }
        let transitioned = self.stop_reason.is_some() || self.status != Status::Idle;
        let end = self.terminated_at.unwrap_or(now);
        let active = self.active_seconds(now);
        let usage = self.stop_reason.is_some().then(|| {
            let mut usage = self.usage.clone();
            usage.active_seconds = Some(active);
            usage
        });
        let object = Object {
            id: id.clone(),
            kind: "session_thread",
            session_id: config.id.as_str(),
            status: self.status.as_str(),
            agent: self.agent.as_deref(),
            parent_thread_id: None,
            workflow_run_id: None,
            stats: transitioned.then(|| Stats {
                active_seconds: active,
                duration_seconds: millis_to_seconds(
                    (end.millis() - self.created_at.millis()).max(0),
                ),
                startup_seconds: None,
            }),
            usage,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        };
        serde_json::to_value(object).ok()
    }

    /// The status of thread `id`, when the session has it.
    pub fn thread_status(&self, id: &ThreadId) -> Option<Status> {
        let config = self.config.as_ref()?;
        (*id == primary_id(&config.id)).then_some(self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_thread_id_follows_the_session_id() {
        let session = SessionId::parse("sesn_01abcDEF").unwrap();
        assert_eq!(primary_id(&session).as_str(), "sthr_01abcDEF");
    }
}
