//! Agent runtimes: installing a pinned version with a stand-in `npm` (atomic, idempotent,
//! readable by sandbox uids), failures that leave nothing behind, and where an engine finds an
//! agent (explicit binary, runtime directory, `PATH`) or the error it reports when none is there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use managed_agents_harness::runtimes::{Agent, Error, Runtimes, MOUNT};

/// A stand-in `npm` that logs its arguments to `<dir>/npm.log` and, unless `<dir>/fail` exists,
/// lays out `node_modules` like `npm install --prefix P <package>@<version>` does: the package
/// and a relative link `.bin/<name>` to its executable, created with a private umask.
fn stand_in_npm(dir: &Path) -> PathBuf {
    let npm = dir.join("npm");
    let script = format!(
        r#"#!/bin/sh
set -eu
umask 077
echo "$*" >> '{log}'
if [ -e '{fail}' ]; then echo "npm error 404 Not Found" >&2; exit 1; fi
prefix=; spec=
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix=$2; shift ;; -*|install) ;; *) spec=$1 ;; esac
  shift
done
case "$spec" in
  @anthropic-ai/claude-code@*) name=claude ;;
  @openai/codex@*) name=codex ;;
  *) echo "unexpected package $spec" >&2; exit 2 ;;
esac
pkg="$prefix/node_modules/$name-package"
mkdir -p "$pkg/bin" "$prefix/node_modules/.bin"
printf '#!/bin/sh\necho "%s stand-in"\n' "$spec" > "$pkg/bin/$name"
chmod 700 "$pkg/bin/$name"
echo "{{}}" > "$pkg/package.json"
ln -s "../$name-package/bin/$name" "$prefix/node_modules/.bin/$name"
"#,
        log = dir.join("npm.log").display(),
        fail = dir.join("fail").display(),
    );
    // Written by a child process, not by this one: a write descriptor held here while a test on
    // another thread forks would be inherited, and exec'ing the script then fails with
    // "Text file busy" (ETXTBSY) until that child execs.
    let source = dir.join("npm.source");
    std::fs::write(&source, script).unwrap();
    let status = std::process::Command::new("install")
        .args(["-m", "0755"])
        .arg(&source)
        .arg(&npm)
        .status()
        .unwrap();
    assert!(status.success(), "install(1) the stand-in npm");
    npm
}

fn npm_calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("npm.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Every entry of `dir` (recursively, symlinks not followed) with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            continue;
        }
        out.push((path.clone(), meta.permissions().mode() & 0o777));
        if meta.is_dir() {
            out.extend(modes(&path));
        }
    }
    out
}

#[tokio::test]
async fn install_is_atomic_idempotent_and_readable_by_everyone() {
    let scratch = tempfile::tempdir().unwrap();
    let npm = stand_in_npm(scratch.path());
    let runtimes = Runtimes::new(scratch.path().join("runtimes")).with_path_search(false);

    assert!(runtimes.installed(Agent::Claude).is_none());
    let (dir, fresh) = runtimes.install(Agent::Claude, Some(&npm)).await.unwrap();
    assert!(fresh);
    assert_eq!(dir, runtimes.dir().join("claude-2.1.332"));
    assert_eq!(runtimes.installed(Agent::Claude), Some(dir.clone()));
    let calls = npm_calls(scratch.path());
    assert_eq!(calls.len(), 1);
    assert!(
        calls[0].starts_with("install --prefix ")
            && calls[0].ends_with(" @anthropic-ai/claude-code@2.1.332"),
        "{}",
        calls[0]
    );
    // The stand-in installed with umask 077; the runtime is open to the sandbox uids.
    for (path, mode) in modes(runtimes.dir()) {
        assert!(
            mode == 0o755 || mode == 0o644,
            "{} has mode {mode:o}",
            path.display()
        );
    }
    assert_eq!(
        modes(&dir)
            .into_iter()
            .find(|(p, _)| p.ends_with("bin/claude"))
            .map(|(_, m)| m),
        Some(0o755)
    );
    // Nothing but the version directory: the temporary one was renamed.
    let names: Vec<String> = std::fs::read_dir(runtimes.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["claude-2.1.332"]);

    // Installed already: npm is not called again.
    let (again, fresh) = runtimes.install(Agent::Claude, Some(&npm)).await.unwrap();
    assert_eq!((again, fresh), (dir.clone(), false));
    assert_eq!(npm_calls(scratch.path()).len(), 1);

    // Found in the runtime directory, executed at the sandbox's read-only mount.
    let found = runtimes.locate(Agent::Claude).unwrap();
    assert_eq!(found.host, dir.join("node_modules/.bin/claude"));
    assert_eq!(
        found.in_sandbox,
        Path::new(MOUNT).join("claude-2.1.332/node_modules/.bin/claude")
    );
    let out = std::process::Command::new(&found.host).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "@anthropic-ai/claude-code@2.1.332 stand-in\n"
    );
    assert!(
        runtimes.binds().is_empty(),
        "the runtime dir is not a same-path bind"
    );
}

