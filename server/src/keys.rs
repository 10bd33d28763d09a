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
//! - `keyrevoked:<sha256 hex>`: the tombstone revoking writes (before deleting `keyhash:`), so
//!   a revoked key can never be installed again, e.g. by a restart with the same
//!   `MANAGED_AGENTS_BOOTSTRAP_KEY`. Stores revoked before tombstones existed are covered by a
//!   scan of the revoked keys' hashes when a caller-given key is installed.
//!
//! Generated keys are [`KEY_PREFIX`] followed by 32 random bytes in unpadded base64url (256
//! bits). Keys given by the operator must pass [`check_operator_key`].

use base64::Engine;
use bytes::Bytes;
use managed_agents_core::ids::{ApiKeyId, EnvironmentId, WorkspaceId};
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
/// Every environment key (API §5.3) we issue starts with this.
pub const ENVIRONMENT_KEY_PREFIX: &str = "sk-ma-env01-";

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
    /// The key was revoked; a revoked key is never installed again.
    #[error("this key was revoked as {0}; a revoked key cannot be installed again")]
    Revoked(String),
}

/// The shortest key an operator may give.
pub const MIN_OPERATOR_KEY_LEN: usize = 32;
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 512;
/// The least entropy an operator-given key must show by [`estimated_bits`].
pub const MIN_OPERATOR_KEY_BITS: f64 = 80.0;

/// Who a request acts for, resolved from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key used.
    pub key_id: String,
    /// The workspace every object of the request belongs to.
    pub workspace: WorkspaceId,
    /// For an environment key: the only environment it reaches.
    pub environment: Option<EnvironmentId>,
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
    /// For an environment key: its environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
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
        #[serde(default, skip_serializing_if = "Option::is_none")]
        environment: Option<String>,
    },
    #[serde(rename = "api_key.revoked")]
    Revoked,
}

#[derive(Debug, Serialize, Deserialize)]
struct HashEntry {
    key_id: String,
    workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    environment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Tombstone {
    key_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct NameEntry {
    workspace: String,
}

/// A crude upper estimate of a key's entropy in bits: its length times the Shannon entropy of its
/// character frequencies. It rejects short and repetitive values; it cannot tell that a long
/// phrase of words is guessable, so operators should use random values.
pub fn estimated_bits(key: &str) -> f64 {
    let mut counts = std::collections::HashMap::<char, usize>::new();
    for c in key.chars() {
        *counts.entry(c).or_default() += 1;
    }
    let n = key.chars().count() as f64;
    counts
        .values()
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2() * n
        })
        .sum()
}

