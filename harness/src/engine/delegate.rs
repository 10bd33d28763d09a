//! Delegation: a coordinator (an agent with a multiagent roster) gets one tool,
//! [`TOOL`] (`{agent, message, session_thread_id?}`), that sends a message to a roster member
//! in a child thread and answers with the member's reply.
//!
//! Without `session_thread_id` a new child thread starts (`session.thread_created`); with one,
//! the message continues that thread, whose conversation is kept (threads are persistent).
//! The coordinator's stream records `agent.thread_message_sent`,
//! `session.thread_status_running`, then, when the child went idle,
//! `session.thread_status_idle`, the child's usage (rolled into the session's) and
//! `agent.thread_message_received` with the reply, which is also the tool's result (with the
//! thread id, for a follow-up). Every record is decided by core (`core::session::thread`).
//!
//! The child's turns run right here, inside the coordinator's tool call, through the runner
//! ([`Threads`]): the same set-up, engines, tools and recovery as any session, in the
//! session's workspace. Several delegations of one model response are prepared in order,
//! then their children run at once ([`Turn::start_all`]), then each is concluded in order.
//!
//! A child that waits on the client (a tool confirmation, a custom tool result) has its calls
//! cross-posted to the session's stream with `session_thread_id`; the client answers them on
//! the session, and the answers are relayed to the child, which then runs on. An interrupt of
//! the session (or of the child: `user.interrupt` with its `session_thread_id`) reaches the
//! child: a running child ends its turn, a waiting one has its pending calls closed with an
//! error result and goes idle `end_turn`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures::StreamExt;
use managed_agents_core::agent::roster::{self, Member as RosterMember};
use managed_agents_core::agent::{Agent, AgentSnapshot};
use managed_agents_core::event::{
    Body, ContentBlock, CustomToolResultParams, EventParams, InterruptParams, StopReason,
    ToolConfirmationParams,
};
use managed_agents_core::ids::{EventId, SessionId, ThreadId};
use managed_agents_core::session::thread::{self, Step as ThreadStep};
use managed_agents_core::session::turn::Step;
use managed_agents_core::session::{log, Command, Fresh, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{Store, StreamId};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use serde_json::{json, Map, Value};

use super::Turn;
use crate::model::ToolSpec;
use crate::sandbox::Sandbox;
use crate::writer::Halt;

/// The coordinator's delegation tool.
pub(crate) const TOOL: &str = "message_agent";

/// The text of the error result closing a waiting child's calls when it is interrupted.
const INTERRUPTED: &str = "Interrupted before the client answered.";

/// Runs child threads' turns: the runner, for the coordinator's engine.
pub(crate) trait Threads: Send + Sync {
    /// Runs child thread stream `child` until it has nothing left to do.
    fn run<'a>(&'a self, child: &'a SessionId) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// One agent the coordinator may delegate to.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// How the coordinator names it (its agent's name).
    pub(crate) name: String,
    /// Its agent id.
    pub(crate) agent_id: String,
    /// The snapshot its threads run.
    pub(crate) snapshot: AgentSnapshot,
}

/// The delegable members of `coordinator`'s roster: the definitions the session's roster
/// holds (each member at its resolved version, `self` the coordinator as the session was
/// created, overrides included); for a roster without them, each member loaded at its
/// version. Members that cannot be loaded are left out.
pub(crate) async fn roster<S: Store>(store: &S, coordinator: &AgentSnapshot) -> Vec<Member> {
    let Some(multiagent) = &coordinator.multiagent else {
        return Vec::new();
    };
    // A session's roster holds its members' definitions, fixed when it was created.
    let defined = roster::definitions(multiagent);
    if !defined.is_empty() {
        return defined
            .into_iter()
            .map(|snapshot| Member {
                name: snapshot.name.clone(),
                agent_id: snapshot.id.to_string(),
                snapshot,
            })
            .collect();
    }
    let mut members = Vec::new();
    for member in roster::members(multiagent) {
        let snapshot = match member {
            RosterMember::SelfCopy => Some(coordinator.clone()),
            RosterMember::Agent { id, version } => {
                match stream::load::<S, Option<Agent>>(store, &StreamId::new(&id)).await {
                    Ok(head) => head.state.and_then(|agent| agent.snapshot(version)),
                    Err(e) => {
                        tracing::warn!(agent = id, error = %e, "cannot load a roster agent");
                        None
                    }
                }
            }
        };
        if let Some(snapshot) = snapshot {
            members.push(Member {
                name: snapshot.name.clone(),
                agent_id: snapshot.id.to_string(),
                snapshot,
            });
        }
    }
    members
}

