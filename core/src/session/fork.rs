//! Forking a session at one of its events (our extension, `POST /v1/sessions/{id}/fork`): the
//! child's log is the parent's records up to and including that event, with the creation fact
//! rewritten for the child (its id, its creation time, `metadata.forked_from`). Everything else
//! is copied as it was (event ids, times, internal facts), so the child folds to exactly the
//! parent's state at that event, and stream positions (which idempotency keys refer to) are the
//! same in both.
//!
//! Archiving is not an event, so an archived parent forks into a live child. A parent that is
//! running cannot be forked (its workspace is changing; interrupt it or wait
//! for its idle). A fork point inside a turn gives a child that is mid-turn with nothing running
//! it: the runner's recovery ([`super::turn::recover`]) settles it as it does after a crash.

use super::record::{Created, Fact, SessionRecord};
use super::rejection::Rejection;
use super::state::fold;
use crate::ids::{EventId, SessionId};
use crate::time::Timestamp;
use crate::validate::{self, METADATA_MAX_PAIRS};

/// The metadata key naming the parent of a forked session.
pub const FORKED_FROM: &str = "forked_from";

/// The child's records: `parent`'s log up to and including event `at` (its last event when
/// `None`), created as session `child` at `now`.
pub fn records(
    parent: &[SessionRecord],
    at: Option<&EventId>,
    child: SessionId,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, Rejection> {
    let state = fold(parent);
    let Some(SessionRecord::Fact(Fact::Created(created))) = parent.first() else {
        return Err(Rejection::NotFound("session not found".into()));
    };
    if !state.exists() {
        return Err(Rejection::NotFound(format!(
            "session {} not found",
            created.id
        )));
    }
    if let Some(why) = state.turn_open() {
        return Err(Rejection::Conflict(format!(
            "session {}: {why}; fork it once its turn is over and it is idle (or interrupt it first)",
            created.id
        )));
    }
    let end = match at {
        Some(id) => parent
            .iter()
            .position(|r| r.event().is_some_and(|e| &e.id == id))
            .ok_or_else(|| {
                Rejection::invalid(
                    "at_event_id",
                    format!("event {id} is not in session {}", created.id),
                )
            })?,
        None => parent
            .iter()
            .rposition(|r| r.event().is_some())
            .unwrap_or(0),
    };
    let mut metadata = created.metadata.clone();
    metadata.insert(FORKED_FROM.to_owned(), created.id.to_string());
    if metadata.len() > METADATA_MAX_PAIRS {
        return Err(Rejection::invalid(
            "metadata",
            format!(
                "the session has {} metadata pairs; a fork adds `{FORKED_FROM}`, and a session \
                 holds at most {METADATA_MAX_PAIRS}",
                created.metadata.len()
            ),
        ));
    }
    validate::metadata("metadata", &metadata)?;
    let mut out = Vec::with_capacity(end + 1);
    out.push(SessionRecord::Fact(Fact::Created(Box::new(Created {
        id: child,
        created_at: now,
        metadata,
        ..(**created).clone()
    }))));
    out.extend(parent[1..=end].iter().cloned());
    let forked = fold(&out);
    if forked.archived_at.is_some() || forked.deleted {
        return Err(Rejection::Conflict(format!(
            "session {} is archived at that event; fork it at an earlier one",
            created.id
        )));
    }
    Ok(out)
}

/// The idle event whose workspace a fork of `parent` at `at` (its last event when `None`)
/// starts from: the last `session.status_idle` at or before the fork point. At an idle
/// boundary (between an idle and the next turn's start) that is exactly the workspace of the
/// fork point; inside a turn it is the workspace as the turn found it. `None` before the first
/// idle (an empty workspace) or when `at` is not an event of `parent` (which [`records`]
/// refuses).
pub fn workspace_point(parent: &[SessionRecord], at: Option<&EventId>) -> Option<EventId> {
    let end = match at {
        Some(id) => parent
            .iter()
            .position(|r| r.event().is_some_and(|e| &e.id == id))?,
        None => parent.len().checked_sub(1)?,
    };
    parent[..=end].iter().rev().find_map(|record| {
        let event = record.event()?;
        (event.body.type_name() == "session.status_idle").then(|| event.id.clone())
    })
}
