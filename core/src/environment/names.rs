//! Environment writes that take, change or give up a name, over any [`Store`]: names are
//! unique per workspace through name claims ([`crate::claim`]), so the rule holds for every
//! process sharing the store (the server, embedded programs).
//!
//! - [`create_named`]: claim, then create (a failed create releases the claim);
//! - [`update_named`]: a rename claims the new name, writes, then releases the old one; a write
//!   whose environment was fenced meanwhile (the claim was found stale) is refused;
//! - [`delete_named`]: delete, then release.
//!
//! Archiving keeps the name (archived environments still hold theirs); it is a plain
//! [`crate::stream::write`]. A crash between the steps leaves a claim that goes stale after
//! [`crate::claim::LEASE_MS`].

use std::convert::Infallible;

use super::{create, duplicate_name, name_claim, update, Environment, EnvironmentCreateParams};
use super::{EnvironmentUpdateParams, Record};
use crate::claim;
use crate::ids::{EnvironmentId, WorkspaceId};
use crate::object::Error;
use crate::storage::{self, CatalogQuery, Kind, Order, Store, StreamId};
use crate::stream::{self, Head};
use crate::time::Timestamp;

/// Why an environment write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No environment with this id in the workspace.
    #[error("environment not found")]
    NotFound,
    /// A rule refused the write (400 / 409, a taken name included).
    #[error(transparent)]
    Rejected(#[from] Error),
    /// The store failed, or other writers kept winning.
    #[error(transparent)]
    Store(#[from] storage::Error),
    /// A stored record could not be decoded.
    #[error("{0}")]
    Corrupt(String),
}

impl From<stream::Error<Infallible>> for WriteError {
    fn from(error: stream::Error<Infallible>) -> Self {
        match error {
            stream::Error::Rejected(never) => match never {},
            stream::Error::Store(e) => WriteError::Store(e),
            decode @ stream::Error::Decode { .. } => WriteError::Corrupt(decode.to_string()),
        }
    }
}

impl From<stream::Error<WriteError>> for WriteError {
    fn from(error: stream::Error<WriteError>) -> Self {
        match error {
            stream::Error::Rejected(e) => e,
            stream::Error::Store(e) => WriteError::Store(e),
            decode @ stream::Error::Decode { .. } => WriteError::Corrupt(decode.to_string()),
        }
    }
}

fn taken(name: &str, error: claim::Error) -> WriteError {
    match error {
        claim::Error::Taken(_) => duplicate_name(name).into(),
        claim::Error::Stream(e) => e.into(),
    }
}

/// Claims environment name `name` in `workspace` for environment `owner` (see
/// [`crate::claim::acquire`]). Before claims existed names lived only in catalog entries, so the
/// first claim of a name also looks for an older environment carrying it. A taken name is
/// [`claim::Error::Taken`]; report it as [`duplicate_name`].
pub async fn claim_name<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    name: &str,
    owner: &EnvironmentId,
    now: Timestamp,
) -> Result<(), claim::Error> {
    let stream = name_claim(workspace, name);
    if claim::is_new(store, &stream).await? {
        let mut query = CatalogQuery::new(Kind::Environment, workspace.as_str());
        query.include_archived = true;
        query.order = Order::Asc;
        query.limit = 1000;
        loop {
            let page = store.list(&query).await?;
            if let Some(older) = page
                .entries
                .iter()
                .find(|e| e.name.as_deref() == Some(name) && e.id != owner.as_str())
            {
                return Err(claim::Error::Taken(older.id.clone()));
            }
            match (page.has_more, page.entries.last()) {
                (true, Some(last)) => query.after = Some(last.id.clone()),
                _ => break,
            }
        }
    }
    claim::acquire::<S, Option<Environment>>(store, &stream, name, owner.as_str(), now).await
}

/// Gives environment name `name` in `workspace` up, if `owner` holds it (after a rename or a
/// delete).
pub async fn release_name<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    name: &str,
    owner: &EnvironmentId,
    now: Timestamp,
) -> Result<(), claim::Error> {
    claim::release(store, &name_claim(workspace, name), owner.as_str(), now).await
}

/// Releasing only frees a name sooner (a claim left behind goes stale), so its failure does
/// not fail the write that came before.
async fn release_quietly<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    name: &str,
    owner: &EnvironmentId,
    now: Timestamp,
) {
    let _ = release_name(store, workspace, name, owner, now).await;
}

