//! Session resources (API §9): add, list, retrieve, GitHub token rotation and delete. The
//! current resources are part of the folded session (created with it, then
//! `internal.resource_*` facts appended through core's session log); GitHub tokens are sealed
//! inside those records and never rendered.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{ResourceId, SessionId};
use managed_agents_core::resource::{self, ResourceObject, ResourceParams, ResourceUpdateParams};
use managed_agents_core::session::{Command, SessionState};
use managed_agents_core::storage::Order;
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::routes::sessions::resolve_resource;
use crate::session;
use crate::state::AppState;

/// The resource routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{session_id}/resources", post(add).get(list))
        .route(
            "/v1/sessions/{session_id}/resources/{resource_id}",
            get(retrieve).post(rotate).delete(delete),
        )
}

/// The rendered resource `id` of a folded session.
fn find(state: &SessionState, id: &ResourceId) -> Result<ResourceObject> {
    state
        .resource(id)
        .map(|r| r.render())
        .ok_or_else(|| Error::not_found(ResourceId::KIND, id.as_str()))
}

async fn add(
    State(state): State<AppState>,
    auth: Auth,
    Id(session_id): Id<SessionId>,
    body::Json(params): body::Json<ResourceParams>,
) -> Result<Json<ResourceObject>> {
    resource::check_addable(&params)?;
    // 404 for an unknown session before looking at the file.
    session::load(&state, &auth, &session_id).await?;
    let resolved = resolve_resource(&state, &auth, params, Timestamp::now(), "").await?;
    let rendered = resolved.render();
    let command = Command::AddResource(Box::new(resolved));
    session::commit(&state, &auth, &session_id, move || command.clone()).await?;
    Ok(Json(rendered))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Id(session_id): Id<SessionId>,
    query: Query,
) -> Result<Json<Page<ResourceObject>>> {
    let loaded = session::load(&state, &auth, &session_id).await?;
    let all = &loaded.state.resources;
    let limit = match query.one("limit")? {
        None => all.len().max(1),
        Some(_) => query.limit(1000, 1000)?,
    };
    let skip = match query.one("page")?.filter(|p| !p.is_empty()) {
        None => 0,
        Some(cursor) => pagination::parse_event_cursor(cursor, Order::Asc)? as usize,
    };
    let data: Vec<ResourceObject> = all
        .iter()
        .skip(skip)
        .take(limit)
        .map(|r| r.render())
        .collect();
    let end = skip + data.len();
    let next_page = (end < all.len()).then(|| pagination::event_cursor(Order::Asc, end as u64));
    Ok(Json(Page { data, next_page }))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(session_id): Id<SessionId>,
    Id(id): Id<ResourceId>,
) -> Result<Json<ResourceObject>> {
    let loaded = session::load(&state, &auth, &session_id).await?;
    Ok(Json(find(&loaded.state, &id)?))
}

async fn rotate(
    State(state): State<AppState>,
    auth: Auth,
    Id(session_id): Id<SessionId>,
    Id(id): Id<ResourceId>,
    body::Json(params): body::Json<ResourceUpdateParams>,
) -> Result<Json<ResourceObject>> {
    let loaded = session::load(&state, &auth, &session_id).await?;
    let current = loaded
        .state
        .resource(&id)
        .ok_or_else(|| Error::not_found(ResourceId::KIND, id.as_str()))?;
    current.check_rotatable()?;
    resource::check_token(&params.authorization_token)?;
    let sealed = state.sealer.seal_text(&params.authorization_token.0);
    let rotated = id.clone();
    let committed = session::commit(&state, &auth, &session_id, move || {
        Command::RotateResourceToken {
            id: rotated.clone(),
            authorization_token: sealed.clone(),
        }
    })
    .await?;
    Ok(Json(find(&committed.state, &id)?))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(session_id): Id<SessionId>,
    Id(id): Id<ResourceId>,
) -> Result<Json<managed_agents_core::object::Deleted>> {
    let removed = id.clone();
    session::commit(&state, &auth, &session_id, move || {
        Command::RemoveResource(removed.clone())
    })
    .await?;
    Ok(Json(resource::deleted(&id)))
}
