//! The bubblewrap sandbox with real `bwrap`: persistence, confinement, identity, network,
//! timeouts and output caps.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use managed_agents_harness::sandbox::{
    BubblewrapSandbox, Command, Error, Limits, Network, Options, Output, Sandbox, Workspace,
    Workspaces,
};

/// A data dir outside `/tmp` (the sandbox's `/tmp` is private anyway), with a secret in it and
/// two session workspaces.
struct Setup {
    _dir: tempfile::TempDir,
    data: PathBuf,
    workspaces: Workspaces,
    sandbox: BubblewrapSandbox,
}

async fn setup() -> Setup {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Like a deployed data dir: private files, but passable (o+x) on the way to workspaces.
    for d in [dir.path(), &data] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::write(data.join("secret.txt"), "top secret").unwrap();
    let workspaces = Workspaces::new(data.join("workspaces"));
    Setup {
        sandbox: BubblewrapSandbox::new(Options::default()).unwrap(),
        _dir: dir,
        data,
        workspaces,
    }
}

impl Setup {
    async fn ws(&self, id: &str) -> Workspace {
        self.workspaces.create(id).await.unwrap()
    }

    async fn sh(&self, ws: &Workspace, script: &str) -> Output {
        self.sandbox
            .run(
                ws,
                Network::Limited,
                Command::shell(script).timeout(Duration::from_secs(20)),
            )
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn workspace_persists_between_commands() {
    let s = setup().await;
    let ws = s.ws("sesn_persist").await;
    let out = s
        .sh(&ws, "echo hello > note.txt && pwd && echo $HOME")
        .await;
    assert!(out.success(), "{out:?}");
    assert_eq!(out.stdout, "/workspace\n/workspace\n");
    let out = s.sh(&ws, "cat /workspace/note.txt").await;
    assert_eq!(out.stdout, "hello\n", "{out:?}");
    assert_eq!(
        std::fs::read_to_string(ws.dir().join("note.txt")).unwrap(),
        "hello\n"
    );
    s.workspaces.delete("sesn_persist").await.unwrap();
    assert!(!ws.dir().exists());
}

#[tokio::test]
async fn system_is_read_only_and_secrets_hidden() {
    let s = setup().await;
    let ws = s.ws("sesn_ro").await;
    let out = s.sh(&ws, "touch /usr/escape").await;
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains("Read-only file system"),
        "{}",
        out.stderr
    );
    let out = s.sh(&ws, "echo x > /etc/passwd").await;
    assert!(!out.success(), "{out:?}");
    let out = s.sh(&ws, "cat /etc/shadow").await;
    assert!(!out.success(), "{out:?}");
    assert!(!out.stdout.contains("root:"), "{}", out.stdout);
    // Ordinary configuration stays readable.
    let out = s.sh(&ws, "head -1 /etc/passwd").await;
    assert!(out.stdout.starts_with("root:"), "{out:?}");
}

#[tokio::test]
async fn data_dir_and_other_workspaces_are_invisible() {
    let s = setup().await;
    let a = s.ws("sesn_a").await;
    let b = s.ws("sesn_b").await;
    std::fs::write(b.dir().join("b-private"), "b's data").unwrap();
    let script = format!(
        "cat {secret}; cat {bfile}; ls {data}; ls /workspace/..; cat ../sesn_b/b-private",
        secret = s.data.join("secret.txt").display(),
        bfile = b.dir().join("b-private").display(),
        data = s.data.display(),
    );
    let out = s.sh(&a, &script).await;
    assert!(!out.stdout.contains("top secret"), "{out:?}");
    assert!(!out.stdout.contains("b's data"), "{out:?}");
    assert!(!out.stdout.contains("sesn_b"), "{out:?}");
    assert!(!out.stdout.contains("workspaces"), "{out:?}");
    assert!(out.stderr.contains("No such file or directory"), "{out:?}");
}

#[tokio::test]
async fn runs_unprivileged() {
    let s = setup().await;
    let ws = s.ws("sesn_id").await;
    let out = s
        .sh(&ws, "id -u; id -g; grep CapEff /proc/self/status")
        .await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "1000", "{out:?}");
    assert_eq!(lines[1], "1000", "{out:?}");
    assert_eq!(lines[2], "CapEff:\t0000000000000000", "{out:?}");
    // No nested user namespaces, so no way to regain capabilities.
    let out = s.sh(&ws, "unshare -Ur id -u").await;
    assert!(!out.success(), "{out:?}");
}

