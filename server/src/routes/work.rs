//! The self-hosted work queue (API §5.3): poll, ack, heartbeat, stop, retrieve, update, list
//! and stats of `/v1/environments/{environment_id}/work…`. Decisions are core's
//! (`core::work`); this module checks the auth split and turns HTTP into those commands.
//!
//! Auth split (the table of §5.3): poll, ack, heartbeat and list need the environment key;
//! retrieve and update need an API key; stop and stats take either. An environment key reaching
//! another route is refused earlier, by `crate::auth`.
//!
//! `secret` is `null` on every answer, the poll's included: the environment key is the
//! worker's credential for everything the item needs (the SDK's worker then falls back to it).
//! A blocking poll (`block_ms`) re-polls every [`BLOCK_STEP`] until work arrives or the time
//! is up, then answers JSON `null`.

use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{EnvironmentId, WorkId};
use managed_agents_core::storage::{CatalogQuery, Kind, Order};
use managed_agents_core::time::Timestamp;
use managed_agents_core::work::{self, Work};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::routes::environments;
use crate::state::AppState;

/// How often a blocking poll looks at the queue again.
pub const BLOCK_STEP: Duration = Duration::from_millis(20);

/// The work routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/environments/{environment_id}/work", get(list))
        .route("/v1/environments/{environment_id}/work/poll", get(poll))
        .route("/v1/environments/{environment_id}/work/stats", get(stats))
        .route(
            "/v1/environments/{environment_id}/work/{work_id}",
            get(retrieve).post(update),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/ack",
            post(ack),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/heartbeat",
            post(heartbeat),
        )
        .route(
            "/v1/environments/{environment_id}/work/{work_id}/stop",
            post(stop),
        )
}

/// The path's environment, checked against the caller: an environment key's own (the auth
/// layer already refused others), or one of an API key's workspace.
async fn environment(state: &AppState, auth: &Auth, raw: &str) -> Result<EnvironmentId> {
    let id = EnvironmentId::parse(raw).map_err(|_| Error::not_found("environment", raw))?;
    match auth.environment() {
        Some(own) if own == &id => Ok(id),
        Some(_) => Err(Error::not_found("environment", raw)),
        None => Ok(environments::load(state, auth, &id).await?.id.clone()),
    }
}

fn work_id(raw: &str) -> Result<WorkId> {
    WorkId::parse(raw).map_err(|_| Error::not_found("work item", raw))
}

fn environment_key_only(auth: &Auth, what: &str) -> Result<()> {
    if auth.environment().is_none() {
        return Err(Error::Forbidden(format!(
            "{what} needs the environment key (`managed-agents keys create --environment`), \
             not an API key"
        )));
    }
    Ok(())
}

