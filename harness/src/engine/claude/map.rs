//! Claude Code's stream in our terms: its tool names as our toolset's, its content blocks as
//! [`turn::Step`]s, its permission prompts as decisions under the agent's permission policies,
//! its `result` as the turn's [`End`]. Pure: ids come from the caller, records from
//! `core::session::turn` (this module only builds steps).
//!
//! A call Claude Code makes is recorded through [`turn::call`] under our tool name (or
//! [`turn::mcp_call`] for a tool of one of the agent's MCP servers, named
//! `mcp__<server>__<tool>` by Claude Code), so the `agent.tool_use` / `agent.mcp_tool_use`
//! carries the evaluated permission and the call's fate (run, wait for a confirmation, refuse)
//! is remembered by Claude Code's id until its permission prompt and its result arrive.

use std::collections::HashMap;

use managed_agents_core::agent::tools::Tool;
use managed_agents_core::agent::{BuiltinTool, McpServer};
use managed_agents_core::event::{
    Body, ContentBlock, ErrorKind, RetryStatus, SessionError, StopDetails, StopReason,
};
use managed_agents_core::ids::EventId;
use managed_agents_core::session::turn::{self, Call, Classified, End, McpCall, Output, Step};

use super::custom;
use super::stream::{Block, Finish, ToolResult};

/// Claude Code's name of a built-in tool of our toolset.
pub(crate) fn claude_name(tool: BuiltinTool) -> &'static str {
    match tool {
        BuiltinTool::Bash => "Bash",
        BuiltinTool::Edit => "Edit",
        BuiltinTool::Read => "Read",
        BuiltinTool::Write => "Write",
        BuiltinTool::Glob => "Glob",
        BuiltinTool::Grep => "Grep",
        BuiltinTool::WebFetch => "WebFetch",
        BuiltinTool::WebSearch => "WebSearch",
    }
}

/// Our name of a tool Claude Code called: the toolset's name for its built-in counterparts, the
/// custom tool's name for the harness's MCP tools, the name itself for anything else.
pub(crate) fn our_name(claude: &str) -> String {
    if let Some(custom) = custom::custom_name(claude) {
        return custom.to_owned();
    }
    BuiltinTool::ALL
        .into_iter()
        .find(|t| claude_name(*t) == claude)
        .map_or_else(|| claude.to_owned(), |t| t.as_str().to_owned())
}

/// How to answer a permission prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Permission {
    /// Run it (`always_allow`).
    Allow,
    /// Refuse it with this message (a disabled or unknown tool).
    Deny(String),
    /// Ask the user: the session waits on this `agent.tool_use` (`always_ask`).
    Ask(EventId),
}

/// What a recorded call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `agent.tool_use`.
    Builtin,
    /// `agent.custom_tool_use`.
    Custom,
    /// `agent.mcp_tool_use`.
    Mcp,
    /// An `agent.tool_use` of a coordinator's team tool, answered by the delegation itself.
    Team,
}

/// What happens to a recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fate {
    Run,
    Wait,
    Refuse(String),
}

/// A call Claude Code made, as recorded.
#[derive(Debug, Clone)]
struct Tracked {
    id: EventId,
    fate: Fate,
    kind: Kind,
}

/// The calls of a conversation, keyed by Claude Code's ids.
#[derive(Debug, Default)]
pub(crate) struct Mapper {
    calls: HashMap<String, Tracked>,
    /// The agent's MCP servers (their tools' calls are MCP calls).
    servers: Vec<McpServer>,
    /// The coordinator's team tools (our names), served by [`super::team`].
    team: Vec<String>,
}

impl Mapper {
    /// A mapper for an agent with MCP servers `servers`.
    pub(crate) fn new(servers: Vec<McpServer>) -> Self {
        Self {
            calls: HashMap::new(),
            servers,
            team: Vec::new(),
        }
    }

    /// This mapper for a coordinator whose team tools are `team` (our names).
    pub(crate) fn with_team(mut self, team: Vec<String>) -> Self {
        self.team = team;
        self
    }

