//! `decide`: validates a command against a folded session and returns the records to append.
//!
//! Rules (API section 7.2), checked all-or-nothing per batch, in order, each event against the
//! state as the earlier events of the same batch leave it:
//! - nothing is accepted on a deleted (404), archived (409) or terminated (409) session;
//! - `user.tool_confirmation` only answers a pending `agent.tool_use` / `agent.mcp_tool_use`
//!   listed in `requires_action`; `deny_message` only with `deny`;
//! - `user.custom_tool_result` only answers a pending `agent.custom_tool_use`;
//! - `user.tool_result` only answers an open `agent.tool_use` (self-hosted workers);
//! - while paused at the budget only settle events and interrupts are accepted;
//! - while `requires_action`, `system.message` only right after a tool result/confirmation.
//!
//! What is appended: the echoed events with fresh ids. `user.custom_tool_result`,
//! `user.tool_result`, `user.define_outcome` and `user.interrupt` are processed at once
//! (`processed_at` = now); `user.message`, `user.tool_confirmation` and `system.message` stay
//! queued (`null`) until the runner records `inputs_processed`. Then, on an idle session:
//! resolving some but not all pending actions re-emits `session.status_idle` with the
//! remaining ids; otherwise, if the batch brought work for a turn (anything but interrupts and
//! system messages) and nothing is pending, `session.status_running` follows. Answers to calls
//! cross-posted from child threads are the children's (echoed with the thread): a child whose
//! calls are all answered gets `session.thread_status_running`, after `session.status_running`
//! when the session was idle on its threads; answers that complete no child's calls re-emit
//! that idle with the calls still waiting (see `crate::session::thread`).
//!
//! Resources (API section 9) change through internal facts, never public events: adding one
//! (`file` or `github_repository`; at most 999 files; the id must be new), rotating a GitHub
//! token (the sealed token replaces the old one and `updated_at` moves) and removing one (404
//! for an unknown id) are refused on archived or terminated sessions.
//!
//! Interrupts: on a running or rescheduling session (or one idle on its threads, whose turn is
//! open) the interrupt is input the runner acts on.
//! On a session idle in `requires_action` it cancels the wait (`session.status_idle` with
//! `end_turn` follows). On any other idle session it is a no-op that is still persisted (with
//! `processed_at` = now), so the echoed id is a real event a client can find in the list; the
//! hosted API drops such interrupts instead.

use std::time::Duration;

use super::idempotency::{self, IdempotencyKey};
use super::ids::IdSource;
use super::record::{Created, Fact, SessionRecord};
use super::rejection::Rejection;
use super::state::{SessionState, Status, ToolKind};
use super::update::{self, changes, Update};
use crate::event::{
    self, Body, Confirmation, ContentBlock, CustomToolResultParams, Event, EventParams, StatusIdle,
    StopReason, ThreadStatus, ToolConfirmationParams,
};
use crate::ids::{ResourceId, ThreadId};
use crate::pricing;
use crate::resource::{Resource, MAX_FILE_RESOURCES};
use crate::time::Timestamp;
use crate::validate::{self, FieldError};
use crate::vault::SealedSecret;

