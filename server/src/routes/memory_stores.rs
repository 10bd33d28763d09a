//! Memory stores, memories and memory versions (API §12). A store is one stream
//! (`core::memory`): every route loads or writes it through `objects` (the workspace check,
//! core's one write primitive) and core decides; memory and version lookups happen inside the
//! store's fold, so a memory of another store or workspace is a 404. Writes record the caller's
//! API key as the version's `api_actor`. Memory updates come as `POST` (the SDK) or `PATCH`.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{MemoryId, MemoryStoreId, MemoryVersionId};
use managed_agents_core::memory::{
    self, Actor, MemoryCreateParams, MemoryError, MemoryListItem, MemoryObject, MemoryStore,
    MemoryStoreCreateParams, MemoryStoreObject, MemoryStoreUpdateParams, MemoryUpdateParams,
    MemoryVersionObject, Operation, Record, VersionFilter, View,
};
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

const KIND: &str = "memory store";

/// The memory store routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/memory_stores", post(create).get(list))
        .route(
            "/v1/memory_stores/{memory_store_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/memory_stores/{memory_store_id}/archive", post(archive))
        .route(
            "/v1/memory_stores/{memory_store_id}/memories",
            post(create_memory).get(list_memories),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memories/{memory_id}",
            get(retrieve_memory)
                .post(update_memory)
                .patch(update_memory)
                .delete(delete_memory),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions",
            get(list_versions),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}",
            get(retrieve_version),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}/redact",
            post(redact),
        )
}

fn actor(auth: &Auth) -> Actor {
    Actor::Api {
        api_key_id: auth.key_id.clone(),
    }
}

fn view(query: &Query, default: View) -> Result<View> {
    Ok(View::parse(query.one("view")?, default)?)
}

async fn load(state: &AppState, auth: &Auth, id: &MemoryStoreId) -> Result<MemoryStore> {
    objects::load(state, auth, KIND, id.as_str()).await
}

/// Decides on store `id` of the caller's workspace and appends; the store after the write.
async fn write(
    state: &AppState,
    auth: &Auth,
    id: &MemoryStoreId,
    mut decide: impl FnMut(&MemoryStore) -> Result<Vec<Record>, MemoryError>,
) -> Result<MemoryStore> {
    objects::write(state, auth, KIND, id.as_str(), |store| {
        decide(store).map_err(Error::from)
    })
    .await
}

