//! The `claude` engine: Claude Code runs the agent loop inside the session's sandbox and the
//! harness turns its stream into our events.
//!
//! One call of [`ClaudeTurn::run`] drives a session from its consumed input to its next idle:
//!
//! 1. settle the confirmations the turn consumed: each answers the permission prompt Claude
//!    Code is blocked on (`allow`, or `deny` with the user's `deny_message`);
//! 2. hand Claude Code the consumed `user.message` content as one stream-json user message,
//!    starting it first when no process is running for the session ([`launch`]: the LLM
//!    gateway as its endpoint with a placeholder key, HOME in the workspace, the conversation
//!    created or `--resume`d by the id derived from the session id);
//! 3. map its stdout line by line ([`stream`], [`map`]): text → `agent.message`, thinking →
//!    `agent.thinking`, calls → `agent.tool_use` under our tool names with the evaluated
//!    permission, results → `agent.tool_result`; every step is decided by
//!    `core::session::turn` through the writer. Spans and usage are the LLM gateway's (the
//!    only way Claude Code reaches a model); this engine records none.
//! 4. end: on `result`, close Claude Code's stdin (it saves the conversation and exits) and
//!    idle with the stop reason; on a permission prompt for an `always_ask` tool, idle with
//!    `requires_action` and keep the process, blocked on the prompt, for the turn that the
//!    `user.tool_confirmation` starts ([`Processes`]).
//!
//! Custom tools reach Claude Code as the tools of an MCP server the harness serves over the same
//! stdio control protocol ([`custom`]); a call becomes `agent.custom_tool_use`, the session
//! idles with `requires_action`, and the turn the `user.custom_tool_result` starts answers it.
//!
//! A coordinator's team tools reach Claude Code the same way, as the tools of a second such
//! server ([`team`]); a call runs the resident engine's delegation at once, inside the MCP
//! call, with the thread events on the session's stream (`crate::engine::team_call`), and its
//! result is the call's answer.
//!
//! A turn a server restart cut short goes on (`turn::Resume::InAgent`): Claude Code is started
//! again with `--resume` and handed [`super::RESUMED`] and whatever input came since, instead
//! of the turn's input it already holds ([`input::turn_input`]).
//!
//! A `user.interrupt` kills the sandbox's whole pid namespace at once (SIGKILL) and the turn
//! idles with `end_turn`; the next message resumes the conversation in a new process. A
//! confirmation whose process is gone (the server restarted while it waited) answers its call
//! with an error result: the call did not run.
//!
//! Decision: permission prompts travel over Claude Code's own stdio control protocol
//! (`--permission-prompt-tool stdio`, `control_request`/`can_use_tool` on stdout, a
//! `control_response` on stdin) rather than an MCP tool served on the door. The channel is the
//! process's own pipes, so nothing else in the sandbox can reach it (an MCP endpoint on the
//! door is reachable by every process of the sandbox, the agent's own commands included), it
//! needs no network, no second server and no extra crate, and a prompt is tied to the process
//! that asked. Rejected: an `rmcp` streamable-HTTP endpoint at the door's `/mcp/` (that attack
//! surface, and a per-session route to keep in step with the process).

pub(crate) mod custom;
pub(crate) mod input;
pub(crate) mod launch;
pub(crate) mod map;
pub(crate) mod stream;
pub(crate) mod team;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use managed_agents_core::event::{Body, ContentBlock, SessionError, StopReason};
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::turn::{self, Confirmed, End, Step};
use managed_agents_core::session::{SessionRecord, ToolKind};
use managed_agents_core::storage::Store;
use managed_agents_core::time::Timestamp;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::sync::watch;

use super::team_call::{CallSite, TeamRun};
use super::{grading, interruptible, TurnAgent};
use crate::sandbox::{Lines, Network, Process, Sandbox, Workspace};
use crate::writer::{Halt, Writer};
use map::{Mapper, Permission};
use stream::Line;

/// The result text of a confirmed call whose Claude Code process is gone.
pub(crate) const GONE: &str = "The agent process that asked for this confirmation stopped (the \
                               server restarted); the call did not run.";

