//! Files in and out of the sandbox.
//!
//! **In.** Every `file` resource the session has now (`state.resources`, so one added or
//! removed between turns is seen by the next turn) is copied once from the blob store to
//! `<attachments>/uploads/<file id>` (0600, owned by the sandbox's uid like the workspace,
//! written to a temporary name and renamed) and bound
//! read-only at its `mount_path`; copies of removed resources are deleted.
//!
//! **Out.** `<attachments>/outputs/` (owned by the sandbox's uid; with a quota its own
//! filesystem: `Workspaces::outputs`) is bound writable at `/mnt/session/outputs` for every
//! turn. Right before the turn's end is written (the writer's `before_end` hook, so the files
//! exist when the idle event does; [`finish`] looks again after the turn), a [`Collector`]
//! walks it (regular files only, symbolic links skipped and never followed, opened with
//! `O_NOFOLLOW`) and stores
//! each file that is new or changed since it was last collected as a file object scoped to the
//! session (`downloadable: true`), named by its base name. What was collected is remembered in
//! `<attachments>/outputs.json` (path → size, mtime, inode), so a file left in place is not
//! stored again. At most [`MAX_OUTPUTS`] files of at most [`MAX_OUTPUT_BYTES`] each per turn;
//! the rest is logged and left for a later turn.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use managed_agents_core::file::{self, File, NewFile};
use managed_agents_core::ids::{FileId, SessionId, WorkspaceId};
use managed_agents_core::resource::Resource;
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream;
use managed_agents_core::time::Timestamp;
use serde::{Deserialize, Serialize};

use super::skills::{error, own, private_dir};
use super::{Attached, Context};
use crate::blobs::BlobStore;
use crate::sandbox::{Bind, Sandbox};

/// Where the agent writes files meant for the user.
pub(super) const OUTPUTS: &str = "/mnt/session/outputs";
/// Most output files stored after one turn.
pub(super) const MAX_OUTPUTS: usize = 100;
/// Largest output file stored (the upload limit).
pub(super) const MAX_OUTPUT_BYTES: u64 = 500 * 1024 * 1024;
/// Deepest directory level of the outputs walked.
const MAX_DEPTH: usize = 8;

pub(super) async fn prepare<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &mut Attached) {
    let dir = match super::attachments(cx).await {
        Ok(dir) => dir,
        Err(message) => return attached.errors.push(error(message)),
    };
    if let Err(message) = outputs_dir(cx, attached).await {
        attached.errors.push(error(message));
    }
    uploads(cx, &dir, attached).await;
}

/// The outputs directory, owned by the sandbox's uid, bound writable.
async fn outputs_dir<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    attached: &mut Attached,
) -> Result<(), String> {
    let outputs = cx
        .options
        .workspaces
        .outputs(cx.session.as_str(), attached.workspace.owner_uid())
        .await
        .map_err(|e| format!("{OUTPUTS} cannot be prepared: {e}"))?;
    attached.workspace = attached
        .workspace
        .clone()
        .with_bind(Bind::writable(outputs, OUTPUTS));
    Ok(())
}

async fn uploads<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    dir: &Path,
    attached: &mut Attached,
) {
    let uploads = dir.join("uploads");
    let wanted: Vec<(&FileId, &String)> = cx
        .state
        .resources
        .iter()
        .filter_map(|r| match r {
            Resource::File {
                file_id,
                mount_path,
                ..
            } => Some((file_id, mount_path)),
            _ => None,
        })
        .collect();
    remove_stale(&uploads, &wanted).await;
    if wanted.is_empty() {
        return;
    }
    let uid = attached.workspace.owner_uid();
    if let Err(e) = private_dir(&uploads, uid).await {
        attached
            .errors
            .push(error(format!("file resources cannot be prepared: {e}")));
        return;
    }
    for (file_id, mount_path) in wanted {
        match copy_in(cx, &uploads, file_id, uid).await {
            Ok(host) => {
                let bind = Bind::read_only(host, mount_path);
                match bind.check() {
                    Ok(()) => attached.workspace = attached.workspace.clone().with_bind(bind),
                    Err(e) => attached.errors.push(error(format!(
                        "file {file_id} cannot be mounted at {mount_path}: {e}"
                    ))),
                }
            }
            Err(message) => attached.errors.push(error(message)),
        }
    }
}

/// Deletes copies of files that are no longer resources of the session.
async fn remove_stale(uploads: &Path, wanted: &[(&FileId, &String)]) {
    let Ok(mut entries) = tokio::fs::read_dir(uploads).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name();
        let keep = wanted
            .iter()
            .any(|(id, _)| name.to_str() == Some(id.as_str()));
        if !keep {
            if let Err(e) = tokio::fs::remove_file(entry.path()).await {
                tracing::warn!(path = %entry.path().display(), error = %e, "removing a stale upload copy");
            }
        }
    }
}