/// The delegation tool as the model sees it.
pub(crate) fn spec(members: &[Member]) -> ToolSpec {
    let mut listing = String::new();
    for member in members {
        listing.push_str(&format!("\n- {} ({})", member.name, member.agent_id));
        if let Some(description) = member
            .snapshot
            .description
            .as_deref()
            .filter(|d| !d.is_empty())
        {
            listing.push_str(&format!(": {description}"));
        }
    }
    let mut names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    ToolSpec {
        name: TOOL.to_owned(),
        description: format!(
            "Send a message to another agent of your team and wait for its reply. Each agent \
             works in a thread of its own, with its own context and tools, in the same \
             workspace as you. Without session_thread_id a new thread starts; to follow up \
             with an agent, give the session_thread_id its earlier reply named, and it \
             continues with everything from its previous turns. Agents:{listing}"
        ),
        input_schema: json!({
            "type": "object",
            "properties": {
                "agent": {
                    "type": "string",
                    "enum": names,
                    "description": "The agent to message, by name."
                },
                "message": {"type": "string", "description": "What to ask or tell it."},
                "session_thread_id": {
                    "type": "string",
                    "description": "An earlier thread with this agent to continue (optional)."
                }
            },
            "required": ["agent", "message"]
        }),
        server: None,
    }
}

/// A delegation whose child thread has its message.
#[derive(Debug, Clone)]
pub(super) struct Prepared {
    thread: ThreadId,
    child: SessionId,
    agent_name: String,
    /// The child's stream version holding the message: its reply follows.
    after: usize,
}

/// Why a delegation did not give a reply.
pub(super) enum Failure {
    /// The tool call fails with this text.
    Tool(String),
    /// The turn stops.
    Halt(Halt),
}

impl From<Halt> for Failure {
    fn from(halt: Halt) -> Self {
        Failure::Halt(halt)
    }
}

