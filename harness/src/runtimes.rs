//! The agent CLIs that run inside sandboxes ([`Agent`]: Claude Code and Codex): where they are
//! installed ([`Runtimes`]), how `managed-agents runtimes install` puts a pinned version there,
//! and how an engine finds one ([`Runtimes::locate`]).
//!
//! **Layout.** A runtime directory (default `<data-dir>/runtimes`, `--runtimes-dir`) holds one
//! directory per pinned version, `<name>-<version>/` (`claude-2.1.332/`), with the npm package
//! under `node_modules/` and its entry point at `node_modules/.bin/<name>`, plus a marker file
//! naming the package. It is bound read-only into every sandbox at [`MOUNT`], so the same
//! install serves every session; everything in it is readable by the sandbox uids (dirs 0755,
//! files 0644 or 0755) and owned by the installer.
//!
//! **Installing** runs `npm install` of the pinned version into a temporary sibling directory,
//! opens its permissions, writes the marker and renames it into place: a version directory is
//! complete or absent, and two installers racing leave one of them. Installing an installed
//! version does nothing. The pins are also in `harness/runtimes.pins` for
//! `scripts/agent-runtimes.sh` (a test keeps both the same).
//!
//! **Locating** prefers an explicit binary (`--claude-bin`, `--codex-bin`), then the pinned
//! version in the runtime directory, then the name on the server's `PATH`. An explicit or
//! `PATH` binary is used at its own path inside the sandbox; [`Runtimes::binds`] names the host
//! directories the sandbox must bind read-only for it (none under `/usr`).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::sandbox;

/// Where the runtime directory appears inside a sandbox.
pub const MOUNT: &str = "/opt/managed-agents/runtimes";
/// The file that marks a complete version directory; it holds `<package>@<version>`.
const MARKER: &str = ".managed-agents-runtime";
/// Directories every sandbox already sees at the same path (bound by `bubblewrap.rs`).
const SYSTEM_DIRS: [&str; 7] = [
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
];

/// An agent CLI that runs inside the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Agent {
    /// Claude Code (`@anthropic-ai/claude-code`).
    Claude,
    /// Codex (`@openai/codex`).
    Codex,
}

impl Agent {
    /// Every agent.
    pub const ALL: [Agent; 2] = [Agent::Claude, Agent::Codex];

    /// The command name (`claude`, `codex`), also the engine name.
    pub fn name(self) -> &'static str {
        match self {
            Agent::Claude => "claude",
            Agent::Codex => "codex",
        }
    }

    /// The npm package.
    pub fn package(self) -> &'static str {
        match self {
            Agent::Claude => "@anthropic-ai/claude-code",
            Agent::Codex => "@openai/codex",
        }
    }

    /// The pinned version.
    pub fn version(self) -> &'static str {
        match self {
            Agent::Claude => "2.1.332",
            Agent::Codex => "0.171.0",
        }
    }

    /// `<package>@<version>`, what npm installs.
    pub fn spec(self) -> String {
        format!("{}@{}", self.package(), self.version())
    }

    /// The agent with this command name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The version directory's name, `<name>-<version>`.
    fn dir_name(self) -> String {
        format!("{}-{}", self.name(), self.version())
    }

    /// The entry point inside a version directory.
    fn entry(self) -> PathBuf {
        Path::new("node_modules/.bin").join(self.name())
    }
}

impl fmt::Display for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors finding or installing a runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the `{agent}` agent runtime is not installed: run `managed-agents runtimes install \
         {agent}` (installs {spec} into {dir}), put `{agent}` on the server's PATH, or start the \
         server with --{agent}-bin"
    )]
    NotInstalled {
        agent: Agent,
        spec: String,
        dir: PathBuf,
    },
    #[error("--{agent}-bin {path}: not an executable file")]
    NotExecutable { agent: Agent, path: PathBuf },
    #[error("npm was not found on PATH (install Node.js and npm to install agent runtimes)")]
    NpmNotFound,
    #[error("cannot run npm ({path}): {source}")]
    NpmSpawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("npm install {spec} failed ({status}): {stderr}")]
    Npm {
        spec: String,
        status: String,
        stderr: String,
    },
    #[error("npm installed {spec} but its entry point {entry} is missing")]
    Incomplete { spec: String, entry: PathBuf },
    #[error("runtime directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where an agent's binary is, on the host and inside a sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// The binary on the host (to check it, or to run it outside a sandbox).
    pub host: PathBuf,
    /// The path to execute inside a sandbox.
    pub in_sandbox: PathBuf,
}

/// The runtime directory and the operator's explicit binaries.
#[derive(Clone, Debug)]
pub struct Runtimes {
    dir: PathBuf,
    explicit: Vec<(Agent, PathBuf)>,
    search_path: bool,
}

