//! Long-running processes in a real bubblewrap sandbox (`Sandbox::start`): stdin and stdout
//! lines, the line cap, stderr, exit status, and a kill that stops the whole process tree.

mod support;

use std::time::Duration;

use managed_agents_harness::sandbox::{Command, LineError, Lines, Network, Sandbox};
use support::Sandboxed;
use tokio::io::AsyncWriteExt;

/// Host processes whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(marker) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[tokio::test]
async fn stdin_and_stdout_lines_stream_both_ways() {
    let s = Sandboxed::new("sesn_process_echo").await;
    let script = "while read -r line; do echo \"got $line\"; done; echo bye >&2; exit 3";
    let mut process = s
        .sandbox
        .start(&s.workspace, Network::Isolated, Command::shell(script))
        .await
        .unwrap();
    let mut stdin = process.stdin().unwrap();
    let mut lines = process.stdout().unwrap();
    assert!(process.stdin().is_none(), "stdin is handed out once");

    // One line at a time: the answer to the first arrives before the second is written.
    stdin.write_all(b"one\n").await.unwrap();
    assert_eq!(lines.next().await.unwrap().as_deref(), Some("got one"));
    stdin.write_all(b"two\n").await.unwrap();
    assert_eq!(lines.next().await.unwrap().as_deref(), Some("got two"));
    drop(stdin);
    assert_eq!(lines.next().await.unwrap(), None);

    let exit = process.wait().await.unwrap();
    assert_eq!(exit.exit_code, Some(3));
    assert_eq!(exit.stderr, "bye\n");
    assert!(!exit.killed && !exit.timed_out && !exit.success());
}

#[tokio::test]
async fn runs_confined_like_a_command() {
    let s = Sandboxed::new("sesn_process_confined").await;
    let command = Command::shell(
        "echo \"$(id -u) $PWD $HOME $GREETING\"; grep Seccomp: /proc/self/status; \
         echo pid $$; touch /workspace/made-by-process",
    )
    .env("GREETING", "hello");
    let mut process = s
        .sandbox
        .start(&s.workspace, Network::Isolated, command)
        .await
        .unwrap();
    let mut lines = process.stdout().unwrap();
    assert_eq!(
        lines.next().await.unwrap().as_deref(),
        Some("1000 /workspace /workspace hello")
    );
    assert_eq!(
        lines.next().await.unwrap().as_deref(),
        Some("Seccomp:\t2"),
        "the seccomp filters apply"
    );
    // A new pid namespace: the shell is a child of the sandbox's pid 1.
    let pid = lines.next().await.unwrap().unwrap();
    assert!(
        pid.starts_with("pid ") && pid != "pid 1" && pid.len() <= 6,
        "{pid}"
    );
    assert!(process.wait().await.unwrap().success());
    assert!(s.workspace.dir().join("made-by-process").exists());
}

#[tokio::test]
async fn a_line_over_the_cap_is_an_error() {
    let s = Sandboxed::new("sesn_process_long_line").await;
    let mut process = s
        .sandbox
        .start(
            &s.workspace,
            Network::Isolated,
            Command::shell("echo short; head -c 5000 /dev/zero | tr '\\0' a; echo; sleep 600"),
        )
        .await
        .unwrap();
    let mut lines = process.stdout().unwrap().limit(4096);
    assert_eq!(lines.next().await.unwrap().as_deref(), Some("short"));
    let err = lines.next().await.unwrap_err();
    assert!(matches!(err, LineError::TooLong { limit: 4096 }), "{err}");
    assert!(err.to_string().contains("more than 4096 bytes"), "{err}");
    assert_eq!(lines.next().await.unwrap(), None, "nothing after the error");
    let exit = process.kill().await.unwrap();
    assert!(exit.killed);
    assert_eq!(Lines::DEFAULT_LIMIT, 16 << 20);
}

#[tokio::test]
async fn kill_stops_the_whole_process_tree() {
    let s = Sandboxed::new("sesn_process_kill").await;
    // Unique arguments to find the processes on the host: a background child that ignores
    // SIGTERM and SIGHUP, and the foreground one.
    let marker_bg = "4242.2718";
    let marker_fg = "4343.2718";
    let script = format!(
        "trap '' TERM HUP; (trap '' TERM HUP; exec sleep {marker_bg}) & echo ready; exec sleep {marker_fg}"
    );
    let mut process = s
        .sandbox
        .start(&s.workspace, Network::Isolated, Command::shell(script))
        .await
        .unwrap();
    let mut lines = process.stdout().unwrap();
    assert_eq!(lines.next().await.unwrap().as_deref(), Some("ready"));
    // `ready` is printed after the fork; wait until both sleeps exist on the host.
    while host_processes_with(marker_bg).is_empty() || host_processes_with(marker_fg).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let killer = process.killer();
    killer.kill();
    let exit = process.wait().await.unwrap();
    assert!(exit.killed && !exit.timed_out, "{exit:?}");
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert_eq!(host_processes_with(marker_bg), Vec::<String>::new());
    assert_eq!(host_processes_with(marker_fg), Vec::<String>::new());
    assert_eq!(lines.next().await.unwrap(), None, "stdout is closed");
}

#[tokio::test]
async fn dropping_the_process_kills_it() {
    let s = Sandboxed::new("sesn_process_drop").await;
    let marker = "4444.2718";
    let mut process = s
        .sandbox
        .start(
            &s.workspace,
            Network::Isolated,
            Command::shell(format!("echo ready; exec sleep {marker}")),
        )
        .await
        .unwrap();
    let mut lines = process.stdout().unwrap();
    assert_eq!(lines.next().await.unwrap().as_deref(), Some("ready"));
    drop(process);
    // The sandbox is gone once its stdout closes.
    assert_eq!(lines.next().await.unwrap(), None);
    while !host_processes_with(marker).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_timeout_bounds_its_life_and_stderr_is_capped() {
    let s = Sandboxed::new("sesn_process_timeout").await;
    let command = Command::shell("head -c 100000 /dev/zero | tr '\\0' e >&2; exec sleep 600")
        .timeout(Duration::from_millis(500))
        .output_limit(1000)
        .stdin("ignored input\n");
    let process = s
        .sandbox
        .start(&s.workspace, Network::Isolated, command)
        .await
        .unwrap();
    let exit = process.wait().await.unwrap();
    assert!(exit.timed_out && !exit.killed, "{exit:?}");
    assert!(exit.truncated);
    assert!(
        exit.stderr
            .ends_with("[output truncated: showing the first 1000 of 100000 bytes]\n"),
        "{}",
        exit.stderr
    );
}

#[tokio::test]
async fn bad_commands_are_refused_before_starting() {
    let s = Sandboxed::new("sesn_process_refused").await;
    let empty = s
        .sandbox
        .start(
            &s.workspace,
            Network::Isolated,
            Command::new(Vec::<String>::new()),
        )
        .await;
    assert!(matches!(
        empty,
        Err(managed_agents_harness::sandbox::Error::EmptyCommand)
    ));
    let bad_env = s
        .sandbox
        .start(
            &s.workspace,
            Network::Isolated,
            Command::shell("true").env("A=B", "c"),
        )
        .await;
    assert!(matches!(
        bad_env,
        Err(managed_agents_harness::sandbox::Error::InvalidEnv(_))
    ));
}
