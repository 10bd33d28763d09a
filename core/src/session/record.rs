//! What a session's stream holds: public events and internal facts, encoded as JSON.
//!
//! Internal facts never appear in the event list API. Their `type` values carry the
//! `internal.` prefix so they can never collide with a public event type the API adds later;
//! [`SessionRecord::decode`] dispatches on that prefix.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::idempotency::IdempotencyKey;
use super::thread::ThreadRole;
use crate::agent::AgentSnapshot;
use crate::event::{Budget, Event};
use crate::ids::{EnvironmentId, EventId, ResourceId, SessionId, ThreadId, VaultId, WorkspaceId};
use crate::resource::Resource;
use crate::time::Timestamp;

const INTERNAL: &str = "internal.";

/// One entry of a session stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionRecord {
    /// A public event, listed and streamed.
    Event(Event),
    /// An internal fact.
    Fact(Fact),
}

/// Facts about a session that are not events of the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Fact {
    /// The session was created; always the first record.
    #[serde(rename = "internal.session_created")]
    Created(Box<Created>),
    /// The runner consumed these client events; queued ones were processed at `at`.
    #[serde(rename = "internal.inputs_processed")]
    InputsProcessed {
        /// The consumed `user.*` / `system.message` events.
        event_ids: Vec<EventId>,
        /// When.
        at: Timestamp,
    },
    /// The session was archived.
    #[serde(rename = "internal.session_archived")]
    Archived {
        /// When.
        at: Timestamp,
    },
    /// A resource was added after creation (`POST /v1/sessions/{id}/resources`).
    #[serde(rename = "internal.resource_added")]
    ResourceAdded {
        /// The resource (a GitHub token sealed, never rendered).
        resource: Resource,
        /// When.
        at: Timestamp,
    },
    /// A resource changed (a GitHub token rotated): replaces the resource with the same id.
    #[serde(rename = "internal.resource_updated")]
    ResourceUpdated {
        /// The resource as it is now.
        resource: Resource,
        /// When.
        at: Timestamp,
    },
    /// A keyed send (`Idempotency-Key`) appended the events that follow this fact: the key,
    /// the hash of the request body and the echoed client events (see
    /// [`crate::session::idempotency`]).
    #[serde(rename = "internal.idempotency_key")]
    IdempotencyKey {
        /// The key.
        key: IdempotencyKey,
        /// [`crate::session::idempotency::request_hash`] of the request.
        request_hash: String,
        /// The client events the request appended, in order.
        event_ids: Vec<EventId>,
        /// When.
        at: Timestamp,
    },
    /// A resource was removed (`DELETE /v1/sessions/{id}/resources/{resource_id}`).
    #[serde(rename = "internal.resource_removed")]
    ResourceRemoved {
        /// The removed resource.
        id: ResourceId,
        /// When.
        at: Timestamp,
    },
    /// This stream is a child thread of session `session` (right after the creation fact):
    /// it is no session of its own (not listed, not reachable as a session), its agent is the
    /// roster member `agent_name` (see [`crate::session::thread`]).
    #[serde(rename = "internal.thread_of")]
    ThreadOf {
        /// The session the thread belongs to.
        session: SessionId,
        /// The roster member's name (its agent's name).
        agent_name: String,
        /// What kind of agent the thread runs (a roster member when absent).
        #[serde(default, skip_serializing_if = "ThreadRole::is_member")]
        role: ThreadRole,
        /// The workflow run that started the thread.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workflow_run_id: Option<String>,
    },
    /// A runner took the session's lease with fencing token `token` (see
    /// [`crate::session::fence`]): from here on only records written under that token or a
    /// greater one are the runner's.
    #[serde(rename = "internal.runner_claimed")]
    RunnerClaimed {
        /// The runner process (for operators).
        holder: String,
        /// The lease's fencing token.
        token: u64,
        /// When.
        at: Timestamp,
    },
    /// The server restarted during the session's turn, which goes on (`recover` with
    /// `resume`): the runner runs it again without new input.
    #[serde(rename = "internal.turn_restarted")]
    TurnRestarted {
        /// When.
        at: Timestamp,
    },
    /// The agent's context was compacted (with `agent.thread_context_compacted`): from here
    /// on its model conversation starts from `summary` instead of what came before.
    #[serde(rename = "internal.context_compacted")]
    ContextCompacted {
        /// The model's summary of the conversation so far.
        summary: String,
        /// When.
        at: Timestamp,
        /// How many parts of the conversation's last user message (the turn's new input, which
        /// the summary does not cover) follow the summary unchanged.
        #[serde(default, skip_serializing_if = "is_zero")]
        kept_parts: u32,
    },
    /// A child thread's cumulative usage and list cost as of its latest idle, recorded on the
    /// session's stream: the session's usage adds what grew since the previous one.
    #[serde(rename = "internal.thread_usage")]
    ThreadUsage {
        /// The child thread.
        thread: ThreadId,
        /// Its cumulative usage.
        usage: crate::event::Usage,
        /// Its cumulative list cost in nano-dollars (saturated at `u64::MAX`).
        list_cost_nanos: u64,
        /// When.
        at: Timestamp,
    },
}

