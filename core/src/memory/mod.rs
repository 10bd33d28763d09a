//! Memory stores (API §12): a workspace-scoped store of text memories at paths, with every
//! change kept as a memory version. Event-sourced as **one stream per store**: the store's own
//! lifecycle (`memory_store.created`, `.updated`, `.archived`) and every memory write
//! (`memory.version`: created, modified or deleted, with the path and content it leaves) and
//! redaction (`memory_version.redacted`) are records of the store's stream, so the path index
//! a decision checks is exactly the state its append lands on: a path is unique per store
//! under any concurrency through the expected-version append of [`crate::stream::write`],
//! with no claim streams.
//!
//! [`path`] holds the path rules and the listing roll-up; this module the records, the fold
//! ([`MemoryStore`]), the commands (pure: ids, actor and `now` come in) and the rendering.
//! Refusals are a [`MemoryError`]: the shared 400s plus the memory endpoints' own 409s.

pub mod path;

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

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

fn archived(store: &MemoryStore) -> MemoryError {
    object::Error::code(
        "memory_store_archived",
        format!(
            "memory store {} is archived: its memories and settings cannot be changed",
            store.id
        ),
    )
    .into()
}

fn check_content(field: &str, content: &str) -> Result<(), FieldError> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(FieldError::new(
            field,
            format!(
                "must be at most {MAX_CONTENT_BYTES} bytes (got {})",
                content.len()
            ),
        ));
    }
    Ok(())
}

fn check_sha(field: &str, sha: &str) -> Result<(), FieldError> {
    if sha.len() != 64
        || !sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(FieldError::new(
            field,
            "must be 64 lowercase hexadecimal characters",
        ));
    }
    Ok(())
}

/// `POST /v1/memory_stores`.
pub fn create_store(
    params: MemoryStoreCreateParams,
    id: MemoryStoreId,
    workspace: WorkspaceId,
    now: Timestamp,
) -> Result<Vec<Record>, object::Error> {
    let settings = Settings {
        name: params.name,
        description: params.description.unwrap_or_default(),
        metadata: params.metadata.unwrap_or_default(),
    };
    check(&settings)?;
    Ok(vec![Record::Created {
        id,
        workspace,
        settings,
        at: now,
    }])
}

/// `POST /v1/memory_stores/{id}`: no records when nothing changed.
pub fn update_store(
    store: &MemoryStore,
    params: MemoryStoreUpdateParams,
    now: Timestamp,
) -> Result<Vec<Record>, MemoryError> {
    if store.is_archived() {
        return Err(archived(store));
    }
    let current = &store.settings;
    let mut next = current.clone();
    if let Patch::Value(name) = params.name {
        next.name = name;
    }
    if let Patch::Value(description) = params.description {
        next.description = description;
    }
    if let Patch::Value(patch) = &params.metadata {
        next.metadata = validate::patch_metadata("metadata", &current.metadata, patch, false)?;
    }
    check(&next)?;
    if &next == current {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Updated {
        settings: next,
        at: now,
    }])
}

/// `POST /v1/memory_stores/{id}/archive`; archiving again changes nothing.
pub fn archive_store(store: &MemoryStore, now: Timestamp) -> Vec<Record> {
    if store.is_archived() {
        return Vec::new();
    }
    vec![Record::Archived { at: now }]
}

/// `POST /v1/memory_stores/{id}/memories`: memory `id` with its first version `version`.
pub fn create_memory(
    store: &MemoryStore,
    params: &MemoryCreateParams,
    id: &MemoryId,
    version: &MemoryVersionId,
    by: &Actor,
    now: Timestamp,
) -> Result<Vec<Record>, MemoryError> {
    path::check("path", &params.path)?;
    let content = match &params.content {
        Patch::Absent => return Err(FieldError::new("content", "is required").into()),
        Patch::Null => String::new(),
        Patch::Value(content) => content.clone(),
    };
    check_content("content", &content)?;
    if store.is_archived() {
        return Err(archived(store));
    }
    if let Some(holder) = store.at_path(&params.path) {
        return Err(MemoryError::PathConflict {
            path: params.path.clone(),
            conflicting_memory_id: holder.id.clone(),
        });
    }
    Ok(vec![Record::Version {
        id: version.clone(),
        memory_id: id.clone(),
        operation: Operation::Created,
        path: params.path.clone(),
        content_sha256: Some(sha256(&content)),
        content: Some(content),
        by: by.clone(),
        at: now,
    }])
}

