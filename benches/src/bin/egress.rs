//! The egress door's cost: a real sandbox reaching a loopback HTTP server through the relay and
//! the proxy (`harness::door`), against `curl` on the host reaching it directly, in one run.
//!
//! - CONNECT setup: `curl --proxytunnel` in the sandbox, `time_pretransfer - time_connect`
//!   (relay accept, unix socket, the proxy's policy and address checks, upstream TCP connect,
//!   the `200`), over `--connects` requests; the direct baseline is `time_pretransfer` of a
//!   plain request on the host (the TCP handshake).
//! - Throughput: a 100 MiB body (`--mib`) through a CONNECT tunnel vs direct, `--downloads`
//!   each, interleaved; the median and the best of each, and the CPU each process spent per GiB
//!   (`curl`'s user+system time from bash's `time`; the server's thread and the door's threads
//!   from `/proc/self/task/*/schedstat`). The loopback server runs on its own thread, apart
//!   from the door's runtime. Both clients get the same CPU limit: the sandbox's cgroup share
//!   (`--sandbox-cpu-percent`), and a cgroup with the same quota for the host `curl`s.
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

/// A loopback server on its own thread (a current-thread runtime, so its CPU time is that
/// thread's): `/big` answers `mib` MiB of zeros, anything else a few bytes. A fixture only
/// (reads the request head up to the blank line, ignores it). Returns the port and the thread's
/// task id.
fn serve(mib: u64) -> Result<(u16, String)> {
    let listener = std::net::TcpListener::bind((HOST, 0))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let (ready, tid) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("egress-server".into())
        .spawn(move || {
            let task = std::fs::read_link("/proc/thread-self")
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_default();
            let _ = ready.send(task);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(accept(listener, mib));
            }
        })?;
    Ok((port, tid.recv()?))
}

async fn accept(listener: std::net::TcpListener, mib: u64) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
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
            let header =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
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
}

/// Nanoseconds on a CPU of this process's threads: (`tid`'s, all the others').
fn thread_cpu(tid: &str) -> (u64, u64) {
    let (mut one, mut rest) = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if task.file_name().to_string_lossy() == tid {
            one += ns;
        } else {
            rest += ns;
        }
    }
    (one, rest)
}

/// A cgroup (v1 `cpu`) with the sandbox's CPU quota for the host `curl`s, so both clients run
/// under the same limit; `None` without a limit or when cgroups are not writable (then the
/// host `curl` runs unlimited, and the report says so).
struct ClientGroup(std::path::PathBuf);

