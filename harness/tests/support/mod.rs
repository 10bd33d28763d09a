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

/// A door for tests: sockets under `dir`, the harness's `sandbox-relay` bin as the relay, and
/// private destinations allowed (the test servers listen on loopback).
pub fn door(dir: &std::path::Path) -> managed_agents_harness::door::Door {
    managed_agents_harness::door::Door::new(managed_agents_harness::door::DoorOptions {
        dir: dir.join("doors"),
        relay: env!("CARGO_BIN_EXE_sandbox-relay").into(),
        allow_private: true,
        api_addrs: Vec::new(),
    })
    .expect("a door")
}

/// Registers `policy` for `session` on `door` and returns the network reaching it.
pub fn open(
    door: &managed_agents_harness::door::Door,
    session: &str,
    workspace: &Workspace,
    policy: managed_agents_harness::door::Policy,
) -> managed_agents_harness::sandbox::Network {
    let id = managed_agents_core::ids::SessionId::parse(session).expect("a session id");
    door.register(
        managed_agents_harness::door::SessionDoor::new(id, policy),
        workspace,
    )
    .expect("a registered door")
}
