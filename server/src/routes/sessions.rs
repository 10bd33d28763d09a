//! Sessions (API §6): create (agent as id string, `{type:"agent"}` or `agent_with_overrides`),
//! retrieve (core's folded projection), update, list with every filter and both cursors,
//! archive, and delete (409 while running). `decide` makes every decision.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::agent::{roster, Agent, AgentConfig, AgentSnapshot};
use managed_agents_core::event::{Budget, EventParams};
use managed_agents_core::ids::{
    AgentId, EnvironmentId, MemoryStoreId, ResourceId, SessionId, VaultId,
};
use managed_agents_core::memory::MemoryStore;
use managed_agents_core::patch::Patch;
use managed_agents_core::resource::{self, MemoryStoreInfo, Resource, ResourceParams};
use managed_agents_core::session::{Command, Created, SessionState, Update};
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store};
use managed_agents_core::time::Timestamp;
use managed_agents_core::work;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination::{self, BidiPage};
use crate::query::Query;
use crate::routes::{agents, environments};
use crate::session;
use crate::state::AppState;

/// The session routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions", post(create).get(list))
        .route(
            "/v1/sessions/{session_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/sessions/{session_id}/archive", post(archive))
}

#[derive(Debug, Deserialize)]
struct CreateBody {
    agent: Value,
    environment_id: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    resources: Option<Vec<ResourceParams>>,
    #[serde(default)]
    vault_ids: Option<Vec<String>>,
    #[serde(default)]
    initial_events: Option<Vec<EventParams>>,
    #[serde(default)]
    budget: Option<Budget>,
}

/// Keys of `agent_with_overrides` that replace the agent's configuration.
const OVERRIDES: [&str; 5] = ["model", "system", "tools", "mcp_servers", "skills"];

fn field_error(field: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("{field}: {message}"))
}

/// Resolves the `agent` of a create body to the agent and its snapshot.
async fn resolve_agent(
    state: &AppState,
    auth: &Auth,
    agent: &Value,
) -> Result<(Agent, AgentSnapshot)> {
    let (id, version, overrides) = match agent {
        Value::String(id) => (id.clone(), None, None),
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str);
            let id = map
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| field_error("agent.id", "is required"))?
                .to_owned();
            let version = match map.get("version") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .filter(|v| *v >= 1)
                        .ok_or_else(|| field_error("agent.version", "must be an integer ≥ 1"))?,
                ),
            };
            match kind {
                Some("agent") => (id, version, None),
                Some("agent_with_overrides") => {
                    let mut overrides = Map::new();
                    for (key, value) in map {
                        if OVERRIDES.contains(&key.as_str()) {
                            overrides.insert(key.clone(), value.clone());
                        } else if !["type", "id", "version"].contains(&key.as_str()) {
                            return Err(field_error(
                                &format!("agent.{key}"),
                                "cannot be overridden (allowed: model, system, tools, mcp_servers, skills)",
                            ));
                        }
                    }
                    (id, version, Some(overrides))
                }
                _ => {
                    return Err(field_error(
                        "agent.type",
                        "must be \"agent\" or \"agent_with_overrides\"",
                    ))
                }
            }
        }
        _ => {
            return Err(field_error(
                "agent",
                "must be an agent id or an agent reference object",
            ))
        }
    };
    let agent_id = AgentId::parse(&id).map_err(|_| Error::not_found("agent", &id))?;
    let agent = agents::load(state, auth, &agent_id).await?;
    if agent.is_archived() {
        return Err(field_error("agent", format!("agent {id} is archived")));
    }
    let number = version.unwrap_or_else(|| agent.version());
    let chosen = agent.at_version(number).ok_or_else(|| {
        field_error(
            "agent.version",
            format!("agent {id} has no version {number}"),
        )
    })?;
    let mut config: AgentConfig = chosen.config.clone();
    if let Some(overrides) = overrides {
        let skills = overrides.contains_key("skills");
        config = config.overridden(Value::Object(overrides), "agent")?;
        if skills {
            super::skills::check_resolved(state, auth, &config.skills).await?;
        }
    }
    // The session's agent (API §6.4): the agent version without its metadata and timestamps.
    let mut snapshot = AgentSnapshot::of(agent.id.clone(), number, &config);
    if let Some(multiagent) = &snapshot.multiagent {
        // The roster as the session holds it: each member's full definition.
        let mut definitions = Vec::new();
        for member in roster::members(multiagent) {
            let roster::Member::Agent { id, version } = member else {
                continue;
            };
            let Ok(member_id) = AgentId::parse(&id) else {
                continue;
            };
            if let Ok(found) = agents::load(state, auth, &member_id).await {
                definitions.extend(found.snapshot(version));
            }
        }
        let resolved = roster::for_session(multiagent, &snapshot, &definitions);
        snapshot.multiagent = Some(resolved);
    }
    Ok((agent, snapshot))
}

