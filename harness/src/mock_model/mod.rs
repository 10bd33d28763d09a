//! A scripted mock model server for tests, examples and offline demos. It speaks the real wire
//! protocols — the Anthropic Messages API (`POST /v1/messages`, plain JSON and streaming SSE)
//! and the OpenAI Responses API (`POST /v1/responses`, plain JSON and streaming SSE) — and records
//! every request it receives (method, path, headers, JSON body) so tests can assert on them.
//! Any path ending in `/v1/messages` or `/v1/responses` is accepted, so a base URL with a prefix
//! works too. What the agent CLIs call besides is served as well: `POST
//! .../v1/messages/count_tokens` (the same rough estimate the replies' usage reports), `HEAD` on
//! any path (`200`, a connectivity probe), and Claude Code's requests as they are (`?beta=true`,
//! thinking, tools, metadata, `context_management`, and a trailing `role: "system"` message,
//! which is skipped when looking for the last turn). `GET /_mock/requests` returns the recorded requests as JSON (method, path, headers,
//! body), for tests that run the mock as its own process (`managed-agents mock-model`).
//!
//! # Choosing a reply
//!
//! For each request, in this order:
//! 1. **Directives in the prompt** (the text of the last user message) override everything.
//! 2. A request of the **outcome grader** (its last user message starts with the grader's
//!    marker line, `OUTCOME GRADING REQUEST`) without a `grade` directive is answered
//!    `satisfied` (explanation `mock grader: satisfied`): the agent's own reply directives
//!    that its description carries into the grader's prompt do not apply there (`error`,
//!    `delay`, `slow` and `usage` do), and the script is not consumed.
//! 3. A **context compaction**'s summary request (its prompt ends with the compaction
//!    instruction, `crate::model::compact::INSTRUCTION`) is answered `mock summary of N
//!    messages` (N: the request's messages), whatever other directives say; the script is
//!    not consumed.
//! 4. Otherwise the next reply of the **script** ([`Script`]) is consumed.
//! 5. Otherwise the **default**: when the request ends with tool results (Anthropic
//!    `tool_result`, OpenAI `function_call_output`) the text `Tool result: <content>`, so the
//!    round trip is visible; else the text `ok`.
//!
//! # Prompt directives
//!
//! Written anywhere in the last user message's text, several may be combined. When that
//! message has several text blocks, the last block holding a directive is the prompt (a
//! message that quotes earlier prompts, such as an advisor's transcript, is scripted by its own
//! last block):
//!
//! | Directive | Effect |
//! |---|---|
//! | `[[mock:text hello world]]` | reply with the text `hello world` |
//! | `[[mock:echo]]` | reply with the prompt text, directives removed |
//! | `[[mock:tool bash {"command":"ls"}]]` | a tool call with that input (`{}` when omitted); repeat for parallel calls; with `text` the text comes first; on the OpenAI wire `ns.name` calls function `name` of tool namespace `ns` (Codex's `mcp__<server>` namespaces) |
//! | `[[mock:thinking let me see]]` | a thinking block, then the `text` (default `ok`) |
//! | `[[mock:refusal]]`, `[[mock:refusal TEXT]]` | `stop_reason: refusal` |
//! | `[[mock:error 529]]` | an HTTP error; options: `x3` (the first three requests of this conversation fail, then the other directives or the script apply; default `x1`), `always`, `retry-after=2` (seconds; default `0`, `none` for no header), and an error type word such as `rate_limit_error` (default derived from the status) |
//! | `[[mock:slow 20ms]]`, `[[mock:slow 20ms 8]]` | wait 20 ms before each streamed delta; optionally split text into 8 chunks |
//! | `[[mock:delay 1.5s]]` | wait before responding at all |
//! | `[[mock:fault cut]]`, `[[mock:fault hang]]` | a streamed reply that fails after half its frames: `cut` drops the connection, `hang` stops sending and never ends; `x2`, `always` as for `error` (default `x1`, counted the same way), so a retry gets the reply |
//! | `[[mock:usage 400000 1000]]` | report these input and output token counts as the usage |
//! | `[[mock:grade needs_revision: add a title \| satisfied]]` | answer as the outcome grader: the `\|`-separated item for the prompt's `Iteration: N` line (0-based; the last item repeats, the first without the line), each `VERDICT[: EXPLANATION]`, sent as `VERDICT\nEXPLANATION` (default explanation `mock grader: VERDICT`); wins over `text`/`tool`/`thinking`/`refusal`. Put it in the outcome's rubric: only the grader's prompt holds the rubric |
//!
//! A prompt without any `[[mock:...]]` directive may use the same directives as
//! `<<mock:...>>`: a message one agent passes to another (a coordinator's delegation, written
//! inside its own `[[mock:tool message_agent {...}]]`) carries the directives for the agent
//! that receives it.
//!
//! An error directive's count is kept per conversation (the directive, the number of messages and
//! the last message), so a client retrying the same request sees `x1` fail exactly once.
//!
//! # Script files
//!
//! A JSON array of replies, an object `{"replies": [...]}`, or JSON lines (one reply per line;
//! `#` and `//` lines are comments). Each reply has a `type` and optional `delay_ms`, `chunks`,
//! `chunk_delay_ms`:
//!
//! ```json
//! {"type": "text", "text": "hello world", "chunks": 4, "chunk_delay_ms": 20}
//! {"type": "tool_use", "calls": [{"name": "bash", "input": {"command": "ls"}}]}
//! {"type": "thinking", "thinking": "hmm", "text": "done"}
//! {"type": "refusal", "text": "no"}
//! {"type": "error", "status": 529, "retry_after": 1, "repeat": 2}
//! {"type": "error", "status": 500, "repeat": "always"}
//! ```
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use managed_agents_harness::mock_model::{serve, Reply, Script};
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let script = Script::new().then(Reply::tool("bash", serde_json::json!({"command": "ls"})));
//! let mock = serve(listener, script).await?;
//! // ... point a client at mock.url(), then:
//! for request in mock.requests() {
//!     assert_eq!(request.path, "/v1/messages");
//! }
//! # Ok(()) }
//! ```

mod anthropic;
mod directive;
mod openai;
mod request;
mod script;
mod server;
mod turn;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use script::{ErrorReply, Repeat, Reply, ReplyKind, Script, ToolCall};
pub use server::{run, serve, MockModel, RecordedRequest};

/// Errors of the mock model server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read mock model script {path}: {source}")]
    ReadScript {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid mock model script at line {line}: {source}")]
    Script {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("mock model cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("mock model server failed: {0}")]
    Serve(#[source] std::io::Error),
}
