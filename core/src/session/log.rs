//! A session's log in a store: the session as a [`crate::stream`] ([`Fold`] for
//! [`SessionState`], and for [`Logged`], which also keeps every record), [`write`] (the one
//! write primitive with the session's not-found rule), [`commit`] a [`Command`], [`create`],
//! and [`load`] with every record.
//!
//! Every writer (the HTTP server for client events, the harness for agent events, embedded
//! programs for both) goes through [`crate::stream::write`], so the expected-version fencing,
//! the bounded retry and the catalog update cannot differ between them. It is generic over
//! [`Store`] and needs no runtime.

use bytes::Bytes;

use crate::event::Event;
use crate::ids::SessionId;
use crate::storage::{self, Append, CatalogEntry, Expected, Kind, Store, StreamId, Version};
use crate::stream::{self, Fold, Head, Staged};
use crate::time::Timestamp;

use super::idempotency::KeyEntry;
use super::state::IDLE_ON_THREADS;
use super::{decide, Command, Fresh, Rejection, SessionRecord, SessionState};

/// Why loading or writing a session failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// No session with this id exists (or it was deleted).
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// `decide` rejected the command.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A stored record could not be decoded.
    #[error("session {id}: undecodable record: {message}")]
    Decode {
        /// The session.
        id: SessionId,
        /// The decoding failure.
        message: String,
    },
    /// The store failed, or another writer appended first.
    #[error(transparent)]
    Store(#[from] storage::Error),
}

/// A folded session together with its records.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The session id.
    pub id: SessionId,
    /// The folded state.
    pub state: SessionState,
    /// Every record in stream order: record `i` has version `i + 1`.
    pub records: Vec<SessionRecord>,
}

impl Loaded {
    /// The stream version the folded state reflects.
    pub fn version(&self) -> Version {
        self.records.len() as Version
    }
}

/// What an append wrote.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The state after the append.
    pub state: SessionState,
    /// The appended records.
    pub records: Vec<SessionRecord>,
    /// The version of the first appended record.
    pub first_version: Version,
}

impl SessionState {
    /// The catalog entry of this session: workspace, creation time, archived, status and the
    /// agent id and version it runs. `None` before the session was created.
    pub fn catalog_entry(&self) -> Option<CatalogEntry> {
        if self.is_child_thread() {
            // A child thread's stream is no session: never listed, never scanned.
            return None;
        }
        let config = self.config.as_ref()?;
        let mut entry = CatalogEntry::new(
            Kind::Session,
            config.id.as_str(),
            config.workspace.as_str(),
            config.created_at,
        );
        entry.archived = self.archived_at.is_some();
        // A session idle on its threads has a turn open: the runner's scans look for it (a
        // restart settles it), and a `statuses[]=idle` filter includes it.
        let status = if self.threads_idle.is_some() {
            IDLE_ON_THREADS
        } else {
            self.status.as_str()
        };
        entry.status = Some(status.to_owned());
        entry.agent = Some((config.agent.id.to_string(), config.agent.version));
        Some(entry)
    }
}

/// Reads and folds session `id`. A session that does not exist or was deleted is
/// [`Error::NotFound`]; checking the caller's workspace is the caller's business.
pub async fn load<S: Store>(store: &S, id: &SessionId) -> Result<Loaded, Error> {
    let head: Head<Logged> =
        stream::load(store, &StreamId::from(id))
            .await
            .map_err(|e| match e {
                stream::Error::Rejected(never) => match never {},
                stream::Error::Decode { message, .. } => Error::Decode {
                    id: id.clone(),
                    message,
                },
                stream::Error::Store(e) => Error::Store(e),
            })?;
    if !head.state.state.exists() {
        return Err(Error::NotFound(id.clone()));
    }
    Ok(Loaded {
        id: id.clone(),
        state: head.state.state,
        records: head.state.records,
    })
}

impl Fold for SessionState {
    type Record = SessionRecord;

