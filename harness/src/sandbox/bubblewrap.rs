//! The bubblewrap sandbox.
//!
//! Every command runs in a fresh `bwrap` with new user, pid, ipc, uts and cgroup namespaces
//! (`--die-with-parent --new-session --disable-userns`), as uid/gid 1000 inside. What it sees:
//! the host's `/usr` (and the `/bin`, `/sbin`, `/lib*` links or directories) and `/etc`
//! read-only, minus every `/etc` entry that other users of the host may not read (`shadow`,
//! `gshadow`, `ssl/private`, ... are covered by `/dev/null` or an empty read-only tmpfs);
//! `/workspace` bound read-write to the session's directory; a private tmpfs `/tmp`; a fresh
//! `/proc` and a minimal `/dev`; a clean environment (`PATH`, `HOME=/workspace`, `LANG`,
//! `TMPDIR`, plus the command's own variables). `Network::Limited` adds `--unshare-net`.
//!
//! **Host identity.** When the server runs as root, a small launcher (`/bin/sh`) joins the
//! command's cgroups, opens the workspace as fd 3 (bound with `--bind-fd`, so a path swapped
//! between the checks and the mount cannot redirect it), applies the rlimits, and then execs `bwrap` through
//! `setpriv` as an unprivileged host uid (default 60000, no capabilities, no supplementary
//! groups). So even the "owner" inside the sandbox is a nobody on the host, and the kernel's
//! ordinary permission checks protect root-owned files. The workspace directory is chowned to
//! that uid, and its ancestors must be searchable (`o+x`) by it (checked, with a clear error).
//! When the server is not root, `bwrap` runs as the server's own uid.
//!
//! **Limits.** With writable cgroup v1 controllers (this machine) each command gets its own
//! `memory`, `pids` and `cpu` groups (see `cgroup.rs`). Without them: `RLIMIT_AS` stands in for
//! the memory limit; the process limit is not enforced (`RLIMIT_NPROC` counts every process of
//! the host uid, across all sandboxes); the CPU share is not enforced. `cpu_seconds`
//! (`RLIMIT_CPU`, per process) applies in both cases when set.
//!
//! **Timeouts.** At the timeout `bwrap` is killed with SIGKILL; `--die-with-parent` then kills
//! the sandbox's pid 1, and the kernel kills everything else in its pid namespace. Dropping the
//! `run` future (an interrupt) does the same.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

use super::cgroup::{Cgroups, Controller};
use super::command::{Command, Network, Output};
use super::output::{read_capped, Capped};
use super::workspace::Workspace;
use super::{Error, Sandbox};

/// Resource limits per command.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Memory of the whole sandbox (cgroup), or address space per process (rlimit fallback).
    pub memory_bytes: Option<u64>,
    /// Processes and threads of the whole sandbox (cgroup `pids.max`).
    pub max_processes: Option<u64>,
    /// CPU share of the whole sandbox, in CPUs (cgroup CFS quota).
    pub cpus: Option<f64>,
    /// CPU time per process in seconds (`RLIMIT_CPU`).
    pub cpu_seconds: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Some(2 << 30),
            max_processes: Some(512),
            cpus: Some(1.0),
            cpu_seconds: None,
        }
    }
}

/// How to build a [`BubblewrapSandbox`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The `bwrap` binary; found on `PATH` when `None`.
    pub bwrap: Option<PathBuf>,
    /// Host uid and gid the sandbox runs as when the server is root.
    pub host_uid: u32,
    pub host_gid: u32,
    /// Extra host directories bound read-only at the same path (for example `/opt`).
    pub read_only: Vec<PathBuf>,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bwrap: None,
            host_uid: 60000,
            host_gid: 60000,
            read_only: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Uid and gid inside the sandbox.
const INNER_ID: &str = "1000";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs commands with bubblewrap. Cheap to share: all per-command state lives in `run`.
#[derive(Clone, Debug)]
pub struct BubblewrapSandbox {
    bwrap: PathBuf,
    /// `setpriv` and the host ids when the server is root.
    drop_to: Option<(PathBuf, u32, u32)>,
    /// Namespace flags and the read-only system, the same for every command.
    base_args: Vec<OsString>,
    cgroups: Cgroups,
    limits: Limits,
}

