//! Benchmarks of managed-agents live in `benches/`; see `README.md` for how to run them and the
//! measured numbers. This library holds what the load tools share: [`await_listening`] and [`server`] (a
//! release server process and an API client).

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout};

use anyhow::{bail, Context, Result};

/// Reads a started `managed-agents serve`'s stdout until its `listening on URL` line and returns
/// the URL with the reader, which the caller keeps open for as long as the server runs. Kills the
/// child and fails, pointing at `log`, if the line does not come within ten lines.
pub fn await_listening(child: &mut Child, log: &str) -> Result<(String, BufReader<ChildStdout>)> {
    let mut stdout = BufReader::new(child.stdout.take().context("server stdout")?);
    let mut line = String::new();
    for _ in 0..10 {
        line.clear();
        if stdout.read_line(&mut line)? == 0 {
            break;
        }
        if let Some(url) = line.trim().strip_prefix("listening on ") {
            return Ok((url.to_owned(), stdout));
        }
    }
    let _ = child.kill();
    bail!("server did not print `listening on`; see {log}")
}

/// Stops a server process: SIGTERM (a graceful shutdown), then SIGKILL after 10 s.
pub fn stop_server(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The value at quantile `p` (0..1) of `sorted`, which must not be empty.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

pub mod server {
    //! A release `managed-agents serve` for the load tools, and a client of its API.

    use std::io::BufReader;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::process::{Child, ChildStdout, Command, Stdio};
    use std::time::{Duration, Instant};

    use anyhow::{bail, Context, Result};
    use serde_json::{json, Value};
    use tempfile::TempDir;

    /// The bootstrap key of the servers the tools start.
    pub const KEY: &str = "sk-bench-harness-load-0123456789";

    /// A client of the server's API with the bench key.
    #[derive(Clone)]
    pub struct Api {
        pub http: reqwest::Client,
        pub base: String,
    }

    impl Api {
        /// A client of the API at `base`.
        pub fn new(base: &str) -> Self {
            Self {
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(256)
                    .build()
                    .expect("http client"),
                base: base.to_owned(),
            }
        }

        /// `POST path` with a JSON body; the JSON answer, or an error naming a non-2xx status.
        pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
            let r = self
                .http
                .post(format!("{}{path}", self.base))
                .header("x-api-key", KEY)
                .json(&body)
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if !status.is_success() {
                bail!("POST {path}: {status} {v}");
            }
            Ok(v)
        }

        /// `GET path`; the JSON answer, or an error naming a non-2xx status.
        pub async fn get(&self, path: &str) -> Result<Value> {
            let r = self
                .http
                .get(format!("{}{path}", self.base))
                .header("x-api-key", KEY)
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if !status.is_success() {
                bail!("GET {path}: {status} {v}");
            }
            Ok(v)
        }
    }

    /// A release `managed-agents serve` (RocksDB, loopback, a fresh data dir) killed on drop.
    pub struct Server {
        child: Child,
        _stdout: BufReader<ChildStdout>,
        pub base: String,
        _dir: TempDir,
    }

    impl Server {
        /// Starts the server (`HARNESS_LOAD_SERVER` or `$CARGO_TARGET_DIR/release/managed-agents`)
        /// in a data dir named after `name` under `HARNESS_LOAD_DIR` (default the temp dir), with
        /// `env` added to its environment.
        pub fn start(name: &str, env: &[(&str, &str)]) -> Result<Self> {
            let binary = std::env::var_os("HARNESS_LOAD_SERVER")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    std::env::var_os("CARGO_TARGET_DIR")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("target"))
                        .join("release/managed-agents")
                });
            let parent = std::env::var_os("HARNESS_LOAD_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let dir = tempfile::Builder::new()
                .prefix(&format!("{name}-"))
                .tempdir_in(&parent)?;
            // The sandbox uid must pass through the data dir to its workspace.
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
            let log = std::fs::File::create(dir.path().join("server.log"))?;
            let mut child = Command::new(&binary)
                .args(["serve", "--listen", "127.0.0.1:0", "--storage", "rocksdb"])
                // One key drives the whole load: the per-key abuse limits would measure
                // themselves.
                .args(["--rate-limit", "0", "--max-streams-per-key", "0"])
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .env("MANAGED_AGENTS_BOOTSTRAP_KEY", KEY)
                .env("MANAGED_AGENTS_LOG", "warn")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let log_path = dir.path().join("server.log").display().to_string();
            let (base, stdout) = crate::await_listening(&mut child, &log_path)?;
            println!(
                "server: {} (pid {}) at {base}",
                binary.display(),
                child.id()
            );
            Ok(Self {
                child,
                _stdout: stdout,
                base,
                _dir: dir,
            })
        }

        /// The server's process id.
        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// The server's log (its stderr).
        pub fn log_path(&self) -> PathBuf {
            self._dir.path().join("server.log")
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            crate::stop_server(&mut self.child);
        }
    }

    /// The objects a bench session runs with.
    pub struct Objects {
        pub agent: String,
        pub environment: String,
        pub vault: String,
    }

    /// Creates an agent with the toolset, an environment, and an LLM vault pointing at
    /// `model_url` (with `engine` in its metadata when given) holding a model key.
    pub async fn objects(api: &Api, model_url: &str, engine: Option<&str>) -> Result<Objects> {
        let agent = api
            .post(
                "/v1/agents",
                json!({"name": "bench", "model": "claude-sonnet-4-6",
                       "tools": [{"type": "agent_toolset_20260401"}]}),
            )
            .await?;
        let environment = api
            .post("/v1/environments", json!({"name": "bench"}))
            .await?;
        let mut metadata = json!({
            "sandbox0.managed_agents.role": "llm",
            "sandbox0.managed_agents.llm_base_url": model_url});
        if let Some(engine) = engine {
            metadata["sandbox0.managed_agents.engine"] = json!(engine);
        }
        let vault = api
            .post(
                "/v1/vaults",
                json!({"display_name": "llm", "metadata": metadata}),
            )
            .await?;
        let vault = id(&vault)?;
        api.post(
            &format!("/v1/vaults/{vault}/credentials"),
            json!({"auth": {"type": "static_bearer", "token": "sk-mock"}}),
        )
        .await?;
        Ok(Objects {
            agent: id(&agent)?,
            environment: id(&environment)?,
            vault,
        })
    }

    /// A new session of `objects`.
    pub async fn session(api: &Api, objects: &Objects) -> Result<String> {
        let session = api
            .post(
                "/v1/sessions",
                json!({"agent": objects.agent, "environment_id": objects.environment,
                       "vault_ids": [objects.vault]}),
            )
            .await?;
        id(&session)
    }

    /// Polls the session until it is idle, at most `timeout`.
    pub async fn wait_idle(api: &Api, session: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let s = api.get(&format!("/v1/sessions/{session}")).await?;
            if s["status"] == "idle" {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("session {session} not idle after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The `id` of an API object.
    pub fn id(v: &Value) -> Result<String> {
        v["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no id in {v}"))
    }
}
