//! Workspace snapshots at idle boundaries, so a fork at an idle event restores the workspace
//! exactly as it was then (`POST /v1/sessions/{id}/fork`, [`super::Workspaces::fork_at`]).
//!
//! A session's snapshots live beside its workspace, out of the sandbox's reach:
//! `<root>/<session>.snapshots/<label>/` holds the tree (directories, regular files and
//! symbolic links with their modes, owners and modification times; sockets, pipes and devices
//! are left out), `<label>.manifest` what each file was made from, and `latest` the label of
//! the newest. The label is the id of the `session.status_idle` event the snapshot belongs to.
//!
//! Snapshots are incremental: a file whose inode, change time (`ctime`, which no tool can set
//! back) and size are what the previous snapshot's manifest recorded is a hard link to the
//! previous snapshot's copy; anything else is copied. Snapshot files are never written after
//! they are made, so the links are safe, and a snapshot costs the bytes that changed since the
//! previous one plus a walk of the tree. They are deleted with the session.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file naming the newest snapshot.
const LATEST: &str = "latest";

/// What a snapshot file was made from: the workspace file's inode, change time and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Origin {
    ino: u64,
    ctime_ns: i128,
    size: u64,
}

impl Origin {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            ino: meta.ino(),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            size: meta.len(),
        }
    }
}

/// Relative path (UTF-8 only; other paths are always copied) → origin.
type Manifest = HashMap<String, Origin>;

/// Whether `label` can name a snapshot (an event id: letters, digits, `_`, `-`).
pub(super) fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 128
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The snapshot directory of `label` under `snapshots`, if it was taken.
pub(super) fn find(snapshots: &Path, label: &str) -> Option<PathBuf> {
    let dir = snapshots.join(label);
    (valid_label(label) && dir.is_dir()).then_some(dir)
}

/// Takes the snapshot `label` of the tree at `source` into `snapshots` (a no-op when it was
/// taken already). Blocking: run it off the async runtime.
pub(super) fn take(source: &Path, snapshots: &Path, label: &str) -> io::Result<()> {
    if !valid_label(label) {
        return Err(io::Error::other(format!(
            "{label:?} cannot name a snapshot"
        )));
    }
    let target = snapshots.join(label);
    if target.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(snapshots)?;
    fs::set_permissions(snapshots, fs::Permissions::from_mode(0o700))?;
    let previous = fs::read_to_string(snapshots.join(LATEST))
        .ok()
        .map(|l| l.trim().to_owned())
        .filter(|l| valid_label(l) && snapshots.join(l).is_dir());
    let (previous_dir, previous_manifest) = match previous {
        Some(label) => {
            let manifest = fs::read(snapshots.join(format!("{label}.manifest")))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Manifest>(&bytes).ok())
                .unwrap_or_default();
            (Some(snapshots.join(label)), manifest)
        }
        None => (None, Manifest::new()),
    };
    let staging = snapshots.join(format!("{label}.partial"));
    match fs::remove_dir_all(&staging) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut copier = Copier {
        previous: previous_dir.as_deref(),
        previous_manifest: &previous_manifest,
        manifest: Manifest::new(),
    };
    fs::create_dir(&staging)?;
    copier.tree(source, &staging, Path::new(""))?;
    copy_attributes(&fs::metadata(source)?, &staging)?;
    let manifest = serde_json::to_vec(&copier.manifest).map_err(io::Error::other)?;
    fs::write(snapshots.join(format!("{label}.manifest")), manifest)?;
    fs::rename(&staging, &target)?;
    fs::write(snapshots.join(LATEST), label)?;
    Ok(())
}

struct Copier<'a> {
    previous: Option<&'a Path>,
    previous_manifest: &'a Manifest,
    manifest: Manifest,
}

impl Copier<'_> {
    /// Copies the directory `from` (at `relative` in the tree) into the existing `to`.
    fn tree(&mut self, from: &Path, to: &Path, relative: &Path) -> io::Result<()> {
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            let name = entry.file_name();
            let (source, target, relative) = (entry.path(), to.join(&name), relative.join(&name));
            let meta = fs::symlink_metadata(&source)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                fs::create_dir(&target)?;
                self.tree(&source, &target, &relative)?;
                copy_attributes(&meta, &target)?;
            } else if kind.is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
                chown(&target, &meta, true)?;
            } else if kind.is_file() {
                self.file(&source, &target, &relative, &meta)?;
            }
            // Sockets, pipes and devices are not workspace content.
        }
        Ok(())
    }

    fn file(
        &mut self,
        source: &Path,
        target: &Path,
        relative: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        let origin = Origin::of(meta);
        let key = relative.to_str().map(str::to_owned);
        let unchanged = key
            .as_ref()
            .and_then(|key| self.previous_manifest.get(key))
            .is_some_and(|previous| *previous == origin);
        let linked = match (unchanged, self.previous) {
            (true, Some(previous)) => fs::hard_link(previous.join(relative), target).is_ok(),
            _ => false,
        };
        if !linked {
            fs::copy(source, target)?;
            copy_attributes(meta, target)?;
        }
        if let Some(key) = key {
            self.manifest.insert(key, origin);
        }
        Ok(())
    }
}

