//! API keys and workspaces, kept in the store.
//!
//! A key is shown once at creation and stored only as its SHA-256. Layout (stream keys):
//! - `wrkspc_…`: the workspace's log (`workspace.created`), catalog kind `Workspace` with the
//!   workspace's name; `wsname:<name>` is a one-event stream mapping a name to its id, created
//!   with expected version 0 so two creators cannot make two workspaces of one name.
//! - `apikey_…`: the key's log (`api_key.created`, `api_key.revoked`), catalog kind `ApiKey`
//!   in the global workspace `""` with the owning workspace as `parent`; revoked keys are
//!   archived entries.
//! - `keyhash:<sha256 hex>`: a one-event stream from the hash to the key id and workspace; it is
//!   what authentication reads, and revoking a key deletes it.

use base64::Engine;
use bytes::Bytes;
use managed_agents_core::ids::{ApiKeyId, WorkspaceId};
use managed_agents_core::storage::{
    Append, CatalogEntry, CatalogQuery, Direction, Error as StoreError, Expected, Kind, Order,
    Store, StreamId,
};
use managed_agents_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The workspace a key is created in when none is named.
pub const DEFAULT_WORKSPACE: &str = "default";
/// Every key we issue starts with this.
pub const KEY_PREFIX: &str = "sk-ma-api01-";

/// What can go wrong managing keys.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The OS random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A stored record did not decode.
    #[error("corrupt key record in {0}")]
    Corrupt(String),
    /// No key with that id.
    #[error("no API key {0:?}")]
    UnknownKey(String),
    /// The key text is not acceptable as a key.
    #[error("{0}")]
    Invalid(String),
}

/// Who a request acts for, resolved from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key used.
    pub key_id: String,
    /// The workspace every object of the request belongs to.
    pub workspace: String,
}

/// One key as `keys list` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyInfo {
    /// `apikey_…`.
    pub id: String,
    /// The workspace name.
    pub workspace_name: String,
    /// The workspace id.
    pub workspace: String,
    /// A label.
    pub name: Option<String>,
    /// The last four characters of the key.
    pub hint: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Whether it was revoked.
    pub revoked: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type")]
enum KeyEvent {
    #[serde(rename = "api_key.created")]
    Created {
        workspace: String,
        workspace_name: String,
        name: Option<String>,
        hint: String,
        sha256: String,
    },
    #[serde(rename = "api_key.revoked")]
    Revoked,
}

