"""Tenant isolation: two keys of two workspaces on one RocksDB server (keys of a second
workspace can only be made with `managed-agents keys create`, which needs the RocksDB data
dir, so this module runs its own RocksDB server). Objects of one workspace are 404 for the
other (not 403) and never appear in its lists."""

from __future__ import annotations

from typing import Any, Iterator

import anthropic
import httpx
import pytest

from conftest import Server, start_server, unique, user_message


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server("rocksdb", tmp_path_factory.mktemp("tenants"), other_workspace="tenant-b")
    yield srv
    assert srv.process.stop() == 0


@pytest.fixture(scope="module")
def world_a(tenants: Server) -> dict[str, Any]:
    a = tenants.client()
    agent = a.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
    env = a.beta.environments.create(name="shared-name")
    vault = a.beta.vaults.create(display_name="a-vault")
    cred = a.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://m.example.com", "token": "tok-a-secret"}
    )
    file = a.beta.files.upload(file=("a.txt", b"tenant a", "text/plain"))
    session = a.beta.sessions.create(
        agent=agent.id, environment_id=env.id, resources=[{"type": "file", "file_id": file.id}], vault_ids=[vault.id]
    )
    a.beta.sessions.events.send(session.id, events=[user_message("private")])
    return {"agent": agent, "env": env, "vault": vault, "cred": cred, "file": file, "session": session}


@pytest.fixture(scope="module")
def b(tenants: Server) -> anthropic.Anthropic:
    assert tenants.other_key and tenants.other_key != tenants.key
    return tenants.client(key=tenants.other_key)


def test_other_workspace_gets_404_for_every_object(b: anthropic.Anthropic, world_a: dict[str, Any]) -> None:
    w = world_a
    calls = {
        "agent.retrieve": lambda: b.beta.agents.retrieve(w["agent"].id),
        "agent.update": lambda: b.beta.agents.update(w["agent"].id, name="stolen"),
        "agent.archive": lambda: b.beta.agents.archive(w["agent"].id),
        "agent.versions": lambda: b.beta.agents.versions.list(w["agent"].id),
        "env.retrieve": lambda: b.beta.environments.retrieve(w["env"].id),
        "env.update": lambda: b.beta.environments.update(w["env"].id, description="x"),
        "env.archive": lambda: b.beta.environments.archive(w["env"].id),
        "env.delete": lambda: b.beta.environments.delete(w["env"].id),
        "vault.retrieve": lambda: b.beta.vaults.retrieve(w["vault"].id),
        "vault.update": lambda: b.beta.vaults.update(w["vault"].id, display_name="x"),
        "vault.delete": lambda: b.beta.vaults.delete(w["vault"].id),
        "cred.list": lambda: b.beta.vaults.credentials.list(w["vault"].id),
        "cred.retrieve": lambda: b.beta.vaults.credentials.retrieve(w["cred"].id, vault_id=w["vault"].id),
        "file.metadata": lambda: b.beta.files.retrieve_metadata(w["file"].id),
        "file.download": lambda: b.beta.files.download(w["file"].id),
        "file.delete": lambda: b.beta.files.delete(w["file"].id),
        "session.retrieve": lambda: b.beta.sessions.retrieve(w["session"].id),
        "session.update": lambda: b.beta.sessions.update(w["session"].id, title="x"),
        "session.archive": lambda: b.beta.sessions.archive(w["session"].id),
        "session.delete": lambda: b.beta.sessions.delete(w["session"].id),
        "events.list": lambda: b.beta.sessions.events.list(w["session"].id),
        "events.send": lambda: b.beta.sessions.events.send(w["session"].id, events=[user_message("x")]),
        "events.stream": lambda: b.beta.sessions.events.stream(w["session"].id),
        "resources.list": lambda: b.beta.sessions.resources.list(w["session"].id),
        "resources.retrieve": lambda: b.beta.sessions.resources.retrieve(
            w["session"].resources[0].id, session_id=w["session"].id
        ),
    }
    leaked = {}
    for name, call in calls.items():
        try:
            call()
            leaked[name] = "succeeded"
        except anthropic.NotFoundError:
            pass
        except anthropic.APIStatusError as err:
            leaked[name] = err.status_code
    assert leaked == {}, f"not a 404 for the other workspace: {leaked}"


def test_other_workspace_lists_do_not_show_objects(b: anthropic.Anthropic, world_a: dict[str, Any]) -> None:
    w = world_a
    assert w["agent"].id not in [x.id for x in b.beta.agents.list(include_archived=True)]
    assert w["env"].id not in [x.id for x in b.beta.environments.list(include_archived=True)]
    assert w["vault"].id not in [x.id for x in b.beta.vaults.list(include_archived=True)]
    assert w["file"].id not in [x.id for x in b.beta.files.list()]
    assert b.beta.files.list(ids=[w["file"].id]).data == []
    assert w["session"].id not in [x.id for x in b.beta.sessions.list(include_archived=True)]
    assert list(b.beta.sessions.list(agent_id=w["agent"].id)) == []


def test_other_workspace_cannot_reference_objects(b: anthropic.Anthropic, world_a: dict[str, Any]) -> None:
    w = world_a
    env_b = b.beta.environments.create(name=unique("env-b"))
    agent_b = b.beta.agents.create(name=unique("agent-b"), model="claude-sonnet-4-6")
    with pytest.raises(anthropic.NotFoundError):
        b.beta.sessions.create(agent=w["agent"].id, environment_id=env_b.id)
    with pytest.raises(anthropic.NotFoundError):
        b.beta.sessions.create(agent=agent_b.id, environment_id=w["env"].id)
    with pytest.raises(anthropic.NotFoundError):
        b.beta.sessions.create(agent=agent_b.id, environment_id=env_b.id, vault_ids=[w["vault"].id])
    with pytest.raises(anthropic.NotFoundError):
        b.beta.sessions.create(
            agent=agent_b.id, environment_id=env_b.id, resources=[{"type": "file", "file_id": w["file"].id}]
        )


def test_environment_names_are_per_workspace(b: anthropic.Anthropic, world_a: dict[str, Any]) -> None:
    env = b.beta.environments.create(name=world_a["env"].name)
    assert env.id != world_a["env"].id


def test_workspace_a_is_unchanged(tenants: Server, world_a: dict[str, Any], b: anthropic.Anthropic) -> None:
    a = tenants.client()
    w = world_a
    assert a.beta.agents.retrieve(w["agent"].id).version == 1
    assert a.beta.agents.retrieve(w["agent"].id).archived_at is None
    assert a.beta.environments.retrieve(w["env"].id).archived_at is None
    # Still a's file: an upload's download is refused as not downloadable, not unknown.
    with pytest.raises(anthropic.BadRequestError):
        a.beta.files.download(w["file"].id)
    assert [e.type for e in a.beta.sessions.events.list(w["session"].id)] == ["user.message", "session.status_running"]
    assert a.beta.sessions.retrieve(w["session"].id).title is None


def test_raw_stream_of_other_workspace_is_404(tenants: Server, world_a: dict[str, Any]) -> None:
    response = httpx.get(
        f"{tenants.url}/v1/sessions/{world_a['session'].id}/events/stream",
        headers={"Authorization": f"Bearer {tenants.other_key}"},
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
