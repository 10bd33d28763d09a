//! The session as a fold over its log: [`SessionState`] and [`SessionState::apply`].
//!
//! Every derived fact (status, stop reason, pending actions, queued input, usage, stats, title,
//! metadata) comes from here; nothing else keeps a copy that could disagree with the log.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;

use super::idempotency::{IdempotencyKey, KeyEntry};
use super::inputs::Inputs;
use super::record::{Created, Fact, SessionRecord};
use super::thread::ThreadRole;
use crate::agent::AgentSnapshot;
use crate::event::{
    Body, Budget, Event, ModelUsage, OutcomeResult, SessionError, StopDetails, StopReason, Usage,
};
use crate::ids::{self, EventId, OutcomeId, ResourceId, SessionId, ThreadId};
use crate::pricing;
use crate::resource::Resource;
use crate::time::Timestamp;

/// The session status of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Waiting for input (sessions start here).
    #[default]
    Idle,
    /// The agent is working.
    Running,
    /// Waiting to retry after a transient failure.
    Rescheduling,
    /// Ended for good.
    Terminated,
}

impl Status {
    /// The status on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Idle => "idle",
            Status::Running => "running",
            Status::Rescheduling => "rescheduling",
            Status::Terminated => "terminated",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The catalog status of a session idle on its threads ([`SessionState::threads_idle`]): shown
/// as `idle`, but its turn is open, so the runner's scans visit it like a running session.
pub const IDLE_ON_THREADS: &str = "idle_on_threads";

/// Which kind of tool call an open tool-use event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `agent.tool_use` (built-in).
    Builtin,
    /// `agent.mcp_tool_use`.
    Mcp,
    /// `agent.custom_tool_use`.
    Custom,
}

/// What kind of client input an unconsumed event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `user.message`.
    Message,
    /// `user.interrupt` received while running.
    Interrupt,
    /// `user.tool_confirmation`.
    ToolConfirmation,
    /// `user.custom_tool_result`.
    CustomToolResult,
    /// `user.tool_result`.
    ToolResult,
    /// `user.define_outcome`.
    DefineOutcome,
    /// `system.message`.
    SystemMessage,
}

impl InputKind {
    /// Whether this input gives the agent a turn's work (system messages and interrupts don't).
    pub fn starts_turn(self) -> bool {
        !matches!(self, InputKind::SystemMessage | InputKind::Interrupt)
    }
}

/// A client event the runner has not consumed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The event.
    pub id: EventId,
    /// Its kind.
    pub kind: InputKind,
    /// Whether it is queued (`processed_at` still `null`).
    pub queued: bool,
}

/// One entry of the Session object's `outcome_evaluations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The outcome.
    pub outcome_id: OutcomeId,
    /// Its description.
    pub description: String,
    /// 0-based iteration.
    pub iteration: u32,
    /// Where grading stands.
    pub result: OutcomeResult,
    /// The grader's last explanation.
    pub explanation: Option<String>,
    /// When grading finished.
    pub completed_at: Option<Timestamp>,
    /// The `span.outcome_evaluation_start` of the evaluation running now, if one is.
    pub evaluation_start: Option<EventId>,
}

