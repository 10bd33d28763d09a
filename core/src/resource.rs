//! Session resources (API §9): the `file`, `github_repository` and `memory_store` shapes a
//! session mounts, as requested, as stored and as rendered.
//!
//! Resources live in the session's own log (the session module records them); this module
//! resolves request bodies into [`Resource`] values, rotates GitHub tokens and renders them.
//! GitHub tokens are sealed by the caller's `seal` function and never rendered.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{FileId, ResourceId};
use crate::object::{self, DecodeError, Error};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};
use crate::vault::{SealedSecret, Secret};

/// Most `file` resources one session may have.
pub const MAX_FILE_RESOURCES: usize = 999;
/// Longest memory-store `instructions`.
pub const MAX_INSTRUCTIONS: usize = 4096;

/// A git checkout target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Checkout {
    /// A branch.
    Branch {
        /// Branch name.
        name: String,
    },
    /// A commit.
    Commit {
        /// Commit SHA.
        sha: String,
    },
}

/// What a session may do with a memory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Read and write (the default).
    #[default]
    ReadWrite,
    /// Read only.
    ReadOnly,
}

/// A resource in a session create body or `POST /v1/sessions/{id}/resources`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceParams {
    /// A GitHub repository cloned into the sandbox.
    GithubRepository {
        /// Repository URL.
        url: String,
        /// Write-only access token.
        #[serde(default)]
        authorization_token: Option<Secret>,
        /// Branch or commit; default branch when omitted.
        #[serde(default)]
        checkout: Option<Checkout>,
        /// Default `/workspace/<repository name>`.
        #[serde(default)]
        mount_path: Option<String>,
    },
    /// An uploaded file.
    File {
        /// The file.
        file_id: FileId,
        /// Default `/mnt/session/uploads/<file_id>`.
        #[serde(default)]
        mount_path: Option<String>,
    },
    /// A memory store (session creation only).
    MemoryStore {
        /// The store.
        memory_store_id: String,
        /// Default `read_write`.
        #[serde(default)]
        access: Option<Access>,
        /// ≤4096 characters.
        #[serde(default)]
        instructions: Option<String>,
    },
}

/// `POST /v1/sessions/{id}/resources/{resource_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceUpdateParams {
    /// The new GitHub token.
    pub authorization_token: Secret,
}

/// The name and description of a memory store, snapshotted when it is attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreInfo {
    /// Store name.
    pub name: String,
    /// Store description.
    pub description: String,
}

/// A stored resource (GitHub token sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Resource {
    /// A GitHub repository.
    GithubRepository {
        /// `sesrsc_…`
        id: ResourceId,
        /// Repository URL.
        url: String,
        /// Where it is cloned.
        mount_path: String,
        /// Branch or commit.
        checkout: Option<Checkout>,
        /// Sealed token.
        authorization_token: Option<SealedSecret>,
        /// Added.
        created_at: Timestamp,
        /// Last token rotation.
        updated_at: Timestamp,
    },
    /// A file.
    File {
        /// `sesrsc_…`
        id: ResourceId,
        /// The file.
        file_id: FileId,
        /// Where it is mounted.
        mount_path: String,
        /// Added.
        created_at: Timestamp,
        /// Last change.
        updated_at: Timestamp,
    },
    /// A memory store.
    MemoryStore {
        /// The store.
        memory_store_id: String,
        /// Access.
        access: Access,
        /// Instructions for the agent.
        instructions: Option<String>,
        /// Snapshot of the store name.
        name: Option<String>,
        /// Snapshot of the store description.
        description: Option<String>,
        /// `/mnt/memory/<slug>`.
        mount_path: String,
    },
}