/// What a client (or the server on its behalf) asks of a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Create the session, then process `initial_events` (≤50 messages/outcomes).
    Create {
        /// The resolved configuration.
        created: Box<Created>,
        /// Sent in the create body.
        initial_events: Vec<EventParams>,
    },
    /// `POST /v1/sessions/{id}/events`.
    Send(Vec<EventParams>),
    /// `POST /v1/sessions/{id}/events` with an `Idempotency-Key` (see
    /// [`super::idempotency`]): a send the key has already answered is an accepted no-op (the
    /// caller answers from [`SessionState::idempotency`]), a different body under a live key
    /// is a 409, anything else is a [`Command::Send`] preceded by the key's fact.
    SendKeyed {
        /// The key.
        key: IdempotencyKey,
        /// The events.
        events: Vec<EventParams>,
    },
    /// The operator's pending-action timeout (`serve --requires-action-timeout`): once a
    /// session has waited in `requires_action` for `timeout`, every pending call is answered
    /// as a client would deny it (`user.tool_confirmation` `deny` with the deny message "no
    /// response within N s"; `user.custom_tool_result` with that text and `is_error`), and
    /// the turn goes on. A no-op before the deadline or when nothing is pending.
    ExpireActions {
        /// How long a session may wait.
        timeout: Duration,
    },
    /// `POST /v1/sessions/{id}`.
    Update(Update),
    /// `POST /v1/sessions/{id}/archive`.
    Archive,
    /// `DELETE /v1/sessions/{id}`: appends `session.deleted` (for open streams) before the
    /// caller deletes the stream.
    Delete,
    /// `POST /v1/sessions/{id}/resources`: a resolved `file` or `github_repository` resource
    /// (the caller checked that the file exists in the workspace and sealed the token).
    AddResource(Box<Resource>),
    /// `POST /v1/sessions/{id}/resources/{resource_id}`: a GitHub repository's new token,
    /// sealed (the caller checked it with [`crate::resource::check_token`]).
    RotateResourceToken {
        /// The resource.
        id: ResourceId,
        /// The sealed token.
        authorization_token: SealedSecret,
    },
    /// `DELETE /v1/sessions/{id}/resources/{resource_id}`.
    RemoveResource(ResourceId),
}

/// Validates `command` against `state` and returns the records to append, in order. An empty
/// list means an accepted no-op (an update that changes nothing, archiving twice).
pub fn decide(
    state: &SessionState,
    command: Command,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    let command = match command {
        Command::Create {
            created,
            initial_events,
        } => return create(state, created, initial_events, now, ids),
        other => other,
    };
    if !state.exists() {
        return Err(Rejection::NotFound("session not found".into()));
    }
    let busy = matches!(state.status, Status::Running | Status::Rescheduling);
    match command {
        Command::Create { .. } => Err(Rejection::Conflict("session already exists".into())),
        Command::Send(batch) => {
            writable(state)?;
            send(state, batch, "events", now, ids)
        }
        Command::SendKeyed { key, events } => send_keyed(state, key, events, now, ids),
        Command::ExpireActions { timeout } => expire_actions(state, timeout, now, ids),
        Command::Update(update) => {
            if state.archived_at.is_some() {
                return Err(Rejection::Conflict(
                    "the session is archived and cannot be updated".into(),
                ));
            }
            Ok(changes(state, update)?
                .map(|updated| {
                    let event = Event::new(ids.event(), now, Body::SessionUpdated(updated));
                    vec![SessionRecord::Event(event)]
                })
                .unwrap_or_default())
        }
        Command::Archive | Command::Delete if state.threads_idle.is_some() => {
            Err(Rejection::Conflict(format!(
                "{}; answer the calls it waits on or interrupt it first",
                state.turn_open().unwrap_or_default()
            )))
        }
        Command::Archive if busy => Err(Rejection::Conflict(format!(
            "the session is {}; interrupt it before archiving",
            state.status
        ))),
        Command::Archive if state.archived_at.is_some() => Ok(Vec::new()),
        Command::Archive => Ok(vec![Fact::Archived { at: now }.into()]),
        Command::Delete if busy => Err(Rejection::Conflict(format!(
            "the session is {}; interrupt it before deleting",
            state.status
        ))),
        Command::Delete => Ok(vec![
            Event::new(ids.event(), now, Body::SessionDeleted).into()
        ]),
        Command::AddResource(resource) => {
            resources_writable(state)?;
            add_resource(state, *resource, now)
        }
        Command::RotateResourceToken {
            id,
            authorization_token,
        } => {
            resources_writable(state)?;
            let resource = existing_resource(state, &id)?
                .with_token(authorization_token, now)
                .map_err(Rejection::Invalid)?;
            Ok(vec![Fact::ResourceUpdated { resource, at: now }.into()])
        }
        Command::RemoveResource(id) => {
            resources_writable(state)?;
            existing_resource(state, &id)?;
            Ok(vec![Fact::ResourceRemoved { id, at: now }.into()])
        }
    }
}

