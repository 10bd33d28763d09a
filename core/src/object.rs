//! What every non-session object shares: the command error, the record codec, the
//! `{id, type: "<kind>_deleted"}` response, the [`Object`] fold that makes each one a
//! [`crate::stream`], and the created → updated → archived [`Lifecycle`] of environments,
//! vaults and credentials.
//!
//! Commands on agents, environments, vaults, credentials, resources and files return
//! [`Error`]; the HTTP layer maps [`Error::status`] to the status code and
//! [`Error::error_code`] to `error.details.error_code`.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::WorkspaceId;
use crate::storage::CatalogEntry;
use crate::stream::Fold;
use crate::time::Timestamp;
use crate::validate::FieldError;

/// Why a command on an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A request field breaks a rule (400 `invalid_request_error`; the message names the field
    /// and the rule; `invalid_metadata` as `error_code` for metadata rules).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The request conflicts with the stored state, e.g. a stale agent `version` or a duplicate
    /// environment name (409 `invalid_request_error`, deterministic: `x-should-retry: false`).
    #[error("{0}")]
    Conflict(String),
    /// A state rule with a stable machine code, e.g. `environment_archived` or
    /// `invalid_config_type_change` (400 `invalid_request_error`, `error_code` = `code`;
    /// `file_expired` is a 404, see [`Error::status`]).
    #[error("{message}")]
    Code {
        /// The stable `error.details.error_code`.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
}

impl Error {
    /// A coded error.
    pub fn code(code: &'static str, message: impl Into<String>) -> Self {
        Self::Code {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error maps to.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Conflict(_) => 409,
            Error::Code { code, .. } => match *code {
                "file_expired" | "environment_not_found" => 404,
                _ => 400,
            },
        }
    }

    /// The `error.details.error_code` to send, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Error::Invalid(field) => field.code,
            Error::Conflict(_) => None,
            Error::Code { code, .. } => Some(code),
        }
    }

    /// The field the error is about, for `Invalid` errors.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Invalid(field) => Some(&field.field),
            _ => None,
        }
    }
}

/// A stored record that is not valid JSON for its object kind (a corrupt or foreign stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode stored record: {0}")]
pub struct DecodeError(pub String);

/// Encodes a record as JSON bytes.
pub(crate) fn encode<T: Serialize>(record: &T) -> Bytes {
    // Serialising plain data structs with string map keys cannot fail.
    Bytes::from(serde_json::to_vec(record).unwrap_or_default())
}

/// Decodes a record from JSON bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
}

/// Decodes every stored record of a stream, in order.
pub(crate) fn decode_all<T: DeserializeOwned>(
    records: &[crate::storage::Record],
) -> Result<Vec<T>, DecodeError> {
    records.iter().map(|r| decode(&r.payload)).collect()
}

/// The body of a successful DELETE: `{"id": …, "type": "<kind>_deleted"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deleted {
    /// The deleted object's id.
    pub id: String,
    /// `environment_deleted`, `vault_deleted`, `vault_credential_deleted`, `file_deleted`,
    /// `session_resource_deleted`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Deleted {
    /// The deletion response for `id` of `kind` (`"environment_deleted"`, …).
    pub fn new(id: impl Into<String>, kind: &str) -> Self {
        Self {
            id: id.into(),
            kind: kind.to_owned(),
        }
    }
}

/// An event-sourced object other than a session: its stream folds to `Some(object)` once
/// created, and every append carries the object's catalog entry. `Option<T>` is then a
/// [`Fold`], so every object is written through [`crate::stream::write`].
pub trait Object: Sized {
    /// One record of the object's stream (JSON on disk).
    type Record: Serialize + DeserializeOwned;
    /// Folds one record into the object (`None` until created).
    fn apply(object: &mut Option<Self>, record: &Self::Record);
    /// The catalog entry an append leading to this state writes.
    fn catalog_entry(&self) -> CatalogEntry;
    /// The owning workspace (other workspaces' objects do not exist for a caller).
    fn workspace(&self) -> &WorkspaceId;
}

impl<T: Object> Fold for Option<T> {
    type Record = T::Record;

    fn decode(bytes: &[u8]) -> Result<T::Record, String> {
        decode(bytes).map_err(|e| e.0)
    }

    fn encode(record: &T::Record) -> Bytes {
        encode(record)
    }

    fn apply(&mut self, record: &T::Record) {
        T::apply(self, record);
    }

    fn catalog_entry(&self) -> Option<CatalogEntry> {
        self.as_ref().map(T::catalog_entry)
    }
}

/// Folds records of an object's stream; `None` until created.
pub fn fold<T: Object>(records: impl IntoIterator<Item = T::Record>) -> Option<T> {
    let mut object = None;
    for record in records {
        T::apply(&mut object, &record);
    }
    object
}

/// Decodes and folds a stored stream.
pub fn load<T: Object>(records: &[crate::storage::Record]) -> Result<Option<T>, DecodeError> {
    Ok(fold(decode_all::<T::Record>(records)?))
}

/// What a record of the created → updated* → archived lifecycle does, as [`Lifecycle::step`]
/// reports it.
pub enum Step<T, S> {
    /// The object as created (its version 0, `updated_at` = `created_at`).
    Created(T),
    /// Whole new settings.
    Updated(S, Timestamp),
    /// Archived (terminal).
    Archived(Timestamp),
    /// A fence (see [`crate::claim`]): only [`Lifecycled::fences`] and the stream version move.
    Fenced,
}

/// The lifecycle fields every environment, vault and credential has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycled<S> {
    /// Current settings.
    pub settings: S,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Archived.
    pub archived_at: Option<Timestamp>,
    /// Records folded: the expected stream version for the next append.
    pub stream_version: u64,
    /// Fences folded (see [`crate::claim`]): a writer that claimed a name compares this before
    /// and after, so a write that was fenced meanwhile is refused instead of retried.
    pub fences: u64,
}

impl<S> Lifecycled<S> {
    /// A freshly created object's lifecycle.
    pub fn created(settings: S, at: Timestamp) -> Self {
        Self {
            settings,
            created_at: at,
            updated_at: at,
            archived_at: None,
            stream_version: 0,
            fences: 0,
        }
    }

    /// Whether archived.
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// The created → updated* → archived lifecycle environments, vaults and credentials share.
/// Implementing it makes the type an [`Object`] through [`apply_lifecycle`].
pub trait Lifecycle: Sized {
    /// What an update replaces.
    type Settings: Clone;
    /// One record of the stream.
    type Record;
    /// What `record` does.
    fn step(record: &Self::Record) -> Step<Self, Self::Settings>;
    /// The lifecycle fields.
    fn lifecycle(&mut self) -> &mut Lifecycled<Self::Settings>;
}

/// Folds one lifecycle record: before creation (or a second creation) nothing changes; each
/// record after creation counts one stream version.
pub fn apply_lifecycle<T: Lifecycle>(object: &mut Option<T>, record: &T::Record) {
    match (T::step(record), object.as_mut()) {
        (Step::Created(created), None) => *object = Some(created),
        (Step::Updated(settings, at), Some(o)) => {
            let parts = o.lifecycle();
            parts.settings = settings;
            parts.updated_at = at;
        }
        (Step::Archived(at), Some(o)) => {
            let parts = o.lifecycle();
            parts.archived_at = Some(at);
            parts.updated_at = at;
        }
        (Step::Fenced, Some(o)) => o.lifecycle().fences += 1,
        _ => {}
    }
    if let Some(o) = object.as_mut() {
        o.lifecycle().stream_version += 1;
    }
}
