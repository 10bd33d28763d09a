//! The bubblewrap sandbox with real `bwrap`: persistence, confinement, identity, network,
//! timeouts, output caps, seccomp, per-session uids, quotas and a bounded `/tmp`, with a data
//! dir whose every ancestor is private (mode 0700, root-owned when the tests run as root).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

mod support;

use managed_agents_harness::door::Policy;
use managed_agents_harness::sandbox::{
    Bind, BubblewrapSandbox, Command, Error, Limits, Network, Options, Output, Sandbox, UidRange,
    Workspace, Workspaces,
};

/// The quota of the test workspaces.
const QUOTA: u64 = 64 << 20;

/// A private data dir outside `/tmp` (the sandbox's `/tmp` is private anyway), with a secret in
/// it and session workspaces with a quota (enforced when the tests run as root).
struct Setup {
    dir: tempfile::TempDir,
    data: PathBuf,
    workspaces: Workspaces,
    sandbox: BubblewrapSandbox,
}

impl Drop for Setup {
    fn drop(&mut self) {
        // Before the temporary directory goes: nothing may stay mounted in it.
        self.workspaces.unmount_all();
    }
}

fn root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

async fn setup() -> Setup {
    setup_with(Options::default(), Some(QUOTA)).await
}

async fn setup_with(options: Options, quota: Option<u64>) -> Setup {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // Like a data dir in a home directory: nobody else may even pass through.
    for d in [dir.path(), &data] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::write(data.join("secret.txt"), "top secret").unwrap();
    let workspaces = Workspaces::new(data.join("workspaces"))
        .with_quota(quota)
        .with_uids(options.host_uids);
    Setup {
        sandbox: BubblewrapSandbox::new(options).unwrap(),
        dir,
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
                Network::Isolated,
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
async fn extra_binds_and_variables_reach_every_command() {
    let s = setup().await;
    let ws = s.ws("sesn_binds").await;
    // Host content inside the private data dir (0700 all the way up): read-only skills, a
    // single uploaded file, and an outputs directory the workspace's owner may write.
    let skills = s.data.join("skills/report");
    std::fs::create_dir_all(&skills).unwrap();
    std::fs::write(skills.join("SKILL.md"), "# report\n").unwrap();
    let upload = s.data.join("upload.bin");
    std::fs::write(&upload, "uploaded bytes").unwrap();
    for (path, mode) in [
        (s.data.join("skills"), 0o755),
        (skills.clone(), 0o755),
        (skills.join("SKILL.md"), 0o644),
        (upload.clone(), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let outputs = s.data.join("outputs");
    std::fs::create_dir(&outputs).unwrap();
    let owner = ws.owner_uid().unwrap();
    std::os::unix::fs::chown(&outputs, Some(owner), Some(owner)).unwrap();
    let ws = ws
        .with_bind(Bind::read_only(&skills, "/mnt/skills/report"))
        .with_bind(Bind::read_only(&upload, "/mnt/session/uploads/file_1"))
        .with_bind(Bind::writable(&outputs, "/mnt/session/outputs"))
        .with_bind(Bind::read_only(&skills, "/workspace/.skills/report"))
        .with_env("LAYER_PATH", "/opt/layer/bin");

    let out = s
        .sh(
            &ws,
            "cat /mnt/skills/report/SKILL.md /mnt/session/uploads/file_1; echo; \
             echo \"$LAYER_PATH\"; cat /workspace/.skills/report/SKILL.md; \
             echo made > /mnt/session/outputs/result.txt && echo wrote",
        )
        .await;
    assert!(out.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        "# report\nuploaded bytes\n/opt/layer/bin\n# report\nwrote\n"
    );
    assert_eq!(
        std::fs::read_to_string(outputs.join("result.txt")).unwrap(),
        "made\n"
    );
    for attempt in [
        "echo x > /mnt/skills/report/SKILL.md",
        "echo x > /mnt/skills/report/new",
        "echo x > /mnt/session/uploads/file_1",
        "rm /workspace/.skills/report/SKILL.md",
    ] {
        let out = s.sh(&ws, attempt).await;
        assert!(!out.success(), "{attempt}: {out:?}");
        assert!(
            out.stderr.contains("Read-only file system"),
            "{attempt}: {out:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(skills.join("SKILL.md")).unwrap(),
        "# report\n"
    );
    // A command's own variable wins over the workspace's.
    let out = s
        .sandbox
        .run(
            &ws,
            Network::Isolated,
            Command::shell("echo $LAYER_PATH").env("LAYER_PATH", "own"),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "own\n", "{out:?}");
}

#[tokio::test]
async fn a_bind_over_the_sandbox_structure_is_refused() {
    let s = setup().await;
    let ws = s.ws("sesn_badbind").await;
    for target in [
        "/etc/passwd",
        "/workspace",
        "/mnt/../usr",
        "/run/managed-agents/x",
    ] {
        let bad = ws.clone().with_bind(Bind::read_only(&s.data, target));
        let err = s
            .sandbox
            .run(&bad, Network::Isolated, Command::shell("true"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidBind(_)), "{target}: {err}");
    }
    let missing = ws.with_bind(Bind::read_only(s.data.join("nothing"), "/mnt/x"));
    let err = s
        .sandbox
        .run(&missing, Network::Isolated, Command::shell("true"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
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
async fn the_door_is_the_only_way_out() {
    let s = setup().await;
    let ws = s.ws("sesn_net").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.2:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nhello\n",
                )
                .await;
        }
    });
    let run = |network, script: String| {
        s.sandbox.run(
            &ws,
            network,
            Command::shell(script).timeout(Duration::from_secs(20)),
        )
    };
    let direct = format!("exec 3<>/dev/tcp/127.0.0.2/{port} && echo connected");
    let isolated = run(Network::Isolated, direct.clone()).await.unwrap();
    assert!(!isolated.success(), "{isolated:?}");
    assert!(!isolated.stdout.contains("connected"));

    let door = support::door(&s.data);
    let open = support::open(&door, "sesn_net", &ws, Policy::Unrestricted);
    // Ignoring the proxy leads nowhere.
    let ignored = run(open.clone(), direct).await.unwrap();
    assert!(!ignored.success(), "{ignored:?}");
    assert!(!ignored.stdout.contains("connected"));
    // Through the proxy the destination is reached, and the variables are set.
    let proxied = run(
        open.clone(),
        format!("echo \"$HTTP_PROXY $https_proxy $NO_PROXY\"; curl -sS http://127.0.0.2:{port}/ && curl -sS -p http://127.0.0.2:{port}/"),
    )
    .await
    .unwrap();
    assert_eq!(
        proxied.stdout,
        "http://127.0.0.1:3128 http://127.0.0.1:3128 127.0.0.1,localhost\nhello\nhello\n",
        "{proxied:?}"
    );
    // The command's exit status comes through the relay.
    let status = run(open.clone(), "exit 7".into()).await.unwrap();
    assert_eq!(status.exit_code, Some(7), "{status:?}");

    // A timeout still kills everything: the relay, the command and what it left behind.
    let marker = format!("{}", 40000 + std::process::id() % 9999);
    let out = s
        .sandbox
        .run(
            &ws,
            open,
            Command::shell(format!("sleep {marker} & sleep {marker}; echo never"))
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap();
    assert!(out.timed_out && !out.stdout.contains("never"), "{out:?}");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        // The relay's own arguments carry the marker too.
        .filter(|c| c.contains(&format!("sleep {marker}")))
        .collect();
    assert!(left.is_empty(), "left running: {left:?}");
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
            Network::Isolated,
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
            Network::Isolated,
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
            Network::Isolated,
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
            Network::Isolated,
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
        .run(&ws, Network::Isolated, Command::new(["sh", "-c", script]))
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
            Network::Isolated,
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

#[tokio::test]
async fn works_when_every_ancestor_of_the_workspace_is_private() {
    // With and without a quota (an image mounted on the workspace, or a plain directory).
    for quota in [Some(QUOTA), None] {
        let s = setup_with(Options::default(), quota).await;
        let ws = s.ws("sesn_private").await;
        for dir in [s.dir.path(), &s.data, s.workspaces.root()] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        let out = s.sh(&ws, "echo written > f && cat f").await;
        assert_eq!(out.stdout, "written\n", "quota {quota:?}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(ws.dir().join("f")).unwrap(),
            "written\n"
        );
    }
}

#[tokio::test]
async fn seccomp_denies_what_agents_never_need() {
    let s = setup().await;
    let ws = s.ws("sesn_seccomp").await;
    let out = s.sh(&ws, "grep '^Seccomp:' /proc/self/status").await;
    assert_eq!(out.stdout, "Seccomp:\t2\n", "{out:?}");
    // Each call prints its errno (0 when it succeeded).
    let probe = r#"
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    ctypes.set_errno(0)
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    return 0 if r >= 0 else ctypes.get_errno()
print("keyctl", call(250, 0, -3, 1))        # KEYCTL_GET_KEYRING_ID, session keyring, create
print("userfaultfd", call(323, 1))          # UFFD_USER_MODE_ONLY
print("unshare", call(272, 0x20000))        # CLONE_NEWNS
print("mount", call(165, 0, 0, 0, 0, 0))
print("x32", call(0x40000000 + 39))         # getpid through the x32 ABI
t = threading.Thread(target=lambda: print("thread ok"))
t.start(); t.join()
"#;
    let out = s
        .sandbox
        .run(
            &ws,
            Network::Isolated,
            Command::new(["python3", "-c", probe]).timeout(Duration::from_secs(20)),
        )
        .await
        .unwrap();
    for name in ["keyctl", "userfaultfd", "unshare", "mount", "x32"] {
        // EPERM is 1.
        assert!(
            out.stdout.contains(&format!("{name} 1\n")),
            "{name} must fail with EPERM: {out:?}"
        );
    }
    // Threads (clone3 answers ENOSYS, glibc falls back to clone) and processes still work.
    assert!(out.stdout.contains("thread ok"), "{out:?}");
    let out = s.sh(&ws, "unshare --user --map-root-user id -u").await;
    assert!(!out.success(), "{out:?}");
    assert!(out.stderr.contains("Operation not permitted"), "{out:?}");
}

#[tokio::test]
async fn sessions_run_as_different_host_uids_that_survive_a_restart() {
    if !root() {
        eprintln!("skipped: per-session uids need root");
        return;
    }
    let s = setup_with(
        Options {
            host_uids: UidRange::new(61000, 61009).unwrap(),
            ..Options::default()
        },
        Some(QUOTA),
    )
    .await;
    let a = s.ws("sesn_uid_a").await;
    let b = s.ws("sesn_uid_b").await;
    // What a command creates belongs to its session's host uid (inside, everyone is 1000).
    let host_uid = |ws: &Workspace| std::fs::metadata(ws.dir().join("mine")).unwrap().uid();
    for ws in [&a, &b] {
        let out = s.sh(ws, "touch mine && id -u").await;
        assert_eq!(out.stdout, "1000\n", "{out:?}");
    }
    let (uid_a, uid_b) = (host_uid(&a), host_uid(&b));
    assert_ne!(uid_a, uid_b);
    for uid in [uid_a, uid_b] {
        assert!((61000..=61009).contains(&uid), "{uid}");
    }
    // A restart: images unmounted, a new `Workspaces`; the session keeps its uid and files.
    s.workspaces.unmount_all();
    assert!(!a.dir().join("mine").exists());
    let again = Workspaces::new(s.workspaces.root())
        .with_quota(Some(QUOTA))
        .with_uids(UidRange::new(61000, 61009).unwrap());
    let a2 = again.create("sesn_uid_a").await.unwrap();
    let out = s.sh(&a2, "test -e mine && touch mine2 && echo kept").await;
    assert_eq!(out.stdout, "kept\n", "{out:?}");
    assert_eq!(
        std::fs::metadata(a2.dir().join("mine2")).unwrap().uid(),
        uid_a
    );
}

#[tokio::test]
async fn the_host_environment_and_data_path_do_not_leak_in() {
    let s = setup().await;
    let ws = s.ws("sesn_leak").await;
    let cwd = std::env::current_dir().unwrap();
    let out = s
        .sh(
            &ws,
            "tr '\\0' '\\n' < /proc/1/environ; echo ---; cat /proc/self/mountinfo; echo ---; \
             tr '\\0' '\\n' < /proc/self/environ; echo ---; cat /proc/1/cmdline; echo ---; \
             ls /proc/self/fd",
        )
        .await;
    assert!(out.success(), "{out:?}");
    let parts: Vec<&str> = out.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{out:?}");
    // The sandbox's pid 1 (bwrap) started with an empty environment.
    assert_eq!(parts[0], "", "/proc/1/environ: {}", parts[0]);
    if root() {
        // (A server that is not root binds the workspace's host path, which then shows.)
        let host_paths = [
            s.data.display().to_string(),
            s.dir.path().display().to_string(),
            cwd.display().to_string(),
        ];
        for path in &host_paths {
            for (name, text) in [("mountinfo", parts[1]), ("cmdline", parts[3])] {
                assert!(!text.contains(path.as_str()), "{name} names {path}: {text}");
            }
        }
        // The workspace is its image's root on a loop device.
        let line = parts[1]
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/workspace"))
            .unwrap_or_default();
        assert!(
            line.split(' ').nth(3) == Some("/") && line.contains("/dev/loop"),
            "{line}"
        );
    }
    // The command's own environment is the sandbox's (and what bash adds).
    for line in parts[2].lines() {
        let name = line.split_once('=').map_or(line, |(k, _)| k);
        assert!(
            ["HOME", "LANG", "PATH", "TMPDIR", "SHLVL", "PWD", "OLDPWD", "_"].contains(&name),
            "{line}"
        );
    }
    // Nothing but stdio (and `ls`'s own directory) is open: no descriptor of the launcher.
    assert_eq!(
        parts[4].split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
}

#[tokio::test]
async fn the_workspace_quota_bounds_the_host_disk_and_says_so() {
    if !root() {
        eprintln!("skipped: workspace quotas need root");
        return;
    }
    let s = setup().await;
    let ws = s.ws("sesn_quota").await;
    assert_eq!(ws.quota(), Some(QUOTA));
    let image = s.workspaces.root().join("sesn_quota.img");
    let host_bytes = || std::fs::metadata(&image).unwrap().blocks() * 512;
    let out = s
        .sh(&ws, "fallocate -l 4G big; dd if=/dev/urandom of=more bs=1M count=200 2>&1 | tail -1; df -k /workspace | tail -1")
        .await;
    assert!(out.stderr.contains("No space left on device"), "{out:?}");
    assert!(
        out.stderr
            .contains("sandbox: the workspace quota is reached: /workspace is limited to"),
        "{out:?}"
    );
    // The image never takes more host disk than the quota.
    assert!(host_bytes() <= QUOTA, "{} > {QUOTA}", host_bytes());
    // Deleted files give their space back to the host (discard).
    let out = s
        .sh(
            &ws,
            "rm -f big more; head -c 30000000 /dev/urandom > data && sync",
        )
        .await;
    assert!(out.success(), "{out:?}");
    let full = host_bytes();
    assert!(full >= 30_000_000, "{full}");
    let out = s.sh(&ws, "rm data && sync && echo gone").await;
    assert_eq!(out.stdout, "gone\n", "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_bytes() > full - 20_000_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        host_bytes() <= full - 20_000_000,
        "{} of {full}",
        host_bytes()
    );
    // Deleting the session removes the image and its mount.
    s.workspaces.delete("sesn_quota").await.unwrap();
    assert!(!image.exists() && !ws.dir().exists());
}

#[tokio::test]
async fn tmp_is_a_bounded_tmpfs() {
    let s = setup_with(
        Options {
            limits: Limits {
                tmp_bytes: Some(8 << 20),
                ..Limits::default()
            },
            ..Options::default()
        },
        Some(QUOTA),
    )
    .await;
    let ws = s.ws("sesn_tmp").await;
    let out = s
        .sh(
            &ws,
            "df -k /tmp | tail -1; head -c 20000000 /dev/zero > /tmp/x",
        )
        .await;
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stdout.split_whitespace().nth(1) == Some("8192"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("/tmp is limited to 8.0 MiB and emptied when its sandbox ends"),
        "{out:?}"
    );
    if root() {
        assert!(
            out.stderr
                .contains("/workspace is limited to 64.0 MiB by the workspace quota"),
            "{out:?}"
        );
    }
}