/// Checks that every vault exists in the caller's workspace.
async fn resolve_vaults(state: &AppState, auth: &Auth, ids: Vec<String>) -> Result<Vec<VaultId>> {
    let mut vaults = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        let parsed = VaultId::parse(&id).map_err(|e| field_error(&format!("vault_ids[{i}]"), e))?;
        let entry = state.store.entry(Kind::Vault, &id).await?;
        if entry.is_none_or(|e| !auth.owns(&e.workspace)) {
            return Err(Error::NotFound(format!(
                "vault_ids[{i}]: vault {id:?} not found"
            )));
        }
        vaults.push(parsed);
    }
    Ok(vaults)
}

/// Resolves the resource requests of a session create body (paths `resources[i]…`).
async fn resolve_resources(
    state: &AppState,
    auth: &Auth,
    params: Vec<ResourceParams>,
    now: Timestamp,
) -> Result<Vec<Resource>> {
    let files = params
        .iter()
        .filter(|p| matches!(p, ResourceParams::File { .. }))
        .count();
    resource::check_file_count(files)?;
    let mut resolved = Vec::with_capacity(params.len());
    for (i, params) in params.into_iter().enumerate() {
        resolved
            .push(resolve_resource(state, auth, params, now, &format!("resources[{i}].")).await?);
    }
    resource::check_memory_stores(&resolved)?;
    Ok(resolved)
}

/// The name and description of memory store `id` of the caller's workspace, for attaching it
/// to a new session: 404 when unknown, 400 `memory_store_archived` when archived.
async fn attachable_store(
    state: &AppState,
    auth: &Auth,
    id: &str,
    at: &str,
) -> Result<MemoryStoreInfo> {
    let not_found = || {
        Error::NotFound(format!(
            "{at}memory_store_id: memory store {id:?} not found"
        ))
    };
    let parsed = MemoryStoreId::parse(id).map_err(|_| not_found())?;
    let store: MemoryStore = objects::find(state, parsed.as_str())
        .await?
        .filter(|s: &MemoryStore| s.workspace == *auth.workspace())
        .ok_or_else(not_found)?;
    if store.is_archived() {
        return Err(Error::invalid_code(
            "memory_store_archived",
            format!("{at}memory_store_id: memory store {id} is archived and cannot be attached"),
        ));
    }
    Ok(MemoryStoreInfo {
        name: store.settings.name.clone(),
        description: store.settings.description.clone(),
    })
}

/// Resolves one resource request: a file must exist in the caller's workspace; a GitHub token
/// is sealed into the resource (never rendered); a memory store must exist in the caller's
/// workspace and not be archived (its name and description are snapshotted). `at` prefixes
/// field names in errors (`resources[0].`, or empty for `POST …/resources`).
pub(crate) async fn resolve_resource(
    state: &AppState,
    auth: &Auth,
    params: ResourceParams,
    now: Timestamp,
    at: &str,
) -> Result<Resource> {
    match &params {
        ResourceParams::File { file_id, .. } => {
            let entry = state.store.entry(Kind::File, file_id.as_str()).await?;
            if entry.is_none_or(|e| !auth.owns(&e.workspace)) {
                return Err(Error::NotFound(format!(
                    "{at}file_id: file {file_id} not found"
                )));
            }
        }
        ResourceParams::GithubRepository {
            authorization_token: Some(token),
            ..
        } => resource::check_token(token)
            .map_err(|e| field_error(&format!("{at}{}", e.field), e.message))?,
        ResourceParams::MemoryStore { .. } | ResourceParams::GithubRepository { .. } => {}
    }
    let memory_store = match &params {
        ResourceParams::MemoryStore {
            memory_store_id, ..
        } => Some(attachable_store(state, auth, memory_store_id, at).await?),
        _ => None,
    };
    resource::resolve(
        params,
        ResourceId::generate(now),
        now,
        memory_store.as_ref(),
        |t| state.sealer.seal_text(t),
    )
    .map_err(|e| match e {
        managed_agents_core::object::Error::Invalid(f) => {
            field_error(&format!("{at}{}", f.field), f.message)
        }
        other => other.into(),
    })
}

