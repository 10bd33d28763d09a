//! `turn`: the agent side of a session as pure functions, the counterpart of
//! [`decide`](super::decide) for the runner.
//!
//! A turn goes: [`start`] (consume the queued input, `session.status_running`), then any number
//! of [`record`]ed [`Step`]s (a model request's span, its response's events, built-in tool
//! results, errors, a reschedule and the resume after it), then [`finish`] (close what is open,
//! consume interrupts, `session.status_idle` with the stop reason). [`recover`] says what a
//! runner must write for a session it finds mid-turn with no turn running (a process died, or
//! an interrupt or a stray `running` is left to settle).
//!
//! Tool calls: [`call`] turns a model's call into its event (the permission policy evaluated)
//! and says whether it runs, waits or is refused; [`confirmed`] says what a consumed
//! `user.tool_confirmation` asks (run the call, or record the denial).
//!
//! Every function takes the folded state, `now` and an [`IdSource`], and returns the records to
//! append or a [`Rejection`]; it never reads the clock. The harness performs the effects (model
//! calls, tools, sandboxes) and feeds their results back as steps.
//!
//! Time: every record of one call gets the same time, never earlier than anything already in
//! the log ([`clock`]), so in log order `processed_at` never goes backwards. A consumed input's
//! `processed_at` is the time the turn started, but never later than the first event that
//! follows it in the log (the `session.status_running` `decide` wrote when the input arrived).

mod calls;
mod outcome;

pub use calls::{
    call, call_classified, confirmed, delegation_call, mcp_call, needs_classifier, Call,
    Classified, Confirmed, McpCall, CLASSIFIER_UNAVAILABLE,
};
pub use outcome::{
    evaluation_end, evaluation_ongoing, evaluation_start, to_grade, Graded, Grading, Next, Verdict,
    OUTCOME_INTERRUPTED,
};

use super::ids::IdSource;
use super::record::{Fact, SessionRecord};
use super::rejection::Rejection;
use super::state::{InputKind, SessionState, Status, ToolKind};
use crate::agent::BuiltinTool;
use crate::event::{
    AgentMessage, AgentToolResult, Body, ContentBlock, ErrorEvent, ErrorKind, Event, McpToolResult,
    ModelRequestEnd, ModelUsage, RetryStatus, SessionError, SessionUsage, StatusIdle, StopDetails,
    StopReason,
};
use crate::ids::EventId;
use crate::time::Timestamp;
use serde_json::{Map, Value};

/// Why no model request may start once the session's budget is spent.
pub const BUDGET_SPENT: &str = "the session's budget is spent: no further model request is made";
/// The text of the error result that closes a built-in tool call a dead process left open.
pub const ABANDONED: &str =
    "The tool call did not run to completion: the server stopped during the turn.";

/// The text of the error result that closes a call still open when an interrupt ends a turn.
pub const INTERRUPTED: &str = "Interrupted by the user before the tool call finished.";

/// What [`start`] decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Started {
    /// The records to append: `inputs_processed` facts, then `session.status_running` unless
    /// the session already runs.
    pub records: Vec<SessionRecord>,
    /// The `user.tool_confirmation` events this turn consumed, in order (the turn settles them
    /// first: runs the allowed calls, answers the denied ones).
    pub confirmations: Vec<EventId>,
}

