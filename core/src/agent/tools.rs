//! Agent tools (API §4.5): the request forms, the fully resolved forms stored and rendered,
//! their validation, and the per-tool enabled flag and permission policy the harness needs.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::validate::{self, FieldError};

/// The `type` of the built-in toolset.
pub const AGENT_TOOLSET: &str = "agent_toolset_20260401";
/// Most domains in a web tool's allow or block list.
pub const MAX_DOMAINS: usize = 64;
/// Most tool names in a `url_sources` `only`/`except` list.
pub const MAX_TOOL_REFERENCES: usize = 128;

/// The built-in tools of `agent_toolset_20260401`: the only valid `configs[].name` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuiltinTool {
    /// `bash`
    Bash,
    /// `edit`
    Edit,
    /// `read`
    Read,
    /// `write`
    Write,
    /// `glob`
    Glob,
    /// `grep`
    Grep,
    /// `web_fetch`
    WebFetch,
    /// `web_search`
    WebSearch,
}

impl BuiltinTool {
    /// Every built-in tool.
    pub const ALL: [BuiltinTool; 8] = [
        BuiltinTool::Bash,
        BuiltinTool::Edit,
        BuiltinTool::Read,
        BuiltinTool::Write,
        BuiltinTool::Glob,
        BuiltinTool::Grep,
        BuiltinTool::WebFetch,
        BuiltinTool::WebSearch,
    ];

    /// The tool's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BuiltinTool::Bash => "bash",
            BuiltinTool::Edit => "edit",
            BuiltinTool::Read => "read",
            BuiltinTool::Write => "write",
            BuiltinTool::Glob => "glob",
            BuiltinTool::Grep => "grep",
            BuiltinTool::WebFetch => "web_fetch",
            BuiltinTool::WebSearch => "web_search",
        }
    }

    /// The tool with this wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.as_str() == name)
    }
}

/// Whether a tool call runs directly, waits for `user.tool_confirmation`, or is judged by the
/// server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PermissionPolicy {
    /// `{"type": "always_allow"}`
    AlwaysAllow,
    /// `{"type": "always_ask"}`
    AlwaysAsk,
    /// `{"type": "auto"}`
    Auto,
}

// ---------------------------------------------------------------------------------------------
// Request forms

/// A tool in a create or update body.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type")]
pub enum ToolParams {
    /// The built-in toolset.
    #[serde(rename = "agent_toolset_20260401")]
    AgentToolset(AgentToolsetParams),
    /// Tools of one declared MCP server.
    #[serde(rename = "mcp_toolset")]
    McpToolset(McpToolsetParams),
    /// A client-executed tool.
    #[serde(rename = "custom")]
    Custom(CustomToolParams),
}

/// `default_config` of a toolset in a request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct DefaultConfigParams {
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Default `always_allow` for the built-in toolset, `always_ask` for MCP toolsets.
    #[serde(default)]
    pub permission_policy: Option<PermissionPolicy>,
}

/// The built-in toolset in a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AgentToolsetParams {
    /// Defaults for every built-in tool.
    #[serde(default)]
    pub default_config: Option<DefaultConfigParams>,
    /// Per-tool overrides.
    #[serde(default)]
    pub configs: Option<Vec<ToolConfigParams>>,
}

/// A per-tool override of the built-in toolset in a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ToolConfigParams {
    /// One of the eight built-in tool names.
    pub name: String,
    /// Optional; must equal `name`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Overrides the default.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Overrides the default.
    #[serde(default)]
    pub permission_policy: Option<PermissionPolicy>,
    /// `web_fetch`/`web_search` only; exclusive with `blocked_domains`.
    #[serde(default)]
    pub allowed_domains: Option<Vec<String>>,
    /// `web_fetch`/`web_search` only; exclusive with `allowed_domains`.
    #[serde(default)]
    pub blocked_domains: Option<Vec<String>>,
    /// `web_fetch` only.
    #[serde(default)]
    pub max_content_tokens: Option<u64>,
    /// `web_fetch` only.
    #[serde(default)]
    pub url_sources: Option<UrlSourcesParams>,
    /// `web_search` only.
    #[serde(default)]
    pub user_location: Option<UserLocation>,
}

