//! Memory stores (API §12): a workspace-scoped store of text memories at paths, with every
//! change kept as a memory version. Event-sourced as **one stream per store**: the store's own
//! lifecycle (`memory_store.created`, `.updated`, `.archived`) and every memory write
//! (`memory.version`: created, modified or deleted, with the path and content it leaves) and
//! redaction (`memory_version.redacted`) are records of the store's stream, so the path index
//! a decision checks is exactly the state its append lands on: a path is unique per store
//! under any concurrency through the expected-version append of [`crate::stream::write`],
//! with no claim streams.
//!
//! [`path`] holds the path rules and the listing roll-up; this module the request bodies, the
//! records and the fold ([`MemoryStore`]); `commands.rs` the decisions (pure: ids, actor and
//! `now` come in), whose refusals are a [`MemoryError`] (the shared 400s plus the memory
//! endpoints' own 409s); `render.rs` the response objects and the listings.

mod commands;
pub mod path;
mod render;

pub use commands::{
    archive_store, create_memory, create_store, delete_memory, redact, update_memory, update_store,
};
pub use render::{
    memory_deleted, store_deleted, MemoryListItem, MemoryObject, MemoryPrefix, MemoryStoreObject,
    MemoryVersionObject, VersionFilter, View,
};

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{MemoryId, MemoryStoreId, MemoryVersionId, WorkspaceId};
use crate::object::{self, DecodeError, Lifecycled, Object};
use crate::patch::Patch;
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Longest store name, in characters.
pub const MAX_NAME: usize = 255;
/// Longest store description, in characters.
pub const MAX_DESCRIPTION: usize = 1024;
/// Largest memory content, in UTF-8 bytes.
pub const MAX_CONTENT_BYTES: usize = 102_400;
/// Most items of a list page with `view=full`.
pub const FULL_VIEW_PAGE: usize = 20;

/// `POST /v1/memory_stores`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemoryStoreCreateParams {
    /// 1–255 characters, no control characters.
    pub name: String,
    /// ≤1024 characters; `""` or absent: none.
    #[serde(default)]
    pub description: Option<String>,
    /// ≤16 pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/memory_stores/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MemoryStoreUpdateParams {
    /// `null` keeps the name.
    #[serde(default)]
    pub name: Patch<String>,
    /// `""` clears; `null` keeps.
    #[serde(default)]
    pub description: Patch<String>,
    /// Patch: a string upserts, `null` deletes; a `null` map changes nothing.
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
}

/// `POST /v1/memory_stores/{id}/memories`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MemoryCreateParams {
    /// Where (see [`path`]).
    pub path: String,
    /// Required; `null` reads as `""`.
    #[serde(default)]
    pub content: Patch<String>,
}

/// `POST|PATCH /v1/memory_stores/{id}/memories/{memory_id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct MemoryUpdateParams {
    /// New content; absent or `null` keeps it.
    #[serde(default)]
    pub content: Patch<String>,
    /// New path (a rename keeping the id); absent or `null` keeps it.
    #[serde(default)]
    pub path: Patch<String>,
    /// What the memory must be for the update to apply.
    #[serde(default)]
    pub precondition: Option<Precondition>,
}

/// `{type: "content_sha256", content_sha256}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Precondition {
    /// Only `content_sha256`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 64 lowercase hex digits.
    #[serde(default)]
    pub content_sha256: Option<String>,
}

/// The mutable part of a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Name (the mount slug derives from it).
    pub name: String,
    /// `""` when unset.
    pub description: String,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
}

fn check(settings: &Settings) -> Result<(), FieldError> {
    validate::length("name", &settings.name, 1, MAX_NAME)?;
    if settings.name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    validate::length("description", &settings.description, 0, MAX_DESCRIPTION)?;
    validate::metadata("metadata", &settings.metadata)
}

/// Who made a change (`created_by`, `redacted_by`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Actor {
    /// A caller of the API, by the key it used.
    #[serde(rename = "api_actor")]
    Api {
        /// `apikey_…`
        api_key_id: String,
    },
    /// An agent writing during a session.
    #[serde(rename = "session_actor")]
    Session {
        /// `sesn_…`
        session_id: String,
    },
}

/// What a memory version records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// The first version of a memory.
    Created,
    /// Content, path or both changed.
    Modified,
    /// The memory was deleted.
    Deleted,
}

