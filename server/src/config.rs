//! Command-line flags (with environment-variable equivalents) parsed into a raw form, then
//! validated into a typed [`ServeConfig`] before anything starts. A bad value is reported in one
//! line naming the flag.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::store::RocksMemory;

/// `managed-agents`: a self-hosted Claude Managed Agents API.
#[derive(Debug, Parser)]
#[command(name = "managed-agents", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(Box<ServeArgs>),
    /// Manage API keys (stop the server first when it uses RocksDB on the same data dir).
    Keys {
        /// The key operation.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run the scripted mock model server (Anthropic Messages and OpenAI Responses shapes) that
    /// tests and demos point an LLM vault's base URL at; serves until Ctrl-C.
    MockModel(MockModelArgs),
    /// Manage the agent CLIs the `claude` and `codex` engines run inside sandboxes.
    Runtimes {
        /// The runtime operation.
        #[command(subcommand)]
        command: RuntimesCommand,
    },
    /// Watch a running server's sessions from a terminal.
    Sessions {
        /// The session operation.
        #[command(subcommand)]
        command: crate::cli::SessionsCommand,
    },
    /// Send a session a user message on a running server.
    Send(crate::cli::SendArgs),
}

/// `runtimes` subcommands.
#[derive(Debug, Subcommand)]
pub enum RuntimesCommand {
    /// Install the pinned version of an agent CLI with npm into the runtime directory (read-only
    /// in sandboxes, shared by every session); does nothing when it is installed. Prints the
    /// version directory.
    Install {
        /// Which agent CLI.
        #[arg(value_enum)]
        agent: AgentArg,
        #[command(flatten)]
        dirs: RuntimesDirArgs,
        /// The npm to run (default: `npm` on PATH).
        #[arg(long)]
        npm: Option<PathBuf>,
    },
}

/// An agent CLI, by its command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AgentArg {
    /// Claude Code (`@anthropic-ai/claude-code`).
    Claude,
    /// Codex (`@openai/codex`).
    Codex,
}

impl AgentArg {
    /// The harness's agent.
    pub fn agent(self) -> managed_agents_harness::runtimes::Agent {
        match self {
            AgentArg::Claude => managed_agents_harness::runtimes::Agent::Claude,
            AgentArg::Codex => managed_agents_harness::runtimes::Agent::Codex,
        }
    }
}

/// Where agent runtimes live.
#[derive(Debug, Args)]
pub struct RuntimesDirArgs {
    /// The server's data directory.
    #[arg(long, env = "MANAGED_AGENTS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The runtime directory (default: `<data-dir>/runtimes`).
    #[arg(long, env = "MANAGED_AGENTS_RUNTIMES_DIR")]
    pub runtimes_dir: Option<PathBuf>,
}

impl RuntimesDirArgs {
    /// The runtime directory.
    pub fn dir(&self) -> PathBuf {
        runtimes_dir(&self.data_dir, self.runtimes_dir.as_deref())
    }
}

fn runtimes_dir(data_dir: &std::path::Path, explicit: Option<&std::path::Path>) -> PathBuf {
    explicit.map_or_else(|| data_dir.join("runtimes"), std::path::Path::to_path_buf)
}

/// Flags of `mock-model`.
#[derive(Debug, Args)]
pub struct MockModelArgs {
    /// Address to listen on (`host:port`; port 0 picks a free one, printed on stderr).
    #[arg(long)]
    pub listen: String,
    /// A script of replies (a JSON array, `{"replies": [...]}` or JSON lines); without it the
    /// mock follows prompt directives and its defaults.
    #[arg(long)]
    pub script: Option<PathBuf>,
}

impl MockModelArgs {
    /// The address to bind.
    pub fn listen(&self) -> Result<SocketAddr, Error> {
        parse_listen(&self.listen)
    }
}

fn parse_listen(listen: &str) -> Result<SocketAddr, Error> {
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| Error::Listen(listen.to_owned()))
}

/// Which storage backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StorageKind {
    /// Durable, under the data dir.
    Rocksdb,
    /// In process memory; nothing survives a restart.
    Memory,
    /// A PostgreSQL database (`--database-url`), which several processes may share.
    Postgres,
}

/// The storage backend with what it needs to open, validated.
#[derive(Clone, PartialEq, Eq)]
pub enum Storage {
    /// RocksDB under the data dir.
    Rocksdb,
    /// In process memory.
    Memory,
    /// PostgreSQL at this URL.
    Postgres {
        /// The connection URL (may hold a password: never logged).
        url: String,
    },
}

impl Storage {
    /// The backend `kind` with `database_url`, which PostgreSQL needs and the others ignore
    /// (the variable may be set for other processes).
    pub fn choose(kind: StorageKind, database_url: Option<String>) -> Result<Self, Error> {
        let database_url = database_url.filter(|url| !url.trim().is_empty());
        match kind {
            StorageKind::Postgres => database_url
                .map(|url| Storage::Postgres { url })
                .ok_or(Error::DatabaseUrlMissing),
            StorageKind::Rocksdb => Ok(Storage::Rocksdb),
            StorageKind::Memory => Ok(Storage::Memory),
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Storage::Rocksdb => "rocksdb",
            Storage::Memory => "memory",
            Storage::Postgres { .. } => "postgres",
        })
    }
}