fn send_keyed(
    state: &SessionState,
    key: IdempotencyKey,
    events: Vec<EventParams>,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    let request_hash = idempotency::request_hash(&events);
    if let Some(entry) = state.idempotency.get(&key).filter(|e| e.live(now)) {
        if entry.request_hash == request_hash {
            return Ok(Vec::new());
        }
        return Err(Rejection::Conflict(format!(
            "{} {:?} was used with a different request body",
            idempotency::HEADER,
            key.as_str()
        )));
    }
    writable(state)?;
    let sent = send(state, events, "events", now, ids)?;
    let event_ids = sent
        .iter()
        .filter_map(|r| r.event())
        .filter(|e| e.body.is_client())
        .map(|e| e.id.clone())
        .collect();
    let mut records = Vec::with_capacity(sent.len() + 1);
    records.push(
        Fact::IdempotencyKey {
            key,
            request_hash,
            event_ids,
            at: now,
        }
        .into(),
    );
    records.extend(sent);
    Ok(records)
}

/// The deny message of the pending-action timeout.
pub fn timeout_message(timeout: Duration) -> String {
    format!("no response within {} s", timeout.as_secs())
}

fn expire_actions(
    state: &SessionState,
    timeout: Duration,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    match state.action_deadline(timeout) {
        Some(deadline) if deadline <= now => {}
        _ => return Ok(Vec::new()),
    }
    let message = timeout_message(timeout);
    let batch = state
        .pending_actions
        .iter()
        .map(|id| match state.open_tool_uses.get(id) {
            Some(ToolKind::Custom) => EventParams::UserCustomToolResult(CustomToolResultParams {
                custom_tool_use_id: id.clone(),
                content: Some(vec![ContentBlock::text(message.clone())]),
                is_error: Some(true),
                session_thread_id: None,
            }),
            _ => EventParams::UserToolConfirmation(ToolConfirmationParams {
                tool_use_id: id.clone(),
                result: Confirmation::Deny,
                deny_message: Some(message.clone()),
                session_thread_id: None,
            }),
        })
        .collect();
    send(state, batch, "events", now, ids)
}

/// Resources change only on sessions that are neither archived nor terminated.
fn resources_writable(state: &SessionState) -> Result<(), Rejection> {
    if state.archived_at.is_some() {
        return Err(Rejection::Conflict(
            "the session is archived; its resources cannot be changed".into(),
        ));
    }
    if state.status == Status::Terminated {
        return Err(Rejection::Conflict(
            "the session is terminated; its resources cannot be changed".into(),
        ));
    }
    Ok(())
}

fn existing_resource<'a>(
    state: &'a SessionState,
    id: &ResourceId,
) -> Result<&'a Resource, Rejection> {
    state
        .resource(id)
        .ok_or_else(|| Rejection::NotFound(format!("session resource {:?} not found", id.as_str())))
}

fn file_count<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> usize {
    resources
        .into_iter()
        .filter(|r| matches!(r, Resource::File { .. }))
        .count()
}

fn add_resource(
    state: &SessionState,
    resource: Resource,
    now: Timestamp,
) -> Result<Vec<SessionRecord>, Rejection> {
    match &resource {
        Resource::MemoryStore { .. } => {
            return Err(Rejection::invalid(
                "type",
                "memory stores can only be attached at session creation",
            ))
        }
        Resource::File { .. } if file_count(&state.resources) >= MAX_FILE_RESOURCES => {
            return Err(Rejection::invalid(
                "file_id",
                format!("a session can have at most {MAX_FILE_RESOURCES} file resources"),
            ))
        }
        _ => {}
    }
    if let Some(id) = resource.id() {
        if state.resource(id).is_some() {
            return Err(Rejection::Conflict(format!(
                "session resource {id} already exists"
            )));
        }
    }
    Ok(vec![Fact::ResourceAdded { resource, at: now }.into()])
}

