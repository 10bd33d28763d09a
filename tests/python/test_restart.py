"""Restart on RocksDB (and on PostgreSQL): create objects and events, stop the server (SIGTERM),
start a new process on the same data dir (and database), and find everything again with the same
ids, fields and order."""

from __future__ import annotations

import json
from typing import Any, Iterator, Optional

import anthropic
import httpx
import pytest

from conftest import PgCluster, ServerProcess, create_key, new_key, unique, user_message


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += differences(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"]


def timeless(session: Any) -> dict[str, Any]:
    """A session without the fields that grow with the clock (durations, active time)."""
    data = session.model_dump()
    data.pop("stats", None)
    if isinstance(data.get("usage"), dict):
        data["usage"].pop("active_seconds", None)
    return data


def snapshot(c: anthropic.Anthropic, w: dict[str, Any]) -> dict[str, Any]:
    """Everything observable about the objects in `w`, as plain data."""
    session_ids = [s.id for s in w["sessions"]]
    return {
        "agents": [a.model_dump() for a in c.beta.agents.list(include_archived=True)],
        "agent_versions": [v.model_dump() for v in c.beta.agents.versions.list(w["agent"].id)],
        "agent_v1": c.beta.agents.retrieve(w["agent"].id, version=1).model_dump(),
        "environments": [e.model_dump() for e in c.beta.environments.list(include_archived=True)],
        "vaults": [v.model_dump() for v in c.beta.vaults.list(include_archived=True)],
        "credentials": [x.model_dump() for x in c.beta.vaults.credentials.list(w["vault"].id, include_archived=True)],
        "files": [f.model_dump() for f in c.beta.files.list()],
        "sessions": [timeless(s) for s in c.beta.sessions.list(include_archived=True)],
        "sessions_asc": [s.id for s in c.beta.sessions.list(include_archived=True, order="asc")],
        "running": [s.id for s in c.beta.sessions.list(statuses=["running"])],
        "events": {sid: [e.model_dump() for e in c.beta.sessions.events.list(sid)] for sid in session_ids},
        "events_desc": {sid: [e.id for e in c.beta.sessions.events.list(sid, order="desc")] for sid in session_ids},
        "resources": {sid: [r.model_dump() for r in c.beta.sessions.resources.list(sid).data] for sid in session_ids},
        "file_bytes": c.beta.files.download(w["file"].id).read(),
    }


# Uploads are not downloadable by default (as hosted); this suite reads their bytes back.
UPLOADS = ["--uploads-downloadable"]


def build(c: anthropic.Anthropic) -> dict[str, Any]:
    agent = c.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6", system="v1", metadata={"k": "v"})
    c.beta.agents.update(agent.id, system="v2")
    archived_agent = c.beta.agents.create(name=unique("agent"), model={"id": "claude-opus-4-6", "speed": "fast"})
    c.beta.agents.archive(archived_agent.id)
    env = c.beta.environments.create(name=unique("env"), config={"type": "cloud", "packages": {"pip": ["numpy"]}})
    env2 = c.beta.environments.create(name=unique("env"))
    c.beta.environments.archive(env2.id)
    vault = c.beta.vaults.create(display_name="v", metadata={"a": "b"})
    c.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://m.example.com", "token": "tok"}
    )
    file = c.beta.files.upload(file=("blob.bin", bytes(range(256)) * 8, "application/x-test"))
    sessions = []
    for i in range(3):
        s = c.beta.sessions.create(
            agent=agent.id,
            environment_id=env.id,
            title=f"s{i}",
            metadata={"i": str(i)},
            resources=[{"type": "file", "file_id": file.id}],
            vault_ids=[vault.id],
        )
        sessions.append(s)
    for j in range(4):
        c.beta.sessions.events.send(sessions[0].id, events=[user_message(f"m{j}")])
    c.beta.sessions.events.send(sessions[1].id, events=[{"type": "user.interrupt"}])
    c.beta.sessions.update(sessions[1].id, title="renamed", metadata={"i": None, "x": "y"})
    c.beta.sessions.archive(sessions[2].id)
    return {"agent": agent, "vault": vault, "file": file, "sessions": sessions}


@pytest.fixture(params=["rocksdb", "postgres"])
def storage(request: pytest.FixtureRequest) -> Iterator[tuple[str, Optional[PgCluster]]]:
    """The backend restarted on, and for PostgreSQL the cluster both processes use."""
    if request.param != "postgres":
        yield request.param, None
        return
    cluster = PgCluster()
    try:
        yield request.param, cluster
    finally:
        cluster.stop()


def test_restart_keeps_everything(tmp_path, storage: tuple[str, Optional[PgCluster]]) -> None:
    backend, cluster = storage
    database_url = cluster.url if cluster is not None else None
    data = tmp_path / "data"
    data.mkdir()
    other_key = create_key(data, "tenant-b", backend, database_url)
    key = new_key()
    first = ServerProcess(backend, data, key, tmp_path / "server.log", args=UPLOADS, cluster=cluster).start()
    try:
        c = first.client()
        w = build(c)
        before = snapshot(c, w)
        # An SSE cursor taken before the restart.
        cursor_page = c.beta.sessions.events.list(w["sessions"][0].id, limit=2)
    finally:
        code = first.stop()
    assert code == 0, first.log_tail()

    second = ServerProcess(backend, data, key, tmp_path / "server.log", args=UPLOADS, cluster=cluster).start()
    try:
        assert second.url  # a new process on a new port
        c = second.client()
        after = snapshot(c, w)
        for key_name in before:
            diff = differences(before[key_name], after[key_name], key_name)
            assert diff == [], f"changed across the restart: {diff}"
        assert len(before["events"][w["sessions"][0].id]) == 5
        # The second workspace's key survived too.
        assert second.client(key=other_key).beta.agents.list().data == []
        # The list cursor from before the restart still pages the same way.
        rest = c.beta.sessions.events.list(w["sessions"][0].id, page=cursor_page.next_page)
        assert [e.id for e in rest.data] == [e["id"] for e in before["events"][w["sessions"][0].id][2:]]
        # New writes continue after the old ones, in order.
        sent = c.beta.sessions.events.send(w["sessions"][0].id, events=[user_message("after restart")]).data[0]
        ids = [e.id for e in c.beta.sessions.events.list(w["sessions"][0].id)]
        assert ids == [e["id"] for e in before["events"][w["sessions"][0].id]] + [sent.id]
        agent = c.beta.agents.update(w["agent"].id, system="v3", version=2)
        assert agent.version == 3
        with pytest.raises(anthropic.ConflictError):
            c.beta.agents.update(w["agent"].id, system="stale", version=2)
        # Resuming the stream with a pre-restart cursor replays exactly what follows it.
        with httpx.Client(timeout=30) as http:
            with http.stream(
                "GET",
                f"{second.url}/v1/sessions/{w['sessions'][0].id}/events/stream",
                headers={"x-api-key": key, "Last-Event-ID": cursor_page.next_page},
            ) as response:
                assert response.status_code == 200
                got = []
                for line in response.iter_lines():
                    if line.startswith("data:") and '"type":"ping"' not in line.replace(" ", ""):
                        got.append(json.loads(line[5:])["id"])
                        if len(got) == len(ids) - 2:
                            break
                assert got == ids[2:]
    finally:
        code = second.stop()
    assert code == 0, second.log_tail()
