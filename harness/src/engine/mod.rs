//! The resident agent loop shared by the `native` (Anthropic Messages) and `openai-agents`
//! (OpenAI Responses) engines; they differ only in the model client ([`crate::model`]).
//!
//! One call of [`Turn::run`] drives a session from its consumed input to its next idle:
//!
//! 1. settle what the input answers: confirmed tool calls run, denied ones get an error result
//!    carrying the `deny_message`;
//! 2. loop: the conversation as folded from the log ([`crate::conversation`]); `span.model_request_start`; stream the model
//!    (previews of `agent.message` / `agent.thinking` go to [`Previews`]); then in one append
//!    `agent.thinking`, `agent.message`, `agent.tool_use` (with `evaluated_permission`) /
//!    `agent.custom_tool_use`, `span.model_request_end` with `model_usage`; then run the allowed
//!    tools, each followed by its `agent.tool_result`;
//! 3. when the agent ends its turn while working on an outcome (`user.define_outcome`), grade
//!    it ([`model::grade`]; `core::session::turn::to_grade` says which and records the
//!    `span.outcome_evaluation_*` events): on `needs_revision` the explanation is the agent's
//!    next input and the loop goes on; `satisfied`, `failed` or the last iteration end it;
//! 4. stop with `session.status_idle`: `end_turn`, `requires_action` (tool calls waiting for a
//!    confirmation or a custom tool result), `refusal` (with `stop_details`) or
//!    `retries_exhausted`.
//!
//! Transient model failures (429, 529, 5xx, connection loss) are retried with exponential
//! backoff honouring `retry-after`: `span.model_request_end{is_error}`, `session.error`
//! (`retry_status: retrying`), `session.status_rescheduled`, the wait, `session.status_running`.
//! When retries are exhausted: `session.error` (`exhausted`) and idle with `retries_exhausted`.
//! Other failures (400, 401, ...): `session.error` (`terminal`) and idle with `end_turn` — the
//! session stays usable once the cause (a bad key, a bad model id) is fixed.
//!
//! A `user.interrupt` (watched by the runner) cancels the model request, the backoff wait or the
//! running tool (its sandbox is killed) at once; the turn closes what it opened (an errored
//! span, an error result for each call without one) and idles with `end_turn`.
//!
//! The engine builds no records itself: it hands each result to the writer as a
//! [`managed_agents_core::session::turn::Step`] (or ends with a `turn::End`), and `turn`
//! decides and validates the events, their ids and times.

pub(crate) mod claude;
pub(crate) mod codex;
pub(crate) mod compact;
pub(crate) mod delegate;
pub(crate) mod file_sources;
pub(crate) mod grading;
pub(crate) mod team;
pub(crate) mod team_call;
mod telemetry_content;
pub(crate) mod workflow;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use managed_agents_core::agent::tools::{builtin_domains, Tool};
use managed_agents_core::agent::{BuiltinTool, McpServer};
use managed_agents_core::event::{
    ContentBlock, ErrorKind, Preview, Previewed, RetryStatus, SessionError, StopDetails,
    StopReason, TextBlock,
};
use managed_agents_core::ids::EventId;
use managed_agents_core::session::turn::{
    self, Call, Classified, Confirmed, End, McpCall, Response, Step,
};
use managed_agents_core::storage::Store;
use managed_agents_core::time::Timestamp;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tracing::Instrument;

use crate::conversation;
use crate::mcp;
use crate::model::reasoning::Reasoning;
use crate::model::{self, Block, Endpoint, Progress, Request, Stop};
use crate::options::Options;
use crate::previews::Previews;
use crate::sandbox::{Network, Sandbox, Workspace};
use crate::tools;
use crate::writer::{Halt, Writer};

/// What an agent CLI (`claude`, `codex`) is told when its turn goes on after a restart
/// (`core::session::turn::Resume::InAgent`).
pub(crate) const RESUMED: &str = "The server running this session restarted while you were \
    working on the current request, and your process was stopped. Tool calls that were \
    running when it stopped did not report a result: they may or may not have completed, so \
    check their effects before running them again. Continue the request from where you left \
    off.";

