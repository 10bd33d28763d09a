//! The cache of package layers: one directory per distinct package spec,
//! `<layers>/<key>/`, where the key is the SHA-256 of the spec ([`key`]).
//!
//! A layer is complete or absent: it is built in a private build directory beside the layers
//! (`<layers>/.build-<key>-<random>/`, holding the layer and an empty home for the installers),
//! its [`RECORD`] written last, its permissions opened (directories 0755, files 0644 or 0755)
//! and, when the server is root, its ownership given to root; then the layer is renamed into
//! place. A failed build leaves nothing (the build directory is removed), so nothing
//! half-built is ever reused, and a directory without a valid record is not a layer (a crash
//! mid-build leaves only a `.build-*` directory, never a layer). Builds of one key are serialised
//! in this process ([`Layers::build`] holds a lock per key); two processes racing on one data
//! dir each build, and the second rename finds the first's layer and drops its own.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use managed_agents_core::environment::Packages;
use managed_agents_core::ids::{EnvironmentId, SessionId};
use managed_agents_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file that marks a complete layer and says how it was built.
pub(crate) const RECORD: &str = ".managed-agents-layer.json";
/// Bumped when the layout of a layer changes, so old layers are not reused.
const LAYOUT: &str = "layer-v1";

/// What a layer's [`RECORD`] holds: how and when it was built (never rewritten).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The layer's key.
    pub(crate) key: String,
    /// The package spec it was built from.
    pub(crate) packages: Packages,
    /// The environment whose session built it.
    pub(crate) environment_id: EnvironmentId,
    /// The session whose first turn built it.
    pub(crate) built_by_session: SessionId,
    /// When the build finished.
    pub(crate) built_at: Timestamp,
    /// How long the installers took.
    pub(crate) build_millis: u64,
}