    /// The step recording an `assistant` line's blocks (`None` when it has none we show).
    /// `verdicts` are the `auto` policy's classifier answers by Claude Code's tool-use id.
    pub(crate) fn assistant(
        &mut self,
        tools: &[Tool],
        blocks: Vec<Block>,
        verdicts: &HashMap<String, Classified>,
        new_id: &mut impl FnMut() -> EventId,
    ) -> Option<Step> {
        let mut output = Output::default();
        let mut texts = Vec::new();
        for block in blocks {
            match block {
                Block::Text(text) => texts.push(ContentBlock::text(text)),
                Block::Thinking => output.thinking.push(new_id()),
                Block::ToolUse { id, name, input } => {
                    let event = new_id();
                    let team_tool = super::team::team_name(&name)
                        .filter(|tool| self.team.iter().any(|t| t == tool));
                    let (body, fate, kind) = if let Some(tool) = team_tool {
                        let body = turn::delegation_call(tool.to_owned(), input);
                        (body, Fate::Run, Kind::Team)
                    } else {
                        match crate::mcp::cli::claude_call(&self.servers, &name) {
                            Some((server, tool)) => {
                                let (body, call) = turn::mcp_call(tools, server, tool, input);
                                let fate = match call {
                                    McpCall::Run => Fate::Run,
                                    McpCall::Wait => Fate::Wait,
                                    McpCall::Refuse(why) => Fate::Refuse(why),
                                };
                                (body, fate, Kind::Mcp)
                            }
                            None => {
                                let classified =
                                    verdicts.get(&id).cloned().unwrap_or(Classified::NotAsked);
                                let (body, call) = turn::call_classified(
                                    tools,
                                    our_name(&name),
                                    input,
                                    classified,
                                );
                                let kind = match body {
                                    Body::AgentToolUse(_) => Kind::Builtin,
                                    _ => Kind::Custom,
                                };
                                let fate = match call {
                                    Call::Run(_) => Fate::Run,
                                    Call::Wait => Fate::Wait,
                                    Call::Refuse(why) => Fate::Refuse(why),
                                };
                                (body, fate, kind)
                            }
                        }
                    };
                    self.calls.insert(
                        id,
                        Tracked {
                            id: event.clone(),
                            fate,
                            kind,
                        },
                    );
                    output.calls.push((event, body));
                }
            }
        }
        if !texts.is_empty() {
            output.message = Some((new_id(), texts));
        }
        (output != Output::default()).then_some(Step::Output(output))
    }

    /// The steps recording a `user` line's tool results: one `agent.tool_result` per result
    /// of a built-in call this mapper recorded, one `agent.mcp_tool_result` per MCP call's (a
    /// custom tool's result is the client's own `user.custom_tool_result`).
    pub(crate) fn tool_results(&mut self, results: Vec<ToolResult>) -> Vec<Step> {
        results
            .into_iter()
            .filter_map(|result| {
                let tracked = self.calls.remove(&result.tool_use_id)?;
                match tracked.kind {
                    Kind::Builtin => Some(Step::ToolResult {
                        tool_use_id: tracked.id,
                        text: result.text,
                        is_error: result.is_error,
                    }),
                    Kind::Mcp => Some(Step::McpToolResult {
                        mcp_tool_use_id: tracked.id,
                        content: vec![ContentBlock::text(result.text)],
                        is_error: result.is_error,
                    }),
                    Kind::Custom | Kind::Team => None,
                }
            })
            .collect()
    }

    /// Our `agent.custom_tool_use` id of Claude Code's call `tool_use_id`, if it is a custom
    /// tool's call this mapper recorded.
    pub(crate) fn custom_call(&self, tool_use_id: &str) -> Option<&EventId> {
        self.calls
            .get(tool_use_id)
            .filter(|t| t.kind == Kind::Custom && t.fate == Fate::Wait)
            .map(|t| &t.id)
    }

    /// Our `agent.tool_use` id of Claude Code's call `tool_use_id`, if it is a
    /// team tool's call this mapper recorded.
    pub(crate) fn team_call(&self, tool_use_id: &str) -> Option<&EventId> {
        self.calls
            .get(tool_use_id)
            .filter(|t| t.kind == Kind::Team)
            .map(|t| &t.id)
    }

    /// How to answer Claude Code's permission prompt for its call `tool_use_id`.
    pub(crate) fn permission(&self, tool_use_id: Option<&str>, tool_name: &str) -> Permission {
        match tool_use_id.and_then(|id| self.calls.get(id)) {
            Some(Tracked {
                fate: Fate::Run, ..
            }) => Permission::Allow,
            // A custom tool's call goes on to the harness's server, which waits for the client.
            Some(Tracked {
                fate: Fate::Wait,
                kind: Kind::Custom,
                ..
            }) => Permission::Allow,
            Some(Tracked {
                fate: Fate::Wait,
                id,
                ..
            }) => Permission::Ask(id.clone()),
            Some(Tracked {
                fate: Fate::Refuse(why),
                ..
            }) => Permission::Deny(why.clone()),
            _ => Permission::Deny(format!(
                "{} is not a call this agent may make",
                our_name(tool_name)
            )),
        }
    }
}

