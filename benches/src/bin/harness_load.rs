//! Harness benchmarks against a release `managed-agents serve` (RocksDB, loopback) and the mock
//! model running in this process (its recorded `received_at` instants share our clock):
//!
//! - `latency`: from `POST /v1/sessions/{id}/events` to the first model request arriving at the
//!   mock, on sessions whose workspace and sandbox path are warm (each had a tool turn before).
//!   One message at a time; reported from the start of the POST (`send→model`) and from the
//!   moment its 200 response was read (`ack→model`, negative when the runner reached the model
//!   before the response got back to us).
//! - `length`: turn latency by session length: one warm session grown with text turns
//!   (`[[mock:text ok]]`: six public events and one fact each) and, once it holds at least each
//!   of `--lengths` (default 10,1000,10000) public events, `--samples` (default 30) turns timed
//!   like `latency` (POST sent → first model request), and `GET .../events?limit=200` timed
//!   from the client (an upper bound of its server time).
//! - `load`: N sessions at once (default 100), each doing T tool turns (default 10: a bash tool
//!   call in the sandbox, its result, a final text), each turn sent when the previous one's
//!   `session.status_idle` arrived on the session's SSE stream. Wall time, turn latency and the
//!   server's peak RSS (`VmHWM` of a server started fresh for this phase; the `bwrap` children are
//!   separate processes and not included).
//!
//! ```sh
//! cargo build --release -p managed-agents-server
//! cargo run --release -p managed-agents-benches --bin harness_load -- [latency|length|load|all] \
//!     [--samples 200] [--sessions 100] [--turns 10] [--lengths 10,1000,10000]
//! ```
//!
//! `HARNESS_LOAD_SERVER` overrides the server binary (default
//! `$CARGO_TARGET_DIR/release/managed-agents`); `HARNESS_LOAD_DIR` the parent of the data dir
//! (default the system temp dir; it may be private).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::StreamExt;
use managed_agents_benches::server::{self, Api, Server, KEY};
use managed_agents_benches::{load_average, pct};
use managed_agents_harness::mock_model::{self, MockModel, Script};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: usize| -> Result<usize> {
        match args.iter().position(|a| a == name) {
            Some(i) => Ok(args.get(i + 1).context("flag value")?.parse()?),
            None => Ok(default),
        }
    };
    let mode = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "all".into());
    let samples = flag("--samples", 200)?;
    let sessions = flag("--sessions", 100)?;
    let turns = flag("--turns", 10)?;
    println!("load average: {}", load_average());
    if mode == "latency" || mode == "all" {
        latency(samples).await?;
    }
    if mode == "length" || mode == "all" {
        let lengths = match args.iter().position(|a| a == "--lengths") {
            Some(i) => args
                .get(i + 1)
                .context("flag value")?
                .split(',')
                .map(|n| n.parse::<usize>())
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![10, 1_000, 10_000],
        };
        let samples = flag("--samples", 30)?;
        length(&lengths, samples).await?;
    }
    if mode == "load" || mode == "all" {
        load(sessions, turns).await?;
    }
    Ok(())
}

async fn mock() -> Result<MockModel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(mock_model::serve(listener, Script::new()).await?)
}

fn message(text: &str) -> Value {
    json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]})
}

