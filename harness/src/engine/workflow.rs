//! Workflows: a coordinator's [`team::WORKFLOW`] call runs phases one after another, the tasks
//! of a phase at once, each task in a new child thread (a team member or, where the roster
//! allows, an agent defined inline), started with the workflow run's id.
//!
//! The session's stream records `workflow_run.created` (the run's id, name, description and
//! phases), `workflow_run.status_running`, per phase `workflow_run.phase_started` and
//! `workflow_run.phase_ended` (naming its start), around the tasks' thread events, then
//! `workflow_run.status_ended` (`completed`, or `stopped` when the session was interrupted)
//! and `workflow_run.status_idle`. Every task of a later phase is given the results of the
//! earlier phases after its message. The call's result is every task's reply, by phase.
//!
//! A call whose input is wrong (no phases, an unknown agent, more tasks in a phase than
//! threads may run at once) is answered with an error and starts no run; a session that
//! started [`MAX_RUNS`] runs gets `workflow_run.error{max_workflow_runs_error}` instead of
//! another.

use managed_agents_core::event::{
    Body, Phase, PhaseEnded, PhaseStarted, RunCreated, RunEnded, RunError, RunErrorEvent,
    RunErrorKind, RunResult, RunStatus,
};
use managed_agents_core::ids::{self, EventId};
use managed_agents_core::session::thread::{Step as ThreadStep, MAX_RUNNING};
use managed_agents_core::session::turn::Step;
use managed_agents_core::time::Timestamp;
use serde_json::{Map, Value};

use super::delegate::{Delegation, Failure};
use super::team::{self, tail, text};
use super::Turn;
use crate::sandbox::Sandbox;
use crate::writer::Halt;
use managed_agents_core::storage::Store;

/// At most this many workflow runs per session.
pub(crate) const MAX_RUNS: u32 = 20;
/// At most this many phases per run.
const MAX_PHASES: usize = 10;
/// The earlier phases' results given to a later task are cut to this many bytes (the latest).
const RESULTS_LIMIT: usize = 32 * 1024;

/// A phase of a workflow call, checked.
struct PlannedPhase {
    id: String,
    name: String,
    description: Option<String>,
    tasks: Vec<Map<String, Value>>,
}

