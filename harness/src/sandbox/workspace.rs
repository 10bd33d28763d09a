//! Session workspaces: one private directory per session under a root in the data dir
//! (`<data dir>/workspaces/<session>`), bound read-write at `/workspace` in the sandbox. It
//! persists across turns and restarts and is deleted with the session.
//!
//! **Ownership.** When the server is root, each new workspace gets its own host uid from the
//! configured [`UidRange`] (the lowest one no other workspace has), and the workspace is owned
//! by it; the sandbox runs as the owner of the workspace it is given. The owner is the whole
//! record of the allocation, so it survives restarts.
//!
//! **Quota.** With a quota (and root), the workspace is a loop-mounted ext4 image of the
//! quota's size (`<root>/<session>.img`, see `image.rs`), made on first use and mounted again
//! on the first use after a restart; [`Workspaces::unmount_all`] unmounts them at shutdown.
//! Without root, or with no quota, it is a plain directory and the quota is not enforced. A
//! plain workspace left from before quotas were on stays a plain directory.
//!
//! **Snapshots.** At each idle the runner snapshots the workspace (`snapshot.rs`, incremental:
//! unchanged files are hard links to the previous snapshot's copy) into
//! `<root>/<session>.snapshots/<idle event id>`, so [`Workspaces::fork_at`] an idle event
//! restores the workspace exactly as it was then.
//!
//! Everything here is private: the root and the workspaces are mode 0700 and no ancestor needs
//! to be searchable by the sandbox uid (the sandbox reaches the workspace through a bind in
//! its launcher's own mount namespace; see `bubblewrap.rs`).

use std::collections::HashSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::image::{self, Tools};
use super::snapshot;
use super::{Bind, Command, Error, Network, Sandbox, UidRange};

/// The directory that holds every session's workspace (for example `<data dir>/workspaces`).
/// Clones share one lock, so creating, deleting and allocating uids never race.
#[derive(Clone, Debug)]
pub struct Workspaces {
    root: PathBuf,
    quota: Option<u64>,
    uids: UidRange,
    lock: Arc<tokio::sync::Mutex<()>>,
}

/// Which state of a parent's workspace a fork starts from ([`Workspaces::fork_at`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForkPoint<'a> {
    /// As it was at this idle event (its snapshot's label: the event id).
    Idle(&'a str),
    /// As it is now.
    Now,
}

/// One session's workspace directory on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    dir: PathBuf,
    quota: Option<u64>,
    /// Extra binds every command of this workspace gets (see `bind.rs`), in order.
    binds: Vec<Bind>,
    /// Variables every command of this workspace gets before its own.
    env: Vec<(String, String)>,
}

