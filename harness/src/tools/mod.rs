//! The tools of `agent_toolset_20260401` as the hosted toolset defines them (the reference is
//! `anthropic/lib/tools/agent_toolset.py` of the official Python SDK): their descriptions and
//! input schemas ([`schema`]: `file_path`, `view_range`, `replace_all`, `restart`,
//! `timeout_ms`; this server's earlier names still accepted as aliases), and their execution.
//! `bash` (see `bash.rs`) keeps one persistent shell per session in the session's [`Sandbox`];
//! `read` (see `read.rs`), `write`, `edit` (see `edit.rs`), `glob` and `grep` run one command
//! each in the sandbox (the workspace is `/workspace`, the working directory; relative paths are
//! relative to it; the rest of the system is read-only). `web_fetch` (see `web_fetch.rs`) runs
//! `curl` inside the sandbox under the environment's network policy. `web_search` is the model
//! provider's server-side tool when the endpoint is the Anthropic API (the engine offers it
//! that way and the provider runs it); called here it answers with an error saying why not.
//!
//! A tool never fails the session: every failure (bad input, a non-zero exit, a timeout, a
//! sandbox that cannot start) becomes an `is_error` result. Results are the reference's: text,
//! or an `image`/`document` block for an image or PDF `read`.
//!
//! What the server holds for a tool call is bounded by [`Limits`], never by the size of a file
//! in the workspace: file bytes leave the sandbox capped (`head -c`) and base64-encoded, and
//! `edit` refuses an edit whose result would be larger than the cap before building it. `read`
//! and `edit` refuse files that are not valid UTF-8 with a clear error rather than returning or
//! writing back a lossy conversion.

mod bash;
mod edit;
mod read;
mod schema;
mod web_fetch;

use std::time::Duration;

use managed_agents_core::agent::tools::{builtin_domains, builtin_setting, DomainRule, Tool};
use managed_agents_core::agent::{BuiltinTool, PermissionPolicy};
use managed_agents_core::event::ContentBlock;
use serde_json::{Map, Value};

pub use bash::ShellContext;
pub use bash::Shells;

use crate::model::{Provider, ServerTool, ToolSpec};
use crate::sandbox::{Command, Network, Output, Sandbox, Workspace};

/// Caps on tool execution (the reference toolset's where it has them).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes of output kept per result of `read` listings, `glob`, `grep` and `web_fetch`
    /// (`bash` keeps the last 100 KiB, as the reference).
    pub output_bytes: usize,
    /// Default `bash` timeout.
    pub bash_timeout: Duration,
    /// Largest `bash` timeout a call may ask for.
    pub max_bash_timeout: Duration,
    /// Largest text file `read` returns whole and `edit` changes, largest `read` selection, and
    /// largest file `edit` may produce (the reference's 256 KiB).
    pub file_bytes: usize,
    /// Largest image `read` returns, base64-encoded (the reference's 5 MiB).
    pub image_base64_bytes: usize,
    /// Largest PDF `read` returns (the reference's 20 MiB).
    pub pdf_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            output_bytes: 100 * 1024,
            bash_timeout: Duration::from_secs(120),
            max_bash_timeout: Duration::from_secs(600),
            file_bytes: 256 * 1024,
            image_base64_bytes: 5 << 20,
            pdf_bytes: 20 << 20,
        }
    }
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    /// The result blocks given back to the model (one text block, or an image/document).
    pub content: Vec<ContentBlock>,
    /// Whether the call failed.
    pub is_error: bool,
}

impl ToolOutput {
    fn ok(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentBlock::text(text)],
            is_error: false,
        }
    }

    fn error(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentBlock::text(text)],
            is_error: true,
        }
    }

    fn blocks(content: Vec<ContentBlock>) -> Self {
        Self {
            content,
            is_error: false,
        }
    }

    /// The text of the result's text blocks.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The tools offered to the model: enabled built-ins, then custom tools. On the Anthropic API
/// `web_search` is the provider's server-side search (with the agent's domain rule), unless its
/// policy is `always_ask`: a search the provider runs cannot wait for a confirmation, so then
/// it is offered as a function tool, whose calls wait and answer that no search ran.
pub(crate) fn specs(tools: &[Tool], provider: Provider) -> Vec<ToolSpec> {
    let mut specs = Vec::new();
    for tool in BuiltinTool::ALL {
        let Some(setting) = builtin_setting(tools, tool).filter(|s| s.enabled) else {
            continue;
        };
        let server = (tool == BuiltinTool::WebSearch
            && provider == Provider::Anthropic
            && setting.permission_policy != PermissionPolicy::AlwaysAsk)
            .then(|| ServerTool::WebSearch(builtin_domains(tools, tool)));
        specs.push(ToolSpec {
            name: tool.as_str().to_owned(),
            description: schema::description(tool).to_owned(),
            input_schema: schema::schema(tool),
            server,
        });
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
                server: None,
            });
        }
    }
    specs
}