fn live<'a>(store: &'a MemoryStore, id: &MemoryId) -> Result<&'a Memory, MemoryError> {
    store.memory(id).ok_or_else(|| MemoryError::NotFound {
        kind: "memory",
        id: id.to_string(),
    })
}

fn expect_sha(store: &MemoryStore, memory: &Memory, expected: &str) -> Result<(), MemoryError> {
    let (_, actual) = store.current(memory);
    if actual != expected {
        return Err(MemoryError::PreconditionFailed {
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        });
    }
    Ok(())
}

/// `POST|PATCH …/memories/{id}`: a `modified` version `version`, or no records when nothing
/// changes.
pub fn update_memory(
    store: &MemoryStore,
    id: &MemoryId,
    params: &MemoryUpdateParams,
    version: &MemoryVersionId,
    by: &Actor,
    now: Timestamp,
) -> Result<Vec<Record>, MemoryError> {
    if let Patch::Value(path) = &params.path {
        path::check("path", path)?;
    }
    if let Patch::Value(content) = &params.content {
        check_content("content", content)?;
    }
    let expected = match &params.precondition {
        None => None,
        Some(p) if p.kind == "content_sha256" => {
            let Some(sha) = p.content_sha256.as_deref() else {
                return Err(FieldError::new("precondition.content_sha256", "is required").into());
            };
            check_sha("precondition.content_sha256", sha)?;
            Some(sha)
        }
        Some(p) => {
            return Err(FieldError::new(
                "precondition.type",
                format!("must be content_sha256, got {:?}", p.kind),
            )
            .into())
        }
    };
    if store.is_archived() {
        return Err(archived(store));
    }
    let memory = live(store, id)?;
    if let Some(expected) = expected {
        expect_sha(store, memory, expected)?;
    }
    let (content, sha) = store.current(memory);
    let next_path = params.path.clone().value().unwrap_or(memory.path.clone());
    let next_content = params.content.clone().value();
    if next_path != memory.path {
        if let Some(holder) = store.at_path(&next_path) {
            return Err(MemoryError::PathConflict {
                path: next_path,
                conflicting_memory_id: holder.id.clone(),
            });
        }
    }
    let content_changed = next_content.as_deref().is_some_and(|c| c != content);
    if next_path == memory.path && !content_changed {
        return Ok(Vec::new());
    }
    let (content, sha) = match next_content {
        Some(next) if content_changed => {
            let sha = sha256(&next);
            (next, sha)
        }
        _ => (content.to_owned(), sha.to_owned()),
    };
    Ok(vec![Record::Version {
        id: version.clone(),
        memory_id: id.clone(),
        operation: Operation::Modified,
        path: next_path,
        content: Some(content),
        content_sha256: Some(sha),
        by: by.clone(),
        at: now,
    }])
}

/// `DELETE …/memories/{id}`: a `deleted` version (allowed on an archived store).
pub fn delete_memory(
    store: &MemoryStore,
    id: &MemoryId,
    expected_sha: Option<&str>,
    version: &MemoryVersionId,
    by: &Actor,
    now: Timestamp,
) -> Result<Vec<Record>, MemoryError> {
    if let Some(sha) = expected_sha {
        check_sha("expected_content_sha256", sha)?;
    }
    let memory = live(store, id)?;
    if let Some(expected) = expected_sha {
        expect_sha(store, memory, expected)?;
    }
    Ok(vec![Record::Version {
        id: version.clone(),
        memory_id: id.clone(),
        operation: Operation::Deleted,
        path: memory.path.clone(),
        content: None,
        content_sha256: None,
        by: by.clone(),
        at: now,
    }])
}

/// `POST …/memory_versions/{id}/redact` (allowed on an archived store); redacting again
/// changes nothing. The version holding a live memory's current content cannot be redacted:
/// the memory would be left without content (update or delete the memory first).
pub fn redact(
    store: &MemoryStore,
    id: &MemoryVersionId,
    by: &Actor,
    now: Timestamp,
) -> Result<Vec<Record>, MemoryError> {
    let version = store.version(id).ok_or_else(|| MemoryError::NotFound {
        kind: "memory version",
        id: id.to_string(),
    })?;
    if version.redacted_at.is_some() {
        return Ok(Vec::new());
    }
    if store
        .memory(&version.memory_id)
        .is_some_and(|m| &m.version == id)
    {
        return Err(object::Error::code(
            "memory_version_is_current",
            format!(
                "memory version {id} holds the current content of memory {}; update or delete the memory before redacting it",
                version.memory_id
            ),
        )
        .into());
    }
    Ok(vec![Record::Redacted {
        id: id.clone(),
        by: by.clone(),
        at: now,
    }])
}

