//! Claude Code's stdio protocol as data: what one line of its `--output-format stream-json`
//! stdout says ([`Line::parse`]), and the lines the harness writes to its
//! `--input-format stream-json` stdin ([`user_message`], [`allow`], [`deny`],
//! [`control_error`]).
//!
//! Stdout carries one JSON object per line: `system` (`init` names the conversation), one
//! `assistant` line per content block of a model response (`text`, `thinking`, `tool_use`),
//! `user` lines with the `tool_result`s of the calls Claude Code ran, `control_request`s
//! (`can_use_tool`: the permission prompt of `--permission-prompt-tool stdio`), and `result`
//! when the turn is over. Anything else is [`Line::Other`]. Pure: no IO.

use serde_json::{json, Map, Value};

/// A content block of an `assistant` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Block {
    /// Text for the user.
    Text(String),
    /// A thinking block (its text is not kept).
    Thinking,
    /// A tool call, with Claude Code's id and tool name.
    ToolUse {
        id: String,
        name: String,
        input: Map<String, Value>,
    },
}

/// A `tool_result` block of a `user` line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolResult {
    /// The Claude Code id of the call it answers.
    pub(crate) tool_use_id: String,
    /// Its text blocks joined (other blocks are named, not carried).
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

/// The `result` line that ends a turn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Finish {
    /// `success`, `error_max_turns`, `error_during_execution`, ...
    pub(crate) subtype: String,
    pub(crate) is_error: bool,
    /// The model's last stop reason (`end_turn`, `refusal`, ...), when given.
    pub(crate) stop_reason: Option<String>,
    /// The final text or the error description.
    pub(crate) result: Option<String>,
    /// Turns Claude Code still has queued (messages that came while it was busy and will get
    /// a result of their own).
    pub(crate) queued: u64,
}

/// What one stdout line says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    /// `system/init`: the conversation's id.
    Init { session_id: String },
    /// An `assistant` line's blocks (of a top-level response; sub-agents' lines are
    /// [`Line::Other`]).
    Assistant(Vec<Block>),
    /// A `user` line's tool results.
    ToolResults(Vec<ToolResult>),
    /// `control_request` / `can_use_tool`: may Claude Code run this call?
    Permission {
        request_id: String,
        tool_use_id: Option<String>,
        tool_name: String,
        input: Map<String, Value>,
    },
    /// `control_request` / `mcp_message`: a message to the harness's MCP server.
    Mcp {
        request_id: String,
        server_name: String,
        message: Value,
    },
    /// Another `control_request` (answered with an error).
    Control { request_id: String, subtype: String },
    /// `result`: the turn is over.
    Result(Finish),
    /// Anything else (progress, hooks, unknown types).
    Other,
}

