//! The work queue's commands: each decides on the folded item (pure, given `now`) and writes
//! through [`stream::write`], so concurrent callers serialize on the item's stream version.

use std::collections::BTreeMap;

use super::{Error, Record, State, Work, NO_HEARTBEAT};
use crate::ids::{EnvironmentId, SessionId, WorkId, WorkspaceId};
use bytes::Bytes;

use crate::storage::{Append, CatalogQuery, Direction, Expected, Kind, Order, Store, StreamId};
use crate::stream::{self, Head};
use crate::time::Timestamp;

type Item = Option<Work>;

fn storage<R>(error: stream::Error<R>) -> Error
where
    Error: From<R>,
{
    match error {
        stream::Error::Rejected(r) => Error::from(r),
        other => Error::Storage(other.to_string()),
    }
}

impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

/// Creates work item `id` for `session_id` on `environment_id`'s queue.
async fn create<S: Store>(
    store: &S,
    id: WorkId,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    session_id: &SessionId,
    metadata: BTreeMap<String, String>,
    now: Timestamp,
) -> Result<Work, Error> {
    let record = Record::Created {
        id: id.clone(),
        workspace: workspace.clone(),
        environment_id: environment_id.clone(),
        session_id: session_id.clone(),
        metadata,
        at: now,
    };
    let head = stream::create::<S, Item>(store, &Work::stream(&id), vec![record])
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    head.state
        .ok_or_else(|| Error::Storage("work item not created".to_owned()))
}

/// The stream listing the work items enqueued for `session_id`, in order (one work id per
/// record): the last one is the session's current item.
pub fn session_items(session_id: &SessionId) -> StreamId {
    StreamId::new(format!("worksession:{session_id}"))
}

/// How long an item named in [`session_items`] but not created yet counts as being created.
const CREATE_GRACE_MS: i64 = 10_000;

/// Enqueues a work item for `session_id` unless its current one is still live (not
/// `stopped`); returns the new item, if any. Sessions get one on creation and another when
/// new input arrives after a worker stopped the last one. The new id is appended to
/// [`session_items`] at the expected version before the item is created, so of two racing
/// callers exactly one enqueues.
pub async fn ensure_for_session<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    session_id: &SessionId,
    metadata: BTreeMap<String, String>,
    now: Timestamp,
) -> Result<Option<Work>, Error> {
    let pointer = session_items(session_id);
    let last = store
        .read(&pointer, u64::MAX, Direction::Backward, 1)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    let version = last.first().map_or(0, |r| r.version);
    if let Some(record) = last.first() {
        let current = std::str::from_utf8(&record.payload)
            .ok()
            .and_then(|text| WorkId::parse(text).ok())
            .ok_or_else(|| Error::Storage(format!("{pointer}: undecodable work id")))?;
        let live = match load(store, workspace, environment_id, &current).await {
            Ok(head) => head.state.is_some_and(|work| work.state != State::Stopped),
            // Claimed by a caller still creating it, unless that caller failed long ago.
            Err(Error::NotFound(_)) => crate::ids::created_at(current.as_str())
                .is_some_and(|at| now.millis() - at.millis() < CREATE_GRACE_MS),
            Err(other) => return Err(other),
        };
        if live {
            return Ok(None);
        }
    }
    let id = WorkId::generate(now);
    let claimed = store
        .append(Append {
            stream: pointer,
            expected: Expected::Exactly(version),
            events: vec![Bytes::from(id.as_str().to_owned())],
            catalog: None,
        })
        .await;
    match claimed {
        Ok(_) => {}
        Err(crate::storage::Error::WrongExpectedVersion { .. }) => return Ok(None),
        Err(e) => return Err(Error::Storage(e.to_string())),
    }
    create(
        store,
        id,
        workspace,
        environment_id,
        session_id,
        metadata,
        now,
    )
    .await
    .map(Some)
}

/// Stops `session_id`'s current work item (forced, or gracefully: the worker sees `stopping`
/// on its next heartbeat; a queued item stops at once), if it has a live one. For an archived
/// or deleted session.
pub async fn stop_for_session<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    session_id: &SessionId,
    force: bool,
    now: Timestamp,
) -> Result<Option<Work>, Error> {
    let last = store
        .read(&session_items(session_id), u64::MAX, Direction::Backward, 1)
        .await
        .map_err(|e| Error::Storage(e.to_string()))?;
    let Some(id) = last
        .first()
        .and_then(|r| std::str::from_utf8(&r.payload).ok())
        .and_then(|text| WorkId::parse(text).ok())
    else {
        return Ok(None);
    };
    let head: Head<Item> = stream::load(store, &Work::stream(&id))
        .await
        .map_err(storage)?;
    let Some(work) = head.state.filter(|w| &w.workspace == workspace) else {
        return Ok(None);
    };
    if work.state == State::Stopped {
        return Ok(None);
    }
    stop(store, workspace, &work.environment_id, &id, force, now)
        .await
        .map(Some)
}