/// Checks a key given by the operator (`MANAGED_AGENTS_BOOTSTRAP_KEY`): 32 to 512 visible ASCII
/// characters (what an `x-api-key` header can carry) with at least 80 bits by
/// [`estimated_bits`].
pub fn check_operator_key(key: &str) -> Result<(), Error> {
    let len = key.chars().count();
    if !(MIN_OPERATOR_KEY_LEN..=MAX_KEY_LEN).contains(&len) {
        return Err(Error::Invalid(format!(
            "an API key must be {MIN_OPERATOR_KEY_LEN} to {MAX_KEY_LEN} characters, got {len}; \
             use a random value, e.g. `openssl rand -base64 32`"
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Invalid(
            "an API key must be visible ASCII characters without whitespace".to_owned(),
        ));
    }
    let bits = estimated_bits(key);
    if bits < MIN_OPERATOR_KEY_BITS {
        return Err(Error::Invalid(format!(
            "an API key must not be this repetitive (about {bits:.0} bits, at least \
             {MIN_OPERATOR_KEY_BITS:.0} needed); use a random value, e.g. \
             `openssl rand -base64 32`"
        )));
    }
    Ok(())
}

/// The hex SHA-256 of a key.
pub fn hash(key: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(key.as_bytes());
    // Written digit by digit: this runs for every authenticated request.
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// A fresh random key.
pub fn generate() -> Result<String, Error> {
    generate_with(KEY_PREFIX)
}

fn generate_with(prefix: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
    Ok(format!(
        "{prefix}{}",
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

/// Stores `key` (given by the caller, e.g. a bootstrap key; it must pass
/// [`check_operator_key`]) for workspace `workspace_name`. Returns the key id; storing a key that
/// already exists returns its id and changes nothing; a key that was revoked is
/// [`Error::Revoked`].
pub async fn install<S: Store>(
    store: &S,
    key: &str,
    workspace_name: &str,
    name: Option<&str>,
) -> Result<String, Error> {
    check_operator_key(key)?;
    let digest = hash(key);
    if let Some(existing) = first::<_, HashEntry>(store, &format!("keyhash:{digest}")).await? {
        return Ok(existing.key_id);
    }
    if let Some(revoked) = revoked_as(store, &digest).await? {
        return Err(Error::Revoked(revoked));
    }
    store_new(store, key, digest, workspace_name, name).await
}

/// The id under which the key with hash `digest` was revoked: its tombstone, else (stores revoked
/// before tombstones existed) a scan of the revoked keys, writing the missing tombstone.
async fn revoked_as<S: Store>(store: &S, digest: &str) -> Result<Option<String>, Error> {
    let tombstone = format!("keyrevoked:{digest}");
    if let Some(entry) = first::<_, Tombstone>(store, &tombstone).await? {
        return Ok(Some(entry.key_id));
    }
    let mut query = CatalogQuery::new(Kind::ApiKey, "");
    query.include_archived = true;
    query.order = Order::Asc;
    query.limit = 1000;
    loop {
        let page = store.list(&query).await?;
        for entry in page.entries.iter().filter(|e| e.archived) {
            if let Some(KeyEvent::Created { sha256, .. }) =
                first::<_, KeyEvent>(store, &entry.id).await?
            {
                if sha256 == digest {
                    write_tombstone(store, digest, &entry.id).await?;
                    return Ok(Some(entry.id.clone()));
                }
            }
        }
        match (page.has_more, page.entries.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => return Ok(None),
        }
    }
}

async fn write_tombstone<S: Store>(store: &S, digest: &str, key_id: &str) -> Result<(), Error> {
    store
        .append(Append {
            stream: StreamId::new(format!("keyrevoked:{digest}")),
            expected: Expected::Any,
            events: vec![encode(&Tombstone {
                key_id: key_id.to_owned(),
            })],
            catalog: None,
        })
        .await?;
    Ok(())
}

/// Stores a key known to be new.
async fn store_new<S: Store>(
    store: &S,
    key: &str,
    digest: String,
    workspace_name: &str,
    name: Option<&str>,
) -> Result<String, Error> {
    let workspace = ensure_workspace(store, workspace_name).await?;
    store_in(store, key, digest, (workspace, workspace_name), name, None).await
}

/// Stores a key known to be new for workspace `(id, name)`, scoped to `environment` if set.
async fn store_in<S: Store>(
    store: &S,
    key: &str,
    digest: String,
    (workspace, workspace_name): (String, &str),
    name: Option<&str>,
    environment: Option<&EnvironmentId>,
) -> Result<String, Error> {
    let index = format!("keyhash:{digest}");
    let environment = environment.map(|e| e.as_str().to_owned());
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
                environment: environment.clone(),
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
                environment,
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
    // 256 fresh random bits: no existing or revoked key has this hash.
    let id = store_new(store, &key, hash(&key), workspace_name, name).await?;
    Ok((id, key))
}

/// Creates a new random **environment key** for self-hosted environment `environment_id`
/// (API §5.3): it authenticates only that environment's work endpoints and the sessions it
/// serves (see `crate::auth`). Returns `(id, key)`; the key is not recoverable afterwards.
pub async fn create_environment_key<S: Store>(
    store: &S,
    environment_id: &str,
    name: Option<&str>,
) -> Result<(String, String), Error> {
    let id = EnvironmentId::parse(environment_id)
        .map_err(|e| Error::Invalid(format!("--environment: {e}")))?;
    let records = managed_agents_core::storage::read_all(store, &StreamId::from(&id)).await?;
    let env = managed_agents_core::environment::load(&records)
        .map_err(|_| Error::Corrupt(id.to_string()))?
        .ok_or_else(|| Error::Invalid(format!("no environment {id}")))?;
    if env.settings.config.kind() != "self_hosted" {
        return Err(Error::Invalid(format!(
            "environment {id} is not self_hosted: only self-hosted environments have a work queue"
        )));
    }
    if env.is_archived() {
        return Err(Error::Invalid(format!("environment {id} is archived")));
    }
    let workspace = env.workspace.to_string();
    let workspace_name = workspace_name(store, &workspace).await?;
    let key = generate_with(ENVIRONMENT_KEY_PREFIX)?;
    let key_id = store_in(
        store,
        &key,
        hash(&key),
        (workspace, &workspace_name),
        name,
        Some(&id),
    )
    .await?;
    Ok((key_id, key))
}

/// The name of workspace `id` (from its `workspace.created` record).
async fn workspace_name<S: Store>(store: &S, id: &str) -> Result<String, Error> {
    let created = first::<_, serde_json::Value>(store, id).await?;
    Ok(created
        .as_ref()
        .and_then(|v| v.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned())
}

/// Resolves a presented key to its principal; `None` for unknown or revoked keys.
pub async fn authenticate<S: Store>(store: &S, key: &str) -> Result<Option<Principal>, Error> {
    authenticate_digest(store, &hash(key)).await
}

/// [`authenticate`] for a key already hashed with [`hash`].
pub async fn authenticate_digest<S: Store>(
    store: &S,
    digest: &str,
) -> Result<Option<Principal>, Error> {
    let index = format!("keyhash:{digest}");
    let Some(entry) = first::<_, HashEntry>(store, &index).await? else {
        return Ok(None);
    };
    let workspace =
        WorkspaceId::parse(&entry.workspace).map_err(|_| Error::Corrupt(index.clone()))?;
    let environment = entry
        .environment
        .map(|e| EnvironmentId::parse(&e))
        .transpose()
        .map_err(|_| Error::Corrupt(index))?;
    Ok(Some(Principal {
        key_id: entry.key_id,
        workspace,
        environment,
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
        environment,
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
        environment,
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

/// Revokes key `id`: it stops authenticating immediately and can never be installed again (the
/// tombstone is written first, so a crash half-way leaves a key that a second `revoke` finishes
/// revoking, never one that comes back).
pub async fn revoke<S: Store>(store: &S, id: &str) -> Result<(), Error> {
    let mut entry = store
        .entry(Kind::ApiKey, id)
        .await?
        .ok_or_else(|| Error::UnknownKey(id.to_owned()))?;
    let Some(KeyEvent::Created { sha256, .. }) = first::<_, KeyEvent>(store, id).await? else {
        return Err(Error::Corrupt(id.to_owned()));
    };
    if first::<_, Tombstone>(store, &format!("keyrevoked:{sha256}"))
        .await?
        .is_none()
    {
        write_tombstone(store, &sha256, id).await?;
    }
    if entry.archived {
        return Ok(());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use managed_agents_storage_memory::MemoryStore;

    const KEY: &str = "sk-test-operator-key-0123456789abcdefgh";

    #[test]
    fn a_key_hash_is_the_lowercase_hex_sha256_of_the_key() {
        // FIPS 180-2's example: SHA-256 of "abc".
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn operator_keys_must_be_long_and_varied() {
        assert!(check_operator_key(KEY).is_ok());
        assert!(check_operator_key(&generate().expect("random")).is_ok());
        for weak in [
            "sk-short-but-sixteen-plus".to_owned(),
            "a".repeat(40),
            "ab".repeat(24),
            format!("sk-{}", "01".repeat(20)),
            "sk-test-key with a space-0123456789".to_owned(),
            "x".repeat(513),
        ] {
            assert!(
                matches!(check_operator_key(&weak), Err(Error::Invalid(_))),
                "{weak:?}"
            );
        }
    }

    #[test]
    fn generated_keys_are_the_prefix_and_256_random_bits() {
        let key = generate().expect("random");
        let body = key.strip_prefix(KEY_PREFIX).expect("prefix");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .expect("base64url");
        assert_eq!(bytes.len(), 32);
        assert_ne!(key, generate().expect("random"));
    }

    #[tokio::test]
    async fn a_revoked_key_is_never_installed_again() {
        let store = MemoryStore::new();
        let id = install(&store, KEY, DEFAULT_WORKSPACE, Some("bootstrap"))
            .await
            .expect("install");
        assert_eq!(
            install(&store, KEY, DEFAULT_WORKSPACE, None)
                .await
                .expect("again"),
            id
        );
        revoke(&store, &id).await.expect("revoke");
        assert_eq!(authenticate(&store, KEY).await.expect("auth"), None);
        assert!(matches!(
            install(&store, KEY, DEFAULT_WORKSPACE, None).await,
            Err(Error::Revoked(revoked)) if revoked == id
        ));
        assert_eq!(authenticate(&store, KEY).await.expect("auth"), None);
        assert_eq!(list(&store).await.expect("list").len(), 1);
    }

    #[tokio::test]
    async fn keys_revoked_before_tombstones_stay_revoked() {
        let store = MemoryStore::new();
        let id = install(&store, KEY, DEFAULT_WORKSPACE, None)
            .await
            .expect("install");
        // What `revoke` did before tombstones: delete the hash index, archive the key.
        store
            .delete(
                Kind::ApiKey,
                &StreamId::new(format!("keyhash:{}", hash(KEY))),
            )
            .await
            .expect("delete");
        let mut entry = store
            .entry(Kind::ApiKey, &id)
            .await
            .expect("entry")
            .expect("exists");
        entry.archived = true;
        store
            .append(Append {
                stream: StreamId::new(&id),
                expected: Expected::Any,
                events: vec![encode(&KeyEvent::Revoked)],
                catalog: Some(entry),
            })
            .await
            .expect("archive");
        assert!(matches!(
            install(&store, KEY, DEFAULT_WORKSPACE, None).await,
            Err(Error::Revoked(revoked)) if revoked == id
        ));
        let tombstone = first::<_, Tombstone>(&store, &format!("keyrevoked:{}", hash(KEY)))
            .await
            .expect("read");
        assert_eq!(tombstone.map(|t| t.key_id), Some(id));
    }
}
