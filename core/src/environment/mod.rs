//! Environments (API §5.1–5.2): reusable sandbox templates, event-sourced.
//!
//! A stream holds `environment.created`, `environment.updated` (each carrying the whole new
//! state) and `environment.archived`. Updates deep-merge cloud configs; changing `config.type`
//! or updating an archived environment is refused with a stable `error_code`. Names are unique
//! per workspace through a name claim ([`name_claim`], [`crate::claim`]); a taken name is
//! [`duplicate_name`]. Environments created before claims existed hold no claim: their names
//! are found through the catalog entry, which carries the name.

mod names;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::claim;
use crate::ids::{EnvironmentId, WorkspaceId};
use crate::object::{self, DecodeError, Error, Lifecycle, Lifecycled, Object, Step};
use crate::patch::Patch;
use crate::storage::{CatalogEntry, Kind, StreamId};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Longest environment name (not documented; same as agents).
pub const MAX_NAME: usize = 256;
/// Longest description (not documented; same as agents).
pub const MAX_DESCRIPTION: usize = 2048;
/// Most entries in a package list or `allowed_hosts`.
pub const MAX_LIST: usize = 256;

/// Who can see the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every account of the organization (the default).
    Organization,
    /// The owning account only.
    Account,
}

// ---------------------------------------------------------------------------------------------
// Request forms

/// `config` in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConfigParams {
    /// A managed container.
    Cloud {
        /// Omitted on create: unrestricted; on update: kept.
        #[serde(default)]
        networking: Patch<NetworkingParams>,
        /// Omitted on create: none; on update: kept.
        #[serde(default)]
        packages: Patch<PackagesParams>,
    },
    /// Tools run on the customer's worker.
    SelfHosted {},
}

/// `networking` in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NetworkingParams {
    /// Any host.
    Unrestricted {},
    /// Only the listed hosts.
    Limited {
        /// Hosts the sandbox may reach.
        #[serde(default)]
        allowed_hosts: Patch<Vec<String>>,
        /// Also the agent's MCP servers (default false).
        #[serde(default)]
        allow_mcp_servers: Patch<bool>,
        /// Also the package registries (default false; required when packages are set).
        #[serde(default)]
        allow_package_managers: Patch<bool>,
    },
}

/// `packages` in a request: each list replaces, `null` empties, omitted keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PackagesParams {
    /// Must be `packages` when given.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// apt packages.
    #[serde(default)]
    pub apt: Patch<Vec<String>>,
    /// cargo crates.
    #[serde(default)]
    pub cargo: Patch<Vec<String>>,
    /// Ruby gems.
    #[serde(default)]
    pub gem: Patch<Vec<String>>,
    /// Go modules.
    #[serde(default)]
    pub go: Patch<Vec<String>>,
    /// npm packages.
    #[serde(default)]
    pub npm: Patch<Vec<String>>,
    /// pip packages.
    #[serde(default)]
    pub pip: Patch<Vec<String>>,
}

/// `POST /v1/environments`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EnvironmentCreateParams {
    /// Unique per workspace.
    pub name: String,
    /// Omitted or null: cloud, unrestricted, no packages.
    #[serde(default)]
    pub config: Option<ConfigParams>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// ≤16 pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Default `organization`.
    #[serde(default)]
    pub scope: Option<Scope>,
}

/// `POST /v1/environments/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EnvironmentUpdateParams {
    /// `null` keeps the name.
    #[serde(default)]
    pub name: Patch<String>,
    /// Deep-merged into the stored config; `null` keeps it.
    #[serde(default)]
    pub config: Patch<ConfigParams>,
    /// `null` clears; `""` is stored as `""`.
    #[serde(default)]
    pub description: Patch<String>,
    /// Patch: `null` or `""` deletes a key.
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
    /// `null` keeps the scope.
    #[serde(default)]
    pub scope: Patch<Scope>,
}

// ---------------------------------------------------------------------------------------------
// Resolved forms

/// A resolved environment config; every key is present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Config {
    /// A managed container.
    Cloud {
        /// Network policy.
        networking: Networking,
        /// Packages installed before the agent starts.
        packages: Packages,
    },
    /// Tools run on the customer's worker.
    SelfHosted,
}