impl Operation {
    /// Parses the `operation` query filter.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "created" => Some(Self::Created),
            "modified" => Some(Self::Modified),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }
}

/// One record of a store's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// The store was created.
    #[serde(rename = "memory_store.created")]
    Created {
        /// Its id.
        id: MemoryStoreId,
        /// Its owner.
        workspace: WorkspaceId,
        /// Initial settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// The store's settings changed (the whole new settings).
    #[serde(rename = "memory_store.updated")]
    Updated {
        /// New settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// The store was archived (terminal).
    #[serde(rename = "memory_store.archived")]
    Archived {
        /// When.
        at: Timestamp,
    },
    /// A memory was created, modified or deleted: one memory version.
    #[serde(rename = "memory.version")]
    Version {
        /// The version's id.
        id: MemoryVersionId,
        /// The memory's id.
        memory_id: MemoryId,
        /// What happened.
        operation: Operation,
        /// The memory's path after this write (at deletion: the path it had).
        path: String,
        /// The content after this write; `None` for a deletion.
        content: Option<String>,
        /// SHA-256 of `content` (lowercase hex); `None` for a deletion.
        content_sha256: Option<String>,
        /// Who.
        by: Actor,
        /// When.
        at: Timestamp,
    },
    /// A version's content and path were scrubbed.
    #[serde(rename = "memory_version.redacted")]
    Redacted {
        /// The version.
        id: MemoryVersionId,
        /// Who.
        by: Actor,
        /// When.
        at: Timestamp,
    },
}

impl Record {
    /// JSON bytes for the store.
    pub fn encode(&self) -> Bytes {
        object::encode(self)
    }

    /// Parses stored JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        object::decode(bytes)
    }
}

/// A live memory as folded: its content is its current version's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    /// `mem_…`
    pub id: MemoryId,
    /// Current path.
    pub path: String,
    /// The version holding the current content.
    pub version: MemoryVersionId,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// One memory version as folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// `memver_…`
    pub id: MemoryVersionId,
    /// Its memory.
    pub memory_id: MemoryId,
    /// What it records.
    pub operation: Operation,
    /// `None` once redacted.
    pub path: Option<String>,
    /// `None` for a deletion or once redacted.
    pub content: Option<String>,
    /// `None` for a deletion or once redacted.
    pub content_sha256: Option<String>,
    /// Who wrote it.
    pub created_by: Actor,
    /// When.
    pub created_at: Timestamp,
    /// When redacted.
    pub redacted_at: Option<Timestamp>,
    /// Who redacted it.
    pub redacted_by: Option<Actor>,
}

/// A store folded from its stream: settings and lifecycle, live memories with a path index,
/// and every version in log order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStore {
    /// Its id.
    pub id: MemoryStoreId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Settings, times (memory changes do not move `updated_at`) and stream version.
    pub lifecycle: Lifecycled<Settings>,
    memories: HashMap<MemoryId, Memory>,
    paths: BTreeMap<String, MemoryId>,
    versions: Vec<Version>,
    version_index: HashMap<MemoryVersionId, usize>,
}

impl std::ops::Deref for MemoryStore {
    type Target = Lifecycled<Settings>;

    fn deref(&self) -> &Lifecycled<Settings> {
        &self.lifecycle
    }
}

