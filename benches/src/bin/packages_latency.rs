//! Environment packages: time from a new session's first `POST /v1/sessions/{id}/events` to
//! its first model request at the mock model (in this process, so its `received_at` shares
//! our clock), against a release `managed-agents serve` (RocksDB, loopback, `native` engine).
//!
//! - build: the first session of an environment with packages: the layer is built (the
//!   installers run in a sandbox through the door, from the real registries) before the turn.
//!   Each sample uses a fresh server and data dir, so every sample builds.
//! - reuse: further new sessions of that environment: the built layer is found and bound.
//! - none: new sessions of an environment without packages (the baseline).
//!
//! The registries must be reachable; where they resolve to a non-public address (a local
//! mirror), pass `--allow-private` (the server gets `--egress-allow-private`).
//!
//! ```sh
//! cargo build --release -p managed-agents-server --bin managed-agents -p managed-agents-benches --bin packages_latency
//! $CARGO_TARGET_DIR/release/packages_latency [--builds 3] [--reuse 20] [--pip six==1.16.0] [--npm semver@7.6.3] [--allow-private]
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use managed_agents_benches::server::{self, Api, Objects, Server};
use managed_agents_benches::{load_average, pct};
use managed_agents_harness::mock_model::{self, MockModel, Script};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(900);

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let builds: usize = flag("--builds").map_or(Ok(3), |v| v.parse())?;
    let reuse: usize = flag("--reuse").map_or(Ok(20), |v| v.parse())?;
    let pip = flag("--pip")
        .cloned()
        .unwrap_or_else(|| "six==1.16.0".into());
    let npm = flag("--npm")
        .cloned()
        .unwrap_or_else(|| "semver@7.6.3".into());
    let allow_private = args.iter().any(|a| a == "--allow-private");
    let env: Vec<(&str, &str)> = if allow_private {
        vec![("MANAGED_AGENTS_EGRESS_ALLOW_PRIVATE", "true")]
    } else {
        Vec::new()
    };
    let packages = json!({"pip": [pip], "npm": [npm]});
    println!("packages: {packages}");
    println!("load average before: {}", load_average());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = mock_model::serve(listener, Script::new()).await?;

    let mut build_ms = Vec::with_capacity(builds);
    let mut reuse_ms = Vec::with_capacity(reuse);
    let mut none_ms = Vec::with_capacity(reuse);
    for sample in 0..builds {
        let server = Server::start("packages-latency", &env)?;
        let api = Api::new(&server.base);
        let objects = server::objects(&api, &mock.url(), None).await?;
        let with_packages = environment(&api, &packages).await?;
        build_ms.push(first_request(&api, &mock, &objects, &with_packages).await?);
        if sample + 1 < builds {
            continue;
        }
        // The last server keeps its layer: sessions that reuse it, and the baseline.
        for _ in 0..reuse {
            reuse_ms.push(first_request(&api, &mock, &objects, &with_packages).await?);
            none_ms.push(first_request(&api, &mock, &objects, &objects.environment).await?);
        }
    }

    println!("load average after: {}", load_average());
    println!("\n### New session: POST /events to the first model request at the mock\n");
    println!("| environment | samples | p50 ms | p99 ms | min ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, v) in [
        ("packages, first session (build)", &mut build_ms),
        ("packages, later sessions (reuse)", &mut reuse_ms),
        ("no packages", &mut none_ms),
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

/// A `limited` environment with `allow_package_managers` and `packages`.
async fn environment(api: &Api, packages: &Value) -> Result<String> {
    let name = format!("bench-packages-{}", std::process::id());
    let env = api
        .post(
            "/v1/environments",
            json!({"name": name, "config": {"type": "cloud",
                "networking": {"type": "limited", "allowed_hosts": [],
                               "allow_package_managers": true},
                "packages": packages}}),
        )
        .await?;
    server::id(&env)
}

/// A new session of `environment`: milliseconds from its first message's POST to the first
/// model request; waits for the turn to end (and checks it ran without a session.error).
async fn first_request(
    api: &Api,
    mock: &MockModel,
    objects: &Objects,
    environment: &str,
) -> Result<f64> {
    let session = api
        .post(
            "/v1/sessions",
            json!({"agent": objects.agent, "environment_id": environment,
                   "vault_ids": [objects.vault]}),
        )
        .await?;
    let session = server::id(&session)?;
    let before = mock.requests().len();
    let body = json!({"events": [{"type": "user.message",
        "content": [{"type": "text", "text": "[[mock:text ok]]"}]}]});
    let sent = Instant::now();
    api.post(&format!("/v1/sessions/{session}/events"), body)
        .await?;
    let requests = tokio::time::timeout(TIMEOUT, mock.wait_for_requests(before + 1))
        .await
        .with_context(|| {
            format!("no model request for {session} in {TIMEOUT:?} (a failed install?)")
        })?;
    let ms = requests[before]
        .received_at
        .duration_since(sent)
        .as_secs_f64()
        * 1e3;
    server::wait_idle(api, &session, TIMEOUT).await?;
    Ok(ms)
}