async fn latency(samples: usize) -> Result<()> {
    let mock = mock().await?;
    let server = Server::start("harness-load", &[("MANAGED_AGENTS_LOG", TIMING_LOG)])?;
    let stages = Stages {
        log: server.log_path(),
    };
    let mut windows = Vec::new();
    let api = Api::new(&server.base);
    let objects = server::objects(&api, &mock.url(), None).await?;
    let per_session = 10;
    let n_sessions = samples.div_ceil(per_session);
    let mut send_to_model = Vec::new();
    let mut ack_to_model = Vec::new();
    for _ in 0..n_sessions {
        let s = server::session(&api, &objects).await?;
        // Warm: the workspace exists and a sandbox has run in it.
        let before = mock.requests().len();
        api.post(
            &format!("/v1/sessions/{s}/events"),
            message(r#"[[mock:tool bash {"command":"true"}]]"#),
        )
        .await?;
        mock.wait_for_requests(before + 2).await;
        server::wait_idle(&api, &s, Duration::from_secs(60)).await?;
        let from = stages.offset();
        for _ in 0..per_session {
            let before = mock.requests().len();
            let sent = Instant::now();
            api.post(
                &format!("/v1/sessions/{s}/events"),
                message("[[mock:text ok]]"),
            )
            .await?;
            let acked = Instant::now();
            let requests = mock.wait_for_requests(before + 1).await;
            let at = requests[before].received_at;
            send_to_model.push(at.duration_since(sent).as_secs_f64() * 1e3);
            ack_to_model.push(if at >= acked {
                at.duration_since(acked).as_secs_f64() * 1e3
            } else {
                -(acked.duration_since(at).as_secs_f64() * 1e3)
            });
            server::wait_idle(&api, &s, Duration::from_secs(60)).await?;
        }
        windows.push((from, stages.offset()));
    }
    println!(
        "\n### POST /events to first model request ({} samples, {n_sessions} warm sessions)\n",
        send_to_model.len()
    );
    println!("| measured from | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (name, v) in [
        ("POST sent", &mut send_to_model),
        ("POST response read", &mut ack_to_model),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} |",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            v[v.len() - 1]
        );
    }
    // The stages of the sampled turns only (each session's warm-up turn is left out).
    stages.print(&windows)?;
    Ok(())
}

/// The number of public events of `session` (paging the list), and of its
/// `session.status_idle` events.
async fn count_events(api: &Api, session: &str) -> Result<(usize, usize)> {
    let mut count = 0;
    let mut idles = 0;
    let mut page: Option<String> = None;
    loop {
        let path = match &page {
            Some(p) => format!("/v1/sessions/{session}/events?limit=1000&page={p}"),
            None => format!("/v1/sessions/{session}/events?limit=1000"),
        };
        let v = api.get(&path).await?;
        let data = v["data"].as_array().cloned().unwrap_or_default();
        count += data.len();
        idles += data
            .iter()
            .filter(|e| e["type"] == "session.status_idle")
            .count();
        match v["next_page"].as_str() {
            Some(next) => page = Some(next.to_owned()),
            None => return Ok((count, idles)),
        }
    }
}

/// The server's stage timelines (`managed_agents::timing` log lines: `turn` from the runner,
/// `events.send` from the route), read from its log between two offsets.
struct Stages {
    log: std::path::PathBuf,
}

/// The log filter that turns the stage timelines on.
const TIMING_LOG: &str = "warn,managed_agents::timing=info";

impl Stages {
    fn offset(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// Per kind (`turn`, `events.send`), per stage, the ms of every line between the offsets
    /// of each window.
    #[allow(clippy::type_complexity)]
    fn within(&self, windows: &[(u64, u64)]) -> Result<Vec<(String, Vec<(String, Vec<f64>)>)>> {
        let bytes = std::fs::read(&self.log)?;
        let mut text = String::new();
        for &(from, to) in windows {
            let to = (to as usize).min(bytes.len());
            let from = (from as usize).min(to);
            text.push_str(&String::from_utf8_lossy(&bytes[from..to]));
        }
        let mut kinds: Vec<(String, Vec<(String, Vec<f64>)>)> = Vec::new();
        for line in text.lines() {
            let Some((_, rest)) = line.split_once("managed_agents::timing: ") else {
                continue;
            };
            let kind = rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
            let Some((_, stages)) = rest.split_once("stages=") else {
                continue;
            };
            let at = match kinds.iter().position(|(k, _)| *k == kind) {
                Some(at) => at,
                None => {
                    kinds.push((kind, Vec::new()));
                    kinds.len() - 1
                }
            };
            for stage in stages.split_whitespace() {
                let Some((name, us)) = stage.split_once('=') else {
                    continue;
                };
                let Ok(us) = us.parse::<f64>() else { continue };
                let list = &mut kinds[at].1;
                match list.iter_mut().find(|(n, _)| n == name) {
                    Some((_, v)) => v.push(us / 1e3),
                    None => list.push((name.to_owned(), vec![us / 1e3])),
                }
            }
        }
        Ok(kinds)
    }

    /// Prints the medians (and p99) of every stage within `windows`, as a Markdown table.
    fn print(&self, windows: &[(u64, u64)]) -> Result<()> {
        println!("\nServer-side stages (ms since the route began / the runner was notified):\n");
        println!("| line | stage | n | p50 ms | p99 ms |");
        println!("|---|---|---:|---:|---:|");
        for (kind, stages) in self.within(windows)? {
            for (name, mut v) in stages {
                v.sort_by(f64::total_cmp);
                println!(
                    "| {kind} | {name} | {} | {:.3} | {:.3} |",
                    v.len(),
                    pct(&v, 0.5),
                    pct(&v, 0.99)
                );
            }
        }
        Ok(())
    }
}

/// A session's SSE stream, read as text.
struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<String>>,
    buffer: String,
}