impl BubblewrapSandbox {
    /// Find `bwrap`, mask `/etc`, and probe cgroups. Fails with [`Error::BwrapNotFound`] when
    /// bubblewrap is not installed.
    pub fn new(options: Options) -> Result<Self, Error> {
        let bwrap = match options.bwrap {
            Some(path) if path.is_file() => path,
            Some(_) => return Err(Error::BwrapNotFound),
            None => which("bwrap").ok_or(Error::BwrapNotFound)?,
        };
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let drop_to = if root {
            let setpriv = which("setpriv").ok_or_else(|| Error::Spawn {
                program: "setpriv".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "running as root needs `setpriv` (util-linux) to drop to an unprivileged uid",
                ),
            })?;
            Some((setpriv, options.host_uid, options.host_gid))
        } else {
            None
        };
        let disable_userns = std::process::Command::new(&bwrap)
            .arg("--help")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("--disable-userns"))
            .map_err(|source| Error::Spawn {
                program: bwrap.clone(),
                source,
            })?;
        let base_args = base_args(disable_userns, &options.read_only)?;
        Ok(Self {
            bwrap,
            drop_to,
            base_args,
            cgroups: Cgroups::detect(),
            limits: options.limits,
        })
    }

    /// How the limits are enforced on this machine, for logs and diagnostics.
    pub fn enforcement(&self) -> String {
        let names: Vec<&str> = [
            (Controller::Memory, "memory"),
            (Controller::Pids, "pids"),
            (Controller::Cpu, "cpu"),
        ]
        .into_iter()
        .filter(|(c, _)| self.cgroups.has(*c))
        .map(|(_, n)| n)
        .collect();
        let identity = match &self.drop_to {
            Some((_, uid, gid)) => format!("host uid {uid}/gid {gid} via setpriv"),
            None => "the server's uid".to_owned(),
        };
        format!(
            "bwrap {}; cgroup v1 controllers: [{}]; runs as {identity}",
            self.bwrap.display(),
            names.join(", ")
        )
    }

    /// The launcher and its arguments for one command.
    fn launcher(
        &self,
        workspace: &Path,
        network: Network,
        command: &Command,
        procs: Vec<PathBuf>,
    ) -> (PathBuf, Vec<OsString>) {
        let mut bwrap_args = self.base_args.clone();
        if network == Network::Limited {
            bwrap_args.push("--unshare-net".into());
        }
        for (k, v) in &command.env {
            bwrap_args.extend(["--setenv".into(), k.into(), v.into()]);
        }
        bwrap_args.push("--".into());
        bwrap_args.extend(command.argv.iter().map(OsString::from));

        let mut rlimits = String::new();
        if let Some(bytes) = self.limits.memory_bytes {
            if !self.cgroups.has(Controller::Memory) {
                rlimits.push_str(&format!("ulimit -v {} || exit 125\n", bytes / 1024));
            }
        }
        if let Some(secs) = self.limits.cpu_seconds {
            rlimits.push_str(&format!("ulimit -t {secs} || exit 125\n"));
        }
        let script = format!(
            "for f; do [ \"$f\" = -- ] && break\n\
             echo $$ > \"$f\" || {{ echo \"sandbox: cannot join cgroup $f\" >&2; exit 125; }}\n\
             done\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n\
             exec 3< \"$1\" || exit 125; shift\n\
             {rlimits}exec \"$@\"\n"
        );
        let mut args: Vec<OsString> = vec!["-c".into(), script.into(), "sandbox-launcher".into()];
        args.extend(procs.into_iter().map(OsString::from));
        args.push("--".into());
        args.push(workspace.into());
        if let Some((setpriv, uid, gid)) = &self.drop_to {
            args.extend([
                setpriv.into(),
                format!("--reuid={uid}").into(),
                format!("--regid={gid}").into(),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--".into(),
            ]);
        }
        args.push(self.bwrap.clone().into());
        args.extend(["--bind-fd".into(), "3".into(), "/workspace".into()]);
        args.extend(bwrap_args);
        (PathBuf::from("/bin/sh"), args)
    }

    /// Make the workspace usable by the unprivileged host uid: it owns the workspace, and every
    /// ancestor must let it pass (`o+x`), or bubblewrap cannot bind it.
    fn own(&self, workspace: &Path) -> Result<(), Error> {
        let fail = |source| Error::Workspace {
            path: workspace.to_owned(),
            source,
        };
        let meta = std::fs::metadata(workspace).map_err(fail)?;
        let Some((_, uid, gid)) = self.drop_to else {
            return Ok(());
        };
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::chown(workspace, Some(uid), Some(gid)).map_err(fail)?;
        }
        for dir in workspace.ancestors().skip(1) {
            let m = std::fs::metadata(dir).map_err(fail)?;
            if m.permissions().mode() & 0o001 == 0 && m.uid() != uid {
                return Err(fail(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "{} is not searchable by the sandbox uid {uid}; make it `chmod o+x`",
                        dir.display()
                    ),
                )));
            }
        }
        Ok(())
    }
}

