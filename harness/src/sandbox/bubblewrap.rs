//! The bubblewrap sandbox.
//!
//! Every command runs in a fresh `bwrap` with new user, pid, ipc, uts and cgroup namespaces
//! (`--die-with-parent --new-session --disable-userns`), as uid/gid 1000 inside, under the
//! seccomp filters of `seccomp.rs` (`Seccomp: 2` in `/proc/self/status`). What it sees: the
//! host's `/usr` (and the `/bin`, `/sbin`, `/lib*` links or directories) and `/etc` read-only,
//! minus every `/etc` entry that other users of the host may not read (`shadow`, `gshadow`,
//! `ssl/private`, ... are covered by `/dev/null` or an empty read-only tmpfs); `/workspace`
//! bound read-write to the session's workspace; a private tmpfs `/tmp` of bounded size
//! ([`Limits::tmp_bytes`]); a fresh `/proc` and a minimal `/dev`; a clean environment (`PATH`,
//! `HOME=/workspace`, `LANG`, `TMPDIR`, plus the command's own variables).
//!
//! **Network.** Every command gets its own network namespace (`--unshare-net`: only loopback,
//! no route anywhere). With [`Network::Door`] the session's door directory is bound read-only
//! at `/run/managed-agents` (its socket and, bound over an empty file there, the relay binary),
//! the proxy variables are set, and the command runs as the relay's child:
//! `/run/managed-agents/relay sandbox-relay --socket /run/managed-agents/door.sock --listen
//! 127.0.0.1:3128 -- ARGV` (see `crate::door::relay`). When the server is root the launcher binds
//! the door directory on [`Options::door_mount_point`] and the relay over its empty file in its
//! own mount namespace, like the workspace, so the sandbox uid needs no path into the data dir
//! nor to the server's executable.
//!
//! **Trust store.** With [`Options::trust_bundle`] (the server's egress CA after the host's
//! CAs, `door::ca`), the launcher opens the bundle before dropping privileges and `bwrap`
//! copies it read-only (`--ro-bind-data`) over `/etc/ssl/certs/ca-certificates.crt`, where
//! Debian's OpenSSL, curl, git and Python look (or at [`TRUST_FALLBACK`] when the host has no
//! such file), and every process gets `SSL_CERT_FILE`, `CURL_CA_BUNDLE`, `REQUESTS_CA_BUNDLE`
//! and `NODE_EXTRA_CA_CERTS` naming it. So tools inside trust the leaves the door presents for
//! destinations it injects credentials into, and still trust everything the host trusts.
//!
//! **Host identity.** A small launcher (a `bash` script) closes every descriptor but stdio
//! (the server may have inherited some, and `bwrap` passes everything on), joins the command's
//! cgroups, opens the seccomp programs, applies the rlimits and execs `bwrap` through `env -i`.
//! When the server is root, the launcher runs in a mount namespace of its own (`unshare
//! --mount`, private propagation), bind-mounts the workspace on [`Options::mount_point`] (a
//! root-owned, world-searchable empty directory, default `/run/managed-agents-sandbox`; the bind
//! exists only in that namespace) and goes through `setpriv` to the workspace's host uid (each
//! workspace has its own, from [`Options::host_uids`]; no capabilities, no supplementary
//! groups). So the data dir and every ancestor of the workspace can be private (0700): the
//! sandbox uid resolves no path but the mount point. Even the "owner" inside the sandbox is a
//! nobody on the host, a different one per session, and the kernel's ordinary permission checks
//! protect root-owned files. When the server is not root, `bwrap` runs as the server's own uid
//! and binds the workspace directly. The agent runtime directory ([`Options::runtimes`], the
//! npm installs of `crate::runtimes`) is bound the same way, on
//! [`Options::runtimes_mount_point`], and appears read-only at `/opt/managed-agents/runtimes`.
//!
//! **What leaks in.** `bwrap` and its pid 1 start with an empty environment, so
//! `/proc/1/environ` holds nothing of the server's; the launcher's working directory is `/`. A
//! workspace with a quota is an image mounted at its own root, so `/proc/self/mountinfo` shows
//! `/dev/loopN` for `/workspace`; a plain workspace (no quota, or a server that is not root)
//! shows its host path there, as bind mounts always do.
//!
//! **Limits.** With writable cgroup v1 controllers (this machine) each command gets its own
//! `memory`, `pids` and `cpu` groups (see `cgroup.rs`). Without them: `RLIMIT_AS` stands in for
//! the memory limit; the process limit is not enforced (`RLIMIT_NPROC` counts every process of
//! the host uid, across all sandboxes); the CPU share is not enforced. `cpu_seconds`
//! (`RLIMIT_CPU`, per process) applies in both cases when set. When a command runs out of
//! space, a line is added to its stderr saying which limit it hit (the workspace quota or the
//! size of `/tmp`).
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

