//! The egress door's cost: a real sandbox reaching a loopback HTTP server through the relay and
//! the proxy (`harness::door`), against `curl` on the host reaching it directly, in one run.
//!
//! - CONNECT setup: `curl --proxytunnel` in the sandbox, `time_pretransfer - time_connect`
//!   (relay accept, unix socket, the proxy's policy and address checks, upstream TCP connect,
//!   the `200`), over `--connects` requests; the direct baseline is `time_pretransfer` of a
//!   plain request on the host (the TCP handshake).
//! - Throughput: a 100 MiB body (`--mib`) through a CONNECT tunnel vs direct, best of
//!   `--downloads` each, interleaved.
//!
//! ```text
//! cargo build --release -p managed-agents-benches --bin egress -p managed-agents-harness --bin sandbox-relay
//! target/release/egress [--connects 200] [--downloads 3] [--mib 100] [--sandbox-cpu-percent 100]
//! ```
//! Needs bubblewrap and curl; as root it runs like the server (a host uid per workspace).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use managed_agents_benches::{load_average, pct};
use managed_agents_core::ids::SessionId;
use managed_agents_harness::door::{Door, DoorOptions, Policy, SessionDoor};
use managed_agents_harness::sandbox::{BubblewrapSandbox, Command, Options, Sandbox, Workspaces};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOST: &str = "127.0.0.2";

fn arg(name: &str, default: u64) -> Result<u64> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .context("missing value")?
            .parse()
            .with_context(|| name.to_owned()),
        None => Ok(default),
    }
}

/// A loopback server: `/big` answers `mib` MiB of zeros, anything else a few bytes. A fixture
/// only (reads the request head up to the blank line, ignores it).
async fn serve(mib: u64) -> Result<u16> {
    let listener = tokio::net::TcpListener::bind((HOST, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = socket.set_nodelay(true);
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let big = head.starts_with(b"GET /big");
                let len = if big { mib << 20 } else { 3 };
                let header = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                );
                if socket.write_all(header.as_bytes()).await.is_err() {
                    return;
                }
                if !big {
                    let _ = socket.write_all(b"ok\n").await;
                    return;
                }
                let chunk = vec![0u8; 1 << 20];
                for _ in 0..mib {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Runs `curl` on the host and returns its `-w` output.
async fn host_curl(args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null"])
        .args(args)
        .output()
        .await?;
    if !out.status.success() {
        bail!("curl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn summary(label: &str, mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "{label}: n={} p50={:.2} ms p99={:.2} ms",
        samples.len(),
        pct(&samples, 0.5) * 1e3,
        pct(&samples, 0.99) * 1e3
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let connects = arg("--connects", 200)?;
    let downloads = arg("--downloads", 3)?;
    let mib = arg("--mib", 100)?;
    // The sandbox's CPU share in hundredths of a CPU (the server's default: 100); 0 for none.
    let cpus = arg("--sandbox-cpu-percent", 100)?;
    println!("load average before: {}", load_average());

    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))?;
    let relay = std::env::current_exe()?
        .parent()
        .map(|d| d.join("sandbox-relay"))
        .context("no target directory")?;
    let door = Door::new(DoorOptions {
        dir: dir.path().join("doors"),
        relay,
        allow_private: true,
        api_addrs: Vec::new(),
    })?;
    let mut options = Options::default();
    options.limits.cpus = (cpus > 0).then(|| cpus as f64 / 100.0);
    let sandbox = BubblewrapSandbox::new(options)?;
    let workspaces = Workspaces::new(dir.path().join("workspaces"));
    let workspace = workspaces.create("sesn_egress_bench").await?;
    let network = door.register(
        SessionDoor::new(SessionId::parse("sesn_egress_bench")?, Policy::Unrestricted),
        &workspace,
    )?;
    let port = serve(mib).await?;
    let small = format!("http://{HOST}:{port}/small");
    let big = format!("http://{HOST}:{port}/big");
    let in_sandbox = |script: String| {
        sandbox.run(
            &workspace,
            network.clone(),
            Command::shell(script)
                .timeout(Duration::from_secs(600))
                .output_limit(1 << 20),
        )
    };

    // CONNECT setup through the door, and the direct TCP handshake.
    let script = format!(
        "for i in $(seq {connects}); do curl -sS -p -o /dev/null -w '%{{time_connect}} %{{time_pretransfer}}\\n' {small} || exit 1; done"
    );
    let out = in_sandbox(script).await?;
    if !out.success() {
        bail!("sandboxed curl failed: {out:?}");
    }
    let through: Vec<f64> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let (c, p) = l.split_once(' ')?;
            Some(p.parse::<f64>().ok()? - c.parse::<f64>().ok()?)
        })
        .collect();
    let mut direct = Vec::new();
    for _ in 0..connects {
        direct.push(
            host_curl(&["--noproxy", "*", "-w", "%{time_pretransfer}", &small])
                .await?
                .parse()?,
        );
    }
    println!("{}", summary("CONNECT setup through the door", through));
    println!("{}", summary("direct TCP connect (host curl)", direct));

    // The door without the sandbox: an in-process relay on the host hands `curl`'s
    // connections to the same door socket, so only the proxy's own cost remains.
    let host_relay = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let host_proxy = format!("http://{}", host_relay.local_addr()?);
    let socket = dir
        .path()
        .join("doors/sesn_egress_bench")
        .join(managed_agents_harness::door::SOCKET_NAME);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = host_relay.accept().await {
            let socket = socket.clone();
            tokio::spawn(async move {
                if let Ok(unix) = tokio::net::UnixStream::connect(&socket).await {
                    let _ = managed_agents_harness::door::handoff::send(&unix, &tcp).await;
                }
            });
        }
    });

    // Throughput, interleaved.
    let (mut best_door, mut best_direct, mut best_host_door) = (0f64, 0f64, 0f64);
    for _ in 0..downloads {
        let out = in_sandbox(format!(
            "curl -sS -p -o /dev/null -w '%{{speed_download}}' {big}"
        ))
        .await?;
        if !out.success() {
            bail!("sandboxed download failed: {out:?}");
        }
        best_door = best_door.max(out.stdout.trim().parse()?);
        best_direct = best_direct.max(
            host_curl(&["--noproxy", "*", "-w", "%{speed_download}", &big])
                .await?
                .parse()?,
        );
        best_host_door = best_host_door.max(
            host_curl(&["-p", "-x", &host_proxy, "-w", "%{speed_download}", &big])
                .await?
                .parse()?,
        );
    }
    let mibs = |b: f64| b / f64::from(1 << 20);
    println!(
        "{mib} MiB download, best of {downloads}: through the door {:.0} MiB/s, direct {:.0} MiB/s, ratio {:.2}",
        mibs(best_door),
        mibs(best_direct),
        best_door / best_direct
    );
    println!(
        "the door without the sandbox (host curl, in-process relay): {:.0} MiB/s, ratio {:.2}",
        mibs(best_host_door),
        best_host_door / best_direct
    );
    println!(
        "egress counters: {}",
        door.counters()
            .render()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.ends_with(" 0"))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!("load average after: {}", load_average());
    door.unregister(&SessionId::parse("sesn_egress_bench")?);
    workspaces.delete("sesn_egress_bench").await?;
    Ok(())
}
