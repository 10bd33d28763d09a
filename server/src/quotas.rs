//! Per-workspace (tenant) quotas: how many sessions a workspace may hold, how many files it may
//! store (uploads and session outputs), and how many bytes (file bytes plus skill version
//! bytes). Not to be confused with `--workspace-quota`, the disk quota of each session's sandbox
//! workspace directory.
//!
//! The decision is taken on durable state, never on a counter that could drift: a create that
//! a quota governs takes its workspace's *turn* (an async lock per workspace), counts the
//! workspace's usage from the store's catalog (and the objects it lists), refuses or admits,
//! and keeps the turn until its write is durable ([`Admitted::write`]). So two creates at the limit are decided one
//! after the other on what the store holds (exactly one wins), a restart starts from what the
//! store holds, and deletes, session outputs written by the runner and anything else that
//! changes usage need no bookkeeping here. File sizes never change once stored, so each is read
//! once and kept (an entry per stored file, dropped when the file is deleted).
//!
//! The turn is this process's: with several processes over one PostgreSQL database, each
//! decides alone, and concurrent creates in two processes can pass a limit together.
//!
//! A refusal is a 400 `invalid_request_error` (never a 429: a retry cannot succeed until
//! something is deleted) with `error.details.error_code` `session_quota_exceeded` or
//! `storage_quota_exceeded` (API §3.3), counted in `/metrics` by kind.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, MutexGuard};

use managed_agents_core::file::File;
use managed_agents_core::ids::WorkspaceId;
use managed_agents_core::skill::Skill;
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store};
use tokio::sync::OwnedMutexGuard;

use crate::error::Error;
use crate::metrics::Metrics;
use crate::objects;
use crate::state::AppState;

/// Catalog entries read per page while counting.
const PAGE: usize = 1000;

/// The quotas a server enforces per workspace; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QuotaSettings {
    /// Sessions (archived ones count; deleted ones do not).
    pub sessions: Option<NonZeroU64>,
    /// Stored files: uploads and session outputs.
    pub files: Option<NonZeroU64>,
    /// Stored bytes: every stored file's plus every live skill version's.
    pub stored_bytes: Option<NonZeroU64>,
}

impl QuotaSettings {
    /// No quota at all.
    pub const UNLIMITED: QuotaSettings = QuotaSettings {
        sessions: None,
        files: None,
        stored_bytes: None,
    };
}

/// Which quota refused a create (the `/metrics` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// `--tenant-max-sessions`.
    Sessions,
    /// `--tenant-max-files`.
    Files,
    /// `--tenant-max-stored-bytes`.
    StoredBytes,
}

impl Refusal {
    /// Every kind, for rendering.
    pub const ALL: [Refusal; 3] = [Refusal::Sessions, Refusal::Files, Refusal::StoredBytes];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Sessions => "sessions",
            Refusal::Files => "files",
            Refusal::StoredBytes => "stored_bytes",
        }
    }
}

/// A workspace's turn, admitted: hold it until the admitted write is durable.
#[must_use = "the turn must be held until the write is done"]
pub struct Admitted {
    /// The turn (`None` when no quota applies, and none was taken).
    _turn: Option<OwnedMutexGuard<()>>,
}

impl Admitted {
    fn without_turn() -> Self {
        Self { _turn: None }
    }

    fn holding(turn: OwnedMutexGuard<()>) -> Self {
        Self { _turn: Some(turn) }
    }

    /// Runs the admitted `write` keeping the turn until it is done: in a task of its own when
    /// a turn is held, so a request dropped mid-write (the client went away) cannot let the
    /// turn go while its append is still on its way to the store.
    pub async fn write<T: Send + 'static>(
        self,
        write: impl Future<Output = Result<T, Error>> + Send + 'static,
    ) -> Result<T, Error> {
        if self._turn.is_none() {
            return write.await;
        }
        tokio::spawn(async move {
            let written = write.await;
            drop(self);
            written
        })
        .await
        .map_err(|e| Error::Internal(format!("quota-admitted write task: {e}")))?
    }
}

/// The quotas of one server; shared by every request.
pub struct Quotas {
    settings: QuotaSettings,
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    sizes: Mutex<HashMap<String, u64>>,
    metrics: Metrics,
}

impl Quotas {
    /// Quotas for `settings`, counting refusals in `metrics`.
    pub fn new(settings: QuotaSettings, metrics: Metrics) -> Self {
        Self {
            settings,
            turns: Mutex::default(),
            sizes: Mutex::default(),
            metrics,
        }
    }