/// A resource as rendered (no token; memory stores have no id or timestamps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResourceObject {
    /// A GitHub repository.
    GithubRepository {
        /// `sesrsc_…`
        id: ResourceId,
        /// Repository URL.
        url: String,
        /// Where it is cloned.
        mount_path: String,
        /// Branch or commit.
        checkout: Option<Checkout>,
        /// Added.
        created_at: Timestamp,
        /// Last change.
        updated_at: Timestamp,
    },
    /// A file.
    File {
        /// `sesrsc_…`
        id: ResourceId,
        /// The file.
        file_id: FileId,
        /// Where it is mounted.
        mount_path: String,
        /// Added.
        created_at: Timestamp,
        /// Last change.
        updated_at: Timestamp,
    },
    /// A memory store.
    MemoryStore {
        /// The store.
        memory_store_id: String,
        /// Access.
        access: Option<Access>,
        /// Instructions.
        instructions: Option<String>,
        /// Store name.
        name: Option<String>,
        /// Store description.
        description: Option<String>,
        /// Mount path.
        mount_path: Option<String>,
    },
}

/// `/mnt/memory/<slug>` where the slug is the lowercase name with every run of characters
/// outside `[a-z0-9]` replaced by one `-` (API §12.1).
pub fn memory_mount_path(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    format!("/mnt/memory/{}", slug.trim_matches('-'))
}

fn repository_name(url: &str) -> &str {
    let path = url.trim_end_matches('/');
    let last = path.rsplit('/').next().unwrap_or(path);
    last.strip_suffix(".git").unwrap_or(last)
}

fn mount(field: &str, given: Option<String>, default: String) -> Result<String, FieldError> {
    let path = given.unwrap_or(default);
    validate::mount_path(field, &path)?;
    Ok(path)
}

/// Resolves a resource request. `memory_store` is the attached store's snapshot (required for
/// `memory_store`, ignored otherwise); `seal` seals a GitHub token.
pub fn resolve(
    params: ResourceParams,
    id: ResourceId,
    now: Timestamp,
    memory_store: Option<&MemoryStoreInfo>,
    mut seal: impl FnMut(&str) -> SealedSecret,
) -> Result<Resource, Error> {
    Ok(match params {
        ResourceParams::GithubRepository {
            url,
            authorization_token,
            checkout,
            mount_path,
        } => {
            validate::http_url("url", &url)?;
            match &checkout {
                Some(Checkout::Branch { name }) => validate::length("checkout.name", name, 1, 255)?,
                Some(Checkout::Commit { sha }) => validate::length("checkout.sha", sha, 1, 64)?,
                None => {}
            }
            let mount_path = mount(
                "mount_path",
                mount_path,
                format!("/workspace/{}", repository_name(&url)),
            )?;
            Resource::GithubRepository {
                id,
                url,
                mount_path,
                checkout,
                authorization_token: authorization_token.map(|t| seal(&t.0)),
                created_at: now,
                updated_at: now,
            }
        }
        ResourceParams::File {
            file_id,
            mount_path,
        } => Resource::File {
            mount_path: mount(
                "mount_path",
                mount_path,
                format!("/mnt/session/uploads/{file_id}"),
            )?,
            id,
            file_id,
            created_at: now,
            updated_at: now,
        },
        ResourceParams::MemoryStore {
            memory_store_id,
            access,
            instructions,
        } => {
            if let Some(text) = &instructions {
                validate::length("instructions", text, 0, MAX_INSTRUCTIONS)?;
            }
            let store = memory_store.ok_or_else(|| {
                FieldError::new("memory_store_id", "the memory store does not exist")
            })?;
            Resource::MemoryStore {
                memory_store_id,
                access: access.unwrap_or_default(),
                instructions,
                name: Some(store.name.clone()),
                description: Some(store.description.clone()),
                mount_path: memory_mount_path(&store.name),
            }
        }
    })
}

/// Whether `params` may be added to a running session (`POST …/resources`): memory stores
/// attach only at session creation.
pub fn check_addable(params: &ResourceParams) -> Result<(), Error> {
    match params {
        ResourceParams::MemoryStore { .. } => Err(FieldError::new(
            "type",
            "memory stores can only be attached at session creation",
        )
        .into()),
        _ => Ok(()),
    }
}

/// The length rule of a GitHub `authorization_token` (1–4096 characters).
pub fn check_token(token: &Secret) -> Result<(), FieldError> {
    validate::length("authorization_token", &token.0, 1, 4096)
}