fn rendered(store: &MemoryStore, id: &MemoryId, view: View) -> Result<MemoryObject> {
    store
        .memory(id)
        .map(|m| store.render_memory(m, view))
        .ok_or_else(|| Error::not_found("memory", id.as_str()))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(params): body::Json<MemoryStoreCreateParams>,
) -> Result<Json<MemoryStoreObject>> {
    let now = Timestamp::now();
    let id = MemoryStoreId::generate(now);
    let records = memory::create_store(params, id.clone(), auth.workspace().clone(), now)?;
    let store: MemoryStore = objects::create(&state, id.as_str(), records).await?;
    Ok(Json(store.render()))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<MemoryStoreId>,
) -> Result<Json<MemoryStoreObject>> {
    Ok(Json(load(&state, &auth, &id).await?.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<MemoryStoreId>,
    body::Json(params): body::Json<MemoryStoreUpdateParams>,
) -> Result<Json<MemoryStoreObject>> {
    let now = Timestamp::now();
    let store = write(&state, &auth, &id, |store| {
        memory::update_store(store, params.clone(), now)
    })
    .await?;
    Ok(Json(store.render()))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<MemoryStoreId>,
) -> Result<Json<MemoryStoreObject>> {
    let now = Timestamp::now();
    let store = write(&state, &auth, &id, |store| {
        Ok(memory::archive_store(store, now))
    })
    .await?;
    Ok(Json(store.render()))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<MemoryStoreId>,
) -> Result<Json<Deleted>> {
    let store = load(&state, &auth, &id).await?;
    objects::delete(&state, Kind::MemoryStore, id.as_str()).await?;
    Ok(Json(memory::store_deleted(&store.id)))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<MemoryStoreObject>>> {
    let mut catalog = CatalogQuery::new(Kind::MemoryStore, auth.workspace().as_str());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    catalog.created = query.time_range("created_at", &["gte", "lte"])?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = MemoryStoreId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        data.push(load(&state, &auth, &id).await?.render());
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}

async fn create_memory(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    query: Query,
    body::Json(params): body::Json<MemoryCreateParams>,
) -> Result<Json<MemoryObject>> {
    let view = view(&query, View::Basic)?;
    let now = Timestamp::now();
    let id = MemoryId::generate(now);
    let version = MemoryVersionId::generate(now);
    let by = actor(&auth);
    let store = write(&state, &auth, &store_id, |store| {
        memory::create_memory(store, &params, &id, &version, &by, now)
    })
    .await?;
    Ok(Json(rendered(&store, &id, view)?))
}

async fn retrieve_memory(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    Id(id): Id<MemoryId>,
    query: Query,
) -> Result<Json<MemoryObject>> {
    let view = view(&query, View::Full)?;
    let store = load(&state, &auth, &store_id).await?;
    Ok(Json(rendered(&store, &id, view)?))
}

async fn update_memory(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    Id(id): Id<MemoryId>,
    query: Query,
    body::Json(params): body::Json<MemoryUpdateParams>,
) -> Result<Json<MemoryObject>> {
    let view = view(&query, View::Basic)?;
    let now = Timestamp::now();
    let version = MemoryVersionId::generate(now);
    let by = actor(&auth);
    let store = write(&state, &auth, &store_id, |store| {
        memory::update_memory(store, &id, &params, &version, &by, now)
    })
    .await?;
    Ok(Json(rendered(&store, &id, view)?))
}

async fn delete_memory(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    Id(id): Id<MemoryId>,
    query: Query,
) -> Result<Json<Deleted>> {
    let expected = query.one("expected_content_sha256")?.map(str::to_owned);
    let now = Timestamp::now();
    let version = MemoryVersionId::generate(now);
    let by = actor(&auth);
    write(&state, &auth, &store_id, |store| {
        memory::delete_memory(store, &id, expected.as_deref(), &version, &by, now)
    })
    .await?;
    Ok(Json(memory::memory_deleted(&id)))
}

/// A list `limit`, capped at [`memory::FULL_VIEW_PAGE`] with `view=full`.
fn page_limit(query: &Query, view: View) -> Result<usize> {
    let limit = query.limit(20, 100)?;
    Ok(match view {
        View::Full => limit.min(memory::FULL_VIEW_PAGE),
        View::Basic => limit,
    })
}

async fn list_memories(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    query: Query,
) -> Result<Json<Page<MemoryListItem>>> {
    let view = view(&query, View::Basic)?;
    let limit = page_limit(&query, view)?;
    let prefix = query.one("path_prefix")?.unwrap_or("/");
    memory::path::check_prefix("path_prefix", prefix)?;
    let depth = query.uint("depth")?.unwrap_or(0);
    let depth = usize::try_from(depth)
        .map_err(|_| Error::invalid(format!("depth: {depth} is too large")))?;
    let after = query
        .one("page")?
        .filter(|p| !p.is_empty())
        .map(|p| pagination::parse_key_cursor('m', p))
        .transpose()?;
    let store = load(&state, &auth, &store_id).await?;
    let (data, next) = store.list_memories(prefix, depth, after.as_deref(), limit, view);
    Ok(Json(Page {
        data,
        next_page: next.map(|key| pagination::key_cursor('m', &key)),
    }))
}

async fn list_versions(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    query: Query,
) -> Result<Json<Page<MemoryVersionObject>>> {
    let view = view(&query, View::Basic)?;
    let limit = page_limit(&query, view)?;
    let operation = query
        .one("operation")?
        .map(|text| {
            Operation::parse(text).ok_or_else(|| {
                Error::invalid(format!(
                    "operation: must be created, modified or deleted, got {text:?}"
                ))
            })
        })
        .transpose()?;
    let range = query.time_range("created_at", &["gte", "lte"])?;
    let owned = |name: &str| -> Result<Option<String>> { Ok(query.one(name)?.map(str::to_owned)) };
    let filter = VersionFilter {
        memory_id: owned("memory_id")?,
        operation,
        session_id: owned("session_id")?,
        api_key_id: owned("api_key_id")?,
        service_account_id: owned("service_account_id")?,
        created_gte: range.gte,
        created_lte: range.lte,
    };
    let before = query
        .one("page")?
        .filter(|p| !p.is_empty())
        .map(|p| {
            pagination::parse_key_cursor('v', p)?
                .parse::<usize>()
                .map_err(|_| Error::invalid(format!("page: {p:?} is not a valid page cursor")))
        })
        .transpose()?;
    let store = load(&state, &auth, &store_id).await?;
    let (data, next) = store.list_versions(&filter, before, limit, view);
    Ok(Json(Page {
        data,
        next_page: next.map(|i| pagination::key_cursor('v', &i.to_string())),
    }))
}

fn rendered_version(
    store: &MemoryStore,
    id: &MemoryVersionId,
    view: View,
) -> Result<MemoryVersionObject> {
    store
        .version(id)
        .map(|v| store.render_version(v, view))
        .ok_or_else(|| Error::not_found("memory version", id.as_str()))
}

async fn retrieve_version(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    Id(id): Id<MemoryVersionId>,
    query: Query,
) -> Result<Json<MemoryVersionObject>> {
    let view = view(&query, View::Full)?;
    let store = load(&state, &auth, &store_id).await?;
    Ok(Json(rendered_version(&store, &id, view)?))
}

async fn redact(
    State(state): State<AppState>,
    auth: Auth,
    Id(store_id): Id<MemoryStoreId>,
    Id(id): Id<MemoryVersionId>,
) -> Result<Json<MemoryVersionObject>> {
    let now = Timestamp::now();
    let by = actor(&auth);
    let store = write(&state, &auth, &store_id, |store| {
        memory::redact(store, &id, &by, now)
    })
    .await?;
    Ok(Json(rendered_version(&store, &id, View::Full)?))
}
