//! A long-running process in a session's sandbox ([`Process`]), for agents that live beside the
//! conversation (Claude Code, Codex) rather than one tool command at a time.
//!
//! It is started through the same spawn path as [`Sandbox::run`](super::Sandbox::run) (the
//! launcher in `bubblewrap.rs`), so it gets the same namespaces, limits, seccomp filters, uid,
//! environment and network. What differs is the I/O: stdin stays open for the caller to write
//! ([`Process::stdin`]), stdout is read as a stream of lines ([`Lines`], each at most
//! [`Lines::DEFAULT_LIMIT`] bytes unless set otherwise, a longer one is an error rather than
//! unbounded memory), and stderr is collected in the background up to the command's
//! `output_limit` and returned with the exit status by [`Process::wait`].
//!
//! **Stopping.** [`Process::kill`] (or a [`Killer`] handle held by another task, or the
//! command's `timeout`) kills `bwrap` with SIGKILL; `--die-with-parent` kills the sandbox's pid
//! 1 and the kernel every other process in its pid namespace. [`Process::wait`] returns once
//! `bwrap` is reaped and stderr is closed, that is when every process that held it is gone.
//! Dropping the [`Process`] and every [`Killer`] kills it too.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::bubblewrap::{collect, BubblewrapSandbox};
use super::command::{Command, Network};
use super::output::read_capped;
use super::workspace::Workspace;
use super::Error;

/// A process running in a sandbox: stdin to write, stdout as lines, a kill switch and its
/// exit. See the module documentation.
#[derive(Debug)]
pub struct Process {
    stdin: Option<ChildStdin>,
    stdout: Option<Lines>,
    killer: Killer,
    exit: JoinHandle<Result<Exit, Error>>,
}

/// How a [`Process`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when it exited (`None` when killed by a signal).
    pub exit_code: Option<i32>,
    /// The signal that ended `bwrap`, if any (a kill or a timeout is SIGKILL).
    pub signal: Option<i32>,
    /// Standard error (lossy UTF-8), ending with the truncation marker when cut at the
    /// command's `output_limit`.
    pub stderr: String,
    /// Whether stderr was cut.
    pub truncated: bool,
    /// Whether it was stopped by [`Process::kill`] or a [`Killer`].
    pub killed: bool,
    /// Whether it was killed at the command's timeout.
    pub timed_out: bool,
    /// Wall time from start to exit.
    pub duration: Duration,
}

impl Exit {
    /// Exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.killed && !self.timed_out
    }
}

/// Stops a [`Process`] from anywhere (an interrupt handler, say). Cheap to clone; the process
/// is also killed once the [`Process`] and every `Killer` are dropped.
#[derive(Clone, Debug)]
pub struct Killer {
    signal: watch::Sender<bool>,
}

impl Killer {
    /// Ask for the whole sandbox to be killed now (SIGKILL); returns at once. Killing a
    /// process that has exited does nothing.
    pub fn kill(&self) {
        self.signal.send_replace(true);
    }
}

/// Errors reading a [`Process`]'s stdout.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("the agent process wrote a line of more than {limit} bytes on stdout")]
    TooLong { limit: usize },
    #[error("reading the agent process's stdout failed: {0}")]
    Io(#[source] std::io::Error),
}

/// The lines of a process's stdout, each at most [`Lines::limit`] bytes.
#[derive(Debug)]
pub struct Lines {
    reader: BufReader<ChildStdout>,
    limit: usize,
    failed: bool,
}

impl Lines {
    /// Default cap of one line: 16 MiB.
    pub const DEFAULT_LIMIT: usize = 16 << 20;

