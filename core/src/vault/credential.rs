//! Vault credentials (API §11.2): `static_bearer`, `mcp_oauth` and `environment_variable`,
//! event-sourced.
//!
//! Secret fields are write-only. Requests carry them as [`Secret`]; commands hand each one to
//! the caller's `seal` function and records keep only the returned [`SealedSecret`], so no
//! plaintext ever reaches a stream. Rendering never includes secret fields.
//!
//! Every secret is bound to its destination, so that changing where a credential points can
//! never read a secret back:
//! - a credential with an `mcp_server_url` is only for that MCP server, and the URL is
//!   immutable (an update naming another URL is a 400 on `auth.mcp_server_url`);
//! - a `static_bearer` credential without one is a model API key: its record keeps, next to
//!   the sealed token, the vault's `llm_base_url` at the moment the token was entered
//!   ([`LlmBinding`]). The harness sends the key only while the vault still names that
//!   endpoint; pointing the vault elsewhere requires entering the token again.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{SealedSecret, Secret, Vault};
use crate::ids::{CredentialId, VaultId, WorkspaceId};
use crate::object::{self, DecodeError, Error, Lifecycle, Lifecycled, Object, Step};
use crate::patch::Patch;
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};

/// Longest credential display name.
pub const MAX_DISPLAY_NAME: usize = 255;
/// Most `allowed_hosts` of an environment-variable credential.
pub const MAX_ALLOWED_HOSTS: usize = 16;

/// Where an environment-variable credential may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Networking {
    /// Any host.
    Unrestricted,
    /// Only these hosts (host name, IPv4 or `*.domain`; ≤16).
    Limited {
        /// Allowed hosts.
        allowed_hosts: Vec<String>,
    },
}

/// Where the egress proxy may substitute the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectionLocation {
    /// In request headers (default true).
    pub header: bool,
    /// In request bodies (default false).
    pub body: bool,
}

impl Default for InjectionLocation {
    fn default() -> Self {
        Self {
            header: true,
            body: false,
        }
    }
}

/// `injection_location` in a request; omitted keys keep the stored (or default) value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct InjectionLocationParams {
    /// In headers.
    #[serde(default)]
    pub header: Option<bool>,
    /// In bodies.
    #[serde(default)]
    pub body: Option<bool>,
}

impl InjectionLocationParams {
    fn apply(self, stored: InjectionLocation) -> InjectionLocation {
        InjectionLocation {
            header: self.header.unwrap_or(stored.header),
            body: self.body.unwrap_or(stored.body),
        }
    }
}

/// Where a model API key may be sent: the vault's `llm_base_url` when the key was entered
/// (`None`: the vault named none, i.e. the provider's public API). Recorded with the sealed token
/// of a `static_bearer` credential without `mcp_server_url` at create and at every token
/// rotation; never rendered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmBinding {
    /// The vault's `llm_base_url` when the token was entered.
    pub llm_base_url: Option<String>,
}

impl LlmBinding {
    /// The binding of a key entered into `vault` now.
    pub fn of(vault: &Vault) -> Self {
        Self {
            llm_base_url: vault.llm_base_url().map(str::to_owned),
        }
    }

    /// Whether a key bound here may be sent to the endpoint `vault` names now (trailing slashes
    /// aside, the same URL, or both none).
    pub fn allows(&self, vault: &Vault) -> bool {
        let normal = |url: Option<&str>| url.map(|u| u.trim_end_matches('/').to_owned());
        normal(self.llm_base_url.as_deref()) == normal(vault.llm_base_url())
    }
}

// ---------------------------------------------------------------------------------------------
// Create requests

/// `token_endpoint_auth` on create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenEndpointAuthParams {
    /// Public client.
    #[serde(rename = "none")]
    Public,
    /// HTTP basic with a client secret.
    ClientSecretBasic {
        /// Write-only.
        client_secret: Secret,
    },
    /// Client secret in the form body.
    ClientSecretPost {
        /// Write-only.
        client_secret: Secret,
    },
}

