//! What Codex's notifications and requests mean for the session, as the resident engines'
//! events see it. Pure: one JSON-RPC message in, one [`Progress`] out; the engine turns them
//! into `core::session::turn` steps.
//!
//! | Codex | Progress | event |
//! |---|---|---|
//! | `item/started` `agentMessage`, `item/agentMessage/delta` | `MessageStarted`, `MessageDelta` | previews |
//! | `item/completed` `agentMessage` | `Message` | `agent.message` |
//! | `item/completed` `reasoning` | `Thinking` | `agent.thinking` |
//! | `item/started` `commandExecution` | `ToolStarted` `bash` `{command}` | `agent.tool_use` |
//! | `item/started` `fileChange` | `ToolStarted` `write` (only added files) or `edit` `{file_path, changes}` | `agent.tool_use` |
//! | `item/started` `mcpToolCall`, `dynamicToolCall`, `webSearch` | `ToolStarted` with the tool's own name (`web_search`) | `agent.tool_use` |
//! | `item/completed` of those | `ToolFinished` (output, exit code; `declined` when refused) | `agent.tool_result` |
//! | `error` | `Error` (`will_retry` or not) | `session.error` |
//! | `turn/completed` | `TurnCompleted` (`completed`, `interrupted`, `failed` with its message) | `session.status_idle` |
//! | request `item/*/requestApproval` | [`approval`]: the item asking | `requires_action` under `always_ask` |
//!
//! Everything else (thread status, token usage, rate limits, diffs, warnings) is ignored: the
//! LLM gateway records spans and usage from the model traffic itself.

use serde_json::{Map, Value};

/// One thing Codex reported.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Progress {
    /// An agent message began (preview).
    MessageStarted { item: String },
    /// More text of a message (preview).
    MessageDelta { item: String, delta: String },
    /// A finished agent message.
    Message { item: String, text: String },
    /// A finished reasoning item.
    Thinking,
    /// A tool call began.
    ToolStarted { item: String, call: ToolCall },
    /// A tool call ended.
    ToolFinished { item: String, outcome: ToolOutcome },
    /// A model or turn error.
    Error { message: String, will_retry: bool },
    /// The turn ended.
    TurnCompleted(TurnEnd),
    /// Nothing the session records.
    Ignored,
}

/// A tool call as our events name it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolCall {
    /// `bash`, `edit`, `write`, or the tool's own name.
    pub(crate) name: String,
    pub(crate) input: Map<String, Value>,
    /// Whether the agent's permission policy for a built-in tool of that name decides it
    /// (commands and file changes); other tools run as Codex decides.
    pub(crate) governed: bool,
    /// The MCP server of an `mcpToolCall` (recorded as `agent.mcp_tool_use`).
    pub(crate) server: Option<String>,
}

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ToolOutcome {
    /// It ran: its output, and whether it failed.
    Ran { text: String, is_error: bool },
    /// It was refused before running (our answer to its approval request).
    Declined,
}

/// How a Codex turn ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TurnEnd {
    Completed,
    Interrupted,
    Failed(String),
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Maps one notification.
pub(crate) fn notification(method: &str, params: &Value) -> Progress {
    let item = &params["item"];
    let item_id = || text(&item["id"]);
    match method {
        "item/started" => match item["type"].as_str() {
            Some("agentMessage") => Progress::MessageStarted { item: item_id() },
            _ => match tool_call(item) {
                Some(call) => Progress::ToolStarted {
                    item: item_id(),
                    call,
                },
                None => Progress::Ignored,
            },
        },
        "item/agentMessage/delta" => Progress::MessageDelta {
            item: text(&params["itemId"]),
            delta: text(&params["delta"]),
        },
        "item/completed" => match item["type"].as_str() {
            Some("agentMessage") => Progress::Message {
                item: item_id(),
                text: text(&item["text"]),
            },
            Some("reasoning") => Progress::Thinking,
            _ => match tool_outcome(item) {
                Some(outcome) => Progress::ToolFinished {
                    item: item_id(),
                    outcome,
                },
                None => Progress::Ignored,
            },
        },
        "error" => Progress::Error {
            message: error_message(&params["error"]),
            will_retry: params["willRetry"].as_bool().unwrap_or(false),
        },
        "turn/completed" => {
            let turn = &params["turn"];
            Progress::TurnCompleted(match turn["status"].as_str() {
                Some("interrupted") => TurnEnd::Interrupted,
                Some("failed") => TurnEnd::Failed(error_message(&turn["error"])),
                _ => TurnEnd::Completed,
            })
        }
        _ => Progress::Ignored,
    }
}