/// Whether a response carries content (`view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `content: null`.
    Basic,
    /// Content included; list pages hold at most [`FULL_VIEW_PAGE`] items.
    Full,
}

impl View {
    /// Parses the `view` query value, `default` when absent.
    pub fn parse(text: Option<&str>, default: View) -> Result<View, FieldError> {
        match text {
            None => Ok(default),
            Some("basic") => Ok(View::Basic),
            Some("full") => Ok(View::Full),
            Some(other) => Err(FieldError::new(
                "view",
                format!("must be basic or full, got {other:?}"),
            )),
        }
    }
}

/// The store object (`type: "memory_store"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "memory_store")]
pub struct MemoryStoreObject {
    /// `memstore_…`
    pub id: MemoryStoreId,
    /// Name.
    pub name: String,
    /// `""` when unset.
    pub description: String,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed (not by memory changes).
    pub updated_at: Timestamp,
    /// Archived.
    pub archived_at: Option<Timestamp>,
}

/// The memory object (`type: "memory"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "memory")]
pub struct MemoryObject {
    /// `mem_…`
    pub id: MemoryId,
    /// Its store.
    pub memory_store_id: MemoryStoreId,
    /// Path.
    pub path: String,
    /// `null` with `view=basic`.
    pub content: Option<String>,
    /// Always set.
    pub content_sha256: String,
    /// Always set.
    pub content_size_bytes: u64,
    /// The version holding the current content.
    pub memory_version_id: MemoryVersionId,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

/// `{type: "memory_prefix", path}`: memories below a listing's depth, rolled up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "memory_prefix")]
pub struct MemoryPrefix {
    /// Ends with `/`.
    pub path: String,
}

/// One item of a memory listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MemoryListItem {
    /// A memory.
    Memory(MemoryObject),
    /// A rolled-up directory.
    Prefix(MemoryPrefix),
}

/// The memory version object (`type: "memory_version"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename = "memory_version")]
pub struct MemoryVersionObject {
    /// `memver_…`
    pub id: MemoryVersionId,
    /// Its memory.
    pub memory_id: MemoryId,
    /// Its store.
    pub memory_store_id: MemoryStoreId,
    /// What it records.
    pub operation: Operation,
    /// When.
    pub created_at: Timestamp,
    /// `null` once redacted.
    pub path: Option<String>,
    /// `null` with `view=basic`, for a deletion or once redacted.
    pub content: Option<String>,
    /// `null` for a deletion or once redacted.
    pub content_sha256: Option<String>,
    /// `null` for a deletion or once redacted.
    pub content_size_bytes: Option<u64>,
    /// Who wrote it.
    pub created_by: Option<Actor>,
    /// When redacted.
    pub redacted_at: Option<Timestamp>,
    /// Who redacted it.
    pub redacted_by: Option<Actor>,
}

/// Filters of `GET …/memory_versions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VersionFilter {
    /// Only this memory's versions.
    pub memory_id: Option<String>,
    /// Only this operation.
    pub operation: Option<Operation>,
    /// Only versions written by this session.
    pub session_id: Option<String>,
    /// Only versions written with this API key.
    pub api_key_id: Option<String>,
    /// Only versions written by this service account (none are).
    pub service_account_id: Option<String>,
    /// Created at or after.
    pub created_gte: Option<Timestamp>,
    /// Created at or before.
    pub created_lte: Option<Timestamp>,
}

impl VersionFilter {
    fn matches(&self, v: &Version) -> bool {
        self.memory_id
            .as_deref()
            .is_none_or(|m| v.memory_id.as_str() == m)
            && self.operation.is_none_or(|o| v.operation == o)
            && self.session_id.as_deref().is_none_or(
                |s| matches!(&v.created_by, Actor::Session { session_id } if session_id == s),
            )
            && self.api_key_id.as_deref().is_none_or(
                |k| matches!(&v.created_by, Actor::Api { api_key_id } if api_key_id == k),
            )
            && self.service_account_id.is_none()
            && self.created_gte.is_none_or(|t| v.created_at >= t)
            && self.created_lte.is_none_or(|t| v.created_at <= t)
    }
}