impl Config {
    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Config::Cloud { .. } => "cloud",
            Config::SelfHosted => "self_hosted",
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::Cloud {
            networking: Networking::Unrestricted,
            packages: Packages::default(),
        }
    }
}

/// A resolved network policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Networking {
    /// Any host.
    Unrestricted,
    /// Only the listed hosts.
    Limited {
        /// Hosts the sandbox may reach.
        allowed_hosts: Vec<String>,
        /// Also the agent's MCP servers.
        allow_mcp_servers: bool,
        /// Also the package registries.
        allow_package_managers: bool,
    },
}

/// Resolved package lists (`type` is always `packages`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "packages")]
pub struct Packages {
    /// apt packages.
    pub apt: Vec<String>,
    /// cargo crates.
    pub cargo: Vec<String>,
    /// Ruby gems.
    pub gem: Vec<String>,
    /// Go modules.
    pub go: Vec<String>,
    /// npm packages.
    pub npm: Vec<String>,
    /// pip packages.
    pub pip: Vec<String>,
}

impl Packages {
    /// Whether no manager has any package.
    pub fn is_empty(&self) -> bool {
        self.lists().iter().all(|(_, list)| list.is_empty())
    }

    /// Every manager's list, in install order (alphabetical).
    pub fn lists(&self) -> [(&'static str, &Vec<String>); 6] {
        [
            ("apt", &self.apt),
            ("cargo", &self.cargo),
            ("gem", &self.gem),
            ("go", &self.go),
            ("npm", &self.npm),
            ("pip", &self.pip),
        ]
    }
}

/// The mutable part of an environment; records carry it whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Unique per workspace.
    pub name: String,
    /// `null` when unset.
    pub description: Option<String>,
    /// Resolved config.
    pub config: Config,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
    /// `organization` or `account`.
    pub scope: Option<Scope>,
}

// ---------------------------------------------------------------------------------------------
// Merging

fn merge_networking(stored: &Networking, params: Patch<NetworkingParams>) -> Networking {
    match params {
        Patch::Absent => stored.clone(),
        Patch::Null => Networking::Unrestricted,
        Patch::Value(NetworkingParams::Unrestricted {}) => Networking::Unrestricted,
        Patch::Value(NetworkingParams::Limited {
            allowed_hosts,
            allow_mcp_servers,
            allow_package_managers,
        }) => {
            let (hosts, mcp, managers) = match stored {
                Networking::Limited {
                    allowed_hosts,
                    allow_mcp_servers,
                    allow_package_managers,
                } => (
                    allowed_hosts.clone(),
                    *allow_mcp_servers,
                    *allow_package_managers,
                ),
                Networking::Unrestricted => (Vec::new(), false, false),
            };
            Networking::Limited {
                allowed_hosts: merge_field(hosts, allowed_hosts, Vec::new()),
                allow_mcp_servers: merge_field(mcp, allow_mcp_servers, false),
                allow_package_managers: merge_field(managers, allow_package_managers, false),
            }
        }
    }
}

fn merge_field<T>(stored: T, patch: Patch<T>, cleared: T) -> T {
    match patch {
        Patch::Absent => stored,
        Patch::Null => cleared,
        Patch::Value(value) => value,
    }
}

fn merge_packages(
    stored: &Packages,
    params: Patch<PackagesParams>,
) -> Result<Packages, FieldError> {
    let params = match params {
        Patch::Absent => return Ok(stored.clone()),
        Patch::Null => return Ok(Packages::default()),
        Patch::Value(params) => params,
    };
    if let Some(kind) = &params.kind {
        if kind != "packages" {
            return Err(FieldError::new(
                "config.packages.type",
                "must be \"packages\"",
            ));
        }
    }
    Ok(Packages {
        apt: merge_field(stored.apt.clone(), params.apt, Vec::new()),
        cargo: merge_field(stored.cargo.clone(), params.cargo, Vec::new()),
        gem: merge_field(stored.gem.clone(), params.gem, Vec::new()),
        go: merge_field(stored.go.clone(), params.go, Vec::new()),
        npm: merge_field(stored.npm.clone(), params.npm, Vec::new()),
        pip: merge_field(stored.pip.clone(), params.pip, Vec::new()),
    })
}