/// An MCP toolset in a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct McpToolsetParams {
    /// Must name one of the agent's `mcp_servers`.
    pub mcp_server_name: String,
    /// Defaults for every tool of the server.
    #[serde(default)]
    pub default_config: Option<DefaultConfigParams>,
    /// Per-tool overrides.
    #[serde(default)]
    pub configs: Option<Vec<McpToolConfigParams>>,
}

/// A per-tool override of an MCP toolset in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct McpToolConfigParams {
    /// The MCP tool's name, 1–128 characters.
    pub name: String,
    /// Overrides the default.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Overrides the default.
    #[serde(default)]
    pub permission_policy: Option<PermissionPolicy>,
}

/// A custom tool in a request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CustomToolParams {
    /// 1–128 characters of `[A-Za-z0-9_-]`.
    pub name: String,
    /// Shown to the model.
    pub description: String,
    /// A JSON schema whose `type` is `"object"`.
    pub input_schema: Value,
}

/// One `url_sources` entry in a request: `"all"`, `"none"` or the object form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum UrlSourceParam {
    /// `"all"` or `"none"`.
    Word(String),
    /// `{"type": …}`.
    Object(UrlSource),
}

/// `url_sources` of `web_fetch` in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UrlSourcesParams {
    /// `all`/`none` only.
    #[serde(default)]
    pub user_input: Option<UrlSourceParam>,
    /// Any form.
    #[serde(default)]
    pub client_tool_results: Option<UrlSourceParam>,
    /// Any form.
    #[serde(default)]
    pub server_tool_results: Option<UrlSourceParam>,
}

// ---------------------------------------------------------------------------------------------
// Resolved forms (stored in records and rendered)

/// A resolved tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Tool {
    /// The built-in toolset.
    #[serde(rename = "agent_toolset_20260401")]
    AgentToolset(AgentToolset),
    /// Tools of one MCP server.
    #[serde(rename = "mcp_toolset")]
    McpToolset(McpToolset),
    /// A client-executed tool.
    #[serde(rename = "custom")]
    Custom(CustomTool),
}

/// A resolved `default_config`: both keys always present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultConfig {
    /// Whether tools are enabled unless overridden.
    pub enabled: bool,
    /// The policy unless overridden.
    pub permission_policy: PermissionPolicy,
}

/// The resolved built-in toolset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentToolset {
    /// Defaults.
    pub default_config: DefaultConfig,
    /// One resolved entry per override given.
    pub configs: Vec<ToolConfig>,
}

/// A resolved per-tool override. Tool-specific keys are present (possibly `null`) only for the
/// tools they belong to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolConfig {
    /// The tool.
    pub name: BuiltinTool,
    /// Equal to `name`.
    #[serde(rename = "type")]
    pub kind: BuiltinTool,
    /// Resolved.
    pub enabled: bool,
    /// Resolved.
    pub permission_policy: PermissionPolicy,
    /// `web_fetch`, `web_search`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_domains: Option<Option<Vec<String>>>,
    /// `web_fetch`, `web_search`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub blocked_domains: Option<Option<Vec<String>>>,
    /// `web_fetch`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_content_tokens: Option<Option<u64>>,
    /// `web_fetch`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub url_sources: Option<Option<UrlSources>>,
    /// `web_search`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub user_location: Option<Option<UserLocation>>,
}

/// A key that is present, possibly `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A resolved MCP toolset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolset {
    /// The MCP server it draws tools from.
    pub mcp_server_name: String,
    /// Defaults.
    pub default_config: DefaultConfig,
    /// Resolved overrides.
    pub configs: Vec<McpToolConfig>,
}

/// A resolved MCP tool override.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolConfig {
    /// The MCP tool's name.
    pub name: String,
    /// Resolved.
    pub enabled: bool,
    /// Resolved.
    pub permission_policy: PermissionPolicy,
}

/// A custom tool. `input_schema` keeps every key the client sent; `properties` and `required`
/// are always present (`null` when unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomTool {
    /// The tool name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The JSON schema of its input (`type` is `"object"`).
    pub input_schema: Map<String, Value>,
}