/// One thing the agent did, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `span.model_request_start` with this id.
    ModelRequestStart(EventId),
    /// A model response: its events and the span's end.
    ModelResponse(Response),
    /// Agent output produced where the harness opened no span: an agent CLI running in the
    /// sandbox reports its messages and calls while the LLM gateway records the spans.
    Output(Output),
    /// The `agent.tool_result` of an open built-in `agent.tool_use`.
    ToolResult {
        /// The call it answers.
        tool_use_id: EventId,
        /// The result text.
        text: String,
        /// Whether the call failed.
        is_error: bool,
    },
    /// The `agent.tool_result` of an open built-in `agent.tool_use` with content blocks (an
    /// image or a PDF read by `read`).
    ToolContent {
        /// The call it answers.
        tool_use_id: EventId,
        /// The result blocks (text, image, document).
        content: Vec<ContentBlock>,
        /// Whether the call failed.
        is_error: bool,
    },
    /// The `agent.mcp_tool_result` of an open `agent.mcp_tool_use`.
    McpToolResult {
        /// The call it answers.
        mcp_tool_use_id: EventId,
        /// The result blocks (the MCP server's content).
        content: Vec<ContentBlock>,
        /// Whether the call failed.
        is_error: bool,
    },
    /// A `session.error`.
    Error(SessionError),
    /// The agent's context was compacted into `summary`: `agent.thread_context_compacted`
    /// and the `internal.context_compacted` fact the conversation restarts from.
    Compacted {
        /// The model's summary of the conversation so far.
        summary: String,
        /// How many parts of the conversation's last user message (new input the summary does
        /// not cover) follow the summary unchanged.
        kept_parts: u32,
    },
    /// A transient model failure that will be retried: the span ends with an error, a
    /// `session.error` (`retrying`) and `session.status_rescheduled` follow.
    Reschedule {
        /// The failed request's span.
        span: EventId,
        /// The error kind.
        kind: ErrorKind,
        /// The error message.
        message: String,
    },
    /// `session.status_running` after a reschedule's wait.
    Resume,
    /// `span.model_request_end` with an error and no usage (a request cut short).
    SpanFailed(EventId),
    /// A coordinator's record about its child threads (see [`super::thread`]).
    Thread(super::thread::Step),
    /// `span.model_request_end` with the usage measured on the wire, for a span whose output
    /// another step records: the LLM gateway's spans of an agent CLI in the sandbox. Recorded
    /// while the session is live even when the turn has ended (a stream an interrupt cut ends
    /// after the idle), so the tokens spent always count.
    ModelRequestEnd {
        /// The request's `span.model_request_start`.
        span: EventId,
        /// What the request used (as far as the response got).
        usage: ModelUsage,
        /// Whether the request failed or was cut short.
        is_error: bool,
    },
}

/// A model response's events, in the order they are appended.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The request's `span.model_request_start`.
    pub span: EventId,
    /// One `agent.thinking` per id (the ids its previews announced).
    pub thinking: Vec<EventId>,
    /// The `agent.message` (id and text blocks), if the response had text.
    pub message: Option<(EventId, Vec<ContentBlock>)>,
    /// The calls: `agent.tool_use`, `agent.mcp_tool_use` or `agent.custom_tool_use` events
    /// with their ids.
    pub calls: Vec<(EventId, Body)>,
    /// The request's usage.
    pub usage: ModelUsage,
}

/// Agent events without a span: thinking, a message and calls, in the order they are appended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Output {
    /// One `agent.thinking` per id.
    pub thinking: Vec<EventId>,
    /// The `agent.message` (id and text blocks), if any.
    pub message: Option<(EventId, Vec<ContentBlock>)>,
    /// The calls: `agent.tool_use`, `agent.mcp_tool_use` or `agent.custom_tool_use` events
    /// with their ids.
    pub calls: Vec<(EventId, Body)>,
}

/// How a turn ends.
#[derive(Debug, Clone, PartialEq)]
pub struct End {
    /// The idle's stop reason.
    pub stop_reason: StopReason,
    /// The idle's stop details.
    pub stop_details: Option<StopDetails>,
    /// The text of the error result given to every built-in call still open (not waiting).
    pub why: String,
}

impl End {
    /// `end_turn` with `why` for calls left open.
    pub fn end_turn(why: impl Into<String>) -> Self {
        Self {
            stop_reason: StopReason::EndTurn,
            stop_details: None,
            why: why.into(),
        }
    }
}

/// `now`, but never earlier than anything the state has seen, so times never go backwards in
/// log order even when the wall clock does.
pub fn clock(state: &SessionState, now: Timestamp) -> Timestamp {
    now.max(state.updated_at)
}

fn event(ids: &mut impl IdSource, now: Timestamp, body: Body) -> SessionRecord {
    Event::new(ids.event(), now, body).into()
}

fn error(kind: ErrorKind, message: String, retry_status: RetryStatus) -> Body {
    Body::SessionError(ErrorEvent {
        error: SessionError {
            kind,
            message,
            retry_status,
        },
    })
}