#[tokio::test]
async fn a_failed_install_leaves_nothing_and_says_why() {
    let scratch = tempfile::tempdir().unwrap();
    let npm = stand_in_npm(scratch.path());
    std::fs::write(scratch.path().join("fail"), "").unwrap();
    let runtimes = Runtimes::new(scratch.path().join("runtimes")).with_path_search(false);
    let err = runtimes
        .install(Agent::Codex, Some(&npm))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Npm { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("npm install @openai/codex@0.171.0 failed")
            && message.contains("404 Not Found"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(runtimes.dir()).unwrap().count(), 0);
    assert!(runtimes.installed(Agent::Codex).is_none());

    let missing = runtimes
        .install(Agent::Codex, Some(&scratch.path().join("no-npm")))
        .await
        .unwrap_err();
    assert!(matches!(missing, Error::NpmSpawn { .. }), "{missing}");
}

#[test]
fn a_missing_runtime_names_the_fixes() {
    let scratch = tempfile::tempdir().unwrap();
    let runtimes = Runtimes::new(scratch.path().join("runtimes")).with_path_search(false);
    let err = runtimes.locate(Agent::Codex).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the `codex` agent runtime is not installed: run `managed-agents runtimes install \
             codex` (installs @openai/codex@0.171.0 into {}), put `codex` on the server's PATH, \
             or start the server with --codex-bin",
            runtimes.dir().display()
        )
    );
}

#[tokio::test]
async fn an_explicit_binary_wins_and_is_bound_at_its_own_path() {
    let scratch = tempfile::tempdir().unwrap();
    let npm = stand_in_npm(scratch.path());
    let runtimes = Runtimes::new(scratch.path().join("runtimes")).with_path_search(false);
    runtimes.install(Agent::Claude, Some(&npm)).await.unwrap();

    // An npm prefix elsewhere: the link in `.bin` and the package it points into.
    let other = scratch.path().join("opt-claude");
    let status = std::process::Command::new(&npm)
        .args(["install", "--prefix"])
        .arg(&other)
        .arg("@anthropic-ai/claude-code@9.9.9")
        .status()
        .unwrap();
    assert!(status.success());
    let bin = other.join("node_modules/.bin/claude");
    let runtimes = runtimes.with_binary(Agent::Claude, &bin);
    let found = runtimes.locate(Agent::Claude).unwrap();
    assert_eq!((&found.host, &found.in_sandbox), (&bin, &bin));
    assert_eq!(runtimes.binds(), vec![other]);

    let runtimes = runtimes.with_binary(Agent::Claude, scratch.path().join("nothing"));
    let err = runtimes.locate(Agent::Claude).unwrap_err();
    assert!(matches!(err, Error::NotExecutable { .. }), "{err}");
    assert!(err.to_string().starts_with("--claude-bin "), "{err}");
}

#[test]
fn agents_by_name() {
    assert_eq!(Agent::from_name("claude"), Some(Agent::Claude));
    assert_eq!(Agent::from_name("codex"), Some(Agent::Codex));
    assert_eq!(Agent::from_name("native"), None);
    assert_eq!(Agent::Codex.spec(), "@openai/codex@0.171.0");
}

#[tokio::test]
async fn sandboxes_run_the_installed_runtime_read_only_from_a_private_data_dir() {
    use managed_agents_harness::sandbox::{
        BubblewrapSandbox, Command, Network, Options, Sandbox, Workspaces,
    };
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let npm = stand_in_npm(scratch.path());
    let data = scratch.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let runtimes = Runtimes::new(data.join("runtimes")).with_path_search(false);
    runtimes.install(Agent::Claude, Some(&npm)).await.unwrap();
    // Nobody else may even pass through the data dir or its parent.
    for d in [scratch.path(), &data] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let workspaces = Workspaces::new(data.join("workspaces"));
    let workspace = workspaces.create("sesn_runtime").await.unwrap();
    let sandbox = BubblewrapSandbox::new(Options {
        runtimes: Some(runtimes.dir().to_owned()),
        ..Options::default()
    })
    .unwrap();
    let claude = runtimes.locate(Agent::Claude).unwrap().in_sandbox;
    let script = format!(
        "{} && touch {MOUNT}/mine 2>&1 | grep -o 'Read-only file system'",
        claude.display()
    );
    let out = sandbox
        .run(&workspace, Network::Isolated, Command::shell(script))
        .await
        .unwrap();
    assert_eq!(
        out.stdout, "@anthropic-ai/claude-code@2.1.332 stand-in\nRead-only file system\n",
        "{}",
        out.stderr
    );

    // No runtime directory: nothing is bound and commands still run.
    let sandbox = BubblewrapSandbox::new(Options {
        runtimes: Some(data.join("no-runtimes")),
        ..Options::default()
    })
    .unwrap();
    let out = sandbox
        .run(
            &workspace,
            Network::Isolated,
            Command::shell(format!("test -e {MOUNT} || echo absent")),
        )
        .await
        .unwrap();
    assert_eq!(out.stdout, "absent\n", "{}", out.stderr);
}
