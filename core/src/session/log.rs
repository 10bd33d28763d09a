//! A session's log in a store: load and fold it, append records at the expected version with
//! the refreshed catalog entry, and commit a [`Command`] (decide, append, retry a lost race).
//!
//! This is the one path every writer takes (the HTTP server for client events, the harness for
//! agent events, embedded programs for both), so the expected-version fencing and the catalog
//! update cannot differ between them. It is generic over [`Store`] and needs no runtime.

use crate::ids::SessionId;
use crate::storage::{self, Append, CatalogEntry, Expected, Kind, Store, StreamId, Version};
use crate::time::Timestamp;

use super::{decide, fold, Command, DecodeError, Fresh, Rejection, SessionRecord, SessionState};

/// How often [`commit`] decides again after losing an append race.
const RETRIES: usize = 16;

/// Why loading or writing a session failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No session with this id exists (or it was deleted).
    #[error("session {0} not found")]
    NotFound(SessionId),
    /// `decide` rejected the command.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// A stored record could not be decoded.
    #[error("session {id}: undecodable record: {source}")]
    Decode {
        /// The session.
        id: SessionId,
        /// The decoding failure.
        source: DecodeError,
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
        let config = self.config.as_ref()?;
        let mut entry = CatalogEntry::new(
            Kind::Session,
            config.id.as_str(),
            config.workspace.as_str(),
            config.created_at,
        );
        entry.archived = self.archived_at.is_some();
        entry.status = Some(self.status.as_str().to_owned());
        let agent_id = config.agent.get("id").and_then(|v| v.as_str());
        let version = config.agent.get("version").and_then(|v| v.as_u64());
        if let (Some(agent_id), Some(version)) = (agent_id, version) {
            entry.agent = Some((agent_id.to_owned(), version));
        }
        Some(entry)
    }
}

/// Reads and folds session `id`. A session that does not exist or was deleted is
/// [`Error::NotFound`]; checking the caller's workspace is the caller's business.
pub async fn load<S: Store>(store: &S, id: &SessionId) -> Result<Loaded, Error> {
    let stored = storage::read_all(store, &StreamId::from(id)).await?;
    let records = stored
        .iter()
        .map(|r| SessionRecord::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Decode {
            id: id.clone(),
            source,
        })?;
    let state = fold(&records);
    if !state.exists() {
        return Err(Error::NotFound(id.clone()));
    }
    Ok(Loaded {
        id: id.clone(),
        state,
        records,
    })
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

/// Creates session `id` from a [`Command::Create`].
pub async fn create<S: Store>(
    store: &S,
    id: &SessionId,
    command: Command,
    now: Timestamp,
) -> Result<Committed, Error> {
    let empty = Loaded {
        id: id.clone(),
        state: SessionState::default(),
        records: Vec::new(),
    };
    let records = decide(&empty.state, command, now, &mut Fresh(now))?;
    append(store, &empty, records).await
}

/// Decides `command` on the current state of session `id` and appends the result. A lost race
/// with another writer re-reads and decides again. `accept` may refuse the loaded session
/// (e.g. one of another workspace) before anything is decided.
pub async fn commit<S: Store>(
    store: &S,
    id: &SessionId,
    accept: impl Fn(&SessionState) -> bool,
    command: impl Fn() -> Command,
) -> Result<Committed, Error> {
    let mut attempt = 0;
    loop {
        let loaded = load(store, id).await?;
        if !accept(&loaded.state) {
            return Err(Error::NotFound(id.clone()));
        }
        let now = Timestamp::now();
        let records = decide(&loaded.state, command(), now, &mut Fresh(now))?;
        if records.is_empty() {
            let first_version = loaded.version() + 1;
            return Ok(Committed {
                state: loaded.state,
                records,
                first_version,
            });
        }
        match append(store, &loaded, records).await {
            Err(Error::Store(storage::Error::WrongExpectedVersion { .. })) if attempt < RETRIES => {
                attempt += 1;
            }
            other => return other,
        }
    }
}
