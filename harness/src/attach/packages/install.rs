//! The installers of each package manager, as sandbox commands that write into the layer
//! being built (mounted writable at [`MOUNT`] during the build, read-only afterwards), and the
//! variables that make the layer's contents usable ([`variables`]).
//!
//! Layout of a layer, one directory per manager that has packages:
//! - `apt/`: Debian packages downloaded with `apt-get install --download-only` (dependencies
//!   resolved against the host's installed packages, its `/var/lib/dpkg` bound read-only;
//!   apt's lists and archives in the build's home) and unpacked with `dpkg-deb -x`: no root,
//!   no maintainer scripts. Executables on `PATH`, libraries on `LD_LIBRARY_PATH`.
//! - `cargo/`: `cargo install --root` (binaries in `cargo/bin`).
//! - `gem/`: `gem install --install-dir` (`GEM_PATH`, executables in `gem/bin`).
//! - `go/`: `go install` with `GOBIN=go/bin` (an entry without `@version` gets `@latest`).
//! - `npm/`: `npm install --global --prefix` (`NODE_PATH=npm/lib/node_modules`, executables in
//!   `npm/bin`).
//! - `pip/`: `python3 -m pip install --target` (`PYTHONPATH`, scripts in `pip/bin`).
//!
//! Package entries are passed as separate arguments, never through a shell's parsing; an entry
//! that starts with `-` (an option) or holds a control character is refused. Version pins are
//! written as each manager's documentation shows (`six==1.16.0`, `semver@7.6.3`,
//! `rails:7.1.0` for gems, `ripgrep@14.1.0` for cargo, `golang.org/x/tools/cmd/stringer@v0.1.0`,
//! `jq=1.6-2.1` for apt); the gem form `name:version` is turned into `name -v version`.
//! Caches go to the build's home (an empty directory that is the build's `/workspace`), never
//! to a session's workspace, whose files the agent controls.

use managed_agents_core::environment::Packages;

use crate::sandbox::Command;

/// Where the layer appears inside sandboxes (while built and when used).
pub(crate) const MOUNT: &str = "/opt/managed-agents/env";
/// Longest time one manager's installer may take.
pub(crate) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);
/// Output kept of one installer's failure report.
pub(crate) const OUTPUT_LIMIT: usize = 64 * 1024;
/// Lines of a failed installer's output its report repeats.
const TAIL_LINES: usize = 20;

/// The sandbox's default `PATH` (as `sandbox/bubblewrap.rs` sets it).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One manager's installation: its name and the command that installs its packages.
pub(crate) struct Step {
    pub(crate) manager: &'static str,
    pub(crate) command: Command,
}

/// Refuses entries that could be taken for options or that hold control characters.
fn check(manager: &str, entries: &[String]) -> Result<(), String> {
    for entry in entries {
        if entry.trim().is_empty() || entry.starts_with('-') || entry.chars().any(char::is_control)
        {
            return Err(format!(
                "packages.{manager}: {entry:?} is not a package name (an entry may not be empty, \
                 start with '-' or hold control characters)"
            ));
        }
    }
    Ok(())
}

/// The installers of `packages`, in the documented order (apt, cargo, gem, go, npm, pip).
pub(crate) fn steps(packages: &Packages) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (manager, entries) in packages.lists() {
        if entries.is_empty() {
            continue;
        }
        check(manager, entries)?;
        let command = match manager {
            "apt" => apt(entries),
            "cargo" => cargo(entries),
            "gem" => gem(entries),
            "go" => go(entries),
            "npm" => npm(entries),
            _ => pip(entries),
        };
        // The installer's output goes to a log whose end is printed on failure: that end is
        // what the session.error repeats.
        let mut argv = vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            format!(
                "\"$@\" >/workspace/{manager}.log 2>&1 || {{ s=$?; tail -n {TAIL_LINES} \
                 /workspace/{manager}.log >&2; exit $s; }}"
            ),
            manager.to_owned(),
        ];
        argv.extend(command.argv);
        steps.push(Step {
            manager,
            command: Command { argv, ..command }
                .env("HOME", "/workspace")
                .timeout(TIMEOUT)
                .output_limit(OUTPUT_LIMIT),
        });
    }
    Ok(steps)
}