impl Events {
    async fn open(api: &Api, session: &str) -> Result<Self> {
        let response = api
            .http
            .get(format!("{}/v1/sessions/{session}/events/stream", api.base))
            .header("x-api-key", KEY)
            .send()
            .await?
            .error_for_status()?;
        Ok(Self {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .boxed(),
            buffer: String::new(),
        })
    }

    /// Reads until an `event: {kind}` line arrives; everything up to it is consumed.
    async fn until(&mut self, kind: &str) -> Result<Instant> {
        let line = format!("event: {kind}\n");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(at) = self.buffer.find(&line) {
                let now = Instant::now();
                self.buffer.drain(..at + line.len());
                return Ok(now);
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(Some(chunk)) => self.buffer.push_str(&chunk?),
                Ok(None) => bail!("the stream ended"),
                Err(_) => bail!("no {kind} in 60 s"),
            }
        }
    }
}

/// One text turn: POST, the model request it causes, the `agent.message` on the stream, idle
/// again. Returns (POST sent → model request, POST response read → model request, POST sent
/// → `agent.message` read from the stream) in ms.
async fn text_turn(
    api: &Api,
    mock: &MockModel,
    events: &mut Events,
    session: &str,
) -> Result<(f64, f64, f64)> {
    let before = mock.count();
    let sent = Instant::now();
    api.post(
        &format!("/v1/sessions/{session}/events"),
        message("[[mock:text ok]]"),
    )
    .await?;
    let acked = Instant::now();
    let answered = events.until("agent.message").await?;
    events.until("session.status_idle").await?;
    mock.wait_for_count(before + 1).await;
    let at = mock.received_at(before).context("request recorded")?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let from_ack = if at >= acked {
        ms(at.duration_since(acked))
    } else {
        -ms(acked.duration_since(at))
    };
    Ok((
        ms(at.duration_since(sent)),
        from_ack,
        ms(answered.duration_since(sent)),
    ))
}