    /// What this server enforces.
    pub fn settings(&self) -> &QuotaSettings {
        &self.settings
    }

    fn sizes(&self) -> MutexGuard<'_, HashMap<String, u64>> {
        self.sizes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for `workspace`'s turn.
    async fn turn(&self, workspace: &WorkspaceId) -> OwnedMutexGuard<()> {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(turns.entry(workspace.as_str().to_owned()).or_default())
        };
        lock.lock_owned().await
    }

    /// Admits one more session in `workspace`, or refuses it 400 `session_quota_exceeded`.
    pub async fn session(
        &self,
        state: &AppState,
        workspace: &WorkspaceId,
    ) -> Result<Admitted, Error> {
        let Some(max) = self.settings.sessions else {
            return Ok(Admitted::without_turn());
        };
        let turn = self.turn(workspace).await;
        let held = count(state, Kind::Session, workspace, Some(max.get())).await?;
        if held >= max.get() {
            self.metrics.quota_refused(Refusal::Sessions);
            return Err(Error::invalid_code(
                "session_quota_exceeded",
                format!(
                    "this workspace holds {held} sessions, its quota of {max} \
                     (--tenant-max-sessions); delete a session to create another"
                ),
            ));
        }
        Ok(Admitted::holding(turn))
    }

    /// Admits one more stored file of `bytes` bytes in `workspace`, or refuses it 400
    /// `storage_quota_exceeded`.
    pub async fn file(
        &self,
        state: &AppState,
        workspace: &WorkspaceId,
        bytes: u64,
    ) -> Result<Admitted, Error> {
        self.storage(state, workspace, 1, bytes).await
    }

    /// Admits a new skill version of `bytes` bytes in `workspace`, or refuses it 400
    /// `storage_quota_exceeded`.
    pub async fn skill_version(
        &self,
        state: &AppState,
        workspace: &WorkspaceId,
        bytes: u64,
    ) -> Result<Admitted, Error> {
        self.storage(state, workspace, 0, bytes).await
    }

    async fn storage(
        &self,
        state: &AppState,
        workspace: &WorkspaceId,
        files: u64,
        bytes: u64,
    ) -> Result<Admitted, Error> {
        let max_files = self.settings.files.filter(|_| files > 0);
        let max_bytes = self.settings.stored_bytes;
        if max_files.is_none() && max_bytes.is_none() {
            return Ok(Admitted::without_turn());
        }
        let turn = self.turn(workspace).await;
        let usage = self.usage(state, workspace, max_bytes.is_some()).await?;
        if let Some(max) = max_files {
            if usage.files + files > max.get() {
                self.metrics.quota_refused(Refusal::Files);
                return Err(Error::invalid_code(
                    "storage_quota_exceeded",
                    format!(
                        "this workspace stores {} files, its quota of {max} \
                         (--tenant-max-files); delete a file to store another",
                        usage.files
                    ),
                ));
            }
        }
        if let Some(max) = max_bytes {
            let total = usage.bytes.saturating_add(bytes);
            if total > max.get() {
                self.metrics.quota_refused(Refusal::StoredBytes);
                return Err(Error::invalid_code(
                    "storage_quota_exceeded",
                    format!(
                        "storing {bytes} more bytes would take this workspace to {total} bytes, \
                         over its quota of {max} (--tenant-max-stored-bytes); delete files or \
                         skill versions first"
                    ),
                ));
            }
        }
        Ok(Admitted::holding(turn))
    }

    /// What `workspace` stores now: its files, and (with `bytes`) their bytes plus its skill
    /// versions' bytes.
    async fn usage(
        &self,
        state: &AppState,
        workspace: &WorkspaceId,
        bytes: bool,
    ) -> Result<Usage, Error> {
        let files = ids(state, Kind::File, workspace, None).await?;
        let mut usage = Usage {
            files: files.len() as u64,
            bytes: 0,
        };
        if !bytes {
            return Ok(usage);
        }
        for id in &files {
            let known = self.sizes().get(id).copied();
            let size = match known {
                Some(size) => size,
                None => match objects::find::<File>(state, id).await? {
                    Some(file) => {
                        let size = file.metadata.size_bytes;
                        self.sizes().insert(id.clone(), size);
                        size
                    }
                    // Deleted since the listing.
                    None => 0,
                },
            };
            usage.bytes = usage.bytes.saturating_add(size);
        }
        for id in ids(state, Kind::Skill, workspace, None).await? {
            if let Some(skill) = objects::find::<Skill>(state, &id).await? {
                let size: u64 = skill.versions.iter().map(|v| v.size()).sum();
                usage.bytes = usage.bytes.saturating_add(size);
            }
        }
        Ok(usage)
    }

    /// Forgets the size of file `id` (deleted).
    pub fn forget_file(&self, id: &str) {
        self.sizes().remove(id);
    }
}

