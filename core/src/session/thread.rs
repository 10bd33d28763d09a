//! Session threads (API §10): the primary thread and a coordinator's child threads.
//!
//! Every session has one primary thread: the session's own agent loop, whose events are the
//! session's log. Its id is derived from the session id (`sthr_` + the session id's body), so
//! it needs no record and is the same in every process.
//!
//! A child thread (a coordinator's delegation to a roster member) is a stream of its own,
//! folded with the same [`SessionState`]: `sesn_` + the thread id's body
//! ([`SessionId::of_thread`]), starting with a creation fact copied from the session's (the
//! member's agent snapshot, same environment, vaults and resources) and an
//! `internal.thread_of` fact naming the session. It has no catalog entry, so it is never
//! listed or scanned as a session. Its input is `agent.thread_message_received` (what the
//! coordinator sent), and it runs turns like any session, in the session's workspace.
//!
//! The session's own stream records the condensed child activity: `session.thread_created`,
//! `agent.thread_message_sent` / `_received`, `session.thread_status_running` / `_idle`, the
//! child's calls waiting on the client cross-posted with `session_thread_id` (the client
//! answers them on the session; the answers are echoed with the thread and relayed), and an
//! `internal.thread_usage` fact after each child turn that rolls the child's usage into the
//! session's. [`Step`] is what the coordinator's turn records for these.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::ids::IdSource;
use super::record::{Created, Fact, SessionRecord};
use super::rejection::Rejection;
use super::state::{SessionState, Status};
use crate::agent::AgentSnapshot;
use crate::event::{
    Body, ContentBlock, Event, RunEnded, RunError, RunErrorKind, RunResult, RunStatus, StopReason,
    ThreadCreated, ThreadMessageReceived, ThreadMessageSent, ThreadStatus, ThreadStatusIdle, Usage,
};
use crate::ids::{EventId, SessionId, ThreadId};
use crate::time::Timestamp;

/// At most this many child threads run at once in a session.
pub const MAX_RUNNING: usize = 25;

/// The agent name of advisor threads.
pub const ADVISOR_NAME: &str = "anthropic.advisor";

/// What kind of agent a child thread runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadRole {
    /// A roster member (a saved agent, or the coordinator itself).
    #[default]
    Member,
    /// An agent the coordinator defined when it delegated.
    Inline,
    /// The advisor: a model the coordinator consults, without tools. Advisor threads do not
    /// count toward [`MAX_RUNNING`].
    Advisor,
}

impl ThreadRole {
    /// Whether this is the default role (for serde's `skip_serializing_if`).
    pub fn is_member(&self) -> bool {
        *self == ThreadRole::Member
    }
}

/// The statuses a thread can have, as `statuses[]` names them.
pub const STATUSES: [&str; 4] = ["running", "idle", "rescheduling", "terminated"];

/// The primary thread of session `session`.
pub fn primary_id(session: &SessionId) -> ThreadId {
    ThreadId::primary_of(session)
}

#[derive(Serialize)]
struct Stats {
    active_seconds: f64,
    duration_seconds: f64,
    startup_seconds: Option<f64>,
}

#[derive(Serialize)]
struct Object<'a> {
    id: ThreadId,
    #[serde(rename = "type")]
    kind: &'static str,
    session_id: &'a str,
    status: &'static str,
    agent: Option<Value>,
    parent_thread_id: Option<&'a str>,
    workflow_run_id: Option<&'a str>,
    stats: Option<Stats>,
    usage: Option<Usage>,
    created_at: Timestamp,
    updated_at: Timestamp,
    archived_at: Option<Timestamp>,
}

fn millis_to_seconds(millis: i64) -> f64 {
    millis as f64 / 1000.0
}

impl SessionState {
    /// The session's threads in creation order: its primary thread, then its child threads.
    pub fn thread_ids(&self) -> Vec<ThreadId> {
        let Some(config) = &self.config else {
            return Vec::new();
        };
        let mut ids = vec![primary_id(&config.id)];
        ids.extend(self.children.iter().map(|c| c.id.clone()));
        ids
    }