fn with_entries(mut argv: Vec<String>, entries: &[String]) -> Command {
    argv.extend(entries.iter().cloned());
    Command::new(argv)
}

fn apt(entries: &[String]) -> Command {
    // The entries are the script's arguments (`"$@"`); the script itself is fixed.
    let script = format!(
        "set -e\n\
         s=/workspace/apt\n\
         mkdir -p $s/lists/partial $s/cache/archives/partial {MOUNT}/apt\n\
         o=\"-o Dir::State::Lists=$s/lists -o Dir::Cache=$s/cache -o Debug::NoLocking=1 \
         -o Acquire::Retries=2\"\n\
         apt-get -q $o update >$s/update.log 2>&1 || {{ cat $s/update.log >&2; exit 1; }}\n\
         apt-get -q -y --no-install-recommends --download-only $o install \"$@\"\n\
         for deb in $s/cache/archives/*.deb; do\n\
         [ -e \"$deb\" ] || continue\n\
         dpkg-deb -x \"$deb\" {MOUNT}/apt\n\
         done\n"
    );
    let mut argv = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        script,
        "apt".to_owned(),
    ];
    argv.extend(entries.iter().cloned());
    Command::new(argv)
}

fn cargo(entries: &[String]) -> Command {
    with_entries(
        vec![
            "cargo".into(),
            "install".into(),
            "--locked".into(),
            "--root".into(),
            format!("{MOUNT}/cargo"),
            "--".into(),
        ],
        entries,
    )
    .env("CARGO_HOME", "/workspace/cargo-home")
    .env("CARGO_TARGET_DIR", "/workspace/cargo-target")
}

fn gem(entries: &[String]) -> Command {
    // One `gem install` per entry: `-v` applies to the whole command line.
    let mut script = String::from("set -e\n");
    for (i, entry) in entries.iter().enumerate() {
        let n = i + 1;
        if entry.contains(':') {
            script.push_str(&format!(
                "e=\"${n}\"; gem install --no-document --install-dir {MOUNT}/gem --bindir \
                 {MOUNT}/gem/bin \"${{e%%:*}}\" -v \"${{e#*:}}\"\n"
            ));
        } else {
            script.push_str(&format!(
                "gem install --no-document --install-dir {MOUNT}/gem --bindir {MOUNT}/gem/bin \
                 \"${n}\"\n"
            ));
        }
    }
    let mut argv = vec!["/bin/sh".into(), "-c".into(), script, "gem".into()];
    argv.extend(entries.iter().cloned());
    Command::new(argv).env("GEM_HOME", format!("{MOUNT}/gem"))
}

fn go(entries: &[String]) -> Command {
    let modules: Vec<String> = entries
        .iter()
        .map(|e| {
            if e.contains('@') {
                e.clone()
            } else {
                format!("{e}@latest")
            }
        })
        .collect();
    with_entries(vec!["go".into(), "install".into(), "--".into()], &modules)
        .env("GOBIN", format!("{MOUNT}/go/bin"))
        .env("GOPATH", "/workspace/go")
        .env("GOMODCACHE", "/workspace/go/mod")
        .env("GOCACHE", "/workspace/go/cache")
        .env("GOFLAGS", "-modcacherw")
}

fn npm(entries: &[String]) -> Command {
    with_entries(
        vec![
            "npm".into(),
            "install".into(),
            "--global".into(),
            "--prefix".into(),
            format!("{MOUNT}/npm"),
            "--no-audit".into(),
            "--no-fund".into(),
            "--no-update-notifier".into(),
            "--".into(),
        ],
        entries,
    )
    .env("npm_config_cache", "/workspace/npm-cache")
}