/// The agent as a turn uses it: model, system prompt and tools (read from the session's agent
/// snapshot by the runner).
#[derive(Debug, Clone)]
pub(crate) struct TurnAgent {
    pub(crate) model: String,
    /// The model config's effort and speed, sent with each model request.
    pub(crate) effort: managed_agents_core::agent::EffortLevel,
    pub(crate) speed: managed_agents_core::agent::Speed,
    pub(crate) system: Option<String>,
    pub(crate) tools: Vec<Tool>,
    pub(crate) mcp_servers: Vec<McpServer>,
}

impl TurnAgent {
    /// This agent with `paragraphs` after its system prompt (each separated by a blank line).
    pub(crate) fn with_system_paragraphs(&self, paragraphs: &[String]) -> Self {
        let mut system = self.system.clone();
        for paragraph in paragraphs {
            system = Some(match system {
                Some(prompt) if !prompt.is_empty() => format!("{prompt}\n\n{paragraph}"),
                _ => paragraph.clone(),
            });
        }
        Self {
            system,
            ..self.clone()
        }
    }
}

/// Everything one turn works with.
pub(crate) struct Turn<'a, S, X> {
    pub(crate) writer: &'a mut Writer<S>,
    pub(crate) sandbox: &'a X,
    pub(crate) http: &'a reqwest::Client,
    pub(crate) options: &'a Options,
    pub(crate) previews: &'a Previews,
    pub(crate) agent: &'a TurnAgent,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) network: Network,
    pub(crate) workspace: &'a Workspace,
    pub(crate) shells: &'a tools::Shells,
    pub(crate) mcp: &'a mut mcp::Servers<S>,
    /// The environment is self-hosted: allowed built-in tool calls are not run here but left
    /// open for its worker (the turn idles with `requires_action` until each gets its
    /// `user.tool_result`).
    pub(crate) tools_on_worker: bool,
    pub(crate) interrupted: watch::Receiver<bool>,
    /// What a coordinator delegates to ([`team`]); empty for other agents.
    pub(crate) team: &'a team::Team,
    /// Runs child threads' turns (the runner); `None` where delegation is not available.
    pub(crate) threads: Option<&'a dyn delegate::Threads>,
}

/// How one call of a response is handled: a built-in or custom tool, or an MCP tool.
enum Pending {
    Tool(Call),
    /// A call of a team tool that starts or continues a child thread (its tool's name).
    Delegate(String),
    /// A call of the workflow tool.
    Workflow,
    Mcp(McpCall, String, String),
}

/// The step answering built-in call `id` with `text`.
fn tool_result(id: EventId, text: impl Into<String>, is_error: bool) -> Step {
    Step::ToolResult {
        tool_use_id: id,
        text: text.into(),
        is_error,
    }
}

