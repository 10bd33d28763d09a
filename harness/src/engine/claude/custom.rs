//! The agent's custom tools as an MCP server Claude Code reaches over its stdio control
//! protocol (`--mcp-config` with an `sdk` server: each MCP message arrives as a
//! `control_request`/`mcp_message` and its answer goes back in the `control_response`).
//!
//! The server answers `initialize`, `tools/list` (the agent's custom tools) and `ping` at once;
//! a `tools/call` is the call Claude Code made (its `_meta` names Claude Code's tool-use id),
//! recorded as `agent.custom_tool_use` and answered with the client's
//! `user.custom_tool_result`. Pure: JSON in, JSON out.

use managed_agents_core::agent::tools::Tool;
use managed_agents_core::event::ContentBlock;
use serde_json::{json, Value};

/// The MCP server's name; Claude Code calls its tools `mcp__custom__<name>`.
pub(crate) const SERVER: &str = "custom";

/// The MCP protocol version the server speaks.
const PROTOCOL: &str = "2025-06-18";

/// Claude Code's name of custom tool `name`.
pub(crate) fn claude_name(name: &str) -> String {
    format!("mcp__{SERVER}__{name}")
}

/// The custom tool Claude Code's tool `claude` is, if it is one.
pub(crate) fn custom_name(claude: &str) -> Option<&str> {
    claude
        .strip_prefix("mcp__")?
        .strip_prefix(SERVER)?
        .strip_prefix("__")
}

/// The agent's custom tools.
pub(crate) fn tools(
    agent_tools: &[Tool],
) -> impl Iterator<Item = &managed_agents_core::agent::tools::CustomTool> {
    agent_tools.iter().filter_map(|t| match t {
        Tool::Custom(custom) => Some(custom),
        _ => None,
    })
}

/// The server's entry in `--mcp-config`'s `mcpServers` (named [`SERVER`]).
pub(crate) fn sdk_server() -> Value {
    json!({"type": "sdk", "name": SERVER})
}

/// What to do with one MCP message from Claude Code.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Message {
    /// Answer with this JSON-RPC message (`None`: a notification, acknowledged empty).
    Answer(Option<Value>),
    /// A call of a custom tool: answer once the client sent its result.
    Call {
        /// The JSON-RPC id to answer.
        rpc_id: Value,
        /// Claude Code's tool-use id of the call, when given.
        tool_use_id: Option<String>,
    },
}

fn result(id: &Value, result: Value) -> Option<Value> {
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// Reads one MCP message sent to the server.
pub(crate) fn handle(agent_tools: &[Tool], message: &Value) -> Message {
    let listed = || {
        tools(agent_tools)
            .map(|t| {
                // The stored schema keeps `required: null` when unset; MCP clients want it
                // absent.
                let schema: serde_json::Map<String, Value> = t
                    .input_schema
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                json!({"name": t.name, "description": t.description, "inputSchema": schema})
            })
            .collect()
    };
    serve(SERVER, listed, message)
}

/// Reads one MCP message sent to the harness's server `server`, whose tools are `listed`
/// (MCP `tools/list` entries): the custom tools' server and the coordinator's team's
/// (`super::team`) answer alike.
pub(crate) fn serve(server: &str, listed: impl FnOnce() -> Vec<Value>, message: &Value) -> Message {
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str);
    let Some(id) = id else {
        return Message::Answer(None);
    };
    Message::Answer(match method {
        Some("initialize") => result(
            &id,
            json!({
                "protocolVersion": PROTOCOL,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": server, "version": env!("CARGO_PKG_VERSION")},
            }),
        ),
        Some("tools/list") => result(&id, json!({"tools": listed()})),
        Some("tools/call") => {
            let tool_use_id = message
                .pointer("/params/_meta/claudecode~1toolUseId")
                .and_then(Value::as_str)
                .map(str::to_owned);
            return Message::Call {
                rpc_id: id,
                tool_use_id,
            };
        }
        Some("ping") => result(&id, json!({})),
        other => Some(json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": -32601,
            "message": format!("method {} not found", other.unwrap_or("(none)")),
        }})),
    })
}

