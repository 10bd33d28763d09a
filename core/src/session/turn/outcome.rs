//! The outcome loop's decisions (`user.define_outcome`): which outcome a turn grades when the
//! agent ends its turn, the `span.outcome_evaluation_*` events of one evaluation, and whether the
//! agent revises or the loop ends.
//!
//! - An outcome is *active* from the turn that consumes its `user.define_outcome` (its result
//!   `running`) until an evaluation ends it; [`to_grade`] gives the first active one of the
//!   session (outcomes are graded in definition order), with its rubric and `max_iterations`
//!   read from its definition in the log.
//! - Each evaluation is [`evaluation_start`] (`iteration`: 0 for the first, one more than the
//!   last evaluation after a `needs_revision`), any number of [`evaluation_ongoing`]
//!   heartbeats, and [`evaluation_end`] with the grader's [`Graded`] verdict.
//! - The loop ends at `satisfied` or `failed` ([`Next::Done`]). A `needs_revision` is
//!   [`Next::Revise`]: the explanation is the agent's next input (the harness's conversation
//!   shows it as a user message) and the turn goes on. A `needs_revision` from the last allowed
//!   iteration (`iteration + 1 == max_iterations`) is recorded as `max_iterations_reached` with
//!   the grader's explanation and is also [`Next::Revise`]: the agent has one final turn to
//!   acknowledge it (as the SDK documents), and since the outcome is no longer active no
//!   evaluation follows.
//! - A `user.interrupt` ends the loop with `interrupted` ([`interrupted`], part of
//!   [`super::interrupt`]): an evaluation running is closed with it; while the agent works (no
//!   evaluation open), an evaluation of the next iteration is opened and closed at once, so every
//!   `span.outcome_evaluation_end` has its start.

use super::{clock, event, in_turn};
use crate::event::{
    Body, DefineOutcome, Event, ModelUsage, OutcomeEvaluation, OutcomeEvaluationEnd, OutcomeResult,
    Rubric, DEFAULT_MAX_ITERATIONS,
};
use crate::ids::{EventId, OutcomeId};
use crate::session::ids::IdSource;
use crate::session::record::SessionRecord;
use crate::session::rejection::Rejection;
use crate::session::state::{Outcome, SessionState};
use crate::time::Timestamp;

/// The explanation of an outcome a `user.interrupt` ended.
pub const OUTCOME_INTERRUPTED: &str = "Interrupted by the user before the outcome was met.";

/// An outcome to grade now.
#[derive(Debug, Clone, PartialEq)]
pub struct Grading {
    /// The outcome.
    pub outcome_id: OutcomeId,
    /// The iteration the next evaluation has (0-based).
    pub iteration: u32,
    /// Iterations allowed.
    pub max_iterations: u32,
    /// What the outcome is.
    pub description: String,
    /// How to grade it.
    pub rubric: Rubric,
}

/// The grader's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The work meets the rubric.
    Satisfied,
    /// The agent should revise its work.
    NeedsRevision,
    /// The outcome cannot be met, or the grader gave no usable verdict.
    Failed,
}

/// One evaluation's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Graded {
    /// The verdict.
    pub verdict: Verdict,
    /// The grader's explanation.
    pub explanation: String,
    /// The grader's model usage.
    pub usage: ModelUsage,
}

/// What follows an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The agent works again (the explanation is its next input): a revision, or the final
    /// turn after `max_iterations_reached`.
    Revise,
    /// The loop is over.
    Done,
}

fn active(outcome: &Outcome) -> bool {
    matches!(
        outcome.result,
        OutcomeResult::Running | OutcomeResult::Evaluating | OutcomeResult::NeedsRevision
    )
}

/// The iteration the next evaluation of `outcome` has.
fn next_iteration(outcome: &Outcome) -> u32 {
    match outcome.result {
        OutcomeResult::NeedsRevision => outcome.iteration + 1,
        // An evaluation a stopped process left open is done again under its number.
        OutcomeResult::Evaluating => outcome.iteration,
        _ => 0,
    }
}

/// The definition of outcome `id` in `log`.
fn definition<'a>(log: &'a [SessionRecord], id: &OutcomeId) -> Option<&'a DefineOutcome> {
    log.iter().rev().find_map(|r| match &r.event()?.body {
        Body::UserDefineOutcome(d) if &d.outcome_id == id => Some(d),
        _ => None,
    })
}

