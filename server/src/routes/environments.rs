//! Environments (API §5): create (defaults filled in by core), retrieve, update (deep merge),
//! list, archive and delete. Names are unique per workspace: checked against the catalog's
//! `name` field before writing (409, deterministic).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::environment::{
    self, Environment, EnvironmentCreateParams, EnvironmentObject, EnvironmentUpdateParams,
};
use managed_agents_core::ids::EnvironmentId;
use managed_agents_core::object::Deleted;
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store, StreamId};
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
    id: &EnvironmentId,
) -> Result<(Environment, Vec<environment::Record>)> {
    let stored = objects::records(state, id.as_str()).await?;
    let records = stored
        .iter()
        .map(|r| environment::Record::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()?;
    let found = environment::fold(records.clone());
    let env = objects::owned(
        found,
        |e| &e.workspace == auth.workspace(),
        "environment",
        id.as_str(),
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
    let records = environment::create(params, id.clone(), auth.workspace().clone(), now)?;
    let env = environment::fold(records.clone())
        .ok_or_else(|| Error::Internal("environment fold empty".into()))?;
    let _names = state.environment_names.lock().await;
    check_unique(&state, auth.workspace().as_str(), &env.settings.name, None).await?;
    let env = save(&state, id.as_str(), Vec::new(), records).await?;
    Ok(Json(env.render()))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<EnvironmentObject>> {
    let (env, _) = load(&state, &auth, &id).await?;
    Ok(Json(env.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
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
            check_unique(
                &state,
                auth.workspace().as_str(),
                &renamed.settings.name,
                Some(id.as_str()),
            )
            .await?;
        }
    }
    let env = save(&state, id.as_str(), records, new).await?;
    Ok(Json(env.render()))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<EnvironmentObject>> {
    let (env, records) = load(&state, &auth, &id).await?;
    let new = environment::archive(&env, Timestamp::now())?;
    if new.is_empty() {
        return Ok(Json(env.render()));
    }
    let env = save(&state, id.as_str(), records, new).await?;
    Ok(Json(env.render()))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<EnvironmentId>,
) -> Result<Json<Deleted>> {
    let (env, _) = load(&state, &auth, &id).await?;
    state
        .store
        .delete(Kind::Environment, &StreamId::new(id.as_str()))
        .await?;
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
        let (env, _) = load(&state, &auth, &id).await?;
        data.push(env.render());
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}