/// Loads work item `id` of `environment_id` in `workspace` (404 for anything else).
pub async fn load<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
) -> Result<Head<Item>, Error> {
    let head: Head<Item> = stream::load(store, &Work::stream(id))
        .await
        .map_err(storage)?;
    match &head.state {
        Some(work) if &work.workspace == workspace && &work.environment_id == environment_id => {
            Ok(head)
        }
        _ => Err(Error::NotFound(format!("work item {id} not found"))),
    }
}

/// Writes `decide`'s records on item `id` (which must belong to the environment).
async fn write<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
    mut decide: impl FnMut(&Work) -> Result<Vec<Record>, Error>,
) -> Result<Work, Error> {
    let mut head = load(store, workspace, environment_id, id).await?;
    stream::write(store, &Work::stream(id), &mut head, |item| match item {
        Some(work) => decide(work),
        None => Err(Error::NotFound(format!("work item {id} not found"))),
    })
    .await
    .map_err(storage)?;
    head.state
        .ok_or_else(|| Error::NotFound(format!("work item {id} not found")))
}

/// The records a poll appends to `work`: a requeue when its lease lapsed, then a delivery
/// when it is queued and not delivered within the last `reclaim_ms` (empty: not for this
/// poller).
pub fn decide_poll(
    work: &Work,
    worker_id: Option<&str>,
    reclaim_ms: i64,
    now: Timestamp,
) -> Vec<Record> {
    let mut records = Vec::new();
    let lapsed = work.lease_expires_at().is_some_and(|at| at <= now);
    if lapsed && work.state == State::Stopping {
        return vec![Record::Stopped { at: now }];
    }
    if lapsed {
        records.push(Record::Requeued { at: now });
    } else if work.state != State::Queued || work.pending(reclaim_ms, now) {
        return records;
    }
    records.push(Record::Delivered {
        worker_id: worker_id.map(str::to_owned),
        at: now,
    });
    records
}

/// Polls `environment_id`'s queue once: the oldest item that is queued (and not pending
/// within `reclaim_ms`) or whose lease lapsed, delivered to this poller. Exactly one of
/// several concurrent pollers gets a given item (the delivery is an append at the item's
/// expected version).
pub async fn poll<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    worker_id: Option<&str>,
    reclaim_ms: i64,
    now: Timestamp,
) -> Result<Option<Work>, Error> {
    let mut query = CatalogQuery::new(Kind::Work, workspace.as_str());
    query.parent = Some(environment_id.as_str().to_owned());
    query.statuses = vec![
        State::Queued.as_str().to_owned(),
        State::Starting.as_str().to_owned(),
        State::Active.as_str().to_owned(),
        State::Stopping.as_str().to_owned(),
    ];
    query.order = Order::Asc;
    query.limit = 100;
    loop {
        let page = store
            .list(&query)
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        for entry in &page.entries {
            let Ok(id) = WorkId::parse(&entry.id) else {
                continue;
            };
            let mut head = load(store, workspace, environment_id, &id).await?;
            let written = stream::write(store, &Work::stream(&id), &mut head, |item| {
                Ok::<_, Error>(match item {
                    Some(work) => decide_poll(work, worker_id, reclaim_ms, now),
                    None => Vec::new(),
                })
            })
            .await
            .map_err(storage)?;
            let delivered = written
                .records
                .iter()
                .any(|r| matches!(r, Record::Delivered { .. }));
            if delivered {
                return Ok(head.state);
            }
        }
        match page.entries.last() {
            Some(last) if page.has_more => query.after = Some(last.id.clone()),
            _ => return Ok(None),
        }
    }
}

/// The records of an ack: `queued` → `starting`; acking a `starting` item again is a no-op.
pub fn decide_ack(work: &Work, now: Timestamp) -> Result<Vec<Record>, Error> {
    match work.state {
        State::Queued => Ok(vec![Record::Acked { at: now }]),
        State::Starting => Ok(Vec::new()),
        other => Err(Error::Conflict(format!(
            "work item {} is {} and cannot be acknowledged",
            work.id,
            other.as_str()
        ))),
    }
}

/// Acks item `id`.
pub async fn ack<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
    now: Timestamp,
) -> Result<Work, Error> {
    write(store, workspace, environment_id, id, |work| {
        decide_ack(work, now)
    })
    .await
}