/// What ends the turn when Claude Code reports its `result`: the steps to record first (a
/// terminal `session.error` when it failed) and the idle.
pub(crate) fn finish(result: &Finish) -> (Vec<Step>, End) {
    let why = "The tool call did not finish before Claude Code ended its turn.";
    if result.is_error || result.subtype != "success" {
        let detail = result
            .result
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or(&result.subtype);
        let error = SessionError {
            kind: ErrorKind::ModelRequestFailedError,
            message: format!("Claude Code ended its turn with an error: {detail}"),
            retry_status: RetryStatus::Terminal,
        };
        return (vec![Step::Error(error)], End::end_turn(why));
    }
    if result.stop_reason.as_deref() == Some("refusal") {
        let end = End {
            stop_reason: StopReason::Refusal,
            stop_details: Some(StopDetails::Refusal {
                category: None,
                explanation: result.result.clone().filter(|r| !r.is_empty()),
            }),
            why: why.into(),
        };
        return (Vec::new(), end);
    }
    (Vec::new(), End::end_turn(why))
}

#[cfg(test)]
mod tests {
    use super::super::stream::Line;
    use super::*;
    use managed_agents_core::event::{Evaluation, Permission as Evaluated};
    use managed_agents_core::time::Timestamp;
    use serde_json::json;

    fn toolset(policy: &str, disabled: &[&str]) -> Vec<Tool> {
        let configs: Vec<_> = disabled
            .iter()
            .map(|name| json!({"name": name, "enabled": false}))
            .collect();
        let params = serde_json::from_value(json!([{
            "type": "agent_toolset_20260401",
            "default_config": {"enabled": true, "permission_policy": {"type": policy}},
            "configs": configs,
        }]))
        .expect("toolset params");
        managed_agents_core::agent::tools::resolve("tools", params).expect("a toolset")
    }

    fn ids() -> impl FnMut() -> EventId {
        let mut n = 0;
        move || {
            n += 1;
            EventId::generate(Timestamp::from_millis(1_700_000_000_000 + n))
        }
    }

    /// Maps a recorded stdout: every step, and the permission answers.
    fn replay(tools: &[Tool], fixture: &str) -> (Vec<Step>, Vec<Permission>, Option<End>) {
        let mut mapper = Mapper::default();
        let mut new_id = ids();
        let (mut steps, mut answers, mut end) = (Vec::new(), Vec::new(), None);
        for line in fixture.lines() {
            match Line::parse(line).expect("JSON") {
                Line::Assistant(blocks) => {
                    steps.extend(mapper.assistant(tools, blocks, &HashMap::new(), &mut new_id))
                }
                Line::ToolResults(results) => steps.extend(mapper.tool_results(results)),
                Line::Permission {
                    tool_use_id,
                    tool_name,
                    ..
                } => answers.push(mapper.permission(tool_use_id.as_deref(), &tool_name)),
                Line::Result(result) => {
                    let (more, e) = finish(&result);
                    steps.extend(more);
                    end = Some(e);
                }
                _ => {}
            }
        }
        (steps, answers, end)
    }

    #[test]
    fn names() {
        assert_eq!(our_name("Bash"), "bash");
        assert_eq!(our_name("WebFetch"), "web_fetch");
        assert_eq!(our_name("mcp__x__y"), "mcp__x__y");
        assert_eq!(our_name("mcp__custom__get_weather"), "get_weather");
        for tool in BuiltinTool::ALL {
            assert_eq!(our_name(claude_name(tool)), tool.as_str());
        }
    }

    #[test]
    fn text_and_thinking_become_agent_events_and_the_turn_ends() {
        let (steps, answers, end) = replay(
            &toolset("always_allow", &[]),
            include_str!("testdata/text.jsonl"),
        );
        assert!(answers.is_empty());
        let [Step::Output(thinking), Step::Output(text)] = steps.as_slice() else {
            panic!("{steps:?}")
        };
        assert_eq!((thinking.thinking.len(), &thinking.message), (1, &None));
        let (_, blocks) = text.message.as_ref().expect("a message");
        assert_eq!(blocks, &vec![ContentBlock::text("hello there")]);
        assert_eq!(end, Some(End::end_turn(end.clone().expect("an end").why)));
    }

