//! Resource limits with cgroup v1: one short-lived group per command in each of the `memory`,
//! `pids` and `cpu` hierarchies, nested under the server's own cgroup (so limits set above us
//! still apply), joined by the launcher before it execs `bwrap`, removed when the command ends.
//! Controllers that are missing or not writable are skipped; the sandbox then falls back to
//! rlimits (see `bubblewrap.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::Limits;

const BASE: &str = "managed-agents-sandbox";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Controller {
    Memory,
    Pids,
    Cpu,
}

impl Controller {
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// The writable cgroup v1 controllers and our base group in each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Cgroups {
    bases: Vec<(Controller, PathBuf)>,
}

impl Cgroups {
    /// Find our cgroup in each v1 hierarchy under `/sys/fs/cgroup` and make sure a base group
    /// can be created under it.
    pub(crate) fn detect() -> Self {
        let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
            return Self::default();
        };
        let mut bases = Vec::new();
        for controller in [Controller::Memory, Controller::Pids, Controller::Cpu] {
            // Lines look like `4:memory:/some/path`; `cpu` may be co-mounted as `cpu,cpuacct`.
            let Some(path) = own.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
                list.split(',')
                    .any(|c| c == controller.name())
                    .then(|| path.to_owned())
            }) else {
                continue;
            };
            let mount = Path::new("/sys/fs/cgroup").join(controller.name());
            let base = mount.join(path.trim_start_matches('/')).join(BASE);
            let ready = match std::fs::create_dir(&base) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::AlreadyExists,
            };
            if ready && base.join("cgroup.procs").exists() {
                remove_stale(&base);
                bases.push((controller, base));
            }
        }
        Self { bases }
    }

    pub(crate) fn has(&self, controller: Controller) -> bool {
        self.bases.iter().any(|(c, _)| *c == controller)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// A fresh group per controller, with `limits` written. Controllers without a limit to set
    /// are skipped. Failures to create a group are returned (the command must not run unlimited
    /// by surprise).
    pub(crate) fn create(&self, limits: &Limits) -> std::io::Result<Group> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut group = Group { dirs: Vec::new() };
        for (controller, base) in &self.bases {
            let writes: Vec<(&str, String)> = match controller {
                Controller::Memory => match limits.memory_bytes {
                    Some(b) => vec![
                        ("memory.limit_in_bytes", b.to_string()),
                        ("memory.memsw.limit_in_bytes", b.to_string()),
                    ],
                    None => continue,
                },
                Controller::Pids => match limits.max_processes {
                    Some(n) => vec![("pids.max", n.to_string())],
                    None => continue,
                },
                Controller::Cpu => match limits.cpus {
                    Some(cpus) => {
                        let period: u64 = std::fs::read_to_string(base.join("cpu.cfs_period_us"))
                            .ok()
                            .and_then(|s| s.trim().parse().ok())
                            .unwrap_or(100_000);
                        let quota = ((cpus * period as f64) as u64).max(1000);
                        vec![("cpu.cfs_quota_us", quota.to_string())]
                    }
                    None => continue,
                },
            };
            let dir = base.join(&name);
            std::fs::create_dir(&dir)?;
            group.dirs.push(dir.clone());
            for (file, value) in writes {
                match std::fs::write(dir.join(file), value) {
                    Ok(()) => {}
                    // Swap accounting is often disabled; the plain memory limit still applies.
                    Err(_) if file == "memory.memsw.limit_in_bytes" => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(group)
    }
}

/// Remove groups left behind by servers that died (named `<pid>-<n>` for a pid that is gone).
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .map(|(p, _)| p)
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir(entry.path());
        }
    }
}

/// The groups of one command; removed on drop (retrying in the background while the killed
/// processes are still being torn down).
#[derive(Debug)]
pub(crate) struct Group {
    dirs: Vec<PathBuf>,
}

impl Group {
    /// The `cgroup.procs` files the launcher writes its pid to.
    pub(crate) fn procs_files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.dirs.iter().map(|d| d.join("cgroup.procs"))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.dirs
            .retain(|d| std::fs::remove_dir(d).is_err() && d.exists());
        if self.dirs.is_empty() {
            return;
        }
        let dirs = std::mem::take(&mut self.dirs);
        std::thread::spawn(move || {
            let mut wait = Duration::from_millis(5);
            for _ in 0..20 {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(500));
                if dirs
                    .iter()
                    .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
                {
                    return;
                }
            }
            tracing::warn!(?dirs, "sandbox cgroups could not be removed");
        });
    }
}
