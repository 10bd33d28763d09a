//! `bash`: one persistent shell per session, as the hosted toolset keeps one.
//!
//! The shell is a `bash --noprofile --norc` started in the session's sandbox with
//! [`Sandbox::start`] (the same launcher, confinement and network as every tool command) and
//! kept in [`Shells`] between calls and turns, so the working directory, exported (and plain)
//! variables, functions, background jobs and the sandbox's private `/tmp` survive from one call
//! to the next. Each call writes one line to the shell's stdin:
//!
//! ```text
//! { eval "$(printf %s '<base64 of the command>' | base64 -d)"; } </dev/null 2>&1; printf '\n%s%s_%d\n' '__MA_<nonce' '>' "$?"
//! ```
//!
//! `eval` of the decoded text runs the command in the shell itself (so `cd` and `export`
//! stick) while a syntax error stays inside the call instead of leaving the shell waiting for
//! more input; stdin is `/dev/null` (a command that reads it gets EOF, never our protocol);
//! stderr joins stdout. The call's output is every stdout line up to the sentinel line, which
//! carries a fresh random nonce per call (written split in two, so the sentinel never appears
//! in what was sent) and the exit status. Only the last [`OUTPUT_LIMIT`] bytes are kept
//! (`[output truncated]` first when cut), ANSI escapes are removed and trailing newlines
//! trimmed, as the reference does.
//!
//! A non-zero status is an error result with the output. A call that times out, is interrupted
//! (its future dropped) or breaks the protocol (a line longer than the reader's cap) kills the
//! shell's whole sandbox; the next call starts a new shell, as does `restart: true`. A shell
//! that exited by itself (`exit`) is replaced on the next call. Shells end with their session
//! ([`Shells::discard`]), after [`SHELL_IDLE`] without a call, after [`SHELL_LIFETIME`], or
//! with the server: after a restart the next call gets a new shell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use managed_agents_core::ids::SessionId;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::process::ChildStdin;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::{optional_bool, optional_string, optional_u64, Limits, ToolOutput};
use crate::sandbox::{Command, Killer, Lines, Network, Process, Sandbox, Workspace};

/// Bytes of a call's output kept (the tail), as the reference keeps.
pub(crate) const OUTPUT_LIMIT: usize = 100 * 1024;
/// The longest a shell lives.
pub(crate) const SHELL_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// How long a shell no call used is kept.
pub(crate) const SHELL_IDLE: Duration = Duration::from_secs(3600);
/// The longest stdout line read before the shell is given up (the protocol is line based).
const LINE_LIMIT: usize = 16 << 20;

/// A running shell.
struct Shell {
    stdin: ChildStdin,
    stdout: Lines,
    killer: Killer,
    /// Kept so the shell's exit is reaped; dropped with the shell (which kills it).
    _process: Process,
    /// What the shell was started with; a turn with other mounts or network gets a new shell.
    started_with: String,
    /// When the last call ended (or the shell started): the idle reaper's clock.
    last_used: Instant,
    /// The shell's one idle reaper ([`reap_when_idle`]), ended with the shell.
    reaper: Option<AbortHandle>,
}

impl Drop for Shell {
    fn drop(&mut self) {
        self.killer.kill();
        if let Some(reaper) = self.reaper.take() {
            reaper.abort();
        }
    }
}

/// One session's shell slot. A call holds its lock for the call's whole run, so calls of one
/// session never interleave on the pipes.
type Slot = Arc<tokio::sync::Mutex<Option<Shell>>>;

/// The sessions' shells. Cheap to clone.
#[derive(Clone, Default)]
pub struct Shells {
    slots: Arc<Mutex<HashMap<SessionId, Slot>>>,
}

impl std::fmt::Debug for Shells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shells").finish_non_exhaustive()
    }
}

impl Shells {
    fn slot(&self, session: &SessionId) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(session.clone()).or_default().clone()
    }

    /// Ends `session`'s shell, if any (the session was deleted, archived or terminated).
    pub fn discard(&self, session: &SessionId) {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.remove(session)
        };
        if let Some(slot) = slot {
            if let Ok(mut shell) = slot.try_lock() {
                shell.take();
            }
            // A call in progress holds the lock; its shell is dropped (killed) with the slot
            // once that call returns, as nothing refers to the slot any more.
        }
    }

    /// Whether `session` has a live shell (for tests).
    pub fn has_shell(&self, session: &SessionId) -> bool {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .get(session)
            .and_then(|slot| slot.try_lock().ok().map(|s| s.is_some()))
            .unwrap_or(false)
    }
}

/// Where and for whom a tool call runs: the session's sandbox, workspace and network, and
/// the shells `bash` keeps.
pub struct ShellContext<'a, X> {
    /// The shells of every session.
    pub shells: &'a Shells,
    /// The session calling.
    pub session: &'a SessionId,
    /// The sandbox tools run in.
    pub sandbox: &'a X,
    /// The session's workspace.
    pub workspace: &'a Workspace,
    /// The session's network.
    pub network: Network,
}

