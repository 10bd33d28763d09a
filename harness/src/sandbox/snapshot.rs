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
//!
//! A workspace in which nothing changed since the previous snapshot (most idles of a chat, or
//! of tool calls that write nothing) gets no tree of its own: a walk that only reads finds
//! every entry (files, directories, symbolic links, the root) with the inode, change time and
//! size the previous manifest recorded, and the label is recorded in `aliases` as naming the
//! previous snapshot (one appended line: no directory, link or file is created).

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file naming the newest snapshot.
const LATEST: &str = "latest";

/// The file of labels that name an earlier snapshot (`<label> <snapshot label>` per line).
const ALIASES: &str = "aliases";

/// What a snapshot entry was made from: the workspace entry's kind, inode, change time and
/// size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Origin {
    ino: u64,
    ctime_ns: i128,
    size: u64,
    /// Manifests written before directories and links were recorded hold only files.
    #[serde(default)]
    kind: Kind,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
enum Kind {
    #[default]
    File,
    Dir,
    Symlink,
}

impl Origin {
    fn of(meta: &fs::Metadata, kind: Kind) -> Self {
        Self {
            ino: meta.ino(),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            size: meta.len(),
            kind,
        }
    }
}

/// The kind of entry a snapshot holds, if it holds it (sockets, pipes and devices are not
/// workspace content).
fn kind_of(meta: &fs::Metadata) -> Option<Kind> {
    let kind = meta.file_type();
    if kind.is_dir() {
        Some(Kind::Dir)
    } else if kind.is_symlink() {
        Some(Kind::Symlink)
    } else if kind.is_file() {
        Some(Kind::File)
    } else {
        None
    }
}

/// Relative path (UTF-8 only; other paths are always copied) → origin; the root is `""`.
type Manifest = HashMap<String, Origin>;

/// The manifest of the tree at `source` as it is now, read without writing anything; `None`
/// when a name is not UTF-8 (such a tree is always copied).
fn listing(source: &Path) -> io::Result<Option<Manifest>> {
    fn walk(dir: &Path, relative: &Path, into: &mut Manifest) -> io::Result<bool> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let relative = relative.join(entry.file_name());
            let meta = fs::symlink_metadata(&path)?;
            let Some(kind) = kind_of(&meta) else {
                continue;
            };
            let Some(key) = relative.to_str() else {
                return Ok(false);
            };
            into.insert(key.to_owned(), Origin::of(&meta, kind));
            if kind == Kind::Dir && !walk(&path, &relative, into)? {
                return Ok(false);
            }
        }
        Ok(true)
    }
    let mut manifest = Manifest::new();
    manifest.insert(String::new(), Origin::of(&fs::metadata(source)?, Kind::Dir));
    Ok(walk(source, Path::new(""), &mut manifest)?.then_some(manifest))
}

/// The snapshot `label` names in `aliases`, if any.
fn alias(snapshots: &Path, label: &str) -> Option<String> {
    let aliases = fs::read_to_string(snapshots.join(ALIASES)).ok()?;
    aliases.lines().find_map(|line| {
        let (named, target) = line.split_once(' ')?;
        (named == label && valid_label(target)).then(|| target.to_owned())
    })
}

/// Whether `label` can name a snapshot (an event id: letters, digits, `_`, `-`).
pub(super) fn valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 128
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The label on the last line of `aliases`, if any.
fn last_alias(snapshots: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = fs::File::open(snapshots.join(ALIASES)).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(512))).ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    let tail = String::from_utf8_lossy(&tail);
    let line = tail.lines().rfind(|l| !l.is_empty())?;
    Some(line.split_once(' ')?.0.to_owned())
}