/// Everything known about a session, folded from its records. Mutate only through
/// [`SessionState::apply`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionState {
    /// The creation fact; `None` until the session exists.
    pub config: Option<Arc<Created>>,
    /// The status.
    pub status: Status,
    /// Why the session last went idle.
    pub stop_reason: Option<StopReason>,
    /// Details of the last stop.
    pub stop_details: Option<StopDetails>,
    /// Tool-use events the session waits on (`requires_action.event_ids` minus answered ones).
    pub pending_actions: Vec<EventId>,
    /// Tool-use events without a result yet.
    pub open_tool_uses: BTreeMap<EventId, ToolKind>,
    /// Client events the runner has not consumed, in order (a persistent list: cloning the
    /// state or appending an input costs the same however many are pending).
    pub inputs: Inputs,
    /// When queued client events were processed (from `inputs_processed`). Shared
    /// copy-on-write, like `config` and `agent`, so cloning a state (as `decide` does to
    /// simulate a batch) does not copy what only grows or is large.
    pub processed: Arc<HashMap<EventId, Timestamp>>,
    /// An interrupt waiting for the runner to stop.
    pub interrupt: Option<EventId>,
    /// Cumulative usage.
    pub usage: Usage,
    /// The list cost so far in nano-dollars ([`crate::pricing`]); `usage.list_cost` is its
    /// whole cents. Zero, and `usage.list_cost` unknown, while the agent's model has no list
    /// price.
    pub list_cost_nanos: u128,
    /// The budget was raised or removed while the session was paused at it: the runner
    /// resumes the paused turn.
    pub resume_after_budget: bool,
    /// The server restarted mid-turn and the turn goes on (`internal.turn_restarted`): the
    /// runner runs it again without new input; cleared when it runs or goes idle.
    pub resume_after_restart: bool,
    /// Milliseconds spent running, excluding the current run.
    pub active_millis: i64,
    /// When the current run started.
    pub running_since: Option<Timestamp>,
    /// When the session terminated.
    pub terminated_at: Option<Timestamp>,
    /// The title.
    pub title: Option<String>,
    /// Metadata.
    pub metadata: BTreeMap<String, String>,
    /// The agent snapshot (`None` before creation).
    pub agent: Option<Arc<AgentSnapshot>>,
    /// The budget.
    pub budget: Option<Budget>,
    /// The current resources, in the order they were added (GitHub tokens sealed).
    pub resources: Vec<Resource>,
    /// Outcome evaluations, in definition order.
    pub outcomes: Vec<Outcome>,
    /// The last `session.error`.
    pub last_error: Option<SessionError>,
    /// When it was archived.
    pub archived_at: Option<Timestamp>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When anything last happened.
    pub updated_at: Timestamp,
    /// Whether `session.deleted` was recorded.
    pub deleted: bool,
    /// How many records were folded: the stream version this state reflects.
    pub folded: u64,
    /// The idempotency keys of the last 24 hours (see [`super::idempotency`]); shared
    /// copy-on-write.
    pub idempotency: Arc<BTreeMap<IdempotencyKey, KeyEntry>>,
    /// Since when the session waits in `requires_action` (the idle event that started the
    /// wait; re-emitting it for the remaining calls after a partial answer keeps it).
    pub requires_action_since: Option<Timestamp>,
    /// For a child thread's stream: the session it belongs to and its roster member's name.
    pub thread_of: Option<(SessionId, String)>,
    /// For a child thread's stream: what kind of agent it runs.
    pub thread_role: ThreadRole,
    /// For a child thread's stream: the workflow run that started it.
    pub workflow_run_id: Option<String>,
    /// The input tokens (cached or not) of the agent's latest model request: how large its
    /// context is; zero again after a compaction.
    pub context_tokens: u64,
    /// How many workflow runs the session started (`workflow_run.created`).
    pub workflow_runs: u32,
    /// The workflow runs started and not ended yet (`workflow_run.created` without its
    /// `workflow_run.status_ended`), in start order.
    pub open_runs: Vec<String>,
    /// The session's child threads in creation order (from `session.thread_created`).
    pub children: Vec<Child>,
    /// Tool-use events of child threads cross-posted here while the child waits on the
    /// client, by the child thread; removed when the client answers.
    pub cross_posted: BTreeMap<EventId, ThreadId>,
    /// Each child thread's usage and list cost as last recorded (`internal.thread_usage`).
    pub thread_usage: BTreeMap<ThreadId, (Usage, u64)>,
    /// The session shows idle on its threads (API §10: no thread works and some wait on the
    /// client): the calls cross-posted from its child threads that it lists as
    /// `requires_action`, minus those answered since. Its own turn is still open (the
    /// coordinator waits in its delegation calls), so `status` stays `running`;
    /// [`SessionState::shown_status`] is what clients see. Set by a `session.status_idle`
    /// whose `requires_action` names only cross-posted calls, cleared by the next status event.
    pub threads_idle: Option<Vec<EventId>>,
    /// The fencing token of the runner that last claimed the session (0: none yet; see
    /// [`crate::session::fence`]).
    pub runner_token: u64,
}

/// A child thread as the session's own stream knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The thread.
    pub id: ThreadId,
    /// Its roster member's name.
    pub agent_name: String,
    /// Whether its latest status here is `running`.
    pub running: bool,
}

