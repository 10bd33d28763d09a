//! The data directory is private to the server's user: [`restrict_umask`] makes everything the
//! process creates (RocksDB files, file bytes, the secret key, session workspaces) 0600/0700,
//! and [`prepare`] creates the directory 0700 or tightens an existing one, so other local users
//! can neither list nor read event logs, files or secrets.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// The permission bits the process never grants: everything for group and other.
pub const UMASK: u32 = 0o077;

/// Sets the process umask to [`UMASK`]; call it first in `main`, before any thread or file
/// exists. Sandboxed commands inherit it.
pub fn restrict_umask() {
    let _previous = rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// What [`prepare`] did about an existing directory's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// The directory was created, or already private.
    Private,
    /// The directory was open to group or other; it is now 0700 (it held this mode).
    Tightened(u32),
}

/// Creates `dir` (and missing parents) with mode 0700, or removes the group and other bits of
/// an existing `dir`.
pub fn prepare(dir: &Path) -> std::io::Result<Prepared> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(Prepared::Private);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    Ok(Prepared::Tightened(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_private_and_tightens_an_open_directory() {
        let base = tempfile::tempdir().expect("tempdir");
        let fresh = base.path().join("a/b");
        assert_eq!(prepare(&fresh).expect("create"), Prepared::Private);
        let mode = std::fs::metadata(&fresh)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        let open = base.path().join("open");
        std::fs::create_dir(&open).expect("mkdir");
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_eq!(prepare(&open).expect("tighten"), Prepared::Tightened(0o755));
        let mode = std::fs::metadata(&open).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
