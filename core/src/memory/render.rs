//! What the store's endpoints answer: the `view`, the store, memory, prefix and version
//! objects, the memory listing by path with its depth roll-up, and the version listing.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::Serialize;

use crate::ids::{MemoryId, MemoryStoreId, MemoryVersionId};
use crate::object;
use crate::time::Timestamp;
use crate::validate::FieldError;

use super::{path, Actor, Memory, MemoryStore, Operation, Version};

/// Whether a response carries content (`view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `content: null`.
    Basic,
    /// Content included; list pages hold at most [`super::FULL_VIEW_PAGE`] items.
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