impl Sandbox for BubblewrapSandbox {
    async fn run(
        &self,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> Result<Output, Error> {
        if command.argv.is_empty() {
            return Err(Error::EmptyCommand);
        }
        if let Some((k, _)) = command
            .env
            .iter()
            .find(|(k, v)| k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0'))
        {
            return Err(Error::InvalidEnv(k.clone()));
        }
        self.own(workspace.dir())?;
        let group = if self.cgroups.is_empty() {
            None
        } else {
            Some(self.cgroups.create(&self.limits).map_err(Error::Io)?)
        };
        let procs = group
            .as_ref()
            .map(|g| g.procs_files().collect())
            .unwrap_or_default();
        let (program, args) = self.launcher(workspace.dir(), network, &command, procs);

        let started = Instant::now();
        let mut child = tokio::process::Command::new(&program)
            .args(args)
            .env_clear()
            .stdin(if command.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn { program, source })?;

        if let (Some(mut stdin), Some(bytes)) = (child.stdin.take(), command.stdin) {
            tokio::spawn(async move {
                // A command that does not read its input is not an error.
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let limit = command.output_limit;
        let stdout = child
            .stdout
            .take()
            .map(|r| tokio::spawn(read_capped(r, limit)));
        let stderr = child
            .stderr
            .take()
            .map(|r| tokio::spawn(read_capped(r, limit)));

        let (status, timed_out) = match tokio::time::timeout(command.timeout, child.wait()).await {
            Ok(status) => (status.map_err(Error::Io)?, false),
            Err(_) => {
                let _ = child.start_kill();
                (child.wait().await.map_err(Error::Io)?, true)
            }
        };
        let duration = started.elapsed();
        // Everything in the sandbox is dead once bwrap is; the pipes close right after.
        let (stdout, out_cut) = collect(stdout).await.into_text();
        let (stderr, err_cut) = collect(stderr).await.into_text();
        drop(group);
        Ok(Output {
            exit_code: status.code(),
            signal: status.signal(),
            stdout,
            stderr,
            truncated: out_cut || err_cut,
            timed_out,
            duration,
        })
    }
}

async fn collect(reader: Option<tokio::task::JoinHandle<Capped>>) -> Capped {
    let Some(mut handle) = reader else {
        return Capped::default();
    };
    match tokio::time::timeout(Duration::from_secs(2), &mut handle).await {
        Ok(Ok(capped)) => capped,
        _ => {
            handle.abort();
            Capped::default()
        }
    }
}

/// Search `PATH` (or the usual system directories) for an executable.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Arguments shared by every command: namespaces, the read-only system, the masked `/etc`,
/// `/tmp`, `/proc`, `/dev`, the working directory and the clean environment.
fn base_args(disable_userns: bool, read_only: &[PathBuf]) -> Result<Vec<OsString>, Error> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&[
        "--unshare-user",
        "--uid",
        INNER_ID,
        "--gid",
        INNER_ID,
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
    ]);
    if disable_userns {
        push(&["--disable-userns"]);
    }
    for dir in [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
    ] {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.file_type().is_symlink() => {
                if let Ok(target) = std::fs::read_link(dir) {
                    a.extend(["--symlink".into(), target.into(), dir.into()]);
                }
            }
            Ok(m) if m.is_dir() => a.extend(["--ro-bind".into(), dir.into(), dir.into()]),
            _ => {}
        }
    }
    for dir in read_only {
        a.extend(["--ro-bind".into(), dir.into(), dir.into()]);
    }
    a.extend(["--ro-bind".into(), "/etc".into(), "/etc".into()]);
    let mut hidden = Vec::new();
    unreadable(Path::new("/etc"), 8, &mut hidden).map_err(Error::ScanEtc)?;
    for (path, is_dir) in hidden {
        if is_dir {
            a.extend([
                "--tmpfs".into(),
                path.clone().into(),
                "--remount-ro".into(),
                path.into(),
            ]);
        } else {
            a.extend(["--ro-bind".into(), "/dev/null".into(), path.into()]);
        }
    }
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    push(&[
        "--tmpfs",
        "/tmp",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--chdir",
        "/workspace",
        "--clearenv",
        "--setenv",
        "PATH",
        PATH,
        "--setenv",
        "HOME",
        "/workspace",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "TMPDIR",
        "/tmp",
    ]);
    Ok(a)
}

/// Entries under `dir` that other users may not read (files) or enter (directories).
fn unreadable(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, bool)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode();
        let kind = meta.file_type();
        if kind.is_dir() {
            if mode & 0o005 != 0o005 {
                out.push((path, true));
            } else if depth > 0 {
                unreadable(&path, depth - 1, out)?;
            }
        } else if kind.is_file() && mode & 0o004 == 0 {
            out.push((path, false));
        }
    }
    Ok(())
}