/// What `after` counts beyond `before` (token counters only; a counter never shrinks).
fn grown(before: &Usage, after: &Usage) -> ModelUsage {
    let diff = |a: Option<u64>, b: Option<u64>| a.unwrap_or(0).saturating_sub(b.unwrap_or(0));
    let cache = |u: &Usage| {
        u.cache_creation.as_ref().map_or(0, |c| {
            c.ephemeral_1h_input_tokens.unwrap_or(0) + c.ephemeral_5m_input_tokens.unwrap_or(0)
        })
    };
    ModelUsage {
        input_tokens: diff(after.input_tokens, before.input_tokens),
        output_tokens: diff(after.output_tokens, before.output_tokens),
        cache_read_input_tokens: diff(
            after.cache_read_input_tokens,
            before.cache_read_input_tokens,
        ),
        cache_creation_input_tokens: cache(after).saturating_sub(cache(before)),
        speed: None,
    }
}

/// Folds `records` into a state.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a SessionRecord>) -> SessionState {
    let mut state = SessionState::default();
    for record in records {
        state.apply(record);
    }
    state
}

fn event_time(event: &Event) -> Option<Timestamp> {
    event
        .processed_at
        .or_else(|| ids::created_at(event.id.as_str()))
}

impl SessionState {
    /// Whether the session exists (created, not deleted).
    pub fn exists(&self) -> bool {
        self.config.is_some() && !self.deleted
    }

    /// Whether the session is idle at its budget cap (and the cap has not been raised or
    /// removed since). A child thread never is: its turn ended at its session's cap, which its
    /// coordinator's session pauses at; its next message starts a turn like any other.
    pub fn budget_paused(&self) -> bool {
        !self.is_child_thread()
            && self.status == Status::Idle
            && self.stop_reason == Some(StopReason::BudgetReached)
            && !self.resume_after_budget
    }

    /// Whether the session has a budget and its list cost has reached the cap: the agent may
    /// not start another model request.
    pub fn budget_exhausted(&self) -> bool {
        self.budget
            .as_ref()
            .and_then(pricing::cap_nanos)
            .is_some_and(|cap| self.list_cost_nanos >= cap)
    }

    /// The status clients see: `idle` while the session is idle on its threads
    /// ([`SessionState::threads_idle`]), else [`SessionState::status`].
    pub fn shown_status(&self) -> Status {
        if self.threads_idle.is_some() {
            Status::Idle
        } else {
            self.status
        }
    }

    /// Why a change that needs the session's turn to be over is refused now: it runs, or it is
    /// idle on its threads with its turn open (`None` when no turn is open).
    pub fn turn_open(&self) -> Option<String> {
        if self.threads_idle.is_some() {
            return Some(
                "the session is idle on its threads' tool calls, with its turn still open".into(),
            );
        }
        matches!(self.status, Status::Running | Status::Rescheduling)
            .then(|| format!("the session is {}", self.status))
    }

    /// Whether a `session.status_idle` with `stop_reason` is the session going idle on its
    /// threads: its turn is open and the idle names only calls cross-posted from its child
    /// threads.
    fn idles_on_threads(&self, stop_reason: &StopReason) -> bool {
        let StopReason::RequiresAction { event_ids } = stop_reason else {
            return false;
        };
        !self.is_child_thread()
            && matches!(self.status, Status::Running | Status::Rescheduling)
            && !event_ids.is_empty()
            && event_ids
                .iter()
                .all(|id| self.cross_posted.contains_key(id))
    }

    /// The ids of the tool-use events the session waits on.
    pub fn pending_action_ids(&self) -> &[EventId] {
        &self.pending_actions
    }

    /// When the pending-action timeout `timeout` answers the calls this session waits on:
    /// `None` unless it is idle in `requires_action` (not archived, not deleted).
    pub fn action_deadline(&self, timeout: std::time::Duration) -> Option<Timestamp> {
        if !self.exists()
            || self.archived_at.is_some()
            || self.status != Status::Idle
            || self.pending_actions.is_empty()
        {
            return None;
        }
        let since = self.requires_action_since?;
        let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        Some(Timestamp::from_millis(
            since.millis().saturating_add(millis),
        ))
    }