/// Why a stdout line could not be read.
#[derive(Debug, thiserror::Error)]
#[error("Claude Code wrote a line that is not JSON: {0}")]
pub(crate) struct BadLine(#[source] serde_json::Error);

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn object(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// Tool result content: a string, or blocks whose text is joined (an image is named).
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .map(|b| match str_of(b, "type") {
                Some("text") => str_of(b, "text").unwrap_or_default().to_owned(),
                Some(other) => format!("[{other}]"),
                None => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl Line {
    /// Reads one stdout line. Blank lines are [`Line::Other`].
    pub(crate) fn parse(line: &str) -> Result<Self, BadLine> {
        if line.trim().is_empty() {
            return Ok(Line::Other);
        }
        let v: Value = serde_json::from_str(line).map_err(BadLine)?;
        let nested = !matches!(v.get("parent_tool_use_id"), None | Some(Value::Null));
        let content = || {
            v.get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        Ok(match str_of(&v, "type") {
            Some("system") if str_of(&v, "subtype") == Some("init") => Line::Init {
                session_id: str_of(&v, "session_id").unwrap_or_default().to_owned(),
            },
            Some("assistant") if !nested => Line::Assistant(
                content()
                    .iter()
                    .filter_map(|b| match str_of(b, "type")? {
                        "text" => Some(Block::Text(str_of(b, "text")?.to_owned())),
                        "thinking" | "redacted_thinking" => Some(Block::Thinking),
                        "tool_use" => Some(Block::ToolUse {
                            id: str_of(b, "id")?.to_owned(),
                            name: str_of(b, "name")?.to_owned(),
                            input: object(b.get("input")),
                        }),
                        _ => None,
                    })
                    .collect(),
            ),
            Some("user") if !nested => Line::ToolResults(
                content()
                    .iter()
                    .filter(|b| str_of(b, "type") == Some("tool_result"))
                    .filter_map(|b| {
                        Some(ToolResult {
                            tool_use_id: str_of(b, "tool_use_id")?.to_owned(),
                            text: text_of(b.get("content")),
                            is_error: b.get("is_error").and_then(Value::as_bool) == Some(true),
                        })
                    })
                    .collect(),
            ),
            Some("control_request") => {
                let request_id = str_of(&v, "request_id").unwrap_or_default().to_owned();
                let request = v.get("request").unwrap_or(&Value::Null);
                match str_of(request, "subtype") {
                    Some("can_use_tool") => Line::Permission {
                        request_id,
                        tool_use_id: str_of(request, "tool_use_id").map(str::to_owned),
                        tool_name: str_of(request, "tool_name").unwrap_or_default().to_owned(),
                        input: object(request.get("input")),
                    },
                    Some("mcp_message") => Line::Mcp {
                        request_id,
                        server_name: str_of(request, "server_name")
                            .unwrap_or_default()
                            .to_owned(),
                        message: request.get("message").cloned().unwrap_or(Value::Null),
                    },
                    subtype => Line::Control {
                        request_id,
                        subtype: subtype.unwrap_or_default().to_owned(),
                    },
                }
            }
            Some("result") => Line::Result(Finish {
                subtype: str_of(&v, "subtype").unwrap_or_default().to_owned(),
                is_error: v.get("is_error").and_then(Value::as_bool) == Some(true),
                stop_reason: str_of(&v, "stop_reason").map(str::to_owned),
                result: str_of(&v, "result").map(str::to_owned),
                queued: v
                    .get("queued_turn_count")
                    .and_then(Value::as_u64)
                    .unwrap_or(0),
            }),
            _ => Line::Other,
        })
    }
}

fn line(v: Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// A `user` message line carrying `content` (Messages API content blocks).
pub(crate) fn user_message(content: Value) -> String {
    line(json!({
        "type": "user",
        "message": {"role": "user", "content": content},
        "parent_tool_use_id": null,
    }))
}

fn control_success(request_id: &str, response: Value) -> String {
    line(json!({
        "type": "control_response",
        "response": {"subtype": "success", "request_id": request_id, "response": response},
    }))
}

/// Answers a permission prompt: run the call with its `input`.
pub(crate) fn allow(request_id: &str, input: &Map<String, Value>) -> String {
    control_success(
        request_id,
        json!({"behavior": "allow", "updatedInput": input}),
    )
}

/// Answers a permission prompt: do not run the call; the model reads `message`.
pub(crate) fn deny(request_id: &str, message: &str) -> String {
    control_success(request_id, json!({"behavior": "deny", "message": message}))
}

/// Answers an `mcp_message` with the MCP server's message (`None`: an empty acknowledgement
/// of a notification).
pub(crate) fn mcp_response(request_id: &str, message: Option<Value>) -> String {
    let message = message.unwrap_or_else(|| json!({"jsonrpc": "2.0", "result": {}}));
    control_success(request_id, json!({"mcp_response": message}))
}

/// Answers a control request the harness does not serve.
pub(crate) fn control_error(request_id: &str, message: &str) -> String {
    line(json!({
        "type": "control_response",
        "response": {"subtype": "error", "request_id": request_id, "error": message},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(fixture: &str) -> Vec<Line> {
        fixture
            .lines()
            .map(|l| Line::parse(l).expect("recorded lines are JSON"))
            .filter(|l| *l != Line::Other)
            .collect()
    }

    #[test]
    fn a_recorded_text_turn() {
        let got = lines(include_str!("testdata/text.jsonl"));
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(
            got[0],
            Line::Init {
                session_id: "11111111-1111-4111-8111-111111111111".into()
            }
        );
        assert_eq!(got[1], Line::Assistant(vec![Block::Thinking]));
        assert_eq!(
            got[2],
            Line::Assistant(vec![Block::Text("hello there".into())])
        );
        let Line::Result(finish) = &got[3] else {
            panic!("{:?}", got[3])
        };
        assert_eq!(
            (finish.subtype.as_str(), finish.is_error),
            ("success", false)
        );
        assert_eq!(finish.stop_reason.as_deref(), Some("end_turn"));
        assert_eq!(finish.queued, 0);
    }

    #[test]
    fn a_recorded_permission_prompt_and_its_result() {
        let got = lines(include_str!("testdata/bash-allow.jsonl"));
        let Line::Assistant(blocks) = &got[1] else {
            panic!("{:?}", got[1])
        };
        let [Block::ToolUse { id, name, input }] = blocks.as_slice() else {
            panic!("{blocks:?}")
        };
        assert_eq!(name, "Bash");
        assert_eq!(input["command"], "echo hi > note.txt && cat note.txt");
        let Line::Permission {
            tool_use_id,
            tool_name,
            ..
        } = &got[2]
        else {
            panic!("{:?}", got[2])
        };
        assert_eq!(
            (tool_use_id.as_deref(), tool_name.as_str()),
            (Some(id.as_str()), "Bash")
        );
        assert_eq!(
            got[3],
            Line::ToolResults(vec![ToolResult {
                tool_use_id: id.clone(),
                text: "hi".into(),
                is_error: false
            }])
        );
    }

    #[test]
    fn a_recorded_denial_comes_back_as_an_error_result() {
        let got = lines(include_str!("testdata/bash-deny.jsonl"));
        let Line::ToolResults(results) = &got[3] else {
            panic!("{:?}", got[3])
        };
        assert_eq!(
            (results[0].text.as_str(), results[0].is_error),
            ("no thanks", true)
        );
    }

    #[test]
    fn odd_lines() {
        assert!(Line::parse("not json").is_err());
        assert_eq!(Line::parse("").ok(), Some(Line::Other));
        assert_eq!(
            Line::parse(r#"{"type":"assistant","parent_tool_use_id":"toolu_1","message":{"content":[{"type":"text","text":"sub"}]}}"#).ok(),
            Some(Line::Other)
        );
        assert_eq!(
            Line::parse(r#"{"type":"control_request","request_id":"r1","request":{"subtype":"hook_callback"}}"#).ok(),
            Some(Line::Control { request_id: "r1".into(), subtype: "hook_callback".into() })
        );
        assert_eq!(
            Line::parse(r#"{"type":"control_request","request_id":"r2","request":{"subtype":"mcp_message","server_name":"custom","message":{"jsonrpc":"2.0","method":"tools/list","id":1}}}"#).ok(),
            Some(Line::Mcp {
                request_id: "r2".into(),
                server_name: "custom".into(),
                message: json!({"jsonrpc":"2.0","method":"tools/list","id":1}),
            })
        );
        assert_eq!(
            text_of(Some(&json!([{"type":"text","text":"a"},{"type":"image"}]))),
            "a\n[image]"
        );
    }

    #[test]
    fn written_lines_are_one_json_object_each() {
        for written in [
            user_message(json!([{"type": "text", "text": "hi"}])),
            allow("r1", &Map::new()),
            deny("r1", "no"),
            control_error("r1", "unsupported"),
            mcp_response("r1", None),
        ] {
            assert!(written.ends_with('\n') && written.matches('\n').count() == 1);
            let v: Value = serde_json::from_str(&written).expect("JSON");
            assert!(v.get("type").is_some());
        }
        let v: Value = serde_json::from_str(&deny("r7", "no")).expect("JSON");
        assert_eq!(v["response"]["request_id"], "r7");
        assert_eq!(v["response"]["response"]["behavior"], "deny");
    }
}
