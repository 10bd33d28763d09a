//! The `codex` engine: Codex (`@openai/codex`, the pinned version of `crate::runtimes`) runs
//! inside the session's sandbox as `codex app-server` (JSON-RPC over stdio, [`protocol`]); its
//! model provider is the door's LLM gateway (OpenAI Responses), reached with a per-session
//! placeholder key the gateway swaps for the vault's token, so the token never enters the
//! sandbox and the gateway records the spans and usage. Codex's home (`CODEX_HOME`) is
//! `/workspace/.codex`, so its thread survives turns and server restarts ([`server`]).
//!
//! One runner turn:
//! 1. settle the consumed `user.tool_confirmation`s: an approval Codex is still waiting for is
//!    answered (accept, or decline with the denial recorded as the call's result); one whose
//!    Codex process is gone (a server restart) gets an error result;
//! 2. hand the consumed messages ([`input`]) to Codex: `turn/start` on a fresh process (or on
//!    the one that was waiting, once its turn is over); a turn a server restart cut short
//!    (`turn::Resume::InAgent`) starts Codex first and, when it resumed the session's thread,
//!    hands it [`super::RESUMED`] and whatever input came since instead;
//! 3. follow Codex's messages ([`mapping`]) and record them through `core::session::turn`
//!    steps (`Step::Output` for messages, thinking and calls, `Step::ToolResult`,
//!    `Step::Error`); approval requests are answered from the agent's permission policies
//!    ([`calls`]);
//! 4. end: Codex's `turn/completed` idles the session with `end_turn` and the process is closed
//!    (stdin closed, so Codex writes its thread out, killed after a grace period); a call
//!    waiting for the client idles it with `requires_action`, and the process is kept in
//!    [`Servers`] until the confirmation comes (bounded by the process lifetime).
//!
//! A coordinator's team tools are its thread's `dynamicTools` (Codex's experimental API, asked
//! for at `initialize` only then): the call is recorded when Codex starts the item (as the
//! delegation's `agent.tool_use`), and Codex's `item/tool/call` request runs the resident
//! engine's delegation (`crate::engine::team_call`) and is answered with its result. A child
//! thread's Codex has a home of its own ([`home`]) in the session's workspace.
//!
//! `user.interrupt` kills the process's whole sandbox (pid namespace) at once; the turn closes
//! its open calls and idles with `end_turn`, and the next turn resumes the thread in a new
//! process. A line of Codex's stdout longer than 16 MiB, a line that is not JSON-RPC, or Codex
//! exiting mid-turn ends the turn with a terminal `session.error` naming the cause.

mod calls;
mod input;
mod mapping;
mod protocol;
mod server;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use managed_agents_core::agent::tools::builtin_setting;
use managed_agents_core::agent::{BuiltinTool, PermissionPolicy};
use managed_agents_core::event::{
    ContentBlock, Delta, ErrorKind, Preview, Previewed, RetryStatus, SessionError, StopReason,
    TextBlock,
};
use managed_agents_core::ids::{EventId, SessionId};
use managed_agents_core::session::turn::{self, Confirmed, End, Output, Step};
use managed_agents_core::session::ToolKind;
use managed_agents_core::storage::Store;
use managed_agents_core::time::Timestamp;
use serde_json::Value;
use tokio::sync::watch;

use self::calls::{Asked, Calls, Finished, Started};
use self::mapping::{Progress, TurnEnd};
use self::protocol::{Approvals, Incoming, ThreadSettings};
use self::server::AppServer;
pub(crate) use self::server::Launch;
use super::team_call::{CallSite, TeamRun};
use super::{grading, interruptible, TurnAgent};
use crate::model::excerpt;
use crate::previews::Previews;
use crate::runtimes::Located;
use crate::sandbox::{Network, Sandbox, Workspace};
use crate::writer::{Halt, Writer};