/// `refresh` of an `mcp_oauth` credential on create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefreshParams {
    /// The token endpoint URL.
    pub token_endpoint: String,
    /// Immutable afterwards.
    pub client_id: String,
    /// Write-only.
    pub refresh_token: Secret,
    /// How to authenticate at the token endpoint.
    pub token_endpoint_auth: TokenEndpointAuthParams,
    /// OAuth scope.
    #[serde(default)]
    pub scope: Option<String>,
    /// RFC 8707 resource.
    #[serde(default)]
    pub resource: Option<String>,
}

/// `auth` on create.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthParams {
    /// A bearer token for an MCP server.
    StaticBearer {
        /// The MCP server it authenticates to; absent for a bearer token that is not tied to
        /// an MCP server (an LLM vault's model API key).
        #[serde(default)]
        mcp_server_url: Option<String>,
        /// Write-only.
        token: Secret,
    },
    /// OAuth tokens for an MCP server.
    McpOauth {
        /// The MCP server it authenticates to.
        mcp_server_url: String,
        /// Write-only.
        access_token: Secret,
        /// A future RFC 3339 time.
        #[serde(default)]
        expires_at: Option<String>,
        /// How to refresh.
        #[serde(default)]
        refresh: Option<RefreshParams>,
    },
    /// A secret the egress proxy injects in place of a placeholder environment variable.
    EnvironmentVariable {
        /// The variable name (immutable afterwards).
        secret_name: String,
        /// Write-only.
        secret_value: Secret,
        /// Where it may be sent.
        networking: Networking,
        /// Where it may be injected.
        #[serde(default)]
        injection_location: Option<InjectionLocationParams>,
    },
}

/// `POST /v1/vaults/{vault_id}/credentials`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CredentialCreateParams {
    /// The credential.
    pub auth: AuthParams,
    /// ≤255 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// ≤16 pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------------
// Update requests

/// `token_endpoint_auth` on update.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenEndpointAuthUpdateParams {
    /// HTTP basic; an omitted secret keeps the stored one.
    ClientSecretBasic {
        /// Write-only.
        #[serde(default)]
        client_secret: Option<Secret>,
    },
    /// Form body; an omitted secret keeps the stored one.
    ClientSecretPost {
        /// Write-only.
        #[serde(default)]
        client_secret: Option<Secret>,
    },
}

/// `refresh` of an `mcp_oauth` credential on update.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RefreshUpdateParams {
    /// Replaces the refresh token.
    #[serde(default)]
    pub refresh_token: Option<Secret>,
    /// `""` or `null` clears.
    #[serde(default)]
    pub scope: Patch<String>,
    /// Replaces the endpoint auth.
    #[serde(default)]
    pub token_endpoint_auth: Option<TokenEndpointAuthUpdateParams>,
    /// Immutable: accepted only when equal to the stored value.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// `auth` on update; `type` must equal the stored type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthUpdateParams {
    /// Rotate the token.
    StaticBearer {
        /// New token; omitted or null keeps it.
        #[serde(default)]
        token: Option<Secret>,
        /// Immutable: accepted only when equal to the stored value.
        #[serde(default)]
        mcp_server_url: Option<String>,
    },
    /// Rotate OAuth tokens.
    McpOauth {
        /// New access token.
        #[serde(default)]
        access_token: Option<Secret>,
        /// Immutable: accepted only when equal to the stored value.
        #[serde(default)]
        mcp_server_url: Option<String>,
        /// `null` clears.
        #[serde(default)]
        expires_at: Patch<String>,
        /// `null` removes the refresh configuration.
        #[serde(default)]
        refresh: Patch<RefreshUpdateParams>,
    },
    /// Rotate the value or change where it may go.
    EnvironmentVariable {
        /// New value.
        #[serde(default)]
        secret_value: Option<Secret>,
        /// Replaces the policy; null keeps it.
        #[serde(default)]
        networking: Option<Networking>,
        /// Merged key by key.
        #[serde(default)]
        injection_location: Option<InjectionLocationParams>,
        /// Immutable: accepted only when equal to the stored value.
        #[serde(default)]
        secret_name: Option<String>,
    },
}