    /// Whether this stream is a child thread's (not a session of its own).
    pub fn is_child_thread(&self) -> bool {
        self.thread_of.is_some()
    }

    /// How many child threads run now (as the session's stream last recorded them), advisor
    /// threads not counted.
    pub fn running_children(&self) -> usize {
        self.children
            .iter()
            .filter(|c| c.running && c.agent_name != ADVISOR_NAME)
            .count()
    }

    /// This stream's agent as a `session_thread` object shows it: the full snapshot for a
    /// roster member, `{type: "inline", ...}` for an inline agent, `{type: "advisor", model}`
    /// for the advisor.
    fn thread_agent(&self) -> Option<Value> {
        let agent = self.agent.as_deref()?;
        match self.thread_role {
            ThreadRole::Member => serde_json::to_value(agent).ok(),
            ThreadRole::Advisor => Some(json!({"type": "advisor", "model": agent.model.id})),
            ThreadRole::Inline => Some(json!({
                "type": "inline",
                "name": agent.name,
                "description": agent.description,
                "system": agent.system,
                "model": agent.model,
                "tools": agent.tools,
                "mcp_servers": agent.mcp_servers,
                "skills": agent.skills,
                "execution_identity": agent.execution_identity,
            })),
        }
    }

    /// The `session_thread` object of thread `id` as of `now` (`None` when the session has no
    /// such thread). `stats` stay `null` until the thread first changed status, `usage` until
    /// it first went idle.
    pub fn render_thread(&self, id: &ThreadId, now: Timestamp) -> Option<Value> {
        let config = self.config.as_ref()?;
        if *id != primary_id(&config.id) {
            return None;
        }
        let parent = self
            .thread_of
            .as_ref()
            .map(|(session, _)| primary_id(session).to_string());
        let transitioned = self.stop_reason.is_some() || self.status != Status::Idle;
        let end = self.terminated_at.unwrap_or(now);
        let active = self.active_seconds(now);
        let usage = self.stop_reason.is_some().then(|| {
            let mut usage = self.usage.clone();
            usage.active_seconds = Some(active);
            usage
        });
        let object = Object {
            id: id.clone(),
            kind: "session_thread",
            session_id: config.id.as_str(),
            status: self.shown_status().as_str(),
            agent: self.thread_agent(),
            parent_thread_id: parent.as_deref(),
            workflow_run_id: self.workflow_run_id.as_deref(),
            stats: transitioned.then(|| Stats {
                active_seconds: active,
                duration_seconds: millis_to_seconds(
                    (end.millis() - self.created_at.millis()).max(0),
                ),
                startup_seconds: None,
            }),
            usage,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived_at: self.archived_at,
        };
        serde_json::to_value(object).ok()
    }

    /// The status of thread `id` when it is this stream's own thread (the primary thread of a
    /// session, or the child thread a child stream is).
    pub fn thread_status(&self, id: &ThreadId) -> Option<Status> {
        let config = self.config.as_ref()?;
        (*id == primary_id(&config.id)).then_some(self.shown_status())
    }
}

/// Whether child thread `child` may make no further model request because the budget of its
/// session `session` is spent: the session's list cost (its own and its children's as last
/// rolled up) plus what `child` spent since its last roll-up reaches the session's cap. The
/// child's turn then ends `budget_reached` (`turn::finish`) and its coordinator's session
/// pauses at the cap before its own next request.
pub fn budget_spent(session: &SessionState, child: &SessionState) -> bool {
    let Some(cap) = session.budget.as_ref().and_then(crate::pricing::cap_nanos) else {
        return false;
    };
    let Some(config) = child.config.as_ref().filter(|_| child.is_child_thread()) else {
        return false;
    };
    let thread = primary_id(&config.id);
    let rolled = session
        .thread_usage
        .get(&thread)
        .map_or(0, |(_, cost)| *cost);
    let unrolled = child.list_cost_nanos.saturating_sub(u128::from(rolled));
    session.list_cost_nanos.saturating_add(unrolled) >= cap
}