/// The item an approval request is about, or `None` when `method` is not one we answer.
pub(crate) fn approval(method: &str, params: &Value) -> Option<String> {
    match method {
        "item/commandExecution/requestApproval" | "item/fileChange/requestApproval" => {
            params["itemId"].as_str().map(str::to_owned)
        }
        _ => None,
    }
}

/// The MCP server and tool of a server request that asks to approve an MCP tool call (an
/// elicitation Codex makes itself, `_meta.codex_approval_kind: "mcp_tool_call"`).
pub(crate) fn mcp_approval(method: &str, params: &Value) -> Option<(String, String)> {
    let meta = &params["_meta"];
    (method == "mcpServer/elicitation/request" && meta["codex_approval_kind"] == "mcp_tool_call")
        .then(|| (text(&params["serverName"]), text(&meta["tool_name"])))
}

fn error_message(error: &Value) -> String {
    let message = text(&error["message"]);
    match error["additionalDetails"].as_str() {
        Some(details) if !details.is_empty() => format!("{message} ({details})"),
        _ if message.is_empty() => "Codex reported an error without a message".to_owned(),
        _ => message,
    }
}

/// The command as the model wrote it: Codex wraps it in `/bin/bash -lc '…'` and reports the
/// original in its single parsed action.
fn command(item: &Value) -> String {
    match item["commandActions"].as_array().map(Vec::as_slice) {
        Some([action]) if action["command"].is_string() => text(&action["command"]),
        _ => text(&item["command"]),
    }
}

fn tool_call(item: &Value) -> Option<ToolCall> {
    let server = (item["type"] == "mcpToolCall").then(|| text(&item["server"]));
    let (name, input, governed) = match item["type"].as_str()? {
        "commandExecution" => (
            "bash".to_owned(),
            object([("command", command(item).into())]),
            true,
        ),
        "fileChange" => {
            let changes = item["changes"].as_array().cloned().unwrap_or_default();
            let only_added =
                !changes.is_empty() && changes.iter().all(|c| c["kind"]["type"] == "add");
            let name = if only_added { "write" } else { "edit" };
            let path = changes
                .first()
                .map(|c| c["path"].clone())
                .unwrap_or_default();
            let input = object([("file_path", path), ("changes", Value::Array(changes))]);
            (name.to_owned(), input, true)
        }
        "mcpToolCall" | "dynamicToolCall" => {
            let input = match &item["arguments"] {
                Value::Object(map) => map.clone(),
                Value::Null => Map::new(),
                other => object([("arguments", other.clone())]),
            };
            (text(&item["tool"]), input, false)
        }
        "webSearch" => {
            let input = object([("query", item["query"].clone())]);
            ("web_search".to_owned(), input, false)
        }
        _ => return None,
    };
    Some(ToolCall {
        name,
        input,
        governed,
        server,
    })
}