/// The configuration a session was created with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The session id (also the stream key).
    pub id: SessionId,
    /// The owning workspace.
    pub workspace: WorkspaceId,
    /// Creation time.
    pub created_at: Timestamp,
    /// The resolved agent snapshot (the Session object's `agent`).
    pub agent: AgentSnapshot,
    /// The environment it runs in.
    pub environment_id: EnvironmentId,
    /// The title.
    pub title: Option<String>,
    /// Metadata.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The resources it was created with (GitHub tokens sealed). Resources added or removed
    /// later are facts; [`crate::session::SessionState::resources`] is the current list.
    #[serde(default)]
    pub resources: Vec<Resource>,
    /// Vaults whose credentials the session may use.
    #[serde(default)]
    pub vault_ids: Vec<VaultId>,
    /// The spend cap, if any.
    #[serde(default)]
    pub budget: Option<Budget>,
}

/// A stored record that is not a valid session record.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode session record: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl SessionRecord {
    /// The record as stored: JSON bytes.
    pub fn encode(&self) -> Bytes {
        let json = match self {
            SessionRecord::Event(event) => serde_json::to_vec(event),
            SessionRecord::Fact(fact) => serde_json::to_vec(fact),
        };
        // Plain data with string map keys always serializes; an empty payload would fail to
        // decode loudly rather than corrupt state silently.
        Bytes::from(json.unwrap_or_default())
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let peek: Peek<'_> = serde_json::from_slice(bytes)?;
        if peek.kind.starts_with(INTERNAL) {
            Ok(SessionRecord::Fact(serde_json::from_slice(bytes)?))
        } else {
            Ok(SessionRecord::Event(serde_json::from_slice(bytes)?))
        }
    }

    /// The public event, if this record is one (what the list and stream APIs show).
    pub fn event(&self) -> Option<&Event> {
        match self {
            SessionRecord::Event(event) => Some(event),
            SessionRecord::Fact(_) => None,
        }
    }

    /// Whether this record is a public event.
    pub fn is_public(&self) -> bool {
        matches!(self, SessionRecord::Event(_))
    }

    /// The record consuming `event_ids` at `at` (what the runner appends when it takes input).
    pub fn inputs_processed(event_ids: Vec<EventId>, at: Timestamp) -> Self {
        SessionRecord::Fact(Fact::InputsProcessed { event_ids, at })
    }
}

impl From<Event> for SessionRecord {
    fn from(event: Event) -> Self {
        SessionRecord::Event(event)
    }
}

impl From<Fact> for SessionRecord {
    fn from(fact: Fact) -> Self {
        SessionRecord::Fact(fact)
    }
}

/// Whether a count is zero (a field left out of a record when it is).
fn is_zero(count: &u32) -> bool {
    *count == 0
}