fn writable(state: &SessionState) -> Result<(), Rejection> {
    if state.archived_at.is_some() {
        return Err(Rejection::Conflict(
            "the session is archived and accepts no new events".into(),
        ));
    }
    if state.status == Status::Terminated {
        return Err(Rejection::Conflict(
            "the session is terminated and accepts no new events".into(),
        ));
    }
    Ok(())
}

fn create(
    state: &SessionState,
    created: Box<Created>,
    initial_events: Vec<EventParams>,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    if state.config.is_some() {
        return Err(Rejection::Conflict(format!(
            "session {} already exists",
            created.id
        )));
    }
    validate::metadata("metadata", &created.metadata)?;
    if file_count(&created.resources) > MAX_FILE_RESOURCES {
        return Err(Rejection::invalid(
            "resources",
            format!("a session can have at most {MAX_FILE_RESOURCES} file resources"),
        ));
    }
    if let Some(budget) = &created.budget {
        update::check_budget(budget)?;
        let model = &created.agent.model.id;
        if pricing::list_price(model).is_none() {
            return Err(FieldError::new(
                "budget",
                format!("model {model} has no list price, so its spend cannot be capped"),
            )
            .with_code("model_not_budgetable")
            .into());
        }
    }
    event::validate_initial(&initial_events)?;
    let first: SessionRecord = Fact::Created(created).into();
    let mut sim = state.clone();
    sim.apply(&first);
    let mut records = vec![first];
    if !initial_events.is_empty() {
        records.extend(send(&sim, initial_events, "initial_events", now, ids)?);
    }
    Ok(records)
}

/// An answer that names the thread of the call it answers (`session_thread_id`, which the docs
/// ask clients to echo) must name the thread that made it: the child thread whose call was
/// cross-posted, or the primary thread for one of the session's own calls.
fn check_named_thread(sim: &SessionState, params: &EventParams, at: &str) -> Result<(), Rejection> {
    let (call, named) = match params {
        EventParams::UserToolConfirmation(p) => (&p.tool_use_id, &p.session_thread_id),
        EventParams::UserCustomToolResult(p) => (&p.custom_tool_use_id, &p.session_thread_id),
        _ => return Ok(()),
    };
    let Some(named) = named else {
        return Ok(());
    };
    let made_by = sim
        .cross_posted
        .get(call)
        .cloned()
        .or_else(|| sim.config.as_ref().map(|c| ThreadId::primary_of(&c.id)));
    if made_by.as_ref() == Some(named) {
        return Ok(());
    }
    Err(Rejection::invalid(
        format!("{at}session_thread_id"),
        format!("{call} was not made by thread {named}; omit session_thread_id or name the thread that made the call"),
    ))
}

fn settles(params: &EventParams) -> bool {
    matches!(
        params,
        EventParams::UserToolConfirmation(_)
            | EventParams::UserCustomToolResult(_)
            | EventParams::UserToolResult(_)
            | EventParams::UserInterrupt(_)
    )
}