/// Flags of `serve`, as given.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`host:port`; port 0 picks a free one).
    #[arg(long, env = "MANAGED_AGENTS_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the database, file bytes and the generated secret key.
    #[arg(long, env = "MANAGED_AGENTS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Storage backend and database.
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Where file and skill bytes live.
    #[command(flatten)]
    pub blobs: BlobArgs,
    /// Key that encrypts secrets at rest: 64 hex digits or base64 of 32 bytes. Default: a key
    /// generated into `<data-dir>/secret.key` (mode 0600).
    #[arg(long, env = "MANAGED_AGENTS_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// An API key to install for workspace `default` at start-up (for CI and containers).
    #[arg(long, env = "MANAGED_AGENTS_BOOTSTRAP_KEY", hide_env_values = true)]
    pub bootstrap_key: Option<String>,
    /// Seconds between `ping` frames on idle SSE streams.
    #[arg(long, env = "MANAGED_AGENTS_PING_SECONDS", default_value_t = 15)]
    pub ping_seconds: u64,
    /// Whether to run agent turns (`off`: the API only stores events; for API-only nodes and
    /// benchmarks of the HTTP path).
    #[arg(long, env = "MANAGED_AGENTS_RUNNER", value_enum, default_value_t = RunnerMode::On)]
    pub runner: RunnerMode,
    /// With `--storage postgres`, every node running turns leases each session it drives for
    /// this many seconds (renewed every third of it while the turn runs): a session whose node
    /// died is taken over by another node's runner once its lease lapses (2 to 3600).
    #[arg(
        long,
        env = "MANAGED_AGENTS_RUNNER_LEASE_SECONDS",
        value_name = "SECS",
        default_value_t = 15
    )]
    pub runner_lease_seconds: u64,
    /// A model endpoint LLM vaults may point at: a host (`api.anthropic.com`, `10.0.0.5:9000`)
    /// or a URL prefix (`https://gateway.internal/anthropic`). Repeatable (the variable takes a
    /// comma-separated list); without it any endpoint is allowed.
    #[arg(
        long = "llm-endpoint-allow",
        env = "MANAGED_AGENTS_LLM_ENDPOINT_ALLOW",
        value_name = "PREFIX_OR_HOST",
        value_delimiter = ','
    )]
    pub llm_endpoint_allow: Vec<String>,
    /// Let sandboxes reach loopback, link-local, private and documentation-range addresses
    /// through the egress proxy (for test servers on loopback and mirrors of closed networks;
    /// never the server's own API port). Off by default.
    #[arg(long, env = "MANAGED_AGENTS_EGRESS_ALLOW_PRIVATE")]
    pub egress_allow_private: bool,
    /// Disk space each session's workspace may take (`10GiB`, `512MiB`, or bytes; units are
    /// powers of 1024; `0` for none). Enforced when the server runs as root, with a
    /// loop-mounted filesystem image per workspace.
    #[arg(long, env = "MANAGED_AGENTS_WORKSPACE_QUOTA", default_value = "10GiB")]
    pub workspace_quota: String,
    /// Size of each sandbox's private `/tmp` (a tmpfs: memory, emptied after every command).
    #[arg(
        long,
        env = "MANAGED_AGENTS_SANDBOX_TMP_SIZE",
        default_value = "512MiB"
    )]
    pub sandbox_tmp_size: String,
    /// Host uids sandboxes run as when the server is root (`FIRST-LAST`): each session's
    /// workspace gets its own. Pick uids no host account uses.
    #[arg(
        long,
        env = "MANAGED_AGENTS_SANDBOX_UID_RANGE",
        default_value = "60000-60999"
    )]
    pub sandbox_uid_range: String,
    /// Where `managed-agents runtimes install` put the agent CLIs (default:
    /// `<data-dir>/runtimes`); bound read-only into every sandbox.
    #[arg(long, env = "MANAGED_AGENTS_RUNTIMES_DIR")]
    pub runtimes_dir: Option<PathBuf>,
    /// Let uploaded files be downloaded (`GET /v1/files/{id}/content`). Off by default, as
    /// in the hosted API, where only session outputs are downloadable.
    #[arg(long, env = "MANAGED_AGENTS_UPLOADS_DOWNLOADABLE")]
    pub uploads_downloadable: bool,
    /// A directory of `{type: "anthropic"}` skills an operator provides (one directory per
    /// skill id holding its `SKILL.md`, e.g. `DIR/xlsx/SKILL.md`); without it agents cannot
    /// reference Anthropic skills (they are not available offline).
    #[arg(long, env = "MANAGED_AGENTS_ANTHROPIC_SKILLS_DIR")]
    pub anthropic_skills_dir: Option<PathBuf>,
    /// The `claude` binary to run in sandboxes instead of the installed runtime (bound
    /// read-only at its own path).
    #[arg(long, env = "MANAGED_AGENTS_CLAUDE_BIN")]
    pub claude_bin: Option<PathBuf>,
    /// The `codex` binary to run in sandboxes instead of the installed runtime.
    #[arg(long, env = "MANAGED_AGENTS_CODEX_BIN")]
    pub codex_bin: Option<PathBuf>,
    /// A PEM file of CA certificates the egress proxy trusts, besides the system's, for
    /// destinations it injects credentials into (re-encrypting upstream). Repeatable (the
    /// variable takes a comma-separated list); for HTTPS servers with a private CA, and tests.
    #[arg(
        long = "egress-upstream-ca",
        env = "MANAGED_AGENTS_EGRESS_UPSTREAM_CA",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub egress_upstream_ca: Vec<PathBuf>,
    /// Seconds a session may wait in `requires_action` (a tool confirmation or a custom tool
    /// result) before each pending call is denied with "no response within N s" and the turn
    /// goes on (1 to 31536000). Off by default: sessions wait for ever.
    #[arg(
        long,
        env = "MANAGED_AGENTS_REQUIRES_ACTION_TIMEOUT",
        value_name = "SECS"
    )]
    pub requires_action_timeout: Option<u64>,
    /// Compact an agent's context (summarize its conversation so far and go on from the
    /// summary, `agent.thread_context_compacted`) before a model request once its previous
    /// request's input reached this many tokens; 0 never compacts.
    #[arg(
        long,
        env = "MANAGED_AGENTS_COMPACT_AT_TOKENS",
        value_name = "TOKENS",
        default_value_t = managed_agents_harness::options::DEFAULT_COMPACT_AT_TOKENS
    )]
    pub compact_at_tokens: u64,
    /// Abandon a model response that sends nothing (no header, no byte of its stream) for this
    /// long (1 to 3600 seconds); the request then takes the retry path like any other transient
    /// model failure (`session.error` with `retry_status: retrying`, then a new request).
    #[arg(
        long,
        env = "MANAGED_AGENTS_MODEL_STREAM_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 300
    )]
    pub model_stream_idle_timeout: u64,
    /// Requests per second each API key may make, sustained (0: no limit). Beyond it and the
    /// burst a request is answered 429 `rate_limit_error` with `retry-after`.
    #[arg(
        long,
        env = "MANAGED_AGENTS_RATE_LIMIT",
        value_name = "PER_SEC",
        default_value_t = 200
    )]
    pub rate_limit: u32,
    /// Requests an API key may make at once on top of its rate (at least 1 with a rate).
    #[arg(
        long,
        env = "MANAGED_AGENTS_RATE_LIMIT_BURST",
        value_name = "N",
        default_value_t = 1000
    )]
    pub rate_limit_burst: u32,
    /// Event streams (SSE) one API key may hold open at once (0: no limit); one more is
    /// answered 429 `rate_limit_error`.
    #[arg(
        long,
        env = "MANAGED_AGENTS_MAX_STREAMS_PER_KEY",
        value_name = "N",
        default_value_t = 1000
    )]
    pub max_streams_per_key: u32,
    /// Seconds a client may take to send a request's headers, or leave a keep-alive
    /// connection idle, before the server closes the connection (0: no limit; at most 86400).
    #[arg(
        long,
        env = "MANAGED_AGENTS_HEADER_READ_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub header_read_timeout: u64,
    /// Seconds a request body may go without a byte before it is answered 408 `timeout_error`
    /// (0: no limit; at most 86400).
    #[arg(
        long,
        env = "MANAGED_AGENTS_BODY_READ_TIMEOUT",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub body_read_timeout: u64,
    /// Sessions each workspace (the tenant of an API key) may hold, archived ones included
    /// (0: no limit); one more is answered 400 `session_quota_exceeded`. Not `--workspace-quota`,
    /// which bounds each session's sandbox directory.
    #[arg(
        long,
        env = "MANAGED_AGENTS_TENANT_MAX_SESSIONS",
        value_name = "N",
        default_value_t = 0
    )]
    pub tenant_max_sessions: u64,
    /// Files each workspace may store, uploads and session outputs (0: no limit); one more
    /// upload is answered 400 `storage_quota_exceeded`.
    #[arg(
        long,
        env = "MANAGED_AGENTS_TENANT_MAX_FILES",
        value_name = "N",
        default_value_t = 0
    )]
    pub tenant_max_files: u64,
    /// Bytes each workspace may store: its files' and its skill versions' (`10GiB`, `512MiB`, or
    /// bytes; 0: no limit); an upload past it is answered 400 `storage_quota_exceeded`.
    #[arg(
        long,
        env = "MANAGED_AGENTS_TENANT_MAX_STORED_BYTES",
        value_name = "SIZE",
        default_value = "0"
    )]
    pub tenant_max_stored_bytes: String,
    /// Log format and OpenTelemetry export.
    #[command(flatten)]
    pub telemetry: crate::telemetry::TelemetryArgs,
}

