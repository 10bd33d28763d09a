//! The self-hosted environments' work queue (API §5.3): a work item (`work_…`) for each session
//! on a `self_hosted` environment, enqueued when the session is created, and again when a
//! `user.message` arrives after a worker stopped the previous one ([`ensure_for_session`]).
//!
//! Every work item is its own stream, folded to a [`Work`]; its catalog entry (kind
//! [`Kind::Work`], parent = the environment, status = the lease state) is the queue. Every
//! transition is a pure function of the folded item and the caller's `now` (`deliver`, `ack`,
//! `heartbeat`, `stop`, `expire`, …) written through [`crate::stream::write`], so two workers
//! polling at once append at the same expected version and exactly one delivery wins: the
//! loser re-decides on the caught-up item, sees a fresh delivery and moves to the next item.
//!
//! Lease: `queued` → poll appends `work.delivered` (still `queued`, "pending" until acked; a
//! delivery older than `reclaim_older_than_ms` may be delivered again) → ack → `starting` →
//! first heartbeat (`expected_last_heartbeat = NO_HEARTBEAT`) → `active`; each heartbeat
//! extends the lease by its TTL. A lapsed lease is noticed lazily by the next poll, which
//! appends `work.requeued` (back to `queued`, heartbeat cleared) before delivering. Stop:
//! graceful → `stopping` (the worker sees it on its next heartbeat), forced → `stopped`.

mod commands;
mod render;

pub use commands::{
    ack, decide_ack, decide_heartbeat, decide_poll, decide_stop, ensure_for_session, heartbeat,
    load, poll, session_items, stats, stop, stop_for_session, update_metadata, Stats,
};
pub use render::{render, render_heartbeat, render_lease_state};

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{EnvironmentId, SessionId, WorkId, WorkspaceId};
use crate::object::{self, DecodeError, Object};
use crate::storage::{CatalogEntry, Kind, StreamId};
use crate::time::Timestamp;

/// The `expected_last_heartbeat` of a worker's first heartbeat.
pub const NO_HEARTBEAT: &str = "NO_HEARTBEAT";
/// The lease TTL when the worker asks for none.
pub const DEFAULT_TTL_SECONDS: u32 = 90;
/// The largest `desired_ttl_seconds` accepted.
pub const MAX_TTL_SECONDS: u32 = 3600;
/// The default `reclaim_older_than_ms` of a poll.
pub const DEFAULT_RECLAIM_MS: i64 = 5000;

/// A work item's lease state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Waiting for a worker (possibly delivered, not acked).
    Queued,
    /// Acked, no heartbeat yet.
    Starting,
    /// Heartbeating.
    Active,
    /// Stop requested; the worker finishes.
    Stopping,
    /// Done.
    Stopped,
}

impl State {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Starting => "starting",
            State::Active => "active",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

/// One record of a work item's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Enqueued.
    #[serde(rename = "work.created")]
    Created {
        /// Its id.
        id: WorkId,
        /// Its owner.
        workspace: WorkspaceId,
        /// The environment whose queue holds it.
        environment_id: EnvironmentId,
        /// The session it serves.
        session_id: SessionId,
        /// Initial metadata (the session's).
        metadata: BTreeMap<String, String>,
        /// When.
        at: Timestamp,
    },
    /// Handed to a worker by a poll (not yet acked).
    #[serde(rename = "work.delivered")]
    Delivered {
        /// The poller's `Anthropic-Worker-ID`, if sent.
        worker_id: Option<String>,
        /// When.
        at: Timestamp,
    },
    /// Acked: the worker took it (→ `starting`).
    #[serde(rename = "work.acked")]
    Acked {
        /// When.
        at: Timestamp,
    },
    /// A heartbeat extended the lease (→ `active`).
    #[serde(rename = "work.heartbeat")]
    Heartbeat {
        /// When (strictly after the previous heartbeat: it is the lease's version).
        at: Timestamp,
        /// The lease's TTL from now.
        ttl_seconds: u32,
    },
    /// The lease lapsed: back to `queued`.
    #[serde(rename = "work.requeued")]
    Requeued {
        /// When.
        at: Timestamp,
    },
    /// A graceful stop was asked (→ `stopping`).
    #[serde(rename = "work.stop_requested")]
    StopRequested {
        /// When.
        at: Timestamp,
    },
    /// Stopped (terminal).
    #[serde(rename = "work.stopped")]
    Stopped {
        /// When.
        at: Timestamp,
    },
    /// Metadata replaced.
    #[serde(rename = "work.metadata_updated")]
    MetadataUpdated {
        /// The whole new metadata.
        metadata: BTreeMap<String, String>,
        /// When.
        at: Timestamp,
    },
}

impl Record {
    /// JSON bytes for the store.
    pub fn encode(&self) -> Bytes {
        object::encode(self)
    }

    /// Parses stored JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        object::decode(bytes)
    }
}

