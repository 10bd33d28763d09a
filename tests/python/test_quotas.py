"""Issue 16, item 4: per-workspace (tenant) quotas against a real `managed-agents serve` with small
limits, through the official SDK:

- `--tenant-max-sessions`: a session create (or fork) past it is a 400 `invalid_request_error`
  with `error_code` `session_quota_exceeded` (never a 429, which the SDK would retry), nothing is
  written, archived sessions still count, deleting one frees a place;
- `--tenant-max-files` and `--tenant-max-stored-bytes`: a file upload or a skill upload past
  them is a 400 `storage_quota_exceeded` (API §3.3), nothing is stored, deleting a file or a skill
  version frees room;
- concurrent creates at the limit: exactly one wins;
- the counts survive a restart (RocksDB and PostgreSQL: they are the store's);
- two workspaces are independent;
- `/metrics` counts the refusals by quota.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import anthropic
import httpx
import pytest

from conftest import BACKENDS, DURABLE, PgCluster, ServerProcess, create_key, new_key, unique

SAFETY = 30.0
#: The durable backends under test (restarts and second workspaces need one; RocksDB when only
#: memory is selected).
DURABLE_BACKENDS = [b for b in DURABLE if b in BACKENDS] or ["rocksdb"]
SKILL_MD = b"---\nname: quota-skill\ndescription: A skill that takes room\n---\n\n# Quota\n"


class Tenant:
    """A server with quotas, its bootstrap key's client and (durable backends) a second
    workspace's client."""

    def __init__(self, process: ServerProcess, other_key: Optional[str]) -> None:
        self.process = process
        self.other_key = other_key

    def client(self, key: Optional[str] = None) -> anthropic.Anthropic:
        # No retries: a quota refusal must not be retried, and every count below is exact.
        return self.process.client(key=key, max_retries=0)


def serve(
    backend: str,
    base: Path,
    *args: str,
    other_workspace: bool = False,
    cluster: Optional[PgCluster] = None,
    key: Optional[str] = None,
    other_key: Optional[str] = None,
) -> Tenant:
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    database_url = cluster.url if cluster is not None else None
    if other_workspace and other_key is None:
        if backend not in DURABLE:
            raise ValueError("a second workspace's key needs a durable backend")
        if backend == "postgres" and cluster is None:
            raise ValueError("a second workspace on PostgreSQL needs the test's own cluster")
        other_key = create_key(data, "tenant-b", backend, database_url)
    process = ServerProcess(
        backend, data, key or new_key(), base / "server.log", args=list(args), cluster=cluster
    ).start()
    return Tenant(process, other_key)


def stop(tenant: Tenant) -> None:
    code = tenant.process.stop()
    assert code == 0, tenant.process.log_tail()


def world(c: anthropic.Anthropic) -> tuple[str, str]:
    agent = c.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
    env = c.beta.environments.create(name=unique("env"))
    return agent.id, env.id


def refused(call: Callable[[], Any], code: str) -> anthropic.BadRequestError:
    with pytest.raises(anthropic.BadRequestError) as err:
        call()
    assert err.value.status_code == 400
    body = err.value.body
    assert isinstance(body, dict), body
    assert body["error"]["type"] == "invalid_request_error", body
    assert body["error"]["details"]["error_code"] == code, body
    assert err.value.response.headers.get("x-should-retry") != "true"
    return err.value


def session_ids(c: anthropic.Anthropic) -> set[str]:
    return {s.id for s in c.beta.sessions.list(include_archived=True)}


def file_ids(c: anthropic.Anthropic) -> set[str]:
    return {f.id for f in c.beta.files.list()}


def quota_refusals(tenant: Tenant) -> dict[str, int]:
    text = httpx.get(f"{tenant.process.url}/metrics", timeout=SAFETY).text
    found = dict(re.findall(r'^managed_agents_quota_refusals_total\{quota="(\w+)"\} (\d+)$', text, re.M))
    assert set(found) == {"sessions", "files", "stored_bytes"}, text
    return {k: int(v) for k, v in found.items()}


def upload(c: anthropic.Anthropic, size: int, name: str = "f.bin") -> Any:
    return c.beta.files.upload(file=(name, b"x" * size, "application/octet-stream"))


def skill_files(top: str, padding: int) -> list[Any]:
    return [(f"{top}/SKILL.md", SKILL_MD, "text/markdown"), (f"{top}/pad.bin", b"p" * padding, "application/octet-stream")]


