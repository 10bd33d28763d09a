//! `POST /v1/sessions/{session_id}/fork` (our extension, not in the hosted API): a new session
//! whose log is the parent's up to `at_event_id` (default: its last event) and whose workspace
//! is a copy of the parent's, with `metadata.forked_from` naming the parent. The SDKs reach it
//! with `client.post(...)`. Core decides the child's records (`session::fork`).

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::time::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::session;
use crate::state::AppState;

/// The fork route.
pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sessions/{session_id}/fork", post(fork))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForkBody {
    #[serde(default)]
    at_event_id: Option<String>,
}

async fn fork(
    State(state): State<AppState>,
    auth: Auth,
    Id(parent): Id<SessionId>,
    body::Json(body): body::Json<ForkBody>,
) -> Result<Json<Value>> {
    let at = match &body.at_event_id {
        Some(raw) => Some(
            EventId::parse(raw)
                .map_err(|_| Error::invalid(format!("at_event_id: {raw:?} is not an event id")))?,
        ),
        None => None,
    };
    let now = Timestamp::now();
    let child = SessionId::generate(now);
    tracing::Span::current().record("session_id", child.as_str());
    let admitted = state.quotas.session(&state, auth.workspace()).await?;
    let committed = {
        let (state, auth, parent, child) =
            (state.clone(), auth.clone(), parent.clone(), child.clone());
        admitted
            .write(async move { session::fork(&state, &auth, &parent, at.as_ref(), &child).await })
            .await?
    };
    // On a self-hosted environment the child gets its own work item, as a created session does.
    if let Some(config) = &committed.state.config {
        super::events::self_hosted_work(&state, &auth, &child, &config.environment_id).await?;
    }
    // The child may have input to run, or a turn to settle.
    state.runner.notifier.notify(&child);
    committed
        .state
        .render(Timestamp::now())
        .map(Json)
        .ok_or_else(|| Error::Internal("forked session without configuration".into()))
}