/// How long Claude Code may take to save its conversation and exit after its stdin closes.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// A running Claude Code process and what the harness knows about its conversation.
struct Live {
    process: Process,
    stdin: ChildStdin,
    lines: Lines,
    mapper: Mapper,
    /// Permission prompts waiting for the user: our `agent.tool_use` id → the prompt's
    /// request id and the call's input.
    waiting: HashMap<EventId, (String, Map<String, Value>)>,
    /// Custom tool calls waiting for the client's result: our `agent.custom_tool_use` id →
    /// the `mcp_message` request id and the JSON-RPC id to answer.
    custom: HashMap<EventId, (String, Value)>,
}

impl Live {
    /// Every call the session waits on.
    fn waiting_on(&self) -> Vec<EventId> {
        self.waiting
            .keys()
            .chain(self.custom.keys())
            .cloned()
            .collect()
    }

    async fn send(&mut self, line: &str) -> Result<(), String> {
        let write = async {
            self.stdin.write_all(line.as_bytes()).await?;
            self.stdin.flush().await
        };
        write
            .await
            .map_err(|e| format!("cannot write to Claude Code's stdin: {e}"))
    }

    /// Closes stdin and waits for the process to save its conversation and exit (killed after
    /// [`EXIT_GRACE`]).
    async fn close(self) {
        let Live { process, stdin, .. } = self;
        drop(stdin);
        let killer = process.killer();
        if tokio::time::timeout(EXIT_GRACE, process.wait())
            .await
            .is_err()
        {
            killer.kill();
        }
    }
}

/// The Claude Code processes kept between turns: those blocked on a permission prompt while
/// their session waits for a `user.tool_confirmation`. Held by the runner.
#[derive(Default)]
pub(crate) struct Processes {
    live: Mutex<HashMap<SessionId, Live>>,
}

impl Processes {
    fn lock(&self) -> MutexGuard<'_, HashMap<SessionId, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self, id: &SessionId) -> Option<Live> {
        self.lock().remove(id)
    }

    fn keep(&self, id: SessionId, live: Live) {
        self.lock().insert(id, live);
    }

    /// Whether a process is kept for session `id` (waiting on a confirmation).
    pub(crate) fn holds(&self, id: &SessionId) -> bool {
        self.lock().contains_key(id)
    }

    /// Ends the process kept for session `id`, if any (the session was deleted, archived or
    /// terminated while it waited).
    pub(crate) fn discard(&self, id: &SessionId) {
        if let Some(live) = self.take(id) {
            tracing::info!(session = %id, "ending the Claude Code process of a session that ended");
            live.process.killer().kill();
        }
    }
}

/// Where Claude Code reaches its model: the LLM gateway, with the session's placeholder key.
pub(crate) struct Gateway<'a> {
    pub(crate) base_url: &'a str,
    pub(crate) api_key: &'a str,
}

/// Everything one `claude` turn works with.
pub(crate) struct ClaudeTurn<'a, S, X> {
    pub(crate) writer: &'a mut Writer<S>,
    pub(crate) sandbox: &'a X,
    pub(crate) processes: &'a Processes,
    pub(crate) agent: &'a TurnAgent,
    /// The `claude` executable inside the sandbox.
    pub(crate) program: &'a Path,
    pub(crate) gateway: Gateway<'a>,
    pub(crate) network: Network,
    pub(crate) workspace: &'a Workspace,
    /// The session's own model endpoint, where the `auto` policy's classifier and the outcome
    /// grader ask, and where rubric files are.
    pub(crate) server_side: grading::ServerSide<'a>,
    pub(crate) interrupted: watch::Receiver<bool>,
    /// A coordinator's team, whose tools Claude Code calls through [`team`]'s server.
    pub(crate) team: Option<TeamRun<'a, S>>,
}

/// How a turn ended (other than a halt).
enum Ended {
    /// Idle with `end`, after recording `steps`; the process is done.
    Done(Vec<Step>, End),
    /// Waiting for confirmations of these calls; the process is kept.
    Waiting(Vec<EventId>),
}

fn failed(message: String) -> Ended {
    tracing::warn!(error = %message, "claude turn failed");
    Ended::Done(
        vec![Step::Error(turn::unknown_error(message))],
        End::end_turn(turn::ABANDONED),
    )
}

