//! The tools of `agent_toolset_20260401`: their JSON schemas as offered to the model, and their
//! execution. `bash`, `read`, `write`, `edit`, `glob` and `grep` run inside the session's
//! [`Sandbox`] (the workspace is `/workspace`, the working directory; relative paths are
//! relative to it; the rest of the system is read-only). `web_fetch` (see `web_fetch.rs`) runs
//! `curl` inside the sandbox under the environment's network policy. `web_search` needs a
//! search provider, which this server does not have: it answers with an error result saying so.
//!
//! A tool never fails the session: every failure (bad input, a non-zero exit, a timeout, a
//! sandbox that cannot start) becomes an `is_error` result. Output is capped at
//! [`Limits::output_bytes`] with a marker saying how much was cut.
//!
//! What the server holds for a tool call is bounded by these caps, never by the size of a file
//! in the workspace: `read`, `glob` and `grep` do their work in the sandbox and return capped
//! output; `edit` (see `edit.rs`) brings at most [`Limits::file_bytes`] of a file into the
//! server and refuses an edit whose result would be larger before building it. `read` and
//! `edit` refuse files that are not valid UTF-8 with a clear error rather than returning or
//! writing back a lossy conversion.

mod edit;
mod web_fetch;

use std::time::Duration;

use managed_agents_core::agent::tools::{DomainRule, Tool};
use managed_agents_core::agent::BuiltinTool;
use serde_json::{json, Map, Value};

use crate::model::ToolSpec;
use crate::sandbox::{Command, Network, Output, Sandbox, Workspace};

/// Caps on tool execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of output kept per result (stdout and stderr each for bash).
    pub output_bytes: usize,
    /// Default `bash` timeout.
    pub bash_timeout: Duration,
    /// Largest `bash` timeout a call may ask for.
    pub max_bash_timeout: Duration,
    /// Largest file `edit` reads, and largest file it may produce.
    pub file_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            output_bytes: 30_000,
            bash_timeout: Duration::from_secs(120),
            max_bash_timeout: Duration::from_secs(600),
            file_bytes: 4 << 20,
        }
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The text given back to the model.
    pub text: String,
    /// Whether the call failed.
    pub is_error: bool,
}

impl ToolOutput {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: false,
        }
    }

    fn error(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: true,
        }
    }
}

fn description(tool: BuiltinTool) -> &'static str {
    match tool {
        BuiltinTool::Bash => "Run a bash command in the session's workspace (/workspace, the working directory). State on disk persists between calls; each call is a fresh shell. `timeout` is in milliseconds (default 120000, max 600000).",
        BuiltinTool::Read => "Read a UTF-8 text file. Lines are numbered from 1; `offset` is the first line to read and `limit` the number of lines (default 2000).",
        BuiltinTool::Write => "Write a file, creating parent directories and replacing any existing content.",
        BuiltinTool::Edit => "Replace `old_string` with `new_string` in a UTF-8 text file. `old_string` must occur exactly once unless `replace_all` is true. Binary files, and files or results of more than a few MiB, are refused (use bash for those).",
        BuiltinTool::Glob => "List files matching a glob pattern (`**` matches directories recursively), relative to `path` (default /workspace).",
        BuiltinTool::Grep => "Search file contents with an extended regular expression, recursively under `path` (default /workspace), optionally only in files matching `glob`. Prints file:line:text.",
        BuiltinTool::WebFetch => "Fetch a URL and return its content.",
        BuiltinTool::WebSearch => "Search the web and return results.",
    }
}

fn schema(tool: BuiltinTool) -> Value {
    let (properties, required): (Value, &[&str]) = match tool {
        BuiltinTool::Bash => (
            json!({"command": {"type": "string", "description": "The command to run."},
                   "timeout": {"type": "integer", "description": "Timeout in milliseconds.", "minimum": 1}}),
            &["command"],
        ),
        BuiltinTool::Read => (
            json!({"path": {"type": "string", "description": "Absolute or workspace-relative path."},
                   "offset": {"type": "integer", "description": "First line (1-based).", "minimum": 1},
                   "limit": {"type": "integer", "description": "Number of lines.", "minimum": 1}}),
            &["path"],
        ),
        BuiltinTool::Write => (
            json!({"path": {"type": "string"}, "content": {"type": "string"}}),
            &["path", "content"],
        ),
        BuiltinTool::Edit => (
            json!({"path": {"type": "string"}, "old_string": {"type": "string"},
                   "new_string": {"type": "string"}, "replace_all": {"type": "boolean"}}),
            &["path", "old_string", "new_string"],
        ),
        BuiltinTool::Glob => (
            json!({"pattern": {"type": "string"}, "path": {"type": "string"}}),
            &["pattern"],
        ),
        BuiltinTool::Grep => (
            json!({"pattern": {"type": "string"}, "path": {"type": "string"}, "glob": {"type": "string"}}),
            &["pattern"],
        ),
        BuiltinTool::WebFetch => (json!({"url": {"type": "string"}}), &["url"]),
        BuiltinTool::WebSearch => (json!({"query": {"type": "string"}}), &["query"]),
    };
    json!({"type": "object", "properties": properties, "required": required})
}