use super::cgroup::{Cgroups, Controller, Group};
use super::command::{Command, Network, Output};
use super::image;
use super::output::{read_capped, Capped};
use super::process::Process;
use super::seccomp::Filters;
use super::workspace::Workspace;
use super::{privileged, which, Error, Sandbox, UidRange};
use crate::door;

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
    /// Size of the private `/tmp` (a tmpfs: its pages are memory, charged to the command's
    /// memory cgroup too); `None` leaves the kernel's default of half the RAM.
    pub tmp_bytes: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: Some(2 << 30),
            max_processes: Some(512),
            cpus: Some(1.0),
            cpu_seconds: None,
            tmp_bytes: Some(512 << 20),
        }
    }
}

/// How to build a [`BubblewrapSandbox`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The `bwrap` binary; found on `PATH` when `None`.
    pub bwrap: Option<PathBuf>,
    /// Host uids sandboxes run as when the server is root: each command runs as the owner of
    /// its workspace ([`Workspaces`](super::Workspaces) allocates one per session from the same
    /// range); a workspace owned by anyone else is given the first uid of the range.
    pub host_uids: UidRange,
    /// Where the launcher binds the workspace in its own mount namespace when the server is
    /// root: an empty directory, created root-owned with mode 0755 if missing.
    pub mount_point: PathBuf,
    /// Where the launcher binds a session's door directory when the server is root (like
    /// `mount_point`).
    pub door_mount_point: PathBuf,
    /// Where the launcher mounts a small tmpfs holding one mount point per extra bind of a
    /// workspace ([`Workspace::with_bind`](super::Workspace::with_bind)) when the server is
    /// root (like `mount_point`), so bound host directories may live in the private data dir.
    pub binds_mount_point: PathBuf,
    /// Extra host directories bound read-only at the same path (for example `/opt`).
    pub read_only: Vec<PathBuf>,
    /// The agent runtime directory (`crate::runtimes`), bound read-only at
    /// [`runtimes::MOUNT`](crate::runtimes::MOUNT) whenever it exists.
    pub runtimes: Option<PathBuf>,
    /// Where the launcher binds the runtime directory in its own mount namespace when the
    /// server is root (like `mount_point`), so it may live in the private data dir.
    pub runtimes_mount_point: PathBuf,
    /// A PEM bundle that becomes the sandbox's system trust store (see the module header);
    /// read by the launcher before it drops privileges, so it may live in the private data dir.
    pub trust_bundle: Option<PathBuf>,
    pub limits: Limits,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bwrap: None,
            host_uids: UidRange::default(),
            mount_point: PathBuf::from("/run/managed-agents-sandbox"),
            door_mount_point: PathBuf::from("/run/managed-agents-door"),
            binds_mount_point: PathBuf::from("/run/managed-agents-binds"),
            read_only: Vec::new(),
            runtimes: None,
            runtimes_mount_point: PathBuf::from("/run/managed-agents-runtimes"),
            trust_bundle: None,
            limits: Limits::default(),
        }
    }
}

