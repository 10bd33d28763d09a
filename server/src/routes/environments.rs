//! Environments (API §5): create (defaults filled in by core), retrieve, update (deep merge),
//! list, archive and delete. Names are unique per workspace: checked against the catalog's
//! `name` field before writing (409, deterministic).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::environment::{
    self, Environment, EnvironmentCreateParams, EnvironmentObject, EnvironmentUpdateParams,
};
use managed_agents_core::ids::{EnvironmentId, WorkspaceId};
use managed_agents_core::object::Deleted;
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store, StreamId};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::objects;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::state::AppState;

/// The environment routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/environments", post(create).get(list))
        .route(
            "/environments/{environment_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/environments/{environment_id}/archive", post(archive))
}

/// Loads environment `id` of the caller's workspace (404 otherwise).
pub async fn load(
    state: &AppState,
    auth: &Auth,
    id: &str,
) -> Result<(Environment, Vec<environment::Record>)> {
    if EnvironmentId::parse(id).is_err() {
        return Err(Error::not_found("environment", id));
    }
    let stored = objects::records(state, id).await?;
    let records = stored
        .iter()
        .map(|r| environment::Record::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()?;
    let found = environment::fold(records.clone());
    let env = objects::owned(
        found,
        |e| e.workspace.as_str() == auth.workspace(),
        "environment",
        id,
    )?;
    Ok((env, records))
}

async fn save(
    state: &AppState,
    id: &str,
    mut records: Vec<environment::Record>,
    new: Vec<environment::Record>,
) -> Result<Environment> {
    let expected = records.len() as u64;
    let events = new.iter().map(environment::Record::encode).collect();
    records.extend(new);
    let env = environment::fold(records)
        .ok_or_else(|| Error::Internal("environment fold empty".into()))?;
    objects::append(state, id, expected, events, Some(env.catalog_entry())).await?;
    Ok(env)
}

/// 409 when another environment of the workspace already has `name`.
async fn check_unique(
    state: &AppState,
    workspace: &str,
    name: &str,
    except: Option<&str>,
) -> Result<()> {
    let mut query = CatalogQuery::new(Kind::Environment, workspace);
    query.include_archived = true;
    query.order = Order::Asc;
    query.limit = 1000;
    loop {
        let page = state.store.list(&query).await?;
        if page
            .entries
            .iter()
            .any(|e| e.name.as_deref() == Some(name) && Some(e.id.as_str()) != except)
        {
            return Err(environment::duplicate_name(name).into());
        }
        match (page.has_more, page.entries.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => return Ok(()),
        }
    }
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(params): body::Json<EnvironmentCreateParams>,
) -> Result<Json<EnvironmentObject>> {
    let now = Timestamp::now();
    let id = EnvironmentId::generate(now);
    let workspace =
        WorkspaceId::parse(auth.workspace()).map_err(|e| Error::Internal(e.to_string()))?;
    let records = environment::create(params, id.clone(), workspace, now)?;
    let env = environment::fold(records.clone())
        .ok_or_else(|| Error::Internal("environment fold empty".into()))?;
    let _names = state.environment_names.lock().await;
    check_unique(&state, auth.workspace(), &env.settings.name, None).await?;
    let env = save(&state, id.as_str(), Vec::new(), records).await?;
    Ok(Json(env.render()))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EnvironmentObject>> {
    let (env, _) = load(&state, &auth, &id).await?;
    Ok(Json(env.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    body::Json(params): body::Json<EnvironmentUpdateParams>,
) -> Result<Json<EnvironmentObject>> {
    let (env, records) = load(&state, &auth, &id).await?;
    let new = environment::update(&env, params, Timestamp::now())?;
    if new.is_empty() {
        return Ok(Json(env.render()));
    }
    let mut next = records.clone();
    next.extend(new.iter().cloned());
    let _names = state.environment_names.lock().await;
    if let Some(renamed) = environment::fold(next) {
        if renamed.settings.name != env.settings.name {
            check_unique(&state, auth.workspace(), &renamed.settings.name, Some(&id)).await?;
        }
    }
    let env = save(&state, &id, records, new).await?;
    Ok(Json(env.render()))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<EnvironmentObject>> {
    let (env, records) = load(&state, &auth, &id).await?;
    let new = environment::archive(&env, Timestamp::now())?;
    if new.is_empty() {
        return Ok(Json(env.render()));
    }
    let env = save(&state, &id, records, new).await?;
    Ok(Json(env.render()))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<Deleted>> {
    let (env, _) = load(&state, &auth, &id).await?;
    state
        .store
        .delete(Kind::Environment, &StreamId::new(&id))
        .await?;
    Ok(Json(environment::deleted(&env.id)))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<EnvironmentObject>>> {
    let mut catalog = CatalogQuery::new(Kind::Environment, auth.workspace());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    catalog.created = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let (env, _) = load(&state, &auth, &entry.id).await?;
        data.push(env.render());
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}
