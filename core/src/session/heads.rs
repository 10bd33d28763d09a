//! Folded session heads kept in memory, so that a write does not re-read and re-decode a
//! session's whole log, and group commit inside a session.
//!
//! A [`Head`] is a session's folded state at a stream version. It is a cache, never a second
//! source of truth: before every use it catches up from the store by reading only the records
//! after its version (none when the store knows the head is current,
//! [`crate::storage::Store::known_head`]), and every write still goes through the store's
//! expected-version check.
//! Writes go through [`log::write_staged`] (the one write primitive, [`crate::stream`]) with the
//! cached head. A writer elsewhere (the harness's own writer, another process) still races
//! through expected versions, and a lost race reloads the head from the log. Deleting a
//! session must go through [`Heads::forget`] so a stale head is not served.
//!
//! Writers of one session that share a [`Heads`] do not race: each puts its command in the
//! session's queue and waits for either its outcome or the session's lock. Whoever gets the
//! lock leads: it takes every queued command, decides each in queue order on the state the
//! earlier ones leave (a refused command refuses only its own writer), and appends all their
//! records as one batch at one expected version, so one busy session pays one durable append
//! per batch instead of one per writer. No timer: a batch is whatever queued while the previous
//! one was being written. Outcomes are sent only after the append is durable; if it fails, every
//! writer of the batch gets the error. A leader whose future is dropped mid-batch leaves its
//! batch's writers without an outcome ([`Error::Store`] saying so): callers that can be
//! cancelled (an HTTP handler) should run commits in a task of their own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex as SyncMutex, MutexGuard};

use futures::channel::oneshot;
use futures::future::{self, Either};
use futures::lock::Mutex;

use crate::ids::SessionId;
use crate::storage::{self, Store, StreamId, Version};
use crate::stream::{self, Staged};
use crate::time::Timestamp;

use super::log::{self, Committed, Error};
use super::{decide, Command, Fresh, SessionRecord, SessionState};

/// A session's folded state at a stream version.
pub type Head = stream::Head<SessionState>;

/// One session: its cached head (the lock a batch's leader holds) and its queued writes.
#[derive(Default)]
struct Session {
    head: Mutex<Option<Head>>,
    queue: SyncMutex<Vec<Box<dyn Job>>>,
}

