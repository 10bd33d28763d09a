//! The error objects of `session.error`: fifteen kinds, each with a message and a retry status.

use serde::{Deserialize, Serialize};

use crate::ids::{CredentialId, VaultId};

/// One `session.error` error object: `{type, message, retry_status, …kind-specific fields}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionError {
    /// The kind, with its extra fields; serialized as `type` plus those fields.
    #[serde(flatten)]
    pub kind: ErrorKind,
    /// A human-readable message.
    pub message: String,
    /// Whether the runner is retrying.
    pub retry_status: RetryStatus,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ErrorKind {
    /// Anything else.
    UnknownError,
    /// The model provider is overloaded.
    ModelOverloadedError,
    /// The model provider rate-limited us.
    ModelRateLimitedError,
    /// A model request failed.
    ModelRequestFailedError,
    /// An MCP server could not be reached.
    McpConnectionFailedError {
        /// The server.
        mcp_server_name: String,
    },
    /// An MCP server rejected our credentials.
    McpAuthenticationFailedError {
        /// The server.
        mcp_server_name: String,
    },
    /// Billing problem.
    BillingError,
    /// The host a credential is for could not be reached.
    CredentialHostUnreachableError {
        /// The credential.
        credential_id: CredentialId,
        /// Its vault.
        vault_id: VaultId,
    },
    /// Too many tool calls.
    ToolUseLimitReachedError,
    /// Too many context compactions.
    CompactionLimitReachedError,
    /// Repository authentication failed.
    RepositoryAuthenticationError {
        /// The repository.
        repository_url: Option<String>,
    },
    /// Repository access forbidden.
    RepositoryForbiddenError {
        /// The repository.
        repository_url: Option<String>,
    },
    /// Repository not found.
    RepositoryNotFoundError {
        /// The repository.
        repository_url: Option<String>,
    },
    /// Checkout failed.
    RepositoryCheckoutError {
        /// The repository.
        repository_url: Option<String>,
    },
    /// Clone failed.
    RepositoryCloneError {
        /// The repository.
        repository_url: Option<String>,
    },
}

/// Whether a failure is being retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RetryStatus {
    /// The runner retries; the session is rescheduling.
    Retrying,
    /// Retries ran out; the session goes idle with `retries_exhausted`.
    Exhausted,
    /// Unrecoverable; the session terminates.
    Terminal,
}
