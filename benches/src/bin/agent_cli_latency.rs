//! Latency of the agent-in-sandbox engines (`claude`, `codex`): from the start of `POST
//! /v1/sessions/{id}/events` to the first model request arriving at the mock model (which runs
//! in this process, so its `received_at` shares our clock), against a release `managed-agents
//! serve` (RocksDB, loopback) with the pinned runtimes.
//!
//! - cold: a new session per sample: its workspace and sandbox are created, the CLI starts and
//!   creates its conversation;
//! - warm: further messages to one session that already ran a turn: the CLI starts again in the
//!   existing workspace and resumes its conversation.
//!
//! - interrupt (`--interrupts N`, `claude` only): a turn running `sleep 30` through Claude
//!   Code's Bash tool gets a `user.interrupt` once its `agent.tool_use` is in the log; the time
//!   from that POST until the session is idle (the sandbox's whole pid namespace killed, the
//!   turn closed).
//!
//! ```sh
//! export MANAGED_AGENTS_RUNTIMES_DIR=$(scripts/agent-runtimes.sh)
//! cargo build --release -p managed-agents-server --bin managed-agents
//! cargo run --release -p managed-agents-benches --bin agent_cli_latency -- \
//!     [--engine claude] [--cold 20] [--warm 20] [--interrupts 10]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use managed_agents_benches::server::{self, Api, Server};
use managed_agents_benches::{load_average, pct};
use managed_agents_harness::mock_model::{self, MockModel, Script};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let engine = flag("--engine").cloned().unwrap_or_else(|| "claude".into());
    let cold: usize = flag("--cold").map_or(Ok(20), |v| v.parse())?;
    let warm: usize = flag("--warm").map_or(Ok(20), |v| v.parse())?;
    let interrupts: usize = flag("--interrupts").map_or(Ok(0), |v| v.parse())?;
    if interrupts > 0 && engine != "claude" {
        bail!("--interrupts drives Claude Code's Bash tool: only with --engine claude");
    }
    let runtimes = std::env::var("MANAGED_AGENTS_RUNTIMES_DIR")
        .context("set MANAGED_AGENTS_RUNTIMES_DIR (scripts/agent-runtimes.sh prints it)")?;
    println!("load average before: {}", load_average());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = mock_model::serve(listener, Script::new()).await?;
    let server = Server::start(
        "agent-cli-latency",
        &[("MANAGED_AGENTS_RUNTIMES_DIR", runtimes.as_str())],
    )?;
    let api = Api::new(&server.base);
    let objects = server::objects(&api, &mock.url(), Some(&engine)).await?;

    let mut cold_ms = Vec::with_capacity(cold);
    for _ in 0..cold {
        let session = server::session(&api, &objects).await?;
        cold_ms.push(first_request(&api, &mock, &session).await?);
    }
    let session = server::session(&api, &objects).await?;
    first_request(&api, &mock, &session).await?;
    let mut warm_ms = Vec::with_capacity(warm);
    for _ in 0..warm {
        warm_ms.push(first_request(&api, &mock, &session).await?);
    }

    let mut interrupt_ms = Vec::with_capacity(interrupts);
    for _ in 0..interrupts {
        interrupt_ms.push(interrupt(&api, &session).await?);
    }

    println!("load average after: {}", load_average());
    println!("\n### `{engine}`: POST /events to the first model request at the mock\n");
    println!("| sandbox | samples | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, v) in [
        ("cold (new session)", &mut cold_ms),
        ("warm (resumed)", &mut warm_ms),
        ("interrupt → idle", &mut interrupt_ms),
    ] {
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99),
            v[0],
            v[v.len() - 1]
        );
    }
    Ok(())
}

/// Sends one message and returns the milliseconds from the POST to the first model request;
/// waits for the turn to end before returning.
async fn first_request(api: &Api, mock: &MockModel, session: &str) -> Result<f64> {
    let before = mock.requests().len();
    let body = json!({"events": [{"type": "user.message",
        "content": [{"type": "text", "text": "[[mock:text ok]]"}]}]});
    let sent = Instant::now();
    api.post(&format!("/v1/sessions/{session}/events"), body)
        .await?;
    let requests =
        tokio::time::timeout(Duration::from_secs(120), mock.wait_for_requests(before + 1))
            .await
            .with_context(|| format!("no model request for {session} in 120 s"))?;
    let ms = requests[before]
        .received_at
        .duration_since(sent)
        .as_secs_f64()
        * 1e3;
    server::wait_idle(api, session, Duration::from_secs(120)).await?;
    Ok(ms)
}

/// Starts `sleep 30` through Claude Code's Bash tool, interrupts it once its call is in the
/// log, and returns the milliseconds from the interrupt's POST to the idle session.
async fn interrupt(api: &Api, session: &str) -> Result<f64> {
    let events = |api: &Api| {
        let path = format!("/v1/sessions/{session}/events?limit=1000");
        let api = api.clone();
        async move { api.get(&path).await }
    };
    let before = events(api).await?["data"].as_array().map_or(0, |d| {
        d.iter().filter(|e| e["type"] == "agent.tool_use").count()
    });
    let body = json!({"events": [{"type": "user.message", "content": [{"type": "text",
        "text": r#"[[mock:tool Bash {"command":"sleep 30"}]]"#}]}]});
    api.post(&format!("/v1/sessions/{session}/events"), body)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let page = events(api).await?;
        let calls = page["data"].as_array().map_or(0, |d| {
            d.iter().filter(|e| e["type"] == "agent.tool_use").count()
        });
        if calls > before {
            break;
        }
        if Instant::now() > deadline {
            bail!("no agent.tool_use for {session} in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let sent = Instant::now();
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({"events": [{"type": "user.interrupt"}]}),
    )
    .await?;
    server::wait_idle(api, session, Duration::from_secs(120)).await?;
    Ok(sent.elapsed().as_secs_f64() * 1e3)
}
