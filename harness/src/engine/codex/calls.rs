//! The tool calls of a Codex turn: which Codex item is which `agent.tool_use`, and what is
//! answered how. Pure bookkeeping (no IO), kept with the app-server while it waits for the
//! client so a confirmation in a later runner turn finds the request it answers.
//!
//! A call Codex starts is decided by the agent's permission policy ([`turn::call`]) when it is
//! a command or a file change (`governed`):
//! - `Run`: its `agent.tool_use` is recorded at once; an approval request for it is accepted;
//! - `Wait` (`always_ask`): recorded when Codex asks for approval, and the session waits for a
//!   `user.tool_confirmation` while Codex waits for our answer;
//! - `Refuse` (a disabled tool): recorded at once with `deny`; its approval request is
//!   declined and its result carries the refusal.
//!
//! A call of a tool of one of the agent's MCP servers is an `agent.mcp_tool_use` decided by
//! its toolset ([`turn::mcp_call`]); Codex is only given the tools that run without asking
//! (`crate::mcp::cli::codex_overrides`), so it never waits on one. Other tools (Codex's own
//! web search) run as Codex decides; their calls are recorded as they start. A call that ran without the approval its policy asks for (Codex
//! considered the command safe) is recorded with its result when it ends.

use std::collections::HashMap;

use managed_agents_core::agent::tools::Tool;
use managed_agents_core::event::{Body, Permission, ToolUse};
use managed_agents_core::ids::EventId;
use managed_agents_core::session::turn::{self, Call, McpCall};
use managed_agents_core::time::Timestamp;
use serde_json::Value;

use super::mapping::{ToolCall, ToolOutcome};

/// What to do when Codex starts a call.
#[derive(Debug, PartialEq)]
pub(crate) enum Started {
    /// Record this `agent.tool_use` now.
    Record(EventId, Body),
    /// Record nothing yet (the call waits for its approval request).
    Later,
}

/// What to do with an approval request.
#[derive(Debug, PartialEq)]
pub(crate) enum Asked {
    /// Answer at once: accept (`true`) or decline.
    Answer(bool),
    /// Record this `agent.tool_use` and wait for the client's confirmation.
    Wait(EventId, Body),
}

/// What to record when a call ends: the `agent.tool_result` (`agent.mcp_tool_result` when
/// `mcp`) of `id`, preceded by the call's event when it was never recorded.
#[derive(Debug, PartialEq)]
pub(crate) struct Finished {
    pub(crate) call: Option<(EventId, Body)>,
    pub(crate) id: EventId,
    pub(crate) text: String,
    pub(crate) is_error: bool,
    pub(crate) mcp: bool,
}

#[derive(Debug)]
struct Open {
    id: EventId,
    body: Body,
    recorded: bool,
    decision: Decision,
    /// Whether Codex asked to approve it already (MCP calls are matched to their approval
    /// request by server and tool, the first not yet asked).
    asked: bool,
    /// A coordinator's team tool call (answered by the harness's delegation).
    team: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Decision {
    Allow,
    Ask,
    Refuse(String),
}

/// The calls of the Codex turn in progress.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    /// By Codex item id.
    open: HashMap<String, Open>,
    /// Approval requests waiting for the client, by `agent.tool_use` id: (item, request id,
    /// whether it is an MCP call's elicitation).
    waiting: HashMap<EventId, (String, Value, bool)>,
}