/// `POST /v1/vaults/{vault_id}/credentials/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CredentialUpdateParams {
    /// Rotation; `type` must match.
    #[serde(default)]
    pub auth: Option<AuthUpdateParams>,
    /// `null` clears.
    #[serde(default)]
    pub display_name: Patch<String>,
    /// Patch: a string upserts, `null` deletes.
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
}

// ---------------------------------------------------------------------------------------------
// Stored forms (secrets sealed)

/// Stored token endpoint auth.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenEndpointAuth {
    /// Public client.
    #[serde(rename = "none")]
    Public,
    /// HTTP basic.
    ClientSecretBasic {
        /// Sealed.
        client_secret: SealedSecret,
    },
    /// Form body.
    ClientSecretPost {
        /// Sealed.
        client_secret: SealedSecret,
    },
}

/// Stored refresh configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    /// Token endpoint URL.
    pub token_endpoint: String,
    /// Client id.
    pub client_id: String,
    /// Sealed.
    pub refresh_token: SealedSecret,
    /// Endpoint auth.
    pub token_endpoint_auth: TokenEndpointAuth,
    /// Scope.
    pub scope: Option<String>,
    /// Resource.
    pub resource: Option<String>,
}

/// Stored auth, secrets sealed. The harness and egress proxy read it and unseal as needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Auth {
    /// Bearer token.
    StaticBearer {
        /// MCP server URL, if the token is tied to one.
        #[serde(default)]
        mcp_server_url: Option<String>,
        /// Sealed.
        token: SealedSecret,
        /// Without `mcp_server_url` (a model API key): the endpoint the token was entered for.
        /// Absent in records written before bindings existed, which no endpoint accepts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        llm_binding: Option<LlmBinding>,
    },
    /// OAuth.
    McpOauth {
        /// MCP server URL.
        mcp_server_url: String,
        /// Sealed.
        access_token: SealedSecret,
        /// Expiry.
        expires_at: Option<Timestamp>,
        /// Refresh configuration.
        refresh: Option<Refresh>,
    },
    /// Environment variable.
    EnvironmentVariable {
        /// Variable name.
        secret_name: String,
        /// Sealed.
        secret_value: SealedSecret,
        /// Where it may go.
        networking: Networking,
        /// Where it may be injected.
        injection_location: InjectionLocation,
    },
}

impl Auth {
    /// The wire `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Auth::StaticBearer { .. } => "static_bearer",
            Auth::McpOauth { .. } => "mcp_oauth",
            Auth::EnvironmentVariable { .. } => "environment_variable",
        }
    }

    /// The MCP server this credential authenticates to, for matching agent `mcp_servers`.
    pub fn mcp_server_url(&self) -> Option<&str> {
        match self {
            Auth::StaticBearer { mcp_server_url, .. } => mcp_server_url.as_deref(),
            Auth::McpOauth { mcp_server_url, .. } => Some(mcp_server_url),
            Auth::EnvironmentVariable { .. } => None,
        }
    }

    /// The sealed model API key and its binding (`None` for a record older than bindings), when
    /// this is a model API key: a `static_bearer` credential without `mcp_server_url`. Every
    /// other credential, an MCP credential above all, is never a model API key.
    pub fn model_key(&self) -> Option<(&SealedSecret, Option<&LlmBinding>)> {
        match self {
            Auth::StaticBearer {
                mcp_server_url: None,
                token,
                llm_binding,
            } => Some((token, llm_binding.as_ref())),
            _ => None,
        }
    }
}

/// The mutable part of a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Display name.
    pub display_name: Option<String>,
    /// The credential (sealed).
    pub auth: Auth,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Resolution

fn secret(
    field: &str,
    value: Secret,
    seal: &mut impl FnMut(&str) -> SealedSecret,
) -> Result<SealedSecret, FieldError> {
    if value.0.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(seal(&value.0))
}