/// The longest `--header-read-timeout` and `--body-read-timeout`: a day.
pub const MAX_READ_TIMEOUT: u64 = 24 * 60 * 60;

/// The longest `--requires-action-timeout`: a year.
pub const MAX_REQUIRES_ACTION_TIMEOUT: u64 = 365 * 24 * 60 * 60;

/// The longest `--model-stream-idle-timeout`, in seconds (an hour).
pub const MAX_MODEL_STREAM_IDLE_TIMEOUT: u64 = 60 * 60;

/// Whether `serve` starts the harness runner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunnerMode {
    /// Run agent turns in this process.
    On,
    /// Store events only.
    Off,
}

/// Where `keys` subcommands find the store.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Directory of the database.
    #[arg(long, env = "MANAGED_AGENTS_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Storage backend and database.
    #[command(flatten)]
    pub backend: BackendArgs,
}

/// `--storage` and `--database-url`, the same for `serve` and `keys`.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Storage backend.
    #[arg(
        long,
        env = "MANAGED_AGENTS_STORAGE",
        value_enum,
        default_value = "rocksdb"
    )]
    pub storage: StorageKind,
    /// The PostgreSQL database of `--storage postgres`
    /// (`postgres://user:password@host:port/database`; schema migrations are applied at start).
    #[arg(long, env = "MANAGED_AGENTS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Memory RocksDB's memtables may hold, all column families together, before they are
    /// flushed to disk (a size, at least 1MiB). The server's memory grows with unflushed writes
    /// up to it, then stays there. `0`: RocksDB's own limit, 64 MiB per column family.
    #[arg(
        long,
        env = "MANAGED_AGENTS_ROCKSDB_MEMTABLE_BUDGET",
        value_name = "SIZE",
        default_value = "64MiB"
    )]
    pub rocksdb_memtable_budget: Option<String>,
    /// Memory RocksDB may keep of the data it reads (SST blocks), in one LRU cache all column
    /// families share (a size, at least 1MiB).
    #[arg(
        long,
        env = "MANAGED_AGENTS_ROCKSDB_BLOCK_CACHE",
        value_name = "SIZE",
        default_value = "32MiB"
    )]
    pub rocksdb_block_cache: String,
}

impl BackendArgs {
    /// The chosen backend, checked.
    pub fn choose(&self) -> Result<Storage, Error> {
        Storage::choose(self.storage, self.database_url.clone())
    }

    /// What RocksDB's memory is bounded by: `--rocksdb-memtable-budget` (`0`: RocksDB's
    /// default) and `--rocksdb-block-cache`, checked.
    pub fn rocks_memory(&self) -> Result<RocksMemory, Error> {
        let memtable_budget = match self.rocksdb_memtable_budget.as_deref() {
            None | Some("") | Some("0") => None,
            Some(text) => {
                Some(memory_size(text).ok_or_else(|| Error::MemtableBudget(text.to_owned()))?)
            }
        };
        let text = &self.rocksdb_block_cache;
        let block_cache = memory_size(text).ok_or_else(|| Error::BlockCache(text.to_owned()))?;
        Ok(RocksMemory {
            memtable_budget,
            block_cache,
        })
    }
}

/// A size of memory given on the command line: at least 1 MiB, in bytes.
fn memory_size(text: &str) -> Option<usize> {
    parse_size(text)
        .filter(|bytes| *bytes >= 1 << 20)
        .and_then(|bytes| usize::try_from(bytes).ok())
}

impl StoreArgs {
    /// The durable store these flags name (keys cannot live in memory).
    pub fn storage(&self) -> Result<Storage, Error> {
        match self.backend.choose()? {
            Storage::Memory => Err(Error::KeysInMemory),
            storage => Ok(storage),
        }
    }
}

/// Where `serve` keeps file and skill bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobStoreKind {
    /// One file per blob in a directory (`--blob-dir`).
    Dir,
    /// One object per blob in an S3-compatible bucket (`--s3-*`).
    S3,
}

/// `--blob-store`, `--blob-dir` and the `--s3-*` flags.
#[derive(Debug, Args)]
pub struct BlobArgs {
    /// Where file and skill bytes live (default: `dir`; with `--storage memory`, in memory).
    #[arg(long, env = "MANAGED_AGENTS_BLOB_STORE", value_enum)]
    pub blob_store: Option<BlobStoreKind>,
    /// The directory of `--blob-store dir` (default: `<data-dir>/files`); nodes sharing one
    /// database share it (a network filesystem with atomic rename).
    #[arg(long, env = "MANAGED_AGENTS_BLOB_DIR", value_name = "PATH")]
    pub blob_dir: Option<PathBuf>,
    /// The bucket of `--blob-store s3` (credentials: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`; else the instance's role).
    #[arg(long, env = "MANAGED_AGENTS_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// An S3-compatible server's URL (`http://127.0.0.1:9000`); default: AWS.
    #[arg(long, env = "MANAGED_AGENTS_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "MANAGED_AGENTS_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Let `--s3-endpoint` be plain `http://` (a server on loopback or a private network).
    #[arg(long, env = "MANAGED_AGENTS_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
}