/// Who a new child thread is: its agent, how it is named, what kind it is and the workflow run
/// that starts it.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Its agent's snapshot (its own roster is removed: rosters are one level deep).
    pub agent: AgentSnapshot,
    /// The name it goes by.
    pub agent_name: String,
    /// What kind of agent it is.
    pub role: ThreadRole,
    /// The workflow run that starts it.
    pub workflow_run_id: Option<String>,
}

/// The records that create child thread `thread` of session `parent` as `spec` says, at
/// `now`. Refused when the session is not live or already runs [`MAX_RUNNING`] child threads
/// (advisor threads are exempt).
pub fn create_child(
    parent: &SessionState,
    thread: &ThreadId,
    spec: ChildSpec,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, Rejection> {
    let ChildSpec {
        mut agent,
        agent_name,
        role,
        workflow_run_id,
    } = spec;
    let Some(config) = parent.config.as_ref().filter(|_| parent.exists()) else {
        return Err(Rejection::NotFound("session not found".into()));
    };
    if parent.is_child_thread() {
        return Err(Rejection::Conflict(
            "a child thread cannot start threads of its own".into(),
        ));
    }
    if role != ThreadRole::Advisor && parent.running_children() >= MAX_RUNNING {
        return Err(Rejection::Conflict(format!(
            "the session already runs {MAX_RUNNING} threads, the most it may run at once; \
             wait for one to finish"
        )));
    }
    agent.multiagent = None;
    let created = Created {
        id: SessionId::of_thread(thread),
        workspace: config.workspace.clone(),
        created_at: now,
        agent,
        environment_id: config.environment_id.clone(),
        title: None,
        metadata: Default::default(),
        resources: parent.resources.clone(),
        vault_ids: config.vault_ids.clone(),
        budget: None,
    };
    Ok(vec![
        Fact::Created(Box::new(created)).into(),
        Fact::ThreadOf {
            session: config.id.clone(),
            agent_name,
            role,
            workflow_run_id,
        }
        .into(),
    ])
}

/// The `agent.thread_message_received` that gives child thread `child` its next input:
/// `content` from thread `from` (`from_agent_name`: the sender's agent name).
pub fn deliver(
    child: &SessionState,
    from: ThreadId,
    from_agent_name: Option<String>,
    content: Vec<ContentBlock>,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    if !child.exists() || !child.is_child_thread() {
        return Err(Rejection::NotFound("thread not found".into()));
    }
    if child.archived_at.is_some() {
        return Err(Rejection::Conflict("the thread is archived".into()));
    }
    if child.status != Status::Idle || !child.pending_actions.is_empty() {
        return Err(Rejection::Conflict(
            "the thread is still working on its previous message".into(),
        ));
    }
    let now = now.max(child.updated_at);
    Ok(vec![Event::new(
        ids.event(),
        now,
        Body::AgentThreadMessageReceived(ThreadMessageReceived {
            from_session_thread_id: from,
            from_agent_name,
            content,
        }),
    )
    .into()])
}

/// The records that interrupt child thread `child` while it waits on the client: each pending
/// call closed with an error result, then `session.status_idle{end_turn}` (nothing when it
/// waits on nothing).
pub fn interrupt_waiting(
    child: &SessionState,
    why: &str,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Vec<SessionRecord> {
    if child.status != Status::Idle || child.pending_actions.is_empty() {
        return Vec::new();
    }
    let now = now.max(child.updated_at);
    let mut records: Vec<SessionRecord> = child
        .pending_actions
        .iter()
        .map(|id| {
            let kind = child
                .open_tool_uses
                .get(id)
                .copied()
                .unwrap_or(super::state::ToolKind::Builtin);
            Event::new(
                ids.event(),
                now,
                super::turn::closing(id.clone(), kind, why),
            )
            .into()
        })
        .collect();
    records.push(
        Event::new(
            ids.event(),
            now,
            Body::SessionStatusIdle(crate::event::StatusIdle {
                stop_reason: StopReason::EndTurn,
                stop_details: None,
            }),
        )
        .into(),
    );
    records
}

/// The message of the `workflow_run.status_ended` error result of a run a restart cut short.
pub const RUN_RESTARTED: &str = "The server restarted while this workflow run was running; \
                                 its tasks were stopped and the run did not complete.";

/// What a restart writes on a coordinator's stream for the thread activity its cut turn left
/// open: each child the stream still shows running or waiting on the client (calls
/// cross-posted, unanswered) goes idle (`session.thread_status_idle` with `end_turn`: its own
/// stream is settled likewise, [`restarted_child`]), then each workflow run without an end
/// ends (`workflow_run.status_ended` with an `unknown_error` result saying why, [`RUN_RESTARTED`])
/// and goes idle (`workflow_run.status_idle`). Nothing for a stream without such activity.
pub fn cut_short(
    state: &SessionState,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Vec<SessionRecord> {
    let mut records = Vec::new();
    let waiting = |c: &&super::state::Child| state.cross_posted.values().any(|t| *t == c.id);
    for child in state.children.iter().filter(|c| c.running || waiting(c)) {
        records.push(
            Event::new(
                ids.event(),
                now,
                Body::SessionThreadStatusIdle(ThreadStatusIdle {
                    session_thread_id: child.id.clone(),
                    agent_name: child.agent_name.clone(),
                    stop_reason: StopReason::EndTurn,
                    stop_details: None,
                }),
            )
            .into(),
        );
    }
    for run in &state.open_runs {
        records.push(
            Event::new(
                ids.event(),
                now,
                Body::WorkflowRunStatusEnded(RunEnded {
                    workflow_run_id: run.clone(),
                    result: RunResult::Error {
                        error: RunError {
                            kind: RunErrorKind::UnknownError,
                            message: RUN_RESTARTED.to_owned(),
                        },
                    },
                }),
            )
            .into(),
        );
        records.push(
            Event::new(
                ids.event(),
                now,
                Body::WorkflowRunStatusIdle(RunStatus {
                    workflow_run_id: run.clone(),
                }),
            )
            .into(),
        );
    }
    records
}

/// What a restart writes on a child thread's stream once the runner settled its cut turn
/// (`turn::recover`): a child still waiting on the client has its calls closed with the
/// restart's error result (`turn::RESTARTED`) and goes idle `end_turn`, as no coordinator
/// relays answers to it any more. Nothing for a child that waits on nothing.
pub fn restarted_child(
    child: &SessionState,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Vec<SessionRecord> {
    if !child.is_child_thread() {
        return Vec::new();
    }
    interrupt_waiting(child, super::turn::RESTARTED, now, ids)
}

/// What a coordinator's turn records on the session's stream about its child threads.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `session.thread_created`.
    Created {
        /// The new thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
        /// The workflow run that started it.
        workflow_run_id: Option<String>,
    },
    /// `agent.thread_message_sent` (the coordinator delegated `content`).
    MessageSent {
        /// The child thread.
        to: ThreadId,
        /// Its agent's name.
        to_agent_name: String,
        /// The message.
        content: Vec<ContentBlock>,
    },
    /// `session.thread_status_running`.
    Running {
        /// The child thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
    },
    /// The child runs again once the client answered the calls it waited on:
    /// `session.thread_status_running` unless the session's stream shows it running already
    /// (`decide` records that with the answer), after `session.status_running` when the
    /// session was idle on its threads (the answers came another way: the operator's
    /// pending-action timeout).
    Resumed {
        /// The child thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
    },
    /// `session.thread_status_rescheduled`: the child retries after a transient error.
    Rescheduled {
        /// The child thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
    },
    /// A `workflow_run.*` event of a workflow run the coordinator started, with its id (a
    /// phase's end names its start's).
    Workflow {
        /// The event's id.
        id: EventId,
        /// The event.
        body: Body,
    },
    /// The child's calls waiting on the client, cross-posted (same ids, `session_thread_id`
    /// set), then `session.thread_status_idle{requires_action}`.
    Waiting {
        /// The child thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
        /// The child's waiting tool-use events as its stream holds them.
        calls: Vec<Event>,
    },
    /// The child's cumulative usage rolled into the session's while it runs
    /// (`internal.thread_usage`, after each of its model requests), so the session's budget
    /// counts it at once.
    Usage {
        /// The child thread.
        thread: ThreadId,
        /// Its cumulative usage.
        usage: Usage,
        /// Its cumulative list cost in nano-dollars (saturated at `u64::MAX`).
        list_cost_nanos: u64,
    },
    /// `session.thread_status_idle` with the child's stop reason, its usage rolled up
    /// (`internal.thread_usage`), and `agent.thread_message_received` with its reply.
    Replied {
        /// The child thread.
        thread: ThreadId,
        /// Its agent's name.
        agent_name: String,
        /// Why it went idle.
        stop_reason: StopReason,
        /// Its cumulative usage.
        usage: Usage,
        /// Its cumulative list cost in nano-dollars (saturated at `u64::MAX`).
        list_cost_nanos: u64,
        /// Its reply (its messages of the turn).
        content: Vec<ContentBlock>,
    },
}

/// The records of `step` on the session's stream at `now`. After a child went idle (waiting
/// on the client or done), when no child thread works any more, none is interrupted, no
/// workflow run is open (a running workflow run keeps the session running) and some child
/// waits on the client, the session goes idle on its threads: `session.status_idle` with
/// `requires_action` listing every call cross-posted and not answered yet (its turn stays
/// open: [`SessionState::threads_idle`]).
pub fn records(
    state: &SessionState,
    step: Step,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    let settles = matches!(step, Step::Waiting { .. } | Step::Replied { .. });
    let mut records = step_records(state, step, now, ids)?;
    if settles {
        let mut after = state.clone();
        for record in &records {
            after.apply(record);
        }
        records.extend(idle_on_threads(state, &after, now, ids));
    }
    Ok(records)
}

/// What the session's status becomes once a child stopped (`before` and `after` the step),
/// see [`records`]: idle on its threads when no thread works and some wait; when it was idle on
/// its threads already, running again once none waits any more (a child interrupted alone:
/// its coordinator goes on), or idle again on those still waiting.
fn idle_on_threads(
    before: &SessionState,
    after: &SessionState,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Option<SessionRecord> {
    let idle = |ids: &mut dyn IdSource, event_ids: Vec<EventId>| -> SessionRecord {
        Event::new(
            ids.event(),
            now,
            Body::SessionStatusIdle(crate::event::StatusIdle {
                stop_reason: StopReason::RequiresAction { event_ids },
                stop_details: None,
            }),
        )
        .into()
    };
    if after.interrupt.is_some() {
        // The turn is ending: it settles its children, then goes idle itself.
        return None;
    }
    let waiting: Vec<EventId> = after.cross_posted.keys().cloned().collect();
    if let Some(listed) = &after.threads_idle {
        if waiting.is_empty() {
            return Some(Event::new(ids.event(), now, Body::SessionStatusRunning).into());
        }
        if before.threads_idle.as_ref() != Some(listed) {
            return Some(idle(ids, waiting));
        }
        return None;
    }
    let quiet = after.status == Status::Running
        && after.open_runs.is_empty()
        && !after.children.iter().any(|c| c.running);
    (quiet && !waiting.is_empty()).then(|| idle(ids, waiting))
}

fn step_records(
    state: &SessionState,
    step: Step,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    let known = |thread: &ThreadId| {
        if state.for_child(Some(thread)) {
            Ok(())
        } else {
            Err(Rejection::invalid(
                "session_thread_id",
                format!("{thread} is not a child thread of this session"),
            ))
        }
    };
    let event = |ids: &mut dyn FnMut() -> EventId, body: Body| -> SessionRecord {
        Event::new(ids(), now, body).into()
    };
    let mut next = || ids.event();
    Ok(match step {
        Step::Created {
            thread,
            agent_name,
            workflow_run_id,
        } => {
            if state.for_child(Some(&thread)) {
                return Err(Rejection::Conflict(format!("{thread} exists already")));
            }
            vec![event(
                &mut next,
                Body::SessionThreadCreated(ThreadCreated {
                    session_thread_id: thread,
                    agent_name,
                    workflow_run_id,
                }),
            )]
        }
        Step::Resumed { thread, agent_name } => {
            known(&thread)?;
            let mut records = Vec::new();
            if state.threads_idle.is_some() {
                records.push(event(&mut next, Body::SessionStatusRunning));
            }
            let running = state.children.iter().any(|c| c.id == thread && c.running);
            if !running {
                records.push(event(
                    &mut next,
                    Body::SessionThreadStatusRunning(ThreadStatus {
                        session_thread_id: thread,
                        agent_name,
                    }),
                ));
            }
            records
        }
        Step::Rescheduled { thread, agent_name } => {
            known(&thread)?;
            vec![event(
                &mut next,
                Body::SessionThreadStatusRescheduled(ThreadStatus {
                    session_thread_id: thread,
                    agent_name,
                }),
            )]
        }
        Step::Workflow { id, body } => match body {
            Body::WorkflowRunCreated(_)
            | Body::WorkflowRunStatusRunning(_)
            | Body::WorkflowRunStatusIdle(_)
            | Body::WorkflowRunPhaseStarted(_)
            | Body::WorkflowRunPhaseEnded(_)
            | Body::WorkflowRunStatusEnded(_)
            | Body::WorkflowRunError(_) => vec![Event::new(id, now, body).into()],
            other => {
                return Err(Rejection::invalid(
                    "type",
                    format!("{} is not a workflow_run event", other.type_name()),
                ))
            }
        },
        Step::MessageSent {
            to,
            to_agent_name,
            content,
        } => {
            known(&to)?;
            vec![event(
                &mut next,
                Body::AgentThreadMessageSent(ThreadMessageSent {
                    to_session_thread_id: to,
                    to_agent_name: Some(to_agent_name),
                    content,
                }),
            )]
        }
        Step::Running { thread, agent_name } => {
            known(&thread)?;
            vec![event(
                &mut next,
                Body::SessionThreadStatusRunning(ThreadStatus {
                    session_thread_id: thread,
                    agent_name,
                }),
            )]
        }
        Step::Waiting {
            thread,
            agent_name,
            calls,
        } => {
            known(&thread)?;
            let mut records = Vec::with_capacity(calls.len() + 1);
            let mut event_ids = Vec::with_capacity(calls.len());
            for call in calls {
                let mut body = call.body;
                match &mut body {
                    Body::AgentToolUse(u) => u.session_thread_id = Some(thread.clone()),
                    Body::AgentMcpToolUse(u) => u.session_thread_id = Some(thread.clone()),
                    Body::AgentCustomToolUse(u) => u.session_thread_id = Some(thread.clone()),
                    _ => continue,
                }
                event_ids.push(call.id.clone());
                records.push(Event::new(call.id, now, body).into());
            }
            records.push(event(
                &mut next,
                Body::SessionThreadStatusIdle(ThreadStatusIdle {
                    session_thread_id: thread,
                    agent_name,
                    stop_reason: StopReason::RequiresAction { event_ids },
                    stop_details: None,
                }),
            ));
            records
        }
        Step::Usage {
            thread,
            usage,
            list_cost_nanos,
        } => {
            known(&thread)?;
            vec![Fact::ThreadUsage {
                thread,
                usage,
                list_cost_nanos,
                at: now,
            }
            .into()]
        }
        Step::Replied {
            thread,
            agent_name,
            stop_reason,
            usage,
            list_cost_nanos,
            content,
        } => {
            known(&thread)?;
            vec![
                event(
                    &mut next,
                    Body::SessionThreadStatusIdle(ThreadStatusIdle {
                        session_thread_id: thread.clone(),
                        agent_name: agent_name.clone(),
                        stop_reason,
                        stop_details: None,
                    }),
                ),
                Fact::ThreadUsage {
                    thread: thread.clone(),
                    usage,
                    list_cost_nanos,
                    at: now,
                }
                .into(),
                event(
                    &mut next,
                    Body::AgentThreadMessageReceived(ThreadMessageReceived {
                        from_session_thread_id: thread,
                        from_agent_name: Some(agent_name),
                        content,
                    }),
                ),
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_thread_id_follows_the_session_id() {
        let session = SessionId::parse("sesn_01abcDEF").unwrap();
        assert_eq!(primary_id(&session).as_str(), "sthr_01abcDEF");
    }
}
