//! The JSON-RPC 2.0 of `codex app-server` over stdio, as the pinned Codex version speaks it
//! (one JSON object per line; Codex omits the `"jsonrpc"` member and accepts messages without
//! it): what we send (requests, the `initialized` notification, answers to Codex's own
//! requests) and how a line Codex writes is classified ([`Incoming`]). Pure: strings in and
//! out. The methods used, recorded from Codex 0.171.0 (`codex app-server generate-ts` prints
//! the whole schema):
//!
//! | direction | method | purpose |
//! |---|---|---|
//! | → request | `initialize`, then `initialized` (notification) | handshake |
//! | → request | `thread/list` (newest first) | find the session's thread after a restart |
//! | → request | `thread/start` / `thread/resume` | model, instructions, approval policy, sandbox mode |
//! | → request | `turn/start` | the user's input |
//! | ← request | `item/commandExecution/requestApproval`, `item/fileChange/requestApproval` | ask before running; answered `{"decision": "accept" \| "decline"}` |
//! | ← request | `item/tool/call` | a call of one of the thread's `dynamicTools` (experimental API: a coordinator's team tools); answered [`tool_output`] |
//! | ← notification | `item/started`, `item/completed`, `item/agentMessage/delta`, `error`, `turn/completed`, … | progress (see `mapping.rs`) |

use serde_json::{json, Value};

/// A line Codex wrote.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Incoming {
    /// The answer to our request `id`: its result, or the error's message.
    Response {
        id: u64,
        result: Result<Value, String>,
    },
    /// Codex asks us something (an approval); answer with [`answer`] and the same `id`.
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    /// Progress.
    Notification { method: String, params: Value },
}

/// A line that is not a JSON-RPC message.
#[derive(Debug, thiserror::Error)]
#[error("Codex wrote a line that is not a JSON-RPC message: {0}")]
pub(crate) struct NotJsonRpc(String);

/// Classifies one line of Codex's stdout.
pub(crate) fn parse(line: &str) -> Result<Incoming, NotJsonRpc> {
    let cut = |why: &str| {
        let mut start: String = line.chars().take(200).collect();
        if start.len() < line.len() {
            start.push('…');
        }
        NotJsonRpc(format!("{why}: {start}"))
    };
    let mut message: Value = serde_json::from_str(line).map_err(|e| cut(&e.to_string()))?;
    let Some(object) = message.as_object_mut() else {
        return Err(cut("not an object"));
    };
    let method = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let params = object.remove("params").unwrap_or(Value::Null);
    match (method, object.remove("id")) {
        (Some(method), Some(id)) => Ok(Incoming::Request { id, method, params }),
        (Some(method), None) => Ok(Incoming::Notification { method, params }),
        (None, Some(id)) => {
            let id = id
                .as_u64()
                .ok_or_else(|| cut("a response to an id we never sent"))?;
            let result = match object.remove("error") {
                Some(error) => Err(error
                    .get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| error.to_string(), str::to_owned)),
                None => Ok(object.remove("result").unwrap_or(Value::Null)),
            };
            Ok(Incoming::Response { id, result })
        }
        (None, None) => Err(cut("neither a method nor an id")),
    }
}

/// Our request `method` with `params`, as one line.
pub(crate) fn request(id: u64, method: &str, params: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
}

/// The `initialized` notification that ends the handshake.
pub(crate) fn initialized() -> String {
    json!({"jsonrpc": "2.0", "method": "initialized"}).to_string()
}