/// Where file and skill bytes live, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobStore {
    /// In process memory (`--storage memory`).
    Memory,
    /// One file per blob in this directory.
    Dir(PathBuf),
    /// An S3-compatible bucket.
    S3(crate::blobs::s3::S3Settings),
}

impl BlobArgs {
    /// The blob store for `storage`, checked (the `--s3-*` flags are ignored unless
    /// `--blob-store s3`: the variables may be set for other processes).
    pub fn choose(
        &self,
        storage: &Storage,
        data_dir: &std::path::Path,
    ) -> Result<BlobStore, Error> {
        let blob_dir = self.blob_dir.clone();
        match (storage, self.blob_store) {
            (Storage::Memory, None) if blob_dir.is_none() => Ok(BlobStore::Memory),
            (Storage::Memory, _) => Err(Error::BlobStoreInMemory),
            (_, None | Some(BlobStoreKind::Dir)) => Ok(BlobStore::Dir(
                blob_dir.unwrap_or_else(|| data_dir.join("files")),
            )),
            (_, Some(BlobStoreKind::S3)) => {
                let bucket = self
                    .s3_bucket
                    .clone()
                    .filter(|b| !b.trim().is_empty())
                    .ok_or(Error::S3BucketMissing)?;
                let endpoint = self.s3_endpoint.clone().filter(|e| !e.trim().is_empty());
                if let Some(endpoint) = &endpoint {
                    let host = endpoint.strip_prefix("https://").or_else(|| {
                        endpoint
                            .strip_prefix("http://")
                            .filter(|_| self.s3_allow_http)
                    });
                    if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
                        return Err(Error::S3Endpoint(endpoint.clone()));
                    }
                }
                if self.s3_region.trim().is_empty() {
                    return Err(Error::S3Region);
                }
                Ok(BlobStore::S3(crate::blobs::s3::S3Settings {
                    bucket,
                    endpoint,
                    region: self.s3_region.clone(),
                    allow_http: self.s3_allow_http,
                }))
            }
        }
    }
}

/// `keys` subcommands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it once.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// Workspace name (created if new).
        #[arg(long, default_value = crate::keys::DEFAULT_WORKSPACE)]
        workspace: String,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        /// Create an environment key instead (API §5.3): it reaches only this self-hosted
        /// environment's work queue and the sessions it serves (`--workspace` is ignored: the
        /// environment's workspace is used).
        #[arg(long, value_name = "ENV_ID")]
        environment: Option<String>,
    },
    /// List keys (never their values).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a key by id (`apikey_…`).
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The key id.
        id: String,
    },
}

/// A configuration value that is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--storage postgres` without a URL.
    #[error("--storage postgres needs --database-url (MANAGED_AGENTS_DATABASE_URL)")]
    DatabaseUrlMissing,
    /// `keys` on memory storage.
    #[error("keys live in a durable store: use --storage rocksdb or postgres")]
    KeysInMemory,
    /// `--listen` is not an address.
    #[error("--listen {0:?}: expected host:port, e.g. 127.0.0.1:8080")]
    Listen(String),
    /// `--secret-key` is malformed.
    #[error("--secret-key: {0}")]
    SecretKey(crate::sealer::Error),
    /// `--ping-seconds` out of range.
    #[error("--ping-seconds {0}: must be between 1 and 3600")]
    Ping(u64),
    /// `--runner-lease-seconds` out of range.
    #[error("--runner-lease-seconds {0}: must be between 2 and 3600")]
    RunnerLease(u64),
    /// `--requires-action-timeout` out of range.
    #[error("--requires-action-timeout {0}: must be between 1 and 31536000 seconds")]
    RequiresActionTimeout(u64),
    /// `--rocksdb-memtable-budget` is not a size of at least 1 MiB.
    #[error(
        "--rocksdb-memtable-budget {0:?}: expected a size of at least 1MiB (e.g. 64MiB), or 0 \
         for RocksDB's own limit"
    )]
    MemtableBudget(String),
    /// `--rocksdb-block-cache` is not a size of at least 1 MiB.
    #[error("--rocksdb-block-cache {0:?}: expected a size of at least 1MiB (e.g. 32MiB)")]
    BlockCache(String),
    /// `--model-stream-idle-timeout` out of range.
    #[error("--model-stream-idle-timeout {0}: must be between 1 and 3600 seconds")]
    ModelStreamIdleTimeout(u64),
    /// `--data-dir` unusable.
    #[error("--data-dir {0}: must not be empty")]
    DataDir(String),
    /// An `--llm-endpoint-allow` entry is neither a host nor a URL prefix.
    #[error("--llm-endpoint-allow {0}")]
    LlmEndpointAllow(managed_agents_harness::model::AllowEntryError),
    /// `--workspace-quota` is not a size, or too small.
    #[error(
        "--workspace-quota {0:?}: expected a size of at least 16MiB (e.g. 10GiB), or 0 for none"
    )]
    WorkspaceQuota(String),
    /// `--sandbox-tmp-size` is not a size, or too small.
    #[error("--sandbox-tmp-size {0:?}: expected a size of at least 1MiB (e.g. 512MiB)")]
    SandboxTmpSize(String),
    /// `--sandbox-uid-range` is malformed or unsafe.
    #[error("--sandbox-uid-range: {0}")]
    SandboxUidRange(managed_agents_harness::sandbox::Error),
    /// `--anthropic-skills-dir` is not a directory.
    #[error("--anthropic-skills-dir {0:?}: not a directory")]
    AnthropicSkillsDir(String),
    /// `--rate-limit` without a burst.
    #[error("--rate-limit-burst 0: must be at least 1 when --rate-limit is set")]
    RateLimitBurst,
    /// A read timeout out of range.
    #[error("--{0} {1}: must be between 0 (no limit) and 86400 seconds")]
    ReadTimeout(&'static str, u64),
    /// `--blob-store` or `--blob-dir` with `--storage memory`.
    #[error("--storage memory keeps file bytes in memory: --blob-store and --blob-dir need rocksdb or postgres")]
    BlobStoreInMemory,
    /// `--blob-store s3` without a bucket.
    #[error("--blob-store s3 needs --s3-bucket (MANAGED_AGENTS_S3_BUCKET)")]
    S3BucketMissing,
    /// `--s3-endpoint` is not a URL the server may use.
    #[error("--s3-endpoint {0:?}: expected https://host[:port] (http:// with --s3-allow-http)")]
    S3Endpoint(String),
    /// `--s3-region` is empty.
    #[error("--s3-region: must not be empty")]
    S3Region,
    /// `--tenant-max-stored-bytes` is not a size.
    #[error("--tenant-max-stored-bytes {0:?}: expected a size (e.g. 10GiB, 512MiB, bytes), or 0 for none")]
    TenantMaxStoredBytes(String),
}