/// A terminal `unknown_error` (set-up failures, abandoned turns).
pub fn unknown_error(message: impl Into<String>) -> SessionError {
    SessionError {
        kind: ErrorKind::UnknownError,
        message: message.into(),
        retry_status: RetryStatus::Terminal,
    }
}

fn span_end(start: EventId, usage: ModelUsage, is_error: bool) -> Body {
    Body::SpanModelRequestEnd(ModelRequestEnd {
        model_request_start_id: start,
        model_usage: usage,
        is_error: Some(is_error),
    })
}

fn tool_result(tool_use_id: EventId, content: Vec<ContentBlock>, is_error: bool) -> Body {
    Body::AgentToolResult(AgentToolResult {
        tool_use_id,
        content: Some(content),
        is_error: Some(is_error),
    })
}

/// The error result closing open call `id` of `kind` with `text`: `agent.mcp_tool_result` for
/// an MCP call, `agent.tool_result` otherwise.
pub(crate) fn closing(id: EventId, kind: ToolKind, text: &str) -> Body {
    closing_result(id, kind, text)
}

fn closing_result(id: EventId, kind: ToolKind, text: &str) -> Body {
    match kind {
        ToolKind::Mcp => Body::AgentMcpToolResult(McpToolResult {
            mcp_tool_use_id: id,
            content: Some(vec![ContentBlock::text(text)]),
            is_error: Some(true),
        }),
        _ => tool_result(id, vec![ContentBlock::text(text)], true),
    }
}

/// The `agent.tool_result` of open built-in call `tool_use_id`, or why it cannot be recorded.
fn builtin_result(
    state: &SessionState,
    ids: &mut impl IdSource,
    now: Timestamp,
    tool_use_id: EventId,
    content: Vec<ContentBlock>,
    is_error: bool,
) -> Result<Vec<SessionRecord>, Rejection> {
    if state.open_tool_uses.get(&tool_use_id) != Some(&ToolKind::Builtin) {
        return Err(Rejection::invalid(
            "tool_use_id",
            format!("{tool_use_id} is not an open agent.tool_use"),
        ));
    }
    if state.pending_actions.contains(&tool_use_id) {
        return Err(Rejection::invalid(
            "tool_use_id",
            format!("{tool_use_id} waits for the client"),
        ));
    }
    Ok(vec![event(
        ids,
        now,
        tool_result(tool_use_id, content, is_error),
    )])
}

/// The session exists and is neither archived nor terminated.
fn live(state: &SessionState) -> Result<(), Rejection> {
    if !state.exists() {
        return Err(Rejection::NotFound("session not found".into()));
    }
    if state.archived_at.is_some() {
        return Err(Rejection::Conflict("the session is archived".into()));
    }
    if state.status == Status::Terminated {
        return Err(Rejection::Conflict("the session is terminated".into()));
    }
    Ok(())
}

/// The session is in a turn (`running`, or `rescheduling` when `rescheduling` allows it).
fn in_turn(state: &SessionState, rescheduling: bool) -> Result<(), Rejection> {
    live(state)?;
    match state.status {
        Status::Running => Ok(()),
        Status::Rescheduling if rescheduling => Ok(()),
        other => Err(Rejection::Conflict(format!(
            "the session is {other}, not in a turn"
        ))),
    }
}