/// Whether a session that already has `files` file resources may add another.
pub fn check_file_count(files: usize) -> Result<(), Error> {
    if files >= MAX_FILE_RESOURCES {
        return Err(FieldError::new(
            "resources",
            format!("a session can have at most {MAX_FILE_RESOURCES} file resources"),
        )
        .into());
    }
    Ok(())
}

/// A session's memory stores are distinct and their mount paths too (two stores whose names
/// make the same slug would share `/mnt/memory/<slug>`): the error names
/// `resources[i].memory_store_id` of the later one.
pub fn check_memory_stores(resources: &[Resource]) -> Result<(), FieldError> {
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (i, resource) in resources.iter().enumerate() {
        let Resource::MemoryStore {
            memory_store_id,
            mount_path,
            ..
        } = resource
        else {
            continue;
        };
        let field = || format!("resources[{i}].memory_store_id");
        for (id, path) in &seen {
            if id == memory_store_id {
                return Err(FieldError::new(
                    field(),
                    format!("memory store {memory_store_id} is attached more than once"),
                ));
            }
            if path == mount_path {
                return Err(FieldError::new(
                    field(),
                    format!(
                        "memory store {memory_store_id} would be mounted at {mount_path}, like memory store {id}; rename one of them"
                    ),
                ));
            }
        }
        seen.push((memory_store_id, mount_path));
    }
    Ok(())
}

impl Resource {
    /// The id, for resources that have one (memory stores do not).
    pub fn id(&self) -> Option<&ResourceId> {
        match self {
            Resource::GithubRepository { id, .. } | Resource::File { id, .. } => Some(id),
            Resource::MemoryStore { .. } => None,
        }
    }

    /// Rotates a GitHub repository's token; other kinds cannot be updated.
    pub fn rotate(
        &self,
        params: ResourceUpdateParams,
        now: Timestamp,
        mut seal: impl FnMut(&str) -> SealedSecret,
    ) -> Result<Resource, Error> {
        self.check_rotatable()?;
        check_token(&params.authorization_token)?;
        Ok(self.with_token(seal(&params.authorization_token.0), now)?)
    }

    /// Whether this resource has a token to rotate (only `github_repository` does).
    pub fn check_rotatable(&self) -> Result<(), FieldError> {
        match self {
            Resource::GithubRepository { .. } => Ok(()),
            _ => Err(FieldError::new(
                "authorization_token",
                "only github_repository resources support token rotation",
            )),
        }
    }

    /// This GitHub repository with an already sealed new token, `updated_at` = `now`.
    pub fn with_token(&self, token: SealedSecret, now: Timestamp) -> Result<Resource, FieldError> {
        self.check_rotatable()?;
        let mut next = self.clone();
        if let Resource::GithubRepository {
            authorization_token,
            updated_at,
            ..
        } = &mut next
        {
            *authorization_token = Some(token);
            *updated_at = now;
        }
        Ok(next)
    }

    /// The response object.
    pub fn render(&self) -> ResourceObject {
        match self.clone() {
            Resource::GithubRepository {
                id,
                url,
                mount_path,
                checkout,
                created_at,
                updated_at,
                ..
            } => ResourceObject::GithubRepository {
                id,
                url,
                mount_path,
                checkout,
                created_at,
                updated_at,
            },
            Resource::File {
                id,
                file_id,
                mount_path,
                created_at,
                updated_at,
            } => ResourceObject::File {
                id,
                file_id,
                mount_path,
                created_at,
                updated_at,
            },
            Resource::MemoryStore {
                memory_store_id,
                access,
                instructions,
                name,
                description,
                mount_path,
            } => ResourceObject::MemoryStore {
                memory_store_id,
                access: Some(access),
                instructions,
                name,
                description,
                mount_path: Some(mount_path),
            },
        }
    }

    /// JSON bytes, for a session record that embeds a resource.
    pub fn encode(&self) -> Bytes {
        object::encode(self)
    }

    /// Parses JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        object::decode(bytes)
    }
}

/// The body of `DELETE /v1/sessions/{id}/resources/{resource_id}`.
pub fn deleted(id: &ResourceId) -> object::Deleted {
    object::Deleted::new(id.as_str(), "session_resource_deleted")
}
