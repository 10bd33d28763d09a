//! How the runner and its turns behave: [`Options`] (workspaces, model request limits, tool
//! limits, default endpoints, the endpoint allow-list) and the model retry [`Backoff`].
//!
//! Its own module so the runner (which holds the options) and the engine (which reads them in
//! every turn) both depend on it and not on each other.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::blobs::BlobStore;
use crate::door::credentials::Interception;
use crate::door::Door;
use crate::model::AllowList;
use crate::runtimes::Runtimes;
use crate::sandbox::Workspaces;
use crate::tools;

/// The default of [`Options::compact_at_tokens`]: three quarters of a 200,000-token context
/// window, leaving room for the summary request and the reply.
pub const DEFAULT_COMPACT_AT_TOKENS: u64 = 150_000;

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where session workspaces live (`<data dir>/workspaces`).
    pub workspaces: Workspaces,
    /// Retry policy for transient model failures.
    pub backoff: Backoff,
    /// `max_tokens` of every model request.
    pub max_tokens: u32,
    /// Tool output and timeout caps.
    pub tools: tools::Limits,
    /// The Messages API base URL when the LLM vault names none.
    pub anthropic_base_url: String,
    /// The Responses API base URL when the LLM vault names none.
    pub openai_base_url: String,
    /// Longest time one model request (the whole stream) may take.
    pub request_timeout: Duration,
    /// Longest silence of a model response (waiting for its headers or the next bytes of its
    /// stream) before the request is abandoned as a transient failure and retried.
    pub stream_idle_timeout: Duration,
    /// Model requests one turn may make before it is stopped.
    pub max_model_requests_per_turn: u32,
    /// The resident engines compact an agent's context before a model request once its
    /// previous request's input reached this many tokens (`engine::compact`); 0 never does.
    pub compact_at_tokens: u64,
    /// The model endpoints LLM vaults may point at (`serve --llm-endpoint-allow`); empty: any.
    pub llm_endpoints: AllowList,
    /// Where the agent CLIs of the `claude` and `codex` engines are (`<data dir>/runtimes`).
    pub runtimes: Runtimes,
    /// Where environments' package layers are built and kept (`<data dir>/layers`).
    pub layers: PathBuf,
    /// The egress door sandboxes reach the network through; `None`: sandboxes have no
    /// network at all.
    pub door: Option<Door>,
    /// Credential injection (the door's CA and upstream roots); `None`: no destination is
    /// intercepted and vault credentials never leave the server.
    pub interception: Option<Interception>,
    /// Where file and skill bytes are read from and session outputs stored (the server's
    /// blob store); `None`: file resources, custom skills and outputs are not attached.
    pub blobs: Option<Arc<dyn BlobStore>>,
    /// `serve --anthropic-skills-dir`: the operator's `{type: "anthropic"}` skills.
    pub anthropic_skills: Option<PathBuf>,
    /// How many session records (decoded, with the model conversation folded from them) the
    /// runner keeps between turns in all (`runner::kept`), so a turn reads only what is new;
    /// 0 keeps nothing.
    pub kept_records: usize,
    /// `serve --requires-action-timeout`: how long a session may wait in `requires_action`
    /// before the runner denies its pending calls (`None`: for ever).
    pub requires_action_timeout: Option<Duration>,
    /// `serve --otlp-include-content`: message text, tool input and tool output become span
    /// attributes ([`crate::telemetry`]); off, spans carry ids, names, counts and outcomes only.
    pub trace_content: bool,
    /// Lease each session before driving it, so several runner processes can share one store
    /// (`None`: this is the only runner; see [`Leasing`]).
    pub leasing: Option<Leasing>,
}

impl Options {
    /// Defaults, with workspaces under `workspaces` and agent runtimes and package layers
    /// beside them (`<workspaces>/../runtimes`, `<workspaces>/../layers`).
    pub fn new(workspaces: Workspaces) -> Self {
        let beside = workspaces
            .root()
            .parent()
            .unwrap_or(workspaces.root())
            .to_owned();
        Self {
            runtimes: Runtimes::new(beside.join("runtimes")),
            layers: beside.join("layers"),
            workspaces,
            backoff: Backoff::default(),
            max_tokens: 8192,
            tools: tools::Limits::default(),
            anthropic_base_url: "https://api.anthropic.com".into(),
            openai_base_url: "https://api.openai.com".into(),
            request_timeout: Duration::from_secs(600),
            stream_idle_timeout: Duration::from_secs(300),
            max_model_requests_per_turn: 200,
            compact_at_tokens: DEFAULT_COMPACT_AT_TOKENS,
            llm_endpoints: AllowList::default(),
            door: None,
            interception: None,
            blobs: None,
            anthropic_skills: None,
            kept_records: 200_000,
            requires_action_timeout: None,
            trace_content: false,
            leasing: None,
        }
    }
}

/// How a runner that shares its store with other runner processes leases sessions
/// (`storage::Store::lease`): it holds a session's lease while its task drives the session,
/// renews it every third of `ttl`, and a session whose runner died is taken over once the lease
/// lapsed (the runner's rescan finds it).
#[derive(Debug, Clone)]
pub struct Leasing {
    /// This runner process, unique among the runners over the store (and across its restarts).
    pub holder: String,
    /// How long a lease lasts without renewal.
    pub ttl: Duration,
}

impl Leasing {
    /// A holder name unique to this process: the host, the pid and random bits.
    pub fn unique(ttl: Duration) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let holder = format!("{host}/{}/{:016x}", std::process::id(), fastrand::u64(..));
        Self { holder, ttl }
    }
}

/// Exponential backoff for transient model failures.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest computed delay (a longer `retry-after` is still honoured).
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Give up once waiting more would exceed this since the first attempt.
    pub max_total: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
            max_retries: 8,
            max_total: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay before retry `attempt + 1`: `initial · 2^attempt`, capped, with ±20% jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        base.mul_f64(0.8 + 0.4 * fastrand::f64())
    }
}
