//! Tool calls in a turn: how a model's call is recorded and handled under the agent's tools
//! ([`call`]: the permission policy evaluated; [`call_classified`] with the `auto` policy's
//! classifier verdict; [`mcp_call`] for a tool of one of the agent's MCP servers), and what a
//! consumed `user.tool_confirmation` asks of the turn ([`confirmed`], for built-in and MCP
//! calls).
//!
//! The `auto` policy is decided here from the verdict the harness obtained (a separate model
//! request, see `harness/src/engine/classifier.rs`): `allow` runs, `ask` waits for a
//! confirmation, `deny` is refused with the reason; a classifier that could not decide falls
//! back to `always_ask` (recorded as `{type:"auto", evaluated_permission:{type:"ask",
//! reason_code:"classifier_unavailable"}}`). Engines that consult no classifier (the agent CLIs,
//! which decide before asking) pass [`Classified::NotAsked`], which runs the call as before.

use serde_json::{Map, Value};

use super::Step;
use crate::agent::tools::{builtin_setting, custom_tool, mcp_setting, Tool};
use crate::agent::{BuiltinTool, PermissionPolicy};
use crate::event::{
    AutoPermission, Body, Confirmation, ContentBlock, CustomToolUse, Evaluation, McpToolUse,
    Permission, ToolUse,
};
use crate::ids::EventId;
use crate::session::SessionRecord;

/// How the turn handles one tool call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Run the built-in tool now and record its result.
    Run(BuiltinTool),
    /// Wait for the client: `user.tool_confirmation` or `user.custom_tool_result`.
    Wait,
    /// Answer at once with an error result carrying this text.
    Refuse(String),
}

/// What the `auto` policy's classifier said about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// No classifier was consulted (an engine that decides elsewhere): the call runs.
    NotAsked,
    /// The classifier's verdict.
    Verdict(AutoPermission),
    /// The classifier request failed or its answer was unreadable: `always_ask` applies.
    Failed,
}

/// The reason code recorded when the classifier could not decide.
pub const CLASSIFIER_UNAVAILABLE: &str = "classifier_unavailable";

/// Whether a call of `name` under `tools` is decided by the `auto` policy (so the harness
/// should obtain a classifier verdict before [`call_classified`]).
pub fn needs_classifier(tools: &[Tool], name: &str) -> bool {
    custom_tool(tools, name).is_none()
        && BuiltinTool::parse(name)
            .and_then(|tool| builtin_setting(tools, tool))
            .is_some_and(|s| s.enabled && s.permission_policy == PermissionPolicy::Auto)
}

/// The event body for a model's call of `name` with `input` under the agent's `tools`, and how
/// to handle it: a custom tool waits for the client; an enabled built-in tool runs
/// (`always_allow`, `auto`) or waits for a confirmation (`always_ask`); anything else is
/// refused (`evaluated_permission: deny`). The `auto` policy runs the call
/// ([`Classified::NotAsked`]); see [`call_classified`].
pub fn call(tools: &[Tool], name: String, input: Map<String, Value>) -> (Body, Call) {
    call_classified(tools, name, input, Classified::NotAsked)
}

/// [`call`] with the `auto` policy decided by `classified`: `allow` runs, `ask` waits,
/// `deny` refuses with its reason code, `Failed` waits (`always_ask`).
pub fn call_classified(
    tools: &[Tool],
    name: String,
    input: Map<String, Value>,
    classified: Classified,
) -> (Body, Call) {
    if custom_tool(tools, &name).is_some() {
        let body = Body::AgentCustomToolUse(CustomToolUse {
            name,
            input,
            session_thread_id: None,
        });
        return (body, Call::Wait);
    }
    let setting = BuiltinTool::parse(&name)
        .and_then(|tool| Some((tool, builtin_setting(tools, tool)?)))
        .filter(|(_, s)| s.enabled);
    let (permission, evaluation, call) = match setting {
        Some((tool, s)) => match s.permission_policy {
            PermissionPolicy::AlwaysAllow => (
                Permission::Allow,
                Some(Evaluation::AlwaysAllow),
                Call::Run(tool),
            ),
            PermissionPolicy::AlwaysAsk => {
                (Permission::Ask, Some(Evaluation::AlwaysAsk), Call::Wait)
            }
            PermissionPolicy::Auto => auto(tool, &name, classified),
        },
        None => (
            Permission::Deny,
            None,
            Call::Refuse(format!("no tool named {name} is available to this agent")),
        ),
    };
    let body = Body::AgentToolUse(ToolUse {
        name,
        input,
        evaluated_permission: Some(permission),
        evaluation,
        session_thread_id: None,
    });
    (body, call)
}

/// A coordinator's call of its delegation tool `name` (see [`crate::session::thread`]): an
/// `agent.tool_use` allowed by the platform (`always_allow`), which the harness answers with
/// the child thread's reply.
pub fn delegation_call(name: String, input: Map<String, Value>) -> Body {
    Body::AgentToolUse(ToolUse {
        name,
        input,
        evaluated_permission: Some(Permission::Allow),
        evaluation: Some(Evaluation::AlwaysAllow),
        session_thread_id: None,
    })
}

