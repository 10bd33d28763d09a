//! Environments (API §5): create (defaults filled in by core), retrieve, update (deep merge),
//! list, archive and delete. Names are unique per workspace through name claims in the store
//! (`core::claim`; 409, deterministic): create claims then writes, a rename claims the new
//! name, writes, then releases the old one, delete releases after deleting; archived
//! environments keep their names.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::claim;
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
        .route("/environments", post(create).get(list))
        .route(
            "/environments/{environment_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/environments/{environment_id}/archive", post(archive))
}

/// Loads environment `id` of the caller's workspace (404 otherwise).
pub async fn load(state: &AppState, auth: &Auth, id: &EnvironmentId) -> Result<Environment> {
    objects::load(state, auth, "environment", id.as_str()).await
}

/// Claims `name` for environment `id` (409 when another environment holds it).
async fn claim_name(state: &AppState, auth: &Auth, name: &str, id: &EnvironmentId) -> Result<()> {
    environment::claim_name(&state.store, auth.workspace(), name, id, Timestamp::now())
        .await
        .map_err(|e| match e {
            claim::Error::Taken(_) => environment::duplicate_name(name).into(),
            other => Error::Internal(other.to_string()),
        })
}

/// Gives `name` up if environment `id` holds it; a failure only delays reuse of the name (the
/// claim goes stale), so it is logged, not returned.
async fn release_name(state: &AppState, auth: &Auth, name: &str, id: &EnvironmentId) {
    let released =
        environment::release_name(&state.store, auth.workspace(), name, id, Timestamp::now()).await;
    if let Err(e) = released {
        tracing::warn!(environment_id = %id, error = %e, "cannot release the environment name");
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
    let name = match records.first() {
        Some(environment::Record::Created { settings, .. }) => settings.name.clone(),
        _ => {
            return Err(Error::Internal(
                "environment create wrote no creation".into(),
            ))
        }
    };
    // Claim, then create: a crash in between leaves a claim that goes stale (core::claim).
    claim_name(&state, &auth, &name, &id).await?;
    match objects::create::<Environment>(&state, id.as_str(), records).await {
        Ok(env) => Ok(Json(env.render())),
        Err(e) => {
            release_name(&state, &auth, &name, &id).await;
            Err(e)
        }
    }
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
    let now = Timestamp::now();
    let env = load(&state, &auth, &id).await?;
    // The name this update leads to, claimed before the environment carries it.
    let renamed = environment::update(&env, params.clone(), now)?
        .into_iter()
        .find_map(|record| match record {
            environment::Record::Updated { settings, .. } if settings.name != env.settings.name => {
                Some(settings.name)
            }
            _ => None,
        });
    if let Some(name) = &renamed {
        claim_name(&state, &auth, name, &id).await?;
    }
    let written = objects::write(
        &state,
        &auth,
        "environment",
        id.as_str(),
        |current: &Environment| {
            if renamed.is_some() && current.fences != env.fences {
                // A claimant found our claim stale and fenced us: the name is no longer ours.
                return Err(
                    environment::duplicate_name(renamed.as_deref().unwrap_or_default()).into(),
                );
            }
            let records = environment::update(current, params.clone(), now)?;
            let name = records.iter().rev().find_map(|record| match record {
                environment::Record::Updated { settings, .. } => Some(&settings.name),
                _ => None,
            });
            match name {
                // Renamed meanwhile: the claimed name is not the one this write would set.
                Some(name) if name != &current.settings.name && Some(name) != renamed.as_ref() => {
                    Err(Error::Conflict {
                        message: "the environment was changed concurrently; retry the request"
                            .to_owned(),
                        retryable: true,
                    })
                }
                _ => Ok(records),
            }
        },
    )
    .await;
    match (written, renamed) {
        (Ok(after), Some(name)) => {
            if after.settings.name == name {
                release_name(&state, &auth, &env.settings.name, &id).await;
            }
            Ok(Json(after.render()))
        }
        (Ok(after), None) => Ok(Json(after.render())),
        (Err(e), Some(name)) => {
            release_name(&state, &auth, &name, &id).await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
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
    let env = load(&state, &auth, &id).await?;
    objects::delete(&state, Kind::Environment, id.as_str()).await?;
    // Delete, then release: a crash in between leaves a claim that goes stale (core::claim).
    release_name(&state, &auth, &env.settings.name, &id).await;
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
