//! Harness benchmarks against a release `managed-agents serve` (RocksDB, loopback) and the mock
//! model running in this process (its recorded `received_at` instants share our clock):
//!
//! - `latency`: from `POST /v1/sessions/{id}/events` to the first model request arriving at the
//!   mock, on sessions whose workspace and sandbox path are warm (each had a tool turn before).
//!   One message at a time; reported from the start of the POST (`send→model`) and from the
//!   moment its 200 response was read (`ack→model`, negative when the runner reached the model
//!   before the response got back to us).
//! - `load`: N sessions at once (default 100), each doing T tool turns (default 10: a bash tool
//!   call in the sandbox, its result, a final text), each turn sent when the previous one's
//!   `session.status_idle` arrived on the session's SSE stream. Wall time, turn latency and the
//!   server's peak RSS (`VmHWM` of a server started fresh for this phase; the `bwrap` children are
//!   separate processes and not included).
//!
//! ```sh
//! cargo build --release -p managed-agents-server
//! cargo run --release -p managed-agents-benches --bin harness_load -- [latency|load|all] \
//!     [--samples 200] [--sessions 100] [--turns 10]
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
    let server = Server::start("harness-load", &[])?;
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