/// Starts a turn: consumes every pending input but interrupts and, unless the session already
/// runs, appends `session.status_running`. `log` is the session's records (to keep
/// `processed_at` in order, see the module header). Rejected when there is nothing to run or
/// an interrupt is pending.
pub fn start(
    state: &SessionState,
    log: &[SessionRecord],
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Started, Rejection> {
    live(state)?;
    if state.interrupt.is_some() {
        return Err(Rejection::Conflict("an interrupt is pending".into()));
    }
    if !state.needs_turn() {
        return Err(Rejection::Conflict("the session has nothing to run".into()));
    }
    let now = clock(state, now);
    let inputs: Vec<_> = state
        .pending_input()
        .iter()
        .filter(|i| i.kind != InputKind::Interrupt)
        .collect();
    let confirmations = inputs
        .iter()
        .filter(|i| i.kind == InputKind::ToolConfirmation)
        .map(|i| i.id.clone())
        .collect();
    // Each input is processed at `now`, or earlier when an event after it in the log is
    // earlier. Going forward through the inputs the bound only rises, so grouping consecutive
    // inputs with the same time gives facts in increasing time.
    let mut records: Vec<SessionRecord> = Vec::new();
    let mut group: Option<(Timestamp, Vec<EventId>)> = None;
    for input in inputs {
        let at = processed_bound(log, &input.id).map_or(now, |bound| bound.min(now));
        match &mut group {
            Some((t, ids)) if *t == at => ids.push(input.id.clone()),
            _ => {
                if let Some((t, ids)) = group.take() {
                    records.push(SessionRecord::inputs_processed(ids, t));
                }
                group = Some((at, vec![input.id.clone()]));
            }
        }
    }
    if let Some((t, ids)) = group {
        records.push(SessionRecord::inputs_processed(ids, t));
    }
    if state.status != Status::Running {
        records.push(event(ids, now, Body::SessionStatusRunning));
    }
    Ok(Started {
        records,
        confirmations,
    })
}

/// The earliest `processed_at` of the events after event `id` in `log`.
fn processed_bound(log: &[SessionRecord], id: &EventId) -> Option<Timestamp> {
    // From the end: pending inputs are recent, and ids are unique.
    let position = log
        .iter()
        .rposition(|r| r.event().is_some_and(|e| &e.id == id))?;
    log[position + 1..]
        .iter()
        .filter_map(|r| r.event()?.processed_at)
        .min()
}

/// Records one step of a running turn. Rejected when the session is not in a turn, or the step
/// does not fit the state: a tool result for a call that is not an open built-in call (or is
/// waiting for the client), a response whose calls are not tool-use events, a resume of a
/// session that is not rescheduling.
pub fn record(
    state: &SessionState,
    step: Step,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    // Only settling steps fit a session waiting to retry; a measured span end fits any live
    // session.
    let settling = matches!(step, Step::Resume | Step::Error(_) | Step::SpanFailed(_));
    if matches!(step, Step::ModelRequestEnd { .. }) {
        live(state)?;
    } else {
        in_turn(state, settling)?;
    }
    let now = clock(state, now);
    let records = match step {
        Step::ModelRequestStart(id) => {
            if state.budget_exhausted() {
                return Err(Rejection::Conflict(BUDGET_SPENT.into()));
            }
            vec![Event::new(id, now, Body::SpanModelRequestStart).into()]
        }
        Step::Thread(step) => super::thread::records(state, step, now, ids)?,
        Step::ModelResponse(response) => {
            let output = Output {
                thinking: response.thinking,
                message: response.message,
                calls: response.calls,
            };
            let mut records = output_records(state, output, now)?;
            records.push(event(
                ids,
                now,
                span_end(response.span, response.usage, false),
            ));
            records
        }
        Step::Output(output) => output_records(state, output, now)?,
        Step::ToolResult {
            tool_use_id,
            text,
            is_error,
        } => builtin_result(
            state,
            ids,
            now,
            tool_use_id,
            vec![ContentBlock::text(text)],
            is_error,
        )?,
        Step::ToolContent {
            tool_use_id,
            content,
            is_error,
        } => builtin_result(state, ids, now, tool_use_id, content, is_error)?,
        Step::McpToolResult {
            mcp_tool_use_id,
            content,
            is_error,
        } => {
            if state.open_tool_uses.get(&mcp_tool_use_id) != Some(&ToolKind::Mcp) {
                return Err(Rejection::invalid(
                    "mcp_tool_use_id",
                    format!("{mcp_tool_use_id} is not an open agent.mcp_tool_use"),
                ));
            }
            if state.pending_actions.contains(&mcp_tool_use_id) {
                return Err(Rejection::invalid(
                    "mcp_tool_use_id",
                    format!("{mcp_tool_use_id} waits for the client"),
                ));
            }
            let body = Body::AgentMcpToolResult(McpToolResult {
                mcp_tool_use_id,
                content: Some(content),
                is_error: Some(is_error),
            });
            vec![event(ids, now, body)]
        }
        Step::Error(error) => vec![event(ids, now, Body::SessionError(ErrorEvent { error }))],
        Step::Reschedule {
            span,
            kind,
            message,
        } => vec![
            event(ids, now, span_end(span, ModelUsage::default(), true)),
            event(ids, now, error(kind, message, RetryStatus::Retrying)),
            event(ids, now, Body::SessionStatusRescheduled),
        ],
        Step::Resume => {
            if state.status != Status::Rescheduling {
                return Err(Rejection::Conflict(
                    "the session is not rescheduling".into(),
                ));
            }
            vec![event(ids, now, Body::SessionStatusRunning)]
        }
        Step::SpanFailed(span) => {
            vec![event(ids, now, span_end(span, ModelUsage::default(), true))]
        }
        Step::Compacted {
            summary,
            kept_parts,
        } => vec![
            event(ids, now, Body::AgentThreadContextCompacted),
            Fact::ContextCompacted {
                summary,
                at: now,
                kept_parts,
            }
            .into(),
        ],
        Step::ModelRequestEnd {
            span,
            usage,
            is_error,
        } => vec![event(ids, now, span_end(span, usage, is_error))],
    };
    Ok(records)
}

/// The events of `output`; rejected when a call is not a tool-use event or already exists.
fn output_records(
    state: &SessionState,
    output: Output,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, Rejection> {
    let mut records = Vec::new();
    for id in output.thinking {
        records.push(Event::new(id, now, Body::AgentThinking).into());
    }
    if let Some((id, content)) = output.message {
        let body = Body::AgentMessage(AgentMessage { content });
        records.push(Event::new(id, now, body).into());
    }
    for (id, body) in output.calls {
        if !matches!(
            body,
            Body::AgentToolUse(_) | Body::AgentMcpToolUse(_) | Body::AgentCustomToolUse(_)
        ) {
            return Err(Rejection::invalid(
                "calls",
                format!("{} is not a tool call", body.type_name()),
            ));
        }
        if state.open_tool_uses.contains_key(&id) {
            return Err(Rejection::invalid(
                "calls",
                format!("tool call {id} already exists"),
            ));
        }
        records.push(Event::new(id, now, body).into());
    }
    Ok(records)
}

/// Ends the turn: records `steps`, gives every built-in or MCP call still open an error result
/// with `end.why` (calls the idle waits on keep theirs open), consumes pending interrupts, and goes
/// idle with `end.stop_reason`. Rejected when the session is not in a turn, or a
/// `requires_action` names a call that is not open.
pub fn finish(
    state: &SessionState,
    steps: Vec<Step>,
    end: End,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    in_turn(state, true)?;
    let now = clock(state, now);
    let mut after = state.clone();
    let mut records = Vec::new();
    for step in steps {
        for record in self::record(&after, step, now, ids)? {
            after.apply(&record);
            records.push(record);
        }
    }
    let waiting: &[EventId] = match &end.stop_reason {
        StopReason::RequiresAction { event_ids } => event_ids,
        _ => &[],
    };
    if let Some(id) = waiting
        .iter()
        .find(|id| !after.open_tool_uses.contains_key(*id))
    {
        return Err(Rejection::invalid(
            "stop_reason.event_ids",
            format!("{id} is not an open tool call"),
        ));
    }
    for (id, kind) in &after.open_tool_uses {
        if *kind != ToolKind::Custom && !after.pending_actions.contains(id) && !waiting.contains(id)
        {
            records.push(event(ids, now, closing_result(id.clone(), *kind, &end.why)));
        }
    }
    if end.stop_reason == StopReason::BudgetReached && after.is_child_thread() {
        // A child thread has no budget of its own: its session's cap stopped it
        // (`thread::budget_spent`), and `session.usage` is on the session's stream only.
    } else if end.stop_reason == StopReason::BudgetReached {
        if !after.budget_exhausted() {
            return Err(Rejection::invalid(
                "stop_reason",
                "budget_reached, but the session's list cost is below its budget",
            ));
        }
        // The usage snapshot always immediately precedes a `budget_reached` idle.
        records.push(event(
            ids,
            now,
            Body::SessionUsage(SessionUsage {
                usage: after.usage.clone(),
                budget: after.budget.clone(),
            }),
        ));
    }
    let interrupts: Vec<EventId> = after
        .inputs
        .iter()
        .filter(|i| i.kind == InputKind::Interrupt)
        .map(|i| i.id.clone())
        .collect();
    if !interrupts.is_empty() {
        records.push(SessionRecord::inputs_processed(interrupts, now));
    }
    records.push(event(
        ids,
        now,
        Body::SessionStatusIdle(StatusIdle {
            stop_reason: end.stop_reason,
            stop_details: end.stop_details,
        }),
    ));
    Ok(records)
}

/// Ends a turn that failed before or outside the model: a terminal `unknown_error` with
/// `message`, then idle with `end_turn`.
pub fn fail(
    state: &SessionState,
    message: impl Into<String>,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    finish(
        state,
        vec![Step::Error(unknown_error(message))],
        End::end_turn(ABANDONED),
        now,
        ids,
    )
}

/// Ends a turn a `user.interrupt` stopped: the open span (if any) ends with an error, open
/// calls get [`INTERRUPTED`], every active outcome ends `interrupted` ([`outcome`]), the
/// interrupt is consumed, idle with `end_turn`.
pub fn interrupt(
    state: &SessionState,
    open_span: Option<EventId>,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    in_turn(state, true)?;
    let now = clock(state, now);
    let mut after = state.clone();
    let mut records = Vec::new();
    if let Some(span) = open_span {
        for record in self::record(&after, Step::SpanFailed(span), now, ids)? {
            after.apply(&record);
            records.push(record);
        }
    }
    for record in outcome::interrupted(&after, now, ids) {
        after.apply(&record);
        records.push(record);
    }
    records.extend(finish(
        &after,
        Vec::new(),
        End::end_turn(INTERRUPTED),
        now,
        ids,
    )?);
    Ok(records)
}

/// The records of the current turn: everything after the last `session.status_idle` that
/// ended a turn (an idle on the session's threads leaves its turn open, see
/// [`SessionState::threads_idle`]).
fn since_idle(log: &[SessionRecord]) -> &[SessionRecord] {
    let start = log
        .iter()
        .enumerate()
        .rev()
        .find(|(at, r)| match r.event().map(|e| &e.body) {
            Some(Body::SessionStatusIdle(idle)) => !idle_on_threads(&log[..*at], &idle.stop_reason),
            _ => false,
        })
        .map_or(0, |(at, _)| at + 1);
    &log[start..]
}

/// Whether an idle with `stop_reason` after `before` is the session going idle on its threads:
/// it waits on calls cross-posted from child threads (tool-use events with
/// `session_thread_id`).
fn idle_on_threads(before: &[SessionRecord], stop_reason: &StopReason) -> bool {
    let StopReason::RequiresAction { event_ids } = stop_reason else {
        return false;
    };
    let Some(first) = event_ids.first() else {
        return false;
    };
    before
        .iter()
        .rev()
        .filter_map(SessionRecord::event)
        .find(|e| &e.id == first)
        .is_some_and(|e| match &e.body {
            Body::AgentToolUse(u) => u.session_thread_id.is_some(),
            Body::AgentMcpToolUse(u) => u.session_thread_id.is_some(),
            Body::AgentCustomToolUse(u) => u.session_thread_id.is_some(),
            _ => false,
        })
}

/// The input events the current turn consumed (named by its `inputs_processed` facts, which
/// [`start`] writes after the last idle), in log order: what an agent that keeps its own
/// conversation (an agent CLI in the sandbox) is handed for this turn.
pub fn consumed(log: &[SessionRecord]) -> Vec<&Event> {
    consumed_in(log, since_idle(log))
}

/// For a turn a restart cut short and that goes on in the agent ([`Resume::InAgent`]): the
/// input events it consumed after its latest restart (what the agent has not seen yet), or
/// `None` when the current turn was not restarted.
pub fn consumed_since_restart(log: &[SessionRecord]) -> Option<Vec<&Event>> {
    let turn = since_idle(log);
    let restart = turn
        .iter()
        .rposition(|r| matches!(r, SessionRecord::Fact(Fact::TurnRestarted { .. })))?;
    Some(consumed_in(log, &turn[restart + 1..]))
}

/// The input events of `log` that the `inputs_processed` facts of `part` name, in log order.
fn consumed_in<'a>(log: &'a [SessionRecord], part: &[SessionRecord]) -> Vec<&'a Event> {
    let ids: Vec<&EventId> = part
        .iter()
        .filter_map(|r| match r {
            SessionRecord::Fact(Fact::InputsProcessed { event_ids, .. }) => Some(event_ids),
            _ => None,
        })
        .flatten()
        .collect();
    log.iter()
        .filter_map(SessionRecord::event)
        .filter(|e| ids.contains(&&e.id))
        .collect()
}