/// A workspace's stored files and bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    files: u64,
    bytes: u64,
}

/// How many objects of `kind` `workspace` holds, archived ones included, counting at most to
/// `up_to`.
async fn count(
    state: &AppState,
    kind: Kind,
    workspace: &WorkspaceId,
    up_to: Option<u64>,
) -> Result<u64, Error> {
    Ok(ids(state, kind, workspace, up_to).await?.len() as u64)
}

/// The ids of `workspace`'s objects of `kind` in the catalog, archived ones included, oldest
/// first, at most `up_to` of them.
async fn ids(
    state: &AppState,
    kind: Kind,
    workspace: &WorkspaceId,
    up_to: Option<u64>,
) -> Result<Vec<String>, Error> {
    let mut query = CatalogQuery::new(kind, workspace.as_str());
    query.include_archived = true;
    query.order = Order::Asc;
    query.limit = PAGE;
    let mut found = Vec::new();
    loop {
        let page = state.store.list(&query).await?;
        let last = page.entries.last().map(|e| e.id.clone());
        found.extend(page.entries.into_iter().map(|e| e.id));
        if let Some(up_to) = up_to {
            if found.len() as u64 >= up_to {
                found.truncate(usize::try_from(up_to).unwrap_or(usize::MAX));
                return Ok(found);
            }
        }
        match last {
            Some(last) if page.has_more => query.after = Some(last),
            _ => return Ok(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::Blobs;
    use crate::sealer::Sealer;
    use crate::store::AnyStore;
    use managed_agents_core::time::Timestamp;
    use managed_agents_storage_memory::MemoryStore;

    fn state(settings: QuotaSettings) -> AppState {
        let store = AnyStore::Memory(MemoryStore::new());
        let sealer = Sealer::ephemeral().expect("random");
        let (state, _shutdown) = AppState::new(store, sealer, Blobs::memory());
        state.with_quotas(settings)
    }

    #[tokio::test]
    async fn unlimited_settings_admit_without_taking_a_turn() {
        let state = state(QuotaSettings::UNLIMITED);
        let workspace = WorkspaceId::generate(Timestamp::now());
        let first = state
            .quotas
            .session(&state, &workspace)
            .await
            .expect("admitted");
        let second = state
            .quotas
            .file(&state, &workspace, u64::MAX)
            .await
            .expect("admitted");
        assert!(first._turn.is_none() && second._turn.is_none());
    }

    #[tokio::test]
    async fn a_second_create_in_a_workspace_waits_for_the_first_ones_turn() {
        let state = state(QuotaSettings {
            sessions: NonZeroU64::new(5),
            ..QuotaSettings::UNLIMITED
        });
        let workspace = WorkspaceId::generate(Timestamp::now());
        let first = state
            .quotas
            .session(&state, &workspace)
            .await
            .expect("admitted");
        let mut second = Box::pin(state.quotas.session(&state, &workspace));
        assert!(futures::poll!(&mut second).is_pending());
        let other = WorkspaceId::generate(Timestamp::now());
        let elsewhere = state.quotas.session(&state, &other).await;
        assert!(elsewhere.is_ok(), "another workspace has a turn of its own");
        drop(first);
        drop(second.await.expect("admitted once the first is done"));
    }

    #[tokio::test]
    async fn a_file_over_the_byte_quota_is_refused_with_the_storage_code() {
        let state = state(QuotaSettings {
            stored_bytes: NonZeroU64::new(10),
            ..QuotaSettings::UNLIMITED
        });
        let workspace = WorkspaceId::generate(Timestamp::now());
        drop(
            state
                .quotas
                .file(&state, &workspace, 10)
                .await
                .expect("fits exactly"),
        );
        match state.quotas.file(&state, &workspace, 11).await {
            Err(Error::Invalid { code, .. }) => assert_eq!(code, Some("storage_quota_exceeded")),
            Err(other) => panic!("expected a 400, got {other:?}"),
            Ok(_) => panic!("expected a refusal"),
        }
    }
}
