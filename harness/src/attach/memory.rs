//! Memory stores in the sandbox: every `memory_store` resource of the session is written out
//! before each turn as a directory tree (one file per memory, at its path) and bound at the
//! resource's `mount_path` (`/mnt/memory/<slug>`).
//!
//! **`read_only`**: a snapshot `<attachments>/memory/<store id>-<stream version>/`, built in a
//! temporary directory (0700 directories, 0600 files, owned by the sandbox's uid like the
//! workspace) and renamed: complete or absent, rebuilt only when the store changed, older
//! snapshots removed; bound read-only.
//!
//! **`read_write`**: a working tree `<attachments>/memory/<store id>/` bound writable, synced
//! in place before each turn from the store (files whose memory changed rewritten, files of
//! deleted memories removed) with `<store id>.json` recording each path's SHA-256 as last
//! synced. Right before the turn's end is written ([`Syncer`], the writer's `before_end`
//! hook, and again after the turn), the tree is compared with that record and the changes
//! are written to the store as memory versions by a `session_actor`: a new file creates a
//! memory, a changed one updates it (precondition: the recorded hash, so a change made
//! through the API meanwhile wins), a removed one deletes it (same check). A file that
//! breaks the memory rules (path, size, UTF-8), or a refused write (archived store,
//! conflict), is logged and left; the store's version wins at the next turn.
//!
//! The resident engines get one paragraph per store (name, description, instructions, path,
//! access). A store deleted since the session was created, or a memory whose path is also
//! another memory's directory, is a non-fatal `session.error`.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use managed_agents_core::ids::{MemoryId, MemoryStoreId, MemoryVersionId, SessionId, WorkspaceId};
use managed_agents_core::memory::{
    self, Actor, MemoryCreateParams, MemoryStore, MemoryUpdateParams, Precondition,
};
use managed_agents_core::patch::Patch;
use managed_agents_core::resource::{Access, Resource};
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;

use super::skills::{error, own, private_dir};
use super::{Attached, Context};
use crate::sandbox::{Bind, Sandbox};

/// A path's content hash as last synced between a working tree and its store.
type Manifest = BTreeMap<String, String>;

fn attached_stores<'a, S: Store, X: Sandbox>(cx: &Context<'a, S, X>) -> Vec<&'a Resource> {
    cx.state
        .resources
        .iter()
        .filter(|r| matches!(r, Resource::MemoryStore { .. }))
        .collect()
}

async fn load_store<S: Store>(
    store: &S,
    id: &str,
    workspace: &WorkspaceId,
) -> Result<(MemoryStore, u64), String> {
    let head = stream::load::<S, Option<MemoryStore>>(store, &StreamId::new(id))
        .await
        .map_err(|e| format!("memory store {id}: {e}"))?;
    match head.state.filter(|s| &s.workspace == workspace) {
        Some(found) => Ok((found, head.version)),
        None => Err(format!(
            "memory store {id} no longer exists and is not mounted"
        )),
    }
}