/// The records of a heartbeat: on a held item (`starting`/`active`) `expected` must be the
/// lease's version ([`Work::lease_version`]) or the heartbeat fails with
/// [`Error::Precondition`]; the new heartbeat is strictly later than the previous one. A
/// `stopping`/`stopped` item is not compared and not extended; a `queued` item (re-queued
/// or never acked) is not held by anyone, so every heartbeat on it fails the precondition.
pub fn decide_heartbeat(
    work: &Work,
    expected: &str,
    ttl_seconds: Option<u32>,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let ttl_seconds = ttl_seconds.unwrap_or(work.ttl_seconds);
    match work.state {
        State::Stopping | State::Stopped => Ok(Vec::new()),
        State::Queued => Err(Error::Precondition(Box::new(work.clone()))),
        State::Starting | State::Active => {
            if expected != work.lease_version() {
                return Err(Error::Precondition(Box::new(work.clone())));
            }
            let at = match work.latest_heartbeat_at {
                Some(last) if last >= now => Timestamp::from_millis(last.millis() + 1),
                _ => now,
            };
            Ok(vec![Record::Heartbeat { at, ttl_seconds }])
        }
    }
}

/// Heartbeats item `id` (`ttl_seconds`: the lease's new TTL, else the current one); returns
/// the item and whether the lease was extended.
pub async fn heartbeat<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
    expected: Option<&str>,
    ttl_seconds: Option<u32>,
    now: Timestamp,
) -> Result<(Work, bool), Error> {
    let expected = expected.unwrap_or(NO_HEARTBEAT);
    let mut extended = false;
    let work = write(store, workspace, environment_id, id, |work| {
        let records = decide_heartbeat(work, expected, ttl_seconds, now)?;
        extended = !records.is_empty();
        Ok(records)
    })
    .await?;
    Ok((work, extended))
}

/// The records of a stop: a queued item, or any item with `force`, stops at once; a held
/// item is asked to stop (`stopping`); stopping a stopped item is a conflict (409).
pub fn decide_stop(work: &Work, force: bool, now: Timestamp) -> Result<Vec<Record>, Error> {
    match work.state {
        State::Stopped => Err(Error::Conflict(format!(
            "work item {} is already stopped",
            work.id
        ))),
        State::Queued => Ok(vec![Record::Stopped { at: now }]),
        State::Stopping if !force => Ok(Vec::new()),
        _ if force => Ok(vec![Record::Stopped { at: now }]),
        _ => Ok(vec![Record::StopRequested { at: now }]),
    }
}

/// Stops item `id` (gracefully unless `force`).
pub async fn stop<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
    force: bool,
    now: Timestamp,
) -> Result<Work, Error> {
    write(store, workspace, environment_id, id, |work| {
        decide_stop(work, force, now)
    })
    .await
}

/// Patches item `id`'s metadata (a string upserts, `null` deletes).
pub async fn update_metadata<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    id: &WorkId,
    patch: &BTreeMap<String, Option<String>>,
    now: Timestamp,
) -> Result<Work, Error> {
    write(store, workspace, environment_id, id, |work| {
        let metadata = crate::validate::patch_metadata("metadata", &work.metadata, patch, false)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        if metadata == work.metadata {
            return Ok(Vec::new());
        }
        Ok(vec![Record::MetadataUpdated { metadata, at: now }])
    })
    .await
}

/// The queue's counts (API `work_queue_stats`, without `workers_polling`, which the caller
/// tracks).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Queued and not pending.
    pub depth: u64,
    /// Delivered by a poll within the default reclaim window, not acked.
    pub pending: u64,
    /// The oldest queued item's creation.
    pub oldest_queued_at: Option<Timestamp>,
}

/// Counts `environment_id`'s queue at `now`.
pub async fn stats<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    environment_id: &EnvironmentId,
    now: Timestamp,
) -> Result<Stats, Error> {
    let mut query = CatalogQuery::new(Kind::Work, workspace.as_str());
    query.parent = Some(environment_id.as_str().to_owned());
    query.statuses = vec![State::Queued.as_str().to_owned()];
    query.order = Order::Asc;
    query.limit = 100;
    let mut stats = Stats::default();
    loop {
        let page = store
            .list(&query)
            .await
            .map_err(|e| Error::Storage(e.to_string()))?;
        for entry in &page.entries {
            let Ok(id) = WorkId::parse(&entry.id) else {
                continue;
            };
            let Some(work) = load(store, workspace, environment_id, &id).await?.state else {
                continue;
            };
            if work.pending(super::DEFAULT_RECLAIM_MS, now) {
                stats.pending += 1;
            } else {
                stats.depth += 1;
            }
            stats.oldest_queued_at.get_or_insert(work.created_at);
        }
        match page.entries.last() {
            Some(last) if page.has_more => query.after = Some(last.id.clone()),
            _ => return Ok(stats),
        }
    }
}