fn text(input: &Map<String, Value>, key: &str) -> Option<String> {
    input
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The agent messages of `records` after version `after`, as one reply.
fn reply(records: &[SessionRecord], after: usize) -> Vec<ContentBlock> {
    let mut content = Vec::new();
    for record in records.iter().skip(after) {
        if let Some(event) = record.event() {
            if let Body::AgentMessage(m) = &event.body {
                content.extend(m.content.iter().cloned());
            }
        }
    }
    content
}

fn plain(content: &[ContentBlock]) -> String {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n\n")
}

impl<S: Store, X: Sandbox> Turn<'_, S, X> {
    /// Answers delegation call `id` with the child's reply (or why there is none).
    /// `prepared`: what [`Turn::start_all`] did for this call already (its child ran along
    /// with the other delegations of the response; `interrupted`: the session was interrupted
    /// meanwhile).
    pub(super) async fn delegate(
        &mut self,
        id: EventId,
        input: &Map<String, Value>,
        prepared: Option<Result<Prepared, Failure>>,
        interrupted: bool,
    ) -> Result<(), Halt> {
        let outcome = match prepared {
            Some(Ok(prepared)) => self.conclude(prepared, interrupted).await,
            Some(Err(failure)) => Err(failure),
            None => match self.prepare(input).await {
                Ok(prepared) => self.conclude(prepared, false).await,
                Err(failure) => Err(failure),
            },
        };
        let (text, is_error) = match outcome {
            Ok(text) => (text, false),
            Err(Failure::Tool(why)) => (why, true),
            Err(Failure::Halt(halt)) => return Err(halt),
        };
        self.writer
            .record(Step::ToolResult {
                tool_use_id: id,
                text,
                is_error,
            })
            .await
    }

    /// Several delegations of one response: each child thread is created and sent its
    /// message in order, then every child runs at once; each call is concluded later by
    /// [`Turn::delegate`], in order. Returns what was prepared by call, and whether the session
    /// was interrupted while the children ran (each child then got the interrupt and its
    /// idle is recorded here).
    pub(super) async fn start_all(
        &mut self,
        calls: &[(EventId, Map<String, Value>)],
    ) -> (HashMap<EventId, Result<Prepared, Failure>>, bool) {
        let mut prepared = HashMap::new();
        let mut children = Vec::new();
        for (id, input) in calls {
            let outcome = self.prepare(input).await;
            let halted = matches!(outcome, Err(Failure::Halt(_)));
            if let Ok(p) = &outcome {
                children.push(p.clone());
            }
            prepared.insert(id.clone(), outcome);
            if halted {
                break;
            }
        }
        let Some(threads) = self.threads else {
            return (prepared, false);
        };
        let store = self.writer.store().clone();
        let session = self.writer.id().clone();
        let after = self.writer.version();
        let runs = futures::future::join_all(children.iter().map(|p| {
            let store = store.clone();
            let session = session.clone();
            async move {
                let run = threads.run(&p.child);
                tokio::pin!(run);
                tokio::select! {
                    biased;
                    () = &mut run => {}
                    () = aimed_at(&store, &session, after, &p.thread) => {
                        relay(&store, &p.child, EventParams::UserInterrupt(InterruptParams {
                            session_thread_id: None,
                        })).await;
                        run.await;
                    }
                }
            }
        }));
        tokio::pin!(runs);
        let mut rx = self.interrupted.clone();
        let interrupted = tokio::select! {
            biased;
            _ = &mut runs => false,
            fired = async { rx.wait_for(|v| *v).await.is_ok() } => {
                if fired {
                    for p in &children {
                        relay(&store, &p.child, EventParams::UserInterrupt(InterruptParams {
                            session_thread_id: None,
                        })).await;
                    }
                }
                runs.await;
                fired
            }
        };
        if interrupted {
            for p in &children {
                close_waiting(&store, &p.child).await;
                if let Ok(loaded) = log::load(&store, &p.child).await {
                    let step = replied(
                        &p.thread,
                        &p.agent_name,
                        &loaded.state,
                        &loaded.records,
                        p.after,
                    );
                    if self.writer.settle(Step::Thread(step)).await.is_err() {
                        break;
                    }
                }
            }
            for outcome in prepared.values_mut() {
                *outcome = Err(Failure::Halt(Halt::Interrupted));
            }
        }
        (prepared, interrupted)
    }

    /// Creates the child thread (or finds the one to continue), delivers the message and
    /// records that it runs.
    async fn prepare(&mut self, input: &Map<String, Value>) -> Result<Prepared, Failure> {
        let Some(_) = self.threads else {
            return Err(Failure::Tool(
                "delegation is not available in this session".into(),
            ));
        };
        let names: Vec<&str> = self.roster.iter().map(|m| m.name.as_str()).collect();
        let Some(wanted) = text(input, "agent") else {
            return Err(Failure::Tool(format!(
                "`agent` is required: one of {}",
                names.join(", ")
            )));
        };
        let Some(message) = text(input, "message") else {
            return Err(Failure::Tool("`message` is required".into()));
        };
        let Some(member) = self
            .roster
            .iter()
            .find(|m| m.name == wanted || m.agent_id == wanted)
            .cloned()
        else {
            return Err(Failure::Tool(format!(
                "no agent {wanted:?} on the team: one of {}",
                names.join(", ")
            )));
        };
        let store = self.writer.store().clone();
        let session = self.writer.id().clone();
        let primary = ThreadId::primary_of(&session);
        let coordinator_name = self.writer.state().agent.as_ref().map(|a| a.name.clone());
        let thread = match text(input, "session_thread_id") {
            Some(given) => {
                let thread = ThreadId::parse(&given).map_err(|e| Failure::Tool(e.to_string()))?;
                if !self.writer.state().for_child(Some(&thread)) {
                    return Err(Failure::Tool(format!(
                        "{thread} is not a thread of this session; leave session_thread_id \
                         out to start a new one"
                    )));
                }
                thread
            }
            None => {
                let now = Timestamp::now();
                let thread = ThreadId::generate(now);
                let records = thread::create_child(
                    self.writer.state(),
                    &thread,
                    member.snapshot.clone(),
                    &member.name,
                    now,
                )
                .map_err(|r| Failure::Tool(r.to_string()))?;
                log::create_from(&store, &SessionId::of_thread(&thread), records)
                    .await
                    .map_err(|e| Failure::Tool(format!("the thread cannot be created: {e}")))?;
                self.writer
                    .record(Step::Thread(ThreadStep::Created {
                        thread: thread.clone(),
                        agent_name: member.name.clone(),
                    }))
                    .await?;
                thread
            }
        };
        let child = SessionId::of_thread(&thread);
        let owned = log::load(&store, &child)
            .await
            .ok()
            .and_then(|loaded| loaded.state.thread_of)
            .is_some_and(|(owner, _)| owner == session);
        if !owned {
            // A forked session lists its parent's threads but does not own their streams.
            return Err(Failure::Tool(format!(
                "{thread} belongs to another session; leave session_thread_id out to start a \
                 new thread"
            )));
        }
        let agent_name = self
            .writer
            .state()
            .children
            .iter()
            .find(|c| c.id == thread)
            .map_or_else(|| member.name.clone(), |c| c.agent_name.clone());
        let content = vec![ContentBlock::text(message)];
        let mut head = Head::<SessionState>::default();
        let delivered = log::write(&store, &child, &mut head, |state| {
            let now = Timestamp::now();
            thread::deliver(
                state,
                primary.clone(),
                coordinator_name.clone(),
                content.clone(),
                now,
                &mut Fresh(now),
            )
        })
        .await
        .map_err(|e| Failure::Tool(format!("{thread}: {e}")))?;
        let after = delivered.first_version as usize;
        self.writer
            .record(Step::Thread(ThreadStep::MessageSent {
                to: thread.clone(),
                to_agent_name: agent_name.clone(),
                content,
            }))
            .await?;
        self.writer
            .record(Step::Thread(ThreadStep::Running {
                thread: thread.clone(),
                agent_name: agent_name.clone(),
            }))
            .await?;

        Ok(Prepared {
            thread,
            child,
            agent_name,
            after,
        })
    }

    /// Runs the prepared child until it replies (relaying the client's answers while it
    /// waits on them) and records its reply.
    async fn conclude(&mut self, prepared: Prepared, interrupted: bool) -> Result<String, Failure> {
        let Some(threads) = self.threads else {
            return Err(Failure::Tool(
                "delegation is not available in this session".into(),
            ));
        };
        let Prepared {
            thread,
            child,
            agent_name,
            after,
        } = prepared;
        let store = self.writer.store().clone();
        let session = self.writer.id().clone();
        let mut interrupted = interrupted;
        loop {
            // The child's turns, until it has nothing left to do; an interrupt of the session
            // reaches it through its own log.
            {
                let run = threads.run(&child);
                tokio::pin!(run);
                let mut rx = self.interrupted.clone();
                let aimed = aimed_at(&store, &session, self.writer.version(), &thread);
                tokio::select! {
                    biased;
                    () = &mut run => {}
                    fired = async { rx.wait_for(|v| *v).await.is_ok() } => {
                        if fired {
                            interrupted = true;
                            relay(&store, &child, EventParams::UserInterrupt(InterruptParams {
                                session_thread_id: None,
                            })).await;
                        }
                        run.await;
                    }
                    () = aimed => {
                        // An interrupt of this child only: its turn ends, the coordinator's
                        // goes on with what the child has said.
                        relay(&store, &child, EventParams::UserInterrupt(InterruptParams {
                            session_thread_id: None,
                        })).await;
                        run.await;
                    }
                }
            }
            let loaded = log::load(&store, &child)
                .await
                .map_err(|e| Failure::Tool(format!("{thread}: {e}")))?;
            let state = &loaded.state;
            if interrupted {
                close_waiting(&store, &child).await;
                let loaded = log::load(&store, &child)
                    .await
                    .map_err(|e| Failure::Tool(format!("{thread}: {e}")))?;
                let step = replied(&thread, &agent_name, &loaded.state, &loaded.records, after);
                self.writer.settle(Step::Thread(step)).await?;
                return Err(Failure::Halt(Halt::Interrupted));
            }
            if state.status == Status::Idle && !state.pending_actions.is_empty() {
                let calls = loaded
                    .records
                    .iter()
                    .filter_map(|r| r.event())
                    .filter(|e| state.pending_actions.contains(&e.id))
                    .cloned()
                    .collect();
                self.writer
                    .record(Step::Thread(ThreadStep::Waiting {
                        thread: thread.clone(),
                        agent_name: agent_name.clone(),
                        calls,
                    }))
                    .await?;
                match self.answers(&thread, &child).await? {
                    Answered::Resumed => {
                        self.writer
                            .record(Step::Thread(ThreadStep::Running {
                                thread: thread.clone(),
                                agent_name: agent_name.clone(),
                            }))
                            .await?;
                        continue;
                    }
                    Answered::ChildInterrupted => {}
                    Answered::SessionInterrupted => {
                        interrupted = true;
                        continue;
                    }
                }
            }
            let loaded = log::load(&store, &child)
                .await
                .map_err(|e| Failure::Tool(format!("{thread}: {e}")))?;
            let step = replied(&thread, &agent_name, &loaded.state, &loaded.records, after);
            let content = match &step {
                ThreadStep::Replied { content, .. } => plain(content),
                _ => String::new(),
            };
            self.writer.record(Step::Thread(step)).await?;
            let body = if content.is_empty() {
                "(the agent ended its turn without a message)".to_owned()
            } else {
                content
            };
            return Ok(format!("{body}\n\n(session_thread_id: {thread})"));
        }
    }

    /// Waits for the client's answers to the child's cross-posted calls on the session's
    /// stream and relays each to the child.
    async fn answers(&mut self, thread: &ThreadId, child: &SessionId) -> Result<Answered, Halt> {
        let store = self.writer.store().clone();
        let session = self.writer.id().clone();
        let primary = ThreadId::primary_of(&session);
        let mut records = store.subscribe(&StreamId::from(&session), self.writer.version());
        let mut rx = self.interrupted.clone();
        // The operator's pending-action timeout applies to a child's calls as to a session's.
        let timeout = self.options.requires_action_timeout;
        let deadline = match (timeout, log::load(&store, child).await) {
            (Some(timeout), Ok(loaded)) => loaded.state.action_deadline(timeout),
            _ => None,
        };
        let expiry = async {
            match deadline {
                Some(deadline) => {
                    let wait = deadline.millis() + 1 - Timestamp::now().millis();
                    tokio::time::sleep(std::time::Duration::from_millis(
                        u64::try_from(wait).unwrap_or(0),
                    ))
                    .await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::pin!(expiry);
        loop {
            let next = tokio::select! {
                biased;
                fired = async { rx.wait_for(|v| *v).await.is_ok() } => {
                    if fired {
                        close_waiting(&store, child).await;
                        return Ok(Answered::SessionInterrupted);
                    }
                    // The watcher is gone: the turn is ending.
                    return Err(Halt::Interrupted);
                }
                () = &mut expiry => {
                    if let Some(timeout) = timeout {
                        let expired = log::commit(
                            &store,
                            child,
                            |_| true,
                            || Command::ExpireActions { timeout },
                        )
                        .await;
                        if let Err(e) = expired {
                            tracing::warn!(thread = %thread, error = %e, "cannot deny the thread's pending actions");
                        }
                    }
                    return Ok(Answered::Resumed);
                }
                next = records.next() => next,
            };
            let Some(Ok(record)) = next else {
                return Err(Halt::Gone("the session's stream ended".into()));
            };
            let Ok(SessionRecord::Event(event)) = SessionRecord::decode(&record.payload) else {
                continue;
            };
            let params = match event.body {
                Body::UserToolConfirmation(c) if c.session_thread_id.as_ref() == Some(thread) => {
                    EventParams::UserToolConfirmation(ToolConfirmationParams {
                        tool_use_id: c.tool_use_id,
                        result: c.result,
                        deny_message: c.deny_message,
                        session_thread_id: None,
                    })
                }
                Body::UserCustomToolResult(r) if r.session_thread_id.as_ref() == Some(thread) => {
                    EventParams::UserCustomToolResult(CustomToolResultParams {
                        custom_tool_use_id: r.custom_tool_use_id,
                        content: r.content,
                        is_error: r.is_error,
                    })
                }
                Body::UserInterrupt(i) if i.session_thread_id.as_ref() == Some(thread) => {
                    close_waiting(&store, child).await;
                    return Ok(Answered::ChildInterrupted);
                }
                Body::UserInterrupt(i)
                    if i.session_thread_id.is_none()
                        || i.session_thread_id.as_ref() == Some(&primary) =>
                {
                    close_waiting(&store, child).await;
                    return Ok(Answered::SessionInterrupted);
                }
                _ => continue,
            };
            relay(&store, child, params).await;
            if let Ok(loaded) = log::load(&store, child).await {
                if loaded.state.pending_actions.is_empty() {
                    return Ok(Answered::Resumed);
                }
            }
        }
    }
}

/// Resolves when the session's stream, after `after`, holds a `user.interrupt` naming
/// `thread` (never, when the stream cannot be read).
async fn aimed_at<S: Store>(store: &S, session: &SessionId, after: u64, thread: &ThreadId) {
    let mut records = store.subscribe(&StreamId::from(session), after);
    while let Some(Ok(record)) = records.next().await {
        if let Ok(SessionRecord::Event(event)) = SessionRecord::decode(&record.payload) {
            if let Body::UserInterrupt(i) = &event.body {
                if i.session_thread_id.as_ref() == Some(thread) {
                    return;
                }
            }
        }
    }
    std::future::pending::<()>().await;
}

/// How the wait for a child's answers ended.
enum Answered {
    /// Every call was answered: the child runs on.
    Resumed,
    /// The child was interrupted: its calls were closed.
    ChildInterrupted,
    /// The session was interrupted: the child's calls were closed.
    SessionInterrupted,
}

/// Sends `params` to child stream `child` as a client would (core validates it; a refusal,
/// such as an answer the child no longer waits for, is logged and dropped).
async fn relay<S: Store>(store: &S, child: &SessionId, params: EventParams) {
    let sent = log::commit(
        store,
        child,
        |_| true,
        || Command::Send(vec![params.clone()]),
    )
    .await;
    if let Err(e) = sent {
        tracing::info!(thread = %child, error = %e, "not relayed to the thread");
    }
}

/// Closes the calls child stream `child` waits on, if it waits (core's
/// `thread::interrupt_waiting`).
async fn close_waiting<S: Store>(store: &S, child: &SessionId) {
    let mut head = Head::<SessionState>::default();
    let written = log::write(store, child, &mut head, |state| {
        let now = Timestamp::now();
        Ok(thread::interrupt_waiting(
            state,
            INTERRUPTED,
            now,
            &mut Fresh(now),
        ))
    })
    .await;
    if let Err(e) = written {
        tracing::warn!(thread = %child, error = %e, "cannot close the thread's waiting calls");
    }
}

/// The `Replied` step for a child in `state` whose reply follows version `after`.
fn replied(
    thread: &ThreadId,
    agent_name: &str,
    state: &SessionState,
    records: &[SessionRecord],
    after: usize,
) -> ThreadStep {
    ThreadStep::Replied {
        thread: thread.clone(),
        agent_name: agent_name.to_owned(),
        stop_reason: state.stop_reason.clone().unwrap_or(StopReason::EndTurn),
        usage: state.usage.clone(),
        list_cost_nanos: u64::try_from(state.list_cost_nanos).unwrap_or(u64::MAX),
        content: reply(records, after),
    }
}