/// `POST /v1/environments`: creates environment `id` in `workspace`, claiming its name first.
pub async fn create_named<S: Store>(
    store: &S,
    params: EnvironmentCreateParams,
    id: EnvironmentId,
    workspace: &WorkspaceId,
    now: Timestamp,
) -> Result<Environment, WriteError> {
    let records = create(params, id.clone(), workspace.clone(), now)?;
    let name = match records.first() {
        Some(Record::Created { settings, .. }) => settings.name.clone(),
        _ => return Err(WriteError::Corrupt("create wrote no creation".into())),
    };
    claim_name(store, workspace, &name, &id, now)
        .await
        .map_err(|e| taken(&name, e))?;
    let created = stream::create::<_, Option<Environment>>(store, &StreamId::from(&id), records)
        .await
        .map_err(WriteError::from)
        .and_then(|head| head.state.ok_or(WriteError::NotFound));
    if created.is_err() {
        release_quietly(store, workspace, &name, &id, now).await;
    }
    created
}

/// Loads environment `id` of `workspace`.
async fn load<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    id: &EnvironmentId,
) -> Result<Environment, WriteError> {
    let head: Head<Option<Environment>> = stream::load(store, &StreamId::from(id)).await?;
    head.state
        .filter(|env| &env.workspace == workspace)
        .ok_or(WriteError::NotFound)
}

/// `POST /v1/environments/{id}`: updates environment `id` of `workspace`; a rename claims the
/// new name before writing and releases the old one after.
pub async fn update_named<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    id: &EnvironmentId,
    params: EnvironmentUpdateParams,
    now: Timestamp,
) -> Result<Environment, WriteError> {
    let before = load(store, workspace, id).await?;
    let renamed =
        update(&before, params.clone(), now)?
            .into_iter()
            .find_map(|record| match record {
                Record::Updated { settings, .. } if settings.name != before.settings.name => {
                    Some(settings.name)
                }
                _ => None,
            });
    if let Some(name) = &renamed {
        claim_name(store, workspace, name, id, now)
            .await
            .map_err(|e| taken(name, e))?;
    }
    let mut head = Head::<Option<Environment>>::default();
    let written = stream::write(
        store,
        &StreamId::from(id),
        &mut head,
        |current| -> Result<Vec<Record>, WriteError> {
            let current = current
                .as_ref()
                .filter(|env| &env.workspace == workspace)
                .ok_or(WriteError::NotFound)?;
            if let Some(name) = &renamed {
                if current.fences != before.fences {
                    // Our claim was found stale and we were fenced: the name is not ours any more.
                    return Err(duplicate_name(name).into());
                }
            }
            let records = update(current, params.clone(), now)?;
            let target = records.iter().rev().find_map(|record| match record {
                Record::Updated { settings, .. } => Some(&settings.name),
                _ => None,
            });
            match target {
                // Renamed meanwhile: the claimed name is not the one this write would set.
                Some(name) if name != &current.settings.name && Some(name) != renamed.as_ref() => {
                    Err(Error::Conflict(
                        "the environment was changed concurrently; retry the request".into(),
                    )
                    .into())
                }
                _ => Ok(records),
            }
        },
    )
    .await
    .map_err(|e: stream::Error<WriteError>| WriteError::from(e))
    .and_then(|_| head.state.ok_or(WriteError::NotFound));
    if let Some(name) = &renamed {
        match &written {
            Ok(after) if &after.settings.name == name => {
                release_quietly(store, workspace, &before.settings.name, id, now).await;
            }
            Ok(_) => {}
            Err(_) => release_quietly(store, workspace, name, id, now).await,
        }
    }
    written
}

/// `DELETE /v1/environments/{id}`: deletes environment `id` of `workspace`, then releases its
/// name. Returns the environment as it was.
pub async fn delete_named<S: Store>(
    store: &S,
    workspace: &WorkspaceId,
    id: &EnvironmentId,
    now: Timestamp,
) -> Result<Environment, WriteError> {
    let env = load(store, workspace, id).await?;
    store.delete(Kind::Environment, &StreamId::from(id)).await?;
    release_quietly(store, workspace, &env.settings.name, id, now).await;
    Ok(env)
}