/// Which URLs `web_fetch` may fetch from one source, in object form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum UrlSource {
    /// `{"type": "all"}`
    All,
    /// `{"type": "none"}`
    #[serde(rename = "none")]
    Nothing,
    /// URLs from these tools only.
    Only {
        /// 1–128 tool references.
        tools: Vec<ToolReference>,
    },
    /// URLs from every tool but these.
    Except {
        /// 1–128 tool references.
        tools: Vec<ToolReference>,
    },
}

/// `{"type": "tool_reference", "name": …}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "tool_reference")]
pub struct ToolReference {
    /// The referenced tool's name.
    pub name: String,
}

/// Resolved `url_sources` of `web_fetch`; unset keys are `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UrlSources {
    /// URLs typed by the user.
    pub user_input: Option<UrlSource>,
    /// URLs in custom tool results.
    pub client_tool_results: Option<UrlSource>,
    /// URLs in server tool results.
    pub server_tool_results: Option<UrlSource>,
}

/// `web_search` user location (`type` is always `approximate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "approximate")]
pub struct UserLocation {
    /// City.
    #[serde(default)]
    pub city: Option<String>,
    /// Region.
    #[serde(default)]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    #[serde(default)]
    pub country: Option<String>,
    /// IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Whether a tool may run and how its calls are approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSetting {
    /// Whether the tool is offered to the model at all.
    pub enabled: bool,
    /// How calls are approved.
    pub permission_policy: PermissionPolicy,
}

// ---------------------------------------------------------------------------------------------
// Lookups the harness uses

/// The resolved setting of built-in tool `tool`, or `None` when the agent has no
/// `agent_toolset_20260401` (the tool does not exist for it).
pub fn builtin_setting(tools: &[Tool], tool: BuiltinTool) -> Option<ToolSetting> {
    tools.iter().find_map(|t| match t {
        Tool::AgentToolset(set) => Some(
            set.configs
                .iter()
                .find(|c| c.name == tool)
                .map(|c| ToolSetting {
                    enabled: c.enabled,
                    permission_policy: c.permission_policy,
                })
                .unwrap_or(ToolSetting {
                    enabled: set.default_config.enabled,
                    permission_policy: set.default_config.permission_policy,
                }),
        ),
        _ => None,
    })
}

/// Which hosts a web tool (`web_fetch`, `web_search`) may reach, from its per-tool config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DomainRule {
    /// No list configured: any host.
    #[default]
    Any,
    /// Only these hostnames and their subdomains.
    Allowed(Vec<String>),
    /// Any host except these hostnames and their subdomains.
    Blocked(Vec<String>),
}

impl DomainRule {
    /// Whether `host` may be reached. A listed `example.com` covers `example.com` and
    /// `docs.example.com`, not `badexample.com`; comparison ignores ASCII case and a trailing
    /// dot, and a listed entry's optional path suffix is ignored here (hosts only).
    pub fn permits(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let covers = |entry: &String| {
            let domain = entry
                .split('/')
                .next()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            !domain.is_empty()
                && (host == domain
                    || host
                        .strip_suffix(&domain)
                        .is_some_and(|rest| rest.ends_with('.')))
        };
        match self {
            DomainRule::Any => true,
            DomainRule::Allowed(list) => list.iter().any(covers),
            DomainRule::Blocked(list) => !list.iter().any(covers),
        }
    }
}

/// The domain rule of built-in web tool `tool` (`Any` when no list is configured).
pub fn builtin_domains(tools: &[Tool], tool: BuiltinTool) -> DomainRule {
    let config = tools.iter().find_map(|t| match t {
        Tool::AgentToolset(set) => set.configs.iter().find(|c| c.name == tool),
        _ => None,
    });
    match config {
        Some(ToolConfig {
            allowed_domains: Some(Some(list)),
            ..
        }) => DomainRule::Allowed(list.clone()),
        Some(ToolConfig {
            blocked_domains: Some(Some(list)),
            ..
        }) => DomainRule::Blocked(list.clone()),
        _ => DomainRule::Any,
    }
}

