//! Session workspaces: one private directory (mode 0700) per session under a root in the data
//! dir, bound read-write at `/workspace` in the sandbox. It persists across turns and restarts
//! and is deleted with the session.
//!
//! The root is mode 0711: nobody but its owner can list it, but the unprivileged uid the sandbox
//! runs as can pass through it to the workspace it owns (bubblewrap resolves the bind source
//! as that uid, so every ancestor of a workspace must be searchable, `o+x`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::Error;

/// The directory that holds every session's workspace (for example `<data dir>/workspaces`).
#[derive(Clone, Debug)]
pub struct Workspaces {
    root: PathBuf,
}

/// One session's workspace directory on the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    dir: PathBuf,
}

impl Workspace {
    /// Use an existing directory as a workspace (tests, embedding). Prefer
    /// [`Workspaces::create`].
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The host path bound at `/workspace`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Workspaces {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The workspace of a session (it may not exist yet).
    pub fn get(&self, session_id: &str) -> Result<Workspace, Error> {
        validate(session_id)?;
        Ok(Workspace {
            dir: self.root.join(session_id),
        })
    }

    /// Create (or reopen) the session's workspace with mode 0700; the root is created with mode
    /// 0711.
    pub async fn create(&self, session_id: &str) -> Result<Workspace, Error> {
        let ws = self.get(session_id)?;
        for (dir, mode) in [(&self.root, 0o711), (&ws.dir, 0o700)] {
            let err = |source| Error::Workspace {
                path: dir.clone(),
                source,
            };
            match tokio::fs::create_dir(dir).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tokio::fs::create_dir_all(dir).await.map_err(err)?;
                }
                Err(e) => return Err(err(e)),
            }
            tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(err)?;
        }
        Ok(ws)
    }

    /// Delete the session's workspace and everything in it; a missing workspace is fine.
    pub async fn delete(&self, session_id: &str) -> Result<(), Error> {
        let ws = self.get(session_id)?;
        match tokio::fs::remove_dir_all(&ws.dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Workspace {
                path: ws.dir,
                source,
            }),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_is_private_and_idempotent_delete_removes() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspaces::new(tmp.path().join("workspaces"));
        let a = ws.create("sesn_a").await.unwrap();
        std::fs::write(a.dir().join("f"), "x").unwrap();
        let again = ws.create("sesn_a").await.unwrap();
        assert_eq!(a, again);
        assert!(a.dir().join("f").exists());
        for (dir, want) in [(ws.root(), 0o711), (a.dir(), 0o700)] {
            let mode = std::fs::metadata(dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, want, "{}", dir.display());
        }
        ws.delete("sesn_a").await.unwrap();
        assert!(!a.dir().exists());
        ws.delete("sesn_a").await.unwrap();
    }

    #[test]
    fn rejects_path_tricks() {
        let ws = Workspaces::new("/data");
        for bad in ["", "..", "a/b", "../x", "a b", "ü"] {
            assert!(ws.get(bad).is_err(), "{bad:?}");
        }
    }
}