/// Checks one event against the state the earlier events of its batch leave.
fn admit(
    sim: &SessionState,
    requires_action: bool,
    previous: Option<&EventParams>,
    params: &EventParams,
    at: &str,
) -> Result<(), Rejection> {
    if sim.budget_paused() && !settles(params) {
        return Err(Rejection::invalid(
            format!("{at}type"),
            format!(
                "{} is not accepted while the session is paused at its budget; only tool \
                 confirmations, tool results and interrupts are",
                params.type_name()
            ),
        ));
    }
    check_named_thread(sim, params, at)?;
    let pending = |id| sim.pending_actions.contains(id);
    match params {
        EventParams::UserToolConfirmation(p) if sim.cross_posted.contains_key(&p.tool_use_id) => {}
        EventParams::UserCustomToolResult(p)
            if sim.cross_posted.contains_key(&p.custom_tool_use_id) => {}
        EventParams::UserInterrupt(p) => {
            if let Some(thread) = &p.session_thread_id {
                let primary = sim.config.as_ref().map(|c| ThreadId::primary_of(&c.id));
                if Some(thread) != primary.as_ref() && !sim.for_child(Some(thread)) {
                    return Err(Rejection::invalid(
                        format!("{at}session_thread_id"),
                        format!("{thread} is not a thread of this session"),
                    ));
                }
            }
        }
        EventParams::UserToolConfirmation(p) => {
            let kind = sim.open_tool_uses.get(&p.tool_use_id);
            if !pending(&p.tool_use_id) || kind == Some(&ToolKind::Custom) {
                return Err(Rejection::invalid(
                    format!("{at}tool_use_id"),
                    format!(
                        "{} is not an agent.tool_use or agent.mcp_tool_use awaiting confirmation",
                        p.tool_use_id
                    ),
                ));
            }
        }
        EventParams::UserCustomToolResult(p) => {
            let kind = sim.open_tool_uses.get(&p.custom_tool_use_id);
            if !pending(&p.custom_tool_use_id) || kind != Some(&ToolKind::Custom) {
                return Err(Rejection::invalid(
                    format!("{at}custom_tool_use_id"),
                    format!(
                        "{} is not an agent.custom_tool_use awaiting a result",
                        p.custom_tool_use_id
                    ),
                ));
            }
        }
        EventParams::UserToolResult(p) => {
            if sim.open_tool_uses.get(&p.tool_use_id) != Some(&ToolKind::Builtin) {
                return Err(Rejection::invalid(
                    format!("{at}tool_use_id"),
                    format!(
                        "{} is not an agent.tool_use awaiting a result",
                        p.tool_use_id
                    ),
                ));
            }
        }
        EventParams::SystemMessage(_) => {
            let after_result = previous.is_some_and(|p| settles(p) && !is_interrupt(p));
            if requires_action && !after_result {
                return Err(Rejection::invalid(
                    format!("{at}type"),
                    "while the session requires action, system.message is accepted only right \
                     after a tool confirmation or tool result in the same request",
                ));
            }
        }
        EventParams::UserMessage(_) | EventParams::UserDefineOutcome(_) => {}
    }
    Ok(())
}

/// The child thread an event is for, when it is for one.
fn routed(sim: &SessionState, params: &EventParams) -> Option<ThreadId> {
    match params {
        EventParams::UserToolConfirmation(p) => sim.cross_posted.get(&p.tool_use_id).cloned(),
        EventParams::UserCustomToolResult(p) => {
            sim.cross_posted.get(&p.custom_tool_use_id).cloned()
        }
        EventParams::UserInterrupt(p) => p
            .session_thread_id
            .clone()
            .filter(|t| sim.for_child(Some(t))),
        _ => None,
    }
}

fn is_interrupt(params: &EventParams) -> bool {
    matches!(params, EventParams::UserInterrupt(_))
}

fn processed_at_once(params: &EventParams) -> bool {
    matches!(
        params,
        EventParams::UserCustomToolResult(_)
            | EventParams::UserToolResult(_)
            | EventParams::UserDefineOutcome(_)
            | EventParams::UserInterrupt(_)
    )
}