/// Our answer to Codex's request `id`.
pub(crate) fn answer(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// Our error answer to a request of Codex we do not serve.
pub(crate) fn refuse(id: &Value, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": message}}).to_string()
}

/// `initialize` params. `experimental`: opt in to Codex's experimental API (a thread's
/// `dynamicTools`), only for a thread that has them.
pub(crate) fn initialize(experimental: bool) -> Value {
    json!({
        "clientInfo": {
            "name": "managed_agents",
            "title": "managed-agents",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "capabilities": experimental.then(|| json!({"experimentalApi": true})),
    })
}

/// Whether Codex asks before running commands and applying patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Approvals {
    /// Never ask (every tool Codex may use is `always_allow`).
    Never,
    /// Ask for everything (`untrusted`); the engine answers per tool from the agent's policy.
    Always,
}

/// What a thread is started or resumed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ThreadSettings {
    /// The agent's model id.
    pub(crate) model: String,
    /// The agent's system prompt, given as Codex's developer instructions (Codex keeps its
    /// own base instructions, which describe its tools).
    pub(crate) instructions: Option<String>,
    pub(crate) approvals: Approvals,
    /// Codex's working directory inside the sandbox.
    pub(crate) cwd: String,
    /// Tools the harness serves (`item/tool/call`): a coordinator's team tools, as
    /// `dynamicTools` function specs (`{type, name, description, inputSchema}`).
    pub(crate) dynamic_tools: Vec<Value>,
}

impl ThreadSettings {
    fn params(&self) -> Value {
        json!({
            "model": self.model,
            "cwd": self.cwd,
            "approvalPolicy": match self.approvals {
                Approvals::Never => "never",
                Approvals::Always => "untrusted",
            },
            // The session's sandbox is the boundary; Codex's own (nested namespaces) cannot
            // work inside it.
            "sandbox": "danger-full-access",
            "developerInstructions": self.instructions,
        })
    }
}

/// `thread/start` params.
pub(crate) fn thread_start(settings: &ThreadSettings) -> Value {
    let mut params = settings.params();
    if !settings.dynamic_tools.is_empty() {
        params["dynamicTools"] = Value::Array(settings.dynamic_tools.clone());
    }
    params
}

/// Codex's request to run a call of a dynamic tool.
pub(crate) const TOOL_CALL: &str = "item/tool/call";

/// A `dynamicTools` function spec.
pub(crate) fn dynamic_tool(name: &str, description: &str, input_schema: &Value) -> Value {
    json!({"type": "function", "name": name, "description": description,
           "inputSchema": input_schema})
}

/// The answer to an `item/tool/call`: the result's text and whether the call succeeded.
pub(crate) fn tool_output(text: &str, success: bool) -> Value {
    json!({"contentItems": [{"type": "inputText", "text": text}], "success": success})
}

/// `thread/resume` params.
pub(crate) fn thread_resume(thread: &str, settings: &ThreadSettings) -> Value {
    let mut params = settings.params();
    params["threadId"] = json!(thread);
    params["excludeTurns"] = json!(true);
    params
}

/// `thread/list` params: the newest thread started in `cwd`.
pub(crate) fn thread_list(cwd: &str) -> Value {
    json!({"limit": 1, "sortKey": "created_at", "sortDirection": "desc", "cwd": cwd})
}

/// The id of the newest thread in a `thread/list` result.
pub(crate) fn listed_thread(result: &Value) -> Option<String> {
    result["data"][0]["id"].as_str().map(str::to_owned)
}

/// The thread id of a `thread/start` or `thread/resume` result.
pub(crate) fn started_thread(result: &Value) -> Option<String> {
    result["thread"]["id"].as_str().map(str::to_owned)
}

/// `turn/start` params.
pub(crate) fn turn_start(thread: &str, input: Vec<Value>) -> Value {
    json!({"threadId": thread, "input": input})
}

/// The turn id of a `turn/start` result.
pub(crate) fn started_turn(result: &Value) -> Option<String> {
    result["turn"]["id"].as_str().map(str::to_owned)
}

/// The answer to an approval request.
pub(crate) fn decision(allow: bool) -> Value {
    json!({"decision": if allow { "accept" } else { "decline" }})
}

/// The answer to an MCP tool call's approval (an `mcpServer/elicitation/request` whose
/// `_meta.codex_approval_kind` is `mcp_tool_call`).
pub(crate) fn elicitation(allow: bool) -> Value {
    if allow {
        json!({"action": "accept", "content": {}, "_meta": null})
    } else {
        json!({"action": "decline", "content": null, "_meta": null})
    }
}

/// A text item of `turn/start`'s input.
pub(crate) fn text_input(text: &str) -> Value {
    json!({"type": "text", "text": text, "text_elements": []})
}