impl Runtimes {
    /// Runtimes installed under `dir` (made absolute against the current directory).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let dir = std::path::absolute(&dir).unwrap_or(dir);
        Self {
            dir,
            explicit: Vec::new(),
            search_path: true,
        }
    }

    /// Use `path` for `agent` (`--claude-bin`, `--codex-bin`).
    pub fn with_binary(mut self, agent: Agent, path: impl Into<PathBuf>) -> Self {
        self.explicit.retain(|(a, _)| *a != agent);
        self.explicit.push((agent, path.into()));
        self
    }

    /// Whether to look for agents on the server's `PATH` after the runtime directory (default:
    /// yes; tests that need a missing runtime turn it off).
    pub fn with_path_search(mut self, search: bool) -> Self {
        self.search_path = search;
        self
    }

    /// The runtime directory on the host.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The version directory of `agent` when it is completely installed.
    pub fn installed(&self, agent: Agent) -> Option<PathBuf> {
        let dir = self.dir.join(agent.dir_name());
        (dir.join(MARKER).is_file() && dir.join(agent.entry()).exists()).then_some(dir)
    }

    /// Where `agent` is: its explicit binary, the pinned install, or `PATH`; see the module
    /// documentation.
    pub fn locate(&self, agent: Agent) -> Result<Located, Error> {
        if let Some((_, path)) = self.explicit.iter().find(|(a, _)| *a == agent) {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            if !executable(&path) {
                return Err(Error::NotExecutable { agent, path });
            }
            return Ok(Located {
                host: path.clone(),
                in_sandbox: path,
            });
        }
        if let Some(dir) = self.installed(agent) {
            return Ok(Located {
                host: dir.join(agent.entry()),
                in_sandbox: Path::new(MOUNT).join(agent.dir_name()).join(agent.entry()),
            });
        }
        if self.search_path {
            if let Some(path) = sandbox::which(agent.name()) {
                return Ok(Located {
                    host: path.clone(),
                    in_sandbox: path,
                });
            }
        }
        Err(Error::NotInstalled {
            agent,
            spec: agent.spec(),
            dir: self.dir.clone(),
        })
    }

    /// Host directories a sandbox must bind read-only at the same path for the explicit and
    /// `PATH` binaries to work there: for each one outside the system directories, the
    /// directory holding its `node_modules` (so npm's relative links resolve), else its own
    /// directory. The runtime directory itself is bound at [`MOUNT`], not listed here.
    pub fn binds(&self) -> Vec<PathBuf> {
        let mut binds: Vec<PathBuf> = Vec::new();
        for agent in Agent::ALL {
            let Ok(found) = self.locate(agent) else {
                continue;
            };
            if found.in_sandbox.starts_with(MOUNT) {
                continue;
            }
            for path in [found.host.clone(), canonical(&found.host)] {
                if SYSTEM_DIRS.iter().any(|d| path.starts_with(d)) {
                    continue;
                }
                let root = path
                    .ancestors()
                    .find(|a| a.file_name().is_some_and(|n| n == "node_modules"))
                    .and_then(Path::parent)
                    .or_else(|| path.parent())
                    .map(Path::to_path_buf);
                if let Some(root) = root {
                    if !binds.iter().any(|b| root.starts_with(b)) {
                        binds.retain(|b| !b.starts_with(&root));
                        binds.push(root);
                    }
                }
            }
        }
        binds
    }

    /// Create the runtime directory (mode 0755) if it is missing, so sandboxes can bind it
    /// before anything is installed.
    pub fn ensure_dir(&self) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: self.dir.clone(),
            source,
        };
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).map_err(io)?;
        }
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o755)).map_err(io)
    }

    /// Install the pinned version of `agent` with `npm` (found on `PATH` when `None`) unless it
    /// is installed already; returns its version directory and whether this call installed it.
    pub async fn install(
        &self,
        agent: Agent,
        npm: Option<&Path>,
    ) -> Result<(PathBuf, bool), Error> {
        if let Some(dir) = self.installed(agent) {
            return Ok((dir, false));
        }
        let npm = match npm {
            Some(path) => path.to_owned(),
            None => sandbox::which("npm").ok_or(Error::NpmNotFound)?,
        };
        self.ensure_dir()?;
        let target = self.dir.join(agent.dir_name());
        let temp = tempfile::Builder::new()
            .prefix(&format!(".{}.installing-", agent.dir_name()))
            .tempdir_in(&self.dir)
            .map_err(|source| Error::Io {
                path: self.dir.clone(),
                source,
            })?;
        let spec = agent.spec();
        let output = tokio::process::Command::new(&npm)
            .args([
                "install",
                "--prefix",
                &temp.path().to_string_lossy(),
                "--no-audit",
                "--no-fund",
                "--no-save",
                "--loglevel=error",
                "--engine-strict=false",
                &spec,
            ])
            .current_dir(temp.path())
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(|source| Error::NpmSpawn {
                path: npm.clone(),
                source,
            })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            return Err(Error::Npm {
                spec,
                status: output.status.to_string(),
                stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            });
        }
        let entry = temp.path().join(agent.entry());
        if !entry.exists() {
            return Err(Error::Incomplete {
                spec,
                entry: agent.entry(),
            });
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        open_permissions(temp.path()).map_err(io(temp.path()))?;
        std::fs::write(temp.path().join(MARKER), format!("{spec}\n"))
            .map_err(io(&temp.path().join(MARKER)))?;
        open_permissions(&temp.path().join(MARKER)).map_err(io(temp.path()))?;
        let temp = temp.keep();
        match std::fs::rename(&temp, &target) {
            Ok(()) => Ok((target, true)),
            // Another installer won the race: keep its directory.
            Err(_) if self.installed(agent).is_some() => {
                let _ = std::fs::remove_dir_all(&temp);
                Ok((target, false))
            }
            Err(source) => {
                let _ = std::fs::remove_dir_all(&temp);
                Err(Error::Io {
                    path: target,
                    source,
                })
            }
        }
    }
}

/// Make a tree readable (and its directories searchable) by everyone, writable by its owner
/// only: directories 0755, executables 0755, other files 0644. Symbolic links are left alone.
fn open_permissions(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    if meta.is_dir() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(path)? {
            open_permissions(&entry?.path())?;
        }
        return Ok(());
    }
    let mode = if meta.permissions().mode() & 0o100 != 0 {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pins_file_names_the_pinned_versions() {
        let pins = include_str!("../runtimes.pins");
        let lines: Vec<Vec<&str>> = pins
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        let expected: Vec<Vec<&str>> = Agent::ALL
            .iter()
            .map(|a| vec![a.name(), a.package(), a.version()])
            .collect();
        assert_eq!(lines, expected);
    }
}