#[tokio::test]
async fn limited_network_cannot_reach_host_loopback() {
    let s = setup().await;
    let ws = s.ws("sesn_net").await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probe = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    let run = |network| {
        s.sandbox.run(
            &ws,
            network,
            Command::shell(probe.clone()).timeout(Duration::from_secs(10)),
        )
    };
    let limited = run(Network::Limited).await.unwrap();
    assert!(!limited.success(), "{limited:?}");
    assert!(!limited.stdout.contains("connected"));
    let open = run(Network::Unrestricted).await.unwrap();
    assert_eq!(open.stdout, "connected\n", "{open:?}");
}

#[tokio::test]
async fn timeout_kills_the_whole_tree() {
    let s = setup().await;
    let ws = s.ws("sesn_timeout").await;
    let start = Instant::now();
    let out = s
        .sandbox
        .run(
            &ws,
            Network::Limited,
            Command::shell("sleep 30 & sleep 30; echo never").timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(out.timed_out, "{out:?}");
    assert!(!out.success());
    assert!(!out.stdout.contains("never"));
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn output_over_the_cap_is_truncated_with_a_marker() {
    let s = setup().await;
    let ws = s.ws("sesn_cap").await;
    let out = s
        .sandbox
        .run(
            &ws,
            Network::Limited,
            Command::shell("head -c 100000 /dev/zero | tr '\\0' a; echo done >&2")
                .output_limit(1000),
        )
        .await
        .unwrap();
    assert!(out.success(), "{out:?}");
    assert!(out.truncated);
    assert!(out.stdout.starts_with(&"a".repeat(1000)));
    assert!(
        out.stdout
            .ends_with("[output truncated: showing the first 1000 of 100000 bytes]\n"),
        "{}",
        &out.stdout[1000..]
    );
    assert_eq!(out.stderr, "done\n");
}

#[tokio::test]
async fn stdin_env_and_exit_codes() {
    let s = setup().await;
    let ws = s.ws("sesn_io").await;
    let out = s
        .sandbox
        .run(
            &ws,
            Network::Limited,
            Command::shell("cat; echo \"$GREETING\"; env | grep -c SECRET_FROM_HOST; exit 3")
                .stdin("from stdin\n")
                .env("GREETING", "hi"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "from stdin\nhi\n0\n", "{out:?}");
    assert_eq!(out.exit_code, Some(3));
    let bad = s
        .sandbox
        .run(
            &ws,
            Network::Limited,
            Command::new(["true"]).env("A=B", "x"),
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidEnv(_))), "{bad:?}");
}

/// A sandbox with small limits, when this machine enforces them with cgroups.
fn small(controller: &str) -> Option<BubblewrapSandbox> {
    let sandbox = BubblewrapSandbox::new(Options {
        limits: Limits {
            memory_bytes: Some(64 << 20),
            max_processes: Some(20),
            ..Limits::default()
        },
        ..Options::default()
    })
    .unwrap();
    let enforced = sandbox.enforcement().contains(controller);
    if !enforced {
        eprintln!(
            "skipped: no {controller} cgroup here: {}",
            sandbox.enforcement()
        );
    }
    enforced.then_some(sandbox)
}

#[tokio::test]
async fn process_limit_applies() {
    let s = setup().await;
    let Some(sandbox) = small("pids") else { return };
    let ws = s.ws("sesn_pids").await;
    let script = "i=0; while [ $i -lt 50 ]; do sleep 2 & i=$((i+1)); done; echo all started";
    let out = sandbox
        .run(&ws, Network::Limited, Command::new(["sh", "-c", script]))
        .await
        .unwrap();
    assert!(!out.stdout.contains("all started"), "{out:?}");
    assert!(out.stderr.contains("fork"), "{out:?}");
}

#[tokio::test]
async fn memory_limit_applies() {
    let s = setup().await;
    let Some(sandbox) = small("memory") else {
        return;
    };
    let ws = s.ws("sesn_mem").await;
    // 200 MB held in one process, over a 64 MB limit.
    let out = sandbox
        .run(
            &ws,
            Network::Limited,
            Command::shell("head -c 200000000 /dev/zero | sort > /dev/null && echo survived"),
        )
        .await
        .unwrap();
    assert!(!out.stdout.contains("survived"), "{out:?}");
    assert!(out.stderr.contains("Killed"), "{out:?}");
}

#[test]
fn missing_bwrap_is_a_typed_error() {
    let err = BubblewrapSandbox::new(Options {
        bwrap: Some("/nonexistent/bwrap".into()),
        ..Options::default()
    })
    .unwrap_err();
    assert!(matches!(err, Error::BwrapNotFound), "{err}");
    assert!(err.to_string().contains("bubblewrap"));
}