/// Codex's working directory: the session's workspace inside the sandbox.
const CWD: &str = "/workspace";
/// Codex's home, in the persistent workspace.
const CODEX_HOME: &str = "/workspace/.codex";
/// The variable holding the placeholder key (Codex's `env_key`).
const KEY_VARIABLE: &str = "MANAGED_AGENTS_LLM_KEY";
/// The longest life of one app-server process (a turn and any wait for a confirmation).
const LIFETIME: Duration = Duration::from_secs(6 * 60 * 60);
/// How long a finished Codex gets to write its thread out after its stdin closes.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The result of a confirmed call whose Codex process is gone.
const LOST: &str = "The call did not run: the Codex process that asked for this confirmation \
                    ended (for example when the server restarted). Send a message to continue.";

/// Codex's home for stream `id`: a session's is [`CODEX_HOME`]; a child thread, which works in
/// its session's workspace, gets one of its own beside it, since Codex finds its thread again
/// as the newest one of its home in the working directory.
pub(crate) fn home(id: &SessionId, child: bool) -> String {
    if child {
        format!("{CODEX_HOME}-threads/{id}")
    } else {
        CODEX_HOME.to_owned()
    }
}

/// How Codex is launched for a session: the `codex` program inside the sandbox, the gateway's
/// OpenAI Responses base URL, the session's placeholder key, `mcp` (the agent's MCP servers as
/// `-c` overrides, `crate::mcp::cli::codex_overrides`) and Codex's home ([`home`]).
pub(crate) fn launch(
    program: &str,
    base_url: &str,
    placeholder_key: &str,
    mcp: Vec<String>,
    home: &str,
) -> Launch {
    let quoted = |s: &str| Value::String(s.to_owned()).to_string();
    let provider = "model_providers.managed_agents";
    let overrides = [
        "model_provider=\"managed_agents\"".to_owned(),
        format!("{provider}.name=\"managed-agents\""),
        format!("{provider}.base_url={}", quoted(base_url)),
        format!("{provider}.env_key=\"{KEY_VARIABLE}\""),
        format!("{provider}.wire_api=\"responses\""),
        "check_for_update_on_startup=false".to_owned(),
    ]
    .into_iter()
    .chain(mcp);
    // `CODEX_HOME` must exist before Codex starts.
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "mkdir -p \"$CODEX_HOME\" && exec \"$0\" \"$@\"".to_owned(),
        program.to_owned(),
        "app-server".to_owned(),
    ];
    for o in overrides {
        argv.push("-c".to_owned());
        argv.push(o);
    }
    Launch {
        argv,
        env: vec![
            ("CODEX_HOME".to_owned(), home.to_owned()),
            (KEY_VARIABLE.to_owned(), placeholder_key.to_owned()),
        ],
        lifetime: LIFETIME,
    }
}

/// The native Codex binary of an npm install (`node_modules/.bin/codex` is a Node script that
/// only finds it and execs it: about 0.1 s of every start), as the sandbox sees it; `codex`
/// itself when it is not such an install.
pub(crate) fn native(codex: &Located) -> PathBuf {
    let triple = match std::env::consts::ARCH {
        "x86_64" => "x64/vendor/x86_64-unknown-linux-musl",
        "aarch64" => "arm64/vendor/aarch64-unknown-linux-musl",
        _ => return codex.in_sandbox.clone(),
    };
    let native = format!("@openai/codex-linux-{triple}/bin/codex");
    let beside = |entry: &Path| {
        let modules = entry.parent()?.parent()?;
        (entry.ends_with("node_modules/.bin/codex")).then(|| modules.join(&native))
    };
    match (beside(&codex.host), beside(&codex.in_sandbox)) {
        (Some(host), Some(in_sandbox)) if host.is_file() => in_sandbox,
        _ => codex.in_sandbox.clone(),
    }
}