/// The resolved setting of tool `tool` of MCP server `server`, or `None` when the agent has
/// no toolset for that server.
pub fn mcp_setting(tools: &[Tool], server: &str, tool: &str) -> Option<ToolSetting> {
    tools.iter().find_map(|t| match t {
        Tool::McpToolset(set) if set.mcp_server_name == server => Some(
            set.configs
                .iter()
                .find(|c| c.name == tool)
                .map(|c| ToolSetting {
                    enabled: c.enabled,
                    permission_policy: c.permission_policy,
                })
                .unwrap_or(ToolSetting {
                    enabled: set.default_config.enabled,
                    permission_policy: set.default_config.permission_policy,
                }),
        ),
        _ => None,
    })
}

/// The custom tool named `name`.
pub fn custom_tool<'a>(tools: &'a [Tool], name: &str) -> Option<&'a CustomTool> {
    tools.iter().find_map(|t| match t {
        Tool::Custom(custom) if custom.name == name => Some(custom),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Resolution and validation

fn resolve_default(params: Option<DefaultConfigParams>, policy: PermissionPolicy) -> DefaultConfig {
    let params = params.unwrap_or_default();
    DefaultConfig {
        enabled: params.enabled.unwrap_or(true),
        permission_policy: params.permission_policy.unwrap_or(policy),
    }
}

/// Resolves and validates the `tools` list. `field` is its JSON path (`tools`).
pub fn resolve(field: &str, tools: Vec<ToolParams>) -> Result<Vec<Tool>, FieldError> {
    validate::max_items(field, tools.len(), super::MAX_TOOLS)?;
    let mut toolset_seen = false;
    let mut mcp_seen = BTreeSet::new();
    let mut custom_seen = BTreeSet::new();
    let mut resolved = Vec::with_capacity(tools.len());
    for (i, tool) in tools.into_iter().enumerate() {
        let path = format!("{field}[{i}]");
        resolved.push(match tool {
            ToolParams::AgentToolset(set) => {
                if std::mem::replace(&mut toolset_seen, true) {
                    return Err(FieldError::new(
                        format!("{path}.type"),
                        format!("at most one {AGENT_TOOLSET} toolset is allowed"),
                    ));
                }
                Tool::AgentToolset(resolve_agent_toolset(&path, set)?)
            }
            ToolParams::McpToolset(set) => {
                validate::length(
                    &format!("{path}.mcp_server_name"),
                    &set.mcp_server_name,
                    1,
                    255,
                )?;
                if !mcp_seen.insert(set.mcp_server_name.clone()) {
                    return Err(FieldError::new(
                        format!("{path}.mcp_server_name"),
                        format!("MCP server {:?} already has a toolset", set.mcp_server_name),
                    ));
                }
                Tool::McpToolset(resolve_mcp_toolset(&path, set)?)
            }
            ToolParams::Custom(custom) => {
                let custom = resolve_custom(&path, custom)?;
                if !custom_seen.insert(custom.name.clone()) {
                    return Err(FieldError::new(
                        format!("{path}.name"),
                        format!("duplicate custom tool name {:?}", custom.name),
                    ));
                }
                Tool::Custom(custom)
            }
        });
    }
    Ok(resolved)
}

fn resolve_agent_toolset(path: &str, set: AgentToolsetParams) -> Result<AgentToolset, FieldError> {
    let default_config = resolve_default(set.default_config, PermissionPolicy::AlwaysAllow);
    let configs = set.configs.unwrap_or_default();
    let mut seen = BTreeSet::new();
    let mut resolved = Vec::with_capacity(configs.len());
    for (i, config) in configs.into_iter().enumerate() {
        let path = format!("{path}.configs[{i}]");
        let name = BuiltinTool::parse(&config.name).ok_or_else(|| {
            FieldError::new(
                format!("{path}.name"),
                "must be one of bash, edit, read, write, glob, grep, web_fetch, web_search",
            )
        })?;
        if let Some(kind) = &config.kind {
            if kind != &config.name {
                return Err(FieldError::new(format!("{path}.type"), "must equal `name`"));
            }
        }
        if !seen.insert(name) {
            return Err(FieldError::new(
                format!("{path}.name"),
                format!("duplicate config for {}", name.as_str()),
            ));
        }
        resolved.push(resolve_tool_config(&path, name, config, default_config)?);
    }
    Ok(AgentToolset {
        default_config,
        configs: resolved,
    })
}

fn only_for(path: &str, key: &str, tools: &str) -> FieldError {
    FieldError::new(format!("{path}.{key}"), format!("only applies to {tools}"))
}

fn resolve_tool_config(
    path: &str,
    name: BuiltinTool,
    config: ToolConfigParams,
    defaults: DefaultConfig,
) -> Result<ToolConfig, FieldError> {
    let web = matches!(name, BuiltinTool::WebFetch | BuiltinTool::WebSearch);
    let fetch = name == BuiltinTool::WebFetch;
    let search = name == BuiltinTool::WebSearch;
    if !web && (config.allowed_domains.is_some() || config.blocked_domains.is_some()) {
        let key = if config.allowed_domains.is_some() {
            "allowed_domains"
        } else {
            "blocked_domains"
        };
        return Err(only_for(path, key, "web_fetch and web_search"));
    }
    if !fetch && config.max_content_tokens.is_some() {
        return Err(only_for(path, "max_content_tokens", "web_fetch"));
    }
    if !fetch && config.url_sources.is_some() {
        return Err(only_for(path, "url_sources", "web_fetch"));
    }
    if !search && config.user_location.is_some() {
        return Err(only_for(path, "user_location", "web_search"));
    }
    if config.allowed_domains.is_some() && config.blocked_domains.is_some() {
        return Err(FieldError::new(
            format!("{path}.blocked_domains"),
            "cannot be set together with allowed_domains",
        ));
    }
    for (key, list) in [
        ("allowed_domains", &config.allowed_domains),
        ("blocked_domains", &config.blocked_domains),
    ] {
        if let Some(list) = list {
            domains(&format!("{path}.{key}"), list, search)?;
        }
    }
    if config.max_content_tokens == Some(0) {
        return Err(FieldError::new(
            format!("{path}.max_content_tokens"),
            "must be at least 1",
        ));
    }
    let url_sources = match config.url_sources {
        Some(sources) => Some(resolve_url_sources(
            &format!("{path}.url_sources"),
            sources,
        )?),
        None => None,
    };
    if let Some(location) = &config.user_location {
        user_location(&format!("{path}.user_location"), location)?;
    }
    Ok(ToolConfig {
        name,
        kind: name,
        enabled: config.enabled.unwrap_or(defaults.enabled),
        permission_policy: config
            .permission_policy
            .unwrap_or(defaults.permission_policy),
        allowed_domains: web.then_some(config.allowed_domains),
        blocked_domains: web.then_some(config.blocked_domains),
        max_content_tokens: fetch.then_some(config.max_content_tokens),
        url_sources: fetch.then_some(url_sources),
        user_location: search.then_some(config.user_location),
    })
}

fn domains(field: &str, list: &[String], allow_path: bool) -> Result<(), FieldError> {
    validate::non_empty_items(field, list.len(), MAX_DOMAINS)?;
    for (i, domain) in list.iter().enumerate() {
        let host = if allow_path {
            domain.split('/').next().unwrap_or("")
        } else {
            domain.as_str()
        };
        validate::hostname(&format!("{field}[{i}]"), host, false)?;
    }
    Ok(())
}

fn user_location(field: &str, location: &UserLocation) -> Result<(), FieldError> {
    if let Some(country) = &location.country {
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                format!("{field}.country"),
                "must be an ISO 3166-1 alpha-2 code such as \"US\"",
            ));
        }
    }
    for (key, value) in [
        ("city", &location.city),
        ("region", &location.region),
        ("timezone", &location.timezone),
    ] {
        if let Some(value) = value {
            validate::length(&format!("{field}.{key}"), value, 1, 255)?;
        }
    }
    Ok(())
}

