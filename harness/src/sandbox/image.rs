//! Workspace quotas: a workspace with a quota is an ext4 filesystem in a sparse image file of
//! exactly the quota's size (`<root>/<session>.img`), loop-mounted (`nosuid,nodev`) on the
//! workspace directory while the server runs.
//!
//! Why this mechanism: the image file can never grow past its length, so the host disk a
//! workspace takes is bounded whatever runs inside (many files, `fallocate`, sparse tricks,
//! inodes): the filesystem inside simply fills up and writes fail with `ENOSPC`. It needs no
//! quota support from the host filesystem (ext4 project quotas need the `project` feature and
//! a `prjquota` mount, which a running root filesystem rarely has), it persists (the image is
//! an ordinary file in the data dir, mounted again after a restart), and the mount's root is the
//! image's root, so `/proc/self/mountinfo` in the sandbox names `/dev/loopN`, not a host path.
//! It needs root (`mount`) and the standard `mkfs.ext4`, `mount` and `umount` programs.
//!
//! Images are sparse and mounted with `discard`, so the host pays for what is stored, not for
//! the quota: a fresh 10 GiB image takes about 4 MB, and deleted files give their space back.
//! The inode tables are never zeroed (`lazy_itable_init` with `noinit_itable`) for the same
//! reason. The usable space is a little below the quota (ext4's own metadata and journal live
//! in the image too); an image keeps the size it was made with when the quota changes later.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::Error;

/// The smallest quota that leaves room for ext4's metadata and a useful workspace.
pub const MIN_QUOTA: u64 = 16 << 20;

/// The programs images need, found on `PATH` (or the usual system directories).
#[derive(Clone, Debug)]
pub(crate) struct Tools {
    mkfs: PathBuf,
    mount: PathBuf,
    umount: PathBuf,
}

impl Tools {
    pub(crate) fn find() -> Result<Self, Error> {
        let find = |name: &str| {
            super::which(name).ok_or_else(|| Error::Spawn {
                program: name.into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "workspace quotas need mkfs.ext4 (e2fsprogs), mount and umount (util-linux)",
                ),
            })
        };
        Ok(Self {
            mkfs: find("mkfs.ext4")?,
            mount: find("mount")?,
            umount: find("umount")?,
        })
    }

    /// Make an image of `bytes` owned (at its root) by `uid`:`uid`, atomically: it is built
    /// under a temporary name and renamed into place, so a crash never leaves a half-made
    /// image at `image`.
    pub(crate) async fn make(&self, image: &Path, bytes: u64, uid: u32) -> Result<(), Error> {
        let fail = |message: String| Error::Mount {
            path: image.to_owned(),
            message,
        };
        let tmp = image.with_extension("img.new");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail(e.to_string()))?;
        file.set_len(bytes).map_err(|e| fail(e.to_string()))?;
        drop(file);
        let extended =
            format!("root_owner={uid}:{uid},lazy_itable_init=1,lazy_journal_init=1,nodiscard");
        let args: Vec<&std::ffi::OsStr> = vec![
            "-q".as_ref(),
            "-F".as_ref(),
            "-m".as_ref(),
            "0".as_ref(),
            "-E".as_ref(),
            extended.as_ref(),
            tmp.as_os_str(),
        ];
        if let Err(e) = run(&self.mkfs, &args).await {
            let _ = std::fs::remove_file(&tmp);
            return Err(fail(e));
        }
        std::fs::rename(&tmp, image).map_err(|e| fail(e.to_string()))
    }

    /// Loop-mount `image` on `dir`.
    pub(crate) async fn mount(&self, image: &Path, dir: &Path) -> Result<(), Error> {
        let args: Vec<&std::ffi::OsStr> = vec![
            "-t".as_ref(),
            "ext4".as_ref(),
            "-o".as_ref(),
            "loop,nosuid,nodev,noatime,discard,noinit_itable,errors=remount-ro".as_ref(),
            image.as_os_str(),
            dir.as_os_str(),
        ];
        run(&self.mount, &args)
            .await
            .map_err(|message| Error::Mount {
                path: image.to_owned(),
                message,
            })
    }

    /// Unmount `dir`; when something still uses it (a command being killed), detach it lazily:
    /// it goes away, and the loop device with it, once the last user is gone.
    pub(crate) fn unmount(&self, dir: &Path) -> Result<(), Error> {
        let attempt = |lazy: bool| {
            let mut command = std::process::Command::new(&self.umount);
            if lazy {
                command.arg("-l");
            }
            command
                .arg(dir)
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| e.to_string())
                .and_then(|out| {
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
                    }
                })
        };
        attempt(false)
            .or_else(|_| attempt(true))
            .map_err(|message| Error::Mount {
                path: dir.to_owned(),
                message,
            })
    }
}

/// Whether a filesystem is mounted on `dir` (its device differs from its parent's).
pub(crate) fn is_mounted(dir: &Path) -> bool {
    let Some(parent) = dir.parent() else {
        return false;
    };
    match (std::fs::metadata(dir), std::fs::metadata(parent)) {
        (Ok(d), Ok(p)) => d.dev() != p.dev(),
        _ => false,
    }
}

/// Size and free space (for unprivileged users) of the filesystem holding `dir`.
pub(crate) fn space(dir: &Path) -> Option<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some((
        stat.f_blocks.saturating_mul(stat.f_frsize),
        stat.f_bavail.saturating_mul(stat.f_frsize),
    ))
}

/// `1.5 GiB`, `64.0 MiB`, `512 B`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

async fn run(program: &Path, args: &[&std::ffi::OsStr]) -> Result<(), String> {
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{}: {e}", program.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(64 << 20), "64.0 MiB");
        assert_eq!(human(10 << 30), "10.0 GiB");
    }
}