    /// The current resource with id `id`.
    pub fn resource(&self, id: &ResourceId) -> Option<&Resource> {
        self.resources.iter().find(|r| r.id() == Some(id))
    }

    /// The client events the runner has to take into its next turn, in order.
    pub fn pending_input(&self) -> &Inputs {
        &self.inputs
    }

    /// Whether the runner should run a turn: input that starts one, nothing pending, not
    /// paused at the budget, not terminated, archived or deleted.
    pub fn needs_turn(&self) -> bool {
        self.exists()
            && self.archived_at.is_none()
            && self.status != Status::Terminated
            && self.pending_actions.is_empty()
            && !self.budget_paused()
            && (self.inputs.has_turn_work()
                || self.resume_after_budget
                || self.resume_after_restart)
    }

    /// Applies one record.
    pub fn apply(&mut self, record: &SessionRecord) {
        self.folded += 1;
        match record {
            SessionRecord::Fact(fact) => self.apply_fact(fact),
            SessionRecord::Event(event) => self.apply_event(event),
        }
    }

    fn touch(&mut self, at: Option<Timestamp>) {
        if let Some(at) = at {
            self.updated_at = self.updated_at.max(at);
        }
    }

    fn apply_fact(&mut self, fact: &Fact) {
        match fact {
            Fact::Created(created) => {
                self.title = created.title.clone();
                self.metadata = created.metadata.clone();
                self.agent = Some(Arc::new(created.agent.clone()));
                self.budget = created.budget.clone();
                self.resources = created.resources.clone();
                self.created_at = created.created_at;
                self.updated_at = created.created_at;
                self.usage = Usage::zero();
                self.list_cost_nanos = 0;
                if pricing::list_price(&created.agent.model.id).is_some() {
                    self.usage.list_cost = Some(pricing::amount(0));
                }
                self.config = Some(Arc::new((**created).clone()));
            }
            Fact::InputsProcessed { event_ids, at } => {
                for input in self.inputs.remove(event_ids) {
                    if input.queued {
                        Arc::make_mut(&mut self.processed).insert(input.id, *at);
                    }
                }
                self.touch(Some(*at));
            }
            Fact::Archived { at } => {
                self.archived_at = Some(*at);
                self.touch(Some(*at));
            }
            Fact::ResourceAdded { resource, at } => {
                self.resources.push(resource.clone());
                self.touch(Some(*at));
            }
            Fact::ResourceUpdated { resource, at } => {
                if let Some(slot) = self
                    .resources
                    .iter_mut()
                    .find(|r| r.id().is_some() && r.id() == resource.id())
                {
                    *slot = resource.clone();
                }
                self.touch(Some(*at));
            }
            Fact::IdempotencyKey {
                key,
                request_hash,
                event_ids,
                at,
            } => {
                let table = Arc::make_mut(&mut self.idempotency);
                table.retain(|_, entry| entry.live(*at));
                table.insert(
                    key.clone(),
                    KeyEntry {
                        request_hash: request_hash.clone(),
                        event_ids: event_ids.clone(),
                        first_version: self.folded + 1,
                        at: *at,
                    },
                );
                self.touch(Some(*at));
            }
            Fact::ResourceRemoved { id, at } => {
                self.resources.retain(|r| r.id() != Some(id));
                self.touch(Some(*at));
            }
            Fact::RunnerClaimed { token, .. } => {
                self.runner_token = self.runner_token.max(*token);
            }
            Fact::TurnRestarted { at } => {
                self.resume_after_restart = true;
                self.touch(Some(*at));
            }
            Fact::ContextCompacted { at, .. } => {
                self.context_tokens = 0;
                self.touch(Some(*at));
            }
            Fact::ThreadOf {
                session,
                agent_name,
                role,
                workflow_run_id,
            } => {
                self.thread_of = Some((session.clone(), agent_name.clone()));
                self.thread_role = *role;
                self.workflow_run_id.clone_from(workflow_run_id);
            }
            Fact::ThreadUsage {
                thread,
                usage,
                list_cost_nanos,
                at,
            } => {
                // Cumulative figures only grow: a roll-up below the one recorded is stale (a
                // roll-up written while the child ran, landing after a later one).
                let stale = self.thread_usage.get(thread).is_some_and(|(before, cost)| {
                    *list_cost_nanos < *cost
                        || usage.input_tokens.unwrap_or(0) < before.input_tokens.unwrap_or(0)
                        || usage.output_tokens.unwrap_or(0) < before.output_tokens.unwrap_or(0)
                });
                if stale {
                    return;
                }
                let (before, cost_before) = self
                    .thread_usage
                    .insert(thread.clone(), (usage.clone(), *list_cost_nanos))
                    .unwrap_or_else(|| (Usage::zero(), 0));
                self.usage.add(&grown(&before, usage));
                if *list_cost_nanos > cost_before {
                    self.list_cost_nanos += u128::from(list_cost_nanos - cost_before);
                    if self.usage.list_cost.is_some() {
                        self.usage.list_cost = Some(pricing::amount(self.list_cost_nanos));
                    }
                }
                self.touch(Some(*at));
            }
        }
    }

