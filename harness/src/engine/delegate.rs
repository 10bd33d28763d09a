//! Delegation: a coordinator (an agent with a multiagent roster) sends a message to a member of
//! its team ([`team`]: a roster member, an agent it defines inline, or its advisor) in a child
//! thread and gets the child's reply as the tool's answer.
//!
//! Without `session_thread_id` a new child thread starts (`session.thread_created`); with one,
//! the message continues that thread, whose conversation is kept (threads are persistent). The
//! advisor has one thread per session; each consultation sends it the question and a
//! transcript of the coordinator's work since the previous one ([`transcript`]).
//! The coordinator's stream records `agent.thread_message_sent`,
//! `session.thread_status_running`, then, when the child went idle,
//! `session.thread_status_idle`, the child's usage (rolled into the session's) and
//! `agent.thread_message_received` with the reply, which is also the tool's result (with the
//! thread id, for a follow-up). Every record is decided by core (`core::session::thread`).
//!
//! The child's turns run right here, inside the coordinator's tool call, through the runner
//! ([`Threads`]): the same set-up, engines, tools and recovery as any session, in the
//! session's workspace. The delegations of one model response (or the tasks of a workflow
//! phase) are prepared in order, then their children run at once, each on its own
//! ([`Turn::delegate_all`]): a call is answered as soon as its child is done.
//!
//! A child that waits on the client (a tool confirmation, a custom tool result) has its calls
//! cross-posted to the session's stream with `session_thread_id` once it stopped; when no
//! child works any more, the session goes idle on its threads (`session.status_idle` with
//! `requires_action` listing every waiting call, its turn still open: core's
//! `thread::records`). The client answers on the session, in any order; `decide` marks a
//! child whose calls are all answered running again (and the session with it), and the
//! answers, read from the session's stream after the post, are relayed to that child, which
//! runs on at once, whatever the other children do. A child's model requests stop once its
//! session's budget is spent ([`Turn::session_budget_spent`]). An interrupt of the session (or
//! of the child: `user.interrupt` with its `session_thread_id`) reaches the child: a running
//! child ends its turn, a waiting one has its pending calls closed with an error result and
//! goes idle `end_turn`; a halted turn settles every child it started first.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use futures::stream::FuturesUnordered;
use futures::StreamExt;
use managed_agents_core::agent::roster::{self, Member as RosterMember};
use managed_agents_core::agent::{Agent, AgentSnapshot};
use managed_agents_core::event::{
    Body, ContentBlock, CustomToolResultParams, EventParams, InterruptParams, StopReason,
    ToolConfirmationParams,
};
use managed_agents_core::ids::{EventId, SessionId, ThreadId};
use managed_agents_core::session::thread::{self, ChildSpec, Step as ThreadStep, ADVISOR_NAME};
use managed_agents_core::session::turn::Step;
use managed_agents_core::session::{log, Command, Fresh, SessionRecord, SessionState, Status};
use managed_agents_core::storage::{Store, StreamId, Version};
use managed_agents_core::stream::{self, Head};
use managed_agents_core::time::Timestamp;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::team::{self, tail, text, Member, Team};
use super::Turn;
use crate::sandbox::Sandbox;
use crate::writer::{write_leased, Halt, Leased};

/// The text of the error result closing a waiting child's calls when it is interrupted.
const INTERRUPTED: &str = "Interrupted before the client answered.";

