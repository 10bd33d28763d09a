//! Authentication: the [`Auth`] extractor resolves `x-api-key` or `Authorization: Bearer` to
//! the key's typed workspace, or rejects the request with 401 in the envelope. Each request of a
//! key takes one token of its rate limit ([`crate::limits`]) here, once per request.
//!
//! An **environment key** (API §5.3, `managed-agents keys create --environment`) reaches only
//! its environment's work endpoints (poll, ack, heartbeat, stop, list, stats) and the sessions
//! that environment serves (retrieve, which the SDK's worker needs, and the event endpoints:
//! list, send, stream); [`environment_key_allows`] answers 403 for every other route, 404 for
//! another environment's queue, and `session::load` answers 404 for a session of another
//! environment.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use axum::http::Method;
use managed_agents_core::ids::{EnvironmentId, WorkspaceId};

use crate::error::Error;
use crate::keys;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The key used (`apikey_…`).
    pub key_id: String,
    workspace: WorkspaceId,
    environment: Option<EnvironmentId>,
}

impl Auth {
    /// The caller of key `key_id` acting in `workspace`.
    pub fn new(key_id: String, workspace: WorkspaceId) -> Self {
        Self {
            key_id,
            workspace,
            environment: None,
        }
    }

    /// For an environment key: the one environment it reaches.
    pub fn environment(&self) -> Option<&EnvironmentId> {
        self.environment.as_ref()
    }

    /// The workspace every object of this request belongs to.
    pub fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }

    /// Whether `workspace` (as an object or catalog entry stores it) is the caller's.
    pub fn owns(&self, workspace: &str) -> bool {
        self.workspace.as_str() == workspace
    }
}

/// The presented key: `x-api-key` first, then `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(key) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim());
    }
    let value = headers.get("authorization")?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.extensions.get::<Auth>() {
            return Ok(auth.clone());
        }
        let Some(key) = presented_key(&parts.headers) else {
            return Err(Error::Unauthenticated(
                "missing API key: send it as x-api-key or Authorization: Bearer".to_owned(),
            ));
        };
        let digest = keys::hash(key);
        let principal = match state.principals.get(&digest) {
            Some(principal) => principal,
            None => {
                let principal = keys::authenticate_digest(&state.store, &digest)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                    .ok_or_else(|| Error::Unauthenticated("invalid x-api-key".to_owned()))?;
                state.principals.put(digest, principal.clone());
                principal
            }
        };
        tracing::Span::current().record("workspace", principal.workspace.as_str());
        if let Some(environment) = &principal.environment {
            environment_key_allows(&parts.method, parts.uri.path(), environment)?;
        }
        state.limits.request(&principal.key_id)?;
        let auth = Self {
            key_id: principal.key_id,
            workspace: principal.workspace,
            environment: principal.environment,
        };
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}

/// Whether an environment key of `environment` may call `method path` (with or without the
/// `/v1` prefix): its own queue's worker endpoints and session retrieve/events; 404 for
/// another environment's queue, 403 for everything else.
pub fn environment_key_allows(
    method: &Method,
    path: &str,
    environment: &EnvironmentId,
) -> Result<(), Error> {
    let path = path.strip_prefix("/v1").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    let allowed = match segments.as_slice() {
        ["environments", env, "work", rest @ ..] => {
            if *env != environment.as_str() {
                return Err(Error::not_found("environment", env));
            }
            match rest {
                [] | ["poll"] | ["stats"] => get,
                [_, "ack" | "heartbeat" | "stop"] => post,
                _ => false,
            }
        }
        ["sessions", _] | ["sessions", _, "events", "stream"] => get,
        ["sessions", _, "events"] => get || post,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "an environment key can only reach its environment's work queue (poll, ack, \
             heartbeat, stop, list, stats) and the events of the sessions it serves; use an \
             API key"
                .to_owned(),
        ))
    }
}
