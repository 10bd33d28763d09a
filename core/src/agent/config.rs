//! An agent's versioned configuration: the create/update request bodies (API §4.2, §4.3), the
//! resolved configuration each version stores, and the rules that check it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{ModelConfig, ModelParams};
use super::tools::{self, Tool, ToolParams};
use crate::patch::Patch;
use crate::validate::{self, FieldError};

/// Longest agent name.
pub const MAX_NAME: usize = 256;
/// Longest description.
pub const MAX_DESCRIPTION: usize = 2048;
/// Longest system prompt.
pub const MAX_SYSTEM: usize = 100_000;
/// Most entries in `tools`.
pub const MAX_TOOLS: usize = 256;
/// Most MCP servers.
pub const MAX_MCP_SERVERS: usize = 20;
/// Most skills.
pub const MAX_SKILLS: usize = 20;
/// Longest AWS role ARN.
pub const MAX_ROLE_ARN: usize = 2048;
/// Most coordinator roster entries.
pub const MAX_ROSTER: usize = 20;

/// An MCP server declaration in a request: `{type: "url", name, url}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct McpServerParams {
    /// Must be `url`.
    #[serde(rename = "type")]
    pub kind: String,
    /// 1–255 characters, unique within the agent.
    pub name: String,
    /// The server's http(s) URL.
    pub url: String,
}

/// A stored MCP server: `{type: "url", name, url}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "url")]
pub struct McpServer {
    /// Its name, referenced by an `mcp_toolset`.
    pub name: String,
    /// Its URL.
    pub url: String,
}

/// Where a skill comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkillSource {
    /// A pre-built Anthropic skill (`xlsx`, …).
    Anthropic,
    /// A skill uploaded through the Skills API.
    Custom,
}

/// A skill reference in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SkillParams {
    /// `anthropic` or `custom`.
    #[serde(rename = "type")]
    pub source: SkillSource,
    /// The skill's id.
    pub skill_id: String,
    /// A pinned version; omitted or null means latest.
    #[serde(default)]
    pub version: Option<String>,
}

/// A stored skill reference; `version` is always a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    /// `anthropic` or `custom`.
    #[serde(rename = "type")]
    pub source: SkillSource,
    /// The skill's id.
    pub skill_id: String,
    /// The pinned version, or `latest` when the request named none (the Skills API is not
    /// consulted by `core`; the server may pin it before saving).
    pub version: String,
}

/// Whose identity the agent's tools act with.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecutionIdentity {
    /// The default.
    #[default]
    ServiceAccount,
    /// An AWS role.
    AwsRole {
        /// ≤2048 characters.
        role_arn: String,
    },
}

/// `POST /v1/agents`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentCreateParams {
    /// 1–256 characters.
    pub name: String,
    /// Bare id or object form.
    pub model: ModelParams,
    /// ≤100 000 characters.
    #[serde(default)]
    pub system: Option<String>,
    /// ≤2048 characters.
    #[serde(default)]
    pub description: Option<String>,
    /// ≤256 tools.
    #[serde(default)]
    pub tools: Option<Vec<ToolParams>>,
    /// ≤20, each referenced by an `mcp_toolset`.
    #[serde(default)]
    pub mcp_servers: Option<Vec<McpServerParams>>,
    /// ≤20.
    #[serde(default)]
    pub skills: Option<Vec<SkillParams>>,
    /// Multiagent roster (stored as sent; see [`check_multiagent`]).
    #[serde(default)]
    pub multiagent: Option<Value>,
    /// Default `service_account`.
    #[serde(default)]
    pub execution_identity: Option<ExecutionIdentity>,
    /// ≤16 pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/agents/{agent_id}`: every field optional, absent preserves (§4.3).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
pub struct AgentUpdateParams {
    /// Cannot be cleared.
    #[serde(default)]
    pub name: Patch<String>,
    /// Cannot be cleared; whole-object replacement except that an omitted effort is kept.
    #[serde(default)]
    pub model: Patch<ModelParams>,
    /// `null` or `""` clears.
    #[serde(default)]
    pub system: Patch<String>,
    /// `null` or `""` clears.
    #[serde(default)]
    pub description: Patch<String>,
    /// Full replacement; `null` or `[]` clears.
    #[serde(default)]
    pub tools: Patch<Vec<ToolParams>>,
    /// Full replacement; `null` or `[]` clears.
    #[serde(default)]
    pub mcp_servers: Patch<Vec<McpServerParams>>,
    /// Full replacement; `null` or `[]` clears.
    #[serde(default)]
    pub skills: Patch<Vec<SkillParams>>,
    /// Full replacement; `null` clears.
    #[serde(default)]
    pub multiagent: Patch<Value>,
    /// Full replacement; `null` restores `service_account`.
    #[serde(default)]
    pub execution_identity: Patch<ExecutionIdentity>,
    /// Patch: a string upserts, `null` deletes; a `null` map changes nothing.
    #[serde(default)]
    pub metadata: Patch<BTreeMap<String, Option<String>>>,
    /// Optimistic concurrency: must equal the current version when given.
    #[serde(default)]
    pub version: Option<u64>,
}