pub(super) async fn prepare<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &mut Attached) {
    let stores = attached_stores(cx);
    if stores.is_empty() {
        return;
    }
    let root = match super::attachments(cx).await {
        Ok(dir) => dir.join("memory"),
        Err(message) => return attached.errors.push(error(message)),
    };
    let uid = attached.workspace.owner_uid();
    if let Err(e) = private_dir(&root, uid).await {
        return attached
            .errors
            .push(error(format!("memory stores cannot be prepared: {e}")));
    }
    for resource in stores {
        let Resource::MemoryStore {
            memory_store_id,
            access,
            instructions,
            name,
            description,
            mount_path,
        } = resource
        else {
            continue;
        };
        let (store, version) =
            match load_store(cx.store, memory_store_id.as_str(), &cx.created.workspace).await {
                Ok(found) => found,
                Err(message) => {
                    attached.errors.push(error(message));
                    continue;
                }
            };
        let prepared = match access {
            Access::ReadOnly => snapshot(&root, &store, version, uid, attached)
                .await
                .map(|host| Bind::read_only(host, mount_path)),
            Access::ReadWrite => working_tree(&root, &store, uid, attached)
                .await
                .map(|host| Bind::writable(host, mount_path)),
        };
        let bind = match prepared {
            Ok(bind) => bind,
            Err(e) => {
                attached.errors.push(error(format!(
                    "memory store {memory_store_id} cannot be mounted: {e}"
                )));
                continue;
            }
        };
        if let Err(e) = bind.check() {
            attached.errors.push(error(format!(
                "memory store {memory_store_id} cannot be mounted at {mount_path}: {e}"
            )));
            continue;
        }
        attached.workspace = attached.workspace.clone().with_bind(bind);
        let name = name.as_deref().unwrap_or(&store.settings.name);
        let mut paragraph = match access {
            Access::ReadOnly => format!(
                "Memory store \"{name}\" is mounted read-only at {mount_path}: one file per \
                 memory, at its path in the store."
            ),
            Access::ReadWrite => format!(
                "Memory store \"{name}\" is mounted at {mount_path}: one file per memory, at its \
                 path in the store. Files you create, change or delete there are saved to the \
                 store when your turn ends (UTF-8 text, at most 100 kB each)."
            ),
        };
        if let Some(description) = description.as_deref().filter(|d| !d.is_empty()) {
            paragraph.push_str(&format!(" What it holds: {description}"));
        }
        if let Some(instructions) = instructions.as_deref().filter(|i| !i.is_empty()) {
            paragraph.push_str(&format!(" Instructions: {instructions}"));
        }
        attached.system.push(paragraph);
    }
}

/// The store's read-only snapshot at stream `version`, written if missing; older snapshots
/// removed.
async fn snapshot(
    root: &Path,
    store: &MemoryStore,
    version: u64,
    uid: Option<u32>,
    attached: &mut Attached,
) -> std::io::Result<PathBuf> {
    let prefix = format!("{}-", store.id);
    let done = root.join(format!("{prefix}{version}"));
    if !tokio::fs::try_exists(&done).await? {
        let tmp = root.join(format!(".tmp-{}-{}", store.id, fastrand::u64(..)));
        let written = write_tree(&tmp, store, uid, attached).await;
        let result = match written {
            Ok(()) => match tokio::fs::rename(&tmp, &done).await {
                Ok(()) => Ok(()),
                // Another turn of the session finished first.
                Err(_) if tokio::fs::try_exists(&done).await.unwrap_or(false) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if tokio::fs::try_exists(&tmp).await.unwrap_or(false) {
            let _ = tokio::fs::remove_dir_all(&tmp).await;
        }
        result?;
    }
    let mut entries = tokio::fs::read_dir(root).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(&prefix) && entry.path() != done {
            let _ = tokio::fs::remove_dir_all(entry.path()).await;
        }
    }
    Ok(done)
}

/// Writes every memory of `store` under `dir` (paths are checked by core: no empty, `.` or
/// `..` segment, so each stays below `dir`).
async fn write_tree(
    dir: &Path,
    store: &MemoryStore,
    uid: Option<u32>,
    attached: &mut Attached,
) -> std::io::Result<()> {
    private_dir(dir, uid).await?;
    for (path, content) in store.contents() {
        if !place(dir, path, content, uid).await? {
            attached.errors.push(blocked(store, path));
        }
    }
    Ok(())
}

fn blocked(store: &MemoryStore, path: &str) -> managed_agents_core::event::SessionError {
    error(format!(
        "memory {path} of memory store {} is not mounted: its path is also a directory of other memories",
        store.id
    ))
}

/// Writes `content` at memory `path` below `dir` (replacing a file there, through a temporary
/// file and a rename), making parent directories; `false` when a parent is not a directory or
/// the path is a directory.
async fn place(dir: &Path, path: &str, content: &str, uid: Option<u32>) -> std::io::Result<bool> {
    let relative = path.trim_start_matches('/');
    let segments: Vec<&str> = relative.split('/').collect();
    let mut parent = dir.to_path_buf();
    for segment in &segments[..segments.len() - 1] {
        parent.push(segment);
        match tokio::fs::symlink_metadata(&parent).await {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(_) => private_dir(&parent, uid).await?,
        }
    }
    let target = dir.join(relative);
    if let Ok(meta) = tokio::fs::symlink_metadata(&target).await {
        if meta.is_dir() {
            return Ok(false);
        }
    }
    let tmp = parent.join(format!(".ma-tmp-{}", fastrand::u64(..)));
    let result = async {
        write_file(&tmp, content.as_bytes(), uid).await?;
        tokio::fs::rename(&tmp, &target).await
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|()| true)
}

async fn write_file(path: &Path, bytes: &[u8], uid: Option<u32>) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .await?;
    file.write_all(bytes).await?;
    file.flush().await?;
    drop(file);
    own(path, uid)
}