/// Gives `target` the modification time, mode and owner of `meta` (in that order: the time
/// needs the file opened, which its final mode may forbid to anyone but root).
fn copy_attributes(meta: &fs::Metadata, target: &Path) -> io::Result<()> {
    fs::File::open(target)?.set_modified(meta.modified()?)?;
    fs::set_permissions(target, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    chown(target, meta, false)
}

/// Gives `target` the owner of `meta` when that is not ours already (only root can).
fn chown(target: &Path, meta: &fs::Metadata, symlink: bool) -> io::Result<()> {
    let ours = fs::symlink_metadata(target)?;
    if ours.uid() == meta.uid() && ours.gid() == meta.gid() {
        return Ok(());
    }
    let owner = (Some(meta.uid()), Some(meta.gid()));
    if symlink {
        std::os::unix::fs::lchown(target, owner.0, owner.1)
    } else {
        std::os::unix::fs::chown(target, owner.0, owner.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        fs::read_to_string(path).expect("read")
    }

    #[test]
    fn each_snapshot_keeps_its_moment_and_unchanged_files_are_shared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (workspace, snapshots) = (tmp.path().join("ws"), tmp.path().join("snaps"));
        fs::create_dir_all(workspace.join("dir")).expect("mkdir");
        fs::write(workspace.join("a.txt"), "one").expect("write");
        fs::write(workspace.join("dir/same.txt"), "same").expect("write");
        fs::set_permissions(
            workspace.join("dir/same.txt"),
            fs::Permissions::from_mode(0o751),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("a.txt", workspace.join("link")).expect("symlink");
        take(&workspace, &snapshots, "sevt_1").expect("first");

        fs::write(workspace.join("a.txt"), "two").expect("write");
        fs::write(workspace.join("b.txt"), "new").expect("write");
        take(&workspace, &snapshots, "sevt_2").expect("second");

        let (first, second) = (
            find(&snapshots, "sevt_1").expect("first kept"),
            find(&snapshots, "sevt_2").expect("second kept"),
        );
        assert_eq!(read(&first.join("a.txt")), "one");
        assert!(!first.join("b.txt").exists());
        assert_eq!(read(&second.join("a.txt")), "two");
        assert_eq!(read(&second.join("b.txt")), "new");
        assert_eq!(
            fs::read_link(second.join("link")).expect("link"),
            PathBuf::from("a.txt")
        );
        let mode = |p: &Path| fs::metadata(p).expect("meta").mode() & 0o7777;
        assert_eq!(mode(&second.join("dir/same.txt")), 0o751);
        // The unchanged file is one inode in both snapshots; the changed one is not.
        let ino = |p: &Path| fs::metadata(p).expect("meta").ino();
        assert_eq!(
            ino(&first.join("dir/same.txt")),
            ino(&second.join("dir/same.txt"))
        );
        assert_ne!(ino(&first.join("a.txt")), ino(&second.join("a.txt")));
        // And neither is the workspace's own file.
        assert_ne!(
            ino(&workspace.join("dir/same.txt")),
            ino(&second.join("dir/same.txt"))
        );
        // Taking a label again changes nothing; a bad label is refused.
        take(&workspace, &snapshots, "sevt_2").expect("again");
        assert!(take(&workspace, &snapshots, "../x").is_err());
        assert_eq!(find(&snapshots, "sevt_3"), None);
    }

    #[test]
    fn a_file_rewritten_with_the_same_size_and_time_is_still_copied() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (workspace, snapshots) = (tmp.path().join("ws"), tmp.path().join("snaps"));
        fs::create_dir_all(&workspace).expect("mkdir");
        let file = workspace.join("f");
        fs::write(&file, "aaaa").expect("write");
        let modified = fs::metadata(&file)
            .expect("meta")
            .modified()
            .expect("mtime");
        take(&workspace, &snapshots, "sevt_1").expect("first");
        fs::write(&file, "bbbb").expect("rewrite");
        fs::File::open(&file)
            .expect("open")
            .set_modified(modified)
            .expect("set the old mtime back");
        take(&workspace, &snapshots, "sevt_2").expect("second");
        assert_eq!(read(&snapshots.join("sevt_1/f")), "aaaa");
        assert_eq!(read(&snapshots.join("sevt_2/f")), "bbbb");
    }
}
