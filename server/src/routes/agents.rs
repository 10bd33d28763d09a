//! Agents (API §4): create, retrieve (`?version=`), update (new version; stale `version` is a
//! deterministic 409), list (newest first, `include_archived`, `created_at` range), archive and
//! versions list. Every rule is core's (`managed_agents_core::agent`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::agent::{
    self, roster, Agent, AgentCreateParams, AgentObject, AgentUpdateParams,
};
use managed_agents_core::ids::AgentId;
use managed_agents_core::storage::{CatalogQuery, Kind, Order};
use managed_agents_core::time::Timestamp;

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::state::AppState;

/// The agent routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", post(create).get(list))
        .route("/v1/agents/{agent_id}", get(retrieve).post(update))
        .route("/v1/agents/{agent_id}/archive", post(archive))
        .route("/v1/agents/{agent_id}/versions", get(versions))
}

/// Loads agent `id` of the caller's workspace (404 otherwise).
pub async fn load(state: &AppState, auth: &Auth, id: &AgentId) -> Result<Agent> {
    objects::load(state, auth, "agent", id.as_str()).await
}

/// A roster as sent, resolved by core's rules against the agents it names in the caller's
/// workspace (`own`: the agent being updated).
async fn resolve_roster(
    state: &AppState,
    auth: &Auth,
    multiagent: &serde_json::Value,
    own: Option<&AgentId>,
) -> Result<serde_json::Value> {
    let mut lookup = BTreeMap::new();
    for id in roster::named(multiagent) {
        let Ok(agent_id) = AgentId::parse(&id) else {
            continue;
        };
        if Some(&agent_id) == own {
            continue;
        }
        let agent = match load(state, auth, &agent_id).await {
            Ok(agent) => agent,
            Err(Error::NotFound(_)) => continue,
            Err(other) => return Err(other),
        };
        let coordinator_versions = agent
            .versions
            .iter()
            .filter(|v| v.config.multiagent.is_some())
            .map(|v| v.number)
            .collect();
        lookup.insert(
            id,
            roster::Named {
                latest: agent.version(),
                archived: agent.is_archived(),
                coordinator_versions,
            },
        );
    }
    Ok(roster::resolve(
        multiagent,
        &lookup,
        own.map(AgentId::as_str),
    )?)
}

fn latest(agent: &Agent) -> Result<AgentObject> {
    agent
        .render(None)
        .ok_or_else(|| Error::Internal(format!("agent {} has no versions", agent.id)))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(mut params): body::Json<AgentCreateParams>,
) -> Result<Json<AgentObject>> {
    super::skills::check_references(&state, &auth, params.skills.as_deref().unwrap_or_default())
        .await?;
    if let Some(multiagent) = &params.multiagent {
        params.multiagent = Some(resolve_roster(&state, &auth, multiagent, None).await?);
    }
    let now = Timestamp::now();
    let id = AgentId::generate(now);
    let records = agent::create(params, id.clone(), auth.workspace().clone(), now)?;
    let agent: Agent = objects::create(&state, id.as_str(), records).await?;
    Ok(Json(latest(&agent)?))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(agent_id): Id<AgentId>,
    query: Query,
) -> Result<Json<AgentObject>> {
    let version = query.uint("version")?;
    if version == Some(0) {
        return Err(Error::invalid("version: must be at least 1"));
    }
    let agent = load(&state, &auth, &agent_id).await?;
    agent.render(version).map(Json).ok_or_else(|| {
        Error::NotFound(format!(
            "agent {:?} has no version {}",
            agent_id.as_str(),
            version.unwrap_or(0)
        ))
    })
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(agent_id): Id<AgentId>,
    body::Json(mut params): body::Json<AgentUpdateParams>,
) -> Result<Json<AgentObject>> {
    if let managed_agents_core::patch::Patch::Value(skills) = &params.skills {
        super::skills::check_references(&state, &auth, skills).await?;
    }
    if let managed_agents_core::patch::Patch::Value(multiagent) = &params.multiagent {
        let resolved = resolve_roster(&state, &auth, multiagent, Some(&agent_id)).await?;
        params.multiagent = managed_agents_core::patch::Patch::Value(resolved);
    }
    let now = Timestamp::now();
    let agent = objects::write(&state, &auth, "agent", agent_id.as_str(), |agent| {
        Ok(agent::update(agent, params.clone(), now)?)
    })
    .await?;
    Ok(Json(latest(&agent)?))
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(agent_id): Id<AgentId>,
) -> Result<Json<AgentObject>> {
    let now = Timestamp::now();
    let agent = objects::write(&state, &auth, "agent", agent_id.as_str(), |agent| {
        Ok(agent::archive(agent, now)?)
    })
    .await?;
    Ok(Json(latest(&agent)?))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<AgentObject>>> {
    let mut catalog = CatalogQuery::new(Kind::Agent, auth.workspace().as_str());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    catalog.created = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    catalog.order = Order::Desc;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = AgentId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        let agent = load(&state, &auth, &id).await?;
        data.push(latest(&agent)?);
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}

async fn versions(
    State(state): State<AppState>,
    auth: Auth,
    Id(agent_id): Id<AgentId>,
    query: Query,
) -> Result<Json<Page<AgentObject>>> {
    let limit = query.limit(20, 100)?;
    let agent = load(&state, &auth, &agent_id).await?;
    let all = agent.render_versions();
    let skip = match query.one("page")?.filter(|p| !p.is_empty()) {
        None => 0,
        Some(cursor) => pagination::parse_event_cursor(cursor, Order::Desc)? as usize,
    };
    let data: Vec<AgentObject> = all.iter().skip(skip).take(limit).cloned().collect();
    let end = skip + data.len();
    let next_page = (end < all.len()).then(|| pagination::event_cursor(Order::Desc, end as u64));
    Ok(Json(Page { data, next_page }))
}