impl ClientGroup {
    fn create(cpus: u64) -> Option<Self> {
        if cpus == 0 {
            return None;
        }
        let base = std::path::Path::new("/sys/fs/cgroup/cpu");
        let period: u64 = std::fs::read_to_string(base.join("cpu.cfs_period_us"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let dir = base.join(format!("egress-bench-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        let group = Self(dir);
        std::fs::write(group.0.join("cpu.cfs_period_us"), period.to_string()).ok()?;
        std::fs::write(
            group.0.join("cpu.cfs_quota_us"),
            (cpus * period / 100).max(1000).to_string(),
        )
        .ok()?;
        Some(group)
    }
}

impl Drop for ClientGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// One download: bytes per second, and the CPU seconds of `curl`, the server and the door.
struct Sample {
    speed: f64,
    curl_cpu: f64,
    server_cpu: f64,
    door_cpu: f64,
}

/// Parses `SPEED\nUSER SYS` (curl's `-w`, then bash's `time`).
fn parse_timed(out: &str) -> Result<(f64, f64)> {
    let mut words = out.split_whitespace();
    let mut next = || -> Result<f64> { Ok(words.next().context("short output")?.parse()?) };
    let speed = next()?;
    Ok((speed, next()? + next()?))
}

/// A `curl` command timed by bash: prints its speed, then its user and system seconds.
fn timed_curl(args: &str) -> String {
    format!(
        "TIMEFORMAT='%3U %3S'; {{ time curl -sS -o /dev/null -w '%{{speed_download}}\\n' {args}; }} 2>&1"
    )
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

/// A timed `curl` on the host, in `group` when there is one.
async fn host_timed(group: Option<&ClientGroup>, args: &str) -> Result<(f64, f64)> {
    let join = match group {
        Some(g) => format!("echo $$ > {} && ", g.0.join("cgroup.procs").display()),
        None => String::new(),
    };
    let out = tokio::process::Command::new("bash")
        .args(["-c", &format!("{join}{}", timed_curl(args))])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "curl failed: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    parse_timed(&text)
}

/// Runs one timed download and adds the server's and the door's CPU time to it.
async fn measure(
    server_tid: &str,
    run: impl std::future::Future<Output = Result<(f64, f64)>>,
) -> Result<Sample> {
    let (server0, door0) = thread_cpu(server_tid);
    let (speed, curl_cpu) = run.await?;
    let (server1, door1) = thread_cpu(server_tid);
    Ok(Sample {
        speed,
        curl_cpu,
        server_cpu: server1.saturating_sub(server0) as f64 / 1e9,
        door_cpu: door1.saturating_sub(door0) as f64 / 1e9,
    })
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
    let downloads = arg("--downloads", 21)?.max(1);
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
    let (port, server_tid) = serve(mib)?;
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

    // Throughput, interleaved; each sample with the CPU time of every process on its path.
    let group = ClientGroup::create(cpus);
    match (&group, cpus) {
        (_, 0) => println!("clients: no CPU limit on either side"),
        (Some(_), _) => println!("clients: both limited to {cpus}% of a CPU (cgroup quota)"),
        (None, _) => println!("clients: the host curl is NOT limited (no writable cgroup)"),
    };
    let (mut door_samples, mut direct_samples, mut host_door_samples) =
        (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..downloads {
        door_samples.push(
            measure(&server_tid, async {
                let out = in_sandbox(timed_curl(&format!("-p {big}"))).await?;
                if !out.success() {
                    bail!("sandboxed download failed: {out:?}");
                }
                parse_timed(&out.stdout)
            })
            .await?,
        );
        direct_samples.push(
            measure(
                &server_tid,
                host_timed(group.as_ref(), &format!("--noproxy '*' {big}")),
            )
            .await?,
        );
        host_door_samples.push(
            measure(
                &server_tid,
                host_timed(group.as_ref(), &format!("-p -x {host_proxy} {big}")),
            )
            .await?,
        );
    }
    let mibs = |b: f64| b / f64::from(1 << 20);
    let gib = mib as f64 / 1024.0;
    let median = |samples: &[Sample], f: fn(&Sample) -> f64| {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let best = |samples: &[Sample]| samples.iter().map(|s| s.speed).fold(0f64, f64::max);
    let (door_median, direct_median) = (
        median(&door_samples, |s| s.speed),
        median(&direct_samples, |s| s.speed),
    );
    let (door_best, direct_best) = (best(&door_samples), best(&direct_samples));
    println!(
        "{mib} MiB download, {downloads} each: through the door median {:.0} MiB/s (best {:.0}), direct median {:.0} MiB/s (best {:.0}); ratio of medians {:.2}, of bests {:.2}",
        mibs(door_median),
        mibs(door_best),
        mibs(direct_median),
        mibs(direct_best),
        door_median / direct_median,
        door_best / direct_best,
    );
    let host_door = median(&host_door_samples, |s| s.speed);
    println!(
        "the door without the sandbox (host curl, in-process relay): median {:.0} MiB/s, ratio {:.2}",
        mibs(host_door),
        host_door / direct_median
    );
    for (label, samples) in [
        ("through the door", &door_samples),
        ("direct", &direct_samples),
        ("door, no sandbox", &host_door_samples),
    ] {
        println!(
            "CPU seconds per GiB, median, {label}: curl {:.3}, server {:.3}, door {:.3}; speeds MiB/s: {}",
            median(samples, |s| s.curl_cpu) / gib,
            median(samples, |s| s.server_cpu) / gib,
            median(samples, |s| s.door_cpu) / gib,
            samples
                .iter()
                .map(|s| format!("{:.0}", mibs(s.speed)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
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
