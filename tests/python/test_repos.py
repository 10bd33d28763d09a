"""GitHub repository resources (issue 11, item 3): cloned into the workspace before the turn,
through the door, which injects the resource's token; the token never enters the sandbox.

The origin is git's own `git http-backend` behind a Basic-auth HTTPS test server on 127.0.0.2
(`git_server.py`), with a test CA the managed-agents server trusts upstream
(`--egress-upstream-ca`; `--egress-allow-private` lets the door reach loopback). The
environment is `limited` with no allowed host: the repository's host is allowed because the
session names it.

- A repository cloned at a branch (default mount path) and at a commit (a mount path outside
  `/workspace`); the token is in no file of the workspace and not in `.git/config`; the token
  rotated through the resources endpoint is the one the agent's later `git pull` sends, and
  that pull sees the agent's earlier work untouched (no re-clone), also after a server
  restart (the origin gets no request).
- A bad token: a `session.error` naming the resource (`repository_authentication_error`), and
  the session still runs its tools.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import unique
from git_server import GitServer, Repository
from harness_support import MockModel, bash, mock, text, tool_results  # noqa: F401
from test_credential_injection import CaFiles, Injecting, make_ca

HOST = "127.0.0.2"
LIMITED = {"type": "cloud", "networking": {"type": "limited", "allowed_hosts": []}}


@dataclasses.dataclass
class Origin:
    server: GitServer
    repo: Repository
    main_sha: str
    feature_sha: str


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return make_ca(tmp_path_factory.mktemp("repos-ca"))


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFiles) -> Iterator[Origin]:
    root = tmp_path_factory.mktemp("origin")
    repo = Repository(root, "proj")
    main_sha = repo.commit("main", "README.md", "hello from main\n")
    feature_sha = repo.commit("feature", "feature.txt", "feature 1\n")
    server = GitServer(root=root, host=HOST, accept=set()).start(test_ca.leaf_pem, test_ca.leaf_key)
    yield Origin(server=server, repo=repo, main_sha=main_sha, feature_sha=feature_sha)
    server.stop()


@pytest.fixture(scope="module")
def injecting(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFiles) -> Iterator[Injecting]:
    from harness_support import searchable

    base = tmp_path_factory.mktemp("repos")
    searchable(base)
    server = Injecting(base, test_ca)
    server.start()
    yield server
    server.stop()


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def result_of(events: list[Any]) -> str:
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return text(results[0])


def test_cloned_at_a_branch_and_a_commit_with_the_token_injected_and_rotated(
    injecting: Injecting, origin: Origin, mock: MockModel
) -> None:
    h = injecting.harness(mock)
    token = unique("ghp-first")
    origin.server.accept = {token}
    url = origin.server.url("proj")
    session = h.session(
        environment=h.environment(config=LIMITED),
        resources=[
            {"type": "github_repository", "url": url, "authorization_token": token,
             "checkout": {"type": "branch", "name": "feature"}},
            {"type": "github_repository", "url": url, "authorization_token": token,
             "checkout": {"type": "commit", "sha": origin.main_sha}, "mount_path": "/mnt/at-commit"},
        ],
    )
    events = h.turn(
        session.id,
        bash(
            "cd /workspace/proj && git rev-parse HEAD && git branch --show-current && cat feature.txt"
            " && git -C /mnt/at-commit rev-parse HEAD && ls /mnt/at-commit"
            " && echo agent-work > /workspace/proj/agent-note && cat .git/config"
        ),
        timeout=120,
    )
    assert not [e for e in events if e.type == "session.error"], [e for e in events if e.type == "session.error"]
    out = result_of(events)
    lines = out.splitlines()
    assert lines[:4] == [origin.feature_sha, "feature", "feature 1", origin.main_sha], out
    assert "feature.txt" not in lines[4:6] and "README.md" in out
    assert url in out  # .git/config names the plain URL ...
    assert token not in out  # ... and no token
    # The origin saw the token on every authenticated request, sent by the door.
    assert origin.server.passwords() and set(origin.server.passwords()) == {token}

    workspace = injecting.data_dir / "workspaces" / session.id
    assert (workspace / "proj" / ".git").is_dir()
    assert files_holding(workspace, token.encode()) == []

    # Rotation: the origin now takes only the new token; the agent's pull sends it.
    origin.repo.commit("feature", "feature.txt", "feature 2\n")
    rotated = unique("ghp-rotated")
    origin.server.accept = {rotated}
    resources = [r for r in h.client.beta.sessions.resources.list(session.id) if r.type == "github_repository"]
    assert len(resources) == 2
    for resource in resources:
        h.client.beta.sessions.resources.update(resource.id, session_id=session.id, authorization_token=rotated)
    seen = len(origin.server.passwords())
    events = h.turn(session.id, bash("cd /workspace/proj && git pull --quiet && cat feature.txt agent-note"), timeout=120)
    assert not [e for e in events if e.type == "session.error"]
    assert result_of(events).splitlines() == ["feature 2", "agent-work"]
    assert set(origin.server.passwords()[seen:]) == {rotated}
    assert files_holding(workspace, rotated.encode()) == []
    assert files_holding(workspace, token.encode()) == []

    # After a restart the clone is found: nothing is cloned again over the agent's work.
    injecting.stop()
    injecting.start()
    seen = len(origin.server.passwords())
    h = injecting.harness(mock)
    events = h.turn(session.id, bash("cd /workspace/proj && cat feature.txt agent-note && git status --short"), timeout=120)
    assert not [e for e in events if e.type == "session.error"]
    assert result_of(events).splitlines() == ["feature 2", "agent-work", "?? agent-note"]
    assert len(origin.server.passwords()) == seen


def test_a_bad_token_is_a_session_error_naming_the_resource_and_the_session_works(
    injecting: Injecting, origin: Origin, mock: MockModel
) -> None:
    h = injecting.harness(mock)
    origin.server.accept = {unique("ghp-good")}
    url = origin.server.url("proj")
    session = h.session(
        environment=h.environment(config=LIMITED),
        resources=[{"type": "github_repository", "url": url, "authorization_token": unique("ghp-bad"),
                    "mount_path": "/workspace/bad"}],
    )
    [resource] = list(h.client.beta.sessions.resources.list(session.id))
    events = h.turn(session.id, bash("ls -A /workspace; echo still-works"), timeout=120)
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 1, [e.type for e in events]
    error = errors[0].error
    assert error.type == "repository_authentication_error", error.message
    assert resource.id in error.message and url in error.message
    # As documented for repository errors: the clone is tried again at the next turn.
    assert error.retry_status.type == "retrying"
    assert error.repository_url == url
    out = result_of(events)
    assert out.splitlines()[-1] == "still-works" and "bad" not in out.split()
    assert events[-1].type == "session.status_idle"
