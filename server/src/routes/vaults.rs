//! Vaults and credentials (API §11). Secret fields are write-only: core receives a sealing
//! function and stores only ciphertext ([`crate::sealer`]); responses come from core's
//! renderers, which never include secrets. Archiving a vault archives its credentials.
//! Credential commands get the vault as it is now, so a model API key entered (created or
//! rotated) is bound to the vault's current `llm_base_url` (see `core::vault::credential`).

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use managed_agents_core::ids::{CredentialId, VaultId};
use managed_agents_core::object::Deleted;
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store};
use managed_agents_core::time::Timestamp;
use managed_agents_core::vault::credential::{
    self, Credential, CredentialCreateParams, CredentialObject, CredentialUpdateParams,
};
use managed_agents_core::vault::{self, Vault, VaultCreateParams, VaultObject, VaultUpdateParams};

use crate::auth::Auth;
use crate::body;
use crate::error::{Error, Result};
use crate::extract::Id;
use crate::objects;
use crate::pagination::{self, Page};
use crate::query::Query;
use crate::state::AppState;

/// The vault routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/vaults", post(create).get(list))
        .route(
            "/v1/vaults/{vault_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/vaults/{vault_id}/archive", post(archive))
        .route(
            "/v1/vaults/{vault_id}/credentials",
            post(create_credential).get(list_credentials),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}",
            get(retrieve_credential)
                .post(update_credential)
                .delete(delete_credential),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}/archive",
            post(archive_credential),
        )
}

async fn load(state: &AppState, auth: &Auth, id: &VaultId) -> Result<Vault> {
    objects::load(state, auth, "vault", id.as_str()).await
}

async fn load_credential(
    state: &AppState,
    auth: &Auth,
    vault_id: &VaultId,
    id: &CredentialId,
) -> Result<Credential> {
    let found = objects::find::<Credential>(state, id.as_str()).await?;
    objects::owned(
        found,
        |c| &c.workspace == auth.workspace() && &c.vault_id == vault_id,
        "credential",
        id.as_str(),
    )
}