/// An image item of `turn/start`'s input (a URL, `data:` URLs included).
pub(crate) fn image_input(url: &str) -> Value {
    json!({"type": "image", "url": url})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_classified() {
        let response = parse(r#"{"id":1,"result":{"userAgent":"x"}}"#).unwrap();
        assert_eq!(
            response,
            Incoming::Response {
                id: 1,
                result: Ok(json!({"userAgent": "x"}))
            }
        );
        let error = parse(r#"{"id":2,"error":{"code":-32600,"message":"no such thread"}}"#);
        assert_eq!(
            error.unwrap(),
            Incoming::Response {
                id: 2,
                result: Err("no such thread".into())
            }
        );
        let request = parse(
            r#"{"method":"item/commandExecution/requestApproval","id":0,"params":{"itemId":"call_1"}}"#,
        );
        assert_eq!(
            request.unwrap(),
            Incoming::Request {
                id: json!(0),
                method: "item/commandExecution/requestApproval".into(),
                params: json!({"itemId": "call_1"})
            }
        );
        let note = parse(r#"{"method":"turn/started","params":{"turn":{}}}"#).unwrap();
        assert!(matches!(note, Incoming::Notification { method, .. } if method == "turn/started"));
    }

    #[test]
    fn garbage_is_an_error_naming_the_line() {
        let e = parse("Reading prompt from stdin...").unwrap_err();
        assert!(e.to_string().contains("Reading prompt"), "{e}");
        assert!(parse("[1,2]").is_err());
        assert!(parse("{}").is_err());
        let long = format!("{{\"x\": \"{}\"", "a".repeat(10_000));
        assert!(parse(&long).unwrap_err().to_string().len() < 400);
        assert!(parse(r#"{"id":"abc","result":{}}"#).is_err());
    }

    #[test]
    fn threads_run_unsandboxed_inside_our_sandbox_with_the_agent_settings() {
        let settings = ThreadSettings {
            model: "gpt-5".into(),
            instructions: Some("Be brief.".into()),
            approvals: Approvals::Always,
            cwd: "/workspace".into(),
            dynamic_tools: Vec::new(),
        };
        let start = thread_start(&settings);
        assert!(start.get("dynamicTools").is_none());
        assert_eq!(start["approvalPolicy"], "untrusted");
        assert_eq!(start["sandbox"], "danger-full-access");
        assert_eq!(start["developerInstructions"], "Be brief.");
        assert_eq!(start["model"], "gpt-5");
        let resume = thread_resume("t1", &settings);
        assert_eq!(resume["threadId"], "t1");
        assert_eq!(resume["excludeTurns"], true);
        let never = ThreadSettings {
            approvals: Approvals::Never,
            ..settings
        };
        assert_eq!(thread_start(&never)["approvalPolicy"], "never");
    }

    #[test]
    fn a_coordinators_team_tools_are_the_threads_dynamic_tools() {
        let tool = dynamic_tool("message_agent", "Send", &json!({"type": "object"}));
        let settings = ThreadSettings {
            model: "gpt-5".into(),
            instructions: None,
            approvals: Approvals::Never,
            cwd: "/workspace".into(),
            dynamic_tools: vec![tool.clone()],
        };
        assert_eq!(thread_start(&settings)["dynamicTools"], json!([tool]));
        assert_eq!(tool["type"], "function");
        assert_eq!(initialize(true)["capabilities"]["experimentalApi"], true);
        assert_eq!(initialize(false)["capabilities"], Value::Null);
        assert_eq!(
            tool_output("done", true),
            json!({"contentItems": [{"type": "inputText", "text": "done"}], "success": true})
        );
    }

    #[test]
    fn messages_are_single_lines() {
        let line = request(3, "turn/start", turn_start("t", vec![text_input("a\nb")]));
        assert!(!line.contains('\n'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["params"]["input"][0]["text"], "a\nb");
        let back: Value = serde_json::from_str(&answer(&json!(7), decision(false))).unwrap();
        assert_eq!(
            back,
            json!({"jsonrpc": "2.0", "id": 7, "result": {"decision": "decline"}})
        );
    }
}
