//! The server's view of core's session log ([`managed_agents_core::session::log`]): the same
//! load / decide / append-with-expected-version / retry path the harness uses, plus the
//! workspace check (other workspaces' sessions are 404) and the error mapping.

use managed_agents_core::ids::{EventId, SessionId, ThreadId};
use managed_agents_core::session::heads::Head;
use managed_agents_core::session::log::{self, Committed};
use managed_agents_core::session::{fork, Command, Rejection, SessionRecord, SessionState};
use managed_agents_core::storage::{Kind, Store, StreamId, Version};
use managed_agents_core::time::Timestamp;
use managed_agents_harness::sandbox::ForkPoint;

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
    // A child thread's stream is reachable only as a thread of its session.
    let owned = !head.state.is_child_thread()
        && head.state.config.as_ref().is_some_and(|c| {
            &c.workspace == auth.workspace()
                && auth
                    .environment()
                    .is_none_or(|env| &c.environment_id == env)
        });
    if !owned {
        return Err(Error::not_found("session", id.as_str()));
    }
    Ok(head)
}

/// The head of thread `thread` of session `id` of the caller's workspace: the session's own
/// head for its primary thread, the child thread's stream for a child thread (404 otherwise).
pub async fn load_thread(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    thread: &ThreadId,
) -> Result<(SessionId, Head)> {
    let session = load(state, auth, id).await?;
    if session.state.thread_status(thread).is_some() {
        return Ok((id.clone(), session));
    }
    if !session.state.for_child(Some(thread)) {
        return Err(Error::not_found("session thread", thread.as_str()));
    }
    let child = SessionId::of_thread(thread);
    let head = state.heads.read(&state.store, &child).await?;
    // A fork lists its parent's threads but does not own their streams.
    if head
        .state
        .thread_of
        .as_ref()
        .is_none_or(|(owner, _)| owner != id)
    {
        return Err(Error::not_found("session thread", thread.as_str()));
    }
    Ok((child, head))
}

/// Archives child thread `thread` of session `id` of the caller's workspace (core refuses a
/// running thread).
pub async fn archive_thread(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    thread: &ThreadId,
) -> Result<Head> {
    let (child, _) = load_thread(state, auth, id, thread).await?;
    let session = id.clone();
    state
        .heads
        .commit_with(
            &state.store,
            &child,
            move |s| {
                s.thread_of
                    .as_ref()
                    .is_some_and(|(owner, _)| *owner == session)
            },
            || Command::Archive,
            |_, _, _| (),
        )
        .await?;
    Ok(state.heads.read(&state.store, &child).await?)
}

/// Decides `command` on session `id` of the caller's workspace and appends the result.
pub async fn commit(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    command: impl Fn() -> Command + Send + 'static,
) -> Result<Committed> {
    commit_with(state, auth, id, command, |after, records, first_version| {
        Committed {
            state: after.clone(),
            records: records.to_vec(),
            first_version,
        }
    })
    .await
}

/// [`commit`], handing the state right after this command's records and the records to
/// `finish` instead of cloning the state. Concurrent writers of one session share one append
/// (group commit, see [`managed_agents_core::session::heads`]); the write runs in a task of its
/// own, so a request whose client goes away does not cancel a batch carrying other requests'
/// writes.
pub async fn commit_with<T: Send + 'static>(
    state: &AppState,
    auth: &Auth,
    id: &SessionId,
    command: impl Fn() -> Command + Send + 'static,
    finish: impl Fn(&SessionState, &[SessionRecord], Version) -> T + Send + 'static,
) -> Result<T> {
    let workspace = auth.workspace().clone();
    let environment = auth.environment().cloned();
    let (state, id) = (state.clone(), id.clone());
    let write = tokio::spawn(async move {
        let written = state
            .heads
            .commit_with(
                &state.store,
                &id,
                move |s| {
                    !s.is_child_thread()
                        && s.config.as_ref().is_some_and(|c| {
                            c.workspace == workspace
                                && environment.as_ref().is_none_or(|e| &c.environment_id == e)
                        })
                },
                command,
                move |after, records, first_version| {
                    (finish(after, records, first_version), records.len())
                },
            )
            .await;
        if let Ok((_, appended)) = &written {
            state.metrics.appended(*appended);
        }
        written
    });
    let (done, _) = write
        .await
        .map_err(|e| Error::Internal(format!("session write task: {e}")))??;
    Ok(done)
}

/// Creates a session from a `Command::Create`.
pub async fn create(state: &AppState, id: &SessionId, command: Command) -> Result<Committed> {
    let committed = log::create(&state.store, id, command, Timestamp::now()).await?;
    state.metrics.appended(committed.records.len());
    Ok(committed)
}

/// Forks session `parent` of the caller's workspace at event `at` (its last event when `None`)
/// into the new session `child` (see [`managed_agents_core::session::fork`]): the child's
/// workspace is copied from the parent's first, and removed again if the log cannot be
/// written.
pub async fn fork(
    state: &AppState,
    auth: &Auth,
    parent: &SessionId,
    at: Option<&EventId>,
    child: &SessionId,
) -> Result<Committed> {
    let loaded = log::load(&state.store, parent).await?;
    let owned = loaded.state.config.as_ref().is_some_and(|c| {
        &c.workspace == auth.workspace()
            && auth
                .environment()
                .is_none_or(|env| &c.environment_id == env)
    });
    if !owned {
        return Err(Error::not_found("session", parent.as_str()));
    }
    let records = fork::records(&loaded.records, at, child.clone(), Timestamp::now())?;
    if let Some(workspaces) = &state.runner.workspaces {
        // The workspace as of the fork point: its last idle's snapshot (core decides which).
        let point = fork::workspace_point(&loaded.records, at);
        workspaces
            .fork_at(
                parent.as_str(),
                child.as_str(),
                point.as_ref().map(|idle| ForkPoint::Idle(idle.as_str())),
            )
            .await
            .map_err(|e| Error::Internal(format!("cannot copy the session's workspace: {e}")))?;
    }
    let created = log::create_from(&state.store, child, records).await;
    match created {
        Ok(committed) => {
            state.metrics.appended(committed.records.len());
            Ok(committed)
        }
        Err(e) => {
            if let Some(workspaces) = &state.runner.workspaces {
                if let Err(cleanup) = workspaces.delete(child.as_str()).await {
                    tracing::warn!(session_id = %child, error = %cleanup, "cannot remove a failed fork's workspace");
                }
            }
            Err(e.into())
        }
    }
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
