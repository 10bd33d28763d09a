//! The session event wire model: every persisted event type, the stream-only previews, and the
//! params clients send.
//!
//! An [`Event`] is the envelope (`id`, `processed_at`) around a [`Body`], an enum internally
//! tagged on `type`. Serialized, the envelope and the body's fields form one flat JSON object
//! exactly as the API shows it. Optional response fields serialize as `null`, never omitted,
//! except on `session.updated`, which carries only the fields that changed.
//!
//! Server events always have a `processed_at`; deserializing one without it fails. Client
//! events (`user.*`, `system.message`) may have `null`: queued behind earlier input.

mod agent;
mod content;
mod error;
mod params;
mod preview;
mod span;
mod status;
mod usage;
mod user;
mod workflow;

use serde::{Deserialize, Serialize};

use crate::ids::EventId;
use crate::time::Timestamp;

pub use agent::{
    AgentMessage, AgentToolResult, AutoPermission, CustomToolUse, Evaluation, McpToolResult,
    McpToolUse, Permission, ThreadMessageReceived, ThreadMessageSent, ToolUse,
};
pub use content::{
    Citations, ContentBlock, DocumentSource, ImageSource, PlainText, Position, TextBlock,
};
pub use error::{ErrorKind, RetryStatus, SessionError};
pub use params::{
    validate_initial, within, CustomToolResultParams, DefineOutcomeParams, EventParams,
    InterruptParams, SystemMessageParams, ToolConfirmationParams, ToolResultParams,
    UserMessageParams, DEFAULT_MAX_ITERATIONS, MAX_INITIAL_EVENTS, MAX_ITERATIONS,
    MAX_RUBRIC_CHARS, MAX_SYSTEM_BLOCKS,
};
pub use preview::{Delta, Preview, Previewed};
pub use span::{ModelRequestEnd, OutcomeEvaluation, OutcomeEvaluationEnd, OutcomeResult};
pub use status::{
    ErrorEvent, RefusalCategory, SessionUpdated, SessionUsage, StatusIdle, StopDetails, StopReason,
    ThreadCreated, ThreadStatus, ThreadStatusIdle,
};
pub use usage::{
    Budget, CacheCreation, Currency, ModelUsage, MonetaryAmount, ServerToolUsage, Speed, Usage,
};
pub use user::{
    Confirmation, CustomToolResult, DefineOutcome, Interrupt, Rubric, SystemMessage,
    ToolConfirmation, UserMessage, UserToolResult,
};
pub use workflow::{
    Phase, PhaseEnded, PhaseStarted, RunCreated, RunEnded, RunError, RunErrorEvent, RunErrorKind,
    RunResult, RunStatus,
};

/// One persisted session event: the envelope plus its typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Raw")]
pub struct Event {
    /// The event id (`sevt_…`).
    pub id: EventId,
    /// When it was processed; `null` only for client events still queued.
    pub processed_at: Option<Timestamp>,
    /// The typed payload, tagged by `type`.
    #[serde(flatten)]
    pub body: Body,
}

#[derive(Deserialize)]
struct Raw {
    id: EventId,
    processed_at: Option<Timestamp>,
    #[serde(flatten)]
    body: Body,
}

/// A server event whose `processed_at` is missing or `null`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} event {id} must have a non-null processed_at")]
pub struct Unprocessed {
    /// The event type.
    pub kind: &'static str,
    /// The event id.
    pub id: EventId,
}

impl TryFrom<Raw> for Event {
    type Error = Unprocessed;

    fn try_from(raw: Raw) -> Result<Self, Self::Error> {
        if raw.processed_at.is_none() && !raw.body.is_client() {
            return Err(Unprocessed {
                kind: raw.body.type_name(),
                id: raw.id,
            });
        }
        Ok(Event {
            id: raw.id,
            processed_at: raw.processed_at,
            body: raw.body,
        })
    }
}

impl Event {
    /// A server event processed at `at`.
    pub fn new(id: EventId, at: Timestamp, body: Body) -> Self {
        Self {
            id,
            processed_at: Some(at),
            body,
        }
    }

    /// The `type` on the wire (also the SSE `event:` name).
    pub fn type_name(&self) -> &'static str {
        self.body.type_name()
    }
}

