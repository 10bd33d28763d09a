//! What every non-session object shares: the command error, the record codec and the
//! `{id, type: "<kind>_deleted"}` response.
//!
//! Commands on agents, environments, vaults, credentials, resources and files return
//! [`Error`]; the HTTP layer maps [`Error::status`] to the status code and
//! [`Error::error_code`] to `error.details.error_code`.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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

/// A record of the created → updated* → archived lifecycle that environments, vaults and
/// credentials share, as [`fold_lifecycle`] sees it.
pub(crate) enum Step<T, S> {
    /// The object as created (its version 0, `updated_at` = `created_at`).
    Created(T),
    /// Whole new settings.
    Updated(S, Timestamp),
    /// Archived (terminal).
    Archived(Timestamp),
}

/// The fields of a lifecycle object that [`fold_lifecycle`] maintains.
pub(crate) struct Parts<'a, S> {
    pub(crate) settings: &'a mut S,
    pub(crate) updated_at: &'a mut Timestamp,
    pub(crate) archived_at: &'a mut Option<Timestamp>,
    pub(crate) stream_version: &'a mut u64,
}

/// An object folded by [`fold_lifecycle`].
pub(crate) trait Lifecycle {
    /// What an update replaces.
    type Settings;
    /// Mutable access to the lifecycle fields.
    fn parts(&mut self) -> Parts<'_, Self::Settings>;
}

/// Folds lifecycle steps: `None` until created; each step after creation counts one stream
/// version; steps before creation (or a second creation) change nothing.
pub(crate) fn fold_lifecycle<T: Lifecycle>(
    steps: impl IntoIterator<Item = Step<T, T::Settings>>,
) -> Option<T> {
    let mut object: Option<T> = None;
    for step in steps {
        match (step, object.as_mut()) {
            (Step::Created(created), None) => object = Some(created),
            (Step::Updated(settings, at), Some(o)) => {
                let parts = o.parts();
                *parts.settings = settings;
                *parts.updated_at = at;
            }
            (Step::Archived(at), Some(o)) => {
                let parts = o.parts();
                *parts.archived_at = Some(at);
                *parts.updated_at = at;
            }
            _ => {}
        }
        if let Some(o) = object.as_mut() {
            *o.parts().stream_version += 1;
        }
    }
    object
}