impl Session {
    fn queue(&self) -> MutexGuard<'_, Vec<Box<dyn Job>>> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

type Slot = Arc<Session>;

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

/// A queued write: one writer's command and where its outcome goes.
trait Job: Send {
    /// Decides the command on `staged`'s current state and stages its records (or keeps the
    /// refusal). Called again from scratch when the batch lost an append race.
    fn stage(&mut self, staged: &mut Staged<'_, SessionState>);
    /// Sends the outcome of the last [`Job::stage`] (once the batch is durable).
    fn done(self: Box<Self>);
    /// Sends `error` instead.
    fn fail(self: Box<Self>, error: Error);
}

struct Write<A, C, D, T> {
    id: SessionId,
    accept: A,
    command: C,
    finish: D,
    outcome: Option<Result<T, Error>>,
    reply: oneshot::Sender<Result<T, Error>>,
}

impl<A, C, D, T> Job for Write<A, C, D, T>
where
    A: Fn(&SessionState) -> bool + Send,
    C: Fn() -> Command + Send,
    D: Fn(&SessionState, &[SessionRecord], Version) -> T + Send,
    T: Send,
{
    fn stage(&mut self, staged: &mut Staged<'_, SessionState>) {
        if !(self.accept)(staged.state()) {
            self.outcome = Some(Err(Error::NotFound(self.id.clone())));
            return;
        }
        let now = Timestamp::now();
        match decide(staged.state(), (self.command)(), now, &mut Fresh(now)) {
            Err(rejection) => self.outcome = Some(Err(Error::Rejected(rejection))),
            Ok(records) => {
                let start = staged.records().len();
                for record in records {
                    staged.push(record);
                }
                let mine = &staged.records()[start..];
                let first_version = staged.version_of(start);
                self.outcome = Some(Ok((self.finish)(staged.state(), mine, first_version)));
            }
        }
    }

    fn done(self: Box<Self>) {
        let outcome = self.outcome.unwrap_or_else(|| {
            Err(Error::Store(storage::Error::Backend(
                "a queued session write was never decided".into(),
            )))
        });
        let _ = self.reply.send(outcome);
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
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

    /// How many writes of session `id` wait for its next batch (an observation for metrics and
    /// tests).
    pub fn queued(&self, id: &SessionId) -> usize {
        let slot = self.slots().get(id).cloned();
        slot.map_or(0, |slot| slot.queue().len())
    }

    /// Forgets session `id` (call it when the session is deleted).
    pub fn forget(&self, id: &SessionId) {
        self.slots().remove(id);
    }

    /// The current head of session `id`, caught up with the store.
    pub async fn read<S: Store>(&self, store: &S, id: &SessionId) -> Result<Head, Error> {
        let slot = self.slot(id);
        let mut head = slot.head.lock().await;
        catch_up(store, id, &mut head).await?;
        head.clone().ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Decides `command` on the current state of session `id` and appends the result through
    /// [`log::write_staged`] (the one write primitive), like [`log::commit`] but without
    /// re-reading the log, and in one append with whatever other writers of the session queued
    /// meanwhile (see the module header). `accept` may refuse the session (another
    /// workspace's) first.
    pub async fn commit<S: Store>(
        &self,
        store: &S,
        id: &SessionId,
        accept: impl Fn(&SessionState) -> bool + Send + 'static,
        command: impl Fn() -> Command + Send + 'static,
    ) -> Result<Committed, Error> {
        self.commit_with(
            store,
            id,
            accept,
            command,
            |state, records, first_version| Committed {
                state: state.clone(),
                records: records.to_vec(),
                first_version,
            },
        )
        .await
    }

    /// [`Heads::commit`], handing the state right after this command's records, the records
    /// and the first one's version to `finish` under the session's lock instead of cloning the
    /// state (the hot path of `POST /events` only renders the appended events). `finish` runs
    /// before the batch is durable and again if the batch is decided again; its result is
    /// returned only once the append is durable.
    pub async fn commit_with<S: Store, T: Send + 'static>(
        &self,
        store: &S,
        id: &SessionId,
        accept: impl Fn(&SessionState) -> bool + Send + 'static,
        command: impl Fn() -> Command + Send + 'static,
        finish: impl Fn(&SessionState, &[SessionRecord], Version) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let slot = self.slot(id);
        let (reply, outcome) = oneshot::channel();
        slot.queue().push(Box::new(Write {
            id: id.clone(),
            accept,
            command,
            finish,
            outcome: None,
            reply,
        }));
        // Either a leader writes this command along with its batch, or this writer gets the
        // lock first and leads.
        let (mut guard, outcome) = match future::select(outcome, slot.head.lock()).await {
            Either::Left((outcome, _)) => return outcome.unwrap_or_else(|_| Err(cancelled())),
            Either::Right(locked) => locked,
        };
        let jobs = std::mem::take(&mut *slot.queue());
        if !jobs.is_empty() {
            lead(store, id, &mut guard, jobs).await;
        }
        drop(guard);
        // Sent by now: by this writer's own batch, or by an earlier leader (every batch is
        // finished before its leader lets go of the lock).
        outcome.await.unwrap_or_else(|_| Err(cancelled()))
    }
}

/// What a writer gets whose batch's leader was dropped mid-write.
fn cancelled() -> Error {
    Error::Store(storage::Error::Backend(
        "the batch carrying this session write was cancelled; the write may or may not have \
         been appended"
            .into(),
    ))
}

/// Decides `jobs` in order on the session's head and appends all their records as one batch,
/// then sends each its outcome.
async fn lead<S: Store>(
    store: &S,
    id: &SessionId,
    guard: &mut Option<Head>,
    mut jobs: Vec<Box<dyn Job>>,
) {
    let mut head = guard.take().unwrap_or_default();
    let written = log::write_staged(store, id, &mut head, |staged| {
        for job in &mut jobs {
            job.stage(staged);
        }
        Ok(())
    })
    .await;
    // A failed write resets the head; keep whatever it holds (a deleted session stays
    // cached as deleted, which a read reports as not found).
    *guard = Some(head).filter(|h| h.version > 0);
    match written {
        Ok(_) => jobs.into_iter().for_each(|job| job.done()),
        Err(error) => jobs.into_iter().for_each(|job| job.fail(error.clone())),
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