/// The tools offered to the model: enabled built-ins, then custom tools.
pub(crate) fn specs(tools: &[Tool]) -> Vec<ToolSpec> {
    let mut specs = Vec::new();
    for tool in BuiltinTool::ALL {
        let enabled = managed_agents_core::agent::tools::builtin_setting(tools, tool)
            .is_some_and(|s| s.enabled);
        if enabled {
            specs.push(ToolSpec {
                name: tool.as_str().to_owned(),
                description: description(tool).to_owned(),
                input_schema: schema(tool),
            });
        }
    }
    for tool in tools {
        if let Tool::Custom(custom) = tool {
            let mut schema = custom.input_schema.clone();
            // Resolved schemas keep `properties`/`required` as `null` when unset; providers
            // want them absent.
            schema.retain(|_, v| !v.is_null());
            specs.push(ToolSpec {
                name: custom.name.clone(),
                description: custom.description.clone(),
                input_schema: Value::Object(schema),
            });
        }
    }
    specs
}

fn string<'a>(input: &'a Map<String, Value>, key: &str) -> Result<&'a str, ToolOutput> {
    input
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| ToolOutput::error(format!("invalid input: `{key}` must be a string")))
}

fn optional_string<'a>(
    input: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, ToolOutput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolOutput::error(format!(
            "invalid input: `{key}` must be a string"
        ))),
    }
}

fn optional_u64(input: &Map<String, Value>, key: &str) -> Result<Option<u64>, ToolOutput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            ToolOutput::error(format!("invalid input: `{key}` must be a positive integer"))
        }),
    }
}

/// A path inside the sandbox: relative paths are relative to `/workspace`.
fn path(p: &str) -> String {
    if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/workspace/{p}")
    }
}

fn cap(mut text: String, limit: usize) -> String {
    if text.len() > limit {
        let total = text.len();
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(&format!(
            "\n[output truncated: showing the first {cut} of {total} bytes]\n"
        ));
    }
    text
}

/// Runs built-in tool `tool` with `input` in the sandbox. Dropping the future kills the
/// command (an interrupt).
pub async fn run<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    network: Network,
    limits: &Limits,
    tool: BuiltinTool,
    input: &Map<String, Value>,
    domains: &DomainRule,
) -> ToolOutput {
    let result = match tool {
        BuiltinTool::Bash => bash(sandbox, workspace, network, limits, input).await,
        BuiltinTool::Read => read(sandbox, workspace, limits, input).await,
        BuiltinTool::Write => write(sandbox, workspace, limits, input).await,
        BuiltinTool::Edit => edit::edit(sandbox, workspace, limits, input).await,
        BuiltinTool::Glob => glob(sandbox, workspace, limits, input).await,
        BuiltinTool::Grep => grep(sandbox, workspace, limits, input).await,
        BuiltinTool::WebFetch => {
            web_fetch::web_fetch(sandbox, workspace, network, limits, input, domains).await
        }
        BuiltinTool::WebSearch => Err(ToolOutput::error(
            "web_search is not available on this server: no search provider is configured. \
             Answer without it, or use web_fetch on a known URL."
                .to_owned(),
        )),
    };
    let mut output = result.unwrap_or_else(|e| e);
    output.text = cap(output.text, limits.output_bytes);
    output
}

async fn exec<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    network: Network,
    command: Command,
) -> Result<Output, ToolOutput> {
    sandbox
        .run(workspace, network, command)
        .await
        .map_err(|e| ToolOutput::error(format!("the sandbox could not run the tool: {e}")))
}

fn describe_failure(out: &Output) -> String {
    let mut text = String::new();
    text.push_str(&out.stdout);
    if !out.stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&out.stderr);
    }
    if out.timed_out {
        text.push_str(&format!(
            "\n[command timed out after {:.1}s and was killed]",
            out.duration.as_secs_f64()
        ));
    } else if let Some(code) = out.exit_code.filter(|c| *c != 0) {
        text.push_str(&format!("\n[exit code {code}]"));
    } else if let Some(signal) = out.signal {
        text.push_str(&format!("\n[killed by signal {signal}]"));
    }
    text
}

async fn bash<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    network: Network,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let command = string(input, "command")?;
    let timeout = optional_u64(input, "timeout")?
        .map(Duration::from_millis)
        .unwrap_or(limits.bash_timeout)
        .min(limits.max_bash_timeout);
    let out = exec(
        sandbox,
        workspace,
        network,
        Command::shell(command)
            .timeout(timeout)
            .output_limit(limits.output_bytes),
    )
    .await?;
    let text = describe_failure(&out);
    Ok(ToolOutput {
        text: if text.is_empty() && out.success() {
            "(no output)".to_owned()
        } else {
            text
        },
        is_error: !out.success(),
    })
}

const FILE_TIMEOUT: Duration = Duration::from_secs(30);