/// The configuration one agent version stores, fully resolved. Two versions are the same
/// configuration exactly when these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Name.
    pub name: String,
    /// `null` when unset.
    pub description: Option<String>,
    /// `null` when unset.
    pub system: Option<String>,
    /// Resolved model.
    pub model: ModelConfig,
    /// Resolved tools.
    pub tools: Vec<Tool>,
    /// MCP servers.
    pub mcp_servers: Vec<McpServer>,
    /// Skills.
    pub skills: Vec<Skill>,
    /// Multiagent roster, `null` for single-threaded agents.
    pub multiagent: Option<Value>,
    /// Always present.
    pub execution_identity: ExecutionIdentity,
    /// Always present.
    pub metadata: BTreeMap<String, String>,
}

/// `""` and absent both mean unset for description and system.
pub(crate) fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|t| !t.is_empty())
}

pub(crate) fn resolve_mcp_servers(
    servers: Vec<McpServerParams>,
) -> Result<Vec<McpServer>, FieldError> {
    validate::max_items("mcp_servers", servers.len(), MAX_MCP_SERVERS)?;
    let mut names = BTreeSet::new();
    let mut resolved = Vec::with_capacity(servers.len());
    for (i, server) in servers.into_iter().enumerate() {
        let path = format!("mcp_servers[{i}]");
        if server.kind != "url" {
            return Err(FieldError::new(format!("{path}.type"), "must be \"url\""));
        }
        validate::length(&format!("{path}.name"), &server.name, 1, 255)?;
        validate::http_url(&format!("{path}.url"), &server.url)?;
        if !names.insert(server.name.clone()) {
            return Err(FieldError::new(
                format!("{path}.name"),
                format!("duplicate MCP server name {:?}", server.name),
            ));
        }
        resolved.push(McpServer {
            name: server.name,
            url: server.url,
        });
    }
    Ok(resolved)
}

pub(crate) fn resolve_skills(skills: Vec<SkillParams>) -> Result<Vec<Skill>, FieldError> {
    validate::max_items("skills", skills.len(), MAX_SKILLS)?;
    let mut seen = BTreeSet::new();
    let mut resolved = Vec::with_capacity(skills.len());
    for (i, skill) in skills.into_iter().enumerate() {
        let path = format!("skills[{i}]");
        validate::length(&format!("{path}.skill_id"), &skill.skill_id, 1, 255)?;
        if let Some(version) = &skill.version {
            validate::length(&format!("{path}.version"), version, 1, 255)?;
        }
        if !seen.insert(skill.skill_id.clone()) {
            return Err(FieldError::new(
                format!("{path}.skill_id"),
                format!("duplicate skill {:?}", skill.skill_id),
            ));
        }
        resolved.push(Skill {
            source: skill.source,
            skill_id: skill.skill_id,
            version: skill.version.unwrap_or_else(|| "latest".to_owned()),
        });
    }
    Ok(resolved)
}

/// Shape checks on a multiagent roster (§4.6): the `type`, and for `coordinator` 1–20 entries
/// with at most one `self` and one `advisor`. Resolving roster entries against other agents is
/// the caller's job.
pub fn check_multiagent(value: &Value) -> Result<(), FieldError> {
    let kind = value.get("type").and_then(Value::as_str);
    match kind {
        Some("coordinator") => {
            let Some(agents) = value.get("agents").and_then(Value::as_array) else {
                return Err(FieldError::new("multiagent.agents", "is required"));
            };
            validate::non_empty_items("multiagent.agents", agents.len(), MAX_ROSTER)?;
            let count = |t: &str| {
                agents
                    .iter()
                    .filter(|a| a.get("type").and_then(Value::as_str) == Some(t))
                    .count()
            };
            if count("self") > 1 {
                return Err(FieldError::new(
                    "multiagent.agents",
                    "at most one `self` entry",
                ));
            }
            if count("advisor") > 1 {
                return Err(FieldError::new(
                    "multiagent.agents",
                    "at most one `advisor` entry",
                ));
            }
            Ok(())
        }
        Some("multiagent_20261001") => Ok(()),
        _ => Err(FieldError::new(
            "multiagent.type",
            "must be \"coordinator\" or \"multiagent_20261001\"",
        )),
    }
}

fn check_identity(identity: &ExecutionIdentity) -> Result<(), FieldError> {
    if let ExecutionIdentity::AwsRole { role_arn } = identity {
        validate::length("execution_identity.role_arn", role_arn, 1, MAX_ROLE_ARN)?;
    }
    Ok(())
}

