//! Payloads of `session.*` events: status changes and why the session stopped, errors,
//! updates, usage snapshots and thread lifecycle.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::error::SessionError;
use super::usage::{Budget, Usage};
use crate::ids::{EventId, ThreadId};

/// Why a session (or thread) went idle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopReason {
    /// The agent finished its turn (also after an interrupt).
    EndTurn,
    /// Blocked on these tool-use events until the client answers them.
    RequiresAction {
        /// `agent.tool_use` / `agent.mcp_tool_use` / `agent.custom_tool_use` event ids.
        event_ids: Vec<EventId>,
    },
    /// Transient failures exhausted their retries.
    RetriesExhausted,
    /// Paused at the session budget.
    BudgetReached,
    /// The model refused; see `stop_details`.
    Refusal,
}

/// Category of a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCategory {
    /// Cyber.
    Cyber,
    /// Bio.
    Bio,
    /// Frontier LLM.
    FrontierLlm,
    /// Reasoning extraction.
    ReasoningExtraction,
    /// General harms.
    GeneralHarms,
}

/// Details of a stop (only refusals have any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopDetails {
    /// A refusal.
    Refusal {
        /// The category, when known.
        category: Option<RefusalCategory>,
        /// An explanation, when given.
        explanation: Option<String>,
    },
}

/// `session.status_idle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusIdle {
    /// Why.
    pub stop_reason: StopReason,
    /// Refusal details.
    pub stop_details: Option<StopDetails>,
}

/// `session.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    /// The error object.
    pub error: SessionError,
}

/// Deserializes a present field (even `null`) as `Some(value)`, so that an absent field
/// (`None`, via `default`) differs from an explicit `null` (`Some(None)`).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `session.updated`: only the fields that changed are present; a present `null` means the
/// field was cleared (`title`) or removed (`budget`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionUpdated {
    /// The new title.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<Option<String>>,
    /// The full metadata bag after the change.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub metadata: Option<Option<BTreeMap<String, String>>>,
    /// The full agent snapshot after the change.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub agent: Option<Option<Value>>,
    /// The new budget (`null`: removed).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub budget: Option<Option<Budget>>,
}

/// `session.usage`: a cumulative snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionUsage {
    /// Usage so far.
    pub usage: Usage,
    /// The budget (`null` when the session has none).
    pub budget: Option<Budget>,
}

/// `session.thread_created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadCreated {
    /// The new thread.
    pub session_thread_id: ThreadId,
    /// Its agent (`anthropic.advisor` for advisor threads).
    pub agent_name: String,
    /// The workflow run that created it.
    pub workflow_run_id: Option<String>,
}

/// `session.thread_status_running` / `_rescheduled` / `_terminated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStatus {
    /// The thread.
    pub session_thread_id: ThreadId,
    /// Its agent.
    pub agent_name: String,
}

/// `session.thread_status_idle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadStatusIdle {
    /// The thread.
    pub session_thread_id: ThreadId,
    /// Its agent.
    pub agent_name: String,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Refusal details.
    pub stop_details: Option<StopDetails>,
}