/// `<uploads>/<file id>`, copied from the blob store if not there yet.
async fn copy_in<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    uploads: &Path,
    file_id: &FileId,
    uid: Option<u32>,
) -> Result<PathBuf, String> {
    let host = uploads.join(file_id.as_str());
    if tokio::fs::try_exists(&host).await.unwrap_or(false) {
        return Ok(host);
    }
    let head = stream::load::<S, Option<File>>(cx.store, &StreamId::new(file_id.as_str()))
        .await
        .map_err(|e| format!("file {file_id}: {e}"))?;
    let ours = head
        .state
        .is_some_and(|f| f.workspace == cx.created.workspace);
    if !ours {
        return Err(format!("file {file_id} no longer exists"));
    }
    let blobs = cx
        .options
        .blobs
        .as_ref()
        .ok_or_else(|| format!("file {file_id} cannot be mounted: no blob store"))?;
    let tmp = uploads.join(format!(".tmp-{file_id}-{}", fastrand::u64(..)));
    let result = async {
        match blobs.read_into(file_id.as_str(), &tmp, 0o600).await {
            Ok(true) => {}
            Ok(false) => return Err(format!("the bytes of file {file_id} are missing")),
            Err(e) => return Err(format!("file {file_id}: {e}")),
        }
        own(&tmp, uid).map_err(|e| format!("file {file_id}: {e}"))?;
        tokio::fs::rename(&tmp, &host)
            .await
            .map_err(|e| format!("file {file_id}: {e}"))
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result.map(|()| host)
}

/// What a collected output looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    size: u64,
    mtime_ns: i128,
    inode: u64,
    file_id: String,
}

/// Stores the outputs written during the turn as session-scoped files (normally done already
/// by the [`Collector`] the writer runs before the idle event; finding nothing new is cheap).
pub(super) async fn finish<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, _attached: &Attached) {
    if let Some(collector) = collector(cx) {
        collector.collect().await;
    }
}

/// What storing a session's outputs needs, owned, so it can run inside the writer.
pub(crate) struct Collector<S> {
    store: S,
    blobs: Arc<dyn BlobStore>,
    dir: PathBuf,
    session: SessionId,
    workspace: WorkspaceId,
}

/// The collector of the session's outputs (`None`: no blob store).
pub(super) fn collector<S: Store, X: Sandbox>(cx: &Context<'_, S, X>) -> Option<Collector<S>> {
    Some(Collector {
        store: cx.store.clone(),
        blobs: cx.options.blobs.clone()?,
        dir: cx
            .options
            .workspaces
            .attachments(cx.session.as_str())
            .ok()?,
        session: cx.session.clone(),
        workspace: cx.created.workspace.clone(),
    })
}

impl<S: Store> Collector<S> {
    /// Stores each new or changed output; remembers what it stored in `outputs.json`.
    pub(crate) async fn collect(self) {
        let outputs = self.dir.join("outputs");
        let record = self.dir.join("outputs.json");
        let mut seen: BTreeMap<String, Seen> = match tokio::fs::read(&record).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        let mut found = Vec::new();
        walk(&outputs, String::new(), 0, &mut found);
        let mut stored = 0usize;
        let mut changed = false;
        for (path, meta) in found {
            let mtime_ns = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            if seen.get(&path).is_some_and(|s| {
                s.size == meta.size() && s.mtime_ns == mtime_ns && s.inode == meta.ino()
            }) {
                continue;
            }
            if stored >= MAX_OUTPUTS || meta.size() > MAX_OUTPUT_BYTES {
                tracing::warn!(session = %self.session, path, size = meta.size(), "output not stored (limits)");
                continue;
            }
            match self.store_output(&outputs, &path).await {
                Ok(file_id) => {
                    stored += 1;
                    changed = true;
                    seen.insert(
                        path,
                        Seen {
                            size: meta.size(),
                            mtime_ns,
                            inode: meta.ino(),
                            file_id,
                        },
                    );
                }
                Err(e) => {
                    tracing::warn!(session = %self.session, path, error = %e, "storing an output")
                }
            }
        }
        if changed {
            match serde_json::to_vec(&seen) {
                Ok(bytes) => {
                    if let Err(e) = tokio::fs::write(&record, bytes).await {
                        tracing::warn!(path = %record.display(), error = %e, "recording collected outputs");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "encoding collected outputs"),
            }
        }
    }

    /// Stores `<outputs>/<path>` as a new session-scoped file; returns its id.
    async fn store_output(&self, outputs: &Path, path: &str) -> Result<String, String> {
        let mut options = std::fs::OpenOptions::new();
        options
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
        let src = tokio::fs::OpenOptions::from(options)
            .open(outputs.join(path))
            .await
            .map_err(|e| e.to_string())?;
        let meta = src.metadata().await.map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err("not a regular file".into());
        }
        let now = Timestamp::now();
        let id = FileId::generate(now);
        let size = self
            .blobs
            .write_from(id.as_str(), src)
            .await
            .map_err(|e| e.to_string())?;
        let records = file::create(
            NewFile {
                filename: path.to_owned(),
                mime_type: None,
                size_bytes: size,
                expires_in_seconds: None,
                scope: Some(self.session.clone()),
                downloadable: true,
            },
            id.clone(),
            self.workspace.clone(),
            now,
        )
        .map_err(|e| e.to_string())?;
        stream::create::<S, Option<File>>(&self.store, &StreamId::new(id.as_str()), records)
            .await
            .map_err(|e| e.to_string())?;
        Ok(id.to_string())
    }
}

/// Regular files under `dir` (paths relative to the outputs root), symbolic links skipped.
fn walk(dir: &Path, prefix: String, depth: usize, found: &mut Vec<(String, std::fs::Metadata)>) {
    if depth > MAX_DEPTH {
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
            found.push((path, meta));
        }
    }
}
