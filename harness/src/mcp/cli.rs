//! The agent's MCP servers for the agent CLIs in the sandbox (`claude`, `codex`): the CLI is
//! the MCP client and reaches each server through the egress proxy, whose credential injection
//! (`door::credentials`) adds the vault's token on the way out (`https` URLs only), so the
//! configuration carries no secret. Pure.
//!
//! Claude Code names a server's tools `mcp__<server>__<tool>`, with every character of the
//! server name outside `[A-Za-z0-9_-]` replaced by `_`; [`claude_call`] maps such a name back to
//! the agent's server and the tool. Its permission prompts let every call's toolset decide.
//!
//! Codex is told to ask before every MCP call (`default_tools_approval_mode = "prompt"`: an
//! `mcpServer/elicitation/request` whose `_meta.codex_approval_kind` is `mcp_tool_call`), which
//! the engine answers from the call's toolset, and is not given the disabled tools
//! ([`codex_overrides`]: `enabled_tools` / `disabled_tools`). [`asks`] says whether any MCP
//! tool needs a confirmation (Codex must then run with an approval policy that asks at all).

use managed_agents_core::agent::tools::{McpToolset, Tool};
use managed_agents_core::agent::{McpServer, PermissionPolicy};
use serde_json::{json, Map, Value};

/// The agent's servers whose toolset can offer a tool (the others are not configured).
pub(crate) fn offered<'a>(
    servers: &'a [McpServer],
    tools: &'a [Tool],
) -> impl Iterator<Item = &'a McpServer> {
    servers.iter().filter(|s| super::offers_any(tools, &s.name))
}

/// The `mcpServers` entries of Claude Code's `--mcp-config` for the agent's servers
/// (streamable HTTP at the server's URL).
pub(crate) fn claude_servers(servers: &[McpServer], tools: &[Tool]) -> Map<String, Value> {
    offered(servers, tools)
        .map(|s| (s.name.clone(), json!({"type": "http", "url": s.url})))
        .collect()
}

/// Claude Code's form of a server name.
fn claude_server_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The agent's server and the tool Claude Code's tool `claude` calls, when it is a tool of
/// one of `servers` (the longest matching server name wins).
pub(crate) fn claude_call(servers: &[McpServer], claude: &str) -> Option<(String, String)> {
    let rest = claude.strip_prefix("mcp__")?;
    servers
        .iter()
        .filter_map(|s| {
            let tool = rest
                .strip_prefix(claude_server_name(&s.name).as_str())?
                .strip_prefix("__")?;
            (!tool.is_empty()).then(|| (s.name.clone(), tool.to_owned()))
        })
        .max_by_key(|(server, _)| server.len())
}

/// Whether any tool of the agent's MCP toolsets waits for a confirmation.
pub(crate) fn asks(servers: &[McpServer], tools: &[Tool]) -> bool {
    let asking = |enabled: bool, policy| enabled && policy == PermissionPolicy::AlwaysAsk;
    offered(servers, tools)
        .filter_map(|s| toolset(tools, &s.name))
        .any(|set| {
            asking(
                set.default_config.enabled,
                set.default_config.permission_policy,
            ) || set
                .configs
                .iter()
                .any(|c| asking(c.enabled, c.permission_policy))
        })
}

/// Codex's `-c` overrides for the agent's servers: `mcp_servers.<name>.url`, an approval
/// asked before every call, and which tools it may call: all but the disabled ones
/// (`disabled_tools`) when the toolset's default is enabled, else only the enabled ones
/// (`enabled_tools`). A server whose name is not a bare TOML key (`[A-Za-z0-9_-]`) is left
/// out.
pub(crate) fn codex_overrides(servers: &[McpServer], tools: &[Tool]) -> Vec<String> {
    let quoted = |s: &str| Value::String(s.to_owned()).to_string();
    let list = |names: Vec<&str>| {
        let quoted: Vec<String> = names.iter().map(|n| quoted(n)).collect();
        format!("[{}]", quoted.join(","))
    };
    let mut overrides = Vec::new();
    for server in offered(servers, tools) {
        let bare = !server.name.is_empty()
            && server
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let Some(set) = toolset(tools, &server.name).filter(|_| bare) else {
            continue;
        };
        let key = format!("mcp_servers.{}", server.name);
        let (name, names): (&str, Vec<&str>) = if set.default_config.enabled {
            let off = set.configs.iter().filter(|c| !c.enabled);
            ("disabled_tools", off.map(|c| c.name.as_str()).collect())
        } else {
            let on = set.configs.iter().filter(|c| c.enabled);
            ("enabled_tools", on.map(|c| c.name.as_str()).collect())
        };
        overrides.push(format!("{key}.url={}", quoted(&server.url)));
        overrides.push(format!("{key}.default_tools_approval_mode=\"prompt\""));
        overrides.push(format!("{key}.{name}={}", list(names)));
    }
    overrides
}