/// Merges request `params` into `stored` (on create, `stored` is the default cloud config).
/// Errors with `invalid_config_type_change` when the type differs.
pub fn merge_config(stored: &Config, params: ConfigParams) -> Result<Config, Error> {
    match (stored, params) {
        (Config::SelfHosted, ConfigParams::SelfHosted {}) => Ok(Config::SelfHosted),
        (
            Config::Cloud {
                networking,
                packages,
            },
            ConfigParams::Cloud {
                networking: net,
                packages: pkgs,
            },
        ) => Ok(Config::Cloud {
            networking: merge_networking(networking, net),
            packages: merge_packages(packages, pkgs)?,
        }),
        (stored, params) => {
            let wanted = match params {
                ConfigParams::Cloud { .. } => "cloud",
                ConfigParams::SelfHosted {} => "self_hosted",
            };
            Err(Error::code(
                "invalid_config_type_change",
                format!(
                    "config.type cannot change from {} to {wanted}",
                    stored.kind()
                ),
            ))
        }
    }
}

fn create_config(params: Option<ConfigParams>) -> Result<Config, Error> {
    match params {
        None => Ok(Config::default()),
        Some(ConfigParams::SelfHosted {}) => Ok(Config::SelfHosted),
        Some(cloud) => merge_config(&Config::default(), cloud),
    }
}

/// The rules on a resolved config: list sizes, host names, and that packages on a limited
/// network require `allow_package_managers`.
pub fn check_config(config: &Config) -> Result<(), FieldError> {
    let Config::Cloud {
        networking,
        packages,
    } = config
    else {
        return Ok(());
    };
    for (manager, list) in packages.lists() {
        let field = format!("config.packages.{manager}");
        validate::max_items(&field, list.len(), MAX_LIST)?;
        for (i, package) in list.iter().enumerate() {
            validate::length(&format!("{field}[{i}]"), package, 1, 256)?;
        }
    }
    if let Networking::Limited {
        allowed_hosts,
        allow_package_managers,
        ..
    } = networking
    {
        validate::max_items(
            "config.networking.allowed_hosts",
            allowed_hosts.len(),
            MAX_LIST,
        )?;
        for (i, host) in allowed_hosts.iter().enumerate() {
            validate::hostname(&format!("config.networking.allowed_hosts[{i}]"), host, true)?;
        }
        if !packages.is_empty() && !allow_package_managers {
            return Err(FieldError::new(
                "config.networking.allow_package_managers",
                "must be true when packages are set on a limited network",
            ));
        }
    }
    Ok(())
}

fn check(settings: &Settings) -> Result<(), FieldError> {
    validate::length("name", &settings.name, 1, MAX_NAME)?;
    if let Some(description) = &settings.description {
        validate::length("description", description, 0, MAX_DESCRIPTION)?;
    }
    validate::metadata("metadata", &settings.metadata)?;
    check_config(&settings.config)
}

// ---------------------------------------------------------------------------------------------
// Records, fold, commands

/// One record of an environment's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Created.
    #[serde(rename = "environment.created")]
    Created {
        /// Its id.
        id: EnvironmentId,
        /// Its owner.
        workspace: WorkspaceId,
        /// Initial settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Updated: the whole new settings.
    #[serde(rename = "environment.updated")]
    Updated {
        /// New settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Archived (terminal).
    #[serde(rename = "environment.archived")]
    Archived {
        /// When.
        at: Timestamp,
    },
    /// Nothing changes; written by [`crate::claim`] to fence a stale claim's owner.
    #[serde(rename = "environment.fenced")]
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

/// An environment folded from its records. The lifecycle fields (`settings`, `created_at`,
/// `updated_at`, `archived_at`, `stream_version`) are the shared [`Lifecycled`], reached
/// through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Environment {
    /// Its id.
    pub id: EnvironmentId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Current settings, times and stream version.
    pub lifecycle: Lifecycled<Settings>,
}

impl std::ops::Deref for Environment {
    type Target = Lifecycled<Settings>;

    fn deref(&self) -> &Lifecycled<Settings> {
        &self.lifecycle
    }
}

impl std::ops::DerefMut for Environment {
    fn deref_mut(&mut self) -> &mut Lifecycled<Settings> {
        &mut self.lifecycle
    }
}

/// Folds an environment's records; `None` until created.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<Environment> {
    object::fold(records)
}

