//! The store's commands: pure decisions on the folded [`MemoryStore`] (ids, actor and `now`
//! come from the caller) returning the records to append, or a [`MemoryError`].

use crate::ids::{MemoryId, MemoryStoreId, MemoryVersionId, WorkspaceId};
use crate::object;
use crate::patch::Patch;
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

use super::{
    check, path, sha256, Actor, Memory, MemoryCreateParams, MemoryError, MemoryStore,
    MemoryStoreCreateParams, MemoryStoreUpdateParams, MemoryUpdateParams, Operation, Record,
    Settings, MAX_CONTENT_BYTES,
};

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