fn pip(entries: &[String]) -> Command {
    with_entries(
        vec![
            "python3".into(),
            "-m".into(),
            "pip".into(),
            "install".into(),
            "--no-input".into(),
            "--disable-pip-version-check".into(),
            "--no-warn-script-location".into(),
            "--target".into(),
            format!("{MOUNT}/pip"),
            "--".into(),
        ],
        entries,
    )
    .env("PIP_CACHE_DIR", "/workspace/pip-cache")
}

/// The variables a session needs to use `packages`' layer at [`MOUNT`].
pub(crate) fn variables(packages: &Packages) -> Vec<(&'static str, String)> {
    let has = |list: &Vec<String>| !list.is_empty();
    let mut path = Vec::new();
    let mut vars = Vec::new();
    if has(&packages.apt) {
        path.push(format!(
            "{MOUNT}/apt/usr/local/bin:{MOUNT}/apt/usr/bin:{MOUNT}/apt/bin"
        ));
        vars.push((
            "LD_LIBRARY_PATH",
            format!(
                "{MOUNT}/apt/usr/lib/x86_64-linux-gnu:{MOUNT}/apt/lib/x86_64-linux-gnu:\
                 {MOUNT}/apt/usr/lib/aarch64-linux-gnu:{MOUNT}/apt/lib/aarch64-linux-gnu:\
                 {MOUNT}/apt/usr/lib"
            ),
        ));
    }
    if has(&packages.cargo) {
        path.push(format!("{MOUNT}/cargo/bin"));
    }
    if has(&packages.gem) {
        path.push(format!("{MOUNT}/gem/bin"));
        vars.push(("GEM_PATH", format!("{MOUNT}/gem")));
    }
    if has(&packages.go) {
        path.push(format!("{MOUNT}/go/bin"));
    }
    if has(&packages.npm) {
        path.push(format!("{MOUNT}/npm/bin"));
        vars.push(("NODE_PATH", format!("{MOUNT}/npm/lib/node_modules")));
    }
    if has(&packages.pip) {
        path.push(format!("{MOUNT}/pip/bin"));
        vars.push(("PYTHONPATH", format!("{MOUNT}/pip")));
    }
    if !path.is_empty() {
        path.push(SYSTEM_PATH.to_owned());
        vars.insert(0, ("PATH", path.join(":")));
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_run_in_the_documented_order_with_entries_as_arguments() {
        let packages = Packages {
            pip: vec!["six==1.16.0".into()],
            apt: vec!["jq".into()],
            npm: vec!["semver@7.6.3".into(), "is-number".into()],
            ..Packages::default()
        };
        let steps = steps(&packages).expect("steps");
        let names: Vec<&str> = steps.iter().map(|s| s.manager).collect();
        assert_eq!(names, ["apt", "npm", "pip"]);
        let npm = &steps[1].command.argv;
        assert_eq!(&npm[..2], ["/bin/sh", "-c"]);
        assert_eq!(npm[4], "npm");
        assert_eq!(&npm[npm.len() - 3..], ["--", "semver@7.6.3", "is-number"]);
        assert_eq!(steps[0].command.argv.last().map(String::as_str), Some("jq"));
    }

    #[test]
    fn option_like_entries_are_refused() {
        let packages = Packages {
            pip: vec!["--index-url=http://evil".into()],
            ..Packages::default()
        };
        assert!(steps(&packages).is_err());
    }

    #[test]
    fn the_variables_point_into_the_layer() {
        let packages = Packages {
            pip: vec!["six".into()],
            npm: vec!["semver".into()],
            ..Packages::default()
        };
        let vars = variables(&packages);
        assert_eq!(
            vars[0],
            (
                "PATH",
                format!("{MOUNT}/npm/bin:{MOUNT}/pip/bin:{SYSTEM_PATH}")
            )
        );
        assert!(vars.contains(&("PYTHONPATH", format!("{MOUNT}/pip"))));
        assert!(vars.contains(&("NODE_PATH", format!("{MOUNT}/npm/lib/node_modules"))));
        assert!(variables(&Packages::default()).is_empty());
    }
}
