//! Memory stores in the sandbox: every `memory_store` resource of the session is written out
//! before each turn as a directory tree (one file per memory, at its path) and bound
//! **read-only** at the resource's `mount_path` (`/mnt/memory/<slug>`), whatever its
//! `access`: changes made in the sandbox are not written back to the store yet, so a
//! `read_write` store is read-only here too and the agent is told so.
//!
//! A snapshot is `<attachments>/memory/<store id>-<stream version>/`, built in a temporary
//! directory (0700 directories, 0600 files, owned by the sandbox's uid like the workspace)
//! and renamed: complete or absent, rebuilt only when the store changed, older snapshots of
//! the store removed. The resident engines get one paragraph per store (name, description,
//! instructions, path). A store deleted since the session was created, or a memory whose
//! path is also another memory's directory, is a non-fatal `session.error`.

use std::path::{Path, PathBuf};

use managed_agents_core::memory::MemoryStore;
use managed_agents_core::resource::Resource;
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream;

use super::skills::{error, own, private_dir};
use super::{Attached, Context};
use crate::sandbox::{Bind, Sandbox};

pub(super) async fn prepare<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &mut Attached) {
    let stores: Vec<&Resource> = cx
        .state
        .resources
        .iter()
        .filter(|r| matches!(r, Resource::MemoryStore { .. }))
        .collect();
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
        let head = match stream::load::<S, Option<MemoryStore>>(
            cx.store,
            &StreamId::new(memory_store_id.as_str()),
        )
        .await
        {
            Ok(head) => head,
            Err(e) => {
                attached
                    .errors
                    .push(error(format!("memory store {memory_store_id}: {e}")));
                continue;
            }
        };
        let Some(store) = head.state.filter(|s| s.workspace == cx.created.workspace) else {
            attached.errors.push(error(format!(
                "memory store {memory_store_id} no longer exists and is not mounted"
            )));
            continue;
        };
        let host = match snapshot(&root, &store, head.version, uid, attached).await {
            Ok(host) => host,
            Err(e) => {
                attached.errors.push(error(format!(
                    "memory store {memory_store_id} cannot be mounted: {e}"
                )));
                continue;
            }
        };
        let bind = Bind::read_only(host, mount_path);
        if let Err(e) = bind.check() {
            attached.errors.push(error(format!(
                "memory store {memory_store_id} cannot be mounted at {mount_path}: {e}"
            )));
            continue;
        }
        attached.workspace = attached.workspace.clone().with_bind(bind);
        let name = name.as_deref().unwrap_or(&store.settings.name);
        let mut paragraph = format!(
            "Memory store \"{name}\" is mounted read-only at {mount_path}: one file per memory, \
             at its path in the store (access {}; changes made here are not saved).",
            match access {
                managed_agents_core::resource::Access::ReadWrite => "read_write",
                managed_agents_core::resource::Access::ReadOnly => "read_only",
            }
        );
        if let Some(description) = description.as_deref().filter(|d| !d.is_empty()) {
            paragraph.push_str(&format!(" What it holds: {description}"));
        }
        if let Some(instructions) = instructions.as_deref().filter(|i| !i.is_empty()) {
            paragraph.push_str(&format!(" Instructions: {instructions}"));
        }
        attached.system.push(paragraph);
    }
}

/// The store's snapshot at stream `version`, written if missing; older snapshots removed.
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
        let relative = path.trim_start_matches('/');
        let target = dir.join(relative);
        let mut parent = dir.to_path_buf();
        let mut blocked = false;
        for segment in relative.split('/').take(relative.split('/').count() - 1) {
            parent.push(segment);
            match tokio::fs::symlink_metadata(&parent).await {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    blocked = true;
                    break;
                }
                Err(_) => private_dir(&parent, uid).await?,
            }
        }
        if blocked || tokio::fs::symlink_metadata(&target).await.is_ok() {
            attached.errors.push(error(format!(
                "memory {path} of memory store {} is not mounted: its path is also a directory of other memories",
                store.id
            )));
            continue;
        }
        write_file(&target, content.as_bytes(), uid).await?;
    }
    Ok(())
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
