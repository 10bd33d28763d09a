//! Sandbox cold start to first output: runs `echo ready` in a fresh bubblewrap sandbox many
//! times and prints p50/p99 per network mode (isolated, and through a door: the relay started
//! in front of the command). Each run is a new `bwrap` (new namespaces, mounts,
//! cgroups), so this is the cost a tool call pays before its command starts.
//!
//! `cargo run -p managed-agents-harness --example sandbox_cold_start -- [RUNS]`

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use managed_agents_harness::door::{Door, DoorOptions, Policy, SessionDoor};
use managed_agents_harness::sandbox::{
    BubblewrapSandbox, Command, Network, Options, Sandbox, Workspaces,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200);
    let sandbox = BubblewrapSandbox::new(Options::default())?;
    println!("{}", sandbox.enforcement());
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let workspaces = Workspaces::new(dir.path().join("workspaces"));
    let ws = workspaces.create("sesn_bench").await?;

    // The relay: the harness's `sandbox-relay` bin next to `examples/`.
    let relay = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("sandbox-relay"))
        .ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    let door = Door::new(DoorOptions {
        dir: dir.path().join("doors"),
        relay,
        allow_private: false,
        api_addrs: Vec::new(),
    })?;
    let id = managed_agents_core::ids::SessionId::parse("sesn_bench")?;
    let through_door = door.register(SessionDoor::new(id, Policy::Unrestricted), &ws)?;
    for (label, network) in [
        ("isolated", Network::Isolated),
        ("through a door", through_door),
    ] {
        let mut samples = Vec::with_capacity(runs);
        for _ in 0..runs {
            let start = Instant::now();
            let out = sandbox
                .run(&ws, network.clone(), Command::new(["echo", "ready"]))
                .await?;
            samples.push(start.elapsed());
            anyhow::ensure!(out.stdout == "ready\n", "unexpected output: {out:?}");
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
        println!(
            "{label}: runs={runs} p50={:.2?} p99={:.2?} min={:.2?} max={:.2?}",
            pct(0.50),
            pct(0.99),
            samples[0],
            samples.last().copied().unwrap_or(Duration::ZERO),
        );
    }
    workspaces.delete("sesn_bench").await?;
    Ok(())
}