fn render(state: &SessionState) -> Result<Json<Value>> {
    state
        .render(Timestamp::now())
        .map(Json)
        .ok_or_else(|| Error::Internal("session without configuration".into()))
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(body): body::Json<CreateBody>,
) -> Result<Json<Value>> {
    let now = Timestamp::now();
    let (_, agent) = resolve_agent(&state, &auth, &body.agent).await?;
    let environment_id = EnvironmentId::parse(&body.environment_id).map_err(|_| {
        Error::NotFound(format!(
            "environment_id: environment {:?} not found",
            body.environment_id
        ))
    })?;
    let env = environments::load(&state, &auth, &environment_id).await?;
    if env.is_archived() {
        return Err(Error::invalid_code(
            "environment_archived",
            format!("environment_id: environment {} is archived", env.id),
        ));
    }
    let vault_ids = resolve_vaults(&state, &auth, body.vault_ids.unwrap_or_default()).await?;
    let resources =
        resolve_resources(&state, &auth, body.resources.unwrap_or_default(), now).await?;
    let id = SessionId::generate(now);
    tracing::Span::current().record("session_id", id.as_str());
    let created = Created {
        id: id.clone(),
        workspace: auth.workspace().clone(),
        created_at: now,
        agent,
        environment_id: env.id.clone(),
        title: body.title,
        metadata: body.metadata.unwrap_or_default(),
        resources,
        vault_ids,
        budget: body.budget,
    };
    let command = Command::Create {
        created: Box::new(created),
        initial_events: body.initial_events.unwrap_or_default(),
    };
    let metadata = created_metadata(&command);
    // The workspace's turn is held until the session is durable (see `quotas`).
    let admitted = state.quotas.session(&state, auth.workspace()).await?;
    let committed = {
        let (state, id) = (state.clone(), id.clone());
        admitted
            .write(async move { session::create(&state, &id, command).await })
            .await?
    };
    // A session on a self-hosted environment gets its work item now (API §5.3): a worker
    // serves its tools from the start.
    if env.settings.config.kind() == "self_hosted" {
        work::ensure_for_session(&state.store, auth.workspace(), &env.id, &id, metadata, now)
            .await?;
    }
    state.runner.notifier.notify(&id);
    render(&committed.state)
}

fn created_metadata(command: &Command) -> std::collections::BTreeMap<String, String> {
    match command {
        Command::Create { created, .. } => created.metadata.clone(),
        _ => Default::default(),
    }
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
) -> Result<Json<Value>> {
    let loaded = session::load(&state, &auth, &id).await?;
    render(&loaded.state)
}

#[derive(Debug, Default, Deserialize)]
struct AgentPatch {
    #[serde(default)]
    tools: Patch<Value>,
    #[serde(default)]
    mcp_servers: Patch<Value>,
}

#[derive(Debug, Deserialize)]
struct UpdateBody {
    #[serde(flatten)]
    update: Update,
    #[serde(default)]
    agent: Option<AgentPatch>,
}

/// Applies `{tools?, mcp_servers?}` to the session's agent snapshot with the agent module's
/// update rules (full replacement, same validation as an agent update).
fn patch_agent(current: Option<&AgentSnapshot>, patch: AgentPatch) -> Result<AgentSnapshot> {
    let current =
        current.ok_or_else(|| Error::Internal("session without an agent snapshot".into()))?;
    let mut params = Map::new();
    for (key, value) in [("tools", patch.tools), ("mcp_servers", patch.mcp_servers)] {
        match value {
            Patch::Absent => {}
            Patch::Null => {
                params.insert(key.into(), Value::Null);
            }
            Patch::Value(v) => {
                params.insert(key.into(), v);
            }
        }
    }
    let next = current
        .config()
        .overridden(Value::Object(params), "agent")?;
    Ok(current.with_config(&next))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
    body::Json(body): body::Json<UpdateBody>,
) -> Result<Json<Value>> {
    let mut update = body.update;
    if let Some(patch) = body.agent {
        let loaded = session::load(&state, &auth, &id).await?;
        update.agent = Some(Box::new(patch_agent(loaded.state.agent.as_deref(), patch)?));
    }
    let committed =
        session::commit(&state, &auth, &id, move || Command::Update(update.clone())).await?;
    // A raised or removed budget resumes a session paused at its cap.
    if committed.state.needs_turn() {
        state.runner.notifier.notify(&id);
    }
    render(&committed.state)
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
) -> Result<Json<Value>> {
    let committed = session::commit(&state, &auth, &id, || Command::Archive).await?;
    stop_work(&state, &auth, &id, false).await;
    // The runner ends what it keeps for the session (an agent process waiting on a prompt).
    state.runner.notifier.notify(&id);
    render(&committed.state)
}