fn expires_at(field: &str, text: &str, now: Timestamp) -> Result<Timestamp, FieldError> {
    let at = Timestamp::parse(text)
        .map_err(|_| FieldError::new(field, "must be an RFC 3339 timestamp"))?;
    if at <= now {
        return Err(FieldError::new(field, "must be in the future"));
    }
    Ok(at)
}

fn check_networking(field: &str, networking: &Networking) -> Result<(), FieldError> {
    if let Networking::Limited { allowed_hosts } = networking {
        let field = format!("{field}.allowed_hosts");
        validate::max_items(&field, allowed_hosts.len(), MAX_ALLOWED_HOSTS)?;
        for (i, host) in allowed_hosts.iter().enumerate() {
            validate::hostname(&format!("{field}[{i}]"), host, true)?;
        }
    }
    Ok(())
}

fn check_secret_name(name: &str) -> Result<(), FieldError> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || name.len() > 256 || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(FieldError::new(
            "auth.secret_name",
            "must be an environment variable name: [A-Za-z_][A-Za-z0-9_]*, at most 256 characters",
        ));
    }
    Ok(())
}

fn resolve_auth(
    vault: &Vault,
    params: AuthParams,
    now: Timestamp,
    seal: &mut impl FnMut(&str) -> SealedSecret,
) -> Result<Auth, FieldError> {
    Ok(match params {
        AuthParams::StaticBearer {
            mcp_server_url,
            token,
        } => {
            if let Some(url) = &mcp_server_url {
                validate::http_url("auth.mcp_server_url", url)?;
            }
            let llm_binding = mcp_server_url.is_none().then(|| LlmBinding::of(vault));
            Auth::StaticBearer {
                mcp_server_url,
                token: secret("auth.token", token, seal)?,
                llm_binding,
            }
        }
        AuthParams::McpOauth {
            mcp_server_url,
            access_token,
            expires_at: expiry,
            refresh,
        } => {
            validate::http_url("auth.mcp_server_url", &mcp_server_url)?;
            let expires_at = match expiry {
                Some(text) => Some(expires_at("auth.expires_at", &text, now)?),
                None => None,
            };
            let refresh = match refresh {
                Some(refresh) => Some(resolve_refresh(refresh, seal)?),
                None => None,
            };
            Auth::McpOauth {
                mcp_server_url,
                access_token: secret("auth.access_token", access_token, seal)?,
                expires_at,
                refresh,
            }
        }
        AuthParams::EnvironmentVariable {
            secret_name,
            secret_value,
            networking,
            injection_location,
        } => {
            check_secret_name(&secret_name)?;
            check_networking("auth.networking", &networking)?;
            Auth::EnvironmentVariable {
                secret_name,
                secret_value: secret("auth.secret_value", secret_value, seal)?,
                networking,
                injection_location: injection_location
                    .unwrap_or_default()
                    .apply(InjectionLocation::default()),
            }
        }
    })
}

fn resolve_refresh(
    refresh: RefreshParams,
    seal: &mut impl FnMut(&str) -> SealedSecret,
) -> Result<Refresh, FieldError> {
    validate::http_url("auth.refresh.token_endpoint", &refresh.token_endpoint)?;
    validate::length("auth.refresh.client_id", &refresh.client_id, 1, 1024)?;
    let field = "auth.refresh.token_endpoint_auth.client_secret";
    let token_endpoint_auth = match refresh.token_endpoint_auth {
        TokenEndpointAuthParams::Public => TokenEndpointAuth::Public,
        TokenEndpointAuthParams::ClientSecretBasic { client_secret } => {
            TokenEndpointAuth::ClientSecretBasic {
                client_secret: secret(field, client_secret, seal)?,
            }
        }
        TokenEndpointAuthParams::ClientSecretPost { client_secret } => {
            TokenEndpointAuth::ClientSecretPost {
                client_secret: secret(field, client_secret, seal)?,
            }
        }
    };
    Ok(Refresh {
        token_endpoint: refresh.token_endpoint,
        client_id: refresh.client_id,
        refresh_token: secret("auth.refresh.refresh_token", refresh.refresh_token, seal)?,
        token_endpoint_auth,
        scope: refresh.scope.filter(|s| !s.is_empty()),
        resource: refresh.resource,
    })
}