/// The `auto` policy's decision for `tool` from the classifier's answer.
fn auto(
    tool: BuiltinTool,
    name: &str,
    classified: Classified,
) -> (Permission, Option<Evaluation>, Call) {
    let verdict = match classified {
        Classified::NotAsked => AutoPermission::Allow,
        Classified::Verdict(verdict) => verdict,
        Classified::Failed => AutoPermission::Ask {
            reason_code: CLASSIFIER_UNAVAILABLE.to_owned(),
        },
    };
    let (permission, call) = match &verdict {
        AutoPermission::Allow => (Permission::Allow, Call::Run(tool)),
        AutoPermission::Ask { .. } => (Permission::Ask, Call::Wait),
        AutoPermission::Deny { reason_code } => (
            Permission::Deny,
            Call::Refuse(format!(
                "The {name} call was denied by the auto permission policy ({reason_code})."
            )),
        ),
    };
    let evaluation = Evaluation::Auto {
        evaluated_permission: verdict,
    };
    (permission, Some(evaluation), call)
}

/// How the turn handles one call of an MCP tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpCall {
    /// Call the MCP server now and record its result.
    Run,
    /// Wait for the client's `user.tool_confirmation`.
    Wait,
    /// Answer at once with an error result carrying this text.
    Refuse(String),
}

/// The `agent.mcp_tool_use` body for a model's call of tool `name` of MCP server `server`
/// with `input` under the agent's `tools`, and how to handle it: an enabled tool of a server
/// the agent has a toolset for runs (`always_allow`; `auto`, which no classifier judges for
/// MCP tools yet) or waits for a confirmation (`always_ask`, the MCP default); anything else
/// is refused (`evaluated_permission: deny`).
pub fn mcp_call(
    tools: &[Tool],
    server: String,
    name: String,
    input: Map<String, Value>,
) -> (Body, McpCall) {
    let (permission, evaluation, call) = match mcp_setting(tools, &server, &name) {
        Some(s) if s.enabled => match s.permission_policy {
            PermissionPolicy::AlwaysAllow => (
                Permission::Allow,
                Some(Evaluation::AlwaysAllow),
                McpCall::Run,
            ),
            PermissionPolicy::AlwaysAsk => {
                (Permission::Ask, Some(Evaluation::AlwaysAsk), McpCall::Wait)
            }
            PermissionPolicy::Auto => (
                Permission::Allow,
                Some(Evaluation::Auto {
                    evaluated_permission: AutoPermission::Allow,
                }),
                McpCall::Run,
            ),
        },
        _ => (
            Permission::Deny,
            None,
            McpCall::Refuse(format!(
                "no tool named {name} of MCP server {server} is available to this agent"
            )),
        ),
    };
    let body = Body::AgentMcpToolUse(McpToolUse {
        mcp_server_name: server,
        name,
        input,
        evaluated_permission: Some(permission),
        evaluation,
        session_thread_id: None,
    });
    (body, call)
}

/// What a consumed `user.tool_confirmation` asks of the turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// Allowed: run the built-in tool, then record its result.
    Run {
        /// The confirmed `agent.tool_use`.
        tool_use_id: EventId,
        /// The tool.
        tool: BuiltinTool,
        /// The call's input.
        input: Map<String, Value>,
    },
    /// Allowed: call the MCP tool, then record its result.
    RunMcp {
        /// The confirmed `agent.mcp_tool_use`.
        mcp_tool_use_id: EventId,
        /// The MCP server.
        server: String,
        /// The tool.
        name: String,
        /// The call's input.
        input: Map<String, Value>,
    },
    /// Denied (the result carries the `deny_message`), or no such tool: record this result.
    Answer(Step),
}

/// What confirmation `id` in `log` asks, or `None` when it is not a `user.tool_confirmation`
/// of an `agent.tool_use` or `agent.mcp_tool_use` in the log.
pub fn confirmed(log: &[SessionRecord], id: &EventId) -> Option<Confirmed> {
    let find = |id: &EventId| {
        log.iter()
            .filter_map(SessionRecord::event)
            .find(|e| &e.id == id)
            .map(|e| &e.body)
    };
    let Some(Body::UserToolConfirmation(c)) = find(id) else {
        return None;
    };
    let id = c.tool_use_id.clone();
    let denial = || match c.deny_message.as_deref().filter(|m| !m.is_empty()) {
        Some(message) => format!("The user denied this tool call: {message}"),
        None => "The user denied this tool call.".to_owned(),
    };
    match find(&c.tool_use_id)? {
        Body::AgentToolUse(call) => {
            let answer = |text: String| {
                Confirmed::Answer(Step::ToolResult {
                    tool_use_id: id.clone(),
                    text,
                    is_error: true,
                })
            };
            Some(match c.result {
                Confirmation::Allow => match BuiltinTool::parse(&call.name) {
                    Some(tool) => Confirmed::Run {
                        tool_use_id: id.clone(),
                        tool,
                        input: call.input.clone(),
                    },
                    None => answer(format!("no tool named {} is available", call.name)),
                },
                Confirmation::Deny => answer(denial()),
            })
        }
        Body::AgentMcpToolUse(call) => Some(match c.result {
            Confirmation::Allow => Confirmed::RunMcp {
                mcp_tool_use_id: id,
                server: call.mcp_server_name.clone(),
                name: call.name.clone(),
                input: call.input.clone(),
            },
            Confirmation::Deny => Confirmed::Answer(Step::McpToolResult {
                mcp_tool_use_id: id,
                content: vec![ContentBlock::text(denial())],
                is_error: true,
            }),
        }),
        _ => None,
    }
}