impl Calls {
    /// Codex started `item`.
    pub(crate) fn started(&mut self, tools: &[Tool], item: String, call: ToolCall) -> Started {
        let id = EventId::generate(Timestamp::now());
        let (body, decision) = if let Some(server) = call.server {
            let (body, call) = turn::mcp_call(tools, server, call.name, call.input);
            let decision = match call {
                McpCall::Run => Decision::Allow,
                McpCall::Wait => Decision::Ask,
                McpCall::Refuse(why) => Decision::Refuse(why),
            };
            (body, decision)
        } else if call.governed {
            let (body, call) = turn::call(tools, call.name, call.input);
            let decision = match call {
                Call::Run(_) => Decision::Allow,
                Call::Wait => Decision::Ask,
                Call::Refuse(why) => Decision::Refuse(why),
            };
            (body, decision)
        } else {
            let body = Body::AgentToolUse(ToolUse {
                name: call.name,
                input: call.input,
                evaluated_permission: Some(Permission::Allow),
                evaluation: None,
                session_thread_id: None,
            });
            (body, Decision::Allow)
        };
        let recorded = decision != Decision::Ask;
        let started = if recorded {
            Started::Record(id.clone(), body.clone())
        } else {
            Started::Later
        };
        self.open.insert(
            item,
            Open {
                id,
                body,
                recorded,
                decision,
                asked: false,
                team: false,
            },
        );
        started
    }

    /// Codex started `item`, a call of a coordinator's team tool `name` (one of the thread's
    /// dynamic tools): recorded at once as the delegation's `agent.tool_use`, answered by the
    /// harness when Codex sends its `item/tool/call` ([`Calls::team_call`]).
    pub(crate) fn started_team(
        &mut self,
        item: String,
        name: String,
        input: serde_json::Map<String, Value>,
    ) -> Started {
        let id = EventId::generate(Timestamp::now());
        let body = turn::delegation_call(name, input);
        self.open.insert(
            item,
            Open {
                id: id.clone(),
                body: body.clone(),
                recorded: true,
                decision: Decision::Allow,
                asked: false,
                team: true,
            },
        );
        Started::Record(id, body)
    }

    /// Codex calls the team tool of `item` (`item/tool/call`): its `agent.tool_use` id. The
    /// delegation records the call's result, so the item's end records nothing.
    pub(crate) fn team_call(&mut self, item: &str) -> Option<EventId> {
        if !self.open.get(item)?.team {
            return None;
        }
        self.open.remove(item).map(|open| open.id)
    }

    /// Codex asks (request `request`, an elicitation) before calling tool `tool` of MCP server
    /// `server`: the first such call it started and did not ask about yet.
    pub(crate) fn asked_mcp(&mut self, server: &str, tool: &str, request: Value) -> Asked {
        let item = self
            .open
            .iter()
            .filter(|(_, o)| {
                !o.asked
                    && matches!(&o.body, Body::AgentMcpToolUse(u)
                        if u.mcp_server_name == server && u.name == tool)
            })
            .min_by(|a, b| a.1.id.cmp(&b.1.id))
            .map(|(item, _)| item.clone());
        match item {
            Some(item) => self.ask(&item, request, true),
            None => Asked::Answer(false),
        }
    }

    /// Codex asks (request `request`) before running `item`.
    pub(crate) fn asked(&mut self, item: &str, request: Value) -> Asked {
        self.ask(item, request, false)
    }

    fn ask(&mut self, item: &str, request: Value, elicitation: bool) -> Asked {
        let Some(open) = self.open.get_mut(item) else {
            // An approval for nothing we saw start: nothing tells us what it would run.
            return Asked::Answer(false);
        };
        open.asked = true;
        match open.decision {
            Decision::Allow => Asked::Answer(true),
            Decision::Refuse(_) => Asked::Answer(false),
            Decision::Ask if open.recorded => Asked::Answer(false),
            Decision::Ask => {
                open.recorded = true;
                self.waiting
                    .insert(open.id.clone(), (item.to_owned(), request, elicitation));
                Asked::Wait(open.id.clone(), open.body.clone())
            }
        }
    }

    /// The client answered the call `id`: the approval request to answer and whether it is
    /// an MCP call's elicitation, if Codex still waits for it. A denied call's result is
    /// recorded by the caller, so its end is not.
    pub(crate) fn confirmed(&mut self, id: &EventId, allow: bool) -> Option<(Value, bool)> {
        let (item, request, elicitation) = self.waiting.remove(id)?;
        if allow {
            // Codex may ask again for the same item (one command, several callbacks).
            if let Some(open) = self.open.get_mut(&item) {
                open.decision = Decision::Allow;
            }
        } else {
            self.open.remove(&item);
        }
        Some((request, elicitation))
    }

