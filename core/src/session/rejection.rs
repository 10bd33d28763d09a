//! Why `decide` refused a command, in the terms the HTTP layer maps to a status code.

use crate::validate::FieldError;

/// A refused command. Nothing was decided; nothing is to be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// A field breaks a rule, given the request or the session's state (400
    /// `invalid_request_error`; `error_code` from the field error when set).
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// The session's state forbids the command: archived, terminated, running, already
    /// created (409 `invalid_request_error`, deterministic: `x-should-retry: false`).
    #[error("{0}")]
    Conflict(String),
    /// The session does not exist or was deleted (404 `not_found_error`).
    #[error("{0}")]
    NotFound(String),
}

impl Rejection {
    pub(crate) fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Self {
        Rejection::Invalid(FieldError::new(field, rule))
    }

    /// The HTTP status this rejection maps to.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Invalid(_) => 400,
            Rejection::Conflict(_) => 409,
            Rejection::NotFound(_) => 404,
        }
    }

    /// The `error.details.error_code` to send, if any.
    pub fn error_code(&self) -> Option<&'static str> {
        match self {
            Rejection::Invalid(field) => field.code,
            _ => None,
        }
    }
}