/// Runs child threads' turns: the runner, for the coordinator's engine.
pub(crate) trait Threads: Send + Sync {
    /// Runs child thread stream `child` until it has nothing left to do.
    fn run<'a>(&'a self, child: &'a SessionId) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// The team of `coordinator` ([`Team`]): the members are the definitions the session's roster
/// holds (each member at its resolved version, `self` the coordinator as the session was
/// created, overrides included); for a roster without them, each member loaded at its
/// version. Members that cannot be loaded are left out. Empty for an agent without a roster.
pub(crate) async fn team<S: Store>(store: &S, coordinator: &AgentSnapshot) -> Team {
    let Some(multiagent) = &coordinator.multiagent else {
        return Team::default();
    };
    let abilities = roster::abilities(multiagent);
    let member = |snapshot: AgentSnapshot| Member {
        name: snapshot.name.clone(),
        agent_id: snapshot.id.to_string(),
        snapshot,
    };
    // A session's roster holds its members' definitions, fixed when it was created.
    let defined = roster::definitions(multiagent);
    let members = if !defined.is_empty() {
        defined.into_iter().map(member).collect()
    } else {
        let mut members = Vec::new();
        for entry in roster::members(multiagent) {
            let snapshot = match entry {
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
            members.extend(snapshot.map(member));
        }
        members
    };
    Team {
        members,
        abilities,
        coordinator: Some(coordinator.clone()),
    }
}

/// One call of a team tool that starts or continues a child thread.
#[derive(Debug, Clone)]
pub(super) struct Delegation {
    /// The call (or, for a workflow's task, an id naming the task).
    pub(super) id: EventId,
    /// [`team::MESSAGE`] or [`team::ADVISOR`].
    pub(super) tool: String,
    /// Its input.
    pub(super) input: Map<String, Value>,
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

impl Prepared {
    /// The child's reply as its stream holds it now ([`replied`] on what followed its message).
    async fn reply_step<S: Store>(&self, store: &S) -> Result<ThreadStep, log::Error> {
        let loaded = log::load(store, &self.child).await?;
        Ok(replied(
            &self.thread,
            &self.agent_name,
            &loaded.state,
            &loaded.records,
            self.after,
        ))
    }
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
    /// For a child thread's turn: whether its session's budget is spent
    /// ([`Writer::child_budget_spent`]). Never for a session's own turn.
    ///
    /// [`Writer::child_budget_spent`]: crate::writer::Writer::child_budget_spent
    pub(super) async fn session_budget_spent(&mut self) -> bool {
        self.writer.child_budget_spent().await
    }

    /// Answers team tool call `id` with `outcome`: its text, or an error result saying why
    /// it failed; a halt stops the turn instead.
    pub(super) async fn answer(
        &mut self,
        id: EventId,
        outcome: Result<String, Failure>,
    ) -> Result<(), Halt> {
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

    /// Delegations of one model response (`answer`: each call's tool result is recorded as
    /// soon as its child is done) or one workflow phase's tasks (`workflow_run_id`): each
    /// child thread is created and sent its message in order, then every child runs at once,
    /// each on its own. A child that waits on the client has its calls cross-posted when it
    /// stops, and runs on as soon as the client answered them, whatever the other children
    /// do; one that is done replies. Returns each call's outcome: the child's reply, or why
    /// there is none. A halt (an interrupt of the session, a gone stream) stops the turn once
    /// every child is settled: idle on the session's stream with what it said, the calls of a
    /// waiting one closed.
    pub(super) async fn delegate_all(
        &mut self,
        calls: &[Delegation],
        workflow_run_id: Option<&str>,
        answer: bool,
    ) -> Result<HashMap<EventId, Result<String, Failure>>, Halt> {
        let mut outcomes = HashMap::new();
        let mut children: Vec<(EventId, Prepared)> = Vec::new();
        let mut halted = None;
        for Delegation { id, tool, input } in calls {
            match self.prepare(tool, input, workflow_run_id).await {
                Ok(p) => children.push((id.clone(), p)),
                Err(Failure::Halt(halt)) => {
                    halted = Some(halt);
                    break;
                }
                Err(Failure::Tool(why)) => {
                    outcomes.insert(id.clone(), Err(Failure::Tool(why)));
                }
            }
        }
        if let Some(halt) = halted {
            for (_, p) in &children {
                self.settle_child(p).await;
            }
            return Err(halt);
        }
        if answer {
            for (id, outcome) in &outcomes {
                if let Err(Failure::Tool(why)) = outcome {
                    self.answer(id.clone(), Err(Failure::Tool(why.clone())))
                        .await?;
                }
            }
        }
        let Some(threads) = self.threads else {
            return Ok(outcomes);
        };
        let ctx = Ctx {
            threads,
            store: self.writer.store().clone(),
            session: self.writer.id().clone(),
            leased: self.writer.leased().cloned(),
            interrupted: self.interrupted.clone(),
            timeout: self.options.requires_action_timeout,
        };
        let mut stretches: FuturesUnordered<Stretching<'_>> = FuturesUnordered::new();
        let from = self.writer.version();
        for (at, (_, p)) in children.iter().enumerate() {
            let ctx = &ctx;
            stretches.push(Box::pin(async move { (at, run_child(ctx, p, from).await) }));
        }
        let mut halt: Option<Halt> = None;
        while let Some((at, stretch)) = stretches.next().await {
            let (id, p) = &children[at];
            let interrupted = *ctx.interrupted.borrow();
            let stretch = match stretch {
                Stretch::Waits if interrupted || halt.is_some() => {
                    close_waiting(&ctx.store, &p.child, ctx.leased.as_ref()).await;
                    Stretch::Interrupted
                }
                Stretch::Waits => {
                    // Answers follow the post, which follows this version.
                    let from = self.writer.version();
                    match self.post_waiting(&p.thread, &p.child, &p.agent_name).await {
                        Ok(true) => {
                            let ctx = &ctx;
                            stretches
                                .push(Box::pin(async move { (at, answers(ctx, p, from).await) }));
                            continue;
                        }
                        Ok(false) => Stretch::Done,
                        Err(Halt::Interrupted) => {
                            close_waiting(&ctx.store, &p.child, ctx.leased.as_ref()).await;
                            Stretch::Interrupted
                        }
                        Err(gone) => return Err(gone),
                    }
                }
                Stretch::Answered => {
                    let resumed = self
                        .writer
                        .record(Step::Thread(ThreadStep::Resumed {
                            thread: p.thread.clone(),
                            agent_name: p.agent_name.clone(),
                        }))
                        .await;
                    match resumed {
                        Ok(()) => {
                            let from = self.writer.version();
                            let ctx = &ctx;
                            stretches
                                .push(Box::pin(async move { (at, run_child(ctx, p, from).await) }));
                            continue;
                        }
                        // The interrupt reaches the child through its own log.
                        Err(Halt::Interrupted) => {
                            let ctx = &ctx;
                            stretches
                                .push(Box::pin(async move { (at, run_child(ctx, p, from).await) }));
                            continue;
                        }
                        Err(gone) => return Err(gone),
                    }
                }
                other => other,
            };
            match stretch {
                Stretch::Done if halt.is_none() => {
                    let outcome = self.reply(p).await;
                    match outcome {
                        Err(Failure::Halt(Halt::Interrupted)) => {
                            self.settle_child(p).await;
                            halt.get_or_insert(Halt::Interrupted);
                        }
                        Err(Failure::Halt(gone)) => return Err(gone),
                        outcome if answer => match self.answer(id.clone(), outcome).await {
                            Ok(()) => {}
                            Err(Halt::Interrupted) => {
                                halt.get_or_insert(Halt::Interrupted);
                            }
                            Err(gone) => return Err(gone),
                        },
                        outcome => {
                            outcomes.insert(id.clone(), outcome);
                        }
                    }
                }
                Stretch::Failed(why) if halt.is_none() => {
                    let outcome = Err(Failure::Tool(why));
                    if answer {
                        match self.answer(id.clone(), outcome).await {
                            Ok(()) => {}
                            Err(Halt::Interrupted) => {
                                halt.get_or_insert(Halt::Interrupted);
                            }
                            Err(gone) => return Err(gone),
                        }
                    } else {
                        outcomes.insert(id.clone(), outcome);
                    }
                }
                _ => {
                    self.settle_child(p).await;
                    halt.get_or_insert(Halt::Interrupted);
                }
            }
        }
        match halt {
            Some(halt) => Err(halt),
            None => Ok(outcomes),
        }
    }

    /// Records the reply of prepared child `p`, done (`session.thread_status_idle`, its usage,
    /// `agent.thread_message_received`), and returns the delegation's answer: its messages of
    /// the turn and the thread id.
    async fn reply(&mut self, p: &Prepared) -> Result<String, Failure> {
        let step = p
            .reply_step(self.writer.store())
            .await
            .map_err(|e| Failure::Tool(format!("{}: {e}", p.thread)))?;
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
        Ok(format!("{body}\n\n(session_thread_id: {})", p.thread))
    }

    /// Cross-posts the calls child `child` (thread `thread`) waits on, if it waits:
    /// `session.thread_status_idle{requires_action}` after them (and the session's idle when no
    /// thread works any more, `core::session::thread::records`). Whether it waits.
    async fn post_waiting(
        &mut self,
        thread: &ThreadId,
        child: &SessionId,
        agent_name: &str,
    ) -> Result<bool, Halt> {
        let Ok(loaded) = log::load(self.writer.store(), child).await else {
            return Ok(false);
        };
        let state = &loaded.state;
        if state.status != Status::Idle || state.pending_actions.is_empty() {
            return Ok(false);
        }
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
                agent_name: agent_name.to_owned(),
                calls,
            }))
            .await?;
        Ok(true)
    }

    /// Settles prepared child `p`, which the turn will not conclude: its waiting calls closed
    /// ([`close_waiting`]), idle on the session's stream with its usage and what it said (a
    /// cross-posted call no one will relay is no longer shown as waiting).
    async fn settle_child(&mut self, p: &Prepared) {
        let store = self.writer.store().clone();
        let leased = self.writer.leased().cloned();
        close_waiting(&store, &p.child, leased.as_ref()).await;
        let Ok(step) = p.reply_step(&store).await else {
            return;
        };
        if let Err(halt) = self.writer.settle(Step::Thread(step)).await {
            tracing::warn!(thread = %p.thread, ?halt, "cannot settle a thread");
        }
    }

    /// Creates the child thread (or finds the one to continue), delivers the message and
    /// records that it runs. `tool` is the team tool called ([`team::MESSAGE`] or
    /// [`team::ADVISOR`]); `workflow_run_id` names the workflow run a task belongs to.
    pub(super) async fn prepare(
        &mut self,
        tool: &str,
        input: &Map<String, Value>,
        workflow_run_id: Option<&str>,
    ) -> Result<Prepared, Failure> {
        let Some(_) = self.threads else {
            return Err(Failure::Tool(
                "delegation is not available in this session".into(),
            ));
        };
        let store = self.writer.store().clone();
        let leased = self.writer.leased().cloned();
        let session = self.writer.id().clone();
        let primary = ThreadId::primary_of(&session);
        let coordinator_name = self.writer.state().agent.as_ref().map(|a| a.name.clone());
        let (thread, content) = if tool == team::ADVISOR {
            let Some(question) = text(input, "question") else {
                return Err(Failure::Tool("`question` is required".into()));
            };
            let Some(spec) = self.team.advisor() else {
                return Err(Failure::Tool("this agent has no advisor".into()));
            };
            // One advisor thread per session: it keeps what it was told before.
            let existing = self
                .writer
                .state()
                .children
                .iter()
                .find(|c| c.agent_name == ADVISOR_NAME)
                .map(|c| c.id.clone());
            let thread = match existing {
                Some(thread) => thread,
                None => self.create_thread(spec).await?,
            };
            let transcript = transcript(self.writer.records(), &thread);
            let content = vec![
                ContentBlock::text(format!(
                    "Transcript of my work since I last asked you:\n{transcript}"
                )),
                ContentBlock::text(format!("Question: {question}")),
            ];
            (thread, content)
        } else {
            let Some(message) = text(input, "message") else {
                return Err(Failure::Tool("`message` is required".into()));
            };
            let thread = match text(input, "session_thread_id") {
                Some(given) => {
                    let thread =
                        ThreadId::parse(&given).map_err(|e| Failure::Tool(e.to_string()))?;
                    let child = self.writer.state().children.iter().find(|c| c.id == thread);
                    match child {
                        None => {
                            return Err(Failure::Tool(format!(
                                "{thread} is not a thread of this session; leave \
                                 session_thread_id out to start a new one"
                            )))
                        }
                        Some(c) if c.agent_name == ADVISOR_NAME => {
                            return Err(Failure::Tool(format!(
                                "{thread} is the advisor's thread: ask it with {}",
                                team::ADVISOR
                            )))
                        }
                        Some(_) => thread,
                    }
                }
                None => {
                    let inline = match workflow_run_id {
                        Some(_) => self
                            .team
                            .abilities
                            .workflows
                            .is_some_and(|w| w.inline_agents),
                        None => self.team.abilities.inline_agents,
                    };
                    let mut spec = self.team.target(input, inline).map_err(Failure::Tool)?;
                    spec.workflow_run_id = workflow_run_id.map(str::to_owned);
                    self.create_thread(spec).await?
                }
            };
            (thread, vec![ContentBlock::text(message)])
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
            .map(|c| c.agent_name.clone())
            .unwrap_or_default();
        let mut head = Head::<SessionState>::default();
        let delivered = write_leased(&store, &child, &mut head, leased.as_ref(), |state| {
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

    /// Creates a child thread as `spec` says: its stream, then `session.thread_created`.
    async fn create_thread(&mut self, spec: ChildSpec) -> Result<ThreadId, Failure> {
        let store = self.writer.store().clone();
        let now = Timestamp::now();
        let thread = ThreadId::generate(now);
        let agent_name = spec.agent_name.clone();
        let workflow_run_id = spec.workflow_run_id.clone();
        let records = thread::create_child(self.writer.state(), &thread, spec, now)
            .map_err(|r| Failure::Tool(r.to_string()))?;
        log::create_from(&store, &SessionId::of_thread(&thread), records)
            .await
            .map_err(|e| Failure::Tool(format!("the thread cannot be created: {e}")))?;
        self.writer
            .record(Step::Thread(ThreadStep::Created {
                thread: thread.clone(),
                agent_name,
                workflow_run_id,
            }))
            .await?;
        Ok(thread)
    }
}

/// What a coordinator's children need while they run at once: the runner, the store, the
/// session, its lease, the turn's interrupt and the pending-action timeout.
struct Ctx<'t, S> {
    threads: &'t dyn Threads,
    store: S,
    session: SessionId,
    leased: Option<Leased>,
    interrupted: watch::Receiver<bool>,
    timeout: Option<std::time::Duration>,
}

/// One child's stretch of work under way, with the child's index.
type Stretching<'f> = Pin<Box<dyn Future<Output = (usize, Stretch)> + Send + 'f>>;

/// How one stretch of a child's work ended.
enum Stretch {
    /// It ran and waits on the client.
    Waits,
    /// The client answered every call it waited on (or the operator's timeout did): it runs
    /// on.
    Answered,
    /// It is done: idle, waiting on nothing (an interrupt of the child alone ends here too).
    Done,
    /// The session was interrupted: the child stopped, its waiting calls closed.
    Interrupted,
    /// Its stream cannot be read.
    Failed(String),
}

/// Runs prepared child `p` until it has nothing left to do; an interrupt of the session, or
/// one naming the child on the session's stream after version `from`, reaches it through its
/// own log.
async fn run_child<S: Store>(ctx: &Ctx<'_, S>, p: &Prepared, from: Version) -> Stretch {
    let run = run_mirrored(
        ctx.threads,
        &ctx.store,
        &ctx.session,
        &p.child,
        &p.thread,
        &p.agent_name,
        ctx.leased.as_ref(),
    );
    tokio::pin!(run);
    let mut rx = ctx.interrupted.clone();
    let interrupt = || {
        EventParams::UserInterrupt(InterruptParams {
            session_thread_id: None,
        })
    };
    let mut interrupted = false;
    tokio::select! {
        biased;
        () = &mut run => {}
        fired = async { rx.wait_for(|v| *v).await.is_ok() } => {
            if fired {
                interrupted = true;
                relay(&ctx.store, &p.child, interrupt()).await;
            }
            run.await;
        }
        () = aimed_at(&ctx.store, &ctx.session, from, &p.thread) => {
            // An interrupt of this child only: its turn ends, the coordinator's goes on
            // with what the child has said.
            relay(&ctx.store, &p.child, interrupt()).await;
            run.await;
        }
    }
    if interrupted || *ctx.interrupted.borrow() {
        close_waiting(&ctx.store, &p.child, ctx.leased.as_ref()).await;
        return Stretch::Interrupted;
    }
    match log::load(&ctx.store, &p.child).await {
        Ok(loaded)
            if loaded.state.status == Status::Idle && !loaded.state.pending_actions.is_empty() =>
        {
            Stretch::Waits
        }
        Ok(_) => Stretch::Done,
        Err(e) => Stretch::Failed(format!("{}: {e}", p.thread)),
    }
}

/// Waits for the client's answers to the calls child `p` cross-posted to the session's stream
/// after version `from` and relays each to the child, until it waits on nothing more. An
/// interrupt of the child or of the session closes its calls instead; the operator's
/// pending-action timeout denies them as on any session.
async fn answers<S: Store>(ctx: &Ctx<'_, S>, p: &Prepared, from: Version) -> Stretch {
    let store = &ctx.store;
    let child = &p.child;
    let thread = &p.thread;
    let primary = ThreadId::primary_of(&ctx.session);
    let mut records = store.subscribe(&StreamId::from(&ctx.session), from);
    let mut rx = ctx.interrupted.clone();
    let deadline = match (ctx.timeout, log::load(store, child).await) {
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
            // Fired, or the watcher is gone (the turn is ending): either way the child's
            // calls will not be answered.
            _ = async { rx.wait_for(|v| *v).await.map(drop) } => {
                close_waiting(store, child, ctx.leased.as_ref()).await;
                return Stretch::Interrupted;
            }
            () = &mut expiry => {
                if let Some(timeout) = ctx.timeout {
                    let expired = log::commit(
                        store,
                        child,
                        |_| true,
                        || Command::ExpireActions { timeout },
                    )
                    .await;
                    if let Err(e) = expired {
                        tracing::warn!(thread = %thread, error = %e, "cannot deny the thread's pending actions");
                    }
                }
                return Stretch::Answered;
            }
            next = records.next() => next,
        };
        let Some(Ok(record)) = next else {
            return Stretch::Failed("the session's stream ended".into());
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
                    session_thread_id: None,
                })
            }
            Body::UserInterrupt(i) if i.session_thread_id.as_ref() == Some(thread) => {
                close_waiting(store, child, ctx.leased.as_ref()).await;
                return Stretch::Done;
            }
            Body::UserInterrupt(i)
                if i.session_thread_id.is_none()
                    || i.session_thread_id.as_ref() == Some(&primary) =>
            {
                close_waiting(store, child, ctx.leased.as_ref()).await;
                return Stretch::Interrupted;
            }
            _ => continue,
        };
        relay(store, child, params).await;
        if let Ok(loaded) = log::load(store, child).await {
            if loaded.state.pending_actions.is_empty() {
                return Stretch::Answered;
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
async fn close_waiting<S: Store>(store: &S, child: &SessionId, leased: Option<&Leased>) {
    let mut head = Head::<SessionState>::default();
    let written = write_leased(store, child, &mut head, leased, |state| {
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

/// At most this many bytes of transcript go to the advisor per consultation (the latest).
const TRANSCRIPT_LIMIT: usize = 32 * 1024;
/// Each tool input or result in a transcript is cut to this many characters.
const TRANSCRIPT_ITEM: usize = 600;

fn cut(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The coordinator's work in `records` (its stream, as the writer holds it) as plain text for
/// its advisor `advisor`: the session's messages, tool calls and results, and replies of other
/// threads since the last message sent to the advisor (the latest [`TRANSCRIPT_LIMIT`] bytes).
fn transcript(records: &[SessionRecord], advisor: &ThreadId) -> String {
    let events: Vec<&managed_agents_core::event::Event> =
        records.iter().filter_map(|r| r.event()).collect();
    let since = events
        .iter()
        .rposition(|e| {
            matches!(&e.body, Body::AgentThreadMessageSent(m) if m.to_session_thread_id == *advisor)
        })
        .map_or(0, |at| at + 1);
    let mut lines = Vec::new();
    for event in &events[since..] {
        let line = match &event.body {
            Body::UserMessage(m) => format!("User: {}", plain(&m.content)),
            Body::AgentMessage(m) => format!("Me: {}", plain(&m.content)),
            Body::AgentToolUse(u) if u.session_thread_id.is_none() => format!(
                "I called {}: {}",
                u.name,
                cut(&Value::Object(u.input.clone()).to_string(), TRANSCRIPT_ITEM)
            ),
            Body::AgentToolResult(r) => format!(
                "Result{}: {}",
                if r.is_error == Some(true) {
                    " (error)"
                } else {
                    ""
                },
                cut(
                    &plain(r.content.as_deref().unwrap_or_default()),
                    TRANSCRIPT_ITEM
                )
            ),
            Body::AgentThreadMessageReceived(m) => format!(
                "{} replied: {}",
                m.from_agent_name.as_deref().unwrap_or("an agent"),
                cut(&plain(&m.content), TRANSCRIPT_ITEM)
            ),
            _ => continue,
        };
        lines.push(line);
    }
    let text = tail(&lines.join("\n"), TRANSCRIPT_LIMIT);
    if text.is_empty() {
        "(nothing new)".into()
    } else {
        text
    }
}

/// Runs child `child` (thread `thread`, agent `agent_name`) through `threads`, mirroring its
/// retries onto the session's stream while it runs: the child's `session.status_rescheduled`
/// becomes `session.thread_status_rescheduled`, its `session.status_running` after that
/// `session.thread_status_running`; after each of its model requests its usage so far is
/// rolled into the session's (`internal.thread_usage`), so the session's budget counts it at
/// once.
async fn run_mirrored<S: Store>(
    threads: &dyn Threads,
    store: &S,
    session: &SessionId,
    child: &SessionId,
    thread: &ThreadId,
    agent_name: &str,
    leased: Option<&Leased>,
) {
    let from = store.head(&StreamId::from(child)).await.unwrap_or(0);
    let run = threads.run(child);
    tokio::pin!(run);
    let mirror = async {
        let mut records = store.subscribe(&StreamId::from(child), from);
        let mut rescheduled = false;
        while let Some(Ok(record)) = records.next().await {
            let Ok(SessionRecord::Event(event)) = SessionRecord::decode(&record.payload) else {
                continue;
            };
            let step = match event.body {
                Body::SpanModelRequestEnd(_) => match log::load(store, child).await {
                    Ok(loaded) => ThreadStep::Usage {
                        thread: thread.clone(),
                        usage: loaded.state.usage.clone(),
                        list_cost_nanos: u64::try_from(loaded.state.list_cost_nanos)
                            .unwrap_or(u64::MAX),
                    },
                    Err(_) => continue,
                },
                Body::SessionStatusRescheduled => {
                    rescheduled = true;
                    ThreadStep::Rescheduled {
                        thread: thread.clone(),
                        agent_name: agent_name.to_owned(),
                    }
                }
                Body::SessionStatusRunning if rescheduled => {
                    rescheduled = false;
                    ThreadStep::Running {
                        thread: thread.clone(),
                        agent_name: agent_name.to_owned(),
                    }
                }
                _ => continue,
            };
            let mut head = Head::<SessionState>::default();
            let written = write_leased(store, session, &mut head, leased, |state| {
                let now = Timestamp::now();
                thread::records(state, step.clone(), now, &mut Fresh(now))
            })
            .await;
            if let Err(e) = written {
                tracing::warn!(thread = %thread, error = %e, "cannot mirror the thread's status");
            }
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        biased;
        () = &mut run => {}
        () = mirror => {}
    }
}