/// The rules on a whole resolved configuration: lengths, metadata, and that every MCP server is
/// referenced by exactly one `mcp_toolset` and every `mcp_toolset` names a declared server.
pub fn check(config: &AgentConfig) -> Result<(), FieldError> {
    validate::length("name", &config.name, 1, MAX_NAME)?;
    if let Some(description) = &config.description {
        validate::length("description", description, 0, MAX_DESCRIPTION)?;
    }
    if let Some(system) = &config.system {
        validate::length("system", system, 0, MAX_SYSTEM)?;
    }
    check_identity(&config.execution_identity)?;
    validate::metadata("metadata", &config.metadata)?;
    let declared: BTreeSet<&str> = config.mcp_servers.iter().map(|s| s.name.as_str()).collect();
    let mut referenced = BTreeSet::new();
    for (i, tool) in config.tools.iter().enumerate() {
        if let Tool::McpToolset(set) = tool {
            if !declared.contains(set.mcp_server_name.as_str()) {
                return Err(FieldError::new(
                    format!("tools[{i}].mcp_server_name"),
                    format!(
                        "{:?} is not one of the agent's mcp_servers",
                        set.mcp_server_name
                    ),
                ));
            }
            referenced.insert(set.mcp_server_name.as_str());
        }
    }
    for (i, server) in config.mcp_servers.iter().enumerate() {
        if !referenced.contains(server.name.as_str()) {
            return Err(FieldError::new(
                format!("mcp_servers[{i}]"),
                format!(
                    "MCP server {:?} must be referenced by an mcp_toolset in tools",
                    server.name
                ),
            ));
        }
    }
    Ok(())
}

impl AgentCreateParams {
    /// Resolves and validates the body into the configuration of version 1.
    pub fn resolve(self) -> Result<AgentConfig, FieldError> {
        validate::length("name", &self.name, 1, MAX_NAME)?;
        let model = self.model.resolve("model", None)?;
        if let Some(multiagent) = &self.multiagent {
            check_multiagent(multiagent)?;
        }
        let config = AgentConfig {
            name: self.name,
            description: non_empty(self.description),
            system: non_empty(self.system),
            model,
            tools: tools::resolve("tools", self.tools.unwrap_or_default())?,
            mcp_servers: resolve_mcp_servers(self.mcp_servers.unwrap_or_default())?,
            skills: resolve_skills(self.skills.unwrap_or_default())?,
            multiagent: self.multiagent,
            execution_identity: self.execution_identity.unwrap_or_default(),
            metadata: self.metadata.unwrap_or_default(),
        };
        check(&config)?;
        Ok(config)
    }
}

impl AgentConfig {
    /// This configuration with `overrides` applied by the agent update rules (§4.3): a JSON
    /// object of update fields, such as a session's `agent_with_overrides` fields or the
    /// `{tools, mcp_servers}` of a session update. Errors name the field under `prefix`
    /// (`agent.tools[0].name`).
    pub fn overridden(&self, overrides: Value, prefix: &str) -> Result<AgentConfig, FieldError> {
        let within = |field: &str| {
            if field.is_empty() || field == "." {
                prefix.to_owned()
            } else {
                format!("{prefix}.{field}")
            }
        };
        let params: AgentUpdateParams =
            serde_path_to_error::deserialize(overrides).map_err(|e| {
                FieldError::new(within(&e.path().to_string()), e.into_inner().to_string())
            })?;
        params.apply(self).map_err(|e| FieldError {
            field: within(&e.field),
            ..e
        })
    }
}

impl AgentUpdateParams {
    /// Applies the update to `current` (§4.3) and validates the result. `version` is not
    /// looked at here.
    pub fn apply(self, current: &AgentConfig) -> Result<AgentConfig, FieldError> {
        let mut next = current.clone();
        match self.name {
            Patch::Absent => {}
            Patch::Null => return Err(FieldError::new("name", "cannot be cleared")),
            Patch::Value(name) => next.name = name,
        }
        match self.model {
            Patch::Absent => {}
            Patch::Null => return Err(FieldError::new("model", "cannot be cleared")),
            Patch::Value(model) => {
                next.model = model.resolve("model", Some(current.model.effort))?
            }
        }
        if let Some(description) = self.description.into_option() {
            next.description = non_empty(description);
        }
        if let Some(system) = self.system.into_option() {
            next.system = non_empty(system);
        }
        if let Some(list) = self.tools.into_option() {
            next.tools = tools::resolve("tools", list.unwrap_or_default())?;
        }
        if let Some(list) = self.mcp_servers.into_option() {
            next.mcp_servers = resolve_mcp_servers(list.unwrap_or_default())?;
        }
        if let Some(list) = self.skills.into_option() {
            next.skills = resolve_skills(list.unwrap_or_default())?;
        }
        if let Some(multiagent) = self.multiagent.into_option() {
            if let Some(value) = &multiagent {
                check_multiagent(value)?;
            }
            next.multiagent = multiagent;
        }
        if let Some(identity) = self.execution_identity.into_option() {
            next.execution_identity = identity.unwrap_or_default();
        }
        if let Patch::Value(patch) = &self.metadata {
            next.metadata = validate::patch_metadata("metadata", &current.metadata, patch, false)?;
        }
        check(&next)?;
        Ok(next)
    }
}