/// Whether the current turn of a session had started: since the last idle, the runner
/// consumed input or wrote agent, span, error or rescheduling events.
pub fn turn_started(log: &[SessionRecord]) -> bool {
    since_idle(log).iter().any(|r| match r {
        SessionRecord::Fact(Fact::InputsProcessed { .. }) => true,
        SessionRecord::Fact(_) => false,
        SessionRecord::Event(e) => matches!(
            e.body,
            Body::AgentMessage(_)
                | Body::AgentThinking
                | Body::AgentToolUse(_)
                | Body::AgentToolResult(_)
                | Body::AgentMcpToolUse(_)
                | Body::AgentMcpToolResult(_)
                | Body::AgentCustomToolUse(_)
                | Body::AgentThreadMessageSent(_)
                | Body::AgentThreadMessageReceived(_)
                | Body::AgentThreadContextCompacted
                | Body::SpanModelRequestStart
                | Body::SpanModelRequestEnd(_)
                | Body::SpanOutcomeEvaluationStart(_)
                | Body::SpanOutcomeEvaluationOngoing(_)
                | Body::SpanOutcomeEvaluationEnd(_)
                | Body::SessionError(_)
                | Body::SessionStatusRescheduled
        ),
    })
}

/// The message of the `session.error` that ends a turn a stopped server abandoned.
pub const STOPPED: &str = "the server stopped while this turn was running; the turn was \
                           abandoned (send a new message to continue)";