fn send(
    state: &SessionState,
    batch: Vec<EventParams>,
    field: &str,
    now: Timestamp,
    ids: &mut impl IdSource,
) -> Result<Vec<SessionRecord>, Rejection> {
    if batch.is_empty() {
        return Err(Rejection::invalid(field, "must contain at least one event"));
    }
    for (i, params) in batch.iter().enumerate() {
        params
            .validate()
            .map_err(|e| event::within(&format!("{field}[{i}]."), e))?;
    }
    let requires_action = !state.pending_actions.is_empty();
    let mut sim = state.clone();
    let mut records = Vec::with_capacity(batch.len() + 1);
    let mut push = |sim: &mut SessionState, event: Event| {
        let record = SessionRecord::Event(event);
        sim.apply(&record);
        records.push(record);
    };
    let mut previous: Option<EventParams> = None;
    let mut work = false;
    // Child threads whose cross-posted calls this batch answers.
    let mut answered: Vec<ThreadId> = Vec::new();
    for (i, params) in batch.into_iter().enumerate() {
        admit(
            &sim,
            requires_action,
            previous.as_ref(),
            &params,
            &format!("{field}[{i}]."),
        )?;
        // An answer to a call cross-posted from a child thread, or an interrupt of a child
        // thread, is the child's: echoed here with the thread, relayed by the coordinator's
        // turn (see `crate::session::thread`).
        let child = routed(&sim, &params);
        if let Some(thread) = &child {
            if !is_interrupt(&params) && !answered.contains(thread) {
                answered.push(thread.clone());
            }
        }
        let cancels_wait = child.is_none()
            && is_interrupt(&params)
            && sim.status == Status::Idle
            && !sim.pending_actions.is_empty();
        let processed_at = (processed_at_once(&params) || child.is_some()).then_some(now);
        work |= child.is_none()
            && !matches!(
                params,
                EventParams::UserInterrupt(_) | EventParams::SystemMessage(_)
            );
        previous = Some(params.clone());
        let mut body = params.into_body(|| ids.outcome());
        if let Some(thread) = child {
            match &mut body {
                Body::UserToolConfirmation(c) => c.session_thread_id = Some(thread),
                Body::UserCustomToolResult(r) => r.session_thread_id = Some(thread),
                _ => {}
            }
        }
        push(
            &mut sim,
            Event {
                id: ids.event(),
                processed_at,
                body,
            },
        );
        if cancels_wait {
            push(&mut sim, idle(ids.event(), now, StopReason::EndTurn));
        }
    }
    if sim.interrupt.is_none() {
        // A child thread whose cross-posted calls are all answered runs again: the coordinator
        // relays the answers. The session, when it was idle on its threads, runs with it;
        // answers that leave every child waiting re-list what still waits.
        let resumed: Vec<&ThreadId> = answered
            .iter()
            .filter(|t| !sim.cross_posted.values().any(|w| w == *t))
            .collect();
        if !resumed.is_empty() && sim.threads_idle.is_some() {
            push(
                &mut sim,
                Event::new(ids.event(), now, Body::SessionStatusRunning),
            );
        }
        for thread in resumed {
            let agent_name = sim
                .children
                .iter()
                .find(|c| &c.id == thread)
                .map(|c| c.agent_name.clone())
                .unwrap_or_default();
            let body = Body::SessionThreadStatusRunning(ThreadStatus {
                session_thread_id: thread.clone(),
                agent_name,
            });
            push(&mut sim, Event::new(ids.event(), now, body));
        }
        if let Some(waiting) = &sim.threads_idle {
            if state.threads_idle.as_ref() != Some(waiting) {
                let event_ids = waiting.clone();
                push(
                    &mut sim,
                    idle(ids.event(), now, StopReason::RequiresAction { event_ids }),
                );
            }
        }
    }
    if sim.status == Status::Idle && !sim.budget_paused() {
        if !sim.pending_actions.is_empty() && sim.pending_actions != state.pending_actions {
            let event_ids = sim.pending_actions.clone();
            push(
                &mut sim,
                idle(ids.event(), now, StopReason::RequiresAction { event_ids }),
            );
        } else if work && sim.needs_turn() {
            push(
                &mut sim,
                Event::new(ids.event(), now, Body::SessionStatusRunning),
            );
        }
    }
    Ok(records)
}

fn idle(id: crate::ids::EventId, now: Timestamp, stop_reason: StopReason) -> Event {
    Event::new(
        id,
        now,
        Body::SessionStatusIdle(StatusIdle {
            stop_reason,
            stop_details: None,
        }),
    )
}