/// The answer to a `tools/call`: the client's result blocks (text carried, others named).
pub(crate) fn call_result(rpc_id: &Value, content: &[ContentBlock], is_error: bool) -> Value {
    let blocks: Vec<Value> = content
        .iter()
        .map(|block| match serde_json::to_value(block) {
            Ok(v) if v.get("type").and_then(Value::as_str) == Some("text") => v,
            Ok(v) => {
                let kind = v.get("type").and_then(Value::as_str).unwrap_or("block");
                json!({"type": "text", "text": format!("[{kind}]")})
            }
            Err(_) => json!({"type": "text", "text": "[block]"}),
        })
        .collect();
    json!({"jsonrpc": "2.0", "id": rpc_id, "result": {"content": blocks, "isError": is_error}})
}

/// The error answer to a `tools/call` that cannot be served.
pub(crate) fn call_error(rpc_id: &Value, text: &str) -> Value {
    call_result(rpc_id, &[ContentBlock::text(text)], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_tools() -> Vec<Tool> {
        let params = serde_json::from_value(json!([{"type": "custom", "name": "get_weather",
            "description": "The weather", "input_schema": {"type": "object",
            "properties": {"city": {"type": "string"}}}}]))
        .expect("params");
        managed_agents_core::agent::tools::resolve("tools", params).expect("tools")
    }

    #[test]
    fn names() {
        assert_eq!(claude_name("get_weather"), "mcp__custom__get_weather");
        assert_eq!(custom_name("mcp__custom__get_weather"), Some("get_weather"));
        assert_eq!(custom_name("mcp__other__get_weather"), None);
        assert_eq!(custom_name("Bash"), None);
    }

    /// The messages Claude Code 2.1.332 sent to an `sdk` server, as recorded.
    #[test]
    fn a_recorded_session_of_the_server() {
        let tools = agent_tools();
        let init = json!({"method":"initialize","params":{"protocolVersion":"2025-11-25",
            "capabilities":{},"clientInfo":{"name":"claude-code","version":"2.1.332"}},
            "jsonrpc":"2.0","id":0});
        let Message::Answer(Some(answer)) = handle(&tools, &init) else {
            panic!()
        };
        assert_eq!(answer["id"], 0);
        assert_eq!(answer["result"]["capabilities"], json!({"tools": {}}));
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        assert_eq!(handle(&tools, &note), Message::Answer(None));
        let list = json!({"method":"tools/list","jsonrpc":"2.0","id":1});
        let Message::Answer(Some(answer)) = handle(&tools, &list) else {
            panic!()
        };
        assert_eq!(answer["result"]["tools"][0]["name"], "get_weather");
        let schema = &answer["result"]["tools"][0]["inputSchema"];
        assert_eq!(schema["properties"]["city"]["type"], "string");
        assert!(schema.get("required").is_none(), "{schema}");
        let call = json!({"method":"tools/call","params":{"name":"get_weather",
            "arguments":{"city":"Paris"},"_meta":{"claudecode/toolUseId":
            "toolu_HO22xvNK2vBlJc9XuSCP3PQO","progressToken":2}},"jsonrpc":"2.0","id":2});
        assert_eq!(
            handle(&tools, &call),
            Message::Call {
                rpc_id: json!(2),
                tool_use_id: Some("toolu_HO22xvNK2vBlJc9XuSCP3PQO".into())
            }
        );
        let unknown = json!({"method":"resources/list","jsonrpc":"2.0","id":3});
        let Message::Answer(Some(answer)) = handle(&tools, &unknown) else {
            panic!()
        };
        assert_eq!(answer["error"]["code"], -32601);
    }

    #[test]
    fn results() {
        let v = call_result(&json!(2), &[ContentBlock::text("sunny")], false);
        assert_eq!(
            v,
            json!({"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"sunny"}],"isError":false}})
        );
        assert_eq!(call_error(&json!(3), "gone")["result"]["isError"], true);
    }
}
