//! GitHub repository resources (`github_repository`) cloned into the session's workspace.
//!
//! **Where.** A `mount_path` under `/workspace` (the default is `/workspace/<repo>`) is a
//! directory of the workspace. Any other `mount_path` is a directory of the workspace too,
//! `/workspace/.managed-agents/repos/<resource id>`, bound writable at `mount_path` into every
//! command of the session (so it persists and counts against the workspace quota like the
//! rest); the bind is only made once that directory is verified to be a real directory (no
//! symbolic link on its host path).
//!
//! **How.** `git clone` runs in the session's sandbox, as the session's uid, through the
//! session's door: the token is never in the sandbox, a URL or `.git/config`; the door injects
//! it on the way out (`door::credentials`, HTTP Basic `x-access-token:<token>` for the
//! repository's `https` origin), and keeps doing so for the agent's own `git fetch` and `git
//! push`, with the token current at each request (rotation through the resources endpoint
//! applies at once). A token on a plain `http` URL is refused (it would cross the network in
//! clear). The clone goes to a temporary sibling and is moved into place once the branch or
//! commit is checked out, so the directory is a complete checkout or absent; git runs without
//! the agent's global configuration and never prompts.
//!
//! **When.** Before every turn, but only when the directory has no `.git` yet: a turn after a
//! restart finds the clone and leaves the agent's work alone. A failed clone or checkout is a
//! `session.error` naming the resource and its URL (`repository_*_error` by git's reason);
//! the session goes on without it, and the next turn tries again.

use std::path::{Path, PathBuf};

use managed_agents_core::event::{ErrorKind, RetryStatus, SessionError};
use managed_agents_core::ids::ResourceId;
use managed_agents_core::resource::{Checkout, Resource};
use managed_agents_core::storage::Store;

use super::{Attached, Context};
use crate::sandbox::{Bind, Command, Sandbox, Workspace};

/// Where repositories with a `mount_path` outside `/workspace` live in the workspace.
const OUTSIDE_DIR: &str = ".managed-agents/repos";
/// Longest time a clone may take.
const CLONE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);
/// Longest part of git's output a session.error repeats.
const MAX_DETAIL: usize = 1500;

/// The clone, run by `sh -c` with the URL, destination, checkout kind and reference as `$1`..
/// `$4` (never interpolated into the script). Exit 3: the destination is in the way; 4: the
/// checkout failed.
const CLONE: &str = r#"set -u
url=$1 dest=$2 kind=$3 ref=$4
[ -e "$dest/.git" ] && exit 0
if [ -e "$dest" ] || [ -L "$dest" ]; then
  if [ ! -d "$dest" ] || [ -L "$dest" ] || [ -n "$(ls -A "$dest")" ]; then
    echo "$dest already exists and is not an empty directory" >&2; exit 3
  fi
fi
parent=$(dirname "$dest")
mkdir -p "$parent" || exit 3
tmp=$(mktemp -d "$parent/.clone-XXXXXX") || exit 3
trap 'rm -rf "$tmp"' EXIT
if [ "$kind" = branch ]; then
  git clone --quiet --branch "$ref" -- "$url" "$tmp/r" || exit 1
else
  git clone --quiet -- "$url" "$tmp/r" || exit 1
fi
if [ "$kind" = commit ]; then
  git -C "$tmp/r" checkout --quiet --detach "$ref" 2>/dev/null ||
    { git -C "$tmp/r" fetch --quiet origin "$ref" &&
      git -C "$tmp/r" checkout --quiet --detach FETCH_HEAD; } || exit 4
fi
[ -d "$dest" ] && rmdir "$dest"
mv "$tmp/r" "$dest" || exit 3
"#;

pub(super) async fn prepare<S: Store, X: Sandbox>(cx: &Context<'_, S, X>, attached: &mut Attached) {
    for resource in &cx.state.resources {
        let Resource::GithubRepository {
            id,
            url,
            mount_path,
            checkout,
            authorization_token,
            ..
        } = resource
        else {
            continue;
        };
        let repository = Repository {
            id,
            url,
            mount_path,
            checkout: checkout.as_ref(),
            has_token: authorization_token.is_some(),
        };
        match attach(cx, &attached.workspace, &repository).await {
            Ok(Some(bind)) => {
                attached.workspace = attached.workspace.clone().with_bind(bind);
            }
            Ok(None) => {}
            Err(error) => attached.errors.push(error),
        }
    }
}

