//! Loading and writing event-sourced objects (agents, environments, vaults, credentials,
//! files) for the routes: every write is core's one write primitive
//! ([`managed_agents_core::stream::write`]: catch up, decide, append at the expected version with
//! the catalog entry core computes, bounded retry), plus the workspace check (other
//! workspaces' objects are 404) and the error mapping.

use managed_agents_core::object::Object;
use managed_agents_core::storage::{self, StreamId};
use managed_agents_core::stream::{self, Head};

use crate::auth::Auth;
use crate::error::{Error, Result};
use crate::state::AppState;

fn from_stream(error: stream::Error<Error>) -> Error {
    match error {
        stream::Error::Rejected(error) => error,
        stream::Error::Decode { .. } => Error::Internal(error.to_string()),
        stream::Error::Store(error) => error.into(),
    }
}

fn from_read(error: stream::Error<std::convert::Infallible>) -> Error {
    match error {
        stream::Error::Rejected(never) => match never {},
        stream::Error::Decode { .. } => Error::Internal(error.to_string()),
        stream::Error::Store(error) => error.into(),
    }
}

/// Object `id` as folded from its stream, whoever owns it (`None`: it does not exist).
pub async fn find<T: Object>(state: &AppState, id: &str) -> Result<Option<T>> {
    let head: Head<Option<T>> = stream::load(&state.store, &StreamId::new(id))
        .await
        .map_err(from_read)?;
    Ok(head.state)
}

/// Object `id` (a `kind`, for the 404 message) of the caller's workspace.
pub async fn load<T: Object>(state: &AppState, auth: &Auth, kind: &str, id: &str) -> Result<T> {
    owned(
        find(state, id).await?,
        |o: &T| o.workspace() == auth.workspace(),
        kind,
        id,
    )
}

/// Writes to object `id` of the caller's workspace: `decide` sees its current state and returns
/// the records to append (none: nothing changes); a lost race decides again on the new state.
/// Returns the object after the write.
pub async fn write<T: Object>(
    state: &AppState,
    auth: &Auth,
    kind: &str,
    id: &str,
    mut decide: impl FnMut(&T) -> Result<Vec<T::Record>>,
) -> Result<T> {
    let mut head = Head::<Option<T>>::default();
    let written = stream::write(
        &state.store,
        &StreamId::new(id),
        &mut head,
        |current| match current {
            Some(object) if object.workspace() == auth.workspace() => decide(object),
            _ => Err(Error::not_found(kind, id)),
        },
    )
    .await
    .map_err(from_stream)?;
    state.metrics.appended(written.records.len());
    head.state
        .ok_or_else(|| Error::Internal(format!("{kind} {id}: written but not folded")))
}

/// Creates object `id` from its creation `records` (its stream must not exist yet).
pub async fn create<T: Object>(state: &AppState, id: &str, records: Vec<T::Record>) -> Result<T> {
    let count = records.len();
    let head: Head<Option<T>> = stream::create(&state.store, &StreamId::new(id), records).await?;
    state.metrics.appended(count);
    head.state
        .ok_or_else(|| Error::Internal(format!("{id}: created but not folded")))
}

/// Deletes object `id`'s stream and catalog entry.
pub async fn delete(state: &AppState, kind: storage::Kind, id: &str) -> Result<()> {
    use managed_agents_core::storage::Store;
    Ok(state.store.delete(kind, &StreamId::new(id)).await?)
}

/// 404 unless `owner` is the caller's workspace: other workspaces' objects do not exist.
pub fn owned<T>(
    found: Option<T>,
    owner: impl Fn(&T) -> bool,
    kind: &str,
    id: &str,
) -> Result<T, Error> {
    match found {
        Some(object) if owner(&object) => Ok(object),
        _ => Err(Error::not_found(kind, id)),
    }
}