/// The result of a call the provider ran itself (its `web_search_tool_result` block): one
/// line per result (title, URL, age), or the provider's error code.
pub(crate) fn server_result(block: Option<&Value>) -> ToolOutput {
    let Some(block) = block else {
        return ToolOutput::error("the provider returned no result for its web search");
    };
    let content = block.get("content");
    if let Some(code) = content
        .and_then(|c| c.get("error_code"))
        .and_then(Value::as_str)
    {
        return ToolOutput::error(format!("web_search failed: {code}"));
    }
    let lines: Vec<String> = content
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|result| {
            let field = |key| result.get(key).and_then(Value::as_str).unwrap_or("");
            let mut line = format!("{} — {}", field("title"), field("url"));
            if !field("page_age").is_empty() {
                line.push_str(&format!(" ({})", field("page_age")));
            }
            line
        })
        .collect();
    if lines.is_empty() {
        ToolOutput::ok("no results")
    } else {
        ToolOutput::ok(lines.join("\n"))
    }
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

fn optional_bool(input: &Map<String, Value>, key: &str) -> Result<Option<bool>, ToolOutput> {
    match input.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ToolOutput::error(format!(
            "invalid input: `{key}` must be a boolean"
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

/// Runs built-in tool `tool` with `input` in the sandbox (`bash` in the session's shell).
/// Dropping the future kills the command (an interrupt).
pub async fn run<X: Sandbox>(
    cx: &ShellContext<'_, X>,
    limits: &Limits,
    tool: BuiltinTool,
    input: &Map<String, Value>,
    domains: &DomainRule,
) -> ToolOutput {
    let input = &schema::normalize(tool, input);
    let (sandbox, workspace) = (cx.sandbox, cx.workspace);
    let result = match tool {
        BuiltinTool::Bash => bash::bash(cx, limits, input).await,
        BuiltinTool::Read => read::read(sandbox, workspace, limits, input).await,
        BuiltinTool::Write => write(sandbox, workspace, input).await,
        BuiltinTool::Edit => edit::edit(sandbox, workspace, limits, input).await,
        BuiltinTool::Glob => glob(sandbox, workspace, limits, input).await,
        BuiltinTool::Grep => grep(sandbox, workspace, limits, input).await,
        BuiltinTool::WebFetch => {
            web_fetch::web_fetch(
                sandbox,
                workspace,
                cx.network.clone(),
                limits,
                input,
                domains,
            )
            .await
        }
        BuiltinTool::WebSearch => Err(ToolOutput::error(WEB_SEARCH_UNAVAILABLE)),
    };
    let mut output = result.unwrap_or_else(|e| e);
    let cap_at = if tool == BuiltinTool::Bash {
        usize::MAX
    } else {
        limits.output_bytes
    };
    for block in &mut output.content {
        if let ContentBlock::Text { text } = block {
            *text = cap(std::mem::take(text), cap_at);
        }
    }
    output
}

/// The answer to a `web_search` call this server runs itself (the model was offered the
/// provider's server-side search only when the endpoint is the Anthropic API).
pub(crate) const WEB_SEARCH_UNAVAILABLE: &str =
    "web_search is not available here: it is the model provider's server-side search, offered \
     only when the session's LLM endpoint is the Anthropic API. Answer without it, or use \
     web_fetch on a known URL.";

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

const FILE_TIMEOUT: Duration = Duration::from_secs(30);

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
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let shown = string(input, "file_path")?;
    let content = string(input, "content")?;
    put(
        sandbox,
        workspace,
        &path(shown),
        content.as_bytes().to_vec(),
    )
    .await?;
    Ok(ToolOutput::ok(format!(
        "wrote {} bytes to {shown}",
        content.chars().count()
    )))
}

/// Most paths `glob` returns, as the reference.
const GLOB_RESULTS: usize = 200;

async fn glob<X: Sandbox>(
    sandbox: &X,
    workspace: &Workspace,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let pattern = string(input, "pattern")?;
    if pattern.starts_with('/') {
        return Err(ToolOutput::error(
            "glob: absolute pattern not permitted; pass a relative pattern (and optionally path)",
        ));
    }
    if pattern.split('/').any(|part| part == "..") {
        return Err(ToolOutput::error(
            "glob: '..' is not permitted in the pattern",
        ));
    }
    let dir = path(optional_string(input, "path")?.unwrap_or("/workspace"));
    // The pattern is only subject to pathname expansion (an unquoted parameter in `for`), never
    // to command substitution. Newest first, by modification time.
    let script = r#"shopt -s globstar nullglob dotglob; cd -- "$1" || exit 1; root=$(pwd -P)
for f in $2; do printf '%s\t%s/%s\n' "$(stat -c %Y -- "$f" 2>/dev/null || echo 0)" "${root%/}" "$f"; done | sort -t "$(printf '\t')" -k1,1nr -s | head -n "$3" | cut -f2-"#;
    let command = Command::new([
        "bash",
        "-c",
        script,
        "glob",
        &dir,
        pattern,
        &GLOB_RESULTS.to_string(),
    ]);
    listing(sandbox, workspace, limits, command, "no matches").await
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
    // Not in the reference's schema; accepted from callers that used it before.
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
        Some(1) if !out.timed_out => Ok(ToolOutput::ok("no matches")),
        _ => Err(ToolOutput::error(format!(
            "grep: {}",
            describe_failure(&out)
        ))),
    }
}
