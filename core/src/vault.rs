//! Vaults (API §11.1): named, workspace-scoped containers of credentials, event-sourced.
//!
//! A vault's stream holds `vault.created`, `vault.updated` (whole new settings) and
//! `vault.archived`. Credentials live in their own streams (see [`credential`]).
//!
//! An *LLM vault* is one whose metadata has [`ROLE_KEY`]` = llm`; its [`LLM_BASE_URL_KEY`]
//! names the model endpoint. A model API key stored in a vault is bound to the vault's
//! `llm_base_url` as it was when the key was entered (see [`credential::LlmBinding`]), so
//! re-pointing the vault never sends an existing key somewhere new.

pub mod credential;

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{VaultId, WorkspaceId};
use crate::object::{self, DecodeError, Error, Lifecycle, Lifecycled, Object, Step};
use crate::patch::Patch;
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Longest vault display name.
pub const MAX_DISPLAY_NAME: usize = 255;
/// Vault metadata naming the vault's role (`llm` for the vault holding the model API key).
pub const ROLE_KEY: &str = "sandbox0.managed_agents.role";
/// Vault metadata naming the engine of an LLM vault.
pub const ENGINE_KEY: &str = "sandbox0.managed_agents.engine";
/// Vault metadata naming the model endpoint of an LLM vault (the provider's API when absent).
pub const LLM_BASE_URL_KEY: &str = "sandbox0.managed_agents.llm_base_url";

/// Secret material as the server stored it: ciphertext produced by the server's sealing key.
/// `core` never sees the plaintext of a stored secret and never renders this.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecret(pub String);

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSecret(…)")
    }
}

/// A plaintext secret in a request body. It only passes through `core` on its way to the
/// caller's sealing function; its `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `POST /v1/vaults`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct VaultCreateParams {
    /// 1–255 characters.
    pub display_name: String,
    /// ≤16 pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/vaults/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct VaultUpdateParams {
    /// `null` keeps the name.
    #[serde(default)]
    pub display_name: Patch<String>,
    /// Patch: a string upserts, `null` deletes; a `null` map changes nothing.
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
}

/// The mutable part of a vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Display name.
    pub display_name: String,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
}

fn check(settings: &Settings) -> Result<(), FieldError> {
    validate::length("display_name", &settings.display_name, 1, MAX_DISPLAY_NAME)?;
    validate::metadata("metadata", &settings.metadata)
}

/// One record of a vault's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Created.
    #[serde(rename = "vault.created")]
    Created {
        /// Its id.
        id: VaultId,
        /// Its owner.
        workspace: WorkspaceId,
        /// Initial settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Updated: the whole new settings.
    #[serde(rename = "vault.updated")]
    Updated {
        /// New settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Archived (terminal).
    #[serde(rename = "vault.archived")]
    Archived {
        /// When.
        at: Timestamp,
    },
    /// Nothing changes; written by [`crate::claim`] to fence a stale claim's owner.
    #[serde(rename = "vault.fenced")]
    Fenced {
        /// When.
        at: Timestamp,
    },
}

impl Record {
    /// JSON bytes for the store.
    pub fn encode(&self) -> Bytes {
        object::encode(self)
    }

    /// Parses stored JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        object::decode(bytes)
    }
}

/// A vault folded from its records. The lifecycle fields (`settings`, `created_at`,
/// `updated_at`, `archived_at`, `stream_version`) are the shared [`Lifecycled`], reached
/// through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vault {
    /// Its id.
    pub id: VaultId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Current settings, times and stream version.
    pub lifecycle: Lifecycled<Settings>,
}

impl std::ops::Deref for Vault {
    type Target = Lifecycled<Settings>;

    fn deref(&self) -> &Lifecycled<Settings> {
        &self.lifecycle
    }
}

impl std::ops::DerefMut for Vault {
    fn deref_mut(&mut self) -> &mut Lifecycled<Settings> {
        &mut self.lifecycle
    }
}

/// Folds a vault's records; `None` until created.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<Vault> {
    object::fold(records)
}

impl Lifecycle for Vault {
    type Settings = Settings;
    type Record = Record;

    fn step(record: &Record) -> Step<Self, Settings> {
        match record {
            Record::Created {
                id,
                workspace,
                settings,
                at,
            } => Step::Created(Vault {
                id: id.clone(),
                workspace: workspace.clone(),
                lifecycle: Lifecycled::created(settings.clone(), *at),
            }),
            Record::Updated { settings, at } => Step::Updated(settings.clone(), *at),
            Record::Archived { at } => Step::Archived(*at),
            Record::Fenced { .. } => Step::Fenced,
        }
    }

    fn lifecycle(&mut self) -> &mut Lifecycled<Settings> {
        &mut self.lifecycle
    }
}

impl Object for Vault {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        object::apply_lifecycle(object, record);
    }

    fn catalog_entry(&self) -> CatalogEntry {
        Vault::catalog_entry(self)
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Decodes and folds a stored stream.
pub fn load(records: &[crate::storage::Record]) -> Result<Option<Vault>, DecodeError> {
    object::load(records)
}

/// `POST /v1/vaults`.
pub fn create(
    params: VaultCreateParams,
    id: VaultId,
    workspace: WorkspaceId,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let settings = Settings {
        display_name: params.display_name,
        metadata: params.metadata.unwrap_or_default(),
    };
    check(&settings)?;
    Ok(vec![Record::Created {
        id,
        workspace,
        settings,
        at: now,
    }])
}

/// The error for changing an archived vault or adding credentials to it.
pub(crate) fn archived(id: &VaultId) -> Error {
    Error::code(
        "vault_archived",
        format!("vault {id} is archived and cannot be changed"),
    )
}

/// `POST /v1/vaults/{id}`: no records when nothing changed.
pub fn update(
    vault: &Vault,
    params: VaultUpdateParams,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    if vault.archived_at.is_some() {
        return Err(archived(&vault.id));
    }
    let current = &vault.settings;
    let mut next = current.clone();
    if let Patch::Value(name) = params.display_name {
        next.display_name = name;
    }
    if let Patch::Value(patch) = &params.metadata {
        next.metadata = validate::patch_metadata("metadata", &current.metadata, patch, false)?;
    }
    check(&next)?;
    if &next == current {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Updated {
        settings: next,
        at: now,
    }])
}

/// `POST /v1/vaults/{id}/archive`; archiving again changes nothing. The server archives the
/// vault's credentials with it.
pub fn archive(vault: &Vault, now: Timestamp) -> Result<Vec<Record>, Error> {
    if vault.archived_at.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Archived { at: now }])
}

/// The vault object (`type: "vault"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "vault")]
pub struct VaultObject {
    /// `vlt_…`
    pub id: VaultId,
    /// Display name.
    pub display_name: String,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Archived.
    pub archived_at: Option<Timestamp>,
}

impl Vault {
    /// The model endpoint named by the metadata ([`LLM_BASE_URL_KEY`]); `None` when absent or
    /// empty (the provider's public API).
    pub fn llm_base_url(&self) -> Option<&str> {
        self.settings
            .metadata
            .get(LLM_BASE_URL_KEY)
            .map(String::as_str)
            .filter(|url| !url.is_empty())
    }

    /// The response object.
    pub fn render(&self) -> VaultObject {
        VaultObject {
            id: self.id.clone(),
            display_name: self.settings.display_name.clone(),
            metadata: self.settings.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        }
    }

    /// The catalog entry.
    pub fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::Vault,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.archived = self.is_archived();
        entry
    }
}

/// The body of `DELETE /v1/vaults/{id}`.
pub fn deleted(id: &VaultId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "vault_deleted")
}