/// One repository resource.
struct Repository<'a> {
    id: &'a ResourceId,
    url: &'a str,
    mount_path: &'a str,
    checkout: Option<&'a Checkout>,
    has_token: bool,
}

impl Repository<'_> {
    fn error(&self, kind: fn(Option<String>) -> ErrorKind, what: &str) -> SessionError {
        SessionError {
            kind: kind(Some(self.url.to_owned())),
            message: format!(
                "repository resource {} ({}) was not cloned to {}: {what}",
                self.id, self.url, self.mount_path
            ),
            // As the API documents for repository errors: the clone is tried again at the
            // session's next turn (until it is there).
            retry_status: RetryStatus::Retrying,
        }
    }
}

/// Where a repository's clone lives: its path inside the sandbox while cloning, and the bind
/// that shows it at `mount_path` when that is outside `/workspace`.
fn placement(repository: &Repository<'_>, workspace: &Path) -> (String, Option<(PathBuf, String)>) {
    let under_workspace =
        repository.mount_path == "/workspace" || repository.mount_path.starts_with("/workspace/");
    if under_workspace {
        return (repository.mount_path.to_owned(), None);
    }
    let relative = format!("{OUTSIDE_DIR}/{}", repository.id);
    (
        format!("/workspace/{relative}"),
        Some((workspace.join(relative), repository.mount_path.to_owned())),
    )
}

/// Clones the repository when it is not there yet; the bind to add when its `mount_path` is
/// outside `/workspace`.
async fn attach<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    workspace: &Workspace,
    repository: &Repository<'_>,
) -> Result<Option<Bind>, SessionError> {
    let (path, outside) = placement(repository, workspace.dir());
    let cloned = match &outside {
        Some((host, _)) => host.join(".git"),
        None => workspace
            .dir()
            .join(
                path.trim_start_matches("/workspace")
                    .trim_start_matches('/'),
            )
            .join(".git"),
    };
    if std::fs::symlink_metadata(&cloned).is_err() {
        clone(cx, workspace, repository, &path).await?;
    }
    let Some((host, target)) = outside else {
        return Ok(None);
    };
    // The workspace is the agent's: a directory swapped for a link would bind elsewhere.
    let expected = std::fs::canonicalize(workspace.dir())
        .ok()
        .map(|dir| dir.join(OUTSIDE_DIR).join(repository.id.as_str()));
    let real = std::fs::canonicalize(&host).ok();
    let is_dir = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir());
    if real.is_none() || real != expected || !is_dir {
        return Err(repository.error(
            |url| ErrorKind::RepositoryCheckoutError {
                repository_url: url,
            },
            &format!(
                "/workspace/{OUTSIDE_DIR}/{} is not a directory",
                repository.id
            ),
        ));
    }
    Ok(Some(Bind::writable(host, target)))
}

