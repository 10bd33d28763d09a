//! The file tools against hostile files, through `tools::run` and a real bubblewrap sandbox:
//! `edit` with `replace_all` cannot amplify a file into gigabytes of memory in this process,
//! and `edit` and `read` refuse files that are not UTF-8 instead of converting them lossily
//! (which, for `edit`, rewrote the file). Files are created by the tools themselves, inside the
//! sandbox, so they are owned as in a real session.

mod support;

use std::path::PathBuf;

use managed_agents_core::agent::tools::DomainRule;
use managed_agents_core::agent::BuiltinTool;
use managed_agents_core::ids::SessionId;
use managed_agents_harness::sandbox::{BubblewrapSandbox, Network, Options, Workspace, Workspaces};
use managed_agents_harness::tools::{self, Limits, ShellContext, Shells, ToolOutput};
use serde_json::{json, Map, Value};

struct Setup {
    _dir: tempfile::TempDir,
    workspace: Workspace,
    sandbox: BubblewrapSandbox,
    shells: Shells,
    session: SessionId,
}

impl Setup {
    async fn new(session: &str) -> Self {
        let support::Sandboxed {
            dir,
            workspace,
            sandbox,
        } = support::Sandboxed::new(session).await;
        Self {
            _dir: dir,
            workspace,
            sandbox,
            shells: Shells::default(),
            session: session_id(session),
        }
    }

    async fn run(&self, limits: &Limits, tool: BuiltinTool, input: Value) -> ToolOutput {
        let Value::Object(input) = input else {
            panic!("tool input must be an object")
        };
        let input: Map<String, Value> = input;
        let cx = ShellContext {
            shells: &self.shells,
            session: &self.session,
            sandbox: &self.sandbox,
            workspace: &self.workspace,
            network: Network::Isolated,
        };
        tools::run(&cx, limits, tool, &input, &DomainRule::Any).await
    }

    async fn bash(&self, command: &str) {
        let out = self
            .run(
                &Limits::default(),
                BuiltinTool::Bash,
                json!({ "command": command }),
            )
            .await;
        assert!(!out.is_error, "{command}: {}", out.text());
    }

    fn host_path(&self, name: &str) -> PathBuf {
        self.workspace.dir().join(name)
    }
}

fn session_id(name: &str) -> SessionId {
    SessionId::parse(&format!("sesn_{}", name.trim_start_matches("sesn_"))).expect("a session id")
}

/// `VmHWM` (peak resident set) of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM in kB");
    kb * 1024
}

#[tokio::test]
async fn replace_all_amplification_is_refused_with_bounded_memory() {
    let setup = Setup::new("sesn_amplify").await;
    // 1,000,000 bytes of `x`: every byte is a match.
    setup
        .bash("head -c 1000000 /dev/zero | tr '\\0' x > big.txt")
        .await;
    let before_file = std::fs::read(setup.host_path("big.txt")).unwrap();
    assert_eq!(before_file.len(), 1_000_000);

    // A cap above the file's size, so the result's size is what is refused.
    let roomy = Limits {
        file_bytes: 2_000_000,
        ..Limits::default()
    };
    // Reset the peak ("5" to clear_refs), so VmHWM measures this edit alone.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = peak_rss();
    let out = setup
        .run(
            &roomy,
            BuiltinTool::Edit,
            json!({"path": "big.txt", "old_string": "x", "new_string": "y".repeat(1000), "replace_all": true}),
        )
        .await;
    let grown = peak_rss().saturating_sub(before);

    assert!(out.is_error, "the 1 GB edit was accepted: {}", out.text());
    assert!(
        out.text().contains("would make the file 1000000000 bytes")
            && out.text().contains("the file was not modified"),
        "{}",
        out.text()
    );
    assert!(
        grown < 64 << 20,
        "peak memory grew by {grown} bytes during the refused edit"
    );
    assert!(
        std::fs::read(setup.host_path("big.txt")).unwrap() == before_file,
        "the file changed"
    );

    // The same kind of edit within the cap still works, all occurrences at once.
    let small = Limits {
        file_bytes: 3_000,
        ..Limits::default()
    };
    setup
        .bash("head -c 1000 /dev/zero | tr '\\0' x > small.txt")
        .await;
    let ok = setup
        .run(
            &small,
            BuiltinTool::Edit,
            json!({"path": "small.txt", "old_string": "x", "new_string": "yyy", "replace_all": true}),
        )
        .await;
    assert_eq!(
        (ok.is_error, ok.text().as_str()),
        (false, "edited small.txt (1000 replacement(s))")
    );
    assert_eq!(
        std::fs::read(setup.host_path("small.txt")).unwrap(),
        vec![b'y'; 3_000]
    );
    // One more byte would cross the cap: refused, unchanged.
    let over = setup
        .run(
            &small,
            BuiltinTool::Edit,
            json!({"path": "small.txt", "old_string": "yyy", "new_string": "yyyy", "replace_all": true}),
        )
        .await;
    assert!(over.is_error && over.text().contains("would make the file 4000 bytes"));
    assert_eq!(
        std::fs::read(setup.host_path("small.txt")).unwrap(),
        vec![b'y'; 3_000]
    );
}

