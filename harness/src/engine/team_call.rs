//! A coordinator's team tool call made by an agent CLI (`claude`, `codex`): run through the very
//! delegation the resident engines use ([`super::delegate`], [`super::workflow`]), so the
//! child threads, their events on the session's stream and every record are the same.
//!
//! The agent CLI runs the coordinator's loop, and its call of a team tool reaches the harness
//! (Claude Code: a `tools/call` of the team's MCP server, [`super::claude::team`]; Codex: an
//! `item/tool/call` of one of its thread's dynamic tools) after its `agent.tool_use` is
//! recorded. [`TeamRun::call`] builds the resident [`Turn`] around the CLI
//! turn's writer for the length of the call, runs the delegation (which records the thread
//! events and the call's `agent.tool_result`) and hands back that result for the CLI.
//!
//! Decision: the child threads run with the session's engine, through the runner's `process`
//! like any child ([`super::delegate::Threads`]): a `claude` coordinator's roster members are
//! Claude Code processes of their own (a `codex` one's, Codex app-servers), in the same
//! workspace and sandbox, each with its own conversation (Claude Code's id derived from the
//! child stream's id; Codex's own home, `codex::home`) and gateway key, so a team is one kind
//! of agent and the operator's engine choice holds for every thread. Nothing about a child's run is
//! specific to its coordinator's engine, so no second path exists to keep in step.

use managed_agents_core::event::{Body, ContentBlock};
use managed_agents_core::ids::EventId;
use managed_agents_core::storage::Store;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::delegate::Threads;
use super::team::{Team, WORKFLOW};
use super::{Turn, TurnAgent};
use crate::mcp;
use crate::model::{Endpoint, ToolSpec};
use crate::options::Options;
use crate::previews::Previews;
use crate::sandbox::{Network, Sandbox, Workspace};
use crate::tools::Shells;
use crate::writer::{Halt, Writer};

/// What an agent CLI's turn needs to run its coordinator's team tools: the team and the
/// parts of a resident turn the delegation uses. Held by the CLI's turn of a coordinator
/// (`None` for other agents).
pub(crate) struct TeamRun<'a, S> {
    pub(crate) team: &'a Team,
    pub(crate) threads: &'a dyn Threads,
    pub(crate) http: &'a reqwest::Client,
    pub(crate) options: &'a Options,
    pub(crate) previews: &'a Previews,
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) shells: &'a Shells,
    pub(crate) mcp: &'a mut mcp::Servers<S>,
}

/// The CLI turn a team tool call belongs to.
pub(crate) struct CallSite<'b, S, X> {
    pub(crate) writer: &'b mut Writer<S>,
    pub(crate) sandbox: &'b X,
    pub(crate) agent: &'b TurnAgent,
    pub(crate) network: Network,
    pub(crate) workspace: &'b Workspace,
    pub(crate) interrupted: watch::Receiver<bool>,
}

impl<S: Store> TeamRun<'_, S> {
    /// The team's tools as the model sees them.
    pub(crate) fn specs(&self) -> Vec<ToolSpec> {
        self.team.specs()
    }

    /// The team's tool names (ours).
    pub(crate) fn names(&self) -> Vec<String> {
        self.specs().into_iter().map(|s| s.name).collect()
    }

    /// Runs team tool `tool`'s call `id` (its `agent.tool_use` recorded) with `input` to its
    /// `agent.tool_result`, and returns that result: its blocks and whether it is an error. A
    /// halt (an interrupt, a lost session) stops the CLI's turn as it stops a resident one.
    ///
    /// The delegation's future is boxed, and so are the CLI engines' calls of this one: a
    /// child thread's turn is polled inside its coordinator's, and unboxed these nested
    /// futures made a debug build's worker overflow its stack.
    pub(crate) async fn call<X: Sandbox>(
        &mut self,
        site: CallSite<'_, S, X>,
        id: EventId,
        tool: &str,
        input: &Map<String, Value>,
    ) -> Result<(Vec<ContentBlock>, bool), Halt> {
        let mut turn = Turn {
            writer: site.writer,
            sandbox: site.sandbox,
            http: self.http,
            options: self.options,
            previews: self.previews,
            agent: site.agent,
            endpoint: self.endpoint,
            network: site.network,
            workspace: site.workspace,
            shells: self.shells,
            mcp: &mut *self.mcp,
            tools_on_worker: false,
            interrupted: site.interrupted,
            team: self.team,
            threads: Some(self.threads),
        };
        if !self.team.offers(tool) {
            let why = format!("{tool} is not a tool of this agent's team");
            turn.answer(id.clone(), Err(super::delegate::Failure::Tool(why)))
                .await?;
        } else if tool == WORKFLOW {
            Box::pin(turn.workflow(id.clone(), input)).await?;
        } else {
            let call = super::delegate::Delegation {
                id: id.clone(),
                tool: tool.to_owned(),
                input: input.clone(),
            };
            Box::pin(turn.delegate_all(&[call], None, true)).await?;
        }
        Ok(result_of(turn.writer.records(), &id).unwrap_or_else(|| {
            let text = "the delegation recorded no result";
            (vec![ContentBlock::text(text)], true)
        }))
    }
}

/// The `agent.tool_result` of call `id` in `records` (the latest): its blocks and whether it is
/// an error.
fn result_of(
    records: &[managed_agents_core::session::SessionRecord],
    id: &EventId,
) -> Option<(Vec<ContentBlock>, bool)> {
    records
        .iter()
        .rev()
        .filter_map(|r| r.event())
        .find_map(|e| match &e.body {
            Body::AgentToolResult(r) if &r.tool_use_id == id => Some((
                r.content.clone().unwrap_or_default(),
                r.is_error == Some(true),
            )),
            _ => None,
        })
}
