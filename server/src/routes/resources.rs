//! Session resources (API §9): list, retrieve, and GitHub token rotation. Resources are fixed at
//! session creation in core's session record (`Created.resources`, rendered objects); tokens
//! live sealed in the resource's secret stream ([`crate::secrets`]) and are never rendered.
//! Adding and removing resources after creation needs session facts core does not have yet.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use managed_agents_core::resource::ResourceUpdateParams;
use managed_agents_core::validate;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::session;
use crate::state::AppState;

/// The resource routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/sessions/{session_id}/resources", get(list))
        .route(
            "/sessions/{session_id}/resources/{resource_id}",
            get(retrieve).post(rotate),
        )
}

async fn resources(state: &AppState, auth: &Auth, session_id: &str) -> Result<Vec<Value>> {
    let loaded = session::load(state, auth, session_id).await?;
    Ok(loaded.state.config.map(|c| c.resources).unwrap_or_default())
}

fn find(resources: Vec<Value>, id: &str) -> Result<Value> {
    resources
        .into_iter()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id))
        .ok_or_else(|| Error::not_found("session resource", id))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(session_id): Path<String>,
    query: Query,
) -> Result<Json<Page<Value>>> {
    let all = resources(&state, &auth, &session_id).await?;
    let limit = match query.one("limit")? {
        None => all.len().max(1),
        Some(_) => query.limit(1000, 1000)?,
    };
    let skip = match query.one("page")?.filter(|p| !p.is_empty()) {
        None => 0,
        Some(cursor) => {
            pagination::parse_event_cursor(cursor, managed_agents_core::storage::Order::Asc)?
                as usize
        }
    };
    let data: Vec<Value> = all.iter().skip(skip).take(limit).cloned().collect();
    let end = skip + data.len();
    let next_page = (end < all.len())
        .then(|| pagination::event_cursor(managed_agents_core::storage::Order::Asc, end as u64));
    Ok(Json(Page { data, next_page }))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Path((session_id, id)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let all = resources(&state, &auth, &session_id).await?;
    Ok(Json(find(all, &id)?))
}

async fn rotate(
    State(state): State<AppState>,
    auth: Auth,
    Path((session_id, id)): Path<(String, String)>,
    body::Json(params): body::Json<ResourceUpdateParams>,
) -> Result<Json<Value>> {
    let resource = find(resources(&state, &auth, &session_id).await?, &id)?;
    if resource.get("type").and_then(Value::as_str) != Some("github_repository") {
        return Err(Error::invalid(
            "authorization_token: only github_repository resources support token rotation",
        ));
    }
    let token = params.authorization_token.0;
    validate::length("authorization_token", &token, 1, 4096)?;
    state
        .secrets
        .put(&state.store, &id, &json!({"authorization_token": token}))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Json(resource))
}
