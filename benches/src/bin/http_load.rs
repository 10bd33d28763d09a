//! HTTP load tool: starts the real release server binary (`managed-agents serve`) on loopback
//! with a temp data dir and measures the HTTP API (see `benches/README.md`, "HTTP API").
//!
//! ```sh
//! cargo build --release -p managed-agents-server --bin managed-agents
//! cargo run --release -p managed-agents-benches --bin http_load -- [PHASE...]
//! ```
//!
//! Phases (default: all, in this order): `latency`, `throughput`, `sse-idle`, `sse-fanout`.
//! Every loop is bounded in count and time. Environment knobs (defaults in brackets):
//!
//! - `HTTP_LOAD_SERVER`: server binary [`$CARGO_TARGET_DIR/release/managed-agents`]
//! - `HTTP_LOAD_STORAGE`: `rocksdb`, `memory` or `postgres` (a throwaway cluster of
//!   `scripts/pg-cluster.sh`, `synchronous_commit` on) [rocksdb]
//! - `HTTP_LOAD_NODES`: API nodes over the one database and data dir (`postgres` only): the
//!   throughput clients use them in turn, and `sse-fanout` opens its streams on the second node
//!   while it posts to the first (cross-node delivery) [1]
//! - `HTTP_LOAD_DIR`: parent of the temp data dir [system temp dir]
//! - `HTTP_LOAD_SERVER_LOG`: `MANAGED_AGENTS_LOG` of the server; its stderr goes to a file in the
//!   data dir [info]
//! - `HTTP_LOAD_SAMPLES`: requests per latency row [500]
//! - `HTTP_LOAD_SECS`: seconds per throughput row [10]
//! - `HTTP_LOAD_CLIENTS`: concurrent clients for throughput [64]
//! - `HTTP_LOAD_IDLE_STREAMS` / `HTTP_LOAD_IDLE_SESSIONS`: idle SSE streams and the sessions
//!   they are spread over [10000 / 1000]
//! - `HTTP_LOAD_FANOUT_STREAMS` / `HTTP_LOAD_FANOUT_RATE` / `HTTP_LOAD_FANOUT_SECS`: streams on
//!   one session, events per second, seconds of sending [1000 / 100 / 10]
//! - `HTTP_LOAD_NOFILE`: the open-file limit asked for the tool and the server [65536]

use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tempfile::TempDir;

const KEY: &str = "sk-http-load-benchmark-key-0000000000";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Monotonic nanoseconds since the tool started (shared by senders and receivers).
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// (utime + stime) of a process in seconds, from `/proc/<pid>/stat`.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return f64::NAN;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the `)`: state is field 0, utime field 11, stime field 12.
    let ticks: f64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|x| x.parse::<f64>().ok()).sum())
        .unwrap_or(f64::NAN);
    ticks / 100.0
}

