//! What to run in a sandbox ([`Command`]), under which network policy ([`Network`]), and what
//! comes back ([`Output`]).

use std::path::PathBuf;
use std::time::Duration;

/// Network access of a sandbox. Every sandbox has its own network namespace with only
/// loopback; the only way out is a session's door (see [`crate::door`]).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Network {
    /// No way out at all.
    #[default]
    Isolated,
    /// The relay listens on [`crate::door::LISTEN`] inside the namespace and forwards to the
    /// session's door; every process gets the proxy variables ([`crate::door::proxy_env`]).
    Door(DoorMount),
}

/// Where a session's door lives on the host (from [`crate::door::Door::register`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DoorMount {
    /// The directory holding the door socket and the relay's mount target, bound read-only at
    /// [`crate::door::DIR_IN_SANDBOX`].
    pub dir: PathBuf,
    /// The relay binary, bound read-only at [`crate::door::RELAY_IN_SANDBOX`].
    pub relay: PathBuf,
}

/// A command to run in the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Program and arguments; the program is looked up on the sandbox's `PATH`.
    pub argv: Vec<String>,
    /// Bytes written to standard input (then closed); `None` gives an empty stdin.
    pub stdin: Option<Vec<u8>>,
    /// Extra environment on top of the sandbox's clean one (`PATH`, `HOME=/workspace`, `LANG`).
    pub env: Vec<(String, String)>,
    /// The whole process tree is killed after this long.
    pub timeout: Duration,
    /// Bytes kept of each of stdout and stderr; the rest is counted and replaced by a marker.
    pub output_limit: usize,
}

impl Command {
    /// Default timeout: two minutes.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
    /// Default output limit per stream: 100 KB.
    pub const DEFAULT_OUTPUT_LIMIT: usize = 100 * 1024;

    /// Run `argv` directly.
    pub fn new<S: Into<String>>(argv: impl IntoIterator<Item = S>) -> Self {
        Self {
            argv: argv.into_iter().map(Into::into).collect(),
            stdin: None,
            env: Vec::new(),
            timeout: Self::DEFAULT_TIMEOUT,
            output_limit: Self::DEFAULT_OUTPUT_LIMIT,
        }
    }

    /// Run a script with `bash -c`.
    pub fn shell(script: impl Into<String>) -> Self {
        Self::new(["bash".to_owned(), "-c".to_owned(), script.into()])
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }
}

/// The result of a command that ran (successfully or not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The exit code, when the command exited (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The signal that killed the sandbox, if any (a timeout kills with SIGKILL).
    pub signal: Option<i32>,
    /// Standard output (lossy UTF-8), ending with the truncation marker when cut.
    pub stdout: String,
    /// Standard error (lossy UTF-8), ending with the truncation marker when cut.
    pub stderr: String,
    /// Whether stdout or stderr was cut at the output limit.
    pub truncated: bool,
    /// Whether the command was killed at its timeout.
    pub timed_out: bool,
    /// Wall time from start to exit.
    pub duration: Duration,
}

impl Output {
    /// Exited with code 0 within its timeout.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }
}