impl MemoryStore {
    /// The store object.
    pub fn render(&self) -> MemoryStoreObject {
        MemoryStoreObject {
            id: self.id.clone(),
            name: self.settings.name.clone(),
            description: self.settings.description.clone(),
            metadata: self.settings.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        }
    }

    /// A live memory as an object.
    pub fn render_memory(&self, memory: &Memory, view: View) -> MemoryObject {
        let (content, sha) = self.current(memory);
        MemoryObject {
            id: memory.id.clone(),
            memory_store_id: self.id.clone(),
            path: memory.path.clone(),
            content: (view == View::Full).then(|| content.to_owned()),
            content_sha256: sha.to_owned(),
            content_size_bytes: content.len() as u64,
            memory_version_id: memory.version.clone(),
            created_at: memory.created_at,
            updated_at: memory.updated_at,
        }
    }

    /// A version as an object.
    pub fn render_version(&self, version: &Version, view: View) -> MemoryVersionObject {
        MemoryVersionObject {
            id: version.id.clone(),
            memory_id: version.memory_id.clone(),
            memory_store_id: self.id.clone(),
            operation: version.operation,
            created_at: version.created_at,
            path: version.path.clone(),
            content: version.content.clone().filter(|_| view == View::Full),
            content_sha256: version.content_sha256.clone(),
            content_size_bytes: version.content.as_ref().map(|c| c.len() as u64),
            created_by: Some(version.created_by.clone()),
            redacted_at: version.redacted_at,
            redacted_by: version.redacted_by.clone(),
        }
    }

    /// One page of the memories below `prefix` (ending with `/`) at `depth` (0: all), in path
    /// order, continuing after the item keyed `after` (a path, or a rolled-up directory ending
    /// with `/`, whose memories are then all skipped). Returns the items and, when more follow,
    /// the key of the last one (the next page's `after`).
    pub fn list_memories(
        &self,
        prefix: &str,
        depth: usize,
        after: Option<&str>,
        limit: usize,
        view: View,
    ) -> (Vec<MemoryListItem>, Option<String>) {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        let mut items: Vec<MemoryListItem> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for (path, id) in self.paths.range((start, Bound::Unbounded)) {
            if !path.starts_with(prefix) {
                break;
            }
            if after.is_some_and(|a| a.ends_with('/') && path.starts_with(a)) {
                continue;
            }
            let Some(key) = path::listed(path, prefix, depth) else {
                continue;
            };
            if keys.last().is_some_and(|k| k == key) {
                continue;
            }
            if items.len() == limit {
                return (items, keys.pop());
            }
            keys.push(key.to_owned());
            if key == path {
                if let Some(memory) = self.memories.get(id) {
                    items.push(MemoryListItem::Memory(self.render_memory(memory, view)));
                }
            } else {
                items.push(MemoryListItem::Prefix(MemoryPrefix {
                    path: key.to_owned(),
                }));
            }
        }
        (items, None)
    }

    /// One page of versions matching `filter`, newest first, starting below position `before`
    /// of the log's version sequence (`None`: from the newest). Returns the page and, when more
    /// follow, the position to continue below.
    pub fn list_versions(
        &self,
        filter: &VersionFilter,
        before: Option<usize>,
        limit: usize,
        view: View,
    ) -> (Vec<MemoryVersionObject>, Option<usize>) {
        let end = before
            .unwrap_or(self.versions.len())
            .min(self.versions.len());
        let mut page = Vec::new();
        for i in (0..end).rev() {
            let version = &self.versions[i];
            if !filter.matches(version) {
                continue;
            }
            if page.len() == limit {
                return (page, Some(i + 1));
            }
            page.push(self.render_version(version, view));
        }
        (page, None)
    }
}

/// The body of `DELETE /v1/memory_stores/{id}`.
pub fn store_deleted(id: &MemoryStoreId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "memory_store_deleted")
}

/// The body of `DELETE …/memories/{id}`.
pub fn memory_deleted(id: &MemoryId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "memory_deleted")
}