async fn length(lengths: &[usize], samples: usize) -> Result<()> {
    let mock = mock().await?;
    let server = Server::start("harness-load", &[("MANAGED_AGENTS_LOG", TIMING_LOG)])?;
    let stages = Stages {
        log: server.log_path(),
    };
    let api = Api::new(&server.base);
    let objects = server::objects(&api, &mock.url(), None).await?;
    let s = server::session(&api, &objects).await?;
    // Warm: the workspace exists and a sandbox has run in it.
    let before = mock.count();
    api.post(
        &format!("/v1/sessions/{s}/events"),
        message(r#"[[mock:tool bash {"command":"true"}]]"#),
    )
    .await?;
    mock.wait_for_count(before + 2).await;
    server::wait_idle(&api, &s, Duration::from_secs(60)).await?;
    let (mut events, _) = count_events(&api, &s).await?;
    // Without a cursor the stream starts at the session's head.
    let mut stream = Events::open(&api, &s).await?;
    let mut rows = Vec::new();
    for &target in lengths {
        let grow = Instant::now();
        while events < target {
            text_turn(&api, &mock, &mut stream, &s).await?;
            // The mock keeps what it received: keep its memory flat.
            mock.forget_bodies();
            events += 6;
        }
        let grown = grow.elapsed();
        let (counted, _) = count_events(&api, &s).await?;
        let from = stages.offset();
        let mut send = Vec::with_capacity(samples);
        let mut ack = Vec::with_capacity(samples);
        let mut answer = Vec::with_capacity(samples);
        for _ in 0..samples {
            let (a, b, c) = text_turn(&api, &mock, &mut stream, &s).await?;
            send.push(a);
            ack.push(b);
            answer.push(c);
            mock.forget_bodies();
        }
        println!("\nAt {counted} public events:");
        stages.print(&[(from, stages.offset())])?;
        events = counted + 6 * samples;
        let mut list = Vec::with_capacity(samples);
        let path = format!("/v1/sessions/{s}/events?limit=200&order=desc");
        for _ in 0..samples {
            let t = Instant::now();
            let v = api.get(&path).await?;
            list.push(t.elapsed().as_secs_f64() * 1e3);
            if v["data"].as_array().map_or(0, Vec::len) < 200.min(counted) {
                bail!("the list returned fewer events than asked");
            }
        }
        for v in [&mut send, &mut ack, &mut answer, &mut list] {
            v.sort_by(f64::total_cmp);
        }
        rows.push(format!(
            "| {counted} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            grown.as_secs_f64(),
            pct(&send, 0.5),
            pct(&send, 0.9),
            pct(&send, 0.99),
            pct(&ack, 0.5),
            pct(&answer, 0.5),
            pct(&list, 0.5),
            pct(&list, 0.99),
        ));
    }
    println!("\n### Turn latency by session length ({samples} samples per row, one session)\n");
    println!("| public events | grown in s | send→model p50 ms | p90 ms | p99 ms | ack→model p50 ms | send→agent.message p50 ms | list 200 p50 ms | list 200 p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    Ok(())
}

async fn load(n: usize, turns: usize) -> Result<()> {
    let mock = mock().await?;
    let server = Server::start("harness-load", &[])?;
    let api = Api::new(&server.base);
    let objects = server::objects(&api, &mock.url(), None).await?;
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(server::session(&api, &objects).await?);
    }
    let rss_before = status_kb(server.pid(), "VmRSS:");
    let cpu_before = cpu_seconds(server.pid());
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        let pid = server.pid();
        tokio::spawn(async move {
            loop {
                let rss = status_kb(pid, "VmRSS:");
                peak.fetch_max(rss, std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let tasks: Vec<_> = sessions
        .iter()
        .cloned()
        .map(|s| {
            let api = api.clone();
            tokio::spawn(async move { session_turns(&api, &s, turns).await })
        })
        .collect();
    let mut turn_ms = Vec::with_capacity(n * turns);
    for task in tasks {
        turn_ms.extend(task.await??);
    }
    let wall = started.elapsed();
    sampler.abort();
    let cpu = cpu_seconds(server.pid()) - cpu_before;
    let hwm = status_kb(server.pid(), "VmHWM:");
    let model_requests = mock.requests().len();
    turn_ms.sort_by(f64::total_cmp);
    println!("\n### {n} sessions × {turns} tool turns at once\n");
    println!("| turns | model requests | wall s | turns/s | turn p50 ms | turn p99 ms | server CPU s | RSS before MiB | peak RSS sampled MiB | VmHWM MiB |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {model_requests} | {:.2} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        turn_ms.len(),
        wall.as_secs_f64(),
        turn_ms.len() as f64 / wall.as_secs_f64(),
        pct(&turn_ms, 0.5),
        pct(&turn_ms, 0.99),
        cpu,
        rss_before as f64 / 1024.0,
        peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0,
        hwm as f64 / 1024.0,
    );
    Ok(())
}

/// One session: open its stream, then `turns` tool turns, each sent when the previous idled.
async fn session_turns(api: &Api, session: &str, turns: usize) -> Result<Vec<f64>> {
    let response = api
        .http
        .get(format!("{}/v1/sessions/{session}/events/stream", api.base))
        .header("x-api-key", KEY)
        .send()
        .await?
        .error_for_status()?;
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut times = Vec::with_capacity(turns);
    for i in 0..turns {
        let prompt = format!(r#"[[mock:tool bash {{"command":"echo turn {i}"}}]]"#);
        let start = Instant::now();
        api.post(&format!("/v1/sessions/{session}/events"), message(&prompt))
            .await?;
        loop {
            if let Some(at) = buffer.find("event: session.status_idle") {
                buffer.drain(..at + 10);
                break;
            }
            match tokio::time::timeout(Duration::from_secs(120), body.next()).await {
                Ok(Some(chunk)) => buffer.push_str(&String::from_utf8_lossy(&chunk?)),
                Ok(None) => bail!("stream of {session} ended"),
                Err(_) => bail!("session {session} turn {i} did not idle in 120 s"),
            }
        }
        if !buffer.is_empty() && buffer.len() > 1 << 20 {
            buffer.clear();
        }
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    Ok(times)
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of /proc/pid/stat (11 and 12 after the comm).
    (ticks(11) + ticks(12)) / 100.0
}