fn tool_outcome(item: &Value) -> Option<ToolOutcome> {
    let status = item["status"].as_str().unwrap_or_default();
    if status == "declined" {
        return Some(ToolOutcome::Declined);
    }
    let failed = status == "failed";
    let (text, is_error) = match item["type"].as_str()? {
        "commandExecution" => {
            let mut out = text(&item["aggregatedOutput"]);
            let code = item["exitCode"].as_i64();
            if let Some(code) = code.filter(|c| *c != 0) {
                out.push_str(&format!("\n[exit code {code}]"));
            }
            (out, failed || code.is_some_and(|c| c != 0))
        }
        "fileChange" => {
            let changes = item["changes"].as_array().cloned().unwrap_or_default();
            let lines: Vec<String> = changes
                .iter()
                .map(|c| {
                    let kind = c["kind"]["type"].as_str().unwrap_or("update");
                    format!("{kind} {}", text(&c["path"]))
                })
                .collect();
            let verb = if failed { "Not applied" } else { "Applied" };
            (format!("{verb}: {}", lines.join(", ")), failed)
        }
        "mcpToolCall" => match (&item["result"], &item["error"]) {
            (_, Value::Object(error)) => (
                error
                    .get("message")
                    .map_or_else(|| Value::Object(error.clone()).to_string(), self::text),
                true,
            ),
            (Value::Null, _) => (String::new(), failed),
            (result, _) => (result_text(&result["content"], result), failed),
        },
        "dynamicToolCall" => {
            let out = result_text(&item["contentItems"], &item["contentItems"]);
            (out, failed || item["success"] == Value::Bool(false))
        }
        "webSearch" => (String::new(), failed),
        _ => return None,
    };
    Some(ToolOutcome::Ran { text, is_error })
}

