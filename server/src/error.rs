//! The one application error type and its mapping onto the API's error envelope.
//!
//! Handlers return `Result<_, Error>`. [`Error::into_response`] only records *what* went wrong
//! (an [`Envelope`] in the response extensions); the request-id middleware in [`mod@crate::app`]
//! renders the JSON body, because only it knows the request id that the body must carry.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use managed_agents_core::validate::FieldError;
use managed_agents_core::{memory, object, storage, work};
use serde_json::{json, Value};

/// Everything a request can fail with, each mapped to one HTTP status and `error.type`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400 `invalid_request_error`: the request is malformed or breaks a rule.
    #[error("{message}")]
    Invalid {
        /// What is wrong, naming the field and the rule.
        message: String,
        /// A stable machine code for `error.details.error_code`.
        code: Option<&'static str>,
    },
    /// 401 `authentication_error`.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403 `permission_error`.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found_error`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `invalid_request_error`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 `invalid_request_error`. Deterministic conflicts carry `x-should-retry: false`.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// Whether retrying the same request can succeed (a lost race, not a rule).
        retryable: bool,
    },
    /// 413 `request_too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// A 409 with its own `error.type` (the memory endpoints' `memory_path_conflict_error` and
    /// `memory_precondition_failed_error`), deterministic (`x-should-retry: false`); `fields`
    /// go into `error` and `error.details` alike.
    #[error("{message}")]
    TypedConflict {
        /// `error.type`.
        kind: &'static str,
        /// What conflicts.
        message: String,
        /// Extra fields, e.g. `conflicting_memory_id`.
        fields: serde_json::Map<String, Value>,
    },
    /// 412 `invalid_request_error` with `error.details` (a work heartbeat's
    /// `heartbeat_precondition_failed` with the lease's `current_state`).
    #[error("{message}")]
    PreconditionFailed {
        /// What failed.
        message: String,
        /// `error.details`.
        details: Value,
    },
    /// 408 `timeout_error`: the client stopped sending its request body.
    #[error("{0}")]
    RequestTimeout(String),
    /// 429 `rate_limit_error` with `retry-after`: the key is over a limit of [`crate::limits`].
    #[error("{message}")]
    RateLimited {
        /// Which limit.
        message: String,
        /// When a retry may succeed (sent in whole seconds, at least 1).
        retry_after: std::time::Duration,
    },
    /// 500 `api_error`. The detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
    /// 503 `overloaded_error`: the store is shut down or unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// 503 `overloaded_error` with `x-should-retry: true`: the data disk is full; nothing of
    /// the request was written. The detail is logged, never sent.
    #[error("storage full: {0}")]
    StorageFull(String),
}

impl Error {
    /// A 400 with a message naming the field and the rule.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            code: None,
        }
    }

    /// A 400 with a stable `error_code`.
    pub fn invalid_code(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            code: Some(code),
        }
    }

    /// A 404 for an object of `kind` with `id`.
    pub fn not_found(kind: &str, id: &str) -> Self {
        Self::NotFound(format!("{kind} {id:?} not found"))
    }

    /// The 408 of a request body that stopped arriving (see [`crate::limits`]).
    pub fn body_timeout() -> Self {
        Self::RequestTimeout(
            "the request body stopped arriving for longer than the body read timeout".to_owned(),
        )
    }

    /// A deterministic 409 (a retry cannot succeed).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
            retryable: false,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } | Error::TypedConflict { .. } => StatusCode::CONFLICT,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            Error::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Error::Unavailable(_) | Error::StorageFull(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The envelope's `error.type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid { .. }
            | Error::MethodNotAllowed(_)
            | Error::Conflict { .. }
            | Error::PreconditionFailed { .. } => "invalid_request_error",
            Error::TypedConflict { kind, .. } => kind,
            Error::Unauthenticated(_) => "authentication_error",
            Error::Forbidden(_) => "permission_error",
            Error::NotFound(_) => "not_found_error",
            Error::TooLarge(_) => "request_too_large",
            Error::RequestTimeout(_) => "timeout_error",
            Error::RateLimited { .. } => "rate_limit_error",
            Error::Internal(_) => "api_error",
            Error::Unavailable(_) | Error::StorageFull(_) => "overloaded_error",
        }
    }

    /// What the client is told (internal details stay in the log).
    fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => "Internal server error".to_owned(),
            Error::StorageFull(_) => "the server cannot store data: its disk is full; nothing of \
                this request was written"
                .to_owned(),
            other => other.to_string(),
        }
    }

    /// The envelope this error renders as.
    pub fn envelope(&self) -> Envelope {
        let details = match self {
            Error::Invalid {
                code: Some(code), ..
            } => Some(json!({ "error_code": code })),
            Error::TypedConflict { fields, .. } => Some(Value::Object(fields.clone())),
            Error::PreconditionFailed { details, .. } => Some(details.clone()),
            _ => None,
        };
        let fields = match self {
            Error::TypedConflict { fields, .. } => fields.clone(),
            _ => serde_json::Map::new(),
        };
        Envelope {
            status: self.status(),
            kind: self.kind(),
            message: self.public_message(),
            details,
            fields,
        }
    }
}