    /// Set the cap of one line in bytes (without its newline).
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// The next line without its `\n` (lossy UTF-8), or `None` once stdout is closed. A last
    /// line without a newline is returned too. After an error every call returns `None`: the
    /// stream's position is lost (a caller should kill the process).
    pub async fn next(&mut self) -> Result<Option<String>, LineError> {
        if self.failed {
            return Ok(None);
        }
        let mut line = Vec::new();
        loop {
            let buf = match self.reader.fill_buf().await {
                Ok(buf) => buf,
                Err(e) => {
                    self.failed = true;
                    return Err(LineError::Io(e));
                }
            };
            if buf.is_empty() {
                return Ok((!line.is_empty()).then(|| lossy(line)));
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if line.len() + take > self.limit {
                self.failed = true;
                return Err(LineError::TooLong { limit: self.limit });
            }
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(if done { take + 1 } else { take });
            if done {
                return Ok(Some(lossy(line)));
            }
        }
    }
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

impl Process {
    /// Start `command` in `workspace` (see [`Sandbox::start`](super::Sandbox::start)). The
    /// command's `stdin` bytes, if any, are written before this returns; its `timeout` is the
    /// process's whole lifetime and its `output_limit` the bytes of stderr kept.
    pub(super) async fn start(
        sandbox: &BubblewrapSandbox,
        workspace: &Workspace,
        network: Network,
        command: Command,
    ) -> Result<Self, Error> {
        let started = Instant::now();
        let (mut child, group) = sandbox.spawn(workspace, network, &command, Stdio::piped())?;
        let mut stdin = child.stdin.take();
        if let (Some(pipe), Some(bytes)) = (stdin.as_mut(), &command.stdin) {
            // A process that exits at once closes its end; that shows in its exit, not here.
            let _ = pipe.write_all(bytes).await;
        }
        let stdout = child.stdout.take().map(|r| Lines {
            reader: BufReader::with_capacity(64 * 1024, r),
            limit: Lines::DEFAULT_LIMIT,
            failed: false,
        });
        let limit = command.output_limit;
        let stderr = child
            .stderr
            .take()
            .map(|r| tokio::spawn(read_capped(r, limit)));
        let (signal, mut killed) = watch::channel(false);
        let timeout = command.timeout;
        let space = sandbox.clone();
        let workspace = workspace.clone();
        let exit = tokio::spawn(async move {
            let (status, killed, timed_out) = tokio::select! {
                status = child.wait() => (status, false, false),
                () = tokio::time::sleep(timeout) => {
                    let _ = child.start_kill();
                    (child.wait().await, false, true)
                }
                () = kill_requested(&mut killed) => {
                    let _ = child.start_kill();
                    (child.wait().await, true, false)
                }
            };
            let status = status.map_err(Error::Io)?;
            let duration = started.elapsed();
            // Every process of the sandbox holds stderr: its end means they are all gone.
            let (mut stderr, truncated) = collect(stderr).await.into_text();
            drop(group);
            if let Some(note) = space.space_note(&workspace, "", &stderr) {
                if !stderr.is_empty() && !stderr.ends_with('\n') {
                    stderr.push('\n');
                }
                stderr.push_str(&note);
                stderr.push('\n');
            }
            Ok(Exit {
                exit_code: status.code(),
                signal: status.signal(),
                stderr,
                truncated,
                killed,
                timed_out,
                duration,
            })
        });
        Ok(Self {
            stdin,
            stdout,
            killer: Killer { signal },
            exit,
        })
    }

    /// The process's stdin, once (`None` after that). Dropping it closes the pipe.
    pub fn stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// The process's stdout as lines, once (`None` after that).
    pub fn stdout(&mut self) -> Option<Lines> {
        self.stdout.take()
    }

    /// A handle that kills this process from another task.
    pub fn killer(&self) -> Killer {
        self.killer.clone()
    }

    /// Kill the whole sandbox now (SIGKILL) and return how it ended, once every process in it
    /// is gone.
    pub async fn kill(self) -> Result<Exit, Error> {
        self.killer.kill();
        self.wait().await
    }

    /// Wait for the process to end (by itself, [`kill`](Self::kill), a [`Killer`] or its
    /// timeout). Waiting does not kill it: the [`Process`]'s own kill switch lives until the
    /// exit is known.
    pub async fn wait(self) -> Result<Exit, Error> {
        let Self { killer, exit, .. } = self;
        let result = exit.await;
        drop(killer);
        match result {
            Ok(exit) => exit,
            Err(e) => Err(Error::Io(std::io::Error::other(e))),
        }
    }
}

/// Resolves when a kill is asked for or every [`Killer`] is gone.
async fn kill_requested(signal: &mut watch::Receiver<bool>) {
    loop {
        if *signal.borrow_and_update() {
            return;
        }
        if signal.changed().await.is_err() {
            return;
        }
    }
}