fn update_refresh(
    stored: Option<&Refresh>,
    params: RefreshUpdateParams,
    seal: &mut impl FnMut(&str) -> SealedSecret,
) -> Result<Refresh, FieldError> {
    let Some(stored) = stored else {
        return Err(FieldError::new(
            "auth.refresh",
            "the credential has no refresh configuration to update",
        ));
    };
    let mut next = stored.clone();
    if let Some(client_id) = params.client_id {
        if client_id != stored.client_id {
            return Err(FieldError::new("auth.refresh.client_id", "is immutable"));
        }
    }
    if let Some(token) = params.refresh_token {
        next.refresh_token = secret("auth.refresh.refresh_token", token, seal)?;
    }
    if let Some(scope) = params.scope.into_option() {
        next.scope = scope.filter(|s| !s.is_empty());
    }
    if let Some(auth) = params.token_endpoint_auth {
        let field = "auth.refresh.token_endpoint_auth.client_secret";
        let stored_secret = match &stored.token_endpoint_auth {
            TokenEndpointAuth::ClientSecretBasic { client_secret }
            | TokenEndpointAuth::ClientSecretPost { client_secret } => Some(client_secret.clone()),
            TokenEndpointAuth::Public => None,
        };
        let (post, given) = match auth {
            TokenEndpointAuthUpdateParams::ClientSecretBasic { client_secret } => {
                (false, client_secret)
            }
            TokenEndpointAuthUpdateParams::ClientSecretPost { client_secret } => {
                (true, client_secret)
            }
        };
        let client_secret = match given {
            Some(value) => secret(field, value, seal)?,
            None => stored_secret.ok_or_else(|| {
                FieldError::new(
                    field,
                    "is required when the credential has no client secret",
                )
            })?,
        };
        next.token_endpoint_auth = if post {
            TokenEndpointAuth::ClientSecretPost { client_secret }
        } else {
            TokenEndpointAuth::ClientSecretBasic { client_secret }
        };
    }
    Ok(next)
}

/// `mcp_server_url` is immutable: an update may repeat it, never change or add it.
fn same_mcp_server_url(stored: Option<&str>, given: Option<String>) -> Result<(), FieldError> {
    match given {
        Some(url) if Some(url.as_str()) != stored => Err(FieldError::new(
            "auth.mcp_server_url",
            "is immutable: a credential is only ever sent to the MCP server it was created for; \
             create a new credential for another server",
        )),
        _ => Ok(()),
    }
}