impl Workspace {
    /// Use an existing directory as a workspace (tests, embedding); a relative path is made
    /// absolute. Prefer [`Workspaces::create`].
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self::plain(absolute(dir.into()), None)
    }

    fn plain(dir: PathBuf, quota: Option<u64>) -> Self {
        Self {
            dir,
            quota,
            binds: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Add `bind` to every command and process run in this workspace (after `/workspace`, in
    /// the order added). Checked when a command starts: see [`Bind`].
    pub fn with_bind(mut self, bind: Bind) -> Self {
        self.binds.push(bind);
        self
    }

    /// Set `name` for every command and process run in this workspace (a command's own
    /// variables come after, so they win).
    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// The extra binds, in order.
    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// The workspace's variables, in order.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The host uid that owns the workspace directory (the sandbox's uid when the server is
    /// root), if it exists.
    pub fn owner_uid(&self) -> Option<u32> {
        std::fs::metadata(&self.dir).ok().map(|m| m.uid())
    }

    /// The host path bound at `/workspace`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The size of the workspace's filesystem when a quota bounds it.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }
}

/// The session id of the start-up check's door.
const DOOR_ID: &str = "sesn_startup-check";
/// The start-up check through a door: a file in the workspace, then the status line of the
/// door's answer to a path no handler serves.
const DOOR_PROBE: &str = "echo ok > check && cat check && exec 3<>/dev/tcp/127.0.0.1/3128 && \
    printf 'GET /startup-check HTTP/1.1\\r\\nHost: door\\r\\nConnection: close\\r\\n\\r\\n' >&3 && \
    head -n 1 <&3";

impl Workspaces {
    /// Workspaces under `root` (made absolute), without a quota, with uids from the default
    /// range.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: absolute(root.into()),
            quota: None,
            uids: UidRange::default(),
            lock: Arc::default(),
        }
    }

    /// Bound every new workspace to `bytes` (at least [`image::MIN_QUOTA`]); `None` for none.
    pub fn with_quota(mut self, bytes: Option<u64>) -> Self {
        self.quota = bytes;
        self
    }

    /// Allocate workspace owners from `uids` (use the range the sandbox is given).
    pub fn with_uids(mut self, uids: UidRange) -> Self {
        self.uids = uids;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How quotas and owners are enforced here, for logs.
    pub fn enforcement(&self) -> String {
        match (self.quota, super::privileged()) {
            (Some(q), true) => format!(
                "quota {} per workspace (loop-mounted ext4 images); owners from uids {}",
                image::human(q),
                self.uids
            ),
            (Some(q), false) => format!(
                "quota {} NOT enforced: loop-mounting workspace images needs root",
                image::human(q)
            ),
            (None, true) => format!("no quota; owners from uids {}", self.uids),
            (None, false) => "no quota; owned by the server's uid".to_owned(),
        }
    }

    /// The workspace of a session, as a path (it may not exist or be mounted yet, so no quota
    /// is reported).
    pub fn get(&self, session_id: &str) -> Result<Workspace, Error> {
        validate(session_id)?;
        Ok(Workspace::plain(self.root.join(session_id), None))
    }

    /// Create (or reopen) the session's workspace: mode 0700, owned by its own sandbox uid
    /// when the server is root, and with a quota, made or mounted as an image. The root is
    /// created with mode 0700.
    pub async fn create(&self, session_id: &str) -> Result<Workspace, Error> {
        validate(session_id)?;
        let _guard = self.lock.lock().await;
        self.create_locked(session_id).await
    }

    async fn create_locked(&self, session_id: &str) -> Result<Workspace, Error> {
        let dir = self.root.join(session_id);
        make_dir(&self.root)?;
        let privileged = super::privileged();
        let (Some(quota), true) = (self.quota, privileged) else {
            make_dir(&dir)?;
            if privileged {
                self.own(&dir, session_id)?;
            }
            return Ok(Workspace::plain(dir, None));
        };
        let image = self.image(session_id);
        if image::is_mounted(&dir) {
            let size = image_size(&image).unwrap_or(quota);
            return Ok(Workspace::plain(dir, Some(size)));
        }
        let tools = Tools::find()?;
        let fresh = !image.exists();
        if fresh {
            if is_non_empty_dir(&dir) {
                // A workspace from before quotas: keep its files, unbounded.
                tracing::warn!(dir = %dir.display(), "workspace predates quotas; not bounded");
                self.own(&dir, session_id)?;
                return Ok(Workspace::plain(dir, None));
            }
            make_dir(&dir)?;
            let uid = self.own(&dir, session_id)?;
            tools.make(&image, quota, uid).await?;
        } else {
            make_dir(&dir)?;
        }
        tools.mount(&image, &dir).await?;
        let fail = |source| Error::Workspace {
            path: dir.clone(),
            source,
        };
        if fresh {
            match std::fs::remove_dir(dir.join("lost+found")) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(e)),
                _ => {}
            }
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        let size = image_size(&image).unwrap_or(quota);
        Ok(Workspace::plain(dir, Some(size)))
    }

    /// Create session `child`'s workspace as a copy of session `parent`'s as it is now (a
    /// fork): every file with its modes and times, owned by the child's own sandbox uid when
    /// the server is root. A parent that never had a workspace gives an empty one.
    pub async fn fork(&self, parent: &str, child: &str) -> Result<Workspace, Error> {
        self.fork_at(parent, child, Some(ForkPoint::Now)).await
    }

    /// Create session `child`'s workspace as a copy of session `parent`'s at `point`: the
    /// snapshot of an idle event ([`Workspaces::snapshot`]; when it was never taken, the
    /// workspace as it is now), the workspace as it is now, or (`None`: a point before the
    /// parent's first idle) an empty workspace. Files keep their modes and times and are owned
    /// by the child's own sandbox uid when the server is root.
    pub async fn fork_at(
        &self,
        parent: &str,
        child: &str,
        point: Option<ForkPoint<'_>>,
    ) -> Result<Workspace, Error> {
        validate(parent)?;
        validate(child)?;
        let _guard = self.lock.lock().await;
        let snapshot = match point {
            Some(ForkPoint::Idle(label)) => snapshot::find(&self.snapshots(parent)?, label),
            _ => None,
        };
        let had_one = self.root.join(parent).exists() || self.image(parent).exists();
        let target = self.create_locked(child).await?;
        let source = match (point, snapshot) {
            (None, _) => return Ok(target),
            (Some(_), Some(snapshot)) => snapshot,
            (Some(_), None) if had_one => self.create_locked(parent).await?.dir,
            (Some(_), None) => return Ok(target),
        };
        let mut from = source.into_os_string();
        from.push("/.");
        run(
            "cp",
            &["-a".as_ref(), from.as_os_str(), target.dir.as_os_str()],
        )
        .await?;
        if let Some(uid) = target.owner_uid().filter(|_| super::privileged()) {
            let owner = format!("{uid}:{uid}");
            run(
                "chown",
                &[
                    "-R".as_ref(),
                    "--no-dereference".as_ref(),
                    owner.as_ref(),
                    target.dir.as_os_str(),
                ],
            )
            .await?;
        }
        Ok(target)
    }

    /// Snapshot session `session_id`'s workspace as it is at the idle event `label` (see
    /// `snapshot.rs`); a session without a workspace has nothing to snapshot.
    pub async fn snapshot(&self, session_id: &str, label: &str) -> Result<(), Error> {
        let mut ws = self.get(session_id)?;
        let snapshots = self.snapshots(session_id)?;
        if !ws.dir.is_dir() {
            return Ok(());
        }
        if self.image(session_id).exists() && !image::is_mounted(&ws.dir) {
            // An image not mounted since a restart: its mount point is empty, the files are
            // in the image.
            ws = self.create(session_id).await?;
        }
        let label = label.to_owned();
        let dir = ws.dir.clone();
        tokio::task::spawn_blocking(move || snapshot::take(&dir, &snapshots, &label))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))?
            .map_err(|source| Error::Workspace {
                path: ws.dir,
                source,
            })
    }

    /// Where session `session_id`'s workspace snapshots are kept.
    fn snapshots(&self, session_id: &str) -> Result<PathBuf, Error> {
        validate(session_id)?;
        Ok(self.root.join(format!("{session_id}.snapshots")))
    }

    /// Delete the session's workspace and everything in it (unmounting and removing its
    /// image, and its snapshots); a missing workspace is fine.
    pub async fn delete(&self, session_id: &str) -> Result<(), Error> {
        let ws = self.get(session_id)?;
        let _guard = self.lock.lock().await;
        if image::is_mounted(&ws.dir) {
            Tools::find()?.unmount(&ws.dir)?;
        }
        let image = self.image(session_id);
        let attachments = self.attachments(session_id)?;
        let snapshots = self.snapshots(session_id)?;
        if image::is_mounted(&attachments.join("outputs")) {
            Tools::find()?.unmount(&attachments.join("outputs"))?;
        }
        for result in [
            tokio::fs::remove_file(&image).await,
            tokio::fs::remove_dir_all(&ws.dir).await,
            tokio::fs::remove_dir_all(&attachments).await,
            tokio::fs::remove_dir_all(&snapshots).await,
        ] {
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Workspace {
                        path: ws.dir,
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Unmount every mounted workspace image (at shutdown; they are mounted again on next
    /// use). Returns how many were unmounted; failures are logged.
    pub fn unmount_all(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let Ok(tools) = Tools::find() else {
            return 0;
        };
        let mut count = 0;
        for entry in entries.flatten() {
            let mut dir = entry.path();
            if dir.extension().is_some_and(|e| e == "attach") {
                // A session's outputs filesystem (`Workspaces::outputs`).
                dir.push("outputs");
            }
            if !image::is_mounted(&dir) {
                continue;
            }
            match tools.unmount(&dir) {
                Ok(()) => count += 1,
                Err(e) => tracing::warn!(error = %e, "cannot unmount a workspace"),
            }
        }
        count
    }

    /// Run one command in a throw-away workspace (with a small quota when quotas are on),
    /// exactly as a session's tool call would: the start-up check that the sandbox works with
    /// this data dir, uid range and machine. With a `door`, the command runs through it (as a
    /// session's does) and asks the door for a page it does not have: the relay, the socket and
    /// the proxy must answer `404`.
    pub async fn self_test<X: Sandbox>(
        &self,
        sandbox: &X,
        door: Option<&crate::door::Door>,
    ) -> Result<(), Error> {
        const ID: &str = "startup-check";
        let probe = self
            .clone()
            .with_quota(self.quota.map(|_| image::MIN_QUOTA));
        probe.delete(ID).await?;
        let result = async {
            let ws = probe.create(ID).await?;
            if self.quota.is_some() && super::privileged() && ws.quota().is_none() {
                return Err(Error::SelfTest(
                    "the workspace quota was not applied".into(),
                ));
            }
            let (network, script, expected) = match door {
                Some(door) => {
                    let id = managed_agents_core::ids::SessionId::parse(DOOR_ID)
                        .map_err(|e| Error::SelfTest(e.to_string()))?;
                    let session = crate::door::SessionDoor::new(id, crate::door::Policy::none());
                    let network = door
                        .register(session, &ws)
                        .map_err(|e| Error::SelfTest(e.to_string()))?;
                    (network, DOOR_PROBE, "ok\nHTTP/1.1 404 ")
                }
                None => (Network::Isolated, "echo ok > check && cat check", "ok\n"),
            };
            let command =
                Command::new(["bash", "-c", script]).timeout(std::time::Duration::from_secs(30));
            let out = sandbox.run(&ws, network, command).await?;
            let matches = match door {
                Some(_) => out.stdout.starts_with(expected),
                None => out.stdout == expected,
            };
            if out.exit_code == Some(0) && matches {
                Ok(())
            } else {
                Err(Error::SelfTest(format!(
                    "a test command failed (exit {:?}): {} {}",
                    out.exit_code,
                    out.stdout.trim(),
                    out.stderr.trim()
                )))
            }
        }
        .await;
        if let (Some(door), Ok(id)) = (door, managed_agents_core::ids::SessionId::parse(DOOR_ID)) {
            door.unregister(&id);
        }
        let cleaned = probe.delete(ID).await;
        result.and(cleaned)
    }

    /// The host directory of what the session brings into its sandbox besides the workspace
    /// (uploaded files, skills, the outputs directory: `crate::attach`), beside the workspace
    /// and deleted with it. Never bound at `/workspace`, so the agent cannot replace it.
    pub fn attachments(&self, session_id: &str) -> Result<PathBuf, Error> {
        validate(session_id)?;
        Ok(self.root.join(format!("{session_id}.attach")))
    }

    /// The session's outputs directory (`<attachments>/outputs`, bound at
    /// `/mnt/session/outputs`), owned by `uid` when given. With a quota and root it is a
    /// filesystem of its own like the workspace (`<attachments>/outputs.img`, the workspace's
    /// quota in size), so what the agent writes there is bounded and the sandbox's mount table
    /// shows no host path; it is mounted again on first use after a restart.
    pub async fn outputs(&self, session_id: &str, uid: Option<u32>) -> Result<PathBuf, Error> {
        let attachments = self.attachments(session_id)?;
        let dir = attachments.join("outputs");
        let _guard = self.lock.lock().await;
        make_dir(&dir)?;
        let fail = |source| Error::Workspace {
            path: dir.clone(),
            source,
        };
        if let (Some(quota), true) = (self.quota, super::privileged()) {
            if !image::is_mounted(&dir) {
                let image = attachments.join("outputs.img");
                let tools = Tools::find()?;
                if !image.exists() {
                    tools.make(&image, quota, uid.unwrap_or(0)).await?;
                }
                tools.mount(&image, &dir).await?;
                let _ = std::fs::remove_dir(dir.join("lost+found"));
            }
        }
        if let Some(uid) = uid {
            std::os::unix::fs::chown(&dir, Some(uid), Some(uid)).map_err(fail)?;
        }
        // Private like the workspace: only its owner, the sandbox's uid, uses it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
        Ok(dir)
    }

    fn image(&self, session_id: &str) -> PathBuf {
        self.root.join(format!("{session_id}.img"))
    }

    /// Give `dir` its own uid from the range unless it already has one; returns the owner.
    fn own(&self, dir: &Path, session_id: &str) -> Result<u32, Error> {
        let fail = |source| Error::Workspace {
            path: dir.to_owned(),
            source,
        };
        let current = std::fs::metadata(dir).map_err(fail)?.uid();
        if self.uids.contains(current) {
            return Ok(current);
        }
        let (uid, fresh) = self.uids.allocate(&self.owners(dir), session_id);
        if !fresh {
            tracing::warn!(
                uids = %self.uids,
                uid,
                "every sandbox uid is taken: sessions share host uids; widen --sandbox-uid-range"
            );
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(uid)).map_err(fail)?;
        Ok(uid)
    }

    /// The uids owning the other workspaces under the root.
    fn owners(&self, except: &Path) -> HashSet<u32> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return HashSet::new();
        };
        entries
            .flatten()
            .filter(|e| e.path() != except)
            .filter_map(|e| std::fs::metadata(e.path()).ok())
            .filter(|m| m.is_dir())
            .map(|m| m.uid())
            .collect()
    }
}

/// Create `dir` (and missing parents) with mode 0700, or tighten an existing one to 0700.
fn make_dir(dir: &Path) -> Result<(), Error> {
    let fail = |source| Error::Workspace {
        path: dir.to_owned(),
        source,
    };
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        Err(e) => return Err(fail(e)),
    }
    let mode = std::fs::metadata(dir).map_err(fail)?.permissions().mode();
    if mode & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    }
    Ok(())
}