fn api_key_only(auth: &Auth, what: &str) -> Result<()> {
    if auth.environment().is_some() {
        return Err(Error::Forbidden(format!(
            "{what} needs an API key, not the environment key"
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct EnvPath {
    environment_id: String,
}

#[derive(Debug, Deserialize)]
struct WorkPath {
    environment_id: String,
    work_id: String,
}

type EnvParams = axum::extract::Path<EnvPath>;
type WorkParams = axum::extract::Path<WorkPath>;

async fn poll(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): EnvParams,
    headers: HeaderMap,
    query: Query,
) -> Result<Json<Value>> {
    environment_key_only(&auth, "polling for work")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let block_ms = match query.uint("block_ms")? {
        None => 0,
        Some(ms @ 1..=999) => ms,
        Some(other) => {
            return Err(Error::invalid(format!(
                "block_ms: must be between 1 and 999, got {other}"
            )))
        }
    };
    let reclaim_ms = match query.uint("reclaim_older_than_ms")? {
        None => work::DEFAULT_RECLAIM_MS,
        Some(ms) => i64::try_from(ms)
            .map_err(|_| Error::invalid("reclaim_older_than_ms: must be a non-negative integer"))?,
    };
    let worker_id = headers
        .get("anthropic-worker-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned);
    if let Some(worker) = &worker_id {
        state.workers.seen(&env, worker);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(block_ms);
    loop {
        let delivered = work::poll(
            &state.store,
            auth.workspace(),
            &env,
            worker_id.as_deref(),
            reclaim_ms,
            Timestamp::now(),
        )
        .await?;
        if let Some(item) = delivered {
            return Ok(Json(work::render(&item, None)));
        }
        if tokio::time::Instant::now() + BLOCK_STEP > deadline {
            return Ok(Json(Value::Null));
        }
        tokio::time::sleep(BLOCK_STEP).await;
    }
}

async fn ack(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): WorkParams,
) -> Result<Json<Value>> {
    environment_key_only(&auth, "acknowledging work")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let id = work_id(&path.work_id)?;
    let item = work::ack(&state.store, auth.workspace(), &env, &id, Timestamp::now()).await?;
    Ok(Json(work::render(&item, None)))
}

async fn heartbeat(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): WorkParams,
    query: Query,
) -> Result<Json<Value>> {
    environment_key_only(&auth, "heartbeating work")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let id = work_id(&path.work_id)?;
    let expected = query.one("expected_last_heartbeat")?;
    let ttl = match query.uint("desired_ttl_seconds")? {
        None => None,
        Some(ttl) if (1..=u64::from(work::MAX_TTL_SECONDS)).contains(&ttl) => Some(ttl as u32),
        Some(other) => {
            return Err(Error::invalid(format!(
                "desired_ttl_seconds: must be between 1 and {}, got {other}",
                work::MAX_TTL_SECONDS
            )))
        }
    };
    let (item, extended) = work::heartbeat(
        &state.store,
        auth.workspace(),
        &env,
        &id,
        expected,
        ttl,
        Timestamp::now(),
    )
    .await?;
    Ok(Json(work::render_heartbeat(&item, extended)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    #[serde(default)]
    force: Option<bool>,
}

async fn stop(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): WorkParams,
    body::Json(body): body::Json<StopBody>,
) -> Result<Json<Value>> {
    let env = environment(&state, &auth, &path.environment_id).await?;
    let id = work_id(&path.work_id)?;
    let force = body.force.unwrap_or(false);
    let item = work::stop(
        &state.store,
        auth.workspace(),
        &env,
        &id,
        force,
        Timestamp::now(),
    )
    .await?;
    Ok(Json(work::render(&item, None)))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): WorkParams,
) -> Result<Json<Value>> {
    api_key_only(&auth, "retrieving a work item")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let id = work_id(&path.work_id)?;
    let item = loaded(&state, &auth, &env, &id).await?;
    Ok(Json(work::render(&item, None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    metadata: std::collections::BTreeMap<String, Option<String>>,
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): WorkParams,
    body::Json(body): body::Json<UpdateBody>,
) -> Result<Json<Value>> {
    api_key_only(&auth, "updating a work item")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let id = work_id(&path.work_id)?;
    let item = work::update_metadata(
        &state.store,
        auth.workspace(),
        &env,
        &id,
        &body.metadata,
        Timestamp::now(),
    )
    .await?;
    Ok(Json(work::render(&item, None)))
}

async fn loaded(state: &AppState, auth: &Auth, env: &EnvironmentId, id: &WorkId) -> Result<Work> {
    work::load(&state.store, auth.workspace(), env, id)
        .await?
        .state
        .ok_or_else(|| Error::not_found("work item", id.as_str()))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): EnvParams,
    query: Query,
) -> Result<Json<Page<Value>>> {
    environment_key_only(&auth, "listing work")?;
    let env = environment(&state, &auth, &path.environment_id).await?;
    let mut catalog = CatalogQuery::new(Kind::Work, auth.workspace().as_str());
    catalog.parent = Some(env.as_str().to_owned());
    catalog.order = Order::Desc;
    catalog.limit = query.limit(20, 100)?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = WorkId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        data.push(work::render(&loaded(&state, &auth, &env, &id).await?, None));
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}

async fn stats(
    State(state): State<AppState>,
    auth: Auth,
    axum::extract::Path(path): EnvParams,
) -> Result<Json<Value>> {
    let env = environment(&state, &auth, &path.environment_id).await?;
    let counts = work::stats(&state.store, auth.workspace(), &env, Timestamp::now()).await?;
    Ok(Json(json!({
        "type": "work_queue_stats",
        "depth": counts.depth,
        "pending": counts.pending,
        "oldest_queued_at": counts.oldest_queued_at.map(|t| t.to_string()),
        "workers_polling": state.workers.polling(&env),
    })))
}