#[derive(Debug, Serialize, Deserialize)]
struct HashEntry {
    key_id: String,
    workspace: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct NameEntry {
    workspace: String,
}

/// The hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A fresh random key.
pub fn generate() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

async fn first<S: Store, T: for<'de> Deserialize<'de>>(
    store: &S,
    stream: &str,
) -> Result<Option<T>, Error> {
    let records = store
        .read(&StreamId::new(stream), 1, Direction::Forward, 1)
        .await?;
    records
        .first()
        .map(|r| serde_json::from_slice(&r.payload).map_err(|_| Error::Corrupt(stream.to_owned())))
        .transpose()
}

/// The id of the workspace named `name`, creating it if new.
pub async fn ensure_workspace<S: Store>(store: &S, name: &str) -> Result<String, Error> {
    let index = format!("wsname:{name}");
    if let Some(entry) = first::<_, NameEntry>(store, &index).await? {
        return Ok(entry.workspace);
    }
    let now = Timestamp::now();
    let id = WorkspaceId::generate(now).to_string();
    let claimed = store
        .append(Append {
            stream: StreamId::new(&index),
            expected: Expected::Exactly(0),
            events: vec![encode(&NameEntry {
                workspace: id.clone(),
            })],
            catalog: None,
        })
        .await;
    match claimed {
        Ok(_) => {}
        Err(StoreError::WrongExpectedVersion { .. }) => {
            return first::<_, NameEntry>(store, &index)
                .await?
                .map(|e| e.workspace)
                .ok_or(Error::Corrupt(index));
        }
        Err(other) => return Err(other.into()),
    }
    let mut entry = CatalogEntry::new(Kind::Workspace, &id, "", now);
    entry.name = Some(name.to_owned());
    store
        .append(Append {
            stream: StreamId::new(&id),
            expected: Expected::Exactly(0),
            events: vec![encode(
                &serde_json::json!({"type": "workspace.created", "name": name}),
            )],
            catalog: Some(entry),
        })
        .await?;
    Ok(id)
}

/// Stores `key` (given by the caller, e.g. a bootstrap key) for workspace `workspace_name`.
/// Returns the key id; storing a key that already exists returns its id and changes nothing.
pub async fn install<S: Store>(
    store: &S,
    key: &str,
    workspace_name: &str,
    name: Option<&str>,
) -> Result<String, Error> {
    if key.len() < 16 || key.len() > 512 || key.chars().any(|c| c.is_whitespace()) {
        return Err(Error::Invalid(
            "an API key must be 16 to 512 characters without whitespace".to_owned(),
        ));
    }
    let digest = hash(key);
    let index = format!("keyhash:{digest}");
    if let Some(existing) = first::<_, HashEntry>(store, &index).await? {
        return Ok(existing.key_id);
    }
    let workspace = ensure_workspace(store, workspace_name).await?;
    let now = Timestamp::now();
    let id = ApiKeyId::generate(now).to_string();
    let hint: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut entry = CatalogEntry::new(Kind::ApiKey, &id, "", now);
    entry.parent = Some(workspace.clone());
    entry.name = name.map(str::to_owned);
    store
        .append(Append {
            stream: StreamId::new(&id),
            expected: Expected::Exactly(0),
            events: vec![encode(&KeyEvent::Created {
                workspace: workspace.clone(),
                workspace_name: workspace_name.to_owned(),
                name: name.map(str::to_owned),
                hint,
                sha256: digest,
            })],
            catalog: Some(entry),
        })
        .await?;
    store
        .append(Append {
            stream: StreamId::new(&index),
            expected: Expected::Any,
            events: vec![encode(&HashEntry {
                key_id: id.clone(),
                workspace,
            })],
            catalog: None,
        })
        .await?;
    Ok(id)
}

/// Creates a new random key for `workspace_name`; returns `(id, key)`. The key is not
/// recoverable afterwards.
pub async fn create<S: Store>(
    store: &S,
    workspace_name: &str,
    name: Option<&str>,
) -> Result<(String, String), Error> {
    let key = generate()?;
    let id = install(store, &key, workspace_name, name).await?;
    Ok((id, key))
}

/// Resolves a presented key to its principal; `None` for unknown or revoked keys.
pub async fn authenticate<S: Store>(store: &S, key: &str) -> Result<Option<Principal>, Error> {
    let index = format!("keyhash:{}", hash(key));
    Ok(first::<_, HashEntry>(store, &index)
        .await?
        .map(|entry| Principal {
            key_id: entry.key_id,
            workspace: entry.workspace,
        }))
}

/// Whether any key (revoked or not) was ever created.
pub async fn any<S: Store>(store: &S) -> Result<bool, Error> {
    let mut query = CatalogQuery::new(Kind::ApiKey, "");
    query.include_archived = true;
    query.limit = 1;
    Ok(!store.list(&query).await?.entries.is_empty())
}

async fn info<S: Store>(store: &S, entry: &CatalogEntry) -> Result<KeyInfo, Error> {
    let created = first::<_, KeyEvent>(store, &entry.id)
        .await?
        .ok_or_else(|| Error::Corrupt(entry.id.clone()))?;
    let KeyEvent::Created {
        workspace,
        workspace_name,
        name,
        hint,
        ..
    } = created
    else {
        return Err(Error::Corrupt(entry.id.clone()));
    };
    Ok(KeyInfo {
        id: entry.id.clone(),
        workspace_name,
        workspace,
        name,
        hint,
        created_at: entry.created_at,
        revoked: entry.archived,
    })
}

/// Every key, oldest first.
pub async fn list<S: Store>(store: &S) -> Result<Vec<KeyInfo>, Error> {
    let mut query = CatalogQuery::new(Kind::ApiKey, "");
    query.include_archived = true;
    query.order = Order::Asc;
    query.limit = 1000;
    let mut keys = Vec::new();
    loop {
        let page = store.list(&query).await?;
        for entry in &page.entries {
            keys.push(info(store, entry).await?);
        }
        match (page.has_more, page.entries.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => return Ok(keys),
        }
    }
}

/// Revokes key `id`: it stops authenticating immediately.
pub async fn revoke<S: Store>(store: &S, id: &str) -> Result<(), Error> {
    let mut entry = store
        .entry(Kind::ApiKey, id)
        .await?
        .ok_or_else(|| Error::UnknownKey(id.to_owned()))?;
    if entry.archived {
        return Ok(());
    }
    let Some(KeyEvent::Created { sha256, .. }) = first::<_, KeyEvent>(store, id).await? else {
        return Err(Error::Corrupt(id.to_owned()));
    };
    store
        .delete(Kind::ApiKey, &StreamId::new(format!("keyhash:{sha256}")))
        .await?;
    entry.archived = true;
    store
        .append(Append {
            stream: StreamId::new(id),
            expected: Expected::Any,
            events: vec![encode(&KeyEvent::Revoked)],
            catalog: Some(entry),
        })
        .await?;
    Ok(())
}