/// The client's `user.custom_tool_result` for call `event` in `log`: its blocks and whether the
/// tool failed.
fn custom_result(log: &[SessionRecord], event: &EventId) -> Option<(Vec<ContentBlock>, bool)> {
    log.iter()
        .filter_map(SessionRecord::event)
        .find_map(|e| match &e.body {
            Body::UserCustomToolResult(r) if &r.custom_tool_use_id == event => Some((
                r.content.clone().unwrap_or_default(),
                r.is_error == Some(true),
            )),
            _ => None,
        })
}

fn new_id() -> EventId {
    EventId::generate(Timestamp::now())
}

impl<S: Store, X: Sandbox> ClaudeTurn<'_, S, X> {
    /// The `auto` policy's classifier verdicts for the calls among `blocks` it decides, by
    /// Claude Code's tool-use id (one separate model request each, before the calls are
    /// recorded).
    async fn classify(
        &self,
        blocks: &[stream::Block],
    ) -> Result<HashMap<String, turn::Classified>, Halt> {
        let mut verdicts = HashMap::new();
        for block in blocks {
            let stream::Block::ToolUse { id, name, input } = block else {
                continue;
            };
            let name = map::our_name(name);
            if !turn::needs_classifier(&self.agent.tools, &name) {
                continue;
            }
            let ask = crate::model::classify::classify(
                self.server_side.http,
                self.server_side.endpoint,
                &self.agent.model,
                &name,
                input,
            );
            verdicts.insert(id.clone(), interruptible(&self.interrupted, ask).await?);
        }
        Ok(verdicts)
    }

    /// Runs the turn to its idle. `confirmations` are the `user.tool_confirmation` events the
    /// runner consumed for it.
    pub(crate) async fn run(mut self, confirmations: Vec<EventId>) -> Result<(), Halt> {
        let id = self.writer.id().clone();
        let mut live = self.processes.take(&id);
        let mut ended = self.drive(&mut live, confirmations, None).await;
        // The agent ended its turn: an outcome it works on is graded, and a `needs_revision`
        // sends the grader's explanation to Claude Code as its next message.
        while let Ok(Ended::Done(steps, end)) = &mut ended {
            if end.stop_reason != StopReason::EndTurn
                || live.is_none()
                || self.writer.grading().is_none()
            {
                break;
            }
            let mut recorded = Ok(());
            for step in std::mem::take(steps) {
                recorded = self.writer.record(step).await;
                if recorded.is_err() {
                    break;
                }
            }
            if let Err(halt) = recorded {
                ended = Err(halt);
                break;
            }
            let grader = self
                .server_side
                .grader(&self.agent.model, &self.interrupted);
            match grading::revise(self.writer, grader).await {
                Ok(Some(revision)) => {
                    ended = self.drive(&mut live, Vec::new(), Some(revision)).await;
                }
                Ok(None) => break,
                Err(halt) => ended = Err(halt),
            }
        }
        // Past the session's budget the gateway lets no model request through: the turn
        // ends `budget_reached`.
        if let Ok(Ended::Done(_, end)) = &mut ended {
            if self.writer.budget_spent().await {
                end.stop_reason = StopReason::BudgetReached;
                end.stop_details = None;
            }
        }
        match ended {
            Ok(Ended::Waiting(event_ids)) => {
                if let Some(live) = live {
                    self.processes.keep(id, live);
                }
                let end = End {
                    stop_reason: managed_agents_core::event::StopReason::RequiresAction {
                        event_ids,
                    },
                    stop_details: None,
                    why: "The tool call did not finish before the turn paused.".into(),
                };
                self.writer.finish(Vec::new(), end).await
            }
            Ok(Ended::Done(steps, end)) => {
                if let Some(live) = live {
                    live.close().await;
                }
                self.writer.finish(steps, end).await
            }
            Err(halt) => {
                if let Some(live) = live {
                    let _ = live.process.kill().await;
                }
                match halt {
                    Halt::Interrupted => self.writer.interrupted(None).await,
                    gone => Err(gone),
                }
            }
        }
    }

    /// Drives Claude Code to the end of its turn. `next`: a message of the harness's to send
    /// instead of the consumed input (an outcome's revision request).
    async fn drive(
        &mut self,
        live: &mut Option<Live>,
        confirmations: Vec<EventId>,
        next: Option<String>,
    ) -> Result<Ended, Halt> {
        self.settle(live, confirmations).await?;
        let content = match next {
            Some(text) => vec![ContentBlock::text(text)],
            // A process still running holds the conversation; otherwise its transcript does.
            None => {
                let kept = live.is_some() || self.transcript().exists();
                input::turn_input(self.writer.records(), kept)
            }
        };
        if !content.is_empty() {
            if live.is_none() {
                match self.start().await {
                    Ok(started) => *live = Some(started),
                    Err(message) => return Ok(failed(message)),
                }
            }
            let message = match serde_json::to_value(&content) {
                Ok(content) => stream::user_message(content),
                Err(e) => return Ok(failed(format!("cannot encode the user message: {e}"))),
            };
            if let Some(l) = live.as_mut() {
                if let Err(e) = l.send(&message).await {
                    return Ok(self.exited(live, e).await);
                }
            }
        }
        let Some(l) = live.as_mut() else {
            return Ok(Ended::Done(Vec::new(), End::end_turn(turn::ABANDONED)));
        };
        if !l.waiting.is_empty() || !l.custom.is_empty() {
            return Ok(Ended::Waiting(l.waiting_on()));
        }
        loop {
            let next = interruptible(&self.interrupted, l.lines.next()).await?;
            let text = match next {
                Ok(Some(text)) => text,
                Ok(None) => {
                    let why = "Claude Code exited before finishing the turn".to_owned();
                    return Ok(self.exited(live, why).await);
                }
                Err(e) => return Ok(self.exited(live, e.to_string()).await),
            };
            let line = match Line::parse(&text) {
                Ok(line) => line,
                Err(e) => {
                    tracing::debug!(session = %self.writer.id(), error = %e, "skipped a line");
                    continue;
                }
            };
            match line {
                Line::Assistant(blocks) => {
                    let verdicts = self.classify(&blocks).await?;
                    let mut ids = new_id;
                    if let Some(step) =
                        l.mapper
                            .assistant(&self.agent.tools, blocks, &verdicts, &mut ids)
                    {
                        self.writer.record(step).await?;
                    }
                }
                Line::ToolResults(results) => {
                    for step in l.mapper.tool_results(results) {
                        if self.open(&step) {
                            self.writer.record(step).await?;
                        }
                    }
                }
                Line::Permission {
                    request_id,
                    tool_use_id,
                    tool_name,
                    input,
                } => {
                    let answer = match l.mapper.permission(tool_use_id.as_deref(), &tool_name) {
                        Permission::Allow => stream::allow(&request_id, &input),
                        Permission::Deny(why) => stream::deny(&request_id, &why),
                        Permission::Ask(event) => {
                            l.waiting.insert(event, (request_id, input));
                            return Ok(Ended::Waiting(l.waiting_on()));
                        }
                    };
                    if let Err(e) = l.send(&answer).await {
                        return Ok(self.exited(live, e).await);
                    }
                }
                Line::Mcp {
                    request_id,
                    server_name,
                    message,
                } => {
                    let answer = if server_name == team::SERVER && self.team.is_some() {
                        Box::pin(self.team_message(l, &request_id, &message)).await?
                    } else if server_name != custom::SERVER {
                        stream::control_error(&request_id, "no such MCP server")
                    } else {
                        match custom::handle(&self.agent.tools, &message) {
                            custom::Message::Answer(reply) => {
                                stream::mcp_response(&request_id, reply)
                            }
                            custom::Message::Call {
                                rpc_id,
                                tool_use_id,
                            } => {
                                let call = tool_use_id
                                    .as_deref()
                                    .and_then(|id| l.mapper.custom_call(id))
                                    .cloned();
                                match call {
                                    Some(event) => {
                                        l.custom.insert(event, (request_id, rpc_id));
                                        return Ok(Ended::Waiting(l.waiting_on()));
                                    }
                                    None => stream::mcp_response(
                                        &request_id,
                                        Some(custom::call_error(
                                            &rpc_id,
                                            "this call is not a custom tool call of the agent",
                                        )),
                                    ),
                                }
                            }
                        }
                    };
                    if let Err(e) = l.send(&answer).await {
                        return Ok(self.exited(live, e).await);
                    }
                }
                Line::Control {
                    request_id,
                    subtype,
                } => {
                    let answer = stream::control_error(
                        &request_id,
                        &format!("{subtype} is not supported by this host"),
                    );
                    if let Err(e) = l.send(&answer).await {
                        return Ok(self.exited(live, e).await);
                    }
                }
                Line::Result(result) => {
                    // Messages Claude Code queued (sent while it was busy) may get a turn
                    // and a result of their own: wait for the last one.
                    let (steps, end) = map::finish(&result);
                    if result.queued == 0 {
                        return Ok(Ended::Done(steps, end));
                    }
                    for step in steps {
                        self.writer.record(step).await?;
                    }
                }
                Line::Init { .. } | Line::Other => {}
            }
        }
    }

    /// The answer to one MCP message for the team's server: a listing at once, a call once its
    /// delegation ran.
    async fn team_message(
        &mut self,
        live: &mut Live,
        request_id: &str,
        message: &Value,
    ) -> Result<String, Halt> {
        let Some(team_run) = self.team.as_mut() else {
            return Ok(stream::control_error(request_id, "no such MCP server"));
        };
        let specs = team_run.specs();
        let (rpc_id, tool_use_id) =
            match custom::serve(team::SERVER, || team::listed(&specs), message) {
                custom::Message::Answer(reply) => {
                    return Ok(stream::mcp_response(request_id, reply))
                }
                custom::Message::Call {
                    rpc_id,
                    tool_use_id,
                } => (rpc_id, tool_use_id),
            };
        let tool = message.pointer("/params/name").and_then(Value::as_str);
        let call = tool_use_id
            .as_deref()
            .and_then(|id| live.mapper.team_call(id))
            .cloned();
        let (Some(event), Some(tool)) = (call, tool) else {
            let reply =
                custom::call_error(&rpc_id, "this call is not a team tool call of the agent");
            return Ok(stream::mcp_response(request_id, Some(reply)));
        };
        let input = message
            .pointer("/params/arguments")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let site = CallSite {
            writer: &mut *self.writer,
            sandbox: self.sandbox,
            agent: self.agent,
            network: self.network.clone(),
            workspace: self.workspace,
            interrupted: self.interrupted.clone(),
        };
        let (content, is_error) = team_run.call(site, event, tool, &input).await?;
        let reply = custom::call_result(&rpc_id, &content, is_error);
        Ok(stream::mcp_response(request_id, Some(reply)))
    }

    /// Whether `step` answers a built-in call that is still open (a call the turn's end
    /// already closed, or one waiting for the client, gets no second result).
    fn open(&self, step: &Step) -> bool {
        let (id, kind) = match step {
            Step::ToolResult { tool_use_id, .. } => (tool_use_id, ToolKind::Builtin),
            Step::McpToolResult {
                mcp_tool_use_id, ..
            } => (mcp_tool_use_id, ToolKind::Mcp),
            _ => return true,
        };
        let state = self.writer.state();
        state.open_tool_uses.get(id) == Some(&kind) && !state.pending_actions.contains(id)
    }

    /// Answers the permission prompts the consumed confirmations settle, and the custom tool
    /// calls the client sent results for.
    async fn settle(
        &mut self,
        live: &mut Option<Live>,
        confirmations: Vec<EventId>,
    ) -> Result<(), Halt> {
        if let Some(l) = live.as_mut() {
            let answered: Vec<(EventId, String)> = l
                .custom
                .iter()
                .filter_map(|(event, (request_id, rpc_id))| {
                    let result = custom_result(self.writer.records(), event)?;
                    let (content, is_error) = result;
                    let reply = custom::call_result(rpc_id, &content, is_error);
                    Some((event.clone(), stream::mcp_response(request_id, Some(reply))))
                })
                .collect();
            for (event, line) in answered {
                l.custom.remove(&event);
                if let Err(e) = l.send(&line).await {
                    tracing::warn!(session = %self.writer.id(), error = %e, "cannot answer a custom tool call");
                }
            }
        }
        for confirmation in confirmations {
            let (tool_use_id, denial) = match turn::confirmed(self.writer.records(), &confirmation)
            {
                Some(Confirmed::Run { tool_use_id, .. }) => (tool_use_id, None),
                Some(Confirmed::RunMcp {
                    mcp_tool_use_id, ..
                }) => (mcp_tool_use_id, None),
                Some(Confirmed::Answer(Step::ToolResult {
                    tool_use_id, text, ..
                })) => (tool_use_id, Some(text)),
                Some(Confirmed::Answer(Step::McpToolResult {
                    mcp_tool_use_id,
                    content,
                    ..
                })) => {
                    let text = content
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text { text } => Some(text.as_str()),
                            _ => None,
                        })
                        .collect();
                    (mcp_tool_use_id, Some(text))
                }
                Some(Confirmed::Answer(step)) => {
                    self.writer.record(step).await?;
                    continue;
                }
                None => continue,
            };
            let prompt = live
                .as_mut()
                .and_then(|l| Some((l.waiting.remove(&tool_use_id)?, l)));
            let Some(((request_id, input), l)) = prompt else {
                let step = if self.writer.state().open_tool_uses.get(&tool_use_id)
                    == Some(&ToolKind::Mcp)
                {
                    Step::McpToolResult {
                        mcp_tool_use_id: tool_use_id,
                        content: vec![ContentBlock::text(GONE)],
                        is_error: true,
                    }
                } else {
                    Step::ToolResult {
                        tool_use_id,
                        text: GONE.into(),
                        is_error: true,
                    }
                };
                if self.open(&step) {
                    self.writer.record(step).await?;
                }
                continue;
            };
            let answer = match denial {
                None => stream::allow(&request_id, &input),
                Some(text) => stream::deny(&request_id, &text),
            };
            if let Err(e) = l.send(&answer).await {
                tracing::warn!(session = %self.writer.id(), error = %e, "cannot answer a permission prompt");
            }
        }
        Ok(())
    }

    /// Where Claude Code keeps the session's conversation (it exists once Claude Code saved
    /// its first message).
    fn transcript(&self) -> std::path::PathBuf {
        let conversation = launch::conversation_id(self.writer.id().as_str());
        launch::transcript(self.workspace.dir(), &conversation)
    }

    /// Starts Claude Code for the session.
    async fn start(&self) -> Result<Live, String> {
        let conversation = launch::conversation_id(self.writer.id().as_str());
        let resume = self.transcript().exists();
        let command = launch::command(
            &launch::Launch {
                program: self.program,
                conversation: &conversation,
                resume,
                base_url: self.gateway.base_url,
                api_key: self.gateway.api_key,
                plugin_dir: crate::attach::claude_plugin_dir(self.workspace),
                team: self.team.as_ref().map(TeamRun::names).unwrap_or_default(),
            },
            self.agent,
        );
        let mut process = self
            .sandbox
            .start(self.workspace, self.network.clone(), command)
            .await
            .map_err(|e| format!("cannot start Claude Code in the sandbox: {e}"))?;
        let (Some(stdin), Some(lines)) = (process.stdin(), process.stdout()) else {
            let _ = process.kill().await;
            return Err("Claude Code started without its stdin or stdout".into());
        };
        tracing::info!(session = %self.writer.id(), resume, "started Claude Code");
        Ok(Live {
            process,
            stdin,
            lines,
            mapper: Mapper::new(self.agent.mcp_servers.clone())
                .with_team(self.team.as_ref().map(TeamRun::names).unwrap_or_default()),
            waiting: HashMap::new(),
            custom: HashMap::new(),
        })
    }

    /// The end of a turn whose process stopped talking: its exit and the end of its stderr.
    async fn exited(&self, live: &mut Option<Live>, why: String) -> Ended {
        let Some(l) = live.take() else {
            return failed(why);
        };
        let Live { process, stdin, .. } = l;
        drop(stdin);
        let killer = process.killer();
        let exit = match tokio::time::timeout(EXIT_GRACE, process.wait()).await {
            Ok(Ok(exit)) => exit,
            Ok(Err(e)) => return failed(format!("{why}: {e}")),
            Err(_) => {
                killer.kill();
                return failed(format!("{why}, and did not exit"));
            }
        };
        let status = match (exit.exit_code, exit.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => "unknown status".into(),
        };
        let tail: String = {
            let stderr = exit.stderr.trim();
            let start = stderr.char_indices().rev().nth(299).map_or(0, |(i, _)| i);
            stderr[start..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        let message = if tail.is_empty() {
            format!("{why} ({status})")
        } else {
            format!("{why} ({status}): {tail}")
        };
        Ended::Done(
            vec![Step::Error(SessionError {
                kind: managed_agents_core::event::ErrorKind::UnknownError,
                message,
                retry_status: managed_agents_core::event::RetryStatus::Terminal,
            })],
            End::end_turn(turn::ABANDONED),
        )
    }
}