/// Where Debian's tools find the system's CA bundle; the trust bundle replaces it.
pub const TRUST_STORE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Where the trust bundle goes when the host has no [`TRUST_STORE`] to cover.
pub const TRUST_FALLBACK: &str = "/run/managed-agents-trust/ca-certificates.crt";
/// The variables naming the trust bundle for tools that do not read the system store.
pub const TRUST_ENV: [&str; 4] = [
    "SSL_CERT_FILE",
    "CURL_CA_BUNDLE",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
];

/// Uid and gid inside the sandbox.
const INNER_ID: &str = "1000";
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The first descriptor the launcher opens the seccomp programs on.
const FIRST_FILTER_FD: usize = 4;
/// Less free space than this in a workspace with a quota counts as full.
const FULL_BELOW: u64 = 1 << 20;

/// The programs the launcher needs when the server is root.
#[derive(Clone, Debug)]
struct Privileged {
    unshare: PathBuf,
    mount: PathBuf,
    setpriv: PathBuf,
    mount_point: PathBuf,
    runtimes_mount_point: PathBuf,
    door_mount_point: PathBuf,
    binds_mount_point: PathBuf,
    uids: UidRange,
}

/// Runs commands with bubblewrap. Cheap to share: all per-command state lives in `run`.
#[derive(Clone, Debug)]
pub struct BubblewrapSandbox {
    bwrap: PathBuf,
    /// `bash` runs the launcher script (it can close descriptors above 9; `dash` cannot).
    shell: PathBuf,
    env: PathBuf,
    /// Set when the server is root: the launcher drops to the workspace's uid.
    privileged: Option<Privileged>,
    /// Namespace flags and the read-only system, the same for every command.
    base_args: Vec<OsString>,
    filters: Filters,
    /// The trust bundle on the host and where it goes in the sandbox.
    trust: Option<(PathBuf, &'static str)>,
    cgroups: Cgroups,
    limits: Limits,
    runtimes: Option<PathBuf>,
}

impl BubblewrapSandbox {
    /// Find `bwrap` and the launcher's programs, prepare the mount point, mask `/etc`, compile
    /// the seccomp filters and probe cgroups. Fails with [`Error::BwrapNotFound`] when
    /// bubblewrap is not installed.
    pub fn new(options: Options) -> Result<Self, Error> {
        let bwrap = match options.bwrap {
            Some(path) if path.is_file() => path,
            Some(_) => return Err(Error::BwrapNotFound),
            None => which("bwrap").ok_or(Error::BwrapNotFound)?,
        };
        let need = |name: &str, why: &str| {
            which(name).ok_or_else(|| Error::Spawn {
                program: name.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, why.to_owned()),
            })
        };
        let env = need("env", "the sandbox launcher needs `env` (coreutils)")?;
        let shell = need("bash", "the sandbox launcher needs `bash`")?;
        let privileged = if privileged() {
            let why = "running as root needs util-linux's `setpriv`, `unshare` and `mount`";
            let p = Privileged {
                unshare: need("unshare", why)?,
                mount: need("mount", why)?,
                setpriv: need("setpriv", why)?,
                mount_point: options.mount_point,
                runtimes_mount_point: options.runtimes_mount_point,
                door_mount_point: options.door_mount_point,
                binds_mount_point: options.binds_mount_point,
                uids: options.host_uids,
            };
            prepare_mount_point(&p.mount_point)?;
            prepare_mount_point(&p.door_mount_point)?;
            prepare_mount_point(&p.binds_mount_point)?;
            if options.runtimes.is_some() {
                prepare_mount_point(&p.runtimes_mount_point)?;
            }
            Some(p)
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
        let trust = options.trust_bundle.map(|bundle| {
            let target = if Path::new(TRUST_STORE).is_file() {
                TRUST_STORE
            } else {
                TRUST_FALLBACK
            };
            (bundle, target)
        });
        let mut base_args = base_args(disable_userns, &options.read_only, &options.limits)?;
        if let Some((_, target)) = &trust {
            for name in TRUST_ENV {
                base_args.extend(["--setenv".into(), name.into(), (*target).into()]);
            }
        }
        Ok(Self {
            bwrap,
            shell,
            env,
            privileged,
            base_args,
            filters: Filters::new()?,
            trust,
            cgroups: Cgroups::detect(),
            limits: options.limits,
            runtimes: options.runtimes,
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
        let identity = match &self.privileged {
            Some(p) => format!("a host uid per workspace from {} via setpriv", p.uids),
            None => "the server's uid".to_owned(),
        };
        let tmp = self
            .limits
            .tmp_bytes
            .map_or_else(|| "unbounded".to_owned(), image::human);
        format!(
            "bwrap {}; cgroup v1 controllers: [{}]; seccomp: {}; /tmp: {tmp}; runs as {identity}",
            self.bwrap.display(),
            names.join(", "),
            self.filters.describe(),
        )
    }

    /// The launcher and its arguments for one command running as `uid` (when privileged).
    fn launcher(
        &self,
        workspace: &Workspace,
        uid: u32,
        network: &Network,
        command: &Command,
        procs: Vec<PathBuf>,
    ) -> (PathBuf, Vec<OsString>) {
        let binds = workspace.binds();
        let workspace_env = workspace.env();
        let workspace = workspace.dir();
        let filters = self.filters.paths();
        // The files the launcher opens (as root, before `setpriv`) for `bwrap` to read from
        // descriptors: the seccomp programs, then the trust bundle.
        let mut files: Vec<OsString> = filters.iter().map(OsString::from).collect();
        let mut bwrap_args: Vec<OsString> = vec!["--bind".into()];
        bwrap_args.push(match &self.privileged {
            Some(p) => p.mount_point.clone().into(),
            None => workspace.into(),
        });
        bwrap_args.push("/workspace".into());
        bwrap_args.extend(self.base_args.iter().cloned());
        // Installed after the server started is fine; not installed at all binds nothing.
        let runtimes = self.runtimes.as_ref().filter(|dir| dir.is_dir());
        if let Some(dir) = runtimes {
            bwrap_args.push("--ro-bind".into());
            bwrap_args.push(match &self.privileged {
                Some(p) => p.runtimes_mount_point.clone().into(),
                None => dir.into(),
            });
            bwrap_args.push(crate::runtimes::MOUNT.into());
        }
        for (i, bind) in binds.iter().enumerate() {
            bwrap_args.push(if bind.writable { "--bind" } else { "--ro-bind" }.into());
            bwrap_args.push(match &self.privileged {
                Some(p) => p.binds_mount_point.join(i.to_string()).into(),
                None => bind.host.clone().into(),
            });
            bwrap_args.push(bind.target.clone().into());
        }
        for fd in (0..filters.len()).map(|i| FIRST_FILTER_FD + i) {
            bwrap_args.extend(["--add-seccomp-fd".into(), fd.to_string().into()]);
        }
        if let Some((bundle, target)) = &self.trust {
            let fd = FIRST_FILTER_FD + files.len();
            files.push(bundle.into());
            bwrap_args.extend([
                "--ro-bind-data".into(),
                fd.to_string().into(),
                (*target).into(),
            ]);
        }
        bwrap_args.push("--unshare-net".into());
        let door = match network {
            Network::Door(mount) => Some(mount),
            Network::Isolated => None,
        };
        if let Some(mount) = door {
            match &self.privileged {
                Some(p) => bwrap_args.extend([
                    "--ro-bind".into(),
                    p.door_mount_point.clone().into(),
                    door::DIR_IN_SANDBOX.into(),
                ]),
                None => bwrap_args.extend([
                    "--ro-bind".into(),
                    mount.dir.clone().into(),
                    door::DIR_IN_SANDBOX.into(),
                    "--ro-bind".into(),
                    mount.relay.clone().into(),
                    door::RELAY_IN_SANDBOX.into(),
                ]),
            }
            for (k, v) in door::proxy_env() {
                bwrap_args.extend(["--setenv".into(), k.into(), v.into()]);
            }
        }
        for (k, v) in workspace_env.iter().chain(&command.env) {
            bwrap_args.extend(["--setenv".into(), k.into(), v.into()]);
        }
        bwrap_args.push("--".into());
        if door.is_some() {
            bwrap_args.extend(
                [
                    door::RELAY_IN_SANDBOX,
                    "sandbox-relay",
                    "--socket",
                    door::SOCKET_IN_SANDBOX,
                    "--listen",
                    door::LISTEN,
                    "--",
                ]
                .map(OsString::from),
            );
        }
        bwrap_args.extend(command.argv.iter().map(OsString::from));

        // Positional arguments: cgroup.procs files, `--`, [workspace, mount point, mount,
        // [runtime dir, its mount point], [door dir, its mount point, relay], [binds' mount
        // point, each bind's host path]], filter files, `--`, the command to exec. Descriptors the server inherited from its
        // own parent are not close-on-exec, and `bwrap` passes everything on: the script
        // closes all but stdio first.
        let mut script = String::from(
            "for f in /proc/$$/fd/*; do n=${f##*/}; [ \"$n\" -gt 2 ] && exec {n}>&-; done\n\
             for f; do [ \"$f\" = -- ] && break\n\
             echo $$ > \"$f\" || { echo \"sandbox: cannot join cgroup $f\" >&2; exit 125; }\n\
             done\n\
             while [ \"$1\" != -- ]; do shift; done; shift\n",
        );
        if self.privileged.is_some() {
            script.push_str(
                "m=$3\n\"$m\" --bind \"$1\" \"$2\" || \
                 { echo \"sandbox: cannot bind the workspace\" >&2; exit 125; }\n\
                 shift 3\n",
            );
            if runtimes.is_some() {
                script.push_str(
                    "\"$m\" --bind \"$1\" \"$2\" || \
                     { echo \"sandbox: cannot bind the agent runtimes\" >&2; exit 125; }\n\
                     shift 2\n",
                );
            }
            if door.is_some() {
                script.push_str(
                    "\"$m\" --bind \"$1\" \"$2\" && \"$m\" --bind \"$3\" \"$2/relay\" || \
                     { echo \"sandbox: cannot bind the door\" >&2; exit 125; }\n\
                     shift 3\n",
                );
            }
            if !binds.is_empty() {
                // A tmpfs of mount points, private to this namespace, one per bind: a
                // directory or an empty file, like what is bound on it.
                script.push_str(
                    "b=$1; shift\n\"$m\" -t tmpfs -o mode=0755,size=64k managed-agents-binds \"$b\" || \
                     { echo \"sandbox: cannot mount the binds' mount points\" >&2; exit 125; }\n",
                );
                for i in 0..binds.len() {
                    script.push_str(&format!(
                        "if [ -d \"$1\" ]; then mkdir \"$b/{i}\"; else : > \"$b/{i}\"; fi && \
                         \"$m\" --bind \"$1\" \"$b/{i}\" || \
                         {{ echo \"sandbox: cannot bind $1\" >&2; exit 125; }}\n\
                         shift\n"
                    ));
                }
            }
        }
        let opens: Vec<String> = (0..files.len())
            .map(|i| format!("{}< \"${}\"", FIRST_FILTER_FD + i, i + 1))
            .collect();
        if !opens.is_empty() {
            script.push_str(&format!(
                "exec {} || {{ echo \"sandbox: cannot open the seccomp filters or the trust \
                 bundle\" >&2; exit 125; }}\n\
                 shift {}\n",
                opens.join(" "),
                opens.len()
            ));
        }
        script.push_str("shift\n");
        if let Some(bytes) = self.limits.memory_bytes {
            if !self.cgroups.has(Controller::Memory) {
                script.push_str(&format!("ulimit -v {} || exit 125\n", bytes / 1024));
            }
        }
        if let Some(secs) = self.limits.cpu_seconds {
            script.push_str(&format!("ulimit -t {secs} || exit 125\n"));
        }
        script.push_str("exec \"$@\"\n");

        let mut args: Vec<OsString> = vec!["-c".into(), script.into(), "sandbox-launcher".into()];
        args.extend(procs.into_iter().map(OsString::from));
        args.push("--".into());
        if let Some(p) = &self.privileged {
            args.extend([
                workspace.into(),
                p.mount_point.clone().into(),
                p.mount.clone().into(),
            ]);
            if let Some(dir) = runtimes {
                args.extend([dir.into(), p.runtimes_mount_point.clone().into()]);
            }
            if let Some(mount) = door {
                args.extend([
                    mount.dir.clone().into(),
                    p.door_mount_point.clone().into(),
                    mount.relay.clone().into(),
                ]);
            }
            if !binds.is_empty() {
                args.push(p.binds_mount_point.clone().into());
                args.extend(binds.iter().map(|b| OsString::from(&b.host)));
            }
        }
        args.extend(files);
        args.push("--".into());
        // `bwrap` and the sandbox's pid 1 start with an empty environment.
        args.extend([self.env.clone().into(), "-i".into()]);
        if let Some(p) = &self.privileged {
            args.extend([
                p.setpriv.clone().into(),
                format!("--reuid={uid}").into(),
                format!("--regid={uid}").into(),
                "--clear-groups".into(),
                "--inh-caps=-all".into(),
                "--bounding-set=-all".into(),
                "--".into(),
            ]);
        }
        args.push(self.bwrap.clone().into());
        args.extend(bwrap_args);
        match &self.privileged {
            Some(p) => {
                let mut unshare: Vec<OsString> = vec![
                    "--mount".into(),
                    "--propagation".into(),
                    "private".into(),
                    "--".into(),
                    self.shell.clone().into(),
                ];
                unshare.extend(args);
                (p.unshare.clone(), unshare)
            }
            None => (self.shell.clone(), args),
        }
    }

    /// The host uid a command in `workspace` runs as: the workspace's owner when it is in the
    /// range, else the first uid of the range, which then gets the workspace.
    fn owner(&self, workspace: &Path) -> Result<u32, Error> {
        let fail = |source| Error::Workspace {
            path: workspace.to_owned(),
            source,
        };
        let meta = std::fs::metadata(workspace).map_err(fail)?;
        let Some(p) = &self.privileged else {
            return Ok(meta.uid());
        };
        if p.uids.contains(meta.uid()) {
            return Ok(meta.uid());
        }
        let uid = p.uids.first();
        std::os::unix::fs::chown(workspace, Some(uid), Some(uid)).map_err(fail)?;
        Ok(uid)
    }

    /// A line for stderr when the command ran out of space: which limit it hit.
    pub(super) fn space_note(
        &self,
        workspace: &Workspace,
        stdout: &str,
        stderr: &str,
    ) -> Option<String> {
        let enospc = [stdout, stderr]
            .iter()
            .any(|t| t.contains("No space left on device") || t.contains("Disk quota exceeded"));
        // The quota (the image's size) and what is free in it now.
        let space = workspace
            .quota()
            .and_then(|quota| image::space(workspace.dir()).map(|(_, free)| (quota, free)));
        let tmp = self
            .limits
            .tmp_bytes
            .map(|b| {
                format!(
                    "; /tmp is limited to {} and emptied when its sandbox ends (after every \
                     command; for bash, when its shell ends)",
                    image::human(b)
                )
            })
            .unwrap_or_default();
        match space {
            Some((size, free)) if free < FULL_BELOW => Some(format!(
                "sandbox: the workspace quota is reached: /workspace is limited to {} and {} is \
                 free. Delete files in /workspace to free space.",
                image::human(size),
                image::human(free)
            )),
            Some((size, free)) if enospc => Some(format!(
                "sandbox: a write ran out of space: /workspace is limited to {} by the workspace \
                 quota ({} free){tmp}.",
                image::human(size),
                image::human(free)
            )),
            None if enospc => Some(format!("sandbox: a write ran out of space{tmp}.")),
            _ => None,
        }
    }
}

impl BubblewrapSandbox {
    /// Start `command` through the launcher: checks, the workspace owner's uid, the command's
    /// cgroups and the `bwrap` child with stdout and stderr piped. The one spawn path of
    /// [`Sandbox::run`] and [`Sandbox::start`], so both get the same namespaces, limits,
    /// seccomp filters, identity, environment and network. The returned group must live until
    /// the child has exited.
    pub(super) fn spawn(
        &self,
        workspace: &Workspace,
        network: Network,
        command: &Command,
        stdin: Stdio,
    ) -> Result<(tokio::process::Child, Option<Group>), Error> {
        if command.argv.is_empty() {
            return Err(Error::EmptyCommand);
        }
        if let Some((k, _)) =
            workspace.env().iter().chain(&command.env).find(|(k, v)| {
                k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0')
            })
        {
            return Err(Error::InvalidEnv(k.clone()));
        }
        for bind in workspace.binds() {
            bind.check()?;
        }
        let uid = self.owner(workspace.dir())?;
        let group = if self.cgroups.is_empty() {
            None
        } else {
            Some(self.cgroups.create(&self.limits).map_err(Error::Io)?)
        };
        let procs = group
            .as_ref()
            .map(|g| g.procs_files().collect())
            .unwrap_or_default();
        let (program, args) = self.launcher(workspace, uid, &network, command, procs);
        let child = tokio::process::Command::new(&program)
            .args(args)
            .env_clear()
            .current_dir("/")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn { program, source })?;
        crate::telemetry::metrics().sandbox_started();
        Ok((child, group))
    }
}

impl Sandbox for BubblewrapSandbox {
    fn space_note(&self, workspace: &Workspace, output: &str) -> Option<String> {
        BubblewrapSandbox::space_note(self, workspace, output, "")
    }