/// Parses `10GiB`, `512M`, `4096` (units are powers of 1024; `B`, `K`, `M`, `G`, `T`, with an
/// optional `iB` or `B`, any case).
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The validated configuration of `serve`.
#[derive(Debug)]
pub struct ServeConfig {
    /// The address to bind.
    pub listen: SocketAddr,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The backend.
    pub storage: Storage,
    /// Where file and skill bytes live.
    pub blob_store: BlobStore,
    /// The explicit secret key, if given.
    pub sealer: Option<crate::sealer::Sealer>,
    /// The bootstrap key, if given.
    pub bootstrap_key: Option<String>,
    /// SSE ping interval.
    pub ping_interval: std::time::Duration,
    /// Whether to start the harness runner.
    pub runner: RunnerMode,
    /// The model endpoints sessions may use (empty: any).
    pub llm_endpoints: managed_agents_harness::model::AllowList,
    /// The disk quota of each workspace (`None`: unbounded).
    pub workspace_quota: Option<u64>,
    /// Whether sandboxes may reach non-public addresses through the egress proxy.
    pub egress_allow_private: bool,
    /// The size of each sandbox's `/tmp`.
    pub sandbox_tmp_bytes: u64,
    /// The host uids of sandboxes.
    pub sandbox_uids: managed_agents_harness::sandbox::UidRange,
    /// Where the agent CLIs are.
    pub runtimes: managed_agents_harness::runtimes::Runtimes,
    /// Extra CA files the egress proxy trusts upstream.
    pub egress_upstream_ca: Vec<PathBuf>,
    /// `--anthropic-skills-dir`, made absolute.
    pub anthropic_skills: Option<PathBuf>,
    /// `--uploads-downloadable`.
    pub uploads_downloadable: bool,
    /// `--requires-action-timeout` (`None`: off).
    pub requires_action_timeout: Option<std::time::Duration>,
    /// How long a runner's session lease lasts when runners lease sessions
    /// (`--runner-lease-seconds`; PostgreSQL only).
    pub runner_lease: Option<std::time::Duration>,
    /// `--compact-at-tokens` (0: never).
    pub compact_at_tokens: u64,
    /// `--model-stream-idle-timeout`.
    pub model_stream_idle_timeout: std::time::Duration,
    /// `--rocksdb-memtable-budget` and `--rocksdb-block-cache`.
    pub rocks: RocksMemory,
    /// `--otlp-include-content`: message text and tool input and output in span attributes.
    pub trace_content: bool,
    /// The abuse limits: `--rate-limit`, `--rate-limit-burst`, `--max-streams-per-key`,
    /// `--header-read-timeout`, `--body-read-timeout`.
    pub limits: crate::limits::LimitSettings,
    /// The per-workspace quotas: `--tenant-max-sessions`, `--tenant-max-files`,
    /// `--tenant-max-stored-bytes`.
    pub quotas: crate::quotas::QuotaSettings,
}