impl From<work::Error> for Error {
    fn from(err: work::Error) -> Self {
        match err {
            work::Error::Invalid(message) => Error::invalid(message),
            work::Error::NotFound(message) => Error::NotFound(message),
            work::Error::Conflict(message) => Error::conflict(message),
            work::Error::Precondition(current) => Error::PreconditionFailed {
                message: "expected_last_heartbeat does not match the lease's last heartbeat: \
                          another worker may hold it"
                    .to_owned(),
                details: json!({
                    "error_code": "heartbeat_precondition_failed",
                    "current_state": work::render_lease_state(&current),
                }),
            },
            work::Error::Storage(message) => Error::Internal(message),
        }
    }
}

impl From<object::Error> for Error {
    fn from(err: object::Error) -> Self {
        match err {
            object::Error::Invalid(field) => Error::Invalid {
                message: field.to_string(),
                code: field.code,
            },
            object::Error::Conflict(message) => Error::conflict(message),
            object::Error::Code { code, message } => Error::Invalid {
                message,
                code: Some(code),
            },
        }
    }
}

impl From<memory::MemoryError> for Error {
    fn from(err: memory::MemoryError) -> Self {
        let message = err.to_string();
        match err {
            memory::MemoryError::Object(err) => err.into(),
            memory::MemoryError::PathConflict {
                conflicting_memory_id,
                ..
            } => {
                let mut fields = serde_json::Map::new();
                fields.insert(
                    "conflicting_memory_id".to_owned(),
                    Value::String(conflicting_memory_id.to_string()),
                );
                Error::TypedConflict {
                    kind: "memory_path_conflict_error",
                    message,
                    fields,
                }
            }
            memory::MemoryError::PreconditionFailed { .. } => Error::TypedConflict {
                kind: "memory_precondition_failed_error",
                message,
                fields: serde_json::Map::new(),
            },
            memory::MemoryError::NotFound { .. } => Error::NotFound(message),
        }
    }
}

impl From<FieldError> for Error {
    fn from(field: FieldError) -> Self {
        Error::Invalid {
            message: field.to_string(),
            code: field.code,
        }
    }
}

impl From<object::DecodeError> for Error {
    fn from(err: object::DecodeError) -> Self {
        Error::Internal(err.to_string())
    }
}

impl From<storage::Error> for Error {
    fn from(err: storage::Error) -> Self {
        match err {
            storage::Error::WrongExpectedVersion { .. } => Error::Conflict {
                message: "the object was changed concurrently; retry the request".to_owned(),
                retryable: true,
            },
            storage::Error::Deleted(stream) => Error::NotFound(format!("{stream} was deleted")),
            storage::Error::Closed => Error::Unavailable("the store is shutting down".to_owned()),
            storage::Error::Backend(detail) => Error::Internal(detail),
            storage::Error::Full(detail) => Error::StorageFull(detail),
        }
    }
}

/// A rendered-later error: status, `error.type`, message and optional details.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The HTTP status.
    pub status: StatusCode,
    /// `error.type`.
    pub kind: &'static str,
    /// `error.message`.
    pub message: String,
    /// `error.details`, if any.
    pub details: Option<Value>,
    /// Extra members of `error` (besides `type`, `message` and `details`).
    pub fields: serde_json::Map<String, Value>,
}

impl Envelope {
    /// The JSON body with `request_id`.
    pub fn body(&self, request_id: &str) -> Value {
        let mut error = json!({ "type": self.kind, "message": self.message });
        for (key, value) in &self.fields {
            error[key] = value.clone();
        }
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "type": "error", "error": error, "request_id": request_id })
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Error::Internal(detail) => tracing::error!(%detail, "internal error"),
            Error::Unavailable(detail) => tracing::warn!(%detail, "unavailable"),
            Error::StorageFull(detail) => {
                tracing::error!(%detail, "a write was refused: the data disk is full")
            }
            _ => tracing::debug!(error = %self, "request rejected"),
        }
        let envelope = self.envelope();
        let mut response = envelope.status.into_response();
        if matches!(
            self,
            Error::Conflict {
                retryable: false,
                ..
            } | Error::TypedConflict { .. }
        ) {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if matches!(self, Error::StorageFull(_)) {
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("true"));
        }
        if let Error::RateLimited { retry_after, .. } = &self {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds.max(1)));
        }
        response.extensions_mut().insert(envelope);
        response
    }
}

/// The result of a handler.
pub type Result<T, E = Error> = std::result::Result<T, E>;
