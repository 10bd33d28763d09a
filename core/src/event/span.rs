//! Payloads of `span.*` events: model requests and outcome evaluations.

use serde::{Deserialize, Serialize};

use super::usage::ModelUsage;
use crate::ids::{EventId, OutcomeId};

/// `span.model_request_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelRequestEnd {
    /// The matching `span.model_request_start`.
    pub model_request_start_id: EventId,
    /// Tokens used.
    pub model_usage: ModelUsage,
    /// Whether the request failed.
    pub is_error: Option<bool>,
}

/// `span.outcome_evaluation_start` and `span.outcome_evaluation_ongoing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeEvaluation {
    /// The outcome graded.
    pub outcome_id: OutcomeId,
    /// 0-based iteration.
    pub iteration: u32,
}

/// The state of an outcome evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    /// Defined, not started.
    Pending,
    /// The agent is working on it.
    Running,
    /// The grader is running.
    Evaluating,
    /// Done: satisfied.
    Satisfied,
    /// The agent must revise.
    NeedsRevision,
    /// Done: out of iterations.
    MaxIterationsReached,
    /// Done: the grader failed.
    Failed,
    /// Done: interrupted.
    Interrupted,
}

/// `span.outcome_evaluation_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeEvaluationEnd {
    /// The outcome graded.
    pub outcome_id: OutcomeId,
    /// 0-based iteration.
    pub iteration: u32,
    /// The matching `span.outcome_evaluation_start`.
    pub outcome_evaluation_start_id: EventId,
    /// The verdict.
    pub result: OutcomeResult,
    /// The grader's explanation.
    pub explanation: String,
    /// The grader's tokens.
    pub usage: ModelUsage,
}