/// Whether Codex must ask before commands and file changes: yes unless `bash`, `edit` and
/// `write` all run without asking.
fn approvals(agent: &TurnAgent) -> Approvals {
    let free = |tool| {
        builtin_setting(&agent.tools, tool)
            .is_some_and(|s| s.enabled && s.permission_policy != PermissionPolicy::AlwaysAsk)
    };
    // Codex asks before an MCP call only under an approval policy that asks at all.
    if [BuiltinTool::Bash, BuiltinTool::Edit, BuiltinTool::Write]
        .into_iter()
        .all(free)
        && !crate::mcp::cli::asks(&agent.mcp_servers, &agent.tools)
    {
        Approvals::Never
    } else {
        Approvals::Always
    }
}

/// An app-server between runner turns (waiting for the client's confirmation), with its turn.
struct Live {
    server: AppServer,
    calls: Calls,
    /// Codex's turn in progress.
    turn: Option<String>,
}

/// The app-servers waiting for a confirmation, by session. Owned by the runner.
#[derive(Default)]
pub(crate) struct Servers(Mutex<HashMap<SessionId, Live>>);

impl Servers {
    fn take(&self, session: &SessionId) -> Option<Live> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(session)
    }

    fn keep(&self, session: &SessionId, live: Live) {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(session.clone(), live);
    }

    /// Whether an app-server is kept for `session` (waiting on a confirmation).
    pub(crate) fn holds(&self, session: &SessionId) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(session)
    }

    /// Ends the app-server kept for `session`, if any (the session was deleted, archived or
    /// terminated while a call waited): dropping its process kills its sandbox.
    pub(crate) fn discard(&self, session: &SessionId) {
        if self.take(session).is_some() {
            tracing::info!(session = %session, "ended the Codex app-server of a session that ended");
        }
    }
}

/// Everything one Codex turn works with.
pub(crate) struct Turn<'a, S, X> {
    pub(crate) writer: &'a mut Writer<S>,
    pub(crate) sandbox: &'a X,
    pub(crate) previews: &'a Previews,
    pub(crate) agent: &'a TurnAgent,
    pub(crate) network: Network,
    pub(crate) workspace: &'a Workspace,
    pub(crate) launch: &'a Launch,
    pub(crate) servers: &'a Servers,
    /// The session's own model endpoint, where the outcome grader asks.
    pub(crate) server_side: grading::ServerSide<'a>,
    pub(crate) interrupted: watch::Receiver<bool>,
    /// A coordinator's team, whose tools are the thread's dynamic tools (`item/tool/call`).
    pub(crate) team: Option<TeamRun<'a, S>>,
}

/// How the drive ended.
enum Ended {
    /// Codex's turn is over (or there was nothing to do): close the process, idle `end_turn`.
    Done(Option<Live>),
    /// Calls wait for the client: keep the process, idle `requires_action`.
    Waiting(Live, Vec<EventId>),
    /// Talking to Codex failed: kill it, record this terminal error.
    Failed(Option<Live>, String),
}

