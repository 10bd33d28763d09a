//! Environments (API §5): create (defaults filled in by core), retrieve, update (deep merge),
//! list, archive and delete. Names are unique per workspace through name claims in the store
//! (`core::claim`; 409, deterministic): create claims then writes, a rename claims the new
//! name, writes, then releases the old one, delete releases after deleting; archived
//! environments keep their names.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::environment::{
    self, Environment, EnvironmentCreateParams, EnvironmentObject, EnvironmentUpdateParams,
};
use managed_agents_core::ids::EnvironmentId;
use managed_agents_core::object::Deleted;
use managed_agents_core::storage::{CatalogQuery, Kind};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::state::AppState;

/// The environment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/environments", post(create).get(list))
        .route(
            "/v1/environments/{environment_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/environments/{environment_id}/archive", post(archive))
}

/// Loads environment `id` of the caller's workspace (404 otherwise).
pub async fn load(state: &AppState, auth: &Auth, id: &EnvironmentId) -> Result<Environment> {
    objects::load(state, auth, "environment", id.as_str()).await
}

fn write_error(error: environment::WriteError, id: &EnvironmentId) -> Error {
    match error {
        environment::WriteError::NotFound => Error::not_found("environment", id.as_str()),
        environment::WriteError::Rejected(e) => e.into(),
        environment::WriteError::Store(e) => e.into(),
        environment::WriteError::Corrupt(message) => Error::Internal(message),
    }
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(params): body::Json<EnvironmentCreateParams>,
) -> Result<Json<EnvironmentObject>> {
    let now = Timestamp::now();
    let id = EnvironmentId::generate(now);
    // Claim the name, then create (core::environment::create_named).
    let env = environment::create_named(&state.store, params, id.clone(), auth.workspace(), now)
        .await
        .map_err(|e| write_error(e, &id))?;
    state.metrics.appended(1);
    Ok(Json(env.render()))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<EnvironmentObject>> {
    let env = load(&state, &auth, &id).await?;
    Ok(Json(env.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
    body::Json(params): body::Json<EnvironmentUpdateParams>,
) -> Result<Json<EnvironmentObject>> {
    // A rename claims the new name, writes, then releases the old one.
    let env = environment::update_named(
        &state.store,
        auth.workspace(),
        &id,
        params,
        Timestamp::now(),
    )
    .await
    .map_err(|e| write_error(e, &id))?;
    Ok(Json(env.render()))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<EnvironmentObject>> {
    let now = Timestamp::now();
    let env = objects::write(&state, &auth, "environment", id.as_str(), |env| {
        Ok(environment::archive(env, now)?)
    })
    .await?;
    Ok(Json(env.render()))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<Deleted>> {
    // Delete, then release the name.
    let env = environment::delete_named(&state.store, auth.workspace(), &id, Timestamp::now())
        .await
        .map_err(|e| write_error(e, &id))?;
    Ok(Json(environment::deleted(&env.id)))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<EnvironmentObject>>> {
    let mut catalog = CatalogQuery::new(Kind::Environment, auth.workspace().as_str());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    catalog.created = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = EnvironmentId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        let env = load(&state, &auth, &id).await?;
        data.push(env.render());
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}