async fn read<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let file = path(string(input, "path")?);
    let offset = optional_u64(input, "offset")?.unwrap_or(1).max(1);
    let limit = optional_u64(input, "limit")?.unwrap_or(2000).max(1);
    let last = offset.saturating_add(limit - 1);
    // The lines in range are checked first: `grep -ax '.*'` in a UTF-8 locale matches only
    // lines of valid characters, so `-v` finds a line with an invalid sequence.
    let script = r#"[ -f "$1" ] || { if [ -d "$1" ]; then echo "$1 is a directory" >&2; else echo "$1: no such file" >&2; fi; exit 1; }
if awk -v s="$2" -v e="$3" 'NR>=s && NR<=e { print } NR>e { exit }' "$1" | LC_ALL=C.UTF-8 grep -qaxv '.*'; then
  echo "$1 is not valid UTF-8 text (a binary file?); inspect it with bash instead (for example with file or xxd)" >&2; exit 1
fi
awk -v s="$2" -v e="$3" 'NR>=s && NR<=e { printf "%6d\t%s\n", NR, $0 } NR>e { exit }' "$1""#;
    let argv = [
        "bash",
        "-c",
        script,
        "read",
        &file,
        &offset.to_string(),
        &last.to_string(),
    ];
    let empty = "(empty file or no lines in range)";
    listing(sandbox, workspace, limits, Command::new(argv), empty).await
}

/// Runs a read-only file command without network, under the file timeout and the output cap:
/// its stdout (or `empty` when it printed nothing), or an error result with what it printed.
async fn listing<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    command: Command,
    empty: &str,
) -> Result<ToolOutput, ToolOutput> {
    let command = command
        .timeout(FILE_TIMEOUT)
        .output_limit(limits.output_bytes);
    let out = exec(sandbox, workspace, Network::Isolated, command).await?;
    if !out.success() {
        return Err(ToolOutput::error(describe_failure(&out)));
    }
    Ok(ToolOutput::ok(if out.stdout.is_empty() {
        empty.to_owned()
    } else {
        out.stdout
    }))
}

/// Replaces `file`'s content with `content` (creating parent directories), in the sandbox.
/// Atomic: the bytes go to a temporary file beside the target (through a symlink, to the file
/// it names), which then replaces it with its mode, so a failed write (a full workspace, a
/// timeout) leaves the old content whole.
async fn put<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    file: &str,
    content: Vec<u8>,
) -> Result<(), ToolOutput> {
    let script = r#"set -e
mkdir -p -- "$(dirname -- "$1")"
target=$(readlink -f -- "$1")
tmp=$(mktemp -- "$target.XXXXXX")
trap 'rm -f -- "$tmp"' EXIT
cat > "$tmp"
if [ -e "$target" ]; then chmod --reference="$target" -- "$tmp"; fi
mv -f -- "$tmp" "$target"
trap - EXIT"#;
    let out = exec(
        sandbox,
        workspace,
        Network::Isolated,
        Command::new(["bash", "-c", script, "write", file])
            .stdin(content)
            .timeout(FILE_TIMEOUT),
    )
    .await?;
    if out.success() {
        Ok(())
    } else {
        Err(ToolOutput::error(describe_failure(&out)))
    }
}

async fn write<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    _limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let file = path(string(input, "path")?);
    let content = string(input, "content")?;
    put(sandbox, workspace, &file, content.as_bytes().to_vec()).await?;
    Ok(ToolOutput::ok(format!(
        "Wrote {} bytes to {file}",
        content.len()
    )))
}

async fn glob<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let pattern = string(input, "pattern")?;
    let dir = path(optional_string(input, "path")?.unwrap_or("/workspace"));
    // The pattern is only subject to pathname expansion (an unquoted parameter in `for`), never
    // to command substitution.
    let script = r#"shopt -s globstar nullglob dotglob; cd -- "$1" || exit 1; for f in $2; do printf '%s\n' "$f"; done"#;
    let command = Command::new(["bash", "-c", script, "glob", &dir, pattern]);
    listing(sandbox, workspace, limits, command, "No files matched.").await
}

async fn grep<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let pattern = string(input, "pattern")?;
    let dir = path(optional_string(input, "path")?.unwrap_or("/workspace"));
    let mut argv = vec!["grep".to_owned(), "-rnEI".to_owned()];
    if let Some(glob) = optional_string(input, "glob")? {
        argv.push(format!("--include={glob}"));
    }
    argv.extend(["-e".to_owned(), pattern.to_owned(), "--".to_owned(), dir]);
    let out = exec(
        sandbox,
        workspace,
        Network::Isolated,
        Command::new(argv)
            .timeout(FILE_TIMEOUT)
            .output_limit(limits.output_bytes),
    )
    .await?;
    match out.exit_code {
        Some(0) => Ok(ToolOutput::ok(out.stdout)),
        Some(1) if !out.timed_out => Ok(ToolOutput::ok("No matches found.")),
        _ => Err(ToolOutput::error(describe_failure(&out))),
    }
}