impl Lifecycle for Environment {
    type Settings = Settings;
    type Record = Record;

    fn step(record: &Record) -> Step<Self, Settings> {
        match record {
            Record::Created {
                id,
                workspace,
                settings,
                at,
            } => Step::Created(Environment {
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

impl Object for Environment {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        object::apply_lifecycle(object, record);
    }

    fn catalog_entry(&self) -> CatalogEntry {
        Environment::catalog_entry(self)
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Decodes and folds a stored stream.
pub fn load(records: &[crate::storage::Record]) -> Result<Option<Environment>, DecodeError> {
    object::load(records)
}

impl claim::Owner for Option<Environment> {
    fn holds(&self, name: &str) -> bool {
        self.as_ref().is_some_and(|env| env.settings.name == name)
    }

    fn fence(at: Timestamp) -> Record {
        Record::Fenced { at }
    }
}

pub use names::{claim_name, create_named, delete_named, release_name, update_named, WriteError};

/// The claim stream of environment name `name` in `workspace` (see [`crate::claim`]).
pub fn name_claim(workspace: &WorkspaceId, name: &str) -> StreamId {
    claim::stream_id("environment_name", workspace.as_str(), name)
}

/// The 409 for a name already used by another environment of the workspace.
pub fn duplicate_name(name: &str) -> Error {
    Error::Conflict(format!("an environment named {name:?} already exists"))
}

/// `POST /v1/environments`.
pub fn create(
    params: EnvironmentCreateParams,
    id: EnvironmentId,
    workspace: WorkspaceId,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let settings = Settings {
        name: params.name,
        description: params.description,
        config: create_config(params.config)?,
        metadata: params.metadata.unwrap_or_default(),
        scope: Some(params.scope.unwrap_or(Scope::Organization)),
    };
    check(&settings)?;
    Ok(vec![Record::Created {
        id,
        workspace,
        settings,
        at: now,
    }])
}

/// `POST /v1/environments/{id}`: no records when nothing changed.
pub fn update(
    env: &Environment,
    params: EnvironmentUpdateParams,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    if env.archived_at.is_some() {
        return Err(Error::code(
            "environment_archived",
            format!("environment {} is archived and cannot be updated", env.id),
        ));
    }
    let current = &env.settings;
    let mut next = current.clone();
    if let Patch::Value(name) = params.name {
        next.name = name;
    }
    if let Patch::Value(config) = params.config {
        next.config = merge_config(&current.config, config)?;
    }
    if let Some(description) = params.description.into_option() {
        next.description = description;
    }
    if let Patch::Value(patch) = &params.metadata {
        next.metadata = validate::patch_metadata("metadata", &current.metadata, patch, true)?;
    }
    if let Patch::Value(scope) = params.scope {
        next.scope = Some(scope);
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

/// `POST /v1/environments/{id}/archive`; archiving again changes nothing.
pub fn archive(env: &Environment, now: Timestamp) -> Result<Vec<Record>, Error> {
    if env.archived_at.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Archived { at: now }])
}

/// The environment object (`type: "environment"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "environment")]
pub struct EnvironmentObject {
    /// `env_…`
    pub id: EnvironmentId,
    /// Name.
    pub name: String,
    /// `null` when unset.
    pub description: Option<String>,
    /// Resolved config.
    pub config: Config,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
    /// Scope.
    pub scope: Option<Scope>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Archived.
    pub archived_at: Option<Timestamp>,
}

impl Environment {
    /// The response object.
    pub fn render(&self) -> EnvironmentObject {
        EnvironmentObject {
            id: self.id.clone(),
            name: self.settings.name.clone(),
            description: self.settings.description.clone(),
            config: self.settings.config.clone(),
            metadata: self.settings.metadata.clone(),
            scope: self.settings.scope,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        }
    }

    /// The catalog entry (with the name, for the uniqueness check).
    pub fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::Environment,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.archived = self.is_archived();
        entry.name = Some(self.settings.name.clone());
        entry
    }
}

/// The body of `DELETE /v1/environments/{id}`.
pub fn deleted(id: &EnvironmentId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "environment_deleted")
}