    fn input(&mut self, event: &Event, kind: InputKind) {
        self.inputs.push(Input {
            id: event.id.clone(),
            kind,
            queued: event.processed_at.is_none(),
        });
    }

    fn resolve(&mut self, id: &EventId, closes: bool) {
        self.pending_actions.retain(|pending| pending != id);
        if closes {
            self.open_tool_uses.remove(id);
        }
    }

    fn stop_running(&mut self, at: Option<Timestamp>) {
        if let (Some(since), Some(at)) = (self.running_since.take(), at) {
            self.active_millis += (at.millis() - since.millis()).max(0);
        }
    }

    fn apply_event(&mut self, event: &Event) {
        let at = event_time(event);
        self.touch(at);
        match &event.body {
            Body::UserMessage(_) => self.input(event, InputKind::Message),
            Body::UserInterrupt(i) if self.for_child(i.session_thread_id.as_ref()) => {}
            Body::UserInterrupt(_) => {
                if matches!(self.status, Status::Running | Status::Rescheduling) {
                    self.interrupt = Some(event.id.clone());
                    self.input(event, InputKind::Interrupt);
                }
            }
            Body::UserToolConfirmation(c) if self.cross_posted.contains_key(&c.tool_use_id) => {
                self.answered_cross_post(&c.tool_use_id);
            }
            Body::UserCustomToolResult(r)
                if self.cross_posted.contains_key(&r.custom_tool_use_id) =>
            {
                self.answered_cross_post(&r.custom_tool_use_id);
            }
            Body::UserToolConfirmation(c) => {
                self.resolve(&c.tool_use_id, false);
                self.input(event, InputKind::ToolConfirmation);
            }
            Body::UserCustomToolResult(r) => {
                self.resolve(&r.custom_tool_use_id, true);
                self.input(event, InputKind::CustomToolResult);
            }
            Body::UserToolResult(r) => {
                self.resolve(&r.tool_use_id, true);
                self.input(event, InputKind::ToolResult);
            }
            Body::UserDefineOutcome(o) => {
                self.outcomes.push(Outcome {
                    outcome_id: o.outcome_id.clone(),
                    description: o.description.clone(),
                    iteration: 0,
                    result: OutcomeResult::Pending,
                    explanation: None,
                    completed_at: None,
                    evaluation_start: None,
                });
                self.input(event, InputKind::DefineOutcome);
            }
            Body::SystemMessage(_) => self.input(event, InputKind::SystemMessage),
            Body::AgentToolUse(u) if u.session_thread_id.is_some() => {
                self.cross_post(event, u.session_thread_id.as_ref())
            }
            Body::AgentMcpToolUse(u) if u.session_thread_id.is_some() => {
                self.cross_post(event, u.session_thread_id.as_ref())
            }
            Body::AgentCustomToolUse(u) if u.session_thread_id.is_some() => {
                self.cross_post(event, u.session_thread_id.as_ref())
            }
            Body::AgentToolUse(_) => {
                self.open_tool_uses
                    .insert(event.id.clone(), ToolKind::Builtin);
            }
            Body::AgentMcpToolUse(_) => {
                self.open_tool_uses.insert(event.id.clone(), ToolKind::Mcp);
            }
            Body::AgentCustomToolUse(_) => {
                self.open_tool_uses
                    .insert(event.id.clone(), ToolKind::Custom);
            }
            Body::AgentToolResult(r) => self.resolve(&r.tool_use_id, true),
            Body::AgentMcpToolResult(r) => self.resolve(&r.mcp_tool_use_id, true),
            Body::SessionStatusRunning => {
                self.threads_idle = None;
                self.status = Status::Running;
                self.resume_after_budget = false;
                self.resume_after_restart = false;
                if self.running_since.is_none() {
                    self.running_since = at;
                }
                for outcome in &mut self.outcomes {
                    if outcome.result == OutcomeResult::Pending {
                        outcome.result = OutcomeResult::Running;
                    }
                }
            }
            Body::SessionStatusIdle(idle) if self.idles_on_threads(&idle.stop_reason) => {
                // Idle on its threads: the turn stays open (see `threads_idle`).
                self.stop_running(at);
                if let StopReason::RequiresAction { event_ids } = &idle.stop_reason {
                    self.threads_idle = Some(event_ids.clone());
                }
            }
            Body::SessionStatusIdle(idle) => {
                self.threads_idle = None;
                self.stop_running(at);
                self.status = Status::Idle;
                self.requires_action_since = match &idle.stop_reason {
                    StopReason::RequiresAction { .. } if !self.pending_actions.is_empty() => {
                        self.requires_action_since.or(at)
                    }
                    StopReason::RequiresAction { .. } => at,
                    _ => None,
                };
                self.pending_actions = match &idle.stop_reason {
                    StopReason::RequiresAction { event_ids } => event_ids.clone(),
                    _ => Vec::new(),
                };
                self.stop_reason = Some(idle.stop_reason.clone());
                self.stop_details = idle.stop_details.clone();
                self.interrupt = None;
                self.resume_after_budget = false;
                self.resume_after_restart = false;
            }
            Body::SessionStatusRescheduled => {
                self.threads_idle = None;
                self.stop_running(at);
                self.status = Status::Rescheduling;
            }
            Body::SessionStatusTerminated => {
                self.threads_idle = None;
                self.stop_running(at);
                self.status = Status::Terminated;
                self.pending_actions.clear();
                self.requires_action_since = None;
                self.interrupt = None;
                self.terminated_at = at;
            }
            Body::SessionError(e) => self.last_error = Some(e.error.clone()),
            Body::SessionUpdated(u) => {
                if let Some(title) = &u.title {
                    self.title = title.clone();
                }
                if let Some(metadata) = &u.metadata {
                    self.metadata = metadata.clone().unwrap_or_default();
                }
                if let Some(agent) = &u.agent {
                    self.agent = match agent {
                        // Written by `decide` from a typed snapshot, so it decodes; anything
                        // else keeps the snapshot the session had.
                        Some(value) => AgentSnapshot::deserialize(value)
                            .map(Arc::new)
                            .ok()
                            .or_else(|| self.agent.take()),
                        None => None,
                    };
                }
                if let Some(budget) = &u.budget {
                    if self.budget_paused() {
                        self.resume_after_budget = true;
                    }
                    self.budget = budget.clone();
                }
            }
            Body::SessionUsage(u) => {
                self.usage = u.usage.clone();
                if u.budget.is_some() {
                    self.budget = u.budget.clone();
                }
            }
            Body::SessionDeleted => self.deleted = true,
            Body::SpanModelRequestEnd(end) => {
                self.spend(&end.model_usage);
                let usage = &end.model_usage;
                let context = usage.input_tokens
                    + usage.cache_creation_input_tokens
                    + usage.cache_read_input_tokens;
                if context > 0 {
                    self.context_tokens = context;
                }
            }
            Body::SpanOutcomeEvaluationStart(s) => {
                if let Some(outcome) = self.outcome(&s.outcome_id) {
                    outcome.iteration = s.iteration;
                    outcome.result = OutcomeResult::Evaluating;
                    outcome.evaluation_start = Some(event.id.clone());
                }
            }
            Body::SpanOutcomeEvaluationEnd(end) => {
                // The grader runs on the agent's model: its tokens cost like the agent's.
                self.spend(&end.usage);
                if let Some(outcome) = self.outcome(&end.outcome_id) {
                    outcome.iteration = end.iteration;
                    outcome.result = end.result;
                    outcome.explanation = Some(end.explanation.clone());
                    outcome.evaluation_start = None;
                    if end.result != OutcomeResult::NeedsRevision {
                        outcome.completed_at = at;
                    }
                }
            }
            // A child thread's input: what the coordinator sent it.
            Body::AgentThreadMessageReceived(_) if self.thread_of.is_some() => {
                self.input(event, InputKind::Message)
            }
            Body::WorkflowRunCreated(run) => {
                self.workflow_runs += 1;
                self.open_runs.push(run.workflow_run_id.clone());
            }
            Body::WorkflowRunStatusEnded(run) => {
                self.open_runs.retain(|r| *r != run.workflow_run_id);
            }
            Body::SessionThreadCreated(created) => self.children.push(Child {
                id: created.session_thread_id.clone(),
                agent_name: created.agent_name.clone(),
                running: false,
            }),
            Body::SessionThreadStatusRunning(s) => {
                self.child_running(&s.session_thread_id, true);
                // The child runs again: what was cross-posted from it is answered.
                self.drop_cross_posted(&s.session_thread_id);
            }
            Body::SessionThreadStatusIdle(idle) => {
                self.child_running(&idle.session_thread_id, false);
                if !matches!(idle.stop_reason, StopReason::RequiresAction { .. }) {
                    self.drop_cross_posted(&idle.session_thread_id);
                }
            }
            Body::SessionThreadStatusTerminated(s) => {
                self.child_running(&s.session_thread_id, false);
                self.drop_cross_posted(&s.session_thread_id);
            }
            Body::AgentMessage(_)
            | Body::AgentThinking
            | Body::AgentThreadMessageSent(_)
            | Body::AgentThreadMessageReceived(_)
            | Body::AgentThreadContextCompacted
            | Body::SessionThreadStatusRescheduled(_)
            | Body::SpanModelRequestStart
            | Body::SpanOutcomeEvaluationOngoing(_)
            | Body::WorkflowRunStatusRunning(_)
            | Body::WorkflowRunStatusIdle(_)
            | Body::WorkflowRunPhaseStarted(_)
            | Body::WorkflowRunPhaseEnded(_)
            | Body::WorkflowRunError(_) => {}
        }
    }