/// Writes to credential `id` of vault `vault_id` (404 when it belongs to another vault).
async fn write_credential(
    state: &AppState,
    auth: &Auth,
    vault_id: &VaultId,
    id: &CredentialId,
    mut decide: impl FnMut(&Credential) -> Result<Vec<credential::Record>>,
) -> Result<Credential> {
    objects::write(state, auth, "credential", id.as_str(), |c: &Credential| {
        if &c.vault_id != vault_id {
            return Err(Error::not_found("credential", id.as_str()));
        }
        decide(c)
    })
    .await
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(params): body::Json<VaultCreateParams>,
) -> Result<Json<VaultObject>> {
    let now = Timestamp::now();
    let id = VaultId::generate(now);
    let records = vault::create(params, id.clone(), auth.workspace().clone(), now)?;
    let vault: Vault = objects::create(&state, id.as_str(), records).await?;
    Ok(Json(vault.render()))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
) -> Result<Json<VaultObject>> {
    Ok(Json(load(&state, &auth, &id).await?.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
    body::Json(params): body::Json<VaultUpdateParams>,
) -> Result<Json<VaultObject>> {
    let now = Timestamp::now();
    let vault = objects::write(&state, &auth, "vault", id.as_str(), |vault| {
        Ok(vault::update(vault, params.clone(), now)?)
    })
    .await?;
    Ok(Json(vault.render()))
}

/// Every credential of a vault (archived included), oldest first.
async fn credentials_of(
    state: &AppState,
    auth: &Auth,
    vault_id: &VaultId,
) -> Result<Vec<CredentialId>> {
    let mut query = CatalogQuery::new(Kind::Credential, auth.workspace().as_str());
    query.parent = Some(vault_id.to_string());
    query.include_archived = true;
    query.order = Order::Asc;
    query.limit = 1000;
    let mut ids = Vec::new();
    loop {
        let page = state.store.list(&query).await?;
        for entry in &page.entries {
            ids.push(CredentialId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?);
        }
        match (page.has_more, page.entries.last()) {
            (true, Some(last)) => query.after = Some(last.id.clone()),
            _ => return Ok(ids),
        }
    }
}

async fn archive(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
) -> Result<Json<VaultObject>> {
    let vault = load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    if vault::archive(&vault, now)?.is_empty() {
        return Ok(Json(vault.render()));
    }
    for credential_id in credentials_of(&state, &auth, &id).await? {
        write_credential(&state, &auth, &id, &credential_id, |credential| {
            Ok(credential::archive(credential, now)?)
        })
        .await?;
    }
    let vault = objects::write(&state, &auth, "vault", id.as_str(), |vault| {
        Ok(vault::archive(vault, now)?)
    })
    .await?;
    Ok(Json(vault.render()))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
) -> Result<Json<Deleted>> {
    let vault = load(&state, &auth, &id).await?;
    for credential_id in credentials_of(&state, &auth, &id).await? {
        objects::delete(&state, Kind::Credential, credential_id.as_str()).await?;
    }
    objects::delete(&state, Kind::Vault, id.as_str()).await?;
    Ok(Json(vault::deleted(&vault.id)))
}

async fn list(
    State(state): State<AppState>,
    auth: Auth,
    query: Query,
) -> Result<Json<Page<VaultObject>>> {
    let mut catalog = CatalogQuery::new(Kind::Vault, auth.workspace().as_str());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = VaultId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        data.push(load(&state, &auth, &id).await?.render());
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}

async fn create_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    body::Json(params): body::Json<CredentialCreateParams>,
) -> Result<Json<CredentialObject>> {
    let vault = load(&state, &auth, &vault_id).await?;
    let now = Timestamp::now();
    let id = CredentialId::generate(now);
    let records = credential::create(&vault, params, id.clone(), now, |s| {
        state.sealer.seal_text(s)
    })?;
    let credential: Credential = objects::create(&state, id.as_str(), records).await?;
    Ok(Json(credential.render()))
}

async fn retrieve_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
) -> Result<Json<CredentialObject>> {
    load(&state, &auth, &vault_id).await?;
    Ok(Json(
        load_credential(&state, &auth, &vault_id, &id)
            .await?
            .render(),
    ))
}

async fn update_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
    body::Json(params): body::Json<CredentialUpdateParams>,
) -> Result<Json<CredentialObject>> {
    let vault = load(&state, &auth, &vault_id).await?;
    let now = Timestamp::now();
    let credential = write_credential(&state, &auth, &vault_id, &id, |credential| {
        Ok(credential::update(
            &vault,
            credential,
            params.clone(),
            now,
            |s| state.sealer.seal_text(s),
        )?)
    })
    .await?;
    Ok(Json(credential.render()))
}

async fn archive_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
) -> Result<Json<CredentialObject>> {
    load(&state, &auth, &vault_id).await?;
    let now = Timestamp::now();
    let credential = write_credential(&state, &auth, &vault_id, &id, |credential| {
        Ok(credential::archive(credential, now)?)
    })
    .await?;
    Ok(Json(credential.render()))
}

async fn delete_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
) -> Result<Json<Deleted>> {
    load(&state, &auth, &vault_id).await?;
    let credential = load_credential(&state, &auth, &vault_id, &id).await?;
    objects::delete(&state, Kind::Credential, id.as_str()).await?;
    Ok(Json(credential::deleted(&credential.id)))
}

async fn list_credentials(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    query: Query,
) -> Result<Json<Page<CredentialObject>>> {
    load(&state, &auth, &vault_id).await?;
    let mut catalog = CatalogQuery::new(Kind::Credential, auth.workspace().as_str());
    catalog.parent = Some(vault_id.to_string());
    catalog.limit = query.limit(20, 100)?;
    catalog.include_archived = query.flag("include_archived", false)?;
    let page = pagination::list_catalog(&state.store, catalog, query.one("page")?).await?;
    let mut data = Vec::with_capacity(page.entries.len());
    for entry in &page.entries {
        let id = CredentialId::parse(&entry.id).map_err(|e| Error::Internal(e.to_string()))?;
        data.push(
            load_credential(&state, &auth, &vault_id, &id)
                .await?
                .render(),
        );
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}
