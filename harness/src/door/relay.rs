//! The relay inside a sandbox: `sandbox-relay --socket PATH --listen ADDR -- ARGV...`.
//!
//! It listens on `ADDR` (loopback of the sandbox's own network namespace), starts `ARGV` as
//! its child, hands every accepted connection's socket to the session's door over a new
//! connection to the unix socket `PATH` (`handoff.rs`: the socket itself, no bytes copied), and
//! exits with the child's status (`128 + n`
//! when signal `n` killed it, as `bwrap` reports). It is the sandbox's only way out. When the
//! sandbox is killed (timeout, interrupt) the relay dies with everything else in its pid
//! namespace; it never outlives the child on its own either: it exits as soon as the child
//! does.
//!
//! The server runs it as `managed-agents sandbox-relay ...`; the harness's `sandbox-relay` bin
//! is the same code for harness tests.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::ExitStatus;

use super::handoff;

/// The relay's arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    pub socket: PathBuf,
    pub listen: SocketAddr,
    pub argv: Vec<OsString>,
}

impl Args {
    /// Parses `--socket PATH --listen ADDR -- ARGV...` (the arguments after `sandbox-relay`).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut args = args.into_iter();
        let (mut socket, mut listen) = (None, None);
        loop {
            let Some(arg) = args.next() else {
                return Err("missing `-- COMMAND`".into());
            };
            match arg.to_str() {
                Some("--") => break,
                Some("--socket") => socket = args.next().map(PathBuf::from),
                Some("--listen") => {
                    let value = args.next().ok_or("--listen needs an address")?;
                    let text = value.to_str().ok_or("--listen needs an address")?;
                    listen = Some(
                        text.parse::<SocketAddr>()
                            .map_err(|e| format!("--listen {text}: {e}"))?,
                    );
                }
                _ => return Err(format!("unexpected argument {arg:?}")),
            }
        }
        let argv: Vec<OsString> = args.collect();
        if argv.is_empty() {
            return Err("missing the command after `--`".into());
        }
        Ok(Self {
            socket: socket.ok_or("missing --socket")?,
            listen: listen.ok_or("missing --listen")?,
            argv,
        })
    }
}

/// Runs the relay with the arguments after `sandbox-relay` and returns the process exit code.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args = match Args::parse(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sandbox-relay: {e}");
            return 125;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("sandbox-relay: cannot start: {e}");
            return 125;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(status) => code(status),
        Err(e) => {
            eprintln!("sandbox-relay: {e}");
            125
        }
    }
}

/// The exit code `bwrap` would report for `status`.
fn code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(125)
}

/// Listens, runs the child, relays until it exits.
pub async fn run(args: Args) -> std::io::Result<ExitStatus> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", args.listen))
        })?;
    let (program, rest) = args
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run {program:?}: {e}")))?;
    let socket = args.socket;
    let accept = async {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                // Out of descriptors, most likely: let the connections in flight finish.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            };
            let socket = socket.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let handed = match tokio::net::UnixStream::connect(&socket).await {
                    Ok(unix) => handoff::send(&unix, &tcp).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = handed {
                    eprintln!("sandbox-relay: the door is closed: {e}");
                }
            });
        }
    };
    tokio::select! {
        status = child.wait() => status,
        never = accept => never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(items: &[&str]) -> Vec<OsString> {
        items.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_its_arguments() {
        let args = Args::parse(os(&[
            "--socket",
            "/run/d.sock",
            "--listen",
            "127.0.0.1:3128",
            "--",
            "sh",
            "-c",
            "x",
        ]))
        .unwrap();
        assert_eq!(args.socket, PathBuf::from("/run/d.sock"));
        assert_eq!(args.listen, "127.0.0.1:3128".parse().unwrap());
        assert_eq!(args.argv, os(&["sh", "-c", "x"]));
        assert!(Args::parse(os(&["--socket", "/s", "--listen", "127.0.0.1:1", "--"])).is_err());
        assert!(Args::parse(os(&["--listen", "127.0.0.1:1", "--", "true"])).is_err());
        assert!(Args::parse(os(&["--socket", "/s", "--listen", "nope", "--", "true"])).is_err());
    }
}
