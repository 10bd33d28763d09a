//! Loading and saving event-sourced objects: read an object's stream, let core fold and decide,
//! append core's records with the expected version and the catalog entry core computes.

use bytes::Bytes;
use managed_agents_core::storage::{self, Append, Expected, Store, StreamId, Version};

use crate::error::Error;
use crate::state::AppState;

/// Every stored record of object `id` (empty when it does not exist).
pub async fn records(state: &AppState, id: &str) -> Result<Vec<storage::Record>, Error> {
    Ok(storage::read_all(&state.store, &StreamId::new(id)).await?)
}

/// Appends `events` to object `id` at `expected`, with its new catalog entry.
pub async fn append(
    state: &AppState,
    id: &str,
    expected: Version,
    events: Vec<Bytes>,
    catalog: Option<storage::CatalogEntry>,
) -> Result<Version, Error> {
    let count = events.len();
    let appended = state
        .store
        .append(Append {
            stream: StreamId::new(id),
            expected: Expected::Exactly(expected),
            events,
            catalog,
        })
        .await?;
    state.metrics.appended(count);
    Ok(appended.last)
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
