//! Agents (API §4): persisted, versioned configurations, event-sourced.
//!
//! An agent's stream holds `agent.created`, then one `agent.updated` per new version and at
//! most one `agent.archived`. [`fold`] keeps every version's configuration so `?version=N` and
//! the versions list can be rendered. [`create`], [`update`] and [`archive`] turn commands into
//! records; they read no clock and generate no ids.

mod config;
mod model;
pub mod roster;
mod snapshot;
pub mod tools;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use config::{
    check, check_multiagent, AgentConfig, AgentCreateParams, AgentUpdateParams, ExecutionIdentity,
    McpServer, McpServerParams, Skill, SkillParams, SkillSource, MAX_DESCRIPTION, MAX_MCP_SERVERS,
    MAX_NAME, MAX_ROLE_ARN, MAX_ROSTER, MAX_SKILLS, MAX_SYSTEM, MAX_TOOLS,
};
pub use model::{
    default_effort, Effort, EffortLevel, EffortParam, ModelConfig, ModelObjectParams, ModelParams,
    Speed,
};
pub use snapshot::AgentSnapshot;
pub use tools::{BuiltinTool, PermissionPolicy, Tool, ToolParams, ToolSetting};

use crate::ids::{AgentId, WorkspaceId};
use crate::object::{self, DecodeError, Error, Object};
use crate::storage::{CatalogEntry, Kind};
use crate::time::Timestamp;

/// One record of an agent's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Record {
    /// Version 1.
    #[serde(rename = "agent.created")]
    Created {
        /// The agent's id.
        id: AgentId,
        /// Its owner.
        workspace: WorkspaceId,
        /// Version 1's configuration.
        config: Box<AgentConfig>,
        /// When.
        at: Timestamp,
    },
    /// A new version.
    #[serde(rename = "agent.updated")]
    Updated {
        /// The new version's configuration.
        config: Box<AgentConfig>,
        /// The new version number (previous + 1).
        version: u64,
        /// When.
        at: Timestamp,
    },
    /// Archived (terminal).
    #[serde(rename = "agent.archived")]
    Archived {
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

/// One immutable version of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    /// 1, 2, …
    pub number: u64,
    /// Its configuration.
    pub config: AgentConfig,
    /// When it was saved.
    pub at: Timestamp,
}

/// An agent folded from its records.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Its owner.
    pub workspace: WorkspaceId,
    /// When version 1 was saved.
    pub created_at: Timestamp,
    /// When it last changed (new version or archive).
    pub updated_at: Timestamp,
    /// When it was archived.
    pub archived_at: Option<Timestamp>,
    /// Every version, oldest first; never empty.
    pub versions: Vec<Version>,
    /// How many records were folded: the expected stream version for the next append.
    pub stream_version: u64,
}

/// Folds an agent's records; `None` until `agent.created`.
pub fn fold(records: impl IntoIterator<Item = Record>) -> Option<Agent> {
    object::fold(records)
}

impl Object for Agent {
    type Record = Record;

    fn apply(agent: &mut Option<Self>, record: &Record) {
        match (record, agent.as_mut()) {
            (
                Record::Created {
                    id,
                    workspace,
                    config,
                    at,
                },
                None,
            ) => {
                *agent = Some(Agent {
                    id: id.clone(),
                    workspace: workspace.clone(),
                    created_at: *at,
                    updated_at: *at,
                    archived_at: None,
                    versions: vec![Version {
                        number: 1,
                        config: (**config).clone(),
                        at: *at,
                    }],
                    stream_version: 0,
                });
            }
            (
                Record::Updated {
                    config,
                    version,
                    at,
                },
                Some(agent),
            ) => {
                agent.versions.push(Version {
                    number: *version,
                    config: (**config).clone(),
                    at: *at,
                });
                agent.updated_at = *at;
            }
            (Record::Archived { at }, Some(agent)) => {
                agent.archived_at = Some(*at);
                agent.updated_at = *at;
            }
            _ => {}
        }
        if let Some(agent) = agent.as_mut() {
            agent.stream_version += 1;
        }
    }

    fn catalog_entry(&self) -> CatalogEntry {
        Agent::catalog_entry(self)
    }

    fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }
}

/// Decodes and folds a stored stream.
pub fn load(records: &[crate::storage::Record]) -> Result<Option<Agent>, DecodeError> {
    Ok(fold(object::decode_all::<Record>(records)?))
}

/// `POST /v1/agents`: the records creating agent `id` in `workspace` at `now`.
pub fn create(
    params: AgentCreateParams,
    id: AgentId,
    workspace: WorkspaceId,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    let config = params.resolve()?;
    Ok(vec![Record::Created {
        id,
        workspace,
        config: Box::new(config),
        at: now,
    }])
}

