//! A coordinator's team tools (`crate::engine::team`: `message_agent`, `ask_advisor`,
//! `run_workflow`) as a second MCP server Claude Code reaches over its stdio control protocol,
//! served like the custom tools' ([`super::custom`]): `--mcp-config` names an `sdk` server
//! [`SERVER`], its tools are pre-allowed, and each `tools/call` is run by the harness at once
//! through the resident engine's delegation (`crate::engine::team_call`) and answered with its
//! result. Pure: names, the server's entry and its tool listing.

use serde_json::{json, Value};

use crate::model::ToolSpec;

/// The MCP server's name; Claude Code calls its tools `mcp__team__<name>`.
pub(crate) const SERVER: &str = "team";

/// Claude Code's name of team tool `name`.
pub(crate) fn claude_name(name: &str) -> String {
    format!("mcp__{SERVER}__{name}")
}

/// The team tool Claude Code's tool `claude` is, if it is one.
pub(crate) fn team_name(claude: &str) -> Option<&str> {
    claude
        .strip_prefix("mcp__")?
        .strip_prefix(SERVER)?
        .strip_prefix("__")
}

/// The server's entry in `--mcp-config`'s `mcpServers` (named [`SERVER`]).
pub(crate) fn sdk_server() -> Value {
    json!({"type": "sdk", "name": SERVER})
}

/// The team's tools as MCP `tools/list` entries.
pub(crate) fn listed(specs: &[ToolSpec]) -> Vec<Value> {
    specs
        .iter()
        .map(|s| json!({"name": s.name, "description": s.description, "inputSchema": s.input_schema}))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(claude_name("message_agent"), "mcp__team__message_agent");
        assert_eq!(team_name("mcp__team__message_agent"), Some("message_agent"));
        assert_eq!(team_name("mcp__custom__message_agent"), None);
        assert_eq!(team_name("Bash"), None);
    }

    #[test]
    fn the_listing_carries_each_spec() {
        let spec = ToolSpec {
            name: "ask_advisor".into(),
            description: "Ask".into(),
            input_schema: json!({"type": "object", "properties": {}}),
            server: None,
        };
        assert_eq!(
            listed(&[spec]),
            vec![json!({"name": "ask_advisor", "description": "Ask",
                "inputSchema": {"type": "object", "properties": {}}})]
        );
    }
}