def test_session_quota_refuses_past_the_limit_and_a_delete_frees_a_place(backend: str, tmp_path: Path) -> None:
    tenant = serve(backend, tmp_path, "--tenant-max-sessions", "2")
    try:
        c = tenant.client()
        agent, env = world(c)
        first = c.beta.sessions.create(agent=agent, environment_id=env)
        second = c.beta.sessions.create(agent=agent, environment_id=env)
        c.beta.sessions.archive(second.id)
        before = session_ids(c)
        err = refused(lambda: c.beta.sessions.create(agent=agent, environment_id=env), "session_quota_exceeded")
        assert "2" in err.message and "session" in err.message
        # A fork is a new session too.
        refused(
            lambda: c.post(f"/v1/sessions/{first.id}/fork", body={}, cast_to=object),
            "session_quota_exceeded",
        )
        assert session_ids(c) == before, "a refused create wrote nothing"
        assert quota_refusals(tenant)["sessions"] == 2
        # Other creates are not governed by the session quota.
        c.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
        c.beta.sessions.delete(second.id)
        third = c.beta.sessions.create(agent=agent, environment_id=env)
        assert session_ids(c) == {first.id, third.id}
        refused(lambda: c.beta.sessions.create(agent=agent, environment_id=env), "session_quota_exceeded")
    finally:
        stop(tenant)


def test_file_quota_refuses_an_upload_past_the_limit_and_a_delete_frees_a_place(backend: str, tmp_path: Path) -> None:
    tenant = serve(backend, tmp_path, "--tenant-max-files", "2")
    try:
        c = tenant.client()
        first = upload(c, 10)
        upload(c, 10)
        before = file_ids(c)
        err = refused(lambda: upload(c, 10, "third.bin"), "storage_quota_exceeded")
        assert "file" in err.message
        assert file_ids(c) == before, "a refused upload wrote nothing"
        # Skills are not files: the file count does not govern them.
        c.beta.skills.create(files=skill_files(unique("s"), 10))
        c.beta.files.delete(first.id)
        third = upload(c, 10, "third.bin")
        assert c.beta.files.retrieve_metadata(third.id).size_bytes == 10
        assert len(file_ids(c)) == 2
        assert quota_refusals(tenant)["files"] == 1
    finally:
        stop(tenant)


def test_stored_bytes_count_files_and_skill_versions(backend: str, tmp_path: Path) -> None:
    tenant = serve(backend, tmp_path, "--tenant-max-stored-bytes", "2KiB")
    try:
        c = tenant.client()
        big = upload(c, 1500)
        # 1500 + 600 > 2048: refused, and nothing of it is kept.
        refused(lambda: upload(c, 600), "storage_quota_exceeded")
        assert file_ids(c) == {big.id}
        # A skill's bytes count too: SKILL.md plus 600 bytes does not fit either.
        top = unique("s")
        err = refused(lambda: c.beta.skills.create(files=skill_files(top, 600)), "storage_quota_exceeded")
        assert "2048" in err.message
        assert list(c.beta.skills.list()) == []
        # 1500 + SKILL.md (~80) + 100 fits.
        skill = c.beta.skills.create(files=skill_files(top, 100))
        refused(
            lambda: c.beta.skills.versions.create(skill.id, files=skill_files(top, 400)),
            "storage_quota_exceeded",
        )
        assert len(list(c.beta.skills.versions.list(skill.id))) == 1
        # Deleting the big file frees its bytes: a second version and a file now fit.
        c.beta.files.delete(big.id)
        second = c.beta.skills.versions.create(skill.id, files=skill_files(top, 1000))
        refused(lambda: upload(c, 1000), "storage_quota_exceeded")
        # Deleting that version frees its bytes again.
        c.beta.skills.versions.delete(second.id, skill_id=skill.id)
        upload(c, 1000)
        assert quota_refusals(tenant)["stored_bytes"] == 4
    finally:
        stop(tenant)