/// A work item folded from its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// Its id.
    pub id: WorkId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Its environment.
    pub environment_id: EnvironmentId,
    /// The session it serves.
    pub session_id: SessionId,
    /// Its metadata.
    pub metadata: BTreeMap<String, String>,
    /// Its lease state.
    pub state: State,
    /// Enqueued.
    pub created_at: Timestamp,
    /// The last delivery by a poll since it was (re-)queued.
    pub delivered_at: Option<Timestamp>,
    /// The worker of that delivery.
    pub worker_id: Option<String>,
    /// Acked.
    pub acknowledged_at: Option<Timestamp>,
    /// First heartbeat of the current lease.
    pub started_at: Option<Timestamp>,
    /// Last heartbeat of the current lease.
    pub latest_heartbeat_at: Option<Timestamp>,
    /// The current lease's TTL.
    pub ttl_seconds: u32,
    /// Stop asked.
    pub stop_requested_at: Option<Timestamp>,
    /// Stopped.
    pub stopped_at: Option<Timestamp>,
}

impl Work {
    /// The work item's stream.
    pub fn stream(id: &WorkId) -> StreamId {
        StreamId::new(id.as_str())
    }

    /// The `last_heartbeat` a worker must echo: the latest heartbeat's time, or
    /// [`NO_HEARTBEAT`] before the first.
    pub fn lease_version(&self) -> String {
        self.latest_heartbeat_at
            .map(|t| t.to_string())
            .unwrap_or_else(|| NO_HEARTBEAT.to_owned())
    }

    /// Whether it was delivered by a poll less than `reclaim_ms` before `now` (and not acked).
    pub fn pending(&self, reclaim_ms: i64, now: Timestamp) -> bool {
        self.state == State::Queued
            && self
                .delivered_at
                .is_some_and(|at| now.millis() - at.millis() < reclaim_ms)
    }

    /// When the current lease lapses (a held item: acked or heartbeating).
    pub fn lease_expires_at(&self) -> Option<Timestamp> {
        match self.state {
            State::Starting | State::Active | State::Stopping => {
                let from = self.latest_heartbeat_at.or(self.acknowledged_at)?;
                Some(Timestamp::from_millis(
                    from.millis() + i64::from(self.ttl_seconds) * 1000,
                ))
            }
            State::Queued | State::Stopped => None,
        }
    }
}

impl Object for Work {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        if let Record::Created {
            id,
            workspace,
            environment_id,
            session_id,
            metadata,
            at,
        } = record
        {
            *object = Some(Work {
                id: id.clone(),
                workspace: workspace.clone(),
                environment_id: environment_id.clone(),
                session_id: session_id.clone(),
                metadata: metadata.clone(),
                state: State::Queued,
                created_at: *at,
                delivered_at: None,
                worker_id: None,
                acknowledged_at: None,
                started_at: None,
                latest_heartbeat_at: None,
                ttl_seconds: DEFAULT_TTL_SECONDS,
                stop_requested_at: None,
                stopped_at: None,
            });
            return;
        }
        let Some(work) = object.as_mut() else {
            return;
        };
        match record {
            Record::Created { .. } => {}
            Record::Delivered { worker_id, at } => {
                work.delivered_at = Some(*at);
                work.worker_id = worker_id.clone();
            }
            Record::Acked { at } => {
                work.state = State::Starting;
                work.acknowledged_at = Some(*at);
                work.ttl_seconds = DEFAULT_TTL_SECONDS;
            }
            Record::Heartbeat { at, ttl_seconds } => {
                if work.state == State::Starting {
                    work.state = State::Active;
                }
                work.started_at.get_or_insert(*at);
                work.latest_heartbeat_at = Some(*at);
                work.ttl_seconds = *ttl_seconds;
            }
            Record::Requeued { .. } => {
                work.state = State::Queued;
                work.delivered_at = None;
                work.acknowledged_at = None;
                work.started_at = None;
                work.latest_heartbeat_at = None;
                work.ttl_seconds = DEFAULT_TTL_SECONDS;
            }
            Record::StopRequested { at } => {
                work.state = State::Stopping;
                work.stop_requested_at = Some(*at);
            }
            Record::Stopped { at } => {
                work.state = State::Stopped;
                work.stop_requested_at.get_or_insert(*at);
                work.stopped_at = Some(*at);
            }
            Record::MetadataUpdated { metadata, .. } => work.metadata = metadata.clone(),
        }
    }

    fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::Work,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.parent = Some(self.environment_id.as_str().to_owned());
        entry.status = Some(self.state.as_str().to_owned());
        entry
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Why a work command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A request field is invalid (400).
    #[error("{0}")]
    Invalid(String),
    /// No such work item in this environment (404).
    #[error("{0}")]
    NotFound(String),
    /// The item's state forbids the command (409).
    #[error("{0}")]
    Conflict(String),
    /// `expected_last_heartbeat` is not the lease's current version (412
    /// `heartbeat_precondition_failed`, with the server's view of the lease).
    #[error("expected_last_heartbeat does not match the lease's last heartbeat")]
    Precondition(Box<Work>),
    /// The store failed.
    #[error("storage: {0}")]
    Storage(String),
}

#[cfg(test)]
mod tests;
