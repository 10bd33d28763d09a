//! The server's view of core's session log ([`managed_agents_core::session::log`]): the same
//! load / decide / append-with-expected-version / retry path the harness uses, plus the
//! workspace check (other workspaces' sessions are 404) and the error mapping.

use managed_agents_core::ids::SessionId;
use managed_agents_core::session::heads::Head;
use managed_agents_core::session::log::{self, Committed};
use managed_agents_core::session::{Command, Rejection, SessionRecord, SessionState};
use managed_agents_core::storage::{Kind, Store, StreamId, Version};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::state::AppState;

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(field) => field.into(),
            Rejection::Conflict(message) => Error::conflict(message),
            Rejection::NotFound(message) => Error::NotFound(message),
        }
    }
}

impl From<log::Error> for Error {
    fn from(err: log::Error) -> Self {
        match err {
            log::Error::NotFound(id) => Error::not_found("session", id.as_str()),
            log::Error::Rejected(rejection) => rejection.into(),
            log::Error::Store(err) => err.into(),
            other => Error::Internal(other.to_string()),
        }
    }
}

/// The current head (folded state and version) of session `id` of the caller's workspace (404
/// otherwise, and for deleted sessions). Served from the in-memory heads, caught up with the log.
pub async fn load(state: &AppState, auth: &Auth, id: &SessionId) -> Result<Head> {
    let head = state.heads.read(&state.store, id).await?;
    let owned = head
        .state
        .config
        .as_ref()
        .is_some_and(|c| &c.workspace == auth.workspace());
    if !owned {
        return Err(Error::not_found("session", id.as_str()));
    }
    Ok(head)
}

/// Decides `command` on session `id` of the caller's workspace and appends the result.
pub async fn commit(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    command: impl Fn() -> Command,
) -> Result<Committed> {
    commit_with(state, auth, id, command, |after, records, first_version| {
        Committed {
            state: after.clone(),
            records,
            first_version,
        }
    })
    .await
}

/// [`commit`], handing the state after the append and the appended records to `finish`
/// instead of cloning the state.
pub async fn commit_with<T>(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    command: impl Fn() -> Command,
    finish: impl FnOnce(&SessionState, Vec<SessionRecord>, Version) -> T,
) -> Result<T> {
    let workspace = auth.workspace().clone();
    let metrics = state.metrics.clone();
    let done = state
        .heads
        .commit_with(
            &state.store,
            id,
            |s| s.config.as_ref().is_some_and(|c| c.workspace == workspace),
            command,
            |after, records, first_version| {
                metrics.appended(records.len());
                finish(after, records, first_version)
            },
        )
        .await?;
    Ok(done)
}

/// Creates a session from a `Command::Create`.
pub async fn create(state: &AppState, id: &SessionId, command: Command) -> Result<Committed> {
    let committed = log::create(&state.store, id, command, Timestamp::now()).await?;
    state.metrics.appended(committed.records.len());
    Ok(committed)
}

/// Deletes the session's stream (after `session.deleted` was appended).
pub async fn remove(state: &AppState, id: &SessionId) -> Result<()> {
    let deleted = state
        .store
        .delete(Kind::Session, &StreamId::new(id.as_str()))
        .await
        .map_err(Error::from);
    state.heads.forget(id);
    deleted
}