fn manifest_path(root: &Path, id: &MemoryStoreId) -> PathBuf {
    root.join(format!("{id}.json"))
}

async fn read_manifest(path: &Path) -> Manifest {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Manifest::new(),
    }
}

async fn write_manifest(path: &Path, manifest: &Manifest) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(manifest).map_err(std::io::Error::other)?;
    tokio::fs::write(path, bytes).await
}

/// Brings the store's working tree in line with the store: rewrites files whose memory changed
/// since the last sync, removes files of memories deleted since, records the new state.
async fn working_tree(
    root: &Path,
    store: &MemoryStore,
    uid: Option<u32>,
    attached: &mut Attached,
) -> std::io::Result<PathBuf> {
    let tree = root.join(store.id.as_str());
    private_dir(&tree, uid).await?;
    let record = manifest_path(root, &store.id);
    let old = read_manifest(&record).await;
    let mut synced = Manifest::new();
    let mut current = BTreeMap::new();
    for (path, content) in store.contents() {
        current.insert(path.to_owned(), content);
    }
    for path in old.keys().filter(|p| !current.contains_key(*p)) {
        let _ = tokio::fs::remove_file(tree.join(path.trim_start_matches('/'))).await;
    }
    for (path, content) in current {
        let sha = memory::sha256(content);
        let on_disk = tree.join(path.trim_start_matches('/'));
        let fresh = old.get(&path) == Some(&sha) && tokio::fs::try_exists(&on_disk).await?;
        if fresh || place(&tree, &path, content, uid).await? {
            synced.insert(path, sha);
        } else {
            attached.errors.push(blocked(store, &path));
        }
    }
    write_manifest(&record, &synced).await?;
    Ok(tree)
}

/// Saves what the agent changed in the session's `read_write` memory stores (owned, so it can
/// run inside the writer).
pub(crate) struct Syncer<S> {
    store: S,
    root: PathBuf,
    session: SessionId,
    workspace: WorkspaceId,
    stores: Vec<MemoryStoreId>,
}

/// The syncer of the session's `read_write` stores (`None`: there are none).
pub(super) fn syncer<S: Store, X: Sandbox>(cx: &Context<'_, S, X>) -> Option<Syncer<S>> {
    let stores: Vec<MemoryStoreId> = attached_stores(cx)
        .into_iter()
        .filter_map(|r| match r {
            Resource::MemoryStore {
                memory_store_id,
                access: Access::ReadWrite,
                ..
            } => MemoryStoreId::parse(memory_store_id.as_str()).ok(),
            _ => None,
        })
        .collect();
    if stores.is_empty() {
        return None;
    }
    Some(Syncer {
        store: cx.store.clone(),
        root: cx
            .options
            .workspaces
            .attachments(cx.session.as_str())
            .ok()?
            .join("memory"),
        session: cx.session.clone(),
        workspace: cx.created.workspace.clone(),
        stores,
    })
}

/// One change found in a working tree.
enum Change {
    /// A file with this content (new or changed).
    Write(String),
    /// The file is gone.
    Delete,
}

impl<S: Store> Syncer<S> {
    /// Writes every working tree's changes to its store.
    pub(crate) async fn sync(self) {
        for id in &self.stores {
            if let Err(e) = self.sync_store(id).await {
                tracing::warn!(session = %self.session, store = %id, error = %e, "saving memory changes");
            }
        }
    }