/// Kills the shell when a call does not finish (its future was dropped: an interrupt).
struct CallGuard<'a> {
    shell: &'a mut Option<Shell>,
    finished: bool,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.shell.take();
        }
    }
}

pub(super) async fn bash<X: Sandbox>(
    cx: &ShellContext<'_, X>,
    limits: &Limits,
    input: &Map<String, Value>,
) -> Result<ToolOutput, ToolOutput> {
    let restart = optional_bool(input, "restart")?.unwrap_or(false);
    let command = optional_string(input, "command")?.filter(|c| !c.is_empty());
    let timeout = optional_u64(input, "timeout_ms")?
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(limits.bash_timeout)
        .min(limits.max_bash_timeout);
    let slot = cx.shells.slot(cx.session);
    let mut shell = slot.lock().await;
    if restart {
        shell.take();
        *shell = Some(start(cx, &slot).await?);
        return Ok(ToolOutput::ok("bash session restarted"));
    }
    let Some(command) = command else {
        return Err(ToolOutput::error("bash: command is required"));
    };
    let fingerprint = fingerprint(cx);
    if shell
        .as_ref()
        .is_some_and(|s| s.started_with != fingerprint)
    {
        shell.take();
    }
    // The tool's span says whether this call paid for a new shell.
    let warm = shell.is_some();
    tracing::Span::current().record("sandbox.start", if warm { "warm" } else { "cold" });
    if !warm {
        *shell = Some(start(cx, &slot).await?);
    }
    let mut guard = CallGuard {
        shell: &mut shell,
        finished: false,
    };
    let note = |output: &str| cx.sandbox.space_note(cx.workspace, output);
    let result = match tokio::time::timeout(timeout, exec(&mut guard, command, &note)).await {
        Ok(result) => result,
        Err(_) => {
            guard.shell.take();
            Err(ToolOutput::error(format!(
                "bash: bash command timed out after {}s; the shell was ended (the next call starts a new one)",
                timeout.as_secs_f64()
            )))
        }
    };
    guard.finished = true;
    if let Some(shell) = guard.shell.as_mut() {
        shell.last_used = Instant::now();
    }
    result
}

/// The idle reaper of the shell just started in `slot`: it ends the shell once no call used it
/// for [`SHELL_IDLE`], waking at most once per idle period. One task per shell, aborted when the
/// shell is dropped (discarded, replaced, timed out), and holding the slot only weakly, so
/// neither a deleted session's slot nor a task per call outlives the shell: a task per call,
/// each sleeping the whole idle period, held about 0.6 KiB per bash call for an hour
/// (`benches/README.md`, "Soak").
fn reap_when_idle(slot: &Slot) -> AbortHandle {
    let slot = Arc::downgrade(slot);
    tokio::spawn(async move {
        let mut deadline = Instant::now() + SHELL_IDLE;
        loop {
            tokio::time::sleep_until(deadline).await;
            let Some(slot) = slot.upgrade() else { return };
            let Ok(mut shell) = slot.try_lock() else {
                // A call is running: it is not idle; look again an idle period from now.
                deadline = Instant::now() + SHELL_IDLE;
                continue;
            };
            match shell.as_ref() {
                Some(used) if used.last_used + SHELL_IDLE > Instant::now() => {
                    deadline = used.last_used + SHELL_IDLE;
                }
                // Dropping the shell aborts this task, which ends here anyway.
                Some(_) => {
                    shell.take();
                    return;
                }
                None => return,
            }
        }
    })
    .abort_handle()
}

/// What a shell started for this call would be started with.
fn fingerprint<X>(cx: &ShellContext<'_, X>) -> String {
    format!("{:?} {:?}", cx.workspace, cx.network)
}

async fn start<X: Sandbox>(cx: &ShellContext<'_, X>, slot: &Slot) -> Result<Shell, ToolOutput> {
    let command = Command::new(["bash", "--noprofile", "--norc"])
        .env("PS1", "")
        .env("PS2", "")
        .env("TERM", "dumb")
        .timeout(SHELL_LIFETIME)
        .output_limit(OUTPUT_LIMIT);
    let mut process = cx
        .sandbox
        .start(cx.workspace, cx.network.clone(), command)
        .await
        .map_err(|e| {
            ToolOutput::error(format!("bash: the sandbox could not start a shell: {e}"))
        })?;
    let (Some(stdin), Some(stdout)) = (process.stdin(), process.stdout()) else {
        return Err(ToolOutput::error("bash: the shell has no pipes"));
    };
    Ok(Shell {
        stdin,
        stdout: stdout.limit(LINE_LIMIT),
        killer: process.killer(),
        _process: process,
        started_with: fingerprint(cx),
        last_used: Instant::now(),
        reaper: Some(reap_when_idle(slot)),
    })
}

/// The line that runs `command` and prints the sentinel `<first><second>_<status>`.
pub(crate) fn wrap(command: &str, first: &str, second: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(command);
    format!(
        "{{ eval \"$(printf %s '{encoded}' | base64 -d)\"; }} </dev/null 2>&1; printf '\\n%s%s_%d\\n' '{first}' '{second}' \"$?\"\n"
    )
}

