//! Loading a session and committing a core [`Command`] to it: read the log, fold, `decide`,
//! append with the expected version and the refreshed catalog entry. A lost race with another
//! writer (the harness appending agent events) re-reads and decides again.

use managed_agents_core::ids::SessionId;
use managed_agents_core::session::{self, Command, Fresh, Rejection, SessionRecord, SessionState};
use managed_agents_core::storage::{self, CatalogEntry, Kind, Store, StreamId};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::objects;
use crate::state::AppState;

/// How often a send retries after losing an append race.
const RETRIES: usize = 8;

/// A folded session and its records.
pub struct Loaded {
    /// The folded state.
    pub state: SessionState,
    /// Every record, in stream order (record `i` is version `i + 1`).
    pub records: Vec<SessionRecord>,
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(field) => field.into(),
            Rejection::Conflict(message) => Error::conflict(message),
            Rejection::NotFound(message) => Error::NotFound(message),
        }
    }
}

/// Loads session `id` of the caller's workspace (404 otherwise, and for deleted sessions).
pub async fn load(state: &AppState, auth: &Auth, id: &str) -> Result<Loaded> {
    if SessionId::parse(id).is_err() {
        return Err(Error::not_found("session", id));
    }
    tracing::Span::current().record("session_id", id);
    let stored = objects::records(state, id).await?;
    let records = stored
        .iter()
        .map(|r| SessionRecord::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("session {id}: {e}")))?;
    let folded = session::fold(&records);
    let visible = folded
        .config
        .as_ref()
        .is_some_and(|c| c.workspace.as_str() == auth.workspace())
        && folded.exists();
    if !visible {
        return Err(Error::not_found("session", id));
    }
    Ok(Loaded {
        state: folded,
        records,
    })
}

/// The catalog entry of a folded session.
pub fn catalog_entry(state: &SessionState) -> Option<CatalogEntry> {
    let config = state.config.as_ref()?;
    let mut entry = CatalogEntry::new(
        Kind::Session,
        config.id.as_str(),
        config.workspace.as_str(),
        config.created_at,
    );
    entry.archived = state.archived_at.is_some();
    entry.status = Some(state.status.as_str().to_owned());
    let agent_id = config.agent.get("id").and_then(|v| v.as_str());
    let version = config.agent.get("version").and_then(|v| v.as_u64());
    if let (Some(agent_id), Some(version)) = (agent_id, version) {
        entry.agent = Some((agent_id.to_owned(), version));
    }
    Some(entry)
}

/// What a committed command appended.
pub struct Committed {
    /// The state after the append.
    pub state: SessionState,
    /// The appended records.
    pub records: Vec<SessionRecord>,
    /// The stream version of the first appended record.
    pub first_version: u64,
}

/// Appends `records` decided against `loaded` (whose length is the expected version).
async fn append(
    app: &AppState,
    id: &str,
    loaded: &Loaded,
    records: Vec<SessionRecord>,
) -> Result<Committed> {
    let expected = loaded.records.len() as u64;
    let mut next = loaded.state.clone();
    for record in &records {
        next.apply(record);
    }
    let events = records.iter().map(SessionRecord::encode).collect();
    objects::append(app, id, expected, events, catalog_entry(&next)).await?;
    Ok(Committed {
        state: next,
        records,
        first_version: expected + 1,
    })
}

/// Decides `command` on session `id` and appends the result, retrying lost races.
pub async fn commit(
    app: &AppState,
    auth: &Auth,
    id: &str,
    command: impl Fn() -> Command,
) -> Result<Committed> {
    let mut attempt = 0;
    loop {
        let loaded = load(app, auth, id).await?;
        let now = Timestamp::now();
        let records = session::decide(&loaded.state, command(), now, &mut Fresh(now))?;
        if records.is_empty() {
            return Ok(Committed {
                first_version: loaded.records.len() as u64 + 1,
                state: loaded.state,
                records,
            });
        }
        match append(app, id, &loaded, records).await {
            Err(Error::Conflict {
                retryable: true, ..
            }) if attempt < RETRIES => attempt += 1,
            other => return other,
        }
    }
}

/// Creates a session from `command` (a `Command::Create`).
pub async fn create(app: &AppState, id: &str, command: Command) -> Result<Committed> {
    let empty = Loaded {
        state: SessionState::default(),
        records: Vec::new(),
    };
    let now = Timestamp::now();
    let records = session::decide(&empty.state, command, now, &mut Fresh(now))?;
    append(app, id, &empty, records).await
}

/// Deletes the session's stream (after `session.deleted` was appended).
pub async fn remove(app: &AppState, id: &str) -> Result<()> {
    app.store
        .delete(Kind::Session, &StreamId::new(id))
        .await
        .map_err(Error::from)
}

/// Re-exported for handlers that read the raw stream.
pub use storage::Version;