    fn decode(bytes: &[u8]) -> Result<SessionRecord, String> {
        SessionRecord::decode(bytes).map_err(|e| e.to_string())
    }

    fn encode(record: &SessionRecord) -> Bytes {
        record.encode()
    }

    fn apply(&mut self, record: &SessionRecord) {
        SessionState::apply(self, record);
    }

    fn catalog_entry(&self) -> Option<CatalogEntry> {
        SessionState::catalog_entry(self)
    }
}

/// A session's folded state together with every record (what the harness rebuilds a model
/// conversation from); a [`Fold`] so it is written through [`crate::stream::write`] too.
#[derive(Debug, Clone, Default)]
pub struct Logged {
    /// The folded state.
    pub state: SessionState,
    /// Every record folded, in stream order.
    pub records: Vec<SessionRecord>,
}

impl Fold for Logged {
    type Record = SessionRecord;

    fn decode(bytes: &[u8]) -> Result<SessionRecord, String> {
        <SessionState as Fold>::decode(bytes)
    }

    fn encode(record: &SessionRecord) -> Bytes {
        record.encode()
    }

    fn apply(&mut self, record: &SessionRecord) {
        self.state.apply(record);
        self.records.push(record.clone());
    }

    fn catalog_entry(&self) -> Option<CatalogEntry> {
        self.state.catalog_entry()
    }
}

impl Error {
    /// The session error of a [`stream::Error`] on session `id`.
    pub fn of_stream(id: &SessionId, error: stream::Error<Rejection>) -> Self {
        match error {
            stream::Error::Rejected(rejection) => Error::Rejected(rejection),
            stream::Error::Decode { message, .. } => Error::Decode {
                id: id.clone(),
                message,
            },
            stream::Error::Store(e) => Error::Store(e),
        }
    }
}

/// Writes to session `id` through [`stream::write`]: catches `head` up, lets `decide` look at
/// the session (a session that does not exist or was deleted is [`Error::NotFound`] before
/// `decide` sees it), appends at the expected version, retries lost races.
pub async fn write<S: Store, F: Fold<Record = SessionRecord> + Default + AsRef<SessionState>>(
    store: &S,
    id: &SessionId,
    head: &mut Head<F>,
    mut decide: impl FnMut(&F) -> Result<Vec<SessionRecord>, Rejection>,
) -> Result<stream::Written<SessionRecord>, Error> {
    write_staged(store, id, head, |staged| {
        for record in decide(staged.state())? {
            staged.push(record);
        }
        Ok(())
    })
    .await
}

/// [`write`] through [`stream::write_staged`]: `stage` pushes records one by one onto a
/// state that follows them (what [`crate::session::heads`] uses to decide queued writers'
/// commands in turn and append them as one). The session's not-found rule is checked first.
pub async fn write_staged<
    S: Store,
    F: Fold<Record = SessionRecord> + Default + AsRef<SessionState>,