fn update_auth(
    vault: &Vault,
    stored: &Auth,
    params: AuthUpdateParams,
    now: Timestamp,
    seal: &mut impl FnMut(&str) -> SealedSecret,
) -> Result<Auth, FieldError> {
    let mut next = stored.clone();
    match (&mut next, params) {
        (
            Auth::StaticBearer {
                mcp_server_url,
                token,
                llm_binding,
            },
            AuthUpdateParams::StaticBearer {
                token: new,
                mcp_server_url: new_url,
            },
        ) => {
            same_mcp_server_url(mcp_server_url.as_deref(), new_url)?;
            if let Some(new) = new {
                *token = secret("auth.token", new, seal)?;
                // A model API key entered again is bound to where the vault points now.
                if mcp_server_url.is_none() {
                    *llm_binding = Some(LlmBinding::of(vault));
                }
            }
        }
        (
            Auth::McpOauth {
                mcp_server_url,
                access_token,
                expires_at: expiry,
                refresh,
            },
            AuthUpdateParams::McpOauth {
                access_token: new_token,
                mcp_server_url: new_url,
                expires_at: new_expiry,
                refresh: new_refresh,
            },
        ) => {
            same_mcp_server_url(Some(mcp_server_url.as_str()), new_url)?;
            if let Some(new) = new_token {
                *access_token = secret("auth.access_token", new, seal)?;
            }
            match new_expiry {
                Patch::Absent => {}
                Patch::Null => *expiry = None,
                Patch::Value(text) => *expiry = Some(expires_at("auth.expires_at", &text, now)?),
            }
            match new_refresh {
                Patch::Absent => {}
                Patch::Null => *refresh = None,
                Patch::Value(params) => {
                    *refresh = Some(update_refresh(refresh.as_ref(), params, seal)?)
                }
            }
        }
        (
            Auth::EnvironmentVariable {
                secret_name,
                secret_value,
                networking,
                injection_location,
            },
            AuthUpdateParams::EnvironmentVariable {
                secret_value: new_value,
                networking: new_networking,
                injection_location: new_location,
                secret_name: new_name,
            },
        ) => {
            if new_name.is_some_and(|name| &name != secret_name) {
                return Err(FieldError::new("auth.secret_name", "is immutable"));
            }
            if let Some(value) = new_value {
                *secret_value = secret("auth.secret_value", value, seal)?;
            }
            if let Some(new) = new_networking {
                check_networking("auth.networking", &new)?;
                *networking = new;
            }
            if let Some(location) = new_location {
                *injection_location = location.apply(*injection_location);
            }
        }
        (stored, _) => {
            return Err(FieldError::new(
                "auth.type",
                format!("must equal the stored type {:?}", stored.kind()),
            ))
        }
    }
    Ok(next)
}

fn check(settings: &Settings) -> Result<(), FieldError> {
    if let Some(name) = &settings.display_name {
        validate::length("display_name", name, 0, MAX_DISPLAY_NAME)?;
    }
    validate::metadata("metadata", &settings.metadata)
}

// ---------------------------------------------------------------------------------------------
// Records, fold, commands

/// One record of a credential's stream. Secrets inside are sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Created.
    #[serde(rename = "credential.created")]
    Created {
        /// Its id.
        id: CredentialId,
        /// The vault it belongs to.
        vault_id: VaultId,
        /// Its owner.
        workspace: WorkspaceId,
        /// Initial settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Updated: the whole new settings.
    #[serde(rename = "credential.updated")]
    Updated {
        /// New settings.
        settings: Settings,
        /// When.
        at: Timestamp,
    },
    /// Archived (terminal).
    #[serde(rename = "credential.archived")]
    Archived {
        /// When.
        at: Timestamp,
    },
    /// Nothing changes; written by [`crate::claim`] to fence a stale claim's owner.
    #[serde(rename = "credential.fenced")]
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

/// A credential folded from its records. The lifecycle fields (`settings`, `created_at`,
/// `updated_at`, `archived_at`, `stream_version`) are the shared [`Lifecycled`], reached
/// through `Deref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Its id.
    pub id: CredentialId,
    /// Its vault.
    pub vault_id: VaultId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// Current settings (secrets sealed), times and stream version.
    pub lifecycle: Lifecycled<Settings>,
}

impl std::ops::Deref for Credential {
    type Target = Lifecycled<Settings>;

    fn deref(&self) -> &Lifecycled<Settings> {
        &self.lifecycle
    }
}

impl std::ops::DerefMut for Credential {
    fn deref_mut(&mut self) -> &mut Lifecycled<Settings> {
        &mut self.lifecycle
    }
}

/// Folds a credential's records; `None` until created.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<Credential> {
    object::fold(records)
}

impl Lifecycle for Credential {
    type Settings = Settings;
    type Record = Record;

