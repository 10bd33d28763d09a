//! Payloads of the events clients send, as persisted and echoed: `user.*` and `system.message`.

use serde::{Deserialize, Serialize};

use super::content::{ContentBlock, TextBlock};
use crate::ids::{EventId, FileId, OutcomeId, ThreadId};

/// `user.message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserMessage {
    /// Text, image, document (or redacted) blocks.
    pub content: Vec<ContentBlock>,
}

/// `user.interrupt`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Interrupt {
    /// The thread to interrupt; `null` interrupts every thread.
    pub session_thread_id: Option<ThreadId>,
}

/// The answer to a tool permission request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Confirmation {
    /// Run the tool.
    Allow,
    /// Do not run it.
    Deny,
}

/// `user.tool_confirmation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolConfirmation {
    /// The `agent.tool_use` / `agent.mcp_tool_use` event answered.
    pub tool_use_id: EventId,
    /// Allow or deny.
    pub result: Confirmation,
    /// Why, delivered to the agent (only with `deny`).
    pub deny_message: Option<String>,
    /// The subagent thread it was routed to (server-set).
    pub session_thread_id: Option<ThreadId>,
}

/// `user.custom_tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomToolResult {
    /// The `agent.custom_tool_use` event answered.
    pub custom_tool_use_id: EventId,
    /// The result blocks.
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    pub is_error: Option<bool>,
    /// The subagent thread it was routed to (server-set).
    pub session_thread_id: Option<ThreadId>,
}

/// `user.tool_result` (a built-in tool run by a self-hosted worker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserToolResult {
    /// The `agent.tool_use` event answered.
    pub tool_use_id: EventId,
    /// The result blocks.
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    pub is_error: Option<bool>,
    /// The subagent thread it was routed to (server-set).
    pub session_thread_id: Option<ThreadId>,
}

/// A grading rubric.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Rubric {
    /// Inline text (≤ 262 144 characters).
    Text {
        /// The rubric.
        content: String,
    },
    /// An uploaded file.
    File {
        /// The file.
        file_id: FileId,
    },
}

/// `user.define_outcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefineOutcome {
    /// What the outcome is.
    pub description: String,
    /// How to grade it.
    pub rubric: Rubric,
    /// Grader iterations allowed (default 3, at most 20).
    pub max_iterations: Option<u32>,
    /// The server-assigned outcome id.
    pub outcome_id: OutcomeId,
}

/// `system.message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemMessage {
    /// 1–1000 text blocks.
    pub content: Vec<TextBlock>,
}
