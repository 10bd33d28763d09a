//! How fast a long-running sandboxed process (`Sandbox::start`, what the `claude` and `codex`
//! engines run) starts and stops: many times, a fresh sandbox runs a shell that forks a
//! background `sleep` and prints `ready`; the tool times start → the `ready` line, then
//! `kill()` → `wait()` returning (bwrap reaped and stderr closed: no process of the sandbox
//! left). Prints p50/p99/max of both.
//!
//! `cargo run -p managed-agents-harness --example process_kill -- [RUNS]`

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use managed_agents_harness::sandbox::{
    BubblewrapSandbox, Command, Network, Options, Sandbox, Workspaces,
};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name}: n={} p50={:.1?} p99={:.1?} max={:.1?}",
        samples.len(),
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        samples[samples.len() - 1]
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100);
    let sandbox = BubblewrapSandbox::new(Options::default())?;
    println!("{}", sandbox.enforcement());
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let workspaces = Workspaces::new(dir.path().join("workspaces"));
    let ws = workspaces.create("sesn_bench_process").await?;
    let script =
        "trap '' TERM HUP; (trap '' TERM HUP; exec sleep 1000) & echo ready; exec sleep 1000";
    let (mut started, mut stopped) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut process = sandbox
            .start(&ws, Network::Isolated, Command::shell(script))
            .await?;
        let mut lines = process
            .stdout()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let ready = lines.next().await?;
        anyhow::ensure!(ready.as_deref() == Some("ready"), "got {ready:?}");
        started.push(t0.elapsed());
        let t1 = Instant::now();
        let exit = process.kill().await?;
        stopped.push(t1.elapsed());
        anyhow::ensure!(exit.killed, "not killed: {exit:?}");
    }
    report("start → first line", started);
    report("kill → wait (every process gone)", stopped);
    Ok(())
}