/// The text items of a tool result's content, or the whole result as JSON.
fn result_text(content: &Value, whole: &Value) -> String {
    let texts: Vec<&str> = content
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect();
    if texts.is_empty() {
        whole.to_string()
    } else {
        texts.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::codex::protocol::{self, Incoming};

    /// Maps a recorded transcript (`testdata/*.jsonl`: what Codex 0.171.0 wrote on stdout)
    /// to the progress the engine sees, approvals shown as `Approval(item)`.
    fn replay(transcript: &str) -> Vec<String> {
        transcript
            .lines()
            .filter_map(|line| match protocol::parse(line).expect(line) {
                Incoming::Notification { method, params } => match notification(&method, &params) {
                    Progress::Ignored => None,
                    progress => Some(format!("{progress:?}")),
                },
                Incoming::Request { method, params, .. } => {
                    Some(format!("Approval({:?})", approval(&method, &params)))
                }
                Incoming::Response { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_text_turn() {
        assert_eq!(
            replay(include_str!("testdata/text.jsonl")),
            [
                r#"MessageStarted { item: "msg_0" }"#,
                r#"MessageDelta { item: "msg_0", delta: "ok" }"#,
                r#"Message { item: "msg_0", text: "ok" }"#,
                "TurnCompleted(Completed)",
            ]
        );
    }

    #[test]
    fn a_command_then_reasoning_and_a_message() {
        let got = replay(include_str!("testdata/tool.jsonl"));
        assert_eq!(
            got,
            [
                r#"ToolStarted { item: "call_1", call: ToolCall { name: "bash", input: {"command": String("echo hi > f.txt && cat f.txt")}, governed: true, server: None } }"#,
                r#"ToolFinished { item: "call_1", outcome: Ran { text: "hi\n", is_error: false } }"#,
                "Thinking",
                r#"MessageStarted { item: "msg_3" }"#,
                r#"MessageDelta { item: "msg_3", delta: "done" }"#,
                r#"Message { item: "msg_3", text: "done" }"#,
                "TurnCompleted(Completed)",
            ]
        );
    }

    #[test]
    fn approvals_are_asked_after_the_item_starts_and_a_decline_shows_in_its_end() {
        let got = replay(include_str!("testdata/decline.jsonl"));
        assert_eq!(
            &got[..3],
            [
                r#"ToolStarted { item: "call_1", call: ToolCall { name: "bash", input: {"command": String("ls")}, governed: true, server: None } }"#,
                r#"Approval(Some("call_1"))"#,
                r#"ToolFinished { item: "call_1", outcome: Declined }"#,
            ]
        );
        assert_eq!(got.last().unwrap(), "TurnCompleted(Completed)");
    }

    #[test]
    fn patches_are_write_for_new_files_and_edit_otherwise() {
        let got = replay(include_str!("testdata/patch.jsonl"));
        let calls: Vec<&String> = got.iter().filter(|p| !p.starts_with("Message")).collect();
        assert_eq!(calls.len(), 7, "{calls:#?}");
        assert!(calls[0].starts_with(r#"ToolStarted { item: "call_1", call: ToolCall { name: "write", input: {"changes": Array [Object {"diff": String("hello\n"), "kind": Object {"type": String("add")}, "path": String("/workspace/new.txt")}], "file_path": String("/workspace/new.txt")}"#), "{}", calls[0]);
        assert_eq!(calls[1], r#"Approval(Some("call_1"))"#);
        assert_eq!(
            calls[2],
            r#"ToolFinished { item: "call_1", outcome: Ran { text: "Applied: add /workspace/new.txt", is_error: false } }"#
        );
        assert!(calls[3].contains(r#"name: "edit""#), "{}", calls[3]);
        assert_eq!(
            calls[5],
            r#"ToolFinished { item: "call_4", outcome: Ran { text: "Applied: update /workspace/old.txt", is_error: false } }"#
        );
    }

    #[test]
    fn a_failed_model_request_fails_the_turn_with_its_message() {
        let got = replay(include_str!("testdata/error.jsonl"));
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].starts_with("Error { message: "), "{}", got[0]);
        assert!(got[0].contains("bad key") && got[0].ends_with("will_retry: false }"));
        assert!(got[1].starts_with("TurnCompleted(Failed("), "{}", got[1]);
    }

    #[test]
    fn failing_commands_and_tools_are_errors() {
        let item = serde_json::json!({"type": "commandExecution", "id": "c", "status": "failed",
            "command": "/bin/bash -lc false", "commandActions": [], "aggregatedOutput": "",
            "exitCode": 1});
        assert_eq!(
            notification("item/completed", &serde_json::json!({"item": item})),
            Progress::ToolFinished {
                item: "c".into(),
                outcome: ToolOutcome::Ran {
                    text: "\n[exit code 1]".into(),
                    is_error: true
                }
            }
        );
        let mcp = serde_json::json!({"type": "mcpToolCall", "id": "m", "server": "s",
            "tool": "lookup", "status": "failed", "arguments": {"q": 1},
            "result": null, "error": {"message": "boom"}});
        let started = notification("item/started", &serde_json::json!({"item": mcp}));
        let Progress::ToolStarted { call, .. } = started else {
            panic!("{started:?}")
        };
        assert_eq!((call.name.as_str(), call.governed), ("lookup", false));
        assert_eq!(call.server.as_deref(), Some("s"));
        assert_eq!(
            notification("item/completed", &serde_json::json!({"item": mcp})),
            Progress::ToolFinished {
                item: "m".into(),
                outcome: ToolOutcome::Ran {
                    text: "boom".into(),
                    is_error: true
                }
            }
        );
    }

    #[test]
    fn mcp_tool_call_elicitations_are_approvals() {
        let params = serde_json::json!({"serverName": "tests", "mode": "form",
            "_meta": {"codex_approval_kind": "mcp_tool_call", "tool_name": "echo"}});
        assert_eq!(
            mcp_approval("mcpServer/elicitation/request", &params),
            Some(("tests".into(), "echo".into()))
        );
        let other = serde_json::json!({"serverName": "tests", "_meta": null});
        assert_eq!(mcp_approval("mcpServer/elicitation/request", &other), None);
    }

    #[test]
    fn other_requests_are_not_approvals() {
        assert_eq!(approval("item/tool/requestUserInput", &Value::Null), None);
        assert_eq!(
            approval(
                "item/fileChange/requestApproval",
                &serde_json::json!({"itemId": "x"})
            ),
            Some("x".into())
        );
    }
}