impl<S: Store, X: Sandbox> Turn<'_, S, X> {
    /// Runs the turn to its idle. `confirmations` are the `user.tool_confirmation` events the
    /// runner consumed for it.
    pub(crate) async fn run(mut self, confirmations: Vec<EventId>) -> Result<(), Halt> {
        let session = self.writer.id().clone();
        let mut live = self.servers.take(&session);
        let mut ended = self.drive(&mut live, confirmations, None).await;
        // Codex ended its turn: an outcome the agent works on is graded, and a
        // `needs_revision` gives Codex the grader's explanation as its next input.
        while let Ok(Ended::Done(done)) = &mut ended {
            if done.is_none() || self.writer.grading().is_none() {
                break;
            }
            let grader = self
                .server_side
                .grader(&self.agent.model, &self.interrupted);
            match grading::revise(self.writer, grader).await {
                Ok(Some(revision)) => {
                    live = done.take();
                    ended = self.drive(&mut live, Vec::new(), Some(revision)).await;
                }
                Ok(None) => break,
                Err(halt) => {
                    live = done.take();
                    ended = Err(halt);
                }
            }
        }
        // Past the session's budget the gateway lets no model request through (Codex then
        // fails its turn): the turn ends `budget_reached`.
        if let Ok(Ended::Done(live) | Ended::Failed(live, _)) = &mut ended {
            if self.writer.budget_spent().await {
                if let Some(live) = live.take() {
                    if live.turn.is_some() {
                        // Stopped mid-turn (retrying a refused request): end it now.
                        live.server.kill().await;
                    } else {
                        live.server.close(CLOSE_GRACE).await;
                    }
                }
                let end = End {
                    stop_reason: StopReason::BudgetReached,
                    stop_details: None,
                    why: turn::ABANDONED.into(),
                };
                return self.writer.finish(Vec::new(), end).await;
            }
        }
        match ended {
            Ok(Ended::Done(live)) => {
                self.writer
                    .finish(Vec::new(), End::end_turn(turn::ABANDONED))
                    .await?;
                if let Some(live) = live {
                    live.server.close(CLOSE_GRACE).await;
                }
                Ok(())
            }
            Ok(Ended::Waiting(live, ids)) => {
                self.servers.keep(&session, live);
                let end = End {
                    stop_reason: StopReason::RequiresAction { event_ids: ids },
                    stop_details: None,
                    why: "The tool call did not finish.".into(),
                };
                self.writer.finish(Vec::new(), end).await
            }
            Ok(Ended::Failed(live, message)) => {
                if let Some(live) = live {
                    live.server.kill().await;
                }
                tracing::warn!(session = %session, error = %message, "codex turn failed");
                let error = SessionError {
                    kind: ErrorKind::UnknownError,
                    message: excerpt(&message),
                    retry_status: RetryStatus::Terminal,
                };
                self.writer
                    .finish(vec![Step::Error(error)], End::end_turn(turn::ABANDONED))
                    .await
            }
            Err(halt) => {
                // Interrupted (or the session is gone): stop Codex's whole sandbox now.
                if let Some(live) = live {
                    live.server.kill().await;
                }
                match halt {
                    Halt::Interrupted => self.writer.interrupted(None).await,
                    gone => Err(gone),
                }
            }
        }
    }

    /// Drives Codex to the end of its turn. `next`: input of the harness's to give instead of
    /// the consumed input (an outcome's revision request).
    async fn drive(
        &mut self,
        live: &mut Option<Live>,
        confirmations: Vec<EventId>,
        next: Option<String>,
    ) -> Result<Ended, Halt> {
        self.settle(live, confirmations).await?;
        // A turn a restart cut short goes on in Codex's thread, when there is one to resume:
        // start Codex first to know.
        let restarted = turn::consumed_since_restart(self.writer.records()).is_some();
        if live.is_none() && next.is_none() && restarted {
            match self.open().await? {
                Ok(opened) => *live = Some(opened),
                Err(message) => return Ok(Ended::Failed(None, message)),
            }
        }
        let input = match next {
            Some(text) => vec![protocol::text_input(&text)],
            None => {
                let kept = live.as_ref().is_some_and(|l| l.server.resumed);
                input::turn_input(self.writer.records(), kept)
            }
        };
        if live.is_none() && input.is_empty() {
            return Ok(Ended::Done(None));
        }
        let open = match live.take() {
            Some(open) => Ok(open),
            None => self.open().await?,
        };
        let mut current = match open {
            Ok(current) => current,
            Err(message) => return Ok(Ended::Failed(None, message)),
        };
        if let Err(e) = self.deliver(&mut current, input).await? {
            return Ok(Ended::Failed(Some(current), e.to_string()));
        }
        if current.turn.is_none() {
            return Ok(Ended::Done(Some(current)));
        }
        let result = self.follow(&mut current).await;
        match result {
            Ok(Followed::Completed) => Ok(Ended::Done(Some(current))),
            Ok(Followed::Waiting(ids)) => Ok(Ended::Waiting(current, ids)),
            Ok(Followed::Failed(message)) => Ok(Ended::Failed(Some(current), message)),
            Err(halt) => {
                *live = Some(current);
                Err(halt)
            }
        }
    }

    /// Answers the confirmations: Codex's waiting approval requests, or error results for
    /// calls whose Codex process is gone.
    async fn settle(
        &mut self,
        live: &mut Option<Live>,
        confirmations: Vec<EventId>,
    ) -> Result<(), Halt> {
        for confirmation in confirmations {
            let (id, allow, answer) = match turn::confirmed(self.writer.records(), &confirmation) {
                Some(Confirmed::Run { tool_use_id, .. }) => (tool_use_id, true, None),
                Some(Confirmed::RunMcp {
                    mcp_tool_use_id, ..
                }) => (mcp_tool_use_id, true, None),
                Some(Confirmed::Answer(step)) => match &step {
                    Step::ToolResult { tool_use_id, .. } => {
                        (tool_use_id.clone(), false, Some(step))
                    }
                    Step::McpToolResult {
                        mcp_tool_use_id, ..
                    } => (mcp_tool_use_id.clone(), false, Some(step)),
                    _ => continue,
                },
                None => continue,
            };
            let request = live.as_mut().and_then(|l| l.calls.confirmed(&id, allow));
            if let Some(step) = answer {
                self.writer.record(step).await?;
            }
            match (request, live.as_mut()) {
                (Some((request, elicitation)), Some(l)) => {
                    let answer = if elicitation {
                        protocol::elicitation(allow)
                    } else {
                        protocol::decision(allow)
                    };
                    if let Err(e) = l.server.answer(&request, answer).await {
                        tracing::warn!(session = %self.writer.id(), error = %e, "cannot answer Codex");
                    }
                }
                _ if allow => {
                    let mcp = self.writer.state().open_tool_uses.get(&id) == Some(&ToolKind::Mcp);
                    let lost = if mcp {
                        Step::McpToolResult {
                            mcp_tool_use_id: id,
                            content: vec![ContentBlock::text(LOST)],
                            is_error: true,
                        }
                    } else {
                        Step::ToolResult {
                            tool_use_id: id,
                            text: LOST.into(),
                            is_error: true,
                        }
                    };
                    self.writer.record(lost).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Starts Codex on the session's thread.
    async fn open(&mut self) -> Result<Result<Live, String>, Halt> {
        let settings = ThreadSettings {
            model: self.agent.model.clone(),
            instructions: self.agent.system.clone().filter(|s| !s.is_empty()),
            approvals: approvals(self.agent),
            cwd: CWD.to_owned(),
            dynamic_tools: self
                .team
                .as_ref()
                .map(|team| {
                    let specs = team.specs();
                    specs
                        .iter()
                        .map(|s| protocol::dynamic_tool(&s.name, &s.description, &s.input_schema))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let opened = interruptible(
            &self.interrupted,
            AppServer::open(
                self.sandbox,
                self.workspace,
                self.network.clone(),
                self.launch,
                &settings,
            ),
        )
        .await?;
        Ok(opened
            .map(|server| Live {
                server,
                calls: Calls::default(),
                turn: None,
            })
            .map_err(|e| e.to_string()))
    }

    /// Gives Codex the turn's input: a new Codex turn, or more input for the one in progress.
    async fn deliver(
        &mut self,
        live: &mut Live,
        input: Vec<Value>,
    ) -> Result<Result<(), server::Error>, Halt> {
        if input.is_empty() {
            return Ok(Ok(()));
        }
        let thread = live.server.thread.clone();
        let (method, params) = match &live.turn {
            Some(turn) => {
                let mut params = protocol::turn_start(&thread, input);
                params["expectedTurnId"] = Value::String(turn.clone());
                ("turn/steer", params)
            }
            None => ("turn/start", protocol::turn_start(&thread, input)),
        };
        let answered = interruptible(&self.interrupted, live.server.call(method, params)).await?;
        Ok(answered.and_then(|result| {
            if live.turn.is_none() {
                let turn =
                    protocol::started_turn(&result).ok_or(server::Error::Unexpected("a turn"))?;
                live.turn = Some(turn);
            }
            Ok(())
        }))
    }

    /// Follows Codex until its turn completes or calls wait for the client.
    async fn follow(&mut self, live: &mut Live) -> Result<Followed, Halt> {
        let session = self.writer.id().clone();
        let mut messages: HashMap<String, EventId> = HashMap::new();
        let mut failed = false;
        loop {
            let waiting = live.calls.waiting();
            if !waiting.is_empty() && !live.calls.running() {
                return Ok(Followed::Waiting(waiting));
            }
            let next = interruptible(&self.interrupted, live.server.next()).await?;
            let message = match next {
                Ok(message) => message,
                Err(e) => return Ok(Followed::Failed(e.to_string())),
            };
            let (method, params) = match message {
                Incoming::Request { id, method, params } if method == protocol::TOOL_CALL => {
                    let answer = Box::pin(self.team_call(live, &params)).await?;
                    if let Err(e) = live.server.answer(&id, answer).await {
                        return Ok(Followed::Failed(e.to_string()));
                    }
                    continue;
                }
                Incoming::Request { id, method, params } => {
                    let asked = match mapping::approval(&method, &params) {
                        Some(item) => Some((live.calls.asked(&item, id.clone()), false)),
                        None => mapping::mcp_approval(&method, &params).map(|(server, tool)| {
                            (live.calls.asked_mcp(&server, &tool, id.clone()), true)
                        }),
                    };
                    let answered = match asked {
                        Some((asked, elicitation)) => match asked {
                            Asked::Answer(allow) => {
                                let answer = if elicitation {
                                    protocol::elicitation(allow)
                                } else {
                                    protocol::decision(allow)
                                };
                                live.server.answer(&id, answer).await
                            }
                            Asked::Wait(event, body) => {
                                self.output(Output {
                                    calls: vec![(event, body)],
                                    ..Output::default()
                                })
                                .await?;
                                Ok(())
                            }
                        },
                        None => {
                            let why = format!("{method} is not supported by this client");
                            live.server.refuse(&id, &why).await
                        }
                    };
                    if let Err(e) = answered {
                        return Ok(Followed::Failed(e.to_string()));
                    }
                    continue;
                }
                Incoming::Notification { method, params } => (method, params),
                Incoming::Response { .. } => continue,
            };
            match mapping::notification(&method, &params) {
                Progress::MessageStarted { item } => {
                    let id = EventId::generate(Timestamp::now());
                    self.previews.publish(
                        &session,
                        self.writer.version(),
                        Preview::Start {
                            event: Previewed::AgentMessage { id: id.clone() },
                        },
                    );
                    messages.insert(item, id);
                }
                Progress::MessageDelta { item, delta } => {
                    if let Some(id) = messages.get(&item).filter(|_| !delta.is_empty()) {
                        self.previews.publish(
                            &session,
                            self.writer.version(),
                            Preview::Delta {
                                event_id: id.clone(),
                                delta: Delta::ContentDelta {
                                    index: Some(0),
                                    content: TextBlock::new(delta),
                                },
                            },
                        );
                    }
                }
                Progress::Message { item, text } => {
                    let id = messages
                        .remove(&item)
                        .unwrap_or_else(|| EventId::generate(Timestamp::now()));
                    if !text.is_empty() {
                        self.output(Output {
                            message: Some((id, vec![ContentBlock::text(text)])),
                            ..Output::default()
                        })
                        .await?;
                    }
                }
                Progress::Thinking => {
                    self.output(Output {
                        thinking: vec![EventId::generate(Timestamp::now())],
                        ..Output::default()
                    })
                    .await?;
                }
                Progress::ToolStarted { item, call } => {
                    let team_tool = call.server.is_none()
                        && !call.governed
                        && self
                            .team
                            .as_ref()
                            .is_some_and(|t| t.team.offers(&call.name));
                    let started = if team_tool {
                        live.calls.started_team(item, call.name, call.input)
                    } else {
                        live.calls.started(&self.agent.tools, item, call)
                    };
                    if let Started::Record(id, body) = started {
                        self.output(Output {
                            calls: vec![(id, body)],
                            ..Output::default()
                        })
                        .await?;
                    }
                }
                Progress::ToolFinished { item, outcome } => {
                    if let Some(Finished {
                        call,
                        id,
                        text,
                        is_error,
                        mcp,
                    }) = live.calls.finished(&item, outcome)
                    {
                        if let Some(call) = call {
                            self.output(Output {
                                calls: vec![call],
                                ..Output::default()
                            })
                            .await?;
                        }
                        let step = if mcp {
                            Step::McpToolResult {
                                mcp_tool_use_id: id,
                                content: vec![ContentBlock::text(text)],
                                is_error,
                            }
                        } else {
                            Step::ToolResult {
                                tool_use_id: id,
                                text,
                                is_error,
                            }
                        };
                        self.writer.record(step).await?;
                    }
                }
                Progress::Error {
                    message,
                    will_retry,
                } => {
                    // Past the session's budget the gateway refuses every model request:
                    // Codex's retries would only repeat the refusal.
                    if self.writer.budget_spent().await {
                        return Ok(Followed::Failed(message));
                    }
                    failed |= !will_retry;
                    self.error(&message, will_retry).await?;
                }
                Progress::TurnCompleted(end) => {
                    live.turn = None;
                    if let TurnEnd::Failed(message) = end {
                        if !failed {
                            self.error(&message, false).await?;
                        }
                    }
                    return Ok(Followed::Completed);
                }
                Progress::Ignored => {}
            }
        }
    }

    /// Runs a call of a team tool (Codex's `item/tool/call` `params`) through the delegation
    /// (`crate::engine::team_call`) and gives Codex's answer: the result's text.
    async fn team_call(&mut self, live: &mut Live, params: &Value) -> Result<Value, Halt> {
        let item = params["callId"].as_str().unwrap_or_default();
        let tool = params["tool"].as_str().unwrap_or_default().to_owned();
        let input = params["arguments"].as_object().cloned().unwrap_or_default();
        let (Some(team_run), Some(id)) = (self.team.as_mut(), live.calls.team_call(item)) else {
            let why = format!("{tool} is not a tool of this agent");
            return Ok(protocol::tool_output(&why, false));
        };
        let site = CallSite {
            writer: &mut *self.writer,
            sandbox: self.sandbox,
            agent: self.agent,
            network: self.network.clone(),
            workspace: self.workspace,
            interrupted: self.interrupted.clone(),
        };
        let (content, is_error) = team_run.call(site, id, &tool, &input).await?;
        let text: Vec<&str> = content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        Ok(protocol::tool_output(&text.join("\n\n"), !is_error))
    }

    async fn output(&mut self, output: Output) -> Result<(), Halt> {
        self.writer.record(Step::Output(output)).await
    }

    async fn error(&mut self, message: &str, will_retry: bool) -> Result<(), Halt> {
        let error = SessionError {
            kind: ErrorKind::ModelRequestFailedError,
            message: excerpt(message),
            retry_status: if will_retry {
                RetryStatus::Retrying
            } else {
                RetryStatus::Terminal
            },
        };
        self.writer.record(Step::Error(error)).await
    }
}

/// How following Codex ended.
enum Followed {
    Completed,
    Waiting(Vec<EventId>),
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_launch_points_codex_at_the_gateway_with_the_placeholder() {
        let launch = launch(
            "/opt/codex/bin/codex",
            "http://127.0.0.1:3128/llm/openai/v1",
            "placeholder",
            Vec::new(),
            CODEX_HOME,
        );
        assert_eq!(launch.argv[3..5], ["/opt/codex/bin/codex", "app-server"]);
        assert!(launch.argv.contains(
            &"model_providers.managed_agents.base_url=\"http://127.0.0.1:3128/llm/openai/v1\""
                .to_owned()
        ));
        assert!(launch
            .env
            .contains(&(KEY_VARIABLE.to_owned(), "placeholder".to_owned())));
        assert!(!launch.argv.iter().any(|a| a.contains("placeholder")));
    }

    #[test]
    fn a_child_thread_has_a_codex_home_of_its_own() {
        let session = SessionId::parse("sesn_011CZkZAtmR3yMPDzynEDxu7").expect("an id");
        assert_eq!(home(&session, false), CODEX_HOME);
        let child = home(&session, true);
        assert_eq!(
            child,
            "/workspace/.codex-threads/sesn_011CZkZAtmR3yMPDzynEDxu7"
        );
        let launch = launch("codex", "http://gw", "key", Vec::new(), &child);
        assert!(launch
            .env
            .contains(&("CODEX_HOME".to_owned(), child.clone())));
    }

    #[test]
    fn an_npm_install_runs_its_native_binary() {
        let dir = tempfile::tempdir().unwrap();
        let modules = dir.path().join("codex-0.171.0/node_modules");
        let bin = modules.join(".bin/codex");
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::write(&bin, "#!/usr/bin/env node").unwrap();
        let located = Located {
            host: bin,
            in_sandbox: "/opt/rt/codex-0.171.0/node_modules/.bin/codex".into(),
        };
        assert_eq!(
            native(&located),
            located.in_sandbox,
            "no native binary installed"
        );
        let arch = match std::env::consts::ARCH {
            "x86_64" => "x64/vendor/x86_64-unknown-linux-musl",
            _ => "arm64/vendor/aarch64-unknown-linux-musl",
        };
        let binary = modules.join(format!("@openai/codex-linux-{arch}/bin/codex"));
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        std::fs::write(&binary, "").unwrap();
        assert_eq!(
            native(&located),
            PathBuf::from(format!(
                "/opt/rt/codex-0.171.0/node_modules/@openai/codex-linux-{arch}/bin/codex"
            ))
        );
        let elsewhere = Located {
            host: "/usr/local/bin/codex".into(),
            in_sandbox: "/usr/local/bin/codex".into(),
        };
        assert_eq!(native(&elsewhere), elsewhere.in_sandbox);
    }

    #[test]
    fn codex_asks_unless_every_tool_it_uses_is_allowed() {
        let agent = |tools: serde_json::Value| TurnAgent {
            model: "m".into(),
            effort: managed_agents_core::agent::EffortLevel::High,
            speed: managed_agents_core::agent::Speed::Standard,
            system: None,
            tools: serde_json::from_value(tools).unwrap(),
            mcp_servers: Vec::new(),
        };
        let toolset = |policy: &str, configs: serde_json::Value| {
            serde_json::json!([{"type": "agent_toolset_20260401",
                "default_config": {"enabled": true, "permission_policy": {"type": policy}},
                "configs": configs}])
        };
        assert_eq!(
            approvals(&agent(toolset("always_allow", serde_json::json!([])))),
            Approvals::Never
        );
        assert_eq!(
            approvals(&agent(toolset("always_ask", serde_json::json!([])))),
            Approvals::Always
        );
        assert_eq!(approvals(&agent(serde_json::json!([]))), Approvals::Always);
    }
}