    /// The calls waiting for the client.
    pub(crate) fn waiting(&self) -> Vec<EventId> {
        let mut ids: Vec<EventId> = self.waiting.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Whether a recorded call that is not waiting for the client has not ended yet.
    pub(crate) fn running(&self) -> bool {
        self.open
            .values()
            .any(|o| o.recorded && !self.waiting.contains_key(&o.id))
    }

    /// Codex ended `item`: what to record, or `None` when its result is already recorded (a
    /// denial) or the call is unknown.
    pub(crate) fn finished(&mut self, item: &str, outcome: ToolOutcome) -> Option<Finished> {
        let open = self.open.remove(item)?;
        self.waiting.remove(&open.id);
        let (text, is_error) = match (outcome, &open.decision) {
            (ToolOutcome::Ran { text, is_error }, _) => (text, is_error),
            (ToolOutcome::Declined, Decision::Refuse(why)) => (why.clone(), true),
            (ToolOutcome::Declined, _) => ("The call was declined; it did not run.".into(), true),
        };
        let mcp = matches!(open.body, Body::AgentMcpToolUse(_));
        Some(Finished {
            call: (!open.recorded).then(|| (open.id.clone(), open.body)),
            id: open.id,
            text,
            is_error,
            mcp,
        })
    }
}

#[cfg(test)]
mod tests {
    use managed_agents_core::agent::tools::Tool;
    use serde_json::{json, Map};

    use super::*;

    fn tools(policy: &str, enabled: bool) -> Vec<Tool> {
        serde_json::from_value(json!([{
            "type": "agent_toolset_20260401",
            "default_config": {"enabled": enabled, "permission_policy": {"type": policy}},
            "configs": [],
        }]))
        .unwrap()
    }

    fn bash(command: &str) -> ToolCall {
        let mut input = Map::new();
        input.insert("command".into(), json!(command));
        ToolCall {
            name: "bash".into(),
            input,
            governed: true,
            server: None,
        }
    }

    fn permission(body: &Body) -> Option<Permission> {
        match body {
            Body::AgentToolUse(u) => u.evaluated_permission,
            _ => None,
        }
    }

    #[test]
    fn allowed_calls_are_recorded_as_they_start_and_approved() {
        let mut calls = Calls::default();
        let tools = tools("always_allow", true);
        let Started::Record(id, body) = calls.started(&tools, "c1".into(), bash("ls")) else {
            panic!()
        };
        assert_eq!(permission(&body), Some(Permission::Allow));
        assert!(calls.running());
        assert_eq!(calls.asked("c1", json!(0)), Asked::Answer(true));
        let ran = ToolOutcome::Ran {
            text: "a\n".into(),
            is_error: false,
        };
        assert_eq!(
            calls.finished("c1", ran),
            Some(Finished {
                call: None,
                id,
                text: "a\n".into(),
                is_error: false,
                mcp: false
            })
        );
        assert!(!calls.running());
    }

    #[test]
    fn asked_calls_wait_for_the_client() {
        let mut calls = Calls::default();
        let tools = tools("always_ask", true);
        assert_eq!(
            calls.started(&tools, "c1".into(), bash("rm -rf x")),
            Started::Later
        );
        assert!(!calls.running());
        let Asked::Wait(id, body) = calls.asked("c1", json!(7)) else {
            panic!()
        };
        assert_eq!(permission(&body), Some(Permission::Ask));
        assert_eq!(calls.waiting(), std::slice::from_ref(&id));
        assert!(
            !calls.running(),
            "a waiting call does not keep the turn busy"
        );
        assert_eq!(calls.confirmed(&id, true), Some((json!(7), false)));
        assert!(calls.waiting().is_empty());
        assert!(calls.running());
        assert_eq!(calls.confirmed(&id, true), None, "answered once");
        assert_eq!(
            calls.asked("c1", json!(8)),
            Asked::Answer(true),
            "allowed from now on"
        );
    }