fn resolve_url_sources(field: &str, params: UrlSourcesParams) -> Result<UrlSources, FieldError> {
    let one = |key: &str, param: Option<UrlSourceParam>, lists: bool| {
        let path = format!("{field}.{key}");
        let source = match param {
            None => return Ok(None),
            Some(UrlSourceParam::Word(word)) => match word.as_str() {
                "all" => UrlSource::All,
                "none" => UrlSource::Nothing,
                _ => return Err(FieldError::new(path, "must be \"all\" or \"none\"")),
            },
            Some(UrlSourceParam::Object(source)) => source,
        };
        match &source {
            UrlSource::Only { tools } | UrlSource::Except { tools } => {
                if !lists {
                    return Err(FieldError::new(path, "must be all or none"));
                }
                validate::non_empty_items(
                    &format!("{path}.tools"),
                    tools.len(),
                    MAX_TOOL_REFERENCES,
                )?;
                for (i, tool) in tools.iter().enumerate() {
                    validate::length(&format!("{path}.tools[{i}].name"), &tool.name, 1, 128)?;
                }
            }
            UrlSource::All | UrlSource::Nothing => {}
        }
        Ok(Some(source))
    };
    Ok(UrlSources {
        user_input: one("user_input", params.user_input, false)?,
        client_tool_results: one("client_tool_results", params.client_tool_results, true)?,
        server_tool_results: one("server_tool_results", params.server_tool_results, true)?,
    })
}