impl ServeArgs {
    /// The abuse limits, validated (0 turns each off).
    fn limits(&self) -> Result<crate::limits::LimitSettings, Error> {
        use std::num::NonZeroU32;
        let requests = match NonZeroU32::new(self.rate_limit) {
            None => None,
            Some(rate) => Some((
                rate,
                NonZeroU32::new(self.rate_limit_burst).ok_or(Error::RateLimitBurst)?,
            )),
        };
        let timeout = |flag: &'static str, secs: u64| match secs {
            0 => Ok(None),
            secs if secs <= MAX_READ_TIMEOUT => Ok(Some(std::time::Duration::from_secs(secs))),
            secs => Err(Error::ReadTimeout(flag, secs)),
        };
        Ok(crate::limits::LimitSettings {
            requests,
            streams_per_key: NonZeroU32::new(self.max_streams_per_key),
            header_read_timeout: timeout("header-read-timeout", self.header_read_timeout)?,
            body_read_timeout: timeout("body-read-timeout", self.body_read_timeout)?,
        })
    }

    /// The per-workspace quotas, validated (0 turns each off).
    fn quotas(&self) -> Result<crate::quotas::QuotaSettings, Error> {
        use std::num::NonZeroU64;
        let stored_bytes = parse_size(&self.tenant_max_stored_bytes)
            .ok_or_else(|| Error::TenantMaxStoredBytes(self.tenant_max_stored_bytes.clone()))?;
        Ok(crate::quotas::QuotaSettings {
            sessions: NonZeroU64::new(self.tenant_max_sessions),
            files: NonZeroU64::new(self.tenant_max_files),
            stored_bytes: NonZeroU64::new(stored_bytes),
        })
    }

    /// Validates the flags.
    pub fn validate(self) -> Result<ServeConfig, Error> {
        let listen = parse_listen(&self.listen)?;
        let limits = self.limits()?;
        let quotas = self.quotas()?;
        let storage = self.backend.choose()?;
        let rocks = self.backend.rocks_memory()?;
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::DataDir(self.data_dir.display().to_string()));
        }
        let blob_store = self.blobs.choose(&storage, &self.data_dir)?;
        let sealer = self
            .secret_key
            .as_deref()
            .map(crate::sealer::Sealer::from_text)
            .transpose()
            .map_err(Error::SecretKey)?;
        if !(1..=3600).contains(&self.ping_seconds) {
            return Err(Error::Ping(self.ping_seconds));
        }
        let llm_endpoints = managed_agents_harness::model::AllowList::parse(
            self.llm_endpoint_allow
                .iter()
                .filter(|e| !e.trim().is_empty()),
        )
        .map_err(Error::LlmEndpointAllow)?;
        let workspace_quota = match parse_size(&self.workspace_quota) {
            Some(0) => None,
            Some(bytes) if bytes >= managed_agents_harness::sandbox::MIN_QUOTA => Some(bytes),
            _ => return Err(Error::WorkspaceQuota(self.workspace_quota)),
        };
        let sandbox_tmp_bytes = parse_size(&self.sandbox_tmp_size)
            .filter(|b| *b >= 1 << 20)
            .ok_or_else(|| Error::SandboxTmpSize(self.sandbox_tmp_size.clone()))?;
        let sandbox_uids = self
            .sandbox_uid_range
            .parse()
            .map_err(Error::SandboxUidRange)?;
        let mut runtimes = managed_agents_harness::runtimes::Runtimes::new(runtimes_dir(
            &self.data_dir,
            self.runtimes_dir.as_deref(),
        ));
        for (agent, bin) in [
            (
                managed_agents_harness::runtimes::Agent::Claude,
                self.claude_bin,
            ),
            (
                managed_agents_harness::runtimes::Agent::Codex,
                self.codex_bin,
            ),
        ] {
            if let Some(bin) = bin.filter(|b| !b.as_os_str().is_empty()) {
                runtimes = runtimes.with_binary(agent, bin);
            }
        }
        let anthropic_skills = match self.anthropic_skills_dir {
            Some(dir) if !dir.as_os_str().is_empty() => Some(
                std::path::absolute(&dir)
                    .ok()
                    .filter(|d| d.is_dir())
                    .ok_or_else(|| Error::AnthropicSkillsDir(dir.display().to_string()))?,
            ),
            _ => None,
        };
        let requires_action_timeout = match self.requires_action_timeout {
            None => None,
            Some(secs) if (1..=MAX_REQUIRES_ACTION_TIMEOUT).contains(&secs) => {
                Some(std::time::Duration::from_secs(secs))
            }
            Some(secs) => return Err(Error::RequiresActionTimeout(secs)),
        };
        if !(2..=3600).contains(&self.runner_lease_seconds) {
            return Err(Error::RunnerLease(self.runner_lease_seconds));
        }
        // One process opens a RocksDB or in-memory store: its runner is the only one.
        let runner_lease = matches!(storage, Storage::Postgres { .. })
            .then(|| std::time::Duration::from_secs(self.runner_lease_seconds));
        if !(1..=MAX_MODEL_STREAM_IDLE_TIMEOUT).contains(&self.model_stream_idle_timeout) {
            return Err(Error::ModelStreamIdleTimeout(
                self.model_stream_idle_timeout,
            ));
        }
        Ok(ServeConfig {
            limits,
            quotas,
            requires_action_timeout,
            runner_lease,
            model_stream_idle_timeout: std::time::Duration::from_secs(
                self.model_stream_idle_timeout,
            ),
            rocks,
            compact_at_tokens: self.compact_at_tokens,
            trace_content: self.telemetry.otlp_include_content,
            anthropic_skills,
            uploads_downloadable: self.uploads_downloadable,
            listen,
            data_dir: self.data_dir,
            storage,
            blob_store,
            sealer,
            bootstrap_key: self.bootstrap_key.filter(|k| !k.is_empty()),
            ping_interval: std::time::Duration::from_secs(self.ping_seconds),
            runner: self.runner,
            llm_endpoints,
            workspace_quota,
            egress_allow_private: self.egress_allow_private,
            sandbox_tmp_bytes,
            sandbox_uids,
            runtimes,
            egress_upstream_ca: self
                .egress_upstream_ca
                .into_iter()
                .filter(|p| !p.as_os_str().is_empty())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mock_model_takes_listen_and_an_optional_script() {
        let cli = Cli::try_parse_from([
            "managed-agents",
            "mock-model",
            "--listen",
            "127.0.0.1:0",
            "--script",
            "replies.json",
        ])
        .expect("parses");
        let Command::MockModel(args) = cli.command else {
            panic!("not mock-model: {:?}", cli.command);
        };
        assert_eq!(args.listen().expect("address").port(), 0);
        assert_eq!(args.script, Some(PathBuf::from("replies.json")));
        let cli = Cli::try_parse_from(["managed-agents", "mock-model", "--listen", "nope"])
            .expect("parses");
        let Command::MockModel(args) = cli.command else {
            panic!("not mock-model");
        };
        assert!(args.listen().is_err());
        assert!(Cli::try_parse_from(["managed-agents", "mock-model"]).is_err());
    }

    #[test]
    fn runtimes_install_names_an_agent_and_its_directory() {
        let cli = Cli::try_parse_from([
            "managed-agents",
            "runtimes",
            "install",
            "codex",
            "--data-dir",
            "/srv/data",
            "--runtimes-dir",
            "/opt/rt",
        ])
        .expect("parses");
        let Command::Runtimes {
            command: RuntimesCommand::Install { agent, dirs, npm },
        } = cli.command
        else {
            panic!("not runtimes install: {:?}", cli.command);
        };
        assert_eq!(
            agent.agent(),
            managed_agents_harness::runtimes::Agent::Codex
        );
        assert_eq!(dirs.dir(), PathBuf::from("/opt/rt"));
        assert_eq!(npm, None);
        assert_eq!(
            runtimes_dir(std::path::Path::new("/srv/data"), None),
            PathBuf::from("/srv/data/runtimes")
        );
        assert!(Cli::try_parse_from(["managed-agents", "runtimes", "install", "gemini"]).is_err());
    }

    #[test]
    fn postgres_storage_needs_a_database_url_and_never_shows_it() {
        assert!(matches!(
            Storage::choose(StorageKind::Postgres, None),
            Err(Error::DatabaseUrlMissing)
        ));
        assert!(matches!(
            Storage::choose(StorageKind::Postgres, Some(" ".into())),
            Err(Error::DatabaseUrlMissing)
        ));
        let url = "postgres://agents:secret@db:5432/agents";
        let config = serve(&["--storage", "postgres", "--database-url", url])
            .validate()
            .expect("valid");
        assert_eq!(config.storage, Storage::Postgres { url: url.into() });
        assert!(!format!("{config:?}").contains("secret"));
        assert_eq!(
            Storage::choose(StorageKind::Rocksdb, Some(url.into())).expect("ignored"),
            Storage::Rocksdb
        );
        let cli = Cli::try_parse_from(["managed-agents", "keys", "list", "--storage", "memory"])
            .expect("parses");
        let Command::Keys {
            command: KeysCommand::List { store },
        } = cli.command
        else {
            panic!("not keys list");
        };
        assert!(matches!(store.storage(), Err(Error::KeysInMemory)));
    }

    #[test]
    fn serve_takes_runtime_flags() {
        let config = serve(&["--runtimes-dir", "/opt/rt", "--claude-bin", "/usr/bin/true"])
            .validate()
            .expect("valid");
        assert_eq!(config.runtimes.dir(), std::path::Path::new("/opt/rt"));
        let claude = config
            .runtimes
            .locate(managed_agents_harness::runtimes::Agent::Claude)
            .expect("the explicit binary");
        assert_eq!(claude.host, PathBuf::from("/usr/bin/true"));
    }

    fn serve(args: &[&str]) -> ServeArgs {
        let cli =
            Cli::try_parse_from(["managed-agents", "serve"].iter().chain(args)).expect("parses");
        let Command::Serve(args) = cli.command else {
            panic!("not serve");
        };
        *args
    }

    #[test]
    fn llm_endpoint_allow_is_repeatable_and_validated() {
        let config = serve(&[
            "--llm-endpoint-allow",
            "api.anthropic.com",
            "--llm-endpoint-allow",
            "http://127.0.0.1:9000/gw",
        ])
        .validate()
        .expect("valid");
        assert!(config.llm_endpoints.allows("https://api.anthropic.com"));
        assert!(config.llm_endpoints.allows("http://127.0.0.1:9000/gw/x"));
        assert!(!config.llm_endpoints.allows("http://127.0.0.1:9000/other"));
        let bad = serve(&["--llm-endpoint-allow", "ftp://x.example"]).validate();
        assert!(matches!(&bad, Err(Error::LlmEndpointAllow(_))), "{bad:?}");
        let none = serve(&[]).validate().expect("valid");
        assert!(none.llm_endpoints.is_empty());
    }

    #[test]
    fn sandbox_flags_have_safe_defaults_and_are_validated() {
        let config = serve(&[]).validate().expect("valid");
        assert_eq!(config.workspace_quota, Some(10 << 30));
        assert_eq!(config.sandbox_tmp_bytes, 512 << 20);
        assert_eq!(config.sandbox_uids.to_string(), "60000-60999");
        let config = serve(&[
            "--workspace-quota",
            "0",
            "--sandbox-tmp-size",
            "64m",
            "--sandbox-uid-range",
            "100000-100099",
        ])
        .validate()
        .expect("valid");
        assert_eq!(config.workspace_quota, None);
        assert_eq!(config.sandbox_tmp_bytes, 64 << 20);
        assert_eq!(config.sandbox_uids.first(), 100000);
        for (flag, value) in [
            ("--workspace-quota", "1MiB"),
            ("--workspace-quota", "ten"),
            ("--sandbox-tmp-size", "0"),
            ("--sandbox-uid-range", "0-1000"),
            ("--sandbox-uid-range", "65000-66000"),
        ] {
            let bad = serve(&[flag, value]).validate();
            assert!(bad.is_err(), "{flag} {value}");
        }
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("2 GB"), Some(2 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1P"), None);
    }

    #[test]
    fn storage_tuning_flags_default_to_rocksdb_and_are_validated() {
        let config = serve(&[]).validate().expect("valid");
        assert_eq!(config.rocks.memtable_budget, Some(64 << 20));
        assert_eq!(config.rocks.block_cache, 32 << 20);
        let config = serve(&["--rocksdb-memtable-budget", "0"])
            .validate()
            .expect("valid");
        assert_eq!(config.rocks.memtable_budget, None);
        assert_eq!(config.model_stream_idle_timeout.as_secs(), 300);
        let config = serve(&[
            "--rocksdb-memtable-budget",
            "8MiB",
            "--model-stream-idle-timeout",
            "2",
        ])
        .validate()
        .expect("valid");
        assert_eq!(config.rocks.memtable_budget, Some(8 << 20));
        assert_eq!(config.model_stream_idle_timeout.as_secs(), 2);
        for (flag, value) in [
            ("--rocksdb-memtable-budget", "512KiB"),
            ("--rocksdb-block-cache", "0"),
            ("--rocksdb-block-cache", "lots"),
            ("--rocksdb-memtable-budget", "lots"),
            ("--model-stream-idle-timeout", "0"),
            ("--model-stream-idle-timeout", "3601"),
        ] {
            let bad = serve(&[flag, value]).validate();
            assert!(bad.is_err(), "{flag} {value}");
        }
    }

    #[test]
    fn runners_lease_sessions_only_over_postgres() {
        let url = "postgres://agents@db:5432/agents";
        let shared = serve(&["--storage", "postgres", "--database-url", url])
            .validate()
            .expect("valid");
        assert_eq!(
            shared.runner_lease,
            Some(std::time::Duration::from_secs(15))
        );
        let short = serve(&[
            "--storage",
            "postgres",
            "--database-url",
            url,
            "--runner-lease-seconds",
            "3",
        ])
        .validate()
        .expect("valid");
        assert_eq!(short.runner_lease, Some(std::time::Duration::from_secs(3)));
        let alone = serve(&["--runner-lease-seconds", "3"])
            .validate()
            .expect("valid");
        assert_eq!(alone.runner_lease, None, "RocksDB has one process");
        for bad in ["0", "1", "3601"] {
            assert!(matches!(
                serve(&["--runner-lease-seconds", bad]).validate(),
                Err(Error::RunnerLease(_))
            ));
        }
    }

    #[test]
    fn requires_action_timeout_is_off_by_default_and_validated() {
        assert_eq!(
            serve(&[])
                .validate()
                .expect("valid")
                .requires_action_timeout,
            None
        );
        let config = serve(&["--requires-action-timeout", "90"])
            .validate()
            .expect("valid");
        assert_eq!(
            config.requires_action_timeout,
            Some(std::time::Duration::from_secs(90))
        );
        for bad in ["0", "31536001"] {
            let got = serve(&["--requires-action-timeout", bad]).validate();
            assert!(
                matches!(got, Err(Error::RequiresActionTimeout(_))),
                "{bad}: {got:?}"
            );
        }
        assert!(Cli::try_parse_from([
            "managed-agents",
            "serve",
            "--requires-action-timeout",
            "soon"
        ])
        .is_err());
    }

    #[test]
    fn abuse_limits_are_on_by_default_configurable_and_validated() {
        use std::num::NonZeroU32;
        use std::time::Duration;
        let limits = serve(&[]).validate().expect("valid").limits;
        let n = |v: u32| NonZeroU32::new(v).expect("non-zero");
        assert_eq!(limits.requests, Some((n(200), n(1000))));
        assert_eq!(limits.streams_per_key, Some(n(1000)));
        assert_eq!(limits.header_read_timeout, Some(Duration::from_secs(30)));
        assert_eq!(limits.body_read_timeout, Some(Duration::from_secs(30)));
        let limits = serve(&[
            "--rate-limit",
            "5",
            "--rate-limit-burst",
            "2",
            "--max-streams-per-key",
            "0",
            "--header-read-timeout",
            "0",
            "--body-read-timeout",
            "7",
        ])
        .validate()
        .expect("valid")
        .limits;
        assert_eq!(limits.requests, Some((n(5), n(2))));
        assert_eq!(limits.streams_per_key, None);
        assert_eq!(limits.header_read_timeout, None);
        assert_eq!(limits.body_read_timeout, Some(Duration::from_secs(7)));
        let off = serve(&["--rate-limit", "0", "--rate-limit-burst", "0"]);
        assert_eq!(off.validate().expect("valid").limits.requests, None);
        let got = serve(&["--rate-limit-burst", "0"]).validate();
        assert!(matches!(got, Err(Error::RateLimitBurst)), "{got:?}");
        let got = serve(&["--body-read-timeout", "86401"]).validate();
        assert!(
            matches!(got, Err(Error::ReadTimeout("body-read-timeout", 86401))),
            "{got:?}"
        );
    }

    #[test]
    fn blob_store_defaults_to_the_data_dir_and_takes_a_shared_dir() {
        let config = serve(&["--data-dir", "/srv/a"]).validate().expect("valid");
        assert_eq!(
            config.blob_store,
            BlobStore::Dir(PathBuf::from("/srv/a/files"))
        );
        let config = serve(&["--data-dir", "/srv/a", "--blob-dir", "/mnt/shared/blobs"])
            .validate()
            .expect("valid");
        assert_eq!(
            config.blob_store,
            BlobStore::Dir(PathBuf::from("/mnt/shared/blobs"))
        );
        // The S3 flags mean nothing to a directory store.
        let config = serve(&["--s3-bucket", "b", "--s3-endpoint", "nonsense"])
            .validate()
            .expect("valid");
        assert_eq!(
            config.blob_store,
            BlobStore::Dir(PathBuf::from("./data/files"))
        );
        let config = serve(&["--storage", "memory"]).validate().expect("valid");
        assert_eq!(config.blob_store, BlobStore::Memory);
        for flags in [
            &["--storage", "memory", "--blob-store", "dir"][..],
            &["--storage", "memory", "--blob-dir", "/mnt/shared"],
            &[
                "--storage",
                "memory",
                "--blob-store",
                "s3",
                "--s3-bucket",
                "b",
            ],
        ] {
            let got = serve(flags).validate();
            assert!(
                matches!(got, Err(Error::BlobStoreInMemory)),
                "{flags:?}: {got:?}"
            );
        }
        assert!(Cli::try_parse_from(["managed-agents", "serve", "--blob-store", "gcs"]).is_err());
    }

    #[test]
    fn s3_blob_store_needs_a_bucket_and_a_usable_endpoint() {
        use crate::blobs::s3::S3Settings;
        let config = serve(&["--blob-store", "s3", "--s3-bucket", "agents"])
            .validate()
            .expect("valid");
        assert_eq!(
            config.blob_store,
            BlobStore::S3(S3Settings {
                bucket: "agents".into(),
                endpoint: None,
                region: "us-east-1".into(),
                allow_http: false,
            })
        );
        let config = serve(&[
            "--blob-store",
            "s3",
            "--s3-bucket",
            "agents",
            "--s3-endpoint",
            "http://127.0.0.1:9000",
            "--s3-region",
            "eu-west-3",
            "--s3-allow-http",
        ])
        .validate()
        .expect("valid");
        assert_eq!(
            config.blob_store,
            BlobStore::S3(S3Settings {
                bucket: "agents".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-3".into(),
                allow_http: true,
            })
        );
        let https = serve(&[
            "--blob-store",
            "s3",
            "--s3-bucket",
            "agents",
            "--s3-endpoint",
            "https://s3.internal:8443",
        ]);
        assert!(https.validate().is_ok());
        let got = serve(&["--blob-store", "s3"]).validate();
        assert!(matches!(got, Err(Error::S3BucketMissing)), "{got:?}");
        let got = serve(&["--blob-store", "s3", "--s3-bucket", " "]).validate();
        assert!(matches!(got, Err(Error::S3BucketMissing)), "{got:?}");
        for endpoint in [
            "http://127.0.0.1:9000",
            "127.0.0.1:9000",
            "https://",
            "ftp://x",
        ] {
            let got = serve(&[
                "--blob-store",
                "s3",
                "--s3-bucket",
                "agents",
                "--s3-endpoint",
                endpoint,
            ])
            .validate();
            assert!(
                matches!(&got, Err(Error::S3Endpoint(e)) if e == endpoint),
                "{endpoint}: {got:?}"
            );
        }
        let got = serve(&["--blob-store", "s3", "--s3-bucket", "b", "--s3-region", ""]).validate();
        assert!(matches!(got, Err(Error::S3Region)), "{got:?}");
    }

    #[test]
    fn tenant_quotas_are_off_by_default_configurable_and_validated() {
        use std::num::NonZeroU64;
        let quotas = serve(&[]).validate().expect("valid").quotas;
        assert_eq!(quotas, crate::quotas::QuotaSettings::UNLIMITED);
        let quotas = serve(&[
            "--tenant-max-sessions",
            "100",
            "--tenant-max-files",
            "7",
            "--tenant-max-stored-bytes",
            "2GiB",
        ])
        .validate()
        .expect("valid")
        .quotas;
        assert_eq!(quotas.sessions, NonZeroU64::new(100));
        assert_eq!(quotas.files, NonZeroU64::new(7));
        assert_eq!(quotas.stored_bytes, NonZeroU64::new(2 << 30));
        let bytes = serve(&["--tenant-max-stored-bytes", "4096"]).validate();
        assert_eq!(
            bytes.expect("valid").quotas.stored_bytes,
            NonZeroU64::new(4096)
        );
        let off = serve(&[
            "--tenant-max-sessions",
            "0",
            "--tenant-max-stored-bytes",
            "0",
        ]);
        assert_eq!(
            off.validate().expect("valid").quotas,
            crate::quotas::QuotaSettings::UNLIMITED
        );
        let got = serve(&["--tenant-max-stored-bytes", "lots"]).validate();
        assert!(
            matches!(&got, Err(Error::TenantMaxStoredBytes(text)) if text == "lots"),
            "{got:?}"
        );
        assert!(
            Cli::try_parse_from(["managed-agents", "serve", "--tenant-max-files", "-1"]).is_err()
        );
        // The sandbox's disk quota is a different flag and keeps its meaning.
        let config = serve(&["--workspace-quota", "1GiB", "--tenant-max-files", "3"])
            .validate()
            .expect("valid");
        assert_eq!(config.workspace_quota, Some(1 << 30));
        assert_eq!(config.quotas.files, NonZeroU64::new(3));
    }
}
