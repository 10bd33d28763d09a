//! Authentication: the [`Auth`] extractor resolves `x-api-key` or `Authorization: Bearer` to
//! the key's typed workspace, or rejects the request with 401 in the envelope.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;

use managed_agents_core::ids::WorkspaceId;

use crate::error::Error;
use crate::keys;
use crate::state::AppState;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The key used (`apikey_…`).
    pub key_id: String,
    workspace: WorkspaceId,
}

impl Auth {
    /// The caller of key `key_id` acting in `workspace`.
    pub fn new(key_id: String, workspace: WorkspaceId) -> Self {
        Self { key_id, workspace }
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
        let principal = keys::authenticate(&state.store, key)
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .ok_or_else(|| Error::Unauthenticated("invalid x-api-key".to_owned()))?;
        tracing::Span::current().record("workspace", principal.workspace.as_str());
        let auth = Self::new(principal.key_id, principal.workspace);
        parts.extensions.insert(auth.clone());
        Ok(auth)
    }
}
