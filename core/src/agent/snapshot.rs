//! The agent snapshot a session runs: one agent version's configuration, fixed when the session
//! is created (overrides applied) and changed only by a session update of `{tools,
//! mcp_servers}`. It is the Session object's `agent` (API §6.4): the rendered agent version
//! without metadata and timestamps.
//!
//! On disk it is the `agent` of `internal.session_created` and of `session.updated`, with
//! exactly the keys it always had (`type: "agent"`, `id`, `version`, then the configuration
//! without `metadata`). Fields that may be missing from snapshots written by hand (tests,
//! embedded programs) default as an agent create would.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AgentConfig, AgentObject, ExecutionIdentity, McpServer, ModelConfig, Skill, Tool, Version,
};
use crate::ids::AgentId;

/// An agent version as a session holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "agent")]
pub struct AgentSnapshot {
    /// The agent.
    pub id: AgentId,
    /// The agent version the session was created from.
    pub version: u64,
    /// Name.
    pub name: String,
    /// `null` when unset.
    #[serde(default)]
    pub description: Option<String>,
    /// `null` when unset.
    #[serde(default)]
    pub system: Option<String>,
    /// Resolved model.
    pub model: ModelConfig,
    /// Resolved tools.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// MCP servers.
    #[serde(default)]
    pub mcp_servers: Vec<McpServer>,
    /// Skills.
    #[serde(default)]
    pub skills: Vec<Skill>,
    /// Multiagent roster, `null` for single-threaded agents.
    #[serde(default)]
    pub multiagent: Option<Value>,
    /// Whose identity the tools act with.
    #[serde(default)]
    pub execution_identity: ExecutionIdentity,
}

impl AgentSnapshot {
    /// The snapshot of agent `id` at `version` with configuration `config` (its metadata is
    /// not part of a snapshot).
    pub fn of(id: AgentId, version: u64, config: &AgentConfig) -> Self {
        Self {
            id,
            version,
            name: config.name.clone(),
            description: config.description.clone(),
            system: config.system.clone(),
            model: config.model.clone(),
            tools: config.tools.clone(),
            mcp_servers: config.mcp_servers.clone(),
            skills: config.skills.clone(),
            multiagent: config.multiagent.clone(),
            execution_identity: config.execution_identity.clone(),
        }
    }

    /// The configuration, with empty metadata, for applying agent update rules
    /// ([`AgentConfig::overridden`]).
    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            name: self.name.clone(),
            description: self.description.clone(),
            system: self.system.clone(),
            model: self.model.clone(),
            tools: self.tools.clone(),
            mcp_servers: self.mcp_servers.clone(),
            skills: self.skills.clone(),
            multiagent: self.multiagent.clone(),
            execution_identity: self.execution_identity.clone(),
            metadata: Default::default(),
        }
    }

    /// This snapshot with configuration `config` (same agent id and version).
    pub fn with_config(&self, config: &AgentConfig) -> Self {
        Self::of(self.id.clone(), self.version, config)
    }
}

impl From<&AgentObject> for AgentSnapshot {
    fn from(object: &AgentObject) -> Self {
        Self::of(object.id.clone(), object.version, &object.config)
    }
}

impl super::Agent {
    /// The snapshot of version `number` (`None` when it does not exist).
    pub fn snapshot(&self, number: u64) -> Option<AgentSnapshot> {
        let version: &Version = self.at_version(number)?;
        Some(AgentSnapshot::of(self.id.clone(), number, &version.config))
    }
}
