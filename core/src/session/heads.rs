//! Folded session heads kept in memory, so that a write does not re-read and re-decode a
//! session's whole log.
//!
//! A [`Head`] is a session's folded state at a stream version. It is a cache, never a second
//! source of truth: before every use it catches up from the store by reading only the records
//! after its version, and every write still goes through the store's expected-version check.
//! Writes go through [`log::write`] (the one write primitive, [`crate::stream::write`]) with the
//! cached head. Writers of one session that share a [`Heads`] take that session's async lock in
//! turn, so they queue instead of racing; a writer elsewhere (the harness's own writer, another process)
//! still races through expected versions, and a lost race reloads the head from the log.
//! Deleting a session must go through [`Heads::forget`] so a stale head is not served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use futures::lock::Mutex;

use crate::ids::SessionId;
use crate::storage::{Store, StreamId, Version};
use crate::stream;
use crate::time::Timestamp;

use super::log::{self, Committed, Error};
use super::{decide, Command, Fresh, SessionRecord, SessionState};

/// A session's folded state at a stream version.
pub type Head = stream::Head<SessionState>;

type Slot = Arc<Mutex<Option<Head>>>;

/// The heads of recently used sessions. Cheap to share behind an `Arc`.
pub struct Heads {
    slots: SyncMutex<HashMap<SessionId, Slot>>,
    capacity: usize,
}

impl Default for Heads {
    fn default() -> Self {
        Self::new(10_000)
    }
}

impl Heads {
    /// A cache keeping at most about `capacity` idle heads.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: SyncMutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<SessionId, Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn slot(&self, id: &SessionId) -> Slot {
        let mut slots = self.slots();
        if let Some(slot) = slots.get(id) {
            return slot.clone();
        }
        if slots.len() >= self.capacity {
            // Drop heads nobody is using; they are only a cache.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        let slot = Slot::default();
        slots.insert(id.clone(), slot.clone());
        slot
    }

    /// Forgets session `id` (call it when the session is deleted).
    pub fn forget(&self, id: &SessionId) {
        self.slots().remove(id);
    }

    /// The current head of session `id`, caught up with the store.
    pub async fn read<S: Store>(&self, store: &S, id: &SessionId) -> Result<Head, Error> {
        let slot = self.slot(id);
        let mut head = slot.lock().await;
        catch_up(store, id, &mut head).await?;
        head.clone().ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Decides `command` on the current state of session `id` and appends the result through
    /// [`log::write`] (the one write primitive), like [`log::commit`] but without re-reading
    /// the log: writers sharing this cache queue
    /// on the session's lock. `accept` may refuse the session (another workspace's) first.
    pub async fn commit<S: Store>(
        &self,
        store: &S,
        id: &SessionId,
        accept: impl Fn(&SessionState) -> bool,
        command: impl Fn() -> Command,
    ) -> Result<Committed, Error> {
        self.commit_with(
            store,
            id,
            accept,
            command,
            |state, records, first_version| Committed {
                state: state.clone(),
                records,
                first_version,
            },
        )
        .await
    }

    /// [`Heads::commit`], handing the state after the append, the appended records and the
    /// first appended version to `finish` under the session's lock instead of cloning the state
    /// (the hot path of `POST /events` only renders the appended events).
    pub async fn commit_with<S: Store, T>(
        &self,
        store: &S,
        id: &SessionId,
        accept: impl Fn(&SessionState) -> bool,
        command: impl Fn() -> Command,
        finish: impl FnOnce(&SessionState, Vec<SessionRecord>, Version) -> T,
    ) -> Result<T, Error> {
        let slot = self.slot(id);
        let mut guard = slot.lock().await;
        let mut head = guard.take().unwrap_or_default();
        let mut refused = false;
        let written = log::write(store, id, &mut head, |state| {
            refused = !accept(state);
            if refused {
                return Ok(Vec::new());
            }
            let now = Timestamp::now();
            decide(state, command(), now, &mut Fresh(now))
        })
        .await;
        let written = match written {
            Ok(written) => written,
            Err(error) => {
                // `write` resets the head after a failed append; keep whatever it holds.
                *guard = Some(head).filter(|h| h.version > 0);
                return Err(error);
            }
        };
        if refused {
            *guard = Some(head);
            return Err(Error::NotFound(id.clone()));
        }
        let done = finish(&head.state, written.records, written.first_version);
        *guard = Some(head);
        Ok(done)
    }
}

/// Brings `head` up to the store's latest version of session `id` by reading only the records
/// after it. A session that does not exist (or was deleted) leaves `None` and is `NotFound`.
async fn catch_up<S: Store>(
    store: &S,
    id: &SessionId,
    head: &mut Option<Head>,
) -> Result<(), Error> {
    let mut current = head.take().unwrap_or_default();
    stream::catch_up(store, &StreamId::from(id), &mut current)
        .await
        .map_err(|e| match e {
            stream::Error::Rejected(never) => match never {},
            stream::Error::Decode { message, .. } => Error::Decode {
                id: id.clone(),
                message,
            },
            stream::Error::Store(e) => Error::Store(e),
        })?;
    if !current.state.exists() {
        return Err(Error::NotFound(id.clone()));
    }
    *head = Some(current);
    Ok(())
}
