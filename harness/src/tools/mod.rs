//! The tools of `agent_toolset_20260401`: their JSON schemas as offered to the model, and their
//! execution. `bash`, `read`, `write`, `edit`, `glob` and `grep` run inside the session's
//! [`Sandbox`] (the workspace is `/workspace`, the working directory; relative paths are
//! relative to it; the rest of the system is read-only). `web_fetch` runs `curl` inside the
//! sandbox under the environment's network policy (http and https only, bounded time and
//! size): it works in `unrestricted` environments and fails clearly in `limited` ones until the
//! egress proxy exists. The tool's `allowed_domains`/`blocked_domains` are enforced on the URL's
//! host before anything runs, and with a list configured redirects are not followed (a
//! redirect is reported, so the model fetches the new URL, which is checked again). `web_search` needs a
//! search provider, which this server does not have: it answers with an error result saying so.
//!
//! A tool never fails the session: every failure (bad input, a non-zero exit, a timeout, a
//! sandbox that cannot start) becomes an `is_error` result. Output is capped at
//! [`Limits::output_bytes`] with a marker saying how much was cut.

use std::time::Duration;

use managed_agents_core::agent::tools::{custom_tool, DomainRule, Tool};
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
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            output_bytes: 30_000,
            bash_timeout: Duration::from_secs(120),
            max_bash_timeout: Duration::from_secs(600),
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
        BuiltinTool::Read => "Read a text file. Lines are numbered from 1; `offset` is the first line to read and `limit` the number of lines (default 2000).",
        BuiltinTool::Write => "Write a file, creating parent directories and replacing any existing content.",
        BuiltinTool::Edit => "Replace `old_string` with `new_string` in a file. `old_string` must occur exactly once unless `replace_all` is true.",
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

/// Whether `name` is a custom tool of the agent.
pub(crate) fn is_custom(tools: &[Tool], name: &str) -> bool {
    custom_tool(tools, name).is_some()
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
        BuiltinTool::Edit => edit(sandbox, workspace, limits, input).await,
        BuiltinTool::Glob => glob(sandbox, workspace, limits, input).await,
        BuiltinTool::Grep => grep(sandbox, workspace, limits, input).await,
        BuiltinTool::WebFetch => {
            web_fetch(sandbox, workspace, network, limits, input, domains).await
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
/// How long one `web_fetch` may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes one `web_fetch` downloads.
const FETCH_MAX_BYTES: usize = 5_000_000;

async fn web_fetch<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    network: Network,
    limits: &Limits,
    input: &Map<String, Value>,
    domains: &DomainRule,
) -> Result<ToolOutput, ToolOutput> {
    let url = string(input, "url")?;
    let scheme_ok = url.starts_with("http://") || url.starts_with("https://");
    if !scheme_ok || url.len() > 8192 || url.chars().any(char::is_whitespace) {
        return Err(ToolOutput::error(format!(
            "invalid input: `url` must be an http:// or https:// URL, got {url:?}"
        )));
    }
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| ToolOutput::error(format!("invalid input: `url` has no host: {url:?}")))?;
    if !domains.permits(&host) {
        return Err(ToolOutput::error(format!(
            "web_fetch may not reach {host}: the agent's web_fetch configuration does not allow \
             this domain."
        )));
    }
    let max_redirects = if *domains == DomainRule::Any {
        "5"
    } else {
        "0"
    };
    if network == Network::Limited {
        return Err(ToolOutput::error(
            "web_fetch cannot reach the network: this session's environment has limited \
             networking and the egress proxy that would allow its hosts is not available yet."
                .to_owned(),
        ));
    }
    let seconds = FETCH_TIMEOUT.as_secs().to_string();
    let max_bytes = FETCH_MAX_BYTES.to_string();
    let out = exec(
        sandbox,
        workspace,
        network,
        Command::new([
            "curl",
            "--silent",
            "--show-error",
            "--location",
            "--max-redirs",
            max_redirects,
            "--proto",
            "=http,https",
            "--proto-redir",
            "=http,https",
            "--max-time",
            &seconds,
            "--max-filesize",
            &max_bytes,
            "--fail-with-body",
            "--",
            url,
        ])
        .timeout(FETCH_TIMEOUT + Duration::from_secs(5))
        .output_limit(limits.output_bytes),
    )
    .await?;
    if !out.success() {
        return Err(ToolOutput::error(format!(
            "fetching {url} failed:\n{}",
            describe_failure(&out)
        )));
    }
    Ok(ToolOutput {
        text: if out.stdout.is_empty() {
            "(empty response body)".to_owned()
        } else {
            out.stdout
        },
        is_error: false,
    })
}

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
    let script = r#"[ -f "$1" ] || { if [ -d "$1" ]; then echo "$1 is a directory" >&2; else echo "$1: no such file" >&2; fi; exit 1; }
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
    let out = exec(sandbox, workspace, Network::Limited, command).await?;
    if !out.success() {
        return Err(ToolOutput::error(describe_failure(&out)));
    }
    Ok(ToolOutput::ok(if out.stdout.is_empty() {
        empty.to_owned()
    } else {
        out.stdout
    }))
}

async fn put<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    file: &str,
    content: &str,
) -> Result<(), ToolOutput> {
    let script = r#"mkdir -p -- "$(dirname -- "$1")" && cat > "$1""#;
    let out = exec(
        sandbox,
        workspace,
        Network::Limited,
        Command::new(["bash", "-c", script, "write", file])
            .stdin(content.as_bytes().to_vec())
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
    put(sandbox, workspace, &file, content).await?;
    Ok(ToolOutput::ok(format!(
        "Wrote {} bytes to {file}",
        content.len()
    )))
}

async fn edit<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    _limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let file = path(string(input, "path")?);
    let old = string(input, "old_string")?;
    let new = string(input, "new_string")?;
    let all = input
        .get("replace_all")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if old.is_empty() {
        return Err(ToolOutput::error("old_string must not be empty"));
    }
    let out = exec(
        sandbox,
        workspace,
        Network::Limited,
        Command::new(["cat", "--", &file])
            .timeout(FILE_TIMEOUT)
            .output_limit(16 << 20),
    )
    .await?;
    if !out.success() {
        return Err(ToolOutput::error(describe_failure(&out)));
    }
    if out.truncated {
        return Err(ToolOutput::error(format!("{file} is too large to edit")));
    }
    let count = out.stdout.matches(old).count();
    if count == 0 {
        return Err(ToolOutput::error(format!("old_string not found in {file}")));
    }
    if count > 1 && !all {
        return Err(ToolOutput::error(format!(
            "old_string occurs {count} times in {file}; give more context or set replace_all"
        )));
    }
    let updated = if all {
        out.stdout.replace(old, new)
    } else {
        out.stdout.replacen(old, new, 1)
    };
    put(sandbox, workspace, &file, &updated).await?;
    Ok(ToolOutput::ok(format!(
        "Replaced {} occurrence{} in {file}",
        if all { count } else { 1 },
        if all && count != 1 { "s" } else { "" }
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
        Network::Limited,
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