/// The snapshot directory of `label` under `snapshots`, if it was taken (its own, or the
/// earlier one it was found equal to).
pub(super) fn find(snapshots: &Path, label: &str) -> Option<PathBuf> {
    if !valid_label(label) {
        return None;
    }
    let dir = snapshots.join(label);
    if dir.is_dir() {
        return Some(dir);
    }
    let dir = snapshots.join(alias(snapshots, label)?);
    dir.is_dir().then_some(dir)
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
    // Taken already: its tree, or the alias the last snapshot wrote (the file is not read
    // whole: it grows by a line per unchanged idle).
    if target.is_dir() || last_alias(snapshots).is_some_and(|named| named == label) {
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
    if let Some(previous) = previous_dir.as_deref().and_then(Path::file_name) {
        // A walk that fails (an entry removed under it) decides nothing: the copy below tries.
        if listing(source).is_ok_and(|now| now.is_some_and(|now| now == previous_manifest)) {
            let mut aliases = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(snapshots.join(ALIASES))?;
            let line = format!("{label} {}\n", previous.to_string_lossy());
            return std::io::Write::write_all(&mut aliases, line.as_bytes());
        }
    }
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
    let root = fs::metadata(source)?;
    copy_attributes(&root, &staging)?;
    copier
        .manifest
        .insert(String::new(), Origin::of(&root, Kind::Dir));
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
            match kind_of(&meta) {
                Some(Kind::Dir) => {
                    fs::create_dir(&target)?;
                    self.tree(&source, &target, &relative)?;
                    copy_attributes(&meta, &target)?;
                    self.record(&relative, Origin::of(&meta, Kind::Dir));
                }
                Some(Kind::Symlink) => {
                    std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
                    chown(&target, &meta, true)?;
                    self.record(&relative, Origin::of(&meta, Kind::Symlink));
                }
                Some(Kind::File) => self.file(&source, &target, &relative, &meta)?,
                None => {}
            }
        }
        Ok(())
    }

    fn record(&mut self, relative: &Path, origin: Origin) {
        if let Some(key) = relative.to_str() {
            self.manifest.insert(key.to_owned(), origin);
        }
    }

    fn file(
        &mut self,
        source: &Path,
        target: &Path,
        relative: &Path,
        meta: &fs::Metadata,
    ) -> io::Result<()> {
        let origin = Origin::of(meta, Kind::File);
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
    fn an_unchanged_workspace_names_the_previous_snapshot_and_any_change_gets_its_own() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (workspace, snapshots) = (tmp.path().join("ws"), tmp.path().join("snaps"));
        fs::create_dir_all(workspace.join("dir/sub")).expect("mkdir");
        fs::write(workspace.join("dir/f"), "one").expect("write");
        std::os::unix::fs::symlink("dir/f", workspace.join("link")).expect("symlink");
        take(&workspace, &snapshots, "sevt_1").expect("first");
        take(&workspace, &snapshots, "sevt_2").expect("unchanged");
        let first = find(&snapshots, "sevt_1").expect("first kept");
        assert_eq!(find(&snapshots, "sevt_2"), Some(first.clone()));
        assert!(!snapshots.join("sevt_2").exists(), "no tree of its own");
        take(&workspace, &snapshots, "sevt_2").expect("again");
        assert_eq!(
            read(&snapshots.join(ALIASES)),
            "sevt_2 sevt_1\n",
            "recorded once"
        );

        // Each change below, of any kind of entry, gets a snapshot of its own that shows it.
        // (The sleep moves the clock past the change time the previous snapshot recorded.)
        type Change = fn(&Path);
        let changes: [(&str, Change); 5] = [
            ("an empty directory", |ws| {
                fs::create_dir(ws.join("empty")).expect("mkdir")
            }),
            ("a directory's mode", |ws| {
                fs::set_permissions(ws.join("dir/sub"), fs::Permissions::from_mode(0o700))
                    .expect("chmod")
            }),
            ("a link's target", |ws| {
                fs::remove_file(ws.join("link")).expect("unlink");
                std::os::unix::fs::symlink("dir", ws.join("link")).expect("symlink");
            }),
            ("a file of the same size", |ws| {
                fs::write(ws.join("dir/f"), "two").expect("write")
            }),
            ("a removed file", |ws| {
                fs::remove_file(ws.join("dir/f")).expect("rm")
            }),
        ];
        let mut before = first;
        for (i, (what, change)) in changes.into_iter().enumerate() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            change(&workspace);
            let label = format!("sevt_c{i}");
            take(&workspace, &snapshots, &label).expect("take");
            let own = find(&snapshots, &label).expect("kept");
            assert_eq!(own, snapshots.join(&label), "{what}: a tree of its own");
            assert_ne!(own, before);
            before = own;
        }
        let last = &before;
        assert!(last.join("empty").is_dir());
        let mode = fs::metadata(last.join("dir/sub")).expect("meta").mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            fs::read_link(last.join("link")).expect("link"),
            PathBuf::from("dir")
        );
        assert!(!last.join("dir/f").exists());
        assert_eq!(read(&snapshots.join("sevt_c3/dir/f")), "two");
        assert_eq!(read(&snapshots.join("sevt_1/dir/f")), "one");
    }

    #[test]
    fn a_manifest_without_directories_is_not_taken_for_an_unchanged_tree() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (workspace, snapshots) = (tmp.path().join("ws"), tmp.path().join("snaps"));
        fs::create_dir_all(&workspace).expect("mkdir");
        fs::write(workspace.join("f"), "one").expect("write");
        take(&workspace, &snapshots, "sevt_1").expect("first");
        // The manifest as an earlier build wrote it: files only, no kind.
        let manifest = snapshots.join("sevt_1.manifest");
        let mut old: serde_json::Value =
            serde_json::from_slice(&fs::read(&manifest).expect("read")).expect("json");
        let files = old.as_object_mut().expect("an object");
        files.remove("");
        for origin in files.values_mut() {
            origin.as_object_mut().expect("an origin").remove("kind");
        }
        fs::write(&manifest, old.to_string()).expect("write");
        take(&workspace, &snapshots, "sevt_2").expect("second");
        assert!(snapshots.join("sevt_2").is_dir(), "copied, not aliased");
        // Its unchanged file is still shared with the earlier snapshot.
        let ino = |p: &Path| fs::metadata(p).expect("meta").ino();
        assert_eq!(
            ino(&snapshots.join("sevt_1/f")),
            ino(&snapshots.join("sevt_2/f"))
        );
        take(&workspace, &snapshots, "sevt_3").expect("third");
        assert_eq!(find(&snapshots, "sevt_3"), Some(snapshots.join("sevt_2")));
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