    fn step(record: &Record) -> Step<Self, Settings> {
        match record {
            Record::Created {
                id,
                vault_id,
                workspace,
                settings,
                at,
            } => Step::Created(Credential {
                id: id.clone(),
                vault_id: vault_id.clone(),
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

impl Object for Credential {
    type Record = Record;

    fn apply(object: &mut Option<Self>, record: &Record) {
        object::apply_lifecycle(object, record);
    }

    fn catalog_entry(&self) -> CatalogEntry {
        Credential::catalog_entry(self)
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Decodes and folds a stored stream.
pub fn load(records: &[crate::storage::Record]) -> Result<Option<Credential>, DecodeError> {
    object::load(records)
}

/// `POST /v1/vaults/{vault_id}/credentials`: `seal` turns each plaintext secret into the
/// ciphertext to store. Refused (`vault_archived`) when the vault is archived.
pub fn create(
    vault: &Vault,
    params: CredentialCreateParams,
    id: CredentialId,
    now: Timestamp,
    mut seal: impl FnMut(&str) -> SealedSecret,
) -> Result<Vec<Record>, Error> {
    if vault.is_archived() {
        return Err(super::archived(&vault.id));
    }
    let settings = Settings {
        display_name: params.display_name,
        auth: resolve_auth(vault, params.auth, now, &mut seal)?,
        metadata: params.metadata.unwrap_or_default(),
    };
    check(&settings)?;
    Ok(vec![Record::Created {
        id,
        vault_id: vault.id.clone(),
        workspace: vault.workspace.clone(),
        settings,
        at: now,
    }])
}

/// `POST /v1/vaults/{vault_id}/credentials/{id}`: no records when nothing changed. A supplied
/// secret is a change whenever its ciphertext differs, which it always does with a randomised
/// sealing function. A new model API key is bound to `vault`'s current `llm_base_url`.
pub fn update(
    vault: &Vault,
    credential: &Credential,
    params: CredentialUpdateParams,
    now: Timestamp,
    mut seal: impl FnMut(&str) -> SealedSecret,
) -> Result<Vec<Record>, Error> {
    if credential.archived_at.is_some() {
        return Err(Error::code(
            "credential_archived",
            format!(
                "credential {} is archived and cannot be updated",
                credential.id
            ),
        ));
    }
    let current = &credential.settings;
    let mut next = current.clone();
    if let Some(auth) = params.auth {
        next.auth = update_auth(vault, &current.auth, auth, now, &mut seal)?;
    }
    if let Some(name) = params.display_name.into_option() {
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

/// `POST …/credentials/{id}/archive`; archiving again changes nothing.
pub fn archive(credential: &Credential, now: Timestamp) -> Result<Vec<Record>, Error> {
    if credential.archived_at.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Archived { at: now }])
}

/// New tokens of an `mcp_oauth` credential, obtained from its token endpoint with its refresh
/// token (by the egress proxy), already sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshedTokens {
    /// The new access token.
    pub access_token: SealedSecret,
    /// When it expires (`None`: the token endpoint did not say).
    pub expires_at: Option<Timestamp>,
    /// The new refresh token when the endpoint rotated it (`None`: keep the stored one).
    pub refresh_token: Option<SealedSecret>,
}

/// Stores refreshed OAuth tokens: the access token and its expiry replaced, the refresh token
/// too when rotated; everything else unchanged. Refused (`credential_archived`) for an archived
/// credential, and for a credential that is not `mcp_oauth` with a refresh configuration.
pub fn refreshed(
    credential: &Credential,
    tokens: RefreshedTokens,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    if credential.archived_at.is_some() {
        return Err(Error::code(
            "credential_archived",
            format!("credential {} is archived", credential.id),
        ));
    }
    let mut next = credential.settings.clone();
    let Auth::McpOauth {
        access_token,
        expires_at,
        refresh: Some(refresh),
        ..
    } = &mut next.auth
    else {
        return Err(Error::code(
            "not_refreshable",
            format!(
                "credential {} is not an mcp_oauth credential with a refresh configuration",
                credential.id
            ),
        ));
    };
    *access_token = tokens.access_token;
    *expires_at = tokens.expires_at;
    if let Some(token) = tokens.refresh_token {
        refresh.refresh_token = token;
    }
    Ok(vec![Record::Updated {
        settings: next,
        at: now,
    }])
}

// ---------------------------------------------------------------------------------------------
// Rendering

/// Token endpoint auth as rendered: only the type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenEndpointAuthObject {
    /// `none`
    #[serde(rename = "none")]
    Public,
    /// `client_secret_basic`
    ClientSecretBasic,
    /// `client_secret_post`
    ClientSecretPost,
}

/// Refresh configuration as rendered (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshObject {
    /// Client id.
    pub client_id: String,
    /// Token endpoint.
    pub token_endpoint: String,
    /// Endpoint auth type.
    pub token_endpoint_auth: TokenEndpointAuthObject,
    /// Scope.
    pub scope: Option<String>,
    /// Resource.
    pub resource: Option<String>,
}

/// `auth` as rendered (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthObject {
    /// Bearer token.
    StaticBearer {
        /// MCP server URL; `null` when the token is not tied to one.
        mcp_server_url: Option<String>,
    },
    /// OAuth.
    McpOauth {
        /// MCP server URL.
        mcp_server_url: String,
        /// Expiry.
        expires_at: Option<Timestamp>,
        /// Refresh configuration.
        refresh: Option<RefreshObject>,
    },
    /// Environment variable.
    EnvironmentVariable {
        /// Variable name.
        secret_name: String,
        /// Where it may go.
        networking: Networking,
        /// Where it may be injected.
        injection_location: InjectionLocation,
    },
}

impl From<&Auth> for AuthObject {
    fn from(auth: &Auth) -> Self {
        match auth {
            Auth::StaticBearer { mcp_server_url, .. } => AuthObject::StaticBearer {
                mcp_server_url: mcp_server_url.clone(),
            },
            Auth::McpOauth {
                mcp_server_url,
                expires_at,
                refresh,
                ..
            } => AuthObject::McpOauth {
                mcp_server_url: mcp_server_url.clone(),
                expires_at: *expires_at,
                refresh: refresh.as_ref().map(|r| RefreshObject {
                    client_id: r.client_id.clone(),
                    token_endpoint: r.token_endpoint.clone(),
                    token_endpoint_auth: match r.token_endpoint_auth {
                        TokenEndpointAuth::Public => TokenEndpointAuthObject::Public,
                        TokenEndpointAuth::ClientSecretBasic { .. } => {
                            TokenEndpointAuthObject::ClientSecretBasic
                        }
                        TokenEndpointAuth::ClientSecretPost { .. } => {
                            TokenEndpointAuthObject::ClientSecretPost
                        }
                    },
                    scope: r.scope.clone(),
                    resource: r.resource.clone(),
                }),
            },
            Auth::EnvironmentVariable {
                secret_name,
                networking,
                injection_location,
                ..
            } => AuthObject::EnvironmentVariable {
                secret_name: secret_name.clone(),
                networking: networking.clone(),
                injection_location: *injection_location,
            },
        }
    }
}

/// The credential object (`type: "vault_credential"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "vault_credential")]
pub struct CredentialObject {
    /// `vcrd_…`
    pub id: CredentialId,
    /// Its vault.
    pub vault_id: VaultId,
    /// Display name.
    pub display_name: Option<String>,
    /// The credential without secrets.
    pub auth: AuthObject,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
    /// Archived.
    pub archived_at: Option<Timestamp>,
}

impl Credential {
    /// The response object (never includes secrets).
    pub fn render(&self) -> CredentialObject {
        CredentialObject {
            id: self.id.clone(),
            vault_id: self.vault_id.clone(),
            display_name: self.settings.display_name.clone(),
            auth: AuthObject::from(&self.settings.auth),
            metadata: self.settings.metadata.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        }
    }

    /// The catalog entry (parent: the vault).
    pub fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::Credential,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.archived = self.is_archived();
        entry.parent = Some(self.vault_id.to_string());
        entry
    }
}

/// The body of `DELETE /v1/vaults/{vault_id}/credentials/{id}`.
pub fn deleted(id: &CredentialId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "vault_credential_deleted")
}