/// SHA-256 of `content`'s UTF-8 bytes, lowercase hex.
pub fn sha256(content: &str) -> String {
    Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl MemoryStore {
    fn apply_record(&mut self, record: &Record) {
        match record {
            Record::Created { .. } => {}
            Record::Updated { settings, at } => {
                self.lifecycle.settings = settings.clone();
                self.lifecycle.updated_at = *at;
            }
            Record::Archived { at } => {
                self.lifecycle.archived_at = Some(*at);
                self.lifecycle.updated_at = *at;
            }
            Record::Version {
                id,
                memory_id,
                operation,
                path,
                content,
                content_sha256,
                by,
                at,
            } => {
                match operation {
                    Operation::Created | Operation::Modified => {
                        let created_at = self.memories.get(memory_id).map_or(*at, |m| m.created_at);
                        if let Some(old) = self.memories.get(memory_id) {
                            if self.paths.get(&old.path) == Some(memory_id) {
                                self.paths.remove(&old.path);
                            }
                        }
                        self.paths.insert(path.clone(), memory_id.clone());
                        self.memories.insert(
                            memory_id.clone(),
                            Memory {
                                id: memory_id.clone(),
                                path: path.clone(),
                                version: id.clone(),
                                created_at,
                                updated_at: *at,
                            },
                        );
                    }
                    Operation::Deleted => {
                        if let Some(old) = self.memories.remove(memory_id) {
                            if self.paths.get(&old.path) == Some(memory_id) {
                                self.paths.remove(&old.path);
                            }
                        }
                    }
                }
                self.version_index.insert(id.clone(), self.versions.len());
                self.versions.push(Version {
                    id: id.clone(),
                    memory_id: memory_id.clone(),
                    operation: *operation,
                    path: Some(path.clone()),
                    content: content.clone(),
                    content_sha256: content_sha256.clone(),
                    created_by: by.clone(),
                    created_at: *at,
                    redacted_at: None,
                    redacted_by: None,
                });
            }
            Record::Redacted { id, by, at } => {
                if let Some(&i) = self.version_index.get(id) {
                    let version = &mut self.versions[i];
                    version.path = None;
                    version.content = None;
                    version.content_sha256 = None;
                    version.redacted_at = Some(*at);
                    version.redacted_by = Some(by.clone());
                }
            }
        }
    }

    /// The live memory `id`.
    pub fn memory(&self, id: &MemoryId) -> Option<&Memory> {
        self.memories.get(id)
    }

    /// The live memory at `path`.
    pub fn at_path(&self, path: &str) -> Option<&Memory> {
        self.paths.get(path).and_then(|id| self.memories.get(id))
    }

    /// Version `id`.
    pub fn version(&self, id: &MemoryVersionId) -> Option<&Version> {
        self.version_index.get(id).map(|&i| &self.versions[i])
    }

    /// Every live memory's path and current content, in path order.
    pub fn contents(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.paths.values().filter_map(|id| {
            let memory = self.memories.get(id)?;
            Some((memory.path.as_str(), self.current(memory).0))
        })
    }

    /// How many live memories the store holds.
    pub fn memory_count(&self) -> usize {
        self.memories.len()
    }

    /// The current content of a live memory.
    fn current(&self, memory: &Memory) -> (&str, &str) {
        let version = self.version(&memory.version);
        (
            version.and_then(|v| v.content.as_deref()).unwrap_or(""),
            version
                .and_then(|v| v.content_sha256.as_deref())
                .unwrap_or(""),
        )
    }
}

impl Object for MemoryStore {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        match (record, object.as_mut()) {
            (
                Record::Created {
                    id,
                    workspace,
                    settings,
                    at,
                },
                None,
            ) => {
                *object = Some(MemoryStore {
                    id: id.clone(),
                    workspace: workspace.clone(),
                    lifecycle: Lifecycled::created(settings.clone(), *at),
                    memories: HashMap::new(),
                    paths: BTreeMap::new(),
                    versions: Vec::new(),
                    version_index: HashMap::new(),
                })
            }
            (_, Some(store)) => store.apply_record(record),
            _ => {}
        }
        if let Some(store) = object.as_mut() {
            store.lifecycle.stream_version += 1;
        }
    }

    fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::MemoryStore,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.archived = self.is_archived();
        entry
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Folds a store's records; `None` until created.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<MemoryStore> {
    object::fold(records)
}
/// Why a memory command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// A rule of the shared kind (400; `memory_store_archived` for writes to an archived store).
    #[error(transparent)]
    Object(#[from] object::Error),
    /// Another memory holds the path (409 `memory_path_conflict_error`).
    #[error("path {path:?} is already used by memory {conflicting_memory_id}")]
    PathConflict {
        /// The path asked for.
        path: String,
        /// The memory holding it.
        conflicting_memory_id: MemoryId,
    },
    /// The memory's content is not the expected one (409 `memory_precondition_failed_error`).
    #[error("the memory's content_sha256 is {actual}, not the expected {expected}")]
    PreconditionFailed {
        /// The hash the caller expected.
        expected: String,
        /// The memory's current hash.
        actual: String,
    },
    /// No such memory or version in this store (404).
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// `memory` or `memory version`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
}

impl From<FieldError> for MemoryError {
    fn from(error: FieldError) -> Self {
        MemoryError::Object(error.into())
    }
}