async fn clone<S: Store, X: Sandbox>(
    cx: &Context<'_, S, X>,
    workspace: &Workspace,
    repository: &Repository<'_>,
    path: &str,
) -> Result<(), SessionError> {
    let clone_error = |url| ErrorKind::RepositoryCloneError {
        repository_url: url,
    };
    if repository.has_token && !repository.url.starts_with("https://") {
        return Err(repository.error(
            clone_error,
            "its token is only sent to an https URL, never in clear text",
        ));
    }
    let (kind, reference) = match repository.checkout {
        Some(Checkout::Branch { name }) => ("branch", name.as_str()),
        Some(Checkout::Commit { sha }) => ("commit", sha.as_str()),
        None => ("default", ""),
    };
    let command = Command::new([
        "/bin/sh",
        "-c",
        CLONE,
        "clone",
        repository.url,
        path,
        kind,
        reference,
    ])
    .env("GIT_TERMINAL_PROMPT", "0")
    .env("GIT_CONFIG_GLOBAL", "/dev/null")
    .env("GIT_ADVICE", "0")
    .timeout(CLONE_TIMEOUT);
    let output = cx
        .sandbox
        .run(workspace, cx.network.clone(), command)
        .await
        .map_err(|e| repository.error(clone_error, &format!("the sandbox failed: {e}")))?;
    if output.success() {
        return Ok(());
    }
    let detail = detail(&output.stderr);
    let kind: fn(Option<String>) -> ErrorKind = match output.exit_code {
        Some(4) => |url| ErrorKind::RepositoryCheckoutError {
            repository_url: url,
        },
        _ if output.timed_out => clone_error,
        _ => classify(&detail),
    };
    let what = if output.timed_out {
        format!("the clone timed out after {} s", CLONE_TIMEOUT.as_secs())
    } else if output.exit_code == Some(4) {
        format!("the checkout failed: {detail}")
    } else {
        detail
    };
    Err(repository.error(kind, &what))
}

/// The error kind git's message points at.
fn classify(message: &str) -> fn(Option<String>) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    if lower.contains("authentication failed")
        || lower.contains("could not read username")
        || lower.contains("could not read password")
        || lower.contains("error: 401")
    {
        |url| ErrorKind::RepositoryAuthenticationError {
            repository_url: url,
        }
    } else if lower.contains("error: 403") {
        |url| ErrorKind::RepositoryForbiddenError {
            repository_url: url,
        }
    } else if lower.contains("not found") && lower.contains("remote branch") {
        |url| ErrorKind::RepositoryCheckoutError {
            repository_url: url,
        }
    } else if lower.contains("not found") || lower.contains("error: 404") {
        |url| ErrorKind::RepositoryNotFoundError {
            repository_url: url,
        }
    } else {
        |url| ErrorKind::RepositoryCloneError {
            repository_url: url,
        }
    }
}

/// git's message on one line, cut to [`MAX_DETAIL`] characters.
fn detail(stderr: &str) -> String {
    let joined = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let mut text: String = joined.chars().take(MAX_DETAIL).collect();
    if text.len() < joined.len() {
        text.push('…');
    }
    if text.is_empty() {
        "git failed without a message".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_messages_are_classified() {
        let kind = |m: &str| classify(m)(None);
        assert!(matches!(
            kind("fatal: could not read Username for 'https://h': terminal prompts disabled"),
            ErrorKind::RepositoryAuthenticationError { .. }
        ));
        assert!(matches!(
            kind(
                "fatal: unable to access 'https://h/r.git/': The requested URL returned error: 403"
            ),
            ErrorKind::RepositoryForbiddenError { .. }
        ));
        assert!(matches!(
            kind("fatal: Remote branch nope not found in upstream origin"),
            ErrorKind::RepositoryCheckoutError { .. }
        ));
        assert!(matches!(
            kind("remote: Repository not found. fatal: repository 'https://h/r.git/' not found"),
            ErrorKind::RepositoryNotFoundError { .. }
        ));
        assert!(matches!(
            kind("fatal: unable to access: error: 502"),
            ErrorKind::RepositoryCloneError { .. }
        ));
    }

    #[test]
    fn mount_paths_outside_the_workspace_live_in_it_and_are_bound() {
        let id = ResourceId::parse("sesrsc_01test").expect("id");
        let repo = |mount_path| Repository {
            id: &id,
            url: "https://h/o/r.git",
            mount_path,
            checkout: None,
            has_token: false,
        };
        let ws = Path::new("/data/workspaces/sesn_1");
        assert_eq!(
            placement(&repo("/workspace/r"), ws),
            ("/workspace/r".into(), None)
        );
        let (path, bind) = placement(&repo("/mnt/src"), ws);
        assert_eq!(path, "/workspace/.managed-agents/repos/sesrsc_01test");
        assert_eq!(
            bind,
            Some((
                ws.join(".managed-agents/repos/sesrsc_01test"),
                "/mnt/src".to_owned()
            ))
        );
    }
}