/// `VmRSS` of a process in MiB.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The hard `RLIMIT_NOFILE` of a process, from `/proc/<pid>/limits`.
fn nofile_hard(pid: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// Raises the `RLIMIT_NOFILE` of `pid` with `prlimit(1)` (setrlimit through libc would need
/// `unsafe`, which the workspace forbids): soft and hard to `HTTP_LOAD_NOFILE` [65536] when the
/// caller may (root may raise a hard limit), else the soft limit to the hard one.
fn raise_nofile(pid: &str) -> Result<u64> {
    let hard = nofile_hard(pid).context("reading /proc/<pid>/limits")?;
    let wanted: u64 = env_or("HTTP_LOAD_NOFILE", 65_536);
    for limit in [wanted.max(hard), hard] {
        let status = Command::new("prlimit")
            .args(["--pid", pid, &format!("--nofile={limit}:{limit}")])
            .stderr(Stdio::null())
            .status()
            .context("running prlimit")?;
        if status.success() {
            return Ok(limit);
        }
    }
    bail!("prlimit --pid {pid} --nofile={hard}:{hard} failed")
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e6
}

/// p50, p99, max in milliseconds of nanosecond samples.
fn summary(samples: &mut [u64]) -> (f64, f64, f64) {
    samples.sort_unstable();
    (
        percentile(samples, 50.0),
        percentile(samples, 99.0),
        samples.last().map_or(f64::NAN, |m| *m as f64 / 1e6),
    )
}

/// The server process, killed on drop.
/// A throwaway PostgreSQL cluster (`scripts/pg-cluster.sh`): stopped when dropped (its stdin
/// closes).
struct PgCluster {
    child: Child,
    url: String,
}

impl PgCluster {
    fn start() -> Result<Self> {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-cluster.sh");
        let mut child = Command::new(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let mut url = String::new();
        let stdout = child.stdout.take().context("pg-cluster stdout")?;
        std::io::BufRead::read_line(&mut BufReader::new(stdout), &mut url)?;
        let url = url.trim().to_owned();
        if !url.starts_with("postgres://") {
            let _ = child.kill();
            bail!("PostgreSQL did not start (pg-cluster.sh printed {url:?})");
        }
        Ok(Self { child, url })
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// One `managed-agents serve` process.
struct Node {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        managed_agents_benches::stop_server(&mut self.child);
    }
}

/// The server under load: one node, or several over one PostgreSQL database and data dir.
/// Fields drop in order: the nodes, then the cluster, then the data dir.
struct Server {
    nodes: Vec<Node>,
    _cluster: Option<PgCluster>,
    /// The first node's address.
    base: String,
    _dir: TempDir,
}

impl Server {
    fn start(storage: &str) -> Result<Self> {
        let binary = std::env::var_os("HTTP_LOAD_SERVER")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("target"));
                target.join("release/managed-agents")
            });
        let parent = std::env::var_os("HTTP_LOAD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("http-load-")
            .tempdir_in(&parent)?;
        let cluster = match storage {
            "postgres" => Some(PgCluster::start()?),
            _ => None,
        };
        let count: usize = env_or("HTTP_LOAD_NODES", 1);
        if count > 1 && cluster.is_none() {
            bail!("HTTP_LOAD_NODES={count} needs HTTP_LOAD_STORAGE=postgres");
        }
        let mut nodes = Vec::new();
        for n in 0..count.max(1) {
            let log_name = format!("server-{n}.log");
            let log = std::fs::File::create(dir.path().join(&log_name))?;
            let mut command = Command::new(&binary);
            command
                .args(["serve", "--listen", "127.0.0.1:0", "--storage", storage])
                // One key drives the whole load: the per-key abuse limits would measure
                // themselves.
                .args(["--rate-limit", "0", "--max-streams-per-key", "0"])
                .arg("--data-dir")
                .arg(dir.path());
            if let Some(cluster) = &cluster {
                command.args(["--database-url", &cluster.url]);
            }
            let mut child = command
                .env("MANAGED_AGENTS_BOOTSTRAP_KEY", KEY)
                .env(
                    "MANAGED_AGENTS_LOG",
                    std::env::var("HTTP_LOAD_SERVER_LOG").unwrap_or_else(|_| "info".to_owned()),
                )
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", binary.display()))?;
            let log_path = dir.path().join(&log_name).display().to_string();
            let (base, stdout) = managed_agents_benches::await_listening(&mut child, &log_path)?;
            let pid = child.id().to_string();
            let nofile = raise_nofile(&pid)?;
            println!(
                "server: {} serve --storage {storage} (node {n}, pid {pid}, nofile {nofile}) at {base}, data {}",
                binary.display(),
                dir.path().display()
            );
            nodes.push(Node {
                child,
                _stdout: stdout,
                base,
            });
        }
        let base = nodes[0].base.clone();
        Ok(Self {
            nodes,
            _cluster: cluster,
            base,
            _dir: dir,
        })
    }

    /// Node `n`'s address (in turn when `n` is past the last node).
    fn base_of(&self, n: usize) -> &str {
        &self.nodes[n % self.nodes.len()].base
    }

    /// The servers' CPU seconds, all nodes together.
    fn cpu(&self) -> f64 {
        self.nodes
            .iter()
            .map(|node| cpu_seconds(&node.child.id().to_string()))
            .sum()
    }

    /// The servers' resident memory, all nodes together.
    fn rss_mib(&self) -> f64 {
        self.nodes.iter().map(|node| rss_mib(node.child.id())).sum()
    }
}

/// A client of one server.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(300))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.to_owned(),
        })
    }

    /// A client without the total-request timeout, for streams.
    fn streaming(base: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: base.to_owned(),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .header("x-api-key", KEY);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        if !status.is_success() {
            bail!(
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn metrics(&self) -> Result<String> {
        Ok(self
            .http
            .get(format!("{}/metrics", self.base))
            .header("x-api-key", KEY)
            .send()
            .await?
            .text()
            .await?)
    }

    /// Creates the agent and environment every session uses; returns the session create body.
    async fn setup(&self) -> Result<Value> {
        let agent = self
            .post(
                "/v1/agents",
                &json!({"name": "load", "model": "claude-sonnet-4-6"}),
            )
            .await?;
        let env = self
            .post("/v1/environments", &json!({"name": "load"}))
            .await?;
        Ok(json!({"agent": agent["id"], "environment_id": env["id"], "title": "load"}))
    }

    async fn session(&self, create: &Value) -> Result<String> {
        let session = self.post("/v1/sessions", create).await?;
        session["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no session id in {session}"))
    }

    async fn sessions(&self, create: &Value, n: usize) -> Result<Vec<String>> {
        stream::iter(0..n)
            .map(|_| self.session(create))
            .buffered(32)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

fn message(text: &str) -> Value {
    json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]})
}