/// Awaits `future` unless an interrupt comes first.
pub(crate) async fn interruptible<F: Future>(
    rx: &watch::Receiver<bool>,
    future: F,
) -> Result<F::Output, Halt> {
    let mut rx = rx.clone();
    let interrupted = async move {
        if rx.wait_for(|v| *v).await.is_err() {
            // The watcher is gone (the turn is ending anyway): never fire.
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        biased;
        () = interrupted => Err(Halt::Interrupted),
        out = future => Ok(out),
    }
}

/// What ended the model loop (other than a halt).
enum Ended {
    Idle(StopReason, Option<StopDetails>),
    /// Already idle (the failure path wrote its own idle).
    Done,
}

impl<S: Store, X: Sandbox> Turn<'_, S, X> {
    /// Runs the turn to its idle. `confirmations` are the `user.tool_confirmation` events the
    /// runner consumed for it.
    pub(crate) async fn run(mut self, confirmations: Vec<EventId>) -> Result<(), Halt> {
        let mut open_span = None;
        let mut confirmations = confirmations;
        let result = loop {
            let ended = self
                .drive(std::mem::take(&mut confirmations), &mut open_span)
                .await;
            // The agent ended its turn: an outcome it works on is graded, and a
            // `needs_revision` sends it back to work.
            if let Ok(Ended::Idle(StopReason::EndTurn, None)) = &ended {
                match self.grade().await {
                    Ok(turn::Next::Revise) => continue,
                    Ok(turn::Next::Done) => {}
                    Err(halt) => break Err(halt),
                }
            }
            break ended;
        };
        match result {
            Ok(Ended::Idle(stop_reason, stop_details)) => {
                let end = End {
                    stop_reason,
                    stop_details,
                    why: "The tool call did not run.".into(),
                };
                self.writer.finish(Vec::new(), end).await
            }
            Ok(Ended::Done) => Ok(()),
            Err(Halt::Interrupted) => self.writer.interrupted(open_span).await,
            Err(gone) => Err(gone),
        }
    }

    async fn drive(
        &mut self,
        confirmations: Vec<EventId>,
        open_span: &mut Option<EventId>,
    ) -> Result<Ended, Halt> {
        let for_worker = self.settle(confirmations).await?;
        if !self.tools_on_worker {
            // A read-only call a restart cut short runs again (core's `recover`).
            let reruns: Vec<(EventId, BuiltinTool, Map<String, Value>)> =
                turn::idempotent_open_calls(self.writer.state(), self.writer.records())
                    .into_iter()
                    .map(|(id, tool, input)| (id.clone(), tool, input.clone()))
                    .collect();
            for (id, tool, input) in reruns {
                self.run_tool(&id, tool, &input).await?;
            }
        }
        if !for_worker.is_empty() {
            // Confirmed calls of a self-hosted environment: its worker runs them now.
            return Ok(Ended::Idle(
                StopReason::RequiresAction {
                    event_ids: for_worker,
                },
                None,
            ));
        }
        let mut specs = tools::specs(&self.agent.tools, self.endpoint.provider);
        specs.extend(self.mcp.specs());
        specs.extend(self.team.specs());
        // The thinking blocks of this turn's responses by their first tool call's wire id: the
        // Messages API wants them back with the calls while thinking is on.
        let mut kept: HashMap<String, Vec<Value>> = HashMap::new();
        // File-sourced blocks resolved to their bytes, once per turn.
        let mut files = file_sources::Resolved::new();
        let mut requests = 0;
        loop {
            requests += 1;
            if requests > self.options.max_model_requests_per_turn {
                self.writer
                    .record(Step::Error(SessionError {
                        kind: ErrorKind::ToolUseLimitReachedError,
                        message: format!(
                            "the turn made {} model requests without finishing; stopping",
                            self.options.max_model_requests_per_turn
                        ),
                        retry_status: RetryStatus::Terminal,
                    }))
                    .await?;
                return Ok(Ended::Idle(StopReason::EndTurn, None));
            }
            if self.writer.state().budget_exhausted() || self.session_budget_spent().await {
                // The spend reached the session's cap: pause before the next model request
                // (a raised or removed cap resumes the turn from here; a child thread's turn
                // ends, and its coordinator's session pauses).
                return Ok(Ended::Idle(StopReason::BudgetReached, None));
            }
            if self.compaction_due() {
                let system = self.system(&self.writer.conversation().system_additions);
                self.compact(&system, &specs, &mut files).await?;
            }
            let mut conversation = self.writer.conversation();
            let thinking_ok = conversation::replay_thinking(&mut conversation.messages, &kept);
            self.resolve_files(&mut conversation.messages, &mut files)
                .await;
            let system = self.system(&conversation.system_additions);
            let request = Request {
                model: &self.agent.model,
                system: Some(system.as_str()),
                max_tokens: self.options.max_tokens,
                tools: &specs,
                messages: &conversation.messages,
                reasoning: Some(Reasoning {
                    effort: self.agent.effort,
                    speed: self.agent.speed,
                    thinking: thinking_ok,
                }),
            };
            self.writer.mark("conversation");
            let Some((start, response)) = self.call(&request, open_span).await? else {
                return Ok(Ended::Done);
            };
            self.writer.mark("responded");

            // The response's events, in one append.
            let mut thinking = Vec::new();
            let mut thinking_blocks = Vec::new();
            let mut uses = Vec::new();
            let mut calls = Vec::new();
            let mut texts = Vec::new();
            let mut thinking_ids = response.thinking_ids.into_iter();
            for block in &response.response.blocks {
                match block {
                    Block::Thinking(raw) => {
                        thinking.push(
                            thinking_ids
                                .next()
                                .unwrap_or_else(|| EventId::generate(Timestamp::now())),
                        );
                        thinking_blocks.extend(raw.clone());
                    }
                    Block::Text(text) => texts.push(ContentBlock::text(text.clone())),
                    Block::ToolUse { .. } | Block::ServerToolUse { .. } => {}
                }
            }
            let message = (!texts.is_empty()).then(|| (response.message_id.clone(), texts));
            for block in response.response.blocks {
                let (name, input, ran) = match block {
                    Block::ToolUse { name, input } => (name, input, None),
                    Block::ServerToolUse {
                        name,
                        input,
                        result,
                    } => (name, input, Some(tools::server_result(result.as_ref()))),
                    Block::Text(_) | Block::Thinking(_) => continue,
                };
                let id = EventId::generate(Timestamp::now());
                if ran.is_none() && self.team.offers(&name) {
                    let pending = if name == team::WORKFLOW {
                        Pending::Workflow
                    } else {
                        Pending::Delegate(name.clone())
                    };
                    let body = turn::delegation_call(name, input.clone());
                    uses.push((id.clone(), body));
                    calls.push((id, pending, input, ran));
                    continue;
                }
                let (body, call) = match self.mcp.resolve(&name) {
                    Some((server, tool)) => {
                        let (body, call) = turn::mcp_call(
                            &self.agent.tools,
                            server.clone(),
                            tool.clone(),
                            input.clone(),
                        );
                        (body, Pending::Mcp(call, server, tool))
                    }
                    None => {
                        let classified =
                            if ran.is_none() && turn::needs_classifier(&self.agent.tools, &name) {
                                let ask = model::classify::classify(
                                    self.http,
                                    self.endpoint,
                                    &self.agent.model,
                                    &name,
                                    &input,
                                );
                                interruptible(&self.interrupted, ask).await?
                            } else {
                                Classified::NotAsked
                            };
                        let (body, call) = turn::call_classified(
                            &self.agent.tools,
                            name,
                            input.clone(),
                            classified,
                        );
                        (body, Pending::Tool(call))
                    }
                };
                uses.push((id.clone(), body));
                calls.push((id, call, input, ran));
            }
            if let Some((first, ..)) = calls.iter().find(|(.., ran)| ran.is_none()) {
                if !thinking_blocks.is_empty() {
                    kept.insert(first.to_string(), thinking_blocks);
                }
            }
            self.writer
                .record(Step::ModelResponse(Response {
                    span: start,
                    thinking,
                    message,
                    calls: uses,
                    usage: response.response.usage,
                }))
                .await?;
            self.writer.report("recorded");
            *open_span = None;

            // The delegations: their children run at once, each call answered once its child
            // is done (a halt settles every child first).
            let delegations: Vec<delegate::Delegation> = calls
                .iter()
                .filter(|(.., ran)| ran.is_none())
                .filter_map(|(id, call, input, _)| match call {
                    Pending::Delegate(tool) => Some(delegate::Delegation {
                        id: id.clone(),
                        tool: tool.clone(),
                        input: input.clone(),
                    }),
                    _ => None,
                })
                .collect();
            if !delegations.is_empty() {
                self.delegate_all(&delegations, None, true).await?;
            }
            // The other calls, in order.
            let mut waiting = Vec::new();
            for (id, call, input, ran) in calls {
                if let Some(output) = ran {
                    // The provider ran it (server-side web search): record what it found.
                    self.writer
                        .record(Step::ToolContent {
                            tool_use_id: id,
                            content: output.content,
                            is_error: output.is_error,
                        })
                        .await?;
                    continue;
                }
                match call {
                    Pending::Delegate(_) => {}
                    Pending::Workflow => self.workflow(id, &input).await?,
                    Pending::Tool(Call::Run(_)) if self.tools_on_worker => waiting.push(id),
                    Pending::Tool(Call::Run(tool)) => self.run_tool(&id, tool, &input).await?,
                    Pending::Tool(Call::Refuse(why)) => {
                        self.writer.record(tool_result(id, why, true)).await?
                    }
                    Pending::Mcp(McpCall::Run, server, tool) => {
                        self.run_mcp(id, &server, &tool, &input).await?
                    }
                    Pending::Mcp(McpCall::Refuse(why), ..) => {
                        let step = Step::McpToolResult {
                            mcp_tool_use_id: id,
                            content: vec![ContentBlock::text(why)],
                            is_error: true,
                        };
                        self.writer.record(step).await?
                    }
                    Pending::Tool(Call::Wait) | Pending::Mcp(McpCall::Wait, ..) => waiting.push(id),
                }
            }
            if !waiting.is_empty() {
                return Ok(Ended::Idle(
                    StopReason::RequiresAction { event_ids: waiting },
                    None,
                ));
            }
            match response.response.stop {
                Stop::ToolUse | Stop::PauseTurn => {}
                Stop::EndTurn => return Ok(Ended::Idle(StopReason::EndTurn, None)),
                Stop::Refusal(explanation) => {
                    return Ok(Ended::Idle(
                        StopReason::Refusal,
                        Some(StopDetails::Refusal {
                            category: None,
                            explanation,
                        }),
                    ))
                }
            }
        }
    }

    /// Resolves the `file`-sourced blocks of `messages` to their bytes ([`file_sources`]).
    async fn resolve_files(
        &self,
        messages: &mut [Arc<model::Message>],
        files: &mut file_sources::Resolved,
    ) {
        if let Some(created) = &self.writer.state().config {
            file_sources::resolve(
                self.writer.store(),
                self.options.blobs.as_deref(),
                &created.workspace,
                messages,
                files,
            )
            .await;
        }
    }

    /// The agent's system prompt with the `system.message` texts added after it.
    fn system(&self, additions: &[String]) -> String {
        let mut system = self.agent.system.clone().unwrap_or_default();
        for addition in additions {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str(addition);
        }
        system
    }

    /// Grades the outcome the agent works on, if any ([`grading::grade`]).
    async fn grade(&mut self) -> Result<turn::Next, Halt> {
        let grader = grading::Grader {
            http: self.http,
            endpoint: self.endpoint,
            model: &self.agent.model,
            blobs: self.options.blobs.as_deref(),
            interrupted: &self.interrupted,
        };
        grading::grade(self.writer, grader).await
    }

    /// Runs confirmed calls and answers denied ones; returns the confirmed built-in calls left
    /// open for a self-hosted environment's worker.
    async fn settle(&mut self, confirmations: Vec<EventId>) -> Result<Vec<EventId>, Halt> {
        let mut for_worker = Vec::new();
        for confirmation in confirmations {
            match turn::confirmed(self.writer.records(), &confirmation) {
                Some(Confirmed::Run { tool_use_id, .. }) if self.tools_on_worker => {
                    for_worker.push(tool_use_id)
                }
                Some(Confirmed::Run {
                    tool_use_id,
                    tool,
                    input,
                }) => self.run_tool(&tool_use_id, tool, &input).await?,
                Some(Confirmed::RunMcp {
                    mcp_tool_use_id,
                    server,
                    name,
                    input,
                }) => {
                    self.run_mcp(mcp_tool_use_id, &server, &name, &input)
                        .await?
                }
                Some(Confirmed::Answer(step)) => self.writer.record(step).await?,
                None => {}
            }
        }
        Ok(for_worker)
    }

    async fn run_tool(
        &mut self,
        id: &EventId,
        tool: BuiltinTool,
        input: &Map<String, Value>,
    ) -> Result<(), Halt> {
        let span = self.tool_span(id, tool.as_str(), input);
        if tool != BuiltinTool::Bash {
            // Every other tool starts its own sandbox process (bash says cold or warm).
            span.record("sandbox.start", "command");
        }
        let started = Instant::now();
        let output = self
            .execute_tool(tool, input)
            .instrument(span.clone())
            .await;
        let output = self.tool_ended(&span, tool.as_str(), started, output, |output| {
            (
                output.is_error,
                telemetry_content::tool_output(&output.content),
            )
        })?;
        self.writer
            .record(Step::ToolContent {
                tool_use_id: id.clone(),
                content: output.content,
                is_error: output.is_error,
            })
            .await
    }

    /// A tool execution's span (`execute_tool {tool}`, see [`crate::telemetry`]).
    fn tool_span(&self, id: &EventId, tool: &str, input: &Map<String, Value>) -> tracing::Span {
        use tracing::field::Empty;
        let span = tracing::info_span!(
            "execute_tool",
            otel.name = %format_args!("execute_tool {tool}"),
            session.id = %self.writer.id(),
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = tool,
            gen_ai.tool.call.id = %id,
            tool.is_error = Empty,
            tool.duration_ms = Empty,
            process.exit.code = Empty,
            sandbox.start = Empty,
            error.type = Empty,
            gen_ai.tool.call.arguments = Empty,
            gen_ai.tool.call.result = Empty,
        );
        if self.options.trace_content {
            let arguments = Value::Object(input.clone()).to_string();
            span.record("gen_ai.tool.call.arguments", arguments.as_str());
        }
        span
    }

    /// Records how a tool execution ended (`outcome`: its output, or the interrupt that cut it
    /// short; `read` gives whether the output is an error, and its text) on its span and in the
    /// counters (`tool` is the metrics label: a built-in tool's name or `mcp`).
    fn tool_ended<T>(
        &self,
        span: &tracing::Span,
        tool: &'static str,
        started: Instant,
        outcome: Result<T, Halt>,
        read: impl FnOnce(&T) -> (bool, String),
    ) -> Result<T, Halt> {
        use crate::telemetry::ToolOutcome;
        let elapsed = started.elapsed();
        span.record("tool.duration_ms", elapsed.as_secs_f64() * 1000.0);
        let counted = match &outcome {
            Ok(output) => {
                let (is_error, text) = read(output);
                span.record("tool.is_error", is_error);
                if self.options.trace_content {
                    span.record("gen_ai.tool.call.result", text.as_str());
                }
                if is_error {
                    ToolOutcome::Error
                } else {
                    ToolOutcome::Ok
                }
            }
            Err(_) => {
                span.record("error.type", "interrupted");
                ToolOutcome::Interrupted
            }
        };
        crate::telemetry::metrics().tool_executed(tool, counted, elapsed);
        outcome
    }

    /// Runs built-in `tool` in the session's sandbox (unless interrupted).
    async fn execute_tool(
        &mut self,
        tool: BuiltinTool,
        input: &Map<String, Value>,
    ) -> Result<tools::ToolOutput, Halt> {
        let session = self.writer.id().clone();
        let cx = tools::ShellContext {
            shells: self.shells,
            session: &session,
            sandbox: self.sandbox,
            workspace: self.workspace,
            network: self.network.clone(),
        };
        interruptible(
            &self.interrupted,
            tools::run(
                &cx,
                &self.options.tools,
                tool,
                input,
                &builtin_domains(&self.agent.tools, tool),
            ),
        )
        .await
    }

    /// Calls MCP tool `tool` of `server` and records its `agent.mcp_tool_result`.
    async fn run_mcp(
        &mut self,
        id: EventId,
        server: &str,
        tool: &str,
        input: &Map<String, Value>,
    ) -> Result<(), Halt> {
        let span = self.tool_span(&id, tool, input);
        span.record("sandbox.start", "none");
        let started = Instant::now();
        let called = interruptible(&self.interrupted, self.mcp.call(server, tool, input))
            .instrument(span.clone())
            .await;
        let (content, is_error) = self.tool_ended(&span, "mcp", started, called, |called| {
            (called.1, telemetry_content::tool_output(&called.0))
        })?;
        self.writer
            .record(Step::McpToolResult {
                mcp_tool_use_id: id,
                content,
                is_error,
            })
            .await
    }

    /// One model request with its retries, in its span (`chat {model}`, see
    /// [`crate::telemetry`]) and counted. `None`: it failed for good (the error and the idle
    /// are written).
    async fn call(
        &mut self,
        request: &Request<'_>,
        open_span: &mut Option<EventId>,
    ) -> Result<Option<(EventId, Streamed)>, Halt> {
        use crate::telemetry::{metrics, ModelOutcome};
        use tracing::field::Empty;
        let span = tracing::info_span!(
            "chat",
            otel.name = %format_args!("chat {}", request.model),
            otel.kind = "client",
            session.id = %self.writer.id(),
            gen_ai.operation.name = "chat",
            gen_ai.system = telemetry_content::system(self.endpoint.provider),
            gen_ai.request.model = request.model,
            gen_ai.request.max_tokens = i64::from(request.max_tokens),
            gen_ai.request.retry_attempts = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            gen_ai.usage.cache_read_input_tokens = Empty,
            gen_ai.response.finish_reasons = Empty,
            error.type = Empty,
            gen_ai.input.messages = Empty,
            gen_ai.output.messages = Empty,
        );
        if self.options.trace_content {
            span.record(
                "gen_ai.input.messages",
                telemetry_content::messages(request.messages).as_str(),
            );
        }
        let started = Instant::now();
        let mut retries = 0;
        let result = self
            .attempts(request, open_span, &mut retries)
            .instrument(span.clone())
            .await;
        span.record("gen_ai.request.retry_attempts", i64::from(retries));
        let (outcome, usage) = match &result {
            Ok(Some((_, streamed))) => {
                let response = &streamed.response;
                let usage = &response.usage;
                // OTLP integers are signed: tracing-opentelemetry exports a `u64` as a string.
                span.record(
                    "gen_ai.usage.input_tokens",
                    crate::telemetry::signed(usage.input_tokens),
                );
                span.record(
                    "gen_ai.usage.output_tokens",
                    crate::telemetry::signed(usage.output_tokens),
                );
                span.record(
                    "gen_ai.usage.cache_read_input_tokens",
                    crate::telemetry::signed(usage.cache_read_input_tokens),
                );
                span.record(
                    "gen_ai.response.finish_reasons",
                    telemetry_content::finish_reason(&response.stop),
                );
                if self.options.trace_content {
                    span.record(
                        "gen_ai.output.messages",
                        telemetry_content::response(&response.blocks).as_str(),
                    );
                }
                (ModelOutcome::Ok, Some(usage))
            }
            Ok(None) => (ModelOutcome::Failed, None),
            Err(_) => {
                span.record("error.type", "interrupted");
                (ModelOutcome::Interrupted, None)
            }
        };
        metrics().model_request(request.model, outcome, retries, usage, started.elapsed());
        result
    }

    /// The attempts of one model request; `retries` counts the retried ones.
    async fn attempts(
        &mut self,
        request: &Request<'_>,
        open_span: &mut Option<EventId>,
        retries: &mut u32,
    ) -> Result<Option<(EventId, Streamed)>, Halt> {
        let backoff = self.options.backoff;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            *retries = attempt;
            let start = EventId::generate(Timestamp::now());
            // The request is sent while its span's start is appended (the append does not
            // wait for the model, nor the model for the fsync); its answer is read only once
            // the span is in the log, so every preview and record follows it. A request the
            // append refuses (an interrupt, a lost lease) is dropped with its connection.
            let deadline = tokio::time::Instant::now() + self.options.request_timeout;
            let opening =
                tokio::time::timeout_at(deadline, model::open(self.http, self.endpoint, request));
            let (recorded, opened) = tokio::join!(
                self.writer.record(Step::ModelRequestStart(start.clone())),
                interruptible(&self.interrupted, opening),
            );
            recorded?;
            self.writer.mark("span_started");
            *open_span = Some(start.clone());
            let result = match opened? {
                Ok(Ok(opened)) => {
                    interruptible(&self.interrupted, self.stream(opened, deadline)).await?
                }
                Ok(Err(failure)) => Err(failure),
                Err(_) => Err(self.timed_out()),
            };
            let failure = match result {
                Ok(streamed) => return Ok(Some((start, streamed))),
                Err(failure) => failure,
            };
            *open_span = None;
            let delay = failure
                .retry_after
                .unwrap_or_else(|| backoff.delay(attempt));
            let in_budget = started.elapsed() + delay <= backoff.max_total;
            if failure.retryable && attempt < backoff.max_retries && in_budget {
                attempt += 1;
                tracing::info!(session = %self.writer.id(), attempt, ?delay, error = %failure.message, "retrying model request");
                self.writer
                    .record(Step::Reschedule {
                        span: start,
                        kind: failure.kind,
                        message: failure.message,
                    })
                    .await?;
                interruptible(&self.interrupted, tokio::time::sleep(delay)).await?;
                self.writer.record(Step::Resume).await?;
                continue;
            }
            let (status, reason) = if failure.retryable {
                (RetryStatus::Exhausted, StopReason::RetriesExhausted)
            } else {
                (RetryStatus::Terminal, StopReason::EndTurn)
            };
            tracing::warn!(session = %self.writer.id(), error = %failure.message, ?status, "model request failed");
            tracing::Span::current().record(
                "error.type",
                telemetry_content::error_type(&failure.kind).as_str(),
            );
            let error = SessionError {
                kind: failure.kind,
                message: failure.message,
                retry_status: status,
            };
            let end = End {
                stop_reason: reason,
                stop_details: None,
                why: "The tool call did not run: the model request failed.".into(),
            };
            self.writer
                .finish(vec![Step::SpanFailed(start), Step::Error(error)], end)
                .await?;
            return Ok(None);
        }
    }

    /// The failure of a model request that took longer than the request timeout (retried).
    fn timed_out(&self) -> model::Error {
        model::Error {
            kind: ErrorKind::ModelRequestFailedError,
            retryable: true,
            retry_after: None,
            message: format!(
                "the model request timed out after {:?}",
                self.options.request_timeout
            ),
        }
    }

    /// Reads an opened response by `deadline`, publishing previews.
    async fn stream(
        &self,
        opened: model::Opened,
        deadline: tokio::time::Instant,
    ) -> Result<Streamed, model::Error> {
        let session = self.writer.id().clone();
        let message_id = EventId::generate(Timestamp::now());
        let mut thinking_ids = Vec::new();
        let mut started = false;
        let previews = self.previews;
        // The model streams while nothing is written: every preview follows the same record.
        let after = self.writer.version();
        let mut progress = |p: Progress| match p {
            Progress::Thinking => {
                let id = EventId::generate(Timestamp::now());
                previews.publish(
                    &session,
                    after,
                    Preview::Start {
                        event: Previewed::AgentThinking { id: id.clone() },
                    },
                );
                thinking_ids.push(id);
            }
            Progress::Text { index, text } => {
                if !started {
                    started = true;
                    previews.publish(
                        &session,
                        after,
                        Preview::Start {
                            event: Previewed::AgentMessage {
                                id: message_id.clone(),
                            },
                        },
                    );
                }
                if !text.is_empty() {
                    previews.publish(
                        &session,
                        after,
                        Preview::Delta {
                            event_id: message_id.clone(),
                            delta: managed_agents_core::event::Delta::ContentDelta {
                                index: Some(index),
                                content: TextBlock::new(text),
                            },
                        },
                    );
                }
            }
        };
        let response =
            tokio::time::timeout_at(deadline, model::read(opened, self.endpoint, &mut progress))
                .await
                .unwrap_or_else(|_| Err(self.timed_out()))?;
        Ok(Streamed {
            response,
            message_id: message_id.clone(),
            thinking_ids,
        })
    }
}

/// A streamed response and the ids its previews announced.
pub(crate) struct Streamed {
    response: model::Response,
    message_id: EventId,
    thinking_ids: Vec<EventId>,
}