impl<S: Store, X: Sandbox> Turn<'_, S, X> {
    /// Answers workflow call `id`: runs it ([`Turn::run_workflow`]) and records the result.
    pub(super) async fn workflow(
        &mut self,
        id: EventId,
        input: &Map<String, Value>,
    ) -> Result<(), Halt> {
        let outcome = self.run_workflow(input).await;
        self.answer(id, outcome).await
    }

    async fn record_run(&mut self, body: Body) -> Result<EventId, Halt> {
        let id = EventId::generate(Timestamp::now());
        self.writer
            .record(Step::Thread(ThreadStep::Workflow {
                id: id.clone(),
                body,
            }))
            .await?;
        Ok(id)
    }

    /// The checked phases of a workflow call, or why the call is refused.
    fn plan(&self, input: &Map<String, Value>) -> Result<Vec<PlannedPhase>, String> {
        let Some(phases) = input.get("phases").and_then(Value::as_array) else {
            return Err("`phases` is required: a list of {name, tasks}".into());
        };
        if phases.is_empty() || phases.len() > MAX_PHASES {
            return Err(format!("a workflow has 1 to {MAX_PHASES} phases"));
        }
        let inline = self
            .team
            .abilities
            .workflows
            .is_some_and(|w| w.inline_agents);
        let now = Timestamp::now();
        let mut planned = Vec::with_capacity(phases.len());
        for (i, phase) in phases.iter().enumerate() {
            let Some(phase) = phase.as_object() else {
                return Err(format!("phases[{i}] must be an object"));
            };
            let name = text(phase, "name").unwrap_or_else(|| format!("Phase {}", i + 1));
            let Some(tasks) = phase.get("tasks").and_then(Value::as_array) else {
                return Err(format!("phases[{i}].tasks is required"));
            };
            if tasks.is_empty() || tasks.len() > MAX_RUNNING {
                return Err(format!(
                    "phases[{i}] has {} tasks: a phase has 1 to {MAX_RUNNING}",
                    tasks.len()
                ));
            }
            let mut checked = Vec::with_capacity(tasks.len());
            for (j, task) in tasks.iter().enumerate() {
                let Some(task) = task.as_object() else {
                    return Err(format!("phases[{i}].tasks[{j}] must be an object"));
                };
                if text(task, "message").is_none() {
                    return Err(format!("phases[{i}].tasks[{j}].message is required"));
                }
                self.team
                    .target(task, inline)
                    .map_err(|why| format!("phases[{i}].tasks[{j}]: {why}"))?;
                let mut task = task.clone();
                task.remove("session_thread_id");
                checked.push(task);
            }
            planned.push(PlannedPhase {
                id: ids::generate("wfph_", now),
                name,
                description: text(phase, "description"),
                tasks: checked,
            });
        }
        Ok(planned)
    }

    /// Runs a workflow call and gives its result text.
    async fn run_workflow(&mut self, input: &Map<String, Value>) -> Result<String, Failure> {
        let phases = self.plan(input).map_err(Failure::Tool)?;
        let Some(name) = text(input, "name") else {
            return Err(Failure::Tool("`name` is required".into()));
        };
        if self.writer.state().workflow_runs >= MAX_RUNS {
            let message = format!("the session already started {MAX_RUNS} workflow runs");
            self.record_run(Body::WorkflowRunError(RunErrorEvent {
                workflow_run_id: None,
                error: RunError {
                    kind: RunErrorKind::MaxWorkflowRunsError,
                    message: message.clone(),
                },
            }))
            .await?;
            return Err(Failure::Tool(message));
        }
        let run = ids::generate("wfrn_", Timestamp::now());
        self.record_run(Body::WorkflowRunCreated(RunCreated {
            workflow_run_id: run.clone(),
            name: name.clone(),
            description: text(input, "description"),
            phases: phases
                .iter()
                .map(|p| Phase {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    description: p.description.clone(),
                })
                .collect(),
        }))
        .await?;
        self.record_run(Body::WorkflowRunStatusRunning(RunStatus {
            workflow_run_id: run.clone(),
        }))
        .await?;
        let mut results = String::new();
        for phase in phases {
            let started = self
                .record_run(Body::WorkflowRunPhaseStarted(PhaseStarted {
                    workflow_run_id: run.clone(),
                    workflow_run_phase_id: phase.id.clone(),
                }))
                .await?;
            let earlier = tail(&results, RESULTS_LIMIT);
            let tasks: Vec<Delegation> = phase
                .tasks
                .iter()
                .map(|task| {
                    let mut input = task.clone();
                    if !earlier.is_empty() {
                        let message = text(task, "message").unwrap_or_default();
                        input.insert(
                            "message".into(),
                            Value::String(format!(
                                "{message}\n\nResults of the earlier phases of this workflow:\n{earlier}"
                            )),
                        );
                    }
                    Delegation {
                        id: EventId::generate(Timestamp::now()),
                        tool: team::MESSAGE.to_owned(),
                        input,
                    }
                })
                .collect();
            let mut outcomes = match self.delegate_all(&tasks, Some(&run), false).await {
                Ok(outcomes) => outcomes,
                Err(halt) => {
                    self.end_run(&run, RunResult::Stopped).await;
                    return Err(Failure::Halt(halt));
                }
            };
            results.push_str(&format!("## {}\n", phase.name));
            for (n, task) in tasks.iter().enumerate() {
                let line = match outcomes.remove(&task.id) {
                    Some(Ok(reply)) => reply,
                    Some(Err(Failure::Tool(why))) => format!("(failed: {why})"),
                    Some(Err(Failure::Halt(_))) | None => "(not run)".to_owned(),
                };
                results.push_str(&format!("### Task {}\n{line}\n\n", n + 1));
            }
            self.record_run(Body::WorkflowRunPhaseEnded(PhaseEnded {
                workflow_run_id: run.clone(),
                workflow_run_phase_id: phase.id,
                phase_started_id: started,
            }))
            .await?;
        }
        self.end_run(&run, RunResult::Completed).await;
        Ok(format!(
            "Workflow {name:?} ({run}) completed.\n\n{}",
            results.trim_end()
        ))
    }

    /// Records that run `run` ended with `result` and is idle; written even when the turn is
    /// being interrupted.
    async fn end_run(&mut self, run: &str, result: RunResult) {
        for body in [
            Body::WorkflowRunStatusEnded(RunEnded {
                workflow_run_id: run.to_owned(),
                result,
            }),
            Body::WorkflowRunStatusIdle(RunStatus {
                workflow_run_id: run.to_owned(),
            }),
        ] {
            let step = Step::Thread(ThreadStep::Workflow {
                id: EventId::generate(Timestamp::now()),
                body,
            });
            if let Err(e) = self.writer.settle(step).await {
                tracing::warn!(run, error = ?e, "cannot record the end of a workflow run");
                return;
            }
        }
    }
}
