//! Sandboxes that run tool commands in a session's workspace: the [`Sandbox`] trait, the
//! [`BubblewrapSandbox`] implementation (`bubblewrap.rs`, with its seccomp filters in
//! `seccomp.rs` and cgroup limits in `cgroup.rs`), long-running agent processes in the same
//! confinement ([`Process`], `process.rs`), and the lifecycle of session workspaces
//! ([`Workspaces`]: per-session host uids from a [`UidRange`], quotas as loop-mounted images in
//! `image.rs`).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), managed_agents_harness::sandbox::Error> {
//! use managed_agents_harness::sandbox::{BubblewrapSandbox, Command, Network, Sandbox, Workspaces};
//! let sandbox = BubblewrapSandbox::new(Default::default())?;
//! let workspaces = Workspaces::new("/var/lib/managed-agents/workspaces").with_quota(Some(1 << 30));
//! let workspace = workspaces.create("sesn_123").await?;
//! let out = sandbox
//!     .run(&workspace, Network::Isolated, Command::shell("echo hi > note && cat note"))
//!     .await?;
//! assert_eq!(out.stdout, "hi\n");
//! workspaces.delete("sesn_123").await?;
//! # Ok(()) }
//! ```

mod bind;
mod bubblewrap;
mod cgroup;
mod command;
mod image;
mod output;
mod process;
mod seccomp;
mod snapshot;
mod uids;
mod workspace;

use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;

pub use bind::Bind;
pub use bubblewrap::{BubblewrapSandbox, Limits, Options, TRUST_ENV, TRUST_FALLBACK, TRUST_STORE};
pub use command::{Command, DoorMount, Network, Output};
pub use image::MIN_QUOTA;
pub use process::{Exit, Killer, LineError, Lines, Process};
pub use uids::UidRange;
pub use workspace::{ForkPoint, Workspace, Workspaces};

/// Runs commands confined to a session's workspace.
pub trait Sandbox: Send + Sync {
    /// Run `command` with `/workspace` bound to `workspace` and the given network policy. A
    /// command that fails, times out or is killed is an `Ok` [`Output`]; `Err` means the sandbox
    /// itself could not run it.
    fn run(
        &self,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> impl Future<Output = Result<Output, Error>> + Send;

    /// Start `command` as a long-running [`Process`] (an agent CLI) under the same confinement
    /// as [`run`](Sandbox::run): stdin stays open, stdout is read as lines, stderr is kept up
    /// to the command's `output_limit`, and its `timeout` bounds the process's whole life.
    /// `Err` means the sandbox could not start it.
    fn start(
        &self,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> impl Future<Output = Result<Process, Error>> + Send;

    /// A line to add to a command's `output` that ran out of space, naming the limit it hit
    /// (the workspace quota, `/tmp`'s size), for output read from a [`Process`] (whose own
    /// notes come only at its exit). `None` when the output shows no such failure.
    fn space_note(&self, workspace: &Workspace, output: &str) -> Option<String> {
        let _ = (workspace, output);
        None
    }
}

/// Errors of the sandbox layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bubblewrap (`bwrap`) was not found on PATH; install the `bubblewrap` package")]
    BwrapNotFound,
    #[error("cannot start the sandbox ({program}): {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox I/O failed: {0}")]
    Io(#[source] std::io::Error),
    #[error("the command is empty")]
    EmptyCommand,
    #[error("invalid sandbox bind {0}")]
    InvalidBind(String),
    #[error("invalid environment variable name {0:?}")]
    InvalidEnv(String),
    #[error("invalid session id for a workspace directory: {0:?}")]
    InvalidSessionId(String),
    #[error("workspace {path}: {source}")]
    Workspace {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the host's /etc to mask its secrets: {0}")]
    ScanEtc(#[source] std::io::Error),
    #[error("cannot build the sandbox's seccomp filter: {0}")]
    Seccomp(String),
    #[error("invalid sandbox uid range {0}")]
    UidRange(String),
    #[error("workspace image {path}: {message}")]
    Mount { path: PathBuf, message: String },
    #[error("the sandbox does not work on this machine: {0}")]
    SelfTest(String),
}

/// Whether the server runs as root (and so drops sandboxes to other uids and mounts images).
pub(crate) fn privileged() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Search `PATH` (or the usual system directories) for an executable.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}