fn is_non_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

fn image_size(image: &Path) -> Option<u64> {
    std::fs::metadata(image).ok().map(|m| m.len())
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Session ids become directory names: letters, digits, `_` and `-` only.
fn validate(session_id: &str) -> Result<(), Error> {
    let ok = !session_id.is_empty()
        && session_id.len() <= 128
        && session_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSessionId(session_id.to_owned()))
    }
}

/// Runs `program` with `args` to completion; a failure names the program and its stderr.
async fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<(), Error> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(|source| Error::Spawn {
            program: program.into(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::Io(std::io::Error::other(format!(
        "{program} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn snapshots_are_restored_by_a_fork_and_deleted_with_the_session() {
        let tmp = tempfile::tempdir().unwrap();
        let workspaces = Workspaces::new(tmp.path().join("ws"));
        let parent = workspaces.create("sesn_parent").await.unwrap();
        std::fs::write(parent.dir().join("f"), "at idle").unwrap();
        workspaces
            .snapshot("sesn_parent", "sevt_idle1")
            .await
            .unwrap();
        std::fs::write(parent.dir().join("f"), "later").unwrap();

        let at_idle = workspaces
            .fork_at("sesn_parent", "sesn_a", Some(ForkPoint::Idle("sevt_idle1")))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(at_idle.dir().join("f")).unwrap(),
            "at idle"
        );
        let now = workspaces.fork("sesn_parent", "sesn_b").await.unwrap();
        assert_eq!(
            std::fs::read_to_string(now.dir().join("f")).unwrap(),
            "later"
        );
        // An idle never snapshotted: the workspace as it is; before any idle: empty.
        let unknown = workspaces
            .fork_at("sesn_parent", "sesn_c", Some(ForkPoint::Idle("sevt_other")))
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(unknown.dir().join("f")).unwrap(),
            "later"
        );
        let empty = workspaces
            .fork_at("sesn_parent", "sesn_d", None)
            .await
            .unwrap();
        assert_eq!(std::fs::read_dir(empty.dir()).unwrap().count(), 0);

        let snapshots = tmp.path().join("ws/sesn_parent.snapshots");
        assert!(snapshots.join("sevt_idle1").is_dir());
        workspaces.delete("sesn_parent").await.unwrap();
        assert!(!snapshots.exists());
        assert!(
            at_idle.dir().join("f").exists(),
            "a child keeps its own copy"
        );
    }

    #[tokio::test]
    async fn create_is_private_and_idempotent_delete_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(tmp.path().join("workspaces"));
        let a = ws.create("sesn_a").await.unwrap();
        std::fs::write(a.dir().join("f"), "x").unwrap();
        let again = ws.create("sesn_a").await.unwrap();
        assert_eq!(a, again);
        assert!(a.dir().join("f").exists());
        for dir in [ws.root(), a.dir()] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", dir.display());
        }
        ws.delete("sesn_a").await.unwrap();
        assert!(!a.dir().exists());
        ws.delete("sesn_a").await.unwrap();
    }

    #[tokio::test]
    async fn workspaces_get_different_owners_when_root() {
        if !super::super::privileged() {
            eprintln!("skipped: not root");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let uids = UidRange::new(70100, 70101).unwrap();
        let ws = Workspaces::new(tmp.path().join("workspaces")).with_uids(uids);
        let owner = |w: &Workspace| std::fs::metadata(w.dir()).unwrap().uid();
        let a = ws.create("sesn_a").await.unwrap();
        let b = ws.create("sesn_b").await.unwrap();
        assert_eq!((owner(&a), owner(&b)), (70100, 70101));
        // Reopening keeps the owner; a freed uid is handed out again.
        assert_eq!(owner(&ws.create("sesn_a").await.unwrap()), 70100);
        ws.delete("sesn_a").await.unwrap();
        assert_eq!(owner(&ws.create("sesn_c").await.unwrap()), 70100);
    }

    #[test]
    fn rejects_path_tricks() {
        let ws = Workspaces::new("/data");
        for bad in ["", "..", "a/b", "../x", "a b", "ü", "x.img"] {
            assert!(ws.get(bad).is_err(), "{bad:?}");
        }
    }
}
