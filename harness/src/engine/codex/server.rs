//! One `codex app-server` running in a session's sandbox, spoken to over its stdio
//! ([`protocol`]): started, handshaken and attached to the session's thread by [`AppServer::open`],
//! then read message by message ([`AppServer::next`]) while requests and answers are written.
//!
//! The thread: Codex keeps its threads in `CODEX_HOME` (`/workspace/.codex`, in the persistent
//! workspace), so a new process finds the session's conversation as the newest thread started
//! in `/workspace` (`thread/list`) and resumes it; the first turn of a session starts one. No
//! file of the workspace is read by the server itself.

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;

use super::protocol::{self, Incoming, ThreadSettings};
use crate::sandbox::{self, Command, LineError, Lines, Network, Process, Sandbox, Workspace};

/// How the app-server is launched in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Launch {
    /// The program and its arguments (`codex app-server -c …`).
    pub(crate) argv: Vec<String>,
    /// Extra environment (`CODEX_HOME`, the placeholder key's variable).
    pub(crate) env: Vec<(String, String)>,
    /// The whole life of one process (a turn, plus any wait for approvals).
    pub(crate) lifetime: Duration,
}

/// Why talking to Codex failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("Codex cannot be started in the sandbox: {0}")]
    Start(#[source] sandbox::Error),
    #[error("Codex wrote a line of more than {} MiB on stdout; the turn was stopped", .0 >> 20)]
    LineTooLong(usize),
    #[error("{0}")]
    Line(LineError),
    #[error("{0}")]
    Protocol(#[from] protocol::NotJsonRpc),
    #[error("Codex's stdin is closed: {0}")]
    Write(#[source] std::io::Error),
    #[error("Codex exited{0}")]
    Exited(String),
    #[error("Codex refused {method}: {message}")]
    Refused { method: String, message: String },
    #[error("Codex answered {0} without the expected field")]
    Unexpected(&'static str),
}

/// A running app-server attached to the session's thread.
pub(crate) struct AppServer {
    process: Option<Process>,
    stdin: ChildStdin,
    stdout: Lines,
    next_id: u64,
    /// Messages that arrived while waiting for an answer, in order.
    backlog: VecDeque<Incoming>,
    /// The session's thread.
    pub(crate) thread: String,
    /// Whether the thread was resumed (it holds the session's conversation so far) rather
    /// than started.
    pub(crate) resumed: bool,
}

impl AppServer {
    /// Starts Codex in the sandbox, completes the handshake and attaches to the session's
    /// thread (resumed when there is one, else started) with `settings`.
    pub(crate) async fn open<X: Sandbox>(
        sandbox: &X,
        workspace: &Workspace,
        network: Network,
        launch: &Launch,
        settings: &ThreadSettings,
    ) -> Result<Self, Error> {
        let mut command = Command::new(launch.argv.clone()).timeout(launch.lifetime);
        for (name, value) in &launch.env {
            command = command.env(name.clone(), value.clone());
        }
        let mut process = sandbox
            .start(workspace, network, command)
            .await
            .map_err(Error::Start)?;
        let (Some(stdin), Some(stdout)) = (process.stdin(), process.stdout()) else {
            return Err(Error::Exited(" before it could be spoken to".into()));
        };
        let mut server = Self {
            process: Some(process),
            stdin,
            stdout,
            next_id: 0,
            backlog: VecDeque::new(),
            thread: String::new(),
            resumed: false,
        };
        let experimental = !settings.dynamic_tools.is_empty();
        server
            .call("initialize", protocol::initialize(experimental))
            .await?;
        server.write(&protocol::initialized()).await?;
        let listed = server
            .call("thread/list", protocol::thread_list(&settings.cwd))
            .await?;
        let resumed = match protocol::listed_thread(&listed) {
            Some(thread) => match server
                .call("thread/resume", protocol::thread_resume(&thread, settings))
                .await
            {
                Ok(result) => Some(result),
                Err(Error::Refused { message, .. }) => {
                    tracing::warn!(
                        thread,
                        message,
                        "Codex cannot resume its thread; starting a new one"
                    );
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        server.resumed = resumed.is_some();
        let attached = match resumed {
            Some(result) => result,
            None => {
                server
                    .call("thread/start", protocol::thread_start(settings))
                    .await?
            }
        };
        server.thread = protocol::started_thread(&attached).ok_or(Error::Unexpected("a thread"))?;
        Ok(server)
    }

    async fn write(&mut self, line: &str) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await.map_err(Error::Write)?;
        self.stdin.flush().await.map_err(Error::Write)
    }

    /// Sends request `method` and waits for its answer; other messages meanwhile are kept for
    /// [`AppServer::next`].
    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        self.write(&protocol::request(id, method, params)).await?;
        loop {
            match self.read().await? {
                Incoming::Response {
                    id: answered,
                    result,
                } if answered == id => {
                    return result.map_err(|message| Error::Refused {
                        method: method.to_owned(),
                        message,
                    })
                }
                Incoming::Response { .. } => {}
                other => self.backlog.push_back(other),
            }
        }
    }

    /// Answers Codex's request `id`.
    pub(crate) async fn answer(&mut self, id: &Value, result: Value) -> Result<(), Error> {
        self.write(&protocol::answer(id, result)).await
    }

    /// Answers Codex's request `id` with an error (a request we do not serve).
    pub(crate) async fn refuse(&mut self, id: &Value, message: &str) -> Result<(), Error> {
        self.write(&protocol::refuse(id, message)).await
    }

    /// The next request or notification from Codex (answers to nothing we wait for are
    /// dropped).
    pub(crate) async fn next(&mut self) -> Result<Incoming, Error> {
        if let Some(message) = self.backlog.pop_front() {
            return Ok(message);
        }
        loop {
            match self.read().await? {
                Incoming::Response { .. } => {}
                message => return Ok(message),
            }
        }
    }

    async fn read(&mut self) -> Result<Incoming, Error> {
        let line = self.stdout.next().await.map_err(|e| match e {
            LineError::TooLong { limit } => Error::LineTooLong(limit),
            other => Error::Line(other),
        })?;
        match line {
            Some(line) => Ok(protocol::parse(&line)?),
            None => Err(Error::Exited(self.exit_note().await)),
        }
    }

    /// How the process ended, for an error message (its last stderr lines).
    async fn exit_note(&mut self) -> String {
        let Some(process) = self.process.take() else {
            return String::new();
        };
        let exit = match tokio::time::timeout(Duration::from_secs(5), process.wait()).await {
            Ok(Ok(exit)) => exit,
            _ => return String::new(),
        };
        let status = match (exit.exit_code, exit.signal) {
            (Some(code), _) => format!(" with code {code}"),
            (None, Some(signal)) => format!(" on signal {signal}"),
            _ => String::new(),
        };
        let tail: Vec<&str> = exit.stderr.lines().rev().take(3).collect();
        if tail.is_empty() {
            status
        } else {
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            format!("{status}: {}", tail.join(" | "))
        }
    }

    /// Kills the whole sandbox of this process at once.
    pub(crate) async fn kill(mut self) {
        if let Some(process) = self.process.take() {
            let _ = process.kill().await;
        }
    }

    /// Ends the process the polite way (stdin closed: Codex finishes writing its thread and
    /// exits), killing it after `grace`.
    pub(crate) async fn close(self, grace: Duration) {
        let Self { process, stdin, .. } = self;
        drop(stdin);
        let Some(process) = process else { return };
        let killer = process.killer();
        if tokio::time::timeout(grace, process.wait()).await.is_err() {
            killer.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::engine::codex::protocol::Approvals;
    use crate::sandbox::{BubblewrapSandbox, Workspaces};

    /// Runs `script` in a real sandbox in place of Codex and opens it as an app-server.
    async fn open(script: &str) -> Result<AppServer, Error> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        let workspaces = Workspaces::new(dir.path().join("workspaces"));
        let workspace = workspaces
            .create("sesn_codex_server")
            .await
            .expect("a workspace");
        let sandbox = BubblewrapSandbox::new(Default::default()).expect("bubblewrap");
        let launch = Launch {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            lifetime: Duration::from_secs(60),
        };
        let settings = ThreadSettings {
            model: "m".into(),
            instructions: None,
            approvals: Approvals::Never,
            cwd: "/workspace".into(),
            dynamic_tools: Vec::new(),
        };
        AppServer::open(&sandbox, &workspace, Network::Isolated, &launch, &settings).await
    }

    #[tokio::test]
    async fn a_line_over_16_mib_is_a_clear_error() {
        let huge = "head -c 17000000 /dev/zero | tr '\\0' a; echo; sleep 5";
        let error = open(huge).await.err().expect("an error");
        assert_eq!(
            error.to_string(),
            "Codex wrote a line of more than 16 MiB on stdout; the turn was stopped"
        );
    }

    #[tokio::test]
    async fn codex_exiting_is_an_error_with_its_last_words() {
        let error = open("read -r line; echo 'no such model' >&2; exit 3")
            .await
            .err()
            .expect("an error");
        assert_eq!(error.to_string(), "Codex exited with code 3: no such model");
    }

    #[tokio::test]
    async fn the_handshake_attaches_to_the_newest_thread() {
        // A stand-in speaking just enough of the protocol: every request is answered in order
        // (ids 1..4: initialize, thread/list with one thread, thread/resume), and a notification
        // arrives first, kept for `next`.
        let script = r#"
            read -r l; echo '{"method":"remoteControl/status/changed","params":{}}'
            echo '{"id":1,"result":{}}'
            read -r l; read -r l; echo '{"id":2,"result":{"data":[{"id":"t-old"}]}}'
            read -r l; case "$l" in *'"threadId":"t-old"'*) echo '{"id":3,"result":{"thread":{"id":"t-old"}}}';; *) echo bad;; esac
            sleep 5"#;
        let mut server = open(script).await.expect("opened");
        assert_eq!(server.thread, "t-old");
        let first = server.next().await.expect("the kept notification");
        assert!(
            matches!(first, Incoming::Notification { method, .. } if method == "remoteControl/status/changed")
        );
        server.kill().await;
    }
}