/// Times `n` sequential calls of `f` (after `warmup` untimed ones); nanoseconds each.
async fn time_sequential<F, Fut>(n: usize, warmup: usize, mut f: F) -> Result<Vec<u64>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Value>>,
{
    for i in 0..warmup {
        f(i).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(warmup + i).await?;
        samples.push(start.elapsed().as_nanos() as u64);
    }
    Ok(samples)
}

fn row(name: &str, samples: &mut [u64]) {
    let n = samples.len();
    let (p50, p99, max) = summary(samples);
    println!("| {name} | {n} | {p50:.2} | {p99:.2} | {max:.2} |");
}

async fn latency(storage: &str) -> Result<()> {
    let n: usize = env_or("HTTP_LOAD_SAMPLES", 500);
    let server = Server::start(storage)?;
    let api = Api::new(&server.base)?;
    let create = api.setup().await?;
    println!(
        "\n### Latency, one client, {storage} (load average {})\n",
        loadavg()
    );
    println!("| request | n | p50 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    let mut created = time_sequential(n, 20, |_| api.post("/v1/sessions", &create)).await?;
    row("POST /v1/sessions", &mut created);
    // Sends: a fresh session per 100 sends, so the session stays between 0 and 100 events.
    let mut targets = api.sessions(&create, n.div_ceil(100) + 1).await?;
    let mut sends = time_sequential(n, 20, |i| {
        let path = format!("/v1/sessions/{}/events", targets[i / 100]);
        let api = api.clone();
        async move { api.post(&path, &message("hello")).await }
    })
    .await?;
    row(
        "POST /events (1 user.message, session of ≤100 events)",
        &mut sends,
    );
    // The same on one session that grows to 1,000+ events (each send loads the whole log).
    let long = api.session(&create).await?;
    let path = format!("/v1/sessions/{long}/events");
    let hello = message("hello");
    let mut grown = time_sequential(1000, 0, |_| api.post(&path, &hello)).await?;
    let mut last = grown.split_off(900);
    row("POST /events (session at 900–1,000 events)", &mut last);
    // List one page of 100 on sessions of 101 and 1,001 events.
    let hundred = targets.remove(0);
    let events = api
        .get(&format!("/v1/sessions/{hundred}/events?limit=1000"))
        .await?;
    let count = events["data"].as_array().map_or(0, Vec::len);
    let list = format!("/v1/sessions/{hundred}/events?limit=100");
    let mut listed = time_sequential(n, 20, |_| api.get(&list)).await?;
    row(
        &format!("GET /events?limit=100 (session of {count} events)"),
        &mut listed,
    );
    let list = format!("/v1/sessions/{long}/events?limit=100");
    let mut listed = time_sequential(n, 20, |_| api.get(&list)).await?;
    row(
        "GET /events?limit=100 (session of 1,001 events)",
        &mut listed,
    );
    // The page a client reads most: the latest 200 of a long session (issue 12, item 7).
    let list = format!("/v1/sessions/{long}/events?limit=200&order=desc");
    let mut listed = time_sequential(n, 20, |_| api.get(&list)).await?;
    row(
        "GET /events?limit=200&order=desc (session of 1,001 events)",
        &mut listed,
    );
    Ok(())
}

/// Durable throughput of single-event POSTs from `clients` concurrent clients over `sessions`.
async fn throughput_row(
    server: &Server,
    api: &Api,
    create: &Value,
    clients: usize,
    sessions: usize,
    secs: f64,
) -> Result<()> {
    let ids = Arc::new(api.sessions(create, sessions).await?);
    let load = loadavg();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error: Arc<Mutex<Option<String>>> = Arc::default();
    let per_second: Arc<Vec<AtomicU64>> = Arc::new(
        (0..(secs.ceil() as usize + 2))
            .map(|_| AtomicU64::new(0))
            .collect(),
    );
    let cpu_before = server.cpu();
    let self_before = cpu_seconds("self");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for c in 0..clients {
        // Clients use the nodes in turn (one node: all of them use it).
        let api = Api {
            http: api.http.clone(),
            base: server.base_of(c).to_owned(),
        };
        let ids = ids.clone();
        let (ok, failed, first_error, per_second) = (
            ok.clone(),
            failed.clone(),
            first_error.clone(),
            per_second.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let path = format!("/v1/sessions/{}/events", ids[c % ids.len()]);
            let body = message("throughput");
            let mut latencies = Vec::new();
            // Bounded: by the deadline and by a generous count.
            for _ in 0..1_000_000 {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                match api.post(&path, &body).await {
                    Ok(_) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        let second = start.elapsed().as_secs() as usize;
                        if let Some(slot) = per_second.get(second) {
                            slot.fetch_add(1, Ordering::Relaxed);
                        }
                        latencies.push(t.elapsed().as_nanos() as u64);
                    }
                    Err(err) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert_with(|| err.to_string());
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let server_cpu = server.cpu() - cpu_before;
    let client_cpu = cpu_seconds("self") - self_before;
    let ok = ok.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);
    let (p50, p99, _) = summary(&mut latencies);
    let seconds: Vec<String> = per_second
        .iter()
        .take(secs.ceil() as usize)
        .map(|s| s.load(Ordering::Relaxed).to_string())
        .collect();
    println!(
        "| {clients} | {sessions} | {:.0} | {failed} | {p50:.1} | {p99:.1} | {:.0} | {:.0} | {load} |",
        ok as f64 / elapsed,
        server_cpu / elapsed * 100.0,
        server_cpu / ok.max(1) as f64 * 1e6,
    );
    println!(
        "<!-- per second: {}; client CPU {:.0}% -->",
        seconds.join(" "),
        client_cpu / elapsed * 100.0
    );
    if let Some(err) = first_error.lock().unwrap_or_else(|p| p.into_inner()).take() {
        println!(
            "<!-- first error: {} -->",
            err.chars().take(300).collect::<String>()
        );
    }
    Ok(())
}

async fn throughput(storage: &str) -> Result<()> {
    let secs: f64 = env_or("HTTP_LOAD_SECS", 10.0);
    let clients: usize = env_or("HTTP_LOAD_CLIENTS", 64);
    let nodes: usize = env_or("HTTP_LOAD_NODES", 1);
    println!(
        "\n### Durable POST /events throughput, {storage}, {nodes} node(s), {secs} s per row\n"
    );
    println!("| clients | sessions | events/s | errors | p50 ms | p99 ms | server CPU % | server CPU µs/event | load average |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for sessions in [clients, 1] {
        // A fresh server per row so one row's data does not slow the next.
        let server = Server::start(storage)?;
        let api = Api::new(&server.base)?;
        let create = api.setup().await?;
        throughput_row(&server, &api, &create, clients, sessions, secs).await?;
    }
    Ok(())
}

/// Opens one SSE stream; resolves once the opening comment arrived, returning the response.
async fn open_stream(api: &Api, session: &str) -> Result<reqwest::Response> {
    let mut response = api
        .http
        .get(format!("{}/v1/sessions/{session}/events/stream", api.base))
        .header("x-api-key", KEY)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("stream: {}", response.status());
    }
    match tokio::time::timeout(Duration::from_secs(30), response.chunk()).await {
        Ok(Ok(Some(_))) => Ok(response),
        Ok(Ok(None)) => bail!("stream ended before its first frame"),
        Ok(Err(err)) => Err(err.into()),
        Err(_) => bail!("no first frame within 30 s"),
    }
}

fn open_streams_gauge(metrics: &str) -> String {
    metrics
        .lines()
        .find(|l| l.contains("open") && l.contains("stream") && !l.starts_with('#'))
        .unwrap_or("?")
        .to_owned()
}

async fn sse_idle(storage: &str) -> Result<()> {
    let streams: usize = env_or("HTTP_LOAD_IDLE_STREAMS", 10_000);
    let sessions: usize = env_or("HTTP_LOAD_IDLE_SESSIONS", 1000);
    let server = Server::start(storage)?;
    let api = Api::new(&server.base)?;
    let streaming = Api::streaming(&server.base)?;
    let create = api.setup().await?;
    let ids = Arc::new(api.sessions(&create, sessions).await?);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server.rss_mib();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let opener = {
        let (ids, opened, failed, streaming) = (
            ids.clone(),
            opened.clone(),
            failed.clone(),
            streaming.clone(),
        );
        stream::iter(0..streams)
            .map(move |i| {
                let (ids, opened, failed, streaming, mut stop) = (
                    ids.clone(),
                    opened.clone(),
                    failed.clone(),
                    streaming.clone(),
                    stop_rx.clone(),
                );
                async move {
                    match open_stream(&streaming, &ids[i % ids.len()]).await {
                        Ok(mut response) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            tokio::spawn(async move {
                                // Drain pings until told to stop (bounded by the stop signal).
                                loop {
                                    tokio::select! {
                                        chunk = response.chunk() => match chunk {
                                            Ok(Some(_)) => {}
                                            _ => break,
                                        },
                                        _ = stop.wait_for(|s| *s) => break,
                                    }
                                }
                            });
                        }
                        Err(err) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("first stream failure: {err:#}");
                            }
                        }
                    }
                }
            })
            .buffer_unordered(256)
            .collect::<Vec<()>>()
    };
    opener.await;
    let open_secs = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = server.rss_mib();
    let gauge = open_streams_gauge(&api.metrics().await?);
    let n = opened.load(Ordering::Relaxed);
    println!(
        "\n### Idle SSE streams, {storage} (load average {})\n",
        loadavg()
    );
    println!("| streams open | failed | sessions | open time s | server RSS before MiB | server RSS with streams MiB | KiB per stream |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {n} | {} | {sessions} | {open_secs:.1} | {rss_before:.0} | {rss_after:.0} | {:.1} |",
        failed.load(Ordering::Relaxed),
        (rss_after - rss_before) * 1024.0 / n.max(1) as f64
    );
    println!("<!-- server gauge: {gauge} -->");
    let _ = stop_tx.send(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}