/// The outcome the agent's finished work is graded against, if one is active.
pub fn to_grade(state: &SessionState, log: &[SessionRecord]) -> Option<Grading> {
    let outcome = state.outcomes.iter().find(|o| active(o))?;
    let defined = definition(log, &outcome.outcome_id)?;
    Some(Grading {
        outcome_id: outcome.outcome_id.clone(),
        iteration: next_iteration(outcome),
        max_iterations: defined
            .max_iterations
            .unwrap_or(DEFAULT_MAX_ITERATIONS)
            .max(1),
        description: defined.description.clone(),
        rubric: defined.rubric.clone(),
    })
}

fn find<'a>(state: &'a SessionState, id: &OutcomeId) -> Result<&'a Outcome, Rejection> {
    state
        .outcomes
        .iter()
        .find(|o| &o.outcome_id == id)
        .ok_or_else(|| Rejection::invalid("outcome_id", format!("no outcome {id}")))
}

/// Opens the evaluation of `grading`: returns the start's id and its record. Rejected when the
/// session is not in a turn or the outcome is not active.
pub fn evaluation_start(
    state: &SessionState,
    grading: &Grading,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<(EventId, Vec<SessionRecord>), Rejection> {
    in_turn(state, false)?;
    let outcome = find(state, &grading.outcome_id)?;
    if !active(outcome) {
        return Err(Rejection::Conflict(format!(
            "outcome {} is not being worked on",
            grading.outcome_id
        )));
    }
    let now = clock(state, now);
    let body = Body::SpanOutcomeEvaluationStart(OutcomeEvaluation {
        outcome_id: grading.outcome_id.clone(),
        iteration: grading.iteration,
    });
    let id = ids.event();
    Ok((id.clone(), vec![Event::new(id, now, body).into()]))
}

/// A heartbeat of the evaluation running for `grading`.
pub fn evaluation_ongoing(
    state: &SessionState,
    grading: &Grading,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    in_turn(state, false)?;
    evaluating(state, grading)?;
    let body = Body::SpanOutcomeEvaluationOngoing(OutcomeEvaluation {
        outcome_id: grading.outcome_id.clone(),
        iteration: grading.iteration,
    });
    Ok(vec![event(ids, clock(state, now), body)])
}

/// The open evaluation's start of `grading`'s outcome.
fn evaluating(state: &SessionState, grading: &Grading) -> Result<EventId, Rejection> {
    find(state, &grading.outcome_id)?
        .evaluation_start
        .clone()
        .ok_or_else(|| {
            Rejection::Conflict(format!(
                "no evaluation of outcome {} is running",
                grading.outcome_id
            ))
        })
}

/// Closes the evaluation of `grading` with the grader's answer; says whether the agent revises.
pub fn evaluation_end(
    state: &SessionState,
    grading: &Grading,
    graded: Graded,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<(Vec<SessionRecord>, Next), Rejection> {
    in_turn(state, false)?;
    let start = evaluating(state, grading)?;
    let last = grading.iteration + 1 >= grading.max_iterations;
    let (result, next) = match graded.verdict {
        Verdict::Satisfied => (OutcomeResult::Satisfied, Next::Done),
        Verdict::Failed => (OutcomeResult::Failed, Next::Done),
        Verdict::NeedsRevision if last => (OutcomeResult::MaxIterationsReached, Next::Revise),
        Verdict::NeedsRevision => (OutcomeResult::NeedsRevision, Next::Revise),
    };
    let body = Body::SpanOutcomeEvaluationEnd(OutcomeEvaluationEnd {
        outcome_id: grading.outcome_id.clone(),
        iteration: grading.iteration,
        outcome_evaluation_start_id: start,
        result,
        explanation: graded.explanation,
        usage: graded.usage,
    });
    Ok((vec![event(ids, clock(state, now), body)], next))
}

/// The records that end every active outcome with `interrupted` (see the module header).
pub(super) fn interrupted(
    state: &SessionState,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Vec<SessionRecord> {
    let mut records = Vec::new();
    for outcome in state.outcomes.iter().filter(|o| active(o)) {
        let iteration = next_iteration(outcome);
        let start = match &outcome.evaluation_start {
            Some(start) => start.clone(),
            None => {
                let body = Body::SpanOutcomeEvaluationStart(OutcomeEvaluation {
                    outcome_id: outcome.outcome_id.clone(),
                    iteration,
                });
                let id = ids.event();
                records.push(Event::new(id.clone(), now, body).into());
                id
            }
        };
        let body = Body::SpanOutcomeEvaluationEnd(OutcomeEvaluationEnd {
            outcome_id: outcome.outcome_id.clone(),
            iteration,
            outcome_evaluation_start_id: start,
            result: OutcomeResult::Interrupted,
            explanation: OUTCOME_INTERRUPTED.to_owned(),
            usage: ModelUsage::default(),
        });
        records.push(event(ids, now, body));
    }
    records
}