    async fn sync_store(&self, id: &MemoryStoreId) -> Result<(), String> {
        let tree = self.root.join(id.as_str());
        if !tokio::fs::try_exists(&tree).await.unwrap_or(false) {
            return Ok(());
        }
        let record = manifest_path(&self.root, id);
        let mut manifest = read_manifest(&record).await;
        let mut found = Vec::new();
        walk(&tree, String::new(), 0, &mut found);
        let mut changes: Vec<(String, Change)> = Vec::new();
        let mut present = std::collections::BTreeSet::new();
        for relative in found {
            let path = format!("/{relative}");
            present.insert(path.clone());
            match read_memory_file(&tree.join(&relative)).await {
                Ok(content) => {
                    if manifest.get(&path) != Some(&memory::sha256(&content)) {
                        changes.push((path, Change::Write(content)));
                    }
                }
                Err(why) => {
                    tracing::warn!(session = %self.session, store = %id, path, why, "memory file not saved")
                }
            }
        }
        for path in manifest.keys().filter(|p| !present.contains(*p)) {
            changes.push((path.clone(), Change::Delete));
        }
        if changes.is_empty() {
            return Ok(());
        }
        let by = Actor::Session {
            session_id: self.session.to_string(),
        };
        let now = Timestamp::now();
        let mut head = Head::<Option<MemoryStore>>::default();
        let mut outcomes: Vec<(String, Option<String>)> = Vec::new();
        let workspace = &self.workspace;
        stream::write_staged(&self.store, &StreamId::new(id.as_str()), &mut head, |staged| {
            outcomes.clear();
            for (path, change) in &changes {
                let Some(store) = staged.state().as_ref().filter(|s| &s.workspace == workspace)
                else {
                    return Err("the memory store no longer exists".to_owned());
                };
                let version = MemoryVersionId::generate(now);
                let expected = manifest.get(path).cloned();
                let decided = match (change, store.at_path(path)) {
                    (Change::Write(content), None) => memory::create_memory(
                        store,
                        &MemoryCreateParams {
                            path: path.clone(),
                            content: Patch::Value(content.clone()),
                        },
                        &MemoryId::generate(now),
                        &version,
                        &by,
                        now,
                    ),
                    (Change::Write(content), Some(existing)) => memory::update_memory(
                        store,
                        &existing.id.clone(),
                        &MemoryUpdateParams {
                            content: Patch::Value(content.clone()),
                            path: Patch::Absent,
                            precondition: expected.clone().map(|sha| Precondition {
                                kind: "content_sha256".to_owned(),
                                content_sha256: Some(sha),
                            }),
                        },
                        &version,
                        &by,
                        now,
                    ),
                    (Change::Delete, Some(existing)) => memory::delete_memory(
                        store,
                        &existing.id.clone(),
                        expected.as_deref(),
                        &version,
                        &by,
                        now,
                    ),
                    (Change::Delete, None) => Ok(Vec::new()),
                };
                match decided {
                    Ok(records) => {
                        for record in records {
                            staged.push(record);
                        }
                        let sha = match change {
                            Change::Write(content) => Some(memory::sha256(content)),
                            Change::Delete => None,
                        };
                        outcomes.push((path.clone(), sha));
                    }
                    Err(refused) => {
                        tracing::warn!(session = %self.session, store = %id, path, error = %refused, "memory change not saved")
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| match e {
            stream::Error::Rejected(why) => why,
            other => other.to_string(),
        })?;
        for (path, sha) in outcomes {
            match sha {
                Some(sha) => manifest.insert(path, sha),
                None => manifest.remove(&path),
            };
        }
        write_manifest(&record, &manifest)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A memory file's content: a regular file (never followed if a link), UTF-8, within the
/// content limit.
async fn read_memory_file(path: &Path) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let file = tokio::fs::OpenOptions::from(options)
        .open(path)
        .await
        .map_err(|e| e.to_string())?;
    let meta = file.metadata().await.map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.size() > memory::MAX_CONTENT_BYTES as u64 {
        return Err(format!("larger than {} bytes", memory::MAX_CONTENT_BYTES));
    }
    let mut bytes = Vec::new();
    file.take(memory::MAX_CONTENT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() > memory::MAX_CONTENT_BYTES {
        return Err(format!("larger than {} bytes", memory::MAX_CONTENT_BYTES));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// Regular files under `dir` (paths relative to it), symbolic links and our temporary files
/// skipped, at most as deep as a memory path may be.
fn walk(dir: &Path, prefix: String, depth: usize, found: &mut Vec<String>) {
    if depth >= memory::path::MAX_SEGMENTS {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.starts_with(".ma-tmp-") {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        if meta.is_dir() {
            walk(&entry.path(), path, depth + 1, found);
        } else if meta.is_file() {
            found.push(path);
        }
    }
}