    #[test]
    fn denied_calls_end_with_the_callers_result() {
        let mut calls = Calls::default();
        let tools = tools("always_ask", true);
        calls.started(&tools, "c1".into(), bash("x"));
        let Asked::Wait(id, _) = calls.asked("c1", json!(1)) else {
            panic!()
        };
        assert_eq!(calls.confirmed(&id, false), Some((json!(1), false)));
        assert_eq!(calls.finished("c1", ToolOutcome::Declined), None);
    }

    #[test]
    fn disabled_tools_are_declined_with_the_refusal() {
        let mut calls = Calls::default();
        let tools = tools("always_allow", false);
        let Started::Record(id, body) = calls.started(&tools, "c1".into(), bash("x")) else {
            panic!()
        };
        assert_eq!(permission(&body), Some(Permission::Deny));
        assert_eq!(calls.asked("c1", json!(2)), Asked::Answer(false));
        let Some(Finished {
            id: got, is_error, ..
        }) = calls.finished("c1", ToolOutcome::Declined)
        else {
            panic!()
        };
        assert_eq!((got, is_error), (id, true));
    }

    #[test]
    fn mcp_calls_are_mcp_events_under_their_toolset() {
        let mut calls = Calls::default();
        let tools: Vec<Tool> = managed_agents_core::agent::tools::resolve(
            "tools",
            serde_json::from_value(json!([{"type": "mcp_toolset", "mcp_server_name": "docs",
                "default_config": {"permission_policy": {"type": "always_allow"}}}]))
            .unwrap(),
        )
        .unwrap();
        let call = ToolCall {
            name: "search".into(),
            input: Map::new(),
            governed: false,
            server: Some("docs".into()),
        };
        let Started::Record(id, Body::AgentMcpToolUse(used)) =
            calls.started(&tools, "m1".into(), call)
        else {
            panic!()
        };
        assert_eq!(
            (used.mcp_server_name.as_str(), used.name.as_str()),
            ("docs", "search")
        );
        assert_eq!(used.evaluated_permission, Some(Permission::Allow));
        let ran = ToolOutcome::Ran {
            text: "found".into(),
            is_error: false,
        };
        let finished = calls.finished("m1", ran).unwrap();
        assert_eq!((finished.id, finished.mcp), (id, true));
    }

    #[test]
    fn a_team_tool_call_is_recorded_at_once_and_answered_by_the_harness() {
        let mut calls = Calls::default();
        let mut input = Map::new();
        input.insert("agent".into(), json!("reviewer"));
        let Started::Record(id, body) =
            calls.started_team("d1".into(), "message_agent".into(), input.clone())
        else {
            panic!()
        };
        assert_eq!(body, turn::delegation_call("message_agent".into(), input));
        assert!(calls.running());
        // A Codex tool's item is no team call.
        calls.started(&tools("always_allow", true), "c1".into(), bash("ls"));
        assert_eq!(calls.team_call("c1"), None);
        assert_eq!(calls.team_call("d1"), Some(id));
        // Its result is the delegation's: the item's end records nothing.
        let ran = ToolOutcome::Ran {
            text: "looks good".into(),
            is_error: false,
        };
        assert_eq!(calls.finished("d1", ran), None);
    }

    #[test]
    fn a_call_that_ran_without_asking_is_recorded_with_its_result() {
        let mut calls = Calls::default();
        let tools = tools("always_ask", true);
        calls.started(&tools, "c1".into(), bash("ls"));
        let ran = ToolOutcome::Ran {
            text: "x".into(),
            is_error: false,
        };
        let Some(Finished { call, .. }) = calls.finished("c1", ran) else {
            panic!()
        };
        assert!(call.is_some());
        assert_eq!(calls.asked("zz", json!(3)), Asked::Answer(false));
    }
}