    #[test]
    fn an_allowed_bash_call_is_our_bash_with_its_result() {
        let (steps, answers, _) = replay(
            &toolset("always_allow", &[]),
            include_str!("testdata/bash-allow.jsonl"),
        );
        assert_eq!(answers, vec![Permission::Allow]);
        let Step::Output(output) = &steps[0] else {
            panic!("{steps:?}")
        };
        let (call_id, Body::AgentToolUse(call)) = &output.calls[0] else {
            panic!("{output:?}")
        };
        assert_eq!(call.name, "bash");
        assert_eq!(call.evaluated_permission, Some(Evaluated::Allow));
        assert_eq!(
            steps[1],
            Step::ToolResult {
                tool_use_id: call_id.clone(),
                text: "hi".into(),
                is_error: false
            }
        );
    }

    #[test]
    fn always_ask_waits_on_the_call_and_a_denial_is_its_error_result() {
        let (steps, answers, _) = replay(
            &toolset("always_ask", &[]),
            include_str!("testdata/bash-deny.jsonl"),
        );
        let Step::Output(output) = &steps[0] else {
            panic!("{steps:?}")
        };
        let (call_id, Body::AgentToolUse(call)) = &output.calls[0] else {
            panic!("{output:?}")
        };
        assert_eq!(call.evaluation, Some(Evaluation::AlwaysAsk));
        assert_eq!(answers, vec![Permission::Ask(call_id.clone())]);
        assert_eq!(
            steps[1],
            Step::ToolResult {
                tool_use_id: call_id.clone(),
                text: "no thanks".into(),
                is_error: true
            }
        );
    }

    #[test]
    fn a_disabled_tool_is_denied() {
        let (_, answers, _) = replay(
            &toolset("always_allow", &["bash"]),
            include_str!("testdata/bash-allow.jsonl"),
        );
        assert!(
            matches!(answers.as_slice(), [Permission::Deny(_)]),
            "{answers:?}"
        );
        let mapper = Mapper::default();
        assert!(matches!(
            mapper.permission(Some("toolu_unknown"), "Bash"),
            Permission::Deny(_)
        ));
    }

    #[test]
    fn a_team_tool_call_is_the_delegations_call_answered_by_the_harness() {
        let mut mapper = Mapper::default().with_team(vec!["message_agent".into()]);
        let mut input = serde_json::Map::new();
        input.insert("agent".into(), json!("reviewer"));
        let blocks = vec![
            Block::ToolUse {
                id: "toolu_team".into(),
                name: "mcp__team__message_agent".into(),
                input: input.clone(),
            },
            Block::ToolUse {
                id: "toolu_other".into(),
                name: "mcp__team__ask_advisor".into(),
                input: serde_json::Map::new(),
            },
        ];
        let step = mapper.assistant(
            &toolset("always_ask", &[]),
            blocks,
            &HashMap::new(),
            &mut ids(),
        );
        let Some(Step::Output(output)) = step else {
            panic!("{step:?}")
        };
        let (event, body) = &output.calls[0];
        assert_eq!(body, &turn::delegation_call("message_agent".into(), input));
        assert_eq!(mapper.team_call("toolu_team"), Some(event));
        assert_eq!(
            mapper.permission(Some("toolu_team"), "mcp__team__message_agent"),
            Permission::Allow
        );
        // A tool the team does not have is no team call.
        assert_eq!(mapper.team_call("toolu_other"), None);
        // The delegation records the result: Claude Code's own result line adds none.
        let results = mapper.tool_results(vec![ToolResult {
            tool_use_id: "toolu_team".into(),
            text: "looks good".into(),
            is_error: false,
        }]);
        assert!(results.is_empty(), "{results:?}");
    }

    #[test]
    fn failures_and_refusals() {
        let failed = Finish {
            subtype: "error_during_execution".into(),
            is_error: true,
            stop_reason: None,
            result: None,
            queued: 0,
        };
        let (steps, end) = finish(&failed);
        assert!(
            matches!(steps.as_slice(), [Step::Error(e)] if e.message.contains("error_during_execution"))
        );
        assert_eq!(end.stop_reason, StopReason::EndTurn);
        let refused = Finish {
            subtype: "success".into(),
            is_error: false,
            stop_reason: Some("refusal".into()),
            result: Some("no".into()),
            queued: 0,
        };
        assert_eq!(finish(&refused).1.stop_reason, StopReason::Refusal);
    }
}