/// The error result of a tool call a restart cut short (it may or may not have had effects).
pub const RESTARTED: &str = "The server restarted while this tool call was running; it may or \
                             may not have completed. Check its effects before running it again.";

/// Built-in tools that only read: a call a restart cut short is simply run again.
pub const IDEMPOTENT_TOOLS: [BuiltinTool; 3] =
    [BuiltinTool::Read, BuiltinTool::Glob, BuiltinTool::Grep];

/// The open built-in calls of the current turn whose tool is one of [`IDEMPOTENT_TOOLS`] and
/// that wait on nobody: what a turn resumed after a restart runs again first.
pub fn idempotent_open_calls<'a>(
    state: &SessionState,
    log: &'a [SessionRecord],
) -> Vec<(&'a EventId, BuiltinTool, &'a Map<String, Value>)> {
    since_idle(log)
        .iter()
        .filter_map(SessionRecord::event)
        .filter_map(|e| match &e.body {
            Body::AgentToolUse(u) => Some((&e.id, u)),
            _ => None,
        })
        .filter(|(id, _)| {
            state.open_tool_uses.get(*id) == Some(&ToolKind::Builtin)
                && !state.pending_actions.contains(id)
        })
        .filter_map(|(id, u)| {
            let tool = BuiltinTool::parse(&u.name)?;
            IDEMPOTENT_TOOLS
                .contains(&tool)
                .then_some((id, tool, &u.input))
        })
        .collect()
}