#[tokio::test]
async fn edit_refuses_a_file_over_the_cap_without_reading_it() {
    let setup = Setup::new("sesn_bigfile").await;
    setup
        .bash("head -c 5000 /dev/zero | tr '\\0' a > big.txt")
        .await;
    let limits = Limits {
        file_bytes: 4_096,
        ..Limits::default()
    };
    let out = setup
        .run(
            &limits,
            BuiltinTool::Edit,
            json!({"path": "big.txt", "old_string": "a", "new_string": "b"}),
        )
        .await;
    assert!(out.is_error);
    assert!(
        out.text()
            .contains("edit: big.txt is 5000 bytes, exceeds 4096-byte limit"),
        "{}",
        out.text()
    );
    assert_eq!(
        std::fs::read(setup.host_path("big.txt")).unwrap(),
        vec![b'a'; 5_000]
    );
}

#[tokio::test]
async fn edit_and_read_refuse_non_utf8_files_and_leave_them_unchanged() {
    let setup = Setup::new("sesn_binary").await;
    // Valid text around two bytes that are not UTF-8, and a NUL.
    setup
        .bash("printf 'head \\377\\376 old_string tail\\000\\n' > blob.bin")
        .await;
    let original = std::fs::read(setup.host_path("blob.bin")).unwrap();
    assert_eq!(original, b"head \xff\xfe old_string tail\x00\n");

    let edit = setup
        .run(
            &Limits::default(),
            BuiltinTool::Edit,
            json!({"path": "blob.bin", "old_string": "old_string", "new_string": "new_string"}),
        )
        .await;
    assert!(edit.is_error, "edited a binary file: {}", edit.text());
    assert!(
        edit.text() == "edit: blob.bin: not valid UTF-8 text (cannot edit binary files)",
        "{}",
        edit.text()
    );
    assert_eq!(
        std::fs::read(setup.host_path("blob.bin")).unwrap(),
        original,
        "the binary file was rewritten"
    );

    let read = setup
        .run(
            &Limits::default(),
            BuiltinTool::Read,
            json!({"path": "blob.bin"}),
        )
        .await;
    assert!(read.is_error, "read returned lossy text: {:?}", read.text());
    assert!(read.text().contains("not valid UTF-8"), "{}", read.text());

    // Controls: UTF-8 text (multi-byte characters included) is read and edited as before.
    setup
        .bash("printf 'caf\\303\\251 old_string\\nline two\\n' > text.txt")
        .await;
    let read = setup
        .run(
            &Limits::default(),
            BuiltinTool::Read,
            json!({"path": "text.txt"}),
        )
        .await;
    assert_eq!(
        (read.is_error, read.text().as_str()),
        (false, "café old_string\nline two\n")
    );
    let edit = setup
        .run(
            &Limits::default(),
            BuiltinTool::Edit,
            json!({"path": "text.txt", "old_string": "old_string", "new_string": "new"}),
        )
        .await;
    assert_eq!(
        (edit.is_error, edit.text().as_str()),
        (false, "edited text.txt (1 replacement(s))")
    );
    assert_eq!(
        std::fs::read_to_string(setup.host_path("text.txt")).unwrap(),
        "café new\nline two\n"
    );
}

/// A workspace with a quota of 16 MiB, filled up by `bash`: `write` and
/// `edit` that do not fit fail with the quota's error, and the file they were replacing keeps
/// its whole old content (the new bytes go to a temporary file first; before, `cat > file`
/// truncated it and then ran out of space).
#[tokio::test]
async fn a_write_that_hits_the_quota_leaves_the_old_file_whole() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let workspaces = Workspaces::new(dir.path().join("workspaces")).with_quota(Some(16 << 20));
    let workspace = workspaces.create("sesn_quota_write").await.unwrap();
    let setup = Setup {
        _dir: dir,
        workspace,
        sandbox: BubblewrapSandbox::new(Options::default()).unwrap(),
        shells: Shells::default(),
        session: session_id("quotawrite"),
    };
    let old = "old line\n".repeat(100_000); // 900 KB
    let wrote = setup
        .run(
            &Limits::default(),
            BuiltinTool::Write,
            json!({"path": "keep.txt", "content": old}),
        )
        .await;
    assert!(!wrote.is_error, "{}", wrote.text());
    // Fill the workspace up: no room for a second copy of the file.
    setup
        .bash("dd if=/dev/zero of=fill bs=1M count=64 2>/dev/null; sync")
        .await;
    let bigger = "new line!\n".repeat(200_000); // 2 MB
    let out = setup
        .run(
            &Limits::default(),
            BuiltinTool::Write,
            json!({"path": "keep.txt", "content": bigger}),
        )
        .await;
    let large_files = Limits {
        file_bytes: 4 << 20,
        ..Limits::default()
    };
    let edit = setup
        .run(
            &large_files,
            BuiltinTool::Edit,
            json!({"path": "keep.txt", "old_string": "old line", "new_string": "a longer replacement line", "replace_all": true}),
        )
        .await;
    let kept = std::fs::read_to_string(setup.host_path("keep.txt")).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(setup.workspace.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("keep.txt."))
        .collect();
    let enforced = setup.workspace.quota().is_some();
    workspaces.unmount_all();
    assert!(
        enforced,
        "quotas are enforced when the tests run as root, as in CI"
    );
    assert!(out.is_error, "the write should not fit: {}", out.text());
    assert!(edit.is_error, "the edit should not fit: {}", edit.text());
    assert!(out.text().contains("quota"), "{}", out.text());
    assert_eq!(kept, old, "the old content must survive a failed write");
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