fn toolset<'a>(tools: &'a [Tool], server: &str) -> Option<&'a McpToolset> {
    tools.iter().find_map(|t| match t {
        Tool::McpToolset(set) if set.mcp_server_name == server => Some(set),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers() -> Vec<McpServer> {
        ["docs", "my docs", "docs__v2"]
            .iter()
            .map(|name| McpServer {
                name: (*name).to_owned(),
                url: format!("https://example.com/{}", name.len()),
            })
            .collect()
    }

    #[test]
    fn claude_names_map_back_to_server_and_tool() {
        let servers = servers();
        let call = |name: &str| claude_call(&servers, name);
        assert_eq!(
            call("mcp__docs__search"),
            Some(("docs".into(), "search".into()))
        );
        assert_eq!(
            call("mcp__my_docs__get"),
            Some(("my docs".into(), "get".into()))
        );
        assert_eq!(
            call("mcp__docs__v2__get"),
            Some(("docs__v2".into(), "get".into()))
        );
        assert_eq!(call("mcp__custom__weather"), None);
        assert_eq!(call("Bash"), None);
        assert_eq!(call("mcp__docs__"), None);
    }

    #[test]
    fn codex_asks_before_every_mcp_call_and_never_sees_disabled_tools() {
        let servers: Vec<McpServer> = ["docs", "wiki", "odd name"]
            .iter()
            .map(|name| McpServer {
                name: (*name).to_owned(),
                url: format!("https://example.com/{}", name.replace(' ', "")),
            })
            .collect();
        let tools: Vec<Tool> = managed_agents_core::agent::tools::resolve(
            "tools",
            serde_json::from_value(json!([
                {"type": "mcp_toolset", "mcp_server_name": "docs",
                 "default_config": {"permission_policy": {"type": "always_allow"}},
                 "configs": [{"name": "delete", "enabled": false}]},
                {"type": "mcp_toolset", "mcp_server_name": "wiki",
                 "default_config": {"enabled": false},
                 "configs": [{"name": "read", "enabled": true}]},
                {"type": "mcp_toolset", "mcp_server_name": "odd name",
                 "default_config": {"permission_policy": {"type": "always_allow"}}},
            ]))
            .expect("params"),
        )
        .expect("tools");
        assert_eq!(
            codex_overrides(&servers, &tools),
            vec![
                r#"mcp_servers.docs.url="https://example.com/docs""#,
                r#"mcp_servers.docs.default_tools_approval_mode="prompt""#,
                r#"mcp_servers.docs.disabled_tools=["delete"]"#,
                r#"mcp_servers.wiki.url="https://example.com/wiki""#,
                r#"mcp_servers.wiki.default_tools_approval_mode="prompt""#,
                r#"mcp_servers.wiki.enabled_tools=["read"]"#,
            ]
        );
        // wiki's `read` is always_ask (the MCP default).
        assert!(asks(&servers, &tools));
        assert!(!asks(&servers[..1], &tools));
    }

    #[test]
    fn configured_servers_are_those_with_tools_on_offer() {
        let tools: Vec<Tool> = managed_agents_core::agent::tools::resolve(
            "tools",
            serde_json::from_value(json!([
                {"type": "mcp_toolset", "mcp_server_name": "docs"},
                {"type": "mcp_toolset", "mcp_server_name": "my docs",
                 "default_config": {"enabled": false}},
            ]))
            .expect("params"),
        )
        .expect("tools");
        let config = claude_servers(&servers(), &tools);
        assert_eq!(
            Value::Object(config),
            json!({"docs": {"type": "http", "url": "https://example.com/4"}})
        );
    }
}
