//! Extra host directories a session's sandbox sees besides `/workspace`: skills, uploaded
//! files, an environment's package layer, an outputs directory. A [`Bind`] names a host
//! directory (or file) and where it appears inside the sandbox; [`Workspace::with_bind`]
//! (see `workspace.rs`) attaches it to every command and process of that workspace.
//!
//! Targets are checked before anything runs: an absolute, normalized path that covers none of
//! the sandbox's own structure (`/`, `/workspace` itself, the system directories, `/proc`,
//! `/dev`, `/tmp`, the door, the agent runtimes). A path under `/workspace` is allowed: it is
//! mounted after the workspace, over the directory there.
//!
//! [`Workspace::with_bind`]: super::Workspace::with_bind

use std::path::{Path, PathBuf};

use super::Error;

/// One host path bound into the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bind {
    /// The host directory or file. Its own permissions apply to the sandbox's uid.
    pub host: PathBuf,
    /// Where it appears inside the sandbox (absolute).
    pub target: PathBuf,
    /// Whether the sandbox may write through it.
    pub writable: bool,
}

impl Bind {
    /// `host` visible read-only at `target`.
    pub fn read_only(host: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: false,
        }
    }

    /// `host` visible read-write at `target` (it must be writable by the workspace's owner).
    pub fn writable(host: impl Into<PathBuf>, target: impl Into<PathBuf>) -> Self {
        Self {
            host: host.into(),
            target: target.into(),
            writable: true,
        }
    }

    /// Refuse a bind whose target would cover the sandbox's own structure, or whose host path
    /// is not absolute or does not exist.
    pub(crate) fn check(&self) -> Result<(), Error> {
        let refuse = |why: &str| {
            Err(Error::InvalidBind(format!(
                "{} -> {}: {why}",
                self.host.display(),
                self.target.display()
            )))
        };
        if !self.host.is_absolute() {
            return refuse("the host path must be absolute");
        }
        if std::fs::symlink_metadata(&self.host).is_err() {
            return refuse("the host path does not exist");
        }
        if !is_normal_absolute(&self.target) {
            return refuse("the target must be an absolute path without `.` or `..`");
        }
        if self.target == Path::new("/") || self.target == Path::new("/workspace") {
            return refuse("the target would cover the sandbox's root or its workspace");
        }
        if RESERVED.iter().any(|r| self.target.starts_with(r)) {
            return refuse("the target is inside a directory the sandbox itself provides");
        }
        Ok(())
    }
}

/// Sandbox directories a bind may not cover or enter.
const RESERVED: [&str; 14] = [
    "/proc",
    "/dev",
    "/usr",
    "/etc",
    "/tmp",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/run/managed-agents",
    "/run/managed-agents-trust",
    crate::runtimes::MOUNT,
];

fn is_normal_absolute(path: &Path) -> bool {
    // On the string: `Path::components` quietly drops `.` and repeated or trailing slashes.
    let Some(rest) = path.to_str().and_then(|p| p.strip_prefix('/')) else {
        return false;
    };
    rest.split('/')
        .all(|segment| !matches!(segment, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &str) -> Result<(), Error> {
        Bind::read_only("/usr", t).check()
    }

    #[test]
    fn targets_that_cover_the_sandbox_structure_are_refused() {
        for bad in [
            "/",
            "/workspace",
            "relative",
            "/mnt/../etc",
            "/mnt/./x",
            "/proc/1",
            "/etc",
            "/tmp/x",
            "/usr/local",
            "/run/managed-agents/door.sock",
            "/opt/managed-agents/runtimes/claude",
            "/mnt/x/",
            "/mnt//x",
        ] {
            assert!(
                matches!(target(bad), Err(Error::InvalidBind(_))),
                "{bad} allowed"
            );
        }
    }

    #[test]
    fn ordinary_targets_are_allowed() {
        for good in [
            "/mnt/session/uploads/file_1",
            "/mnt/skills/report",
            "/workspace/repo",
            "/opt/managed-agents/env",
            "/run/managed-agents-other",
        ] {
            assert!(target(good).is_ok(), "{good} refused");
        }
    }

    #[test]
    fn host_paths_must_be_absolute_and_exist() {
        assert!(Bind::read_only("usr", "/mnt/x").check().is_err());
        assert!(Bind::read_only("/does/not/exist", "/mnt/x")
            .check()
            .is_err());
    }
}