    /// Whether an event naming thread `thread` is for one of this session's child threads
    /// (not its primary thread).
    pub fn for_child(&self, thread: Option<&ThreadId>) -> bool {
        thread.is_some_and(|t| self.children.iter().any(|c| &c.id == t))
    }

    fn child_running(&mut self, thread: &ThreadId, running: bool) {
        if let Some(child) = self.children.iter_mut().find(|c| &c.id == thread) {
            child.running = running;
        }
    }

    /// The client answered cross-posted call `id`.
    fn answered_cross_post(&mut self, id: &EventId) {
        self.cross_posted.remove(id);
        if let Some(waiting) = &mut self.threads_idle {
            waiting.retain(|w| w != id);
        }
    }

    /// Child thread `thread` waits on the client no more.
    fn drop_cross_posted(&mut self, thread: &ThreadId) {
        self.cross_posted.retain(|_, t| t != thread);
        if let Some(waiting) = &mut self.threads_idle {
            let cross_posted = &self.cross_posted;
            waiting.retain(|id| cross_posted.contains_key(id));
        }
    }

    fn cross_post(&mut self, event: &Event, thread: Option<&ThreadId>) {
        if let Some(thread) = thread {
            self.cross_posted.insert(event.id.clone(), thread.clone());
        }
    }

    /// Adds a model request's usage and its list cost at the agent's model's price.
    fn spend(&mut self, usage: &ModelUsage) {
        self.usage.add(usage);
        let price = self
            .agent
            .as_ref()
            .and_then(|agent| pricing::list_price(&agent.model.id));
        if let Some(price) = price {
            self.list_cost_nanos += price.cost(usage);
            self.usage.list_cost = Some(pricing::amount(self.list_cost_nanos));
        }
    }

    fn outcome(&mut self, id: &OutcomeId) -> Option<&mut Outcome> {
        self.outcomes.iter_mut().find(|o| &o.outcome_id == id)
    }
}
