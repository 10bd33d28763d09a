//! Set-up shared by the harness's integration tests: a private temporary directory the
//! sandbox's uid can traverse, and a real bubblewrap sandbox with a session workspace in it.

#![allow(dead_code, unreachable_pub)]

use std::os::unix::fs::PermissionsExt;

use managed_agents_harness::sandbox::{BubblewrapSandbox, Options, Workspace, Workspaces};

/// A fresh directory under cargo's test temp dir, mode 0711 (the sandbox's uid may traverse it
/// to its workspace, but not list it).
pub fn temp_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("chmod 0711");
    dir
}

/// A sandbox with default options and the workspace of `session` under a fresh [`temp_dir`].
pub struct Sandboxed {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The session's workspace.
    pub workspace: Workspace,
    /// The sandbox.
    pub sandbox: BubblewrapSandbox,
}

impl Sandboxed {
    pub async fn new(session: &str) -> Self {
        let dir = temp_dir();
        let workspaces = Workspaces::new(dir.path().join("workspaces"));
        let workspace = workspaces.create(session).await.expect("a workspace");
        let sandbox = BubblewrapSandbox::new(Options::default()).expect("bubblewrap");
        Self {
            dir,
            workspace,
            sandbox,
        }
    }
}
