//! Payloads of `agent.*` events: messages, tool calls and their results, thread messages.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::content::ContentBlock;
use crate::ids::{EventId, ThreadId};

/// `agent.message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMessage {
    /// Text or redacted blocks.
    pub content: Vec<ContentBlock>,
}

/// The permission a policy gave a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Runs without asking.
    Allow,
    /// Waits for `user.tool_confirmation`.
    Ask,
    /// Refused.
    Deny,
}

/// How the permission was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evaluation {
    /// Policy `always_allow`.
    AlwaysAllow,
    /// Policy `always_ask`.
    AlwaysAsk,
    /// Policy `auto`, with the classifier's verdict.
    Auto {
        /// The verdict.
        evaluated_permission: AutoPermission,
    },
}

/// The `auto` policy's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AutoPermission {
    /// Allowed.
    Allow,
    /// Ask the user.
    Ask {
        /// Why.
        reason_code: String,
    },
    /// Denied.
    Deny {
        /// Why.
        reason_code: String,
    },
}

/// `agent.tool_use` (a built-in tool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    /// The tool, e.g. `bash`.
    pub name: String,
    /// Its input.
    pub input: Map<String, Value>,
    /// The policy's decision.
    pub evaluated_permission: Option<Permission>,
    /// How it was decided.
    pub evaluation: Option<Evaluation>,
    /// Set when cross-posted from a subagent thread.
    pub session_thread_id: Option<ThreadId>,
}

/// `agent.tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentToolResult {
    /// The `agent.tool_use` it answers.
    pub tool_use_id: EventId,
    /// The result blocks.
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    pub is_error: Option<bool>,
}

/// `agent.mcp_tool_use`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolUse {
    /// The MCP server.
    pub mcp_server_name: String,
    /// The tool.
    pub name: String,
    /// Its input.
    pub input: Map<String, Value>,
    /// The policy's decision.
    pub evaluated_permission: Option<Permission>,
    /// How it was decided.
    pub evaluation: Option<Evaluation>,
    /// Set when cross-posted from a subagent thread.
    pub session_thread_id: Option<ThreadId>,
}

/// `agent.mcp_tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpToolResult {
    /// The `agent.mcp_tool_use` it answers.
    pub mcp_tool_use_id: EventId,
    /// The result blocks.
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    pub is_error: Option<bool>,
}

/// `agent.custom_tool_use`: the client runs the tool and answers with
/// `user.custom_tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomToolUse {
    /// The custom tool.
    pub name: String,
    /// Its input.
    pub input: Map<String, Value>,
    /// Set when cross-posted from a subagent thread.
    pub session_thread_id: Option<ThreadId>,
}

/// `agent.thread_message_sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMessageSent {
    /// The receiving thread.
    pub to_session_thread_id: ThreadId,
    /// The receiving agent.
    pub to_agent_name: Option<String>,
    /// The message.
    pub content: Vec<ContentBlock>,
}

/// `agent.thread_message_received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMessageReceived {
    /// The sending thread.
    pub from_session_thread_id: ThreadId,
    /// The sending agent.
    pub from_agent_name: Option<String>,
    /// The message.
    pub content: Vec<ContentBlock>,
}