/// Stops the session's self-hosted work item, if it has a live one (API §5.3): gracefully on
/// archive, forced on delete. The session change is stored: a failure is only logged.
async fn stop_work(state: &AppState, auth: &Auth, id: &SessionId, force: bool) {
    let stopped =
        work::stop_for_session(&state.store, auth.workspace(), id, force, Timestamp::now()).await;
    if let Err(error) = stopped {
        tracing::warn!(session_id = %id, %error, "cannot stop the session's work item");
    }
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<SessionId>,
) -> Result<Json<Value>> {
    let committed = session::commit(&state, &auth, &id, || Command::Delete).await?;
    stop_work(&state, &auth, &id, true).await;
    session::remove(&state, &id).await?;
    // Its child threads' streams and what the runner made for them go with it.
    for child in &committed.state.children {
        let child = SessionId::of_thread(&child.id);
        if let Err(e) = session::remove(&state, &child).await {
            tracing::warn!(thread = %child, error = %e, "cannot delete a child thread's log");
        }
        if let Some(workspaces) = &state.runner.workspaces {
            if let Err(e) = workspaces.delete(child.as_str()).await {
                tracing::warn!(thread = %child, error = %e, "cannot delete a child thread's files");
            }
        }
        if let Some(door) = &state.runner.door {
            door.unregister(&child);
        }
    }
    // The runner ends what it keeps for the session (an agent process waiting on a prompt).
    state.runner.notifier.notify(&id);
    if let Some(workspaces) = &state.runner.workspaces {
        if let Err(e) = workspaces.delete(id.as_str()).await {
            tracing::warn!(session_id = %id, error = %e, "cannot delete the session's workspace");
        }
    }
    if let Some(door) = &state.runner.door {
        door.unregister(&id);
    }
    Ok(Json(json!({"id": id, "type": "session_deleted"})))
}

const STATUSES: [&str; 4] = ["rescheduling", "running", "idle", "terminated"];

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<BidiPage<Value>>> {
    let mut catalog = CatalogQuery::new(Kind::Session, auth.workspace().as_str());
    catalog.limit = query.limit(20, 100)?;
    catalog.order = pagination::order(&query, Order::Desc)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    catalog.created = query.time_range("created_at", &["gt", "gte", "lt", "lte"])?;
    catalog.agent_id = query.one("agent_id")?.map(str::to_owned);
    catalog.agent_version = query.uint("agent_version")?;
    if catalog.agent_version.is_some() && catalog.agent_id.is_none() {
        return Err(Error::invalid("agent_version: requires agent_id"));
    }
    for status in query.all("statuses") {
        if !STATUSES.contains(&status) {
            return Err(Error::invalid(format!(
                "statuses[]: {status:?} is not one of rescheduling, running, idle, terminated"
            )));
        }
        catalog.statuses.push(status.to_owned());
        if status == "idle" {
            // A session idle on its threads (its turn open) is idle to clients.
            catalog
                .statuses
                .push(managed_agents_core::session::IDLE_ON_THREADS.to_owned());
        }
    }
    // There are no deployments here: no session matches that filter.
    if query.one("deployment_id")?.is_some() {
        return Ok(Json(BidiPage {
            data: Vec::new(),
            next_page: None,
            prev_page: None,
        }));
    }
    let memory_store = query.one("memory_store_id")?.map(str::to_owned);
    let attached = |state: &SessionState| {
        memory_store.as_deref().is_none_or(|wanted| {
            state.resources.iter().any(|resource| {
                matches!(resource, Resource::MemoryStore { memory_store_id, .. } if memory_store_id == wanted)
            })
        })
    };
    // The catalog knows no resources, so the memory-store filter reads each listed session and
    // walks on through the catalog until a page has a match or the catalog ends (a page of
    // the SDK's paginator must not be empty unless it is the last).
    let mut cursor = query.one("page")?.map(str::to_owned);
    loop {
        let page =
            pagination::list_catalog(&state.store, catalog.clone(), cursor.as_deref()).await?;
        let mut data = Vec::with_capacity(page.entries.len());
        for entry in &page.entries {
            let id = SessionId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
            match session::load(&state, &auth, &id).await {
                Ok(loaded) if attached(&loaded.state) => data.push(render(&loaded.state)?.0),
                Ok(_) | Err(Error::NotFound(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        if !data.is_empty() || page.next.is_none() || memory_store.is_none() {
            return Ok(Json(BidiPage {
                data,
                next_page: page.next,
                prev_page: page.prev,
            }));
        }
        cursor = page.next;
    }
}