/// Runs one command in the guard's shell; `space_note` names the limit a failed command's
/// output shows it ran into.
async fn exec(
    guard: &mut CallGuard<'_>,
    command: &str,
    space_note: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<ToolOutput, ToolOutput> {
    let Some(shell) = guard.shell.as_mut() else {
        return Err(ToolOutput::error("bash: no shell"));
    };
    let nonce = format!("{:032x}", fastrand::u128(..));
    let (first, second) = ("__MA_CMD_", format!("{nonce}_DONE"));
    let sentinel = format!("{first}{second}_");
    let line = wrap(command, first, &second);
    if shell.stdin.write_all(line.as_bytes()).await.is_err() || shell.stdin.flush().await.is_err() {
        guard.shell.take();
        return Err(ToolOutput::error(
            "bash: the shell is gone (it exited); the next call starts a new one",
        ));
    }
    let mut tail = Tail::default();
    loop {
        match shell.stdout.next().await {
            Ok(Some(line)) => {
                if let Some(status) = line.strip_prefix(&sentinel) {
                    let status: i32 = status.trim().parse().unwrap_or(-1);
                    tracing::Span::current().record("process.exit.code", status);
                    let mut text = tail.finish();
                    if status != 0 {
                        if let Some(note) = space_note(&text) {
                            text.push('\n');
                            text.push_str(&note);
                        }
                    }
                    return if status == 0 {
                        Ok(ToolOutput::ok(text))
                    } else {
                        Err(ToolOutput::error(text))
                    };
                }
                tail.push(&line);
            }
            Ok(None) => {
                guard.shell.take();
                let mut text = tail.finish();
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str("[the shell exited; the next call starts a new one]");
                return Err(ToolOutput::error(text));
            }
            Err(e) => {
                guard.shell.take();
                return Err(ToolOutput::error(format!(
                    "bash: {e}; the shell was ended (the next call starts a new one)"
                )));
            }
        }
    }
}

/// The last [`OUTPUT_LIMIT`] bytes of a call's output.
#[derive(Default)]
pub(crate) struct Tail {
    lines: std::collections::VecDeque<String>,
    bytes: usize,
    truncated: bool,
}

impl Tail {
    pub(crate) fn push(&mut self, line: &str) {
        let line = strip_ansi(line);
        self.bytes += line.len() + 1;
        self.lines.push_back(line);
        while self.bytes > OUTPUT_LIMIT {
            let Some(first) = self.lines.pop_front() else {
                break;
            };
            self.truncated = true;
            let excess = self.bytes - OUTPUT_LIMIT;
            if first.len() + 1 > excess && self.lines.is_empty() {
                // One line longer than the limit: keep its end.
                let mut cut = first.len() + 1 - (OUTPUT_LIMIT.min(first.len()));
                while !first.is_char_boundary(cut) {
                    cut += 1;
                }
                let kept = first[cut..].to_owned();
                self.bytes = kept.len() + 1;
                self.lines.push_back(kept);
                break;
            }
            self.bytes -= first.len() + 1;
        }
    }

    pub(crate) fn finish(&mut self) -> String {
        let lines: Vec<String> = self.lines.drain(..).collect();
        let text = lines.join("\n");
        let text = text.trim_end_matches('\n');
        if self.truncated {
            format!("[output truncated]\n{text}")
        } else {
            text.to_owned()
        }
    }
}

/// `text` without ANSI CSI escape sequences (`ESC [ params intermediates final`).
pub(crate) fn strip_ansi(text: &str) -> String {
    if !text.contains('\x1b') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_digit() || *c == ';' || *c == '?')
            {
                chars.next();
            }
            while chars.peek().is_some_and(|c| (' '..='/').contains(c)) {
                chars.next();
            }
            if chars.peek().is_some_and(|c| ('@'..='~').contains(c)) {
                chars.next();
                continue;
            }
            continue;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinel_is_never_written_whole() {
        let line = wrap("echo hi", "__MA_CMD_", "abc_DONE");
        assert!(!line.contains("__MA_CMD_abc_DONE"));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn ansi_escapes_are_removed() {
        assert_eq!(strip_ansi("\x1b[1;31mred\x1b[0m plain"), "red plain");
        assert_eq!(strip_ansi("no escapes"), "no escapes");
    }

    #[test]
    fn the_tail_is_kept() {
        let mut tail = Tail::default();
        tail.push("first");
        tail.push("");
        assert_eq!(tail.finish(), "first");
        let mut tail = Tail::default();
        let line = "x".repeat(1000);
        for _ in 0..200 {
            tail.push(&line);
        }
        tail.push("last");
        let text = tail.finish();
        assert!(text.starts_with("[output truncated]\n"));
        assert!(text.ends_with("\nlast"));
        assert!(text.len() <= OUTPUT_LIMIT + 20);
        let mut tail = Tail::default();
        tail.push(&"y".repeat(OUTPUT_LIMIT * 2));
        let text = tail.finish();
        assert!(text.starts_with("[output truncated]\n"));
        assert!(text.len() <= OUTPUT_LIMIT + 20);
    }
}