/// The current turn's model request spans that never ended (a process died during them).
fn open_spans(log: &[SessionRecord]) -> Vec<EventId> {
    let turn = since_idle(log);
    let ended: std::collections::HashSet<&EventId> = turn
        .iter()
        .filter_map(SessionRecord::event)
        .filter_map(|e| match &e.body {
            Body::SpanModelRequestEnd(end) => Some(&end.model_request_start_id),
            _ => None,
        })
        .collect();
    turn.iter()
        .filter_map(SessionRecord::event)
        .filter(|e| matches!(e.body, Body::SpanModelRequestStart) && !ended.contains(&e.id))
        .map(|e| e.id.clone())
        .collect()
}

/// What a restart writes for a turn that goes on: each model request span left open ends as
/// an error (the request is made again), each open built-in or MCP call gets a [`RESTARTED`]
/// error result unless `rerun` and its tool is idempotent ([`idempotent_open_calls`]: left
/// open, run again), then `session.status_rescheduled` and `internal.turn_restarted`.
fn restarted(
    state: &SessionState,
    log: &[SessionRecord],
    rerun: bool,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Vec<SessionRecord> {
    let now = clock(state, now);
    let mut records: Vec<SessionRecord> = open_spans(log)
        .into_iter()
        .map(|span| self::event(ids, now, span_end(span, ModelUsage::default(), true)))
        .collect();
    let rerun: Vec<&EventId> = if rerun {
        idempotent_open_calls(state, log)
            .into_iter()
            .map(|(id, ..)| id)
            .collect()
    } else {
        Vec::new()
    };
    for (id, kind) in &state.open_tool_uses {
        if *kind != ToolKind::Custom && !state.pending_actions.contains(id) && !rerun.contains(&id)
        {
            records.push(self::event(
                ids,
                now,
                closing_result(id.clone(), *kind, RESTARTED),
            ));
        }
    }
    if state.status != Status::Rescheduling {
        records.push(self::event(ids, now, Body::SessionStatusRescheduled));
    }
    records.push(Fact::TurnRestarted { at: now }.into());
    records
}

/// How the engine of a session can go on with a turn a restart cut short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// It cannot: the turn ends with a terminal error.
    No,
    /// From the log (the resident engines: the conversation is the log): read-only calls left
    /// open ([`IDEMPOTENT_TOOLS`]) are run again by the engine, the others closed.
    FromLog,
    /// In the agent, which keeps its own conversation (an agent CLI, whose process died with
    /// the server): every open call is closed, and the agent is told the turn was cut and
    /// continues it ([`consumed_since_restart`]).
    InAgent,
}

