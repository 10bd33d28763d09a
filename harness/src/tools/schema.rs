//! What the model is offered for each tool of `agent_toolset_20260401`: a description and the
//! input schema of the hosted toolset (the `BetaManagedAgentsAgentToolset20260401*Input` types
//! of the official SDKs: `file_path`, `view_range`, `replace_all`, `restart`, `timeout_ms`),
//! and [`normalize`], which accepts this server's earlier names as aliases (`path` for
//! `file_path`, `offset`/`limit` for `view_range`, `timeout` for `timeout_ms`) so calls
//! recorded before the change, or made by a model that learned the old names, still run.

use managed_agents_core::agent::BuiltinTool;
use serde_json::{json, Map, Value};

pub(super) fn description(tool: BuiltinTool) -> &'static str {
    match tool {
        BuiltinTool::Bash => "Run a command in a persistent bash shell (one per session, started in /workspace). The working directory, exported variables and background jobs survive between calls; `restart: true` (without `command`) starts a fresh shell. stdout and stderr are combined; a non-zero exit status is an error. `timeout_ms` defaults to 120000; a command that times out ends the shell.",
        BuiltinTool::Read => "Read a file (relative paths are relative to /workspace). Text files must be UTF-8 and at most 256 KiB unless `view_range` selects lines: `[start_line, end_line]`, 1-indexed and inclusive, `end_line` 0 or negative meaning the end of the file. Images (.png, .jpg, .jpeg, .gif, .webp) and PDFs are returned as content blocks.",
        BuiltinTool::Write => "Write a file (overwriting it), creating parent directories as needed.",
        BuiltinTool::Edit => "Replace `old_string` with `new_string` in a UTF-8 text file of at most 256 KiB. `old_string` must occur exactly once unless `replace_all` is true.",
        BuiltinTool::Glob => "List files matching a doublestar glob pattern (e.g. `**/*.rs`), relative to `path` (default /workspace), newest first, at most 200.",
        BuiltinTool::Grep => "Search file contents for an extended regular expression under `path` (default /workspace); prints path:line:text.",
        BuiltinTool::WebFetch => "Fetch a URL and return its content.",
        BuiltinTool::WebSearch => "Search the web and return results.",
    }
}

pub(super) fn schema(tool: BuiltinTool) -> Value {
    let (properties, required): (Value, &[&str]) = match tool {
        BuiltinTool::Bash => (
            json!({
                "command": {"type": "string", "description": "Shell command to execute. Omit only when `restart` is true."},
                "restart": {"type": "boolean", "description": "When true, restart the persistent bash session instead of running a command."},
                "timeout_ms": {"type": "integer", "description": "Per-call timeout in milliseconds (default 120000)."},
            }),
            &[],
        ),
        BuiltinTool::Read => (
            json!({
                "file_path": {"type": "string", "description": "Path of the file to read."},
                "view_range": {"type": "array", "items": {"type": "integer"}, "description": "Optional `[start_line, end_line]` 1-indexed inclusive range; `end_line` of 0 or negative means to the end of the file."},
            }),
            &["file_path"],
        ),
        BuiltinTool::Write => (
            json!({
                "file_path": {"type": "string", "description": "Path of the file to write."},
                "content": {"type": "string", "description": "Full file contents to write."},
            }),
            &["file_path", "content"],
        ),
        BuiltinTool::Edit => (
            json!({
                "file_path": {"type": "string", "description": "Path of the file to edit."},
                "old_string": {"type": "string", "description": "Substring to find and replace."},
                "new_string": {"type": "string", "description": "Replacement text."},
                "replace_all": {"type": "boolean", "description": "When true, replace every occurrence of `old_string` instead of requiring a unique match."},
            }),
            &["file_path", "old_string", "new_string"],
        ),
        BuiltinTool::Glob => (
            json!({
                "pattern": {"type": "string", "description": "Doublestar glob pattern (e.g. `**/*.go`), relative."},
                "path": {"type": "string", "description": "Optional directory root to search under. Defaults to /workspace."},
            }),
            &["pattern"],
        ),
        BuiltinTool::Grep => (
            json!({
                "pattern": {"type": "string", "description": "Regular expression to search for."},
                "path": {"type": "string", "description": "Optional directory root to search under. Defaults to /workspace."},
            }),
            &["pattern"],
        ),
        BuiltinTool::WebFetch => (json!({"url": {"type": "string"}}), &["url"]),
        BuiltinTool::WebSearch => (json!({"query": {"type": "string"}}), &["query"]),
    };
    json!({"type": "object", "properties": properties, "required": required})
}

/// `input` with this server's earlier names mapped to the reference's: `path` → `file_path`
/// (read, write, edit), `offset`/`limit` → `view_range` (read), `timeout` → `timeout_ms`
/// (bash). A reference name that is present wins.
pub(super) fn normalize(tool: BuiltinTool, input: &Map<String, Value>) -> Map<String, Value> {
    let mut input = input.clone();
    let mut alias = |from: &str, to: &str| {
        if !input.contains_key(to) {
            if let Some(value) = input.remove(from) {
                input.insert(to.to_owned(), value);
            }
        }
    };
    match tool {
        BuiltinTool::Read | BuiltinTool::Write | BuiltinTool::Edit => alias("path", "file_path"),
        BuiltinTool::Bash => alias("timeout", "timeout_ms"),
        _ => {}
    }
    if tool == BuiltinTool::Read && !input.contains_key("view_range") {
        let offset = input.get("offset").and_then(Value::as_i64);
        let limit = input.get("limit").and_then(Value::as_i64);
        if offset.is_some() || limit.is_some() {
            let start = offset.unwrap_or(1).max(1);
            let end = limit.map_or(0, |n| start.saturating_add(n.max(1) - 1));
            input.insert("view_range".to_owned(), json!([start, end]));
        }
    }
    input
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn old_names_are_aliases() {
        assert_eq!(
            normalize(
                BuiltinTool::Read,
                &map(json!({"path": "a", "offset": 3, "limit": 2}))
            ),
            map(json!({"file_path": "a", "view_range": [3, 4], "offset": 3, "limit": 2}))
        );
        assert_eq!(
            normalize(BuiltinTool::Read, &map(json!({"path": "a", "limit": 5}))),
            map(json!({"file_path": "a", "view_range": [1, 5], "limit": 5}))
        );
        assert_eq!(
            normalize(
                BuiltinTool::Edit,
                &map(json!({"path": "a", "file_path": "b"}))
            ),
            map(json!({"path": "a", "file_path": "b"}))
        );
        assert_eq!(
            normalize(
                BuiltinTool::Bash,
                &map(json!({"command": "ls", "timeout": 5}))
            ),
            map(json!({"command": "ls", "timeout_ms": 5}))
        );
        assert_eq!(
            normalize(
                BuiltinTool::Glob,
                &map(json!({"pattern": "*", "path": "x"}))
            ),
            map(json!({"pattern": "*", "path": "x"}))
        );
    }

    #[test]
    fn schemas_name_the_reference_fields() {
        let read = schema(BuiltinTool::Read);
        assert_eq!(read["required"], json!(["file_path"]));
        assert!(read["properties"]["view_range"].is_object());
        assert_eq!(schema(BuiltinTool::Bash)["required"], json!([]));
        assert!(schema(BuiltinTool::Edit)["properties"]["replace_all"].is_object());
    }
}