    async fn run(
        &self,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> Result<Output, Error> {
        let stdin = if command.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let started = Instant::now();
        let (mut child, group) = self.spawn(workspace, network, &command, stdin)?;

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
        let (mut stderr, err_cut) = collect(stderr).await.into_text();
        drop(group);
        if let Some(note) = self.space_note(workspace, &stdout, &stderr) {
            if !stderr.is_empty() && !stderr.ends_with('\n') {
                stderr.push('\n');
            }
            stderr.push_str(&note);
            stderr.push('\n');
        }
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

    async fn start(
        &self,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> Result<Process, Error> {
        Process::start(self, workspace, network, command).await
    }
}

/// Create the mount point (root-owned, 0755) or check that the existing one is a root-owned
/// directory nobody else can write (it is where workspaces are bound).
fn prepare_mount_point(dir: &Path) -> Result<(), Error> {
    let fail = |message: &str| Error::Workspace {
        path: dir.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message.to_owned()),
    };
    let io = |source| Error::Workspace {
        path: dir.to_owned(),
        source,
    };
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !meta.is_dir() || meta.uid() != 0 || meta.permissions().mode() & 0o022 != 0 {
        return Err(fail(
            "the sandbox mount point must be a root-owned directory that only root can write",
        ));
    }
    if meta.permissions().mode() & 0o005 != 0o005 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    }
    Ok(())
}

pub(super) async fn collect(reader: Option<tokio::task::JoinHandle<Capped>>) -> Capped {
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

/// Arguments shared by every command: namespaces, the read-only system, the masked `/etc`,
/// `/tmp`, `/proc`, `/dev`, the working directory and the clean environment.
fn base_args(
    disable_userns: bool,
    read_only: &[PathBuf],
    limits: &Limits,
) -> Result<Vec<OsString>, Error> {
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
    if let Some(bytes) = limits.tmp_bytes {
        a.extend(["--size".into(), bytes.to_string().into()]);
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