def race(n: int, call: Callable[[], Any]) -> tuple[list[Any], list[BaseException]]:
    """Runs `call` on `n` threads released at once; returns the results and the errors."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait(SAFETY)
        try:
            result = call()
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            with lock:
                errors.append(e)
        else:
            with lock:
                results.append(result)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SAFETY * 2)
    assert not any(t.is_alive() for t in threads)
    return results, errors


def test_concurrent_creates_at_the_limit_let_exactly_one_through(backend: str, tmp_path: Path) -> None:
    tenant = serve(backend, tmp_path, "--tenant-max-sessions", "4", "--tenant-max-files", "4")
    try:
        c = tenant.client()
        agent, env = world(c)
        for _ in range(3):
            c.beta.sessions.create(agent=agent, environment_id=env)
            upload(c, 5)
        for round_ in range(3):
            created, errors = race(8, lambda: c.beta.sessions.create(agent=agent, environment_id=env))
            expected = 1 if round_ == 0 else 0
            assert len(created) == expected, (created, errors)
            assert len(errors) == 8 - expected
            for e in errors:
                assert isinstance(e, anthropic.BadRequestError), e
                assert e.body["error"]["details"]["error_code"] == "session_quota_exceeded"  # type: ignore[index]
        assert len(session_ids(c)) == 4
        stored, errors = race(8, lambda: upload(c, 5))
        assert len(stored) == 1, (stored, errors)
        assert all(
            isinstance(e, anthropic.BadRequestError)
            and e.body["error"]["details"]["error_code"] == "storage_quota_exceeded"  # type: ignore[index]
            for e in errors
        ), errors
        assert len(file_ids(c)) == 4
    finally:
        stop(tenant)


@pytest.mark.parametrize("durable", DURABLE_BACKENDS)
def test_a_restart_keeps_the_counts(durable: str, tmp_path: Path) -> None:
    cluster = PgCluster() if durable == "postgres" else None
    args = ("--tenant-max-sessions", "2", "--tenant-max-files", "1", "--tenant-max-stored-bytes", "100")
    key = new_key()
    try:
        tenant = serve(durable, tmp_path, *args, cluster=cluster, key=key)
        try:
            c = tenant.client()
            agent, env = world(c)
            kept = c.beta.sessions.create(agent=agent, environment_id=env)
            c.beta.sessions.create(agent=agent, environment_id=env)
            stored = upload(c, 60)
        finally:
            stop(tenant)
        tenant = serve(durable, tmp_path, *args, cluster=cluster, key=key)
        try:
            c = tenant.client()
            refused(lambda: c.beta.sessions.create(agent=agent, environment_id=env), "session_quota_exceeded")
            refused(lambda: upload(c, 1), "storage_quota_exceeded")
            top = unique("s")
            refused(lambda: c.beta.skills.create(files=skill_files(top, 0)), "storage_quota_exceeded")
            c.beta.sessions.delete(kept.id)
            c.beta.sessions.create(agent=agent, environment_id=env)
            c.beta.files.delete(stored.id)
            upload(c, 100)
        finally:
            stop(tenant)
    finally:
        if cluster is not None:
            cluster.stop()


@pytest.mark.parametrize("durable", DURABLE_BACKENDS)
def test_two_workspaces_have_quotas_of_their_own(durable: str, tmp_path: Path) -> None:
    cluster = PgCluster() if durable == "postgres" else None
    try:
        tenant = serve(
            durable,
            tmp_path,
            "--tenant-max-sessions",
            "1",
            "--tenant-max-files",
            "1",
            other_workspace=True,
            cluster=cluster,
        )
        try:
            a = tenant.client()
            b = tenant.client(tenant.other_key)
            a_agent, a_env = world(a)
            b_agent, b_env = world(b)
            a.beta.sessions.create(agent=a_agent, environment_id=a_env)
            upload(a, 3)
            refused(lambda: a.beta.sessions.create(agent=a_agent, environment_id=a_env), "session_quota_exceeded")
            refused(lambda: upload(a, 3), "storage_quota_exceeded")
            # b's workspace is empty: its first session and file are admitted, then it is full too.
            b_session = b.beta.sessions.create(agent=b_agent, environment_id=b_env)
            upload(b, 3)
            refused(lambda: b.beta.sessions.create(agent=b_agent, environment_id=b_env), "session_quota_exceeded")
            # Freeing b's place does nothing for a.
            b.beta.sessions.delete(b_session.id)
            refused(lambda: a.beta.sessions.create(agent=a_agent, environment_id=a_env), "session_quota_exceeded")
            b.beta.sessions.create(agent=b_agent, environment_id=b_env)
        finally:
            stop(tenant)
    finally:
        if cluster is not None:
            cluster.stop()
