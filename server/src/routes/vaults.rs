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
use managed_agents_core::storage::{CatalogQuery, Kind, Order, Store, StreamId};
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
        .route("/vaults", post(create).get(list))
        .route(
            "/vaults/{vault_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/vaults/{vault_id}/archive", post(archive))
        .route(
            "/vaults/{vault_id}/credentials",
            post(create_credential).get(list_credentials),
        )
        .route(
            "/vaults/{vault_id}/credentials/{credential_id}",
            get(retrieve_credential)
                .post(update_credential)
                .delete(delete_credential),
        )
        .route(
            "/vaults/{vault_id}/credentials/{credential_id}/archive",
            post(archive_credential),
        )
}

async fn load(state: &AppState, auth: &Auth, id: &VaultId) -> Result<(Vault, Vec<vault::Record>)> {
    let records = objects::records(state, id.as_str())
        .await?
        .iter()
        .map(|r| vault::Record::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()?;
    let found = vault::fold(records.clone());
    let vault = objects::owned(
        found,
        |v| &v.workspace == auth.workspace(),
        "vault",
        id.as_str(),
    )?;
    Ok((vault, records))
}

async fn save(
    state: &AppState,
    id: &str,
    mut records: Vec<vault::Record>,
    new: Vec<vault::Record>,
) -> Result<Vault> {
    let expected = records.len() as u64;
    let events = new.iter().map(vault::Record::encode).collect();
    records.extend(new);
    let vault = vault::fold(records).ok_or_else(|| Error::Internal("vault fold empty".into()))?;
    objects::append(state, id, expected, events, Some(vault.catalog_entry())).await?;
    Ok(vault)
}

async fn load_credential(
    state: &AppState,
    auth: &Auth,
    vault_id: &VaultId,
    id: &CredentialId,
) -> Result<(Credential, Vec<credential::Record>)> {
    let records = objects::records(state, id.as_str())
        .await?
        .iter()
        .map(|r| credential::Record::decode(&r.payload))
        .collect::<Result<Vec<_>, _>>()?;
    let found = credential::fold(records.clone());
    let credential = objects::owned(
        found,
        |c| &c.workspace == auth.workspace() && &c.vault_id == vault_id,
        "credential",
        id.as_str(),
    )?;
    Ok((credential, records))
}

async fn save_credential(
    state: &AppState,
    id: &str,
    mut records: Vec<credential::Record>,
    new: Vec<credential::Record>,
) -> Result<Credential> {
    let expected = records.len() as u64;
    let events = new.iter().map(credential::Record::encode).collect();
    records.extend(new);
    let credential =
        credential::fold(records).ok_or_else(|| Error::Internal("credential fold empty".into()))?;
    objects::append(
        state,
        id,
        expected,
        events,
        Some(credential.catalog_entry()),
    )
    .await?;
    Ok(credential)
}

async fn create(
    State(state): State<AppState>,
    auth: Auth,
    body::Json(params): body::Json<VaultCreateParams>,
) -> Result<Json<VaultObject>> {
    let now = Timestamp::now();
    let id = VaultId::generate(now);
    let records = vault::create(params, id.clone(), auth.workspace().clone(), now)?;
    Ok(Json(
        save(&state, id.as_str(), Vec::new(), records)
            .await?
            .render(),
    ))
}

async fn retrieve(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
) -> Result<Json<VaultObject>> {
    Ok(Json(load(&state, &auth, &id).await?.0.render()))
}

async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
    body::Json(params): body::Json<VaultUpdateParams>,
) -> Result<Json<VaultObject>> {
    let (vault, records) = load(&state, &auth, &id).await?;
    let new = vault::update(&vault, params, Timestamp::now())?;
    if new.is_empty() {
        return Ok(Json(vault.render()));
    }
    Ok(Json(
        save(&state, id.as_str(), records, new).await?.render(),
    ))
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
    let (vault, records) = load(&state, &auth, &id).await?;
    let now = Timestamp::now();
    let new = vault::archive(&vault, now)?;
    if new.is_empty() {
        return Ok(Json(vault.render()));
    }
    for credential_id in credentials_of(&state, &auth, &id).await? {
        let (credential, records) = load_credential(&state, &auth, &id, &credential_id).await?;
        let new = credential::archive(&credential, now)?;
        if !new.is_empty() {
            save_credential(&state, credential_id.as_str(), records, new).await?;
        }
    }
    Ok(Json(
        save(&state, id.as_str(), records, new).await?.render(),
    ))
}

async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Id(id): Id<VaultId>,
) -> Result<Json<Deleted>> {
    let (vault, _) = load(&state, &auth, &id).await?;
    for credential_id in credentials_of(&state, &auth, &id).await? {
        state
            .store
            .delete(Kind::Credential, &StreamId::new(credential_id.as_str()))
            .await?;
    }
    state
        .store
        .delete(Kind::Vault, &StreamId::new(id.as_str()))
        .await?;
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
        data.push(load(&state, &auth, &id).await?.0.render());
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
    let (vault, _) = load(&state, &auth, &vault_id).await?;
    let now = Timestamp::now();
    let id = CredentialId::generate(now);
    let records = credential::create(&vault, params, id.clone(), now, |s| {
        state.sealer.seal_text(s)
    })?;
    Ok(Json(
        save_credential(&state, id.as_str(), Vec::new(), records)
            .await?
            .render(),
    ))
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
            .0
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
    let (vault, _) = load(&state, &auth, &vault_id).await?;
    let (credential, records) = load_credential(&state, &auth, &vault_id, &id).await?;
    let new = credential::update(&vault, &credential, params, Timestamp::now(), |s| {
        state.sealer.seal_text(s)
    })?;
    if new.is_empty() {
        return Ok(Json(credential.render()));
    }
    Ok(Json(
        save_credential(&state, id.as_str(), records, new)
            .await?
            .render(),
    ))
}

async fn archive_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
) -> Result<Json<CredentialObject>> {
    load(&state, &auth, &vault_id).await?;
    let (credential, records) = load_credential(&state, &auth, &vault_id, &id).await?;
    let new = credential::archive(&credential, Timestamp::now())?;
    if new.is_empty() {
        return Ok(Json(credential.render()));
    }
    Ok(Json(
        save_credential(&state, id.as_str(), records, new)
            .await?
            .render(),
    ))
}

async fn delete_credential(
    State(state): State<AppState>,
    auth: Auth,
    Id(vault_id): Id<VaultId>,
    Id(id): Id<CredentialId>,
) -> Result<Json<Deleted>> {
    load(&state, &auth, &vault_id).await?;
    let (credential, _) = load_credential(&state, &auth, &vault_id, &id).await?;
    state
        .store
        .delete(Kind::Credential, &StreamId::new(id.as_str()))
        .await?;
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
                .0
                .render(),
        );
    }
    Ok(Json(Page {
        data,
        next_page: page.next,
    }))
}
