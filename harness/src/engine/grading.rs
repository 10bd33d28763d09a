//! Outcome grading after the agent ends its turn, shared by every engine: when the session
//! works on an outcome, `span.outcome_evaluation_start`, the grader's request
//! ([`model::grade`], through the session's own model endpoint) with a
//! `span.outcome_evaluation_ongoing` every [`model::grade::HEARTBEAT`] while it runs, then
//! `span.outcome_evaluation_end`. The engine then either goes back to work with the grader's
//! explanation ([`turn::Next::Revise`]) or ends the turn.

use managed_agents_core::event::{Body, OutcomeResult, Rubric};
use managed_agents_core::session::{turn, SessionRecord};
use managed_agents_core::storage::Store;
use tokio::sync::watch;

use super::{file_sources, interruptible};
use crate::blobs::BlobStore;
use crate::model::{self, Endpoint};
use crate::writer::{Halt, Writer};

/// What the grader's request needs.
pub(crate) struct Grader<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) endpoint: &'a Endpoint,
    /// The agent's model, which grades too.
    pub(crate) model: &'a str,
    /// Where file rubrics' bytes are.
    pub(crate) blobs: Option<&'a dyn BlobStore>,
    pub(crate) interrupted: &'a watch::Receiver<bool>,
}

/// The session's own model endpoint as the agent-in-sandbox engines reach it from the server
/// (their agents' own model requests go through the LLM gateway): for the `auto` policy's
/// classifier and the outcome grader; and where rubric files are.
pub(crate) struct ServerSide<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) blobs: Option<&'a dyn BlobStore>,
}

impl<'a> ServerSide<'a> {
    /// The grader for an agent of model `model`.
    pub(crate) fn grader(
        &self,
        model: &'a str,
        interrupted: &'a watch::Receiver<bool>,
    ) -> Grader<'a> {
        Grader {
            http: self.http,
            endpoint: self.endpoint,
            model,
            blobs: self.blobs,
            interrupted,
        }
    }
}

/// Grades the outcome the session works on, if any; [`turn::Next::Done`] when there is none.
pub(crate) async fn grade<S: Store>(
    writer: &mut Writer<S>,
    grader: Grader<'_>,
) -> Result<turn::Next, Halt> {
    let Some(grading) = writer.grading() else {
        return Ok(turn::Next::Done);
    };
    writer.evaluation_start(&grading).await?;
    let rubric = match &grading.rubric {
        Rubric::Text { content } => Ok(content.clone()),
        Rubric::File { file_id } => match writer.state().config.clone() {
            Some(created) => file_sources::text(
                writer.store(),
                grader.blobs,
                &created.workspace,
                file_id.as_str(),
            )
            .await
            .map_err(|why| format!("The rubric file {file_id} cannot be read: {why}.")),
            None => Err("The session has no configuration.".to_owned()),
        },
    };
    let graded = match rubric {
        Err(explanation) => turn::Graded {
            verdict: turn::Verdict::Failed,
            explanation,
            usage: Default::default(),
        },
        Ok(rubric) => {
            let work = model::grade::work(writer.records(), &grading.outcome_id);
            let question = model::grade::question(&grading, &rubric, &work);
            let ask = model::grade::grade(grader.http, grader.endpoint, grader.model, question);
            let beating = async {
                tokio::pin!(ask);
                loop {
                    tokio::select! {
                        graded = &mut ask => break Ok(graded),
                        () = tokio::time::sleep(model::grade::HEARTBEAT) => {
                            writer.evaluation_ongoing(&grading).await?;
                        }
                    }
                }
            };
            interruptible(grader.interrupted, beating).await??
        }
    };
    writer.evaluation_end(&grading, graded).await
}

/// Grades the outcome the session works on ([`grade`]) for an engine that hands the agent its
/// next message itself: the revision request ([`revision`]) when the agent goes back to work,
/// `None` when the loop is over.
pub(crate) async fn revise<S: Store>(
    writer: &mut Writer<S>,
    grader: Grader<'_>,
) -> Result<Option<String>, Halt> {
    Ok(match grade(writer, grader).await? {
        turn::Next::Revise => revision(writer.records()),
        turn::Next::Done => None,
    })
}

/// The agent's next input after a `needs_revision` (or `max_iterations_reached`) evaluation:
/// the grader's explanation ([`model::grade::revision`]) of the latest evaluation in `records`.
pub(crate) fn revision(records: &[SessionRecord]) -> Option<String> {
    records
        .iter()
        .rev()
        .filter_map(SessionRecord::event)
        .find_map(|event| match &event.body {
            Body::SpanOutcomeEvaluationEnd(end) => Some(end),
            _ => None,
        })
        .filter(|end| {
            matches!(
                end.result,
                OutcomeResult::NeedsRevision | OutcomeResult::MaxIterationsReached
            )
        })
        .map(|end| {
            let last = end.result == OutcomeResult::MaxIterationsReached;
            model::grade::revision(end.iteration, &end.explanation, last)
        })
}