/// `POST /v1/agents/{id}`: a new version, or no records when nothing changed.
///
/// Errors: archived agent → `Code("agent_archived")`; `version` not current → `Conflict`.
pub fn update(
    agent: &Agent,
    params: AgentUpdateParams,
    now: Timestamp,
) -> Result<Vec<Record>, Error> {
    if agent.archived_at.is_some() {
        return Err(Error::code(
            "agent_archived",
            format!("agent {} is archived and cannot be updated", agent.id),
        ));
    }
    let current = agent.version();
    match params.version {
        Some(0) => {
            return Err(crate::validate::FieldError::new("version", "must be at least 1").into())
        }
        Some(expected) if expected != current => {
            return Err(Error::Conflict(format!(
                "agent version {expected} is stale: the current version of {} is {current}",
                agent.id
            )))
        }
        _ => {}
    }
    let latest = agent.latest();
    let next = params.apply(latest)?;
    if &next == latest {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Updated {
        config: Box::new(next),
        version: current + 1,
        at: now,
    }])
}

/// `POST /v1/agents/{id}/archive`: archives the agent; archiving again changes nothing.
pub fn archive(agent: &Agent, now: Timestamp) -> Result<Vec<Record>, Error> {
    if agent.archived_at.is_some() {
        return Ok(Vec::new());
    }
    Ok(vec![Record::Archived { at: now }])
}

/// The agent object as the API renders it (`type: "agent"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "agent")]
pub struct AgentObject {
    /// `agent_…`
    pub id: AgentId,
    /// The rendered version.
    pub version: u64,
    /// That version's configuration.
    #[serde(flatten)]
    pub config: AgentConfig,
    /// When version 1 was saved.
    pub created_at: Timestamp,
    /// When the rendered version was saved (for the latest: last change, archive included).
    pub updated_at: Timestamp,
    /// When archived.
    pub archived_at: Option<Timestamp>,
}

impl Agent {
    /// The current version number.
    pub fn version(&self) -> u64 {
        self.versions.last().map_or(0, |v| v.number)
    }

    /// The current configuration.
    pub fn latest(&self) -> &AgentConfig {
        // `fold` never builds an agent without version 1.
        &self.versions[self.versions.len() - 1].config
    }

    /// Version `number`, if it exists.
    pub fn at_version(&self, number: u64) -> Option<&Version> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// Whether the agent is archived.
    pub fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }

    fn object(&self, version: &Version, latest: bool) -> AgentObject {
        let mut config = version.config.clone();
        if let Some(multiagent) = &mut config.multiagent {
            *multiagent = roster::render(multiagent, self.id.as_str(), version.number);
        }
        AgentObject {
            id: self.id.clone(),
            version: version.number,
            config,
            created_at: self.created_at,
            updated_at: if latest { self.updated_at } else { version.at },
            archived_at: self.archived_at,
        }
    }

    /// `GET /v1/agents/{id}[?version=N]`: the latest version, or version `N` (`None` when it
    /// does not exist: 404).
    pub fn render(&self, version: Option<u64>) -> Option<AgentObject> {
        let number = version.unwrap_or_else(|| self.version());
        let found = self.at_version(number)?;
        Some(self.object(found, number == self.version()))
    }

    /// `GET /v1/agents/{id}/versions`: one object per version, newest first.
    pub fn render_versions(&self) -> Vec<AgentObject> {
        let current = self.version();
        self.versions
            .iter()
            .rev()
            .map(|v| self.object(v, v.number == current))
            .collect()
    }

    /// The resolved setting of built-in tool `tool` in the current version (see
    /// [`tools::builtin_setting`]).
    pub fn builtin_tool(&self, tool: BuiltinTool) -> Option<ToolSetting> {
        tools::builtin_setting(&self.latest().tools, tool)
    }

    /// The catalog entry to write with an append that changes this agent.
    pub fn catalog_entry(&self) -> CatalogEntry {
        let mut entry = CatalogEntry::new(
            Kind::Agent,
            self.id.as_str(),
            self.workspace.as_str(),
            self.created_at,
        );
        entry.archived = self.is_archived();
        entry
    }
}

impl AgentConfig {
    /// The resolved setting of built-in tool `tool`, `None` when the agent has no built-in
    /// toolset.
    pub fn builtin_tool(&self, tool: BuiltinTool) -> Option<ToolSetting> {
        tools::builtin_setting(&self.tools, tool)
    }

    /// The resolved setting of `tool` on MCP server `server`.
    pub fn mcp_tool(&self, server: &str, tool: &str) -> Option<ToolSetting> {
        tools::mcp_setting(&self.tools, server, tool)
    }
}
