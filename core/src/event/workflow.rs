//! Payloads of `workflow_run.*` events (multiagent workflows).

use serde::{Deserialize, Serialize};

use crate::ids::EventId;

/// One phase of a workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Phase id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
}

/// `workflow_run.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCreated {
    /// The run.
    pub workflow_run_id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Its phases.
    pub phases: Vec<Phase>,
}

/// `workflow_run.status_running` and `workflow_run.status_idle`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The run.
    pub workflow_run_id: String,
}

/// `workflow_run.phase_started`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseStarted {
    /// The run.
    pub workflow_run_id: String,
    /// The phase.
    pub workflow_run_phase_id: String,
}

/// `workflow_run.phase_ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseEnded {
    /// The run.
    pub workflow_run_id: String,
    /// The phase.
    pub workflow_run_phase_id: String,
    /// The matching `workflow_run.phase_started` event.
    pub phase_started_id: EventId,
}

/// What kind of workflow failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunErrorKind {
    /// Timed out.
    TimeoutError,
    /// The workflow program failed.
    ProgramError,
    /// Anything else.
    UnknownError,
    /// Too many threads.
    ThreadLimitError,
    /// Too many workflow runs.
    MaxWorkflowRunsError,
}

/// A workflow error object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunError {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: RunErrorKind,
    /// A human-readable message.
    pub message: String,
}

/// How a workflow run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunResult {
    /// It completed.
    Completed,
    /// It was stopped.
    Stopped,
    /// It failed.
    Error {
        /// Why.
        error: RunError,
    },
}

/// `workflow_run.status_ended`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    /// The run.
    pub workflow_run_id: String,
    /// How it ended.
    pub result: RunResult,
}

/// `workflow_run.error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunErrorEvent {
    /// The run, when known.
    pub workflow_run_id: Option<String>,
    /// The error.
    pub error: RunError,
}