/// The layer key of a package spec: the hex SHA-256 of the layout version and the spec's
/// canonical JSON (managers in a fixed order, entries as given).
pub(crate) fn key(packages: &Packages) -> String {
    let mut hash = Sha256::new();
    hash.update(LAYOUT.as_bytes());
    hash.update([0]);
    // Serialising a struct of vectors cannot fail.
    hash.update(serde_json::to_vec(packages).unwrap_or_default());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A build in progress: where the installers write (bound writable at the layer's mount
/// path) and their home (the build's `/workspace`).
pub(crate) struct Build {
    /// Becomes the layer.
    pub(crate) layer: PathBuf,
    /// An empty directory the installers run in.
    pub(crate) home: PathBuf,
}

/// The layers directory (`<data-dir>/layers`).
#[derive(Clone, Debug)]
pub(crate) struct Layers {
    dir: PathBuf,
}

fn locks() -> &'static Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    LOCKS.get_or_init(Mutex::default)
}

fn lock_for(key: &str) -> Arc<tokio::sync::Mutex<()>> {
    let mut locks = locks().lock().unwrap_or_else(|p| p.into_inner());
    locks.retain(|_, lock| Arc::strong_count(lock) > 1);
    locks.entry(key.to_owned()).or_default().clone()
}

impl Layers {
    pub(crate) fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The complete layer of `key` and its record, if built.
    pub(crate) fn built(&self, key: &str) -> Option<(PathBuf, Record)> {
        let dir = self.dir.join(key);
        let text = std::fs::read(dir.join(RECORD)).ok()?;
        let record: Record = serde_json::from_slice(&text).ok()?;
        (record.key == key).then_some((dir, record))
    }

    /// The layer of `key`: the built one, else built now by `build` (once per key however many
    /// sessions ask at a time). `uid`: who the installers run as (the build directory is given
    /// to it when the server is root). `record` is completed with the build's duration.
    pub(crate) async fn get_or_build<F, Fut>(
        &self,
        key: &str,
        uid: Option<u32>,
        record: impl FnOnce(u64) -> Record,
        build: F,
    ) -> Result<(PathBuf, Record), String>
    where
        F: FnOnce(Build) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        if let Some(found) = self.built(key) {
            return Ok(found);
        }
        let lock = lock_for(key);
        let _building = lock.lock().await;
        if let Some(found) = self.built(key) {
            return Ok(found);
        }
        let io = |what: &str, e: std::io::Error| format!("the package layer cannot be {what}: {e}");
        std::fs::create_dir_all(&self.dir).map_err(|e| io("created", e))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io("created", e))?;
        let scratch = tempfile::Builder::new()
            .prefix(&format!(".build-{key}-"))
            .tempdir_in(&self.dir)
            .map_err(|e| io("created", e))?;
        let build_dirs = Build {
            layer: scratch.path().join("layer"),
            home: scratch.path().join("home"),
        };
        let layer = build_dirs.layer.clone();
        for dir in [scratch.path(), &build_dirs.layer, &build_dirs.home] {
            if dir != scratch.path() {
                std::fs::create_dir(dir).map_err(|e| io("created", e))?;
            }
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| io("created", e))?;
            if let (Some(uid), true) = (uid, is_root()) {
                std::os::unix::fs::chown(dir, Some(uid), Some(uid))
                    .map_err(|e| io("given to the sandbox", e))?;
            }
        }
        let started = std::time::Instant::now();
        build(build_dirs).await?;
        let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let record = record(millis);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
        // The installers could have left anything at the record's name: it is replaced.
        let record_path = layer.join(RECORD);
        let _ = std::fs::remove_file(&record_path);
        std::fs::write(&record_path, json).map_err(|e| io("recorded", e))?;
        seal(&layer).map_err(|e| io("sealed", e))?;
        let target = self.dir.join(key);
        match std::fs::rename(&layer, &target) {
            Ok(()) => {}
            // Another process finished first: its layer is as good.
            Err(_) if self.built(key).is_some() => {}
            Err(e) => return Err(io("put in place", e)),
        }
        drop(scratch);
        self.built(key)
            .ok_or_else(|| "the package layer vanished after its build".to_owned())
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Opens `dir`'s tree to every sandbox uid (read and, where set, execute) and, when root,
/// hands it to root, so no sandbox uid owns what every session shares. Symbolic links are
/// left as they are (never followed); anything that is neither a file, a directory nor a link
/// is removed.
fn seal(dir: &Path) -> std::io::Result<()> {
    let root = is_root();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            if root {
                std::os::unix::fs::lchown(&path, Some(0), Some(0))?;
            }
            continue;
        }
        if kind.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
        } else if !kind.is_file() {
            std::fs::remove_file(&path)?;
            continue;
        }
        if root {
            std::os::unix::fs::lchown(&path, Some(0), Some(0))?;
        }
        let executable = kind.is_dir() || meta.permissions().mode() & 0o111 != 0;
        let mode = if executable { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packages(pip: &[&str]) -> Packages {
        Packages {
            pip: pip.iter().map(|s| s.to_string()).collect(),
            ..Packages::default()
        }
    }

    fn record(key: &str, millis: u64) -> Record {
        Record {
            key: key.to_owned(),
            packages: packages(&["six"]),
            environment_id: EnvironmentId::parse("env_01test").expect("id"),
            built_by_session: SessionId::parse("sesn_01test").expect("id"),
            built_at: Timestamp::now(),
            build_millis: millis,
        }
    }

    #[test]
    fn the_key_follows_the_spec() {
        assert_eq!(key(&packages(&["six"])), key(&packages(&["six"])));
        assert_ne!(key(&packages(&["six"])), key(&packages(&["six==1.16.0"])));
        let npm = Packages {
            npm: vec!["six".into()],
            ..Packages::default()
        };
        assert_ne!(key(&packages(&["six"])), key(&npm));
        assert_eq!(key(&npm).len(), 64);
    }

    #[tokio::test]
    async fn a_layer_is_built_once_and_a_failed_build_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let layers = Layers::new(dir.path().join("layers"));
        let k = key(&packages(&["six"]));
        let failed = layers
            .get_or_build(
                &k,
                None,
                |m| record(&k, m),
                |build| async move {
                    std::fs::write(build.layer.join("half"), "x").map_err(|e| e.to_string())?;
                    Err("pip failed".to_owned())
                },
            )
            .await;
        assert_eq!(failed.err().as_deref(), Some("pip failed"));
        assert!(layers.built(&k).is_none());
        let leftovers = std::fs::read_dir(dir.path().join("layers"))
            .expect("read")
            .count();
        assert_eq!(leftovers, 0, "the failed build's directory is removed");

        let (path, built) = layers
            .get_or_build(
                &k,
                None,
                |m| record(&k, m),
                |build| async move {
                    std::fs::write(build.layer.join("six.py"), "x").map_err(|e| e.to_string())
                },
            )
            .await
            .expect("built");
        assert!(path.join("six.py").is_file());
        let mode = std::fs::metadata(path.join("six.py"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let (_, again) = layers
            .get_or_build(
                &k,
                None,
                |m| record(&k, m),
                |_| async { Err::<(), _>("must not build again".to_owned()) },
            )
            .await
            .expect("reused");
        assert_eq!(again, built);
    }
}