/// Finds `lat@<ns>#<seq>` markers in complete SSE frames of `buf`, keeping the incomplete tail.
fn scan_frames(buf: &mut Vec<u8>, mut each: impl FnMut(u64, usize)) {
    let mut consumed = 0;
    while let Some(end) = find(&buf[consumed..], b"\n\n") {
        let frame = &buf[consumed..consumed + end];
        if frame.starts_with(b"event: user.message") {
            if let Some(at) = find(frame, b"lat@") {
                let rest = &frame[at + 4..];
                let digits = |s: &[u8]| -> (u64, usize) {
                    let n = s.iter().take_while(|b| b.is_ascii_digit()).count();
                    let v = std::str::from_utf8(&s[..n])
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0);
                    (v, n)
                };
                let (sent, len) = digits(rest);
                let (seq, _) = digits(rest.get(len + 1..).unwrap_or_default());
                each(sent, seq as usize);
            }
        }
        consumed += end + 2;
    }
    buf.drain(..consumed);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn sse_fanout(storage: &str) -> Result<()> {
    let streams: usize = env_or("HTTP_LOAD_FANOUT_STREAMS", 1000);
    let rate: u64 = env_or("HTTP_LOAD_FANOUT_RATE", 100);
    let secs: u64 = env_or("HTTP_LOAD_FANOUT_SECS", 10);
    let total = (rate * secs) as usize;
    let server = Server::start(storage)?;
    let api = Api::new(&server.base)?;
    // With several nodes the streams are on the second one: every delivery crosses nodes.
    let streaming = Api::streaming(server.base_of(1))?;
    let create = api.setup().await?;
    let session = api.session(&create).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let complete = Arc::new(AtomicUsize::new(0));
    let responses: Vec<reqwest::Response> = stream::iter(0..streams)
        .map(|_| open_stream(&streaming, &session))
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    let mut receivers = Vec::new();
    for mut response in responses {
        let mut stop = stop_rx.clone();
        let complete = complete.clone();
        receivers.push(tokio::spawn(async move {
            let mut seen = vec![false; total];
            let mut got = 0;
            let mut latencies = Vec::with_capacity(total);
            let mut buf = Vec::new();
            while got < total {
                tokio::select! {
                    chunk = response.chunk() => match chunk {
                        Ok(Some(bytes)) => {
                            let received = now_ns();
                            buf.extend_from_slice(&bytes);
                            scan_frames(&mut buf, |sent, seq| {
                                if seq < total && !seen[seq] {
                                    seen[seq] = true;
                                    got += 1;
                                    latencies.push(received.saturating_sub(sent));
                                }
                            });
                        }
                        _ => break,
                    },
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            if got == total {
                complete.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let load = loadavg();
    let cpu_before = server.cpu();
    let tool_cpu_before = cpu_seconds("self");
    let rss_before = server.rss_mib();
    let path = format!("/v1/sessions/{session}/events");
    // The sender runs on a runtime of its own (one thread), so the acknowledgements it times
    // do not wait behind the receivers' work in this process.
    let sender = {
        let base = server.base.clone();
        std::thread::spawn(move || -> Result<(Vec<u64>, usize, f64)> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let api = Api::new(&base)?;
                let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                let start = Instant::now();
                let mut posts = Vec::with_capacity(total);
                for seq in 0..total {
                    ticker.tick().await;
                    let api = api.clone();
                    let path = path.clone();
                    posts.push(tokio::spawn(async move {
                        let sent = now_ns();
                        let result = api
                            .post(&path, &message(&format!("lat@{sent}#{seq}")))
                            .await;
                        result.map(|_| now_ns() - sent)
                    }));
                }
                let mut acks = Vec::with_capacity(total);
                let mut post_errors = 0;
                for post in posts {
                    match post.await? {
                        Ok(ns) => acks.push(ns),
                        Err(_) => post_errors += 1,
                    }
                }
                Ok((acks, post_errors, start.elapsed().as_secs_f64()))
            })
        })
    };
    let (mut acks, post_errors, send_secs) = tokio::task::spawn_blocking(move || sender.join())
        .await?
        .map_err(|_| anyhow!("the sender panicked"))??;
    // Let deliveries finish (bounded), then stop every receiver.
    let wait = Instant::now();
    while complete.load(Ordering::Relaxed) < streams && wait.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    let mut all = Vec::with_capacity(total * streams);
    for receiver in receivers {
        all.extend(receiver.await?);
    }
    let server_cpu = server.cpu() - cpu_before;
    let tool_cpu = cpu_seconds("self") - tool_cpu_before;
    let rss_after = server.rss_mib();
    let delivered = all.len();
    let (p50, p99, max) = summary(&mut all);
    let (ack50, ack99, _) = summary(&mut acks);
    println!(
        "\n### SSE fan-out, {storage}, {} node(s): {streams} streams on one session, {rate} events/s for {secs} s (load average {load})\n",
        server.nodes.len()
    );
    println!("| streams | events sent | send rate /s | POST errors | deliveries | p50 ms | p99 ms | max ms | POST ack p50 ms | POST ack p99 ms | server CPU % | tool CPU % | server RSS MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {streams} | {total} | {:.0} | {post_errors} | {delivered} / {} | {p50:.2} | {p99:.2} | {max:.2} | {ack50:.2} | {ack99:.2} | {:.0} | {:.0} | {rss_before:.0} → {rss_after:.0} |",
        total as f64 / send_secs,
        total * streams,
        server_cpu / send_secs * 100.0,
        tool_cpu / send_secs * 100.0,
    );
    Ok(())
}

async fn run(phases: &[String]) -> Result<()> {
    let raised = raise_nofile(&std::process::id().to_string())?;
    let storage = std::env::var("HTTP_LOAD_STORAGE").unwrap_or_else(|_| "rocksdb".to_owned());
    println!(
        "http_load: client nofile {raised}, load average {}, {} cores",
        loadavg(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for phase in phases {
        match phase.as_str() {
            "latency" => latency(&storage).await?,
            "throughput" => throughput(&storage).await?,
            "sse-idle" => sse_idle(&storage).await?,
            "sse-fanout" => sse_fanout(&storage).await?,
            other => bail!("unknown phase {other:?}: latency, throughput, sse-idle, sse-fanout"),
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    now_ns();
    let mut phases: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if phases.is_empty() || phases.iter().any(|p| p == "all") {
        phases = ["latency", "throughput", "sse-idle", "sse-fanout"]
            .map(str::to_owned)
            .to_vec();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(&phases))
}