fn resolve_mcp_toolset(path: &str, set: McpToolsetParams) -> Result<McpToolset, FieldError> {
    let default_config = resolve_default(set.default_config, PermissionPolicy::AlwaysAsk);
    let mut seen = BTreeSet::new();
    let mut configs = Vec::new();
    for (i, config) in set.configs.unwrap_or_default().into_iter().enumerate() {
        let field = format!("{path}.configs[{i}].name");
        validate::length(&field, &config.name, 1, 128)?;
        if !seen.insert(config.name.clone()) {
            return Err(FieldError::new(
                field,
                format!("duplicate config for {:?}", config.name),
            ));
        }
        configs.push(McpToolConfig {
            name: config.name,
            enabled: config.enabled.unwrap_or(default_config.enabled),
            permission_policy: config
                .permission_policy
                .unwrap_or(default_config.permission_policy),
        });
    }
    Ok(McpToolset {
        mcp_server_name: set.mcp_server_name,
        default_config,
        configs,
    })
}

/// Whether `name` is a valid custom tool name: 1–128 of `[A-Za-z0-9_-]`.
pub fn is_custom_tool_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn resolve_custom(path: &str, custom: CustomToolParams) -> Result<CustomTool, FieldError> {
    if !is_custom_tool_name(&custom.name) {
        return Err(FieldError::new(
            format!("{path}.name"),
            "must be 1 to 128 characters of A-Z, a-z, 0-9, `_` or `-`",
        ));
    }
    let field = format!("{path}.input_schema");
    let Value::Object(mut schema) = custom.input_schema else {
        return Err(FieldError::new(field, "must be a JSON object"));
    };
    if schema.get("type") != Some(&Value::String("object".to_owned())) {
        return Err(FieldError::new(
            format!("{field}.type"),
            "must be \"object\"",
        ));
    }
    match schema.get("properties") {
        None | Some(Value::Null) | Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(FieldError::new(
                format!("{field}.properties"),
                "must be an object",
            ))
        }
    }
    match schema.get("required") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(FieldError::new(
                format!("{field}.required"),
                "must be an array of strings",
            ))
        }
    }
    schema.entry("properties").or_insert(Value::Null);
    schema.entry("required").or_insert(Value::Null);
    Ok(CustomTool {
        name: custom.name,
        description: custom.description,
        input_schema: schema,
    })
}

#[cfg(test)]
mod domain_tests {
    use super::DomainRule;

    #[test]
    fn domain_rules_cover_subdomains_only() {
        let allowed = DomainRule::Allowed(vec!["example.com".into(), "docs.rs/".into()]);
        assert!(allowed.permits("example.com"));
        assert!(allowed.permits("Docs.Example.com."));
        assert!(allowed.permits("docs.rs"));
        assert!(!allowed.permits("badexample.com"));
        assert!(!allowed.permits("example.com.evil.net"));
        let blocked = DomainRule::Blocked(vec!["evil.net".into()]);
        assert!(!blocked.permits("a.evil.net"));
        assert!(blocked.permits("example.com"));
        assert!(DomainRule::Any.permits("anything"));
    }
}