macro_rules! bodies {
    ($( $(#[$doc:meta])* $variant:ident $( ($payload:ty) )? = $name:literal, )*) => {
        /// The typed payload of an event, internally tagged on `type`.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type")]
        pub enum Body {
            $( $(#[$doc])* #[serde(rename = $name)] $variant $( ($payload) )?, )*
        }

        impl Body {
            /// The `type` on the wire.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Body::$variant { .. } => $name, )*
                }
            }
        }

        /// Every persisted event type, in catalogue order.
        pub const TYPES: &[&str] = &[$($name),*];
    };
}

bodies! {
    /// A client message (queued until processed).
    UserMessage(UserMessage) = "user.message",
    /// A client interrupt.
    UserInterrupt(Interrupt) = "user.interrupt",
    /// A client's answer to a permission request.
    UserToolConfirmation(ToolConfirmation) = "user.tool_confirmation",
    /// A client's custom tool result.
    UserCustomToolResult(CustomToolResult) = "user.custom_tool_result",
    /// A self-hosted worker's built-in tool result.
    UserToolResult(UserToolResult) = "user.tool_result",
    /// A client-defined outcome.
    UserDefineOutcome(DefineOutcome) = "user.define_outcome",
    /// Client-added system context.
    SystemMessage(SystemMessage) = "system.message",
    /// An agent message.
    AgentMessage(AgentMessage) = "agent.message",
    /// The agent is thinking (no text).
    AgentThinking = "agent.thinking",
    /// A built-in tool call.
    AgentToolUse(ToolUse) = "agent.tool_use",
    /// A built-in tool result.
    AgentToolResult(AgentToolResult) = "agent.tool_result",
    /// An MCP tool call.
    AgentMcpToolUse(McpToolUse) = "agent.mcp_tool_use",
    /// An MCP tool result.
    AgentMcpToolResult(McpToolResult) = "agent.mcp_tool_result",
    /// A custom tool call the client must answer.
    AgentCustomToolUse(CustomToolUse) = "agent.custom_tool_use",
    /// A message to another thread.
    AgentThreadMessageSent(ThreadMessageSent) = "agent.thread_message_sent",
    /// A message from another thread.
    AgentThreadMessageReceived(ThreadMessageReceived) = "agent.thread_message_received",
    /// The thread's context was compacted.
    AgentThreadContextCompacted = "agent.thread_context_compacted",
    /// The session started running.
    SessionStatusRunning = "session.status_running",
    /// The session went idle.
    SessionStatusIdle(StatusIdle) = "session.status_idle",
    /// The session is waiting to retry.
    SessionStatusRescheduled = "session.status_rescheduled",
    /// The session ended for good.
    SessionStatusTerminated = "session.status_terminated",
    /// Something failed.
    SessionError(ErrorEvent) = "session.error",
    /// Title, metadata, agent or budget changed.
    SessionUpdated(SessionUpdated) = "session.updated",
    /// A cumulative usage snapshot.
    SessionUsage(SessionUsage) = "session.usage",
    /// The session was deleted.
    SessionDeleted = "session.deleted",
    /// A thread was created.
    SessionThreadCreated(ThreadCreated) = "session.thread_created",
    /// A thread started running.
    SessionThreadStatusRunning(ThreadStatus) = "session.thread_status_running",
    /// A thread went idle.
    SessionThreadStatusIdle(ThreadStatusIdle) = "session.thread_status_idle",
    /// A thread is waiting to retry.
    SessionThreadStatusRescheduled(ThreadStatus) = "session.thread_status_rescheduled",
    /// A thread ended.
    SessionThreadStatusTerminated(ThreadStatus) = "session.thread_status_terminated",
    /// A model request started.
    SpanModelRequestStart = "span.model_request_start",
    /// A model request ended.
    SpanModelRequestEnd(ModelRequestEnd) = "span.model_request_end",
    /// An outcome evaluation started.
    SpanOutcomeEvaluationStart(OutcomeEvaluation) = "span.outcome_evaluation_start",
    /// An outcome evaluation is still going.
    SpanOutcomeEvaluationOngoing(OutcomeEvaluation) = "span.outcome_evaluation_ongoing",
    /// An outcome evaluation ended.
    SpanOutcomeEvaluationEnd(OutcomeEvaluationEnd) = "span.outcome_evaluation_end",
    /// A workflow run was created.
    WorkflowRunCreated(RunCreated) = "workflow_run.created",
    /// A workflow run is running.
    WorkflowRunStatusRunning(RunStatus) = "workflow_run.status_running",
    /// A workflow run is idle.
    WorkflowRunStatusIdle(RunStatus) = "workflow_run.status_idle",
    /// A workflow phase started.
    WorkflowRunPhaseStarted(PhaseStarted) = "workflow_run.phase_started",
    /// A workflow phase ended.
    WorkflowRunPhaseEnded(PhaseEnded) = "workflow_run.phase_ended",
    /// A workflow run ended.
    WorkflowRunStatusEnded(RunEnded) = "workflow_run.status_ended",
    /// A workflow failed.
    WorkflowRunError(RunErrorEvent) = "workflow_run.error",
}

impl Body {
    /// Whether a client sends this kind (`user.*`, `system.message`); only these may have a
    /// `null` `processed_at`.
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Body::UserMessage(_)
                | Body::UserInterrupt(_)
                | Body::UserToolConfirmation(_)
                | Body::UserCustomToolResult(_)
                | Body::UserToolResult(_)
                | Body::UserDefineOutcome(_)
                | Body::SystemMessage(_)
        )
    }
}