/// What a runner must write before it may start a turn on a session no turn is running for,
/// or `None` when nothing needs settling:
/// - `running`/`rescheduling` with a started turn (a process died mid-turn) and an engine that
///   can go on ([`Resume`]): the turn is rescheduled ([`restarted`]) and the runner's next
///   [`start`] continues it;
/// - the same with [`Resume::No`]: each open model request span ended as an error, a terminal
///   `unknown_error` ([`STOPPED`]), an error result ([`ABANDONED`]) for each built-in call left
///   open, idle `end_turn`;
/// - an interrupt pending: consume it and idle `end_turn`;
/// - `running`/`rescheduling` with nothing to run: idle `end_turn`.
///
/// A coordinator's cut turn first ends what it left open of its team's activity
/// ([`super::thread::cut_short`]: children still running go idle, workflow runs end with an
/// error result saying the server restarted, then idle).
///
/// Queued input is left for the next [`start`].
pub fn recover(
    state: &SessionState,
    log: &[SessionRecord],
    resume: Resume,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Option<Vec<SessionRecord>>, Rejection> {
    live(state)?;
    let busy = matches!(state.status, Status::Running | Status::Rescheduling);
    if busy && resume != Resume::No && state.interrupt.is_none() && turn_started(log) {
        if state.resume_after_restart {
            // Already rescheduled: the runner's next start continues it.
            return Ok(None);
        }
        let rerun = resume == Resume::FromLog;
        let (after, mut records) = threads_cut_short(state, now, ids);
        records.extend(restarted(&after, log, rerun, now, ids));
        return Ok(Some(records));
    }
    let steps = if busy && turn_started(log) {
        let mut steps: Vec<Step> = open_spans(log).into_iter().map(Step::SpanFailed).collect();
        steps.push(Step::Error(unknown_error(STOPPED)));
        steps
    } else if state.interrupt.is_some() || (busy && !state.needs_turn()) {
        Vec::new()
    } else {
        return Ok(None);
    };
    let (after, mut records) = if busy {
        threads_cut_short(state, now, ids)
    } else {
        (state.clone(), Vec::new())
    };
    records.extend(finish(&after, steps, End::end_turn(ABANDONED), now, ids)?);
    Ok(Some(records))
}

/// The records ending the child threads and workflow runs a cut turn left open
/// ([`super::thread::cut_short`]), and the state after them.
fn threads_cut_short(
    state: &SessionState,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> (SessionState, Vec<SessionRecord>) {
    let records = super::thread::cut_short(state, clock(state, now), ids);
    let mut after = state.clone();
    for record in &records {
        after.apply(record);
    }
    (after, records)
}