>(
    store: &S,
    id: &SessionId,
    head: &mut Head<F>,
    mut stage: impl FnMut(&mut Staged<'_, F>) -> Result<(), Rejection>,
) -> Result<stream::Written<SessionRecord>, Error> {
    let mut missing = false;
    let written = stream::write_staged(store, &StreamId::from(id), head, |staged| {
        missing = !staged.state().as_ref().exists();
        if missing {
            return Ok(());
        }
        stage(staged)
    })
    .await
    .map_err(|e| Error::of_stream(id, e))?;
    if missing {
        return Err(Error::NotFound(id.clone()));
    }
    Ok(written)
}

impl AsRef<SessionState> for SessionState {
    fn as_ref(&self) -> &SessionState {
        self
    }
}

impl AsRef<SessionState> for Logged {
    fn as_ref(&self) -> &SessionState {
        &self.state
    }
}

/// Appends `records` to a session loaded at `loaded.version()`, with the catalog entry of the
/// resulting state. Fails with [`storage::Error::WrongExpectedVersion`] if anyone appended since.
pub async fn append<S: Store>(
    store: &S,
    loaded: &Loaded,
    records: Vec<SessionRecord>,
) -> Result<Committed, Error> {
    let expected = loaded.version();
    let mut next = loaded.state.clone();
    for record in &records {
        next.apply(record);
    }
    store
        .append(Append {
            stream: StreamId::from(&loaded.id),
            expected: Expected::Exactly(expected),
            events: records.iter().map(SessionRecord::encode).collect(),
            catalog: next.catalog_entry(),
        })
        .await?;
    Ok(Committed {
        state: next,
        records,
        first_version: expected + 1,
    })
}

/// The response a keyed send gave (see [`super::idempotency`]): the client events `entry`
/// names, read back from the log as they were appended (what the first response showed:
/// queued events with `processed_at: null`). A send's records are contiguous, starting at
/// `entry.first_version`; at most two status events per client event follow them.
pub async fn replay<S: Store>(
    store: &S,
    id: &SessionId,
    entry: &KeyEntry,
) -> Result<Vec<Event>, Error> {
    let limit = entry.event_ids.len() * 2 + 1;
    let stored = store
        .read(
            &StreamId::from(id),
            entry.first_version,
            storage::Direction::Forward,
            limit,
        )
        .await?;
    let mut found = Vec::with_capacity(entry.event_ids.len());
    for record in &stored {
        let record = SessionRecord::decode(&record.payload).map_err(|e| Error::Decode {
            id: id.clone(),
            message: e.to_string(),
        })?;
        if let SessionRecord::Event(event) = record {
            if entry.event_ids.get(found.len()) == Some(&event.id) {
                found.push(event);
            }
        }
    }
    if found.len() != entry.event_ids.len() {
        return Err(Error::Decode {
            id: id.clone(),
            message: format!(
                "the events of an idempotency key are not at version {}",
                entry.first_version
            ),
        });
    }
    Ok(found)
}

/// Creates session `id` from a [`Command::Create`].
pub async fn create<S: Store>(
    store: &S,
    id: &SessionId,
    command: Command,
    now: Timestamp,
) -> Result<Committed, Error> {
    let records = decide(&SessionState::default(), command, now, &mut Fresh(now))?;
    let head: Head<SessionState> = stream::create(store, &StreamId::from(id), records.clone())
        .await
        .map_err(Error::Store)?;
    Ok(Committed {
        state: head.state,
        records,
        first_version: 1,
    })
}

/// Creates session `id` from records decided elsewhere: a fork's ([`super::fork::records`]).
pub async fn create_from<S: Store>(
    store: &S,
    id: &SessionId,
    records: Vec<SessionRecord>,
) -> Result<Committed, Error> {
    let head: Head<SessionState> = stream::create(store, &StreamId::from(id), records.clone())
        .await
        .map_err(Error::Store)?;
    Ok(Committed {
        state: head.state,
        records,
        first_version: 1,
    })
}

/// Decides `command` on the current state of session `id` and appends the result: one
/// [`write`] from a freshly loaded head. `accept` may refuse the loaded session (e.g. one of
/// another workspace) before anything is decided.
pub async fn commit<S: Store>(
    store: &S,
    id: &SessionId,
    accept: impl Fn(&SessionState) -> bool,
    command: impl Fn() -> Command,
) -> Result<Committed, Error> {
    let mut head = Head::<SessionState>::default();
    let mut refused = false;
    let written = write(store, id, &mut head, |state| {
        refused = !accept(state);
        if refused {
            return Ok(Vec::new());
        }
        let now = Timestamp::now();
        decide(state, command(), now, &mut Fresh(now))
    })
    .await?;
    if refused {
        return Err(Error::NotFound(id.clone()));
    }
    Ok(Committed {
        state: head.state,
        records: written.records,
        first_version: written.first_version,
    })
}
