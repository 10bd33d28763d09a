"""Sessions (API §6) through `client.beta.sessions`.

There is no agent harness in the server yet: a session stays `idle` until an event is sent,
and `running` afterwards (decide emits `session.status_running`; nothing brings it back).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anthropic
import pytest

from conftest import unique, user_message

MISSING = "sesn_01doesnotexist0000000000"


def test_create_with_agent_id_string(client: anthropic.Anthropic, agent, environment) -> None:
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    assert session.type == "session"
    assert session.id.startswith("sesn_")
    assert session.status == "idle"
    assert session.environment_id == environment.id
    assert session.title is None
    assert session.metadata == {}
    assert session.resources == []
    assert session.vault_ids == []
    assert session.outcome_evaluations == []
    assert session.archived_at is None
    # Agent snapshot of the latest version.
    assert session.agent.type == "agent"
    assert session.agent.id == agent.id
    assert session.agent.version == agent.version
    assert session.agent.name == agent.name
    assert session.agent.model.id == agent.model.id
    assert session.usage is not None
    assert session.stats is not None


def test_create_with_agent_reference_pins_version(client: anthropic.Anthropic, make_agent, environment) -> None:
    agent = make_agent(system="first")
    client.beta.agents.update(agent.id, system="second")
    pinned = client.beta.sessions.create(
        agent={"type": "agent", "id": agent.id, "version": 1}, environment_id=environment.id
    )
    assert pinned.agent.version == 1
    assert pinned.agent.system == "first"
    latest = client.beta.sessions.create(agent={"type": "agent", "id": agent.id}, environment_id=environment.id)
    assert latest.agent.version == 2 and latest.agent.system == "second"
    # Updating the agent afterwards does not change existing sessions.
    client.beta.agents.update(agent.id, system="third")
    assert client.beta.sessions.retrieve(pinned.id).agent.system == "first"
    assert client.beta.sessions.retrieve(latest.id).agent.system == "second"


def test_create_with_overrides(client: anthropic.Anthropic, make_agent, environment) -> None:
    agent = make_agent(system="original")
    session = client.beta.sessions.create(
        agent={
            "type": "agent_with_overrides",
            "id": agent.id,
            "system": "overridden",
            "model": "claude-opus-4-6",
            "tools": [{"type": "agent_toolset_20260401"}],
        },
        environment_id=environment.id,
    )
    assert session.agent.id == agent.id
    assert session.agent.system == "overridden"
    assert session.agent.model.id == "claude-opus-4-6"
    assert [t.type for t in session.agent.tools] == ["agent_toolset_20260401"]
    # The agent itself is untouched.
    stored = client.beta.agents.retrieve(agent.id)
    assert stored.system == "original" and stored.version == 1


def test_create_with_title_metadata_and_initial_events(client: anthropic.Anthropic, agent, environment) -> None:
    session = client.beta.sessions.create(
        agent=agent.id,
        environment_id=environment.id,
        title="Quarterly report",
        metadata={"customer": "acme"},
        initial_events=[user_message("hello"), user_message("again")],
    )
    assert session.title == "Quarterly report"
    assert session.metadata == {"customer": "acme"}
    # Initial events start the agent loop in the same call.
    assert session.status == "running"
    events = list(client.beta.sessions.events.list(session.id))
    types = [e.type for e in events]
    assert types == ["user.message", "user.message", "session.status_running"]
    assert events[0].content[0].text == "hello"
    assert events[1].content[0].text == "again"


@pytest.mark.parametrize(
    "agent_value",
    [
        {"type": "agent", "id": "agent_01doesnotexist000000000"},
        "agent_01doesnotexist000000000",
    ],
    ids=["reference", "string"],
)
def test_create_unknown_agent_is_404(client: anthropic.Anthropic, environment, agent_value) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent_value, environment_id=environment.id)


def test_create_invalid(client: anthropic.Anthropic, agent, environment) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.create(agent=agent.id, environment_id="env_01doesnotexist0000000000")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent={"type": "agent", "id": agent.id, "version": 42}, environment_id=environment.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent={"type": "robot", "id": agent.id}, environment_id=environment.id)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent={"type": "agent_with_overrides", "id": agent.id, "name": "not overridable"},
            environment_id=environment.id,
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=environment.id, metadata={f"k{i}": "v" for i in range(17)}
        )
    # initial_events accepts only user.message and user.define_outcome, all-or-nothing.
    before = {s.id for s in client.beta.sessions.list(limit=100, include_archived=True)}
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=environment.id, initial_events=[user_message("ok"), {"type": "user.interrupt"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(
            agent=agent.id, environment_id=environment.id, initial_events=[user_message(f"m{i}") for i in range(51)]
        )
    after = {s.id for s in client.beta.sessions.list(limit=100, include_archived=True)}
    assert after == before  # a rejected request writes nothing


def test_retrieve(client: anthropic.Anthropic, session) -> None:
    got = client.beta.sessions.retrieve(session.id)
    assert got.id == session.id
    assert got.status == "idle"
    assert got.agent.id == session.agent.id
    usage = got.usage
    assert usage.input_tokens == 0 and usage.output_tokens == 0
    assert usage.cache_read_input_tokens == 0
    assert usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert got.stats.duration_seconds is not None and got.stats.duration_seconds >= 0
    assert got.stats.active_seconds == 0
    raw = client.beta.sessions.with_raw_response.retrieve(session.id).http_response.json()
    for key in ("id", "type", "status", "agent", "environment_id", "title", "metadata", "resources", "vault_ids",
                "outcome_evaluations", "stats", "usage", "budget", "created_at", "updated_at", "archived_at"):
        assert key in raw, f"session.{key} missing"
    # The agent snapshot carries the configuration, not the agent's own bookkeeping.
    assert raw["agent"]["type"] == "agent"
    for key in ("metadata", "created_at", "updated_at", "archived_at"):
        assert key not in raw["agent"]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(MISSING)


def test_update_title_metadata(client: anthropic.Anthropic, make_session) -> None:
    session = make_session(title="t1", metadata={"a": "1", "b": "2"})
    updated = client.beta.sessions.update(session.id, title="t2", metadata={"a": None, "c": "3"})
    assert updated.title == "t2"
    assert updated.metadata == {"b": "2", "c": "3"}
    cleared = client.beta.sessions.update(session.id, title=None)
    assert cleared.title is None
    assert cleared.metadata == {"b": "2", "c": "3"}
    events = list(client.beta.sessions.events.list(session.id, types=["session.updated"]))
    assert len(events) == 2
    assert events[0].title == "t2"
    assert events[0].metadata == {"b": "2", "c": "3"}


def test_update_agent_tools(client: anthropic.Anthropic, session) -> None:
    updated = client.beta.sessions.update(
        session.id,
        agent={"tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "bash", "enabled": False}]}]},
    )
    assert [t.type for t in updated.agent.tools] == ["agent_toolset_20260401"]
    assert updated.agent.id == session.agent.id


def test_update_invalid(client: anthropic.Anthropic, session) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(session.id, vault_ids=["vlt_01x"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.update(session.id, metadata={"k" * 65: "v"})
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.update(MISSING, title="x")


def test_list_filters(client: anthropic.Anthropic, make_agent, environment) -> None:
    agent = make_agent()
    idle = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    running = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    client.beta.sessions.events.send(running.id, events=[user_message("go")])
    archived = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    client.beta.sessions.archive(archived.id)
    client.beta.agents.update(agent.id, system="v2")
    v2 = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)

    def ids(**kwargs) -> list[str]:
        return [s.id for s in client.beta.sessions.list(agent_id=agent.id, **kwargs)]

    # Newest first by default; archived hidden.
    assert ids() == [v2.id, running.id, idle.id]
    assert ids(order="asc") == [idle.id, running.id, v2.id]
    assert ids(include_archived=True) == [v2.id, archived.id, running.id, idle.id]
    assert ids(statuses=["running"]) == [running.id]
    assert ids(statuses=["idle"]) == [v2.id, idle.id]
    assert ids(statuses=["idle", "running"]) == [v2.id, running.id, idle.id]
    assert ids(agent_version=2) == [v2.id]
    assert ids(agent_version=1, include_archived=True) == [archived.id, running.id, idle.id]
    past = datetime.now(timezone.utc) - timedelta(days=1)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert ids(created_at_gt=future) == []
    assert ids(created_at_gte=past, created_at_lt=future) == [v2.id, running.id, idle.id]
    assert ids(created_at_lte=past) == []
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(statuses=["sleeping"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(agent_version=1)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(order="sideways")


def test_list_cursors_next_and_prev(client: anthropic.Anthropic, make_agent, environment) -> None:
    agent = make_agent()
    made = [client.beta.sessions.create(agent=agent.id, environment_id=environment.id) for _ in range(5)]
    newest_first = [s.id for s in reversed(made)]
    first = client.beta.sessions.list(agent_id=agent.id, limit=2)
    assert [s.id for s in first.data] == newest_first[:2]
    assert first.prev_page is None
    assert first.next_page
    second = client.beta.sessions.list(agent_id=agent.id, limit=2, page=first.next_page)
    assert [s.id for s in second.data] == newest_first[2:4]
    assert second.prev_page
    third = client.beta.sessions.list(agent_id=agent.id, limit=2, page=second.next_page)
    assert [s.id for s in third.data] == newest_first[4:]
    assert not third.next_page
    back = client.beta.sessions.list(agent_id=agent.id, limit=2, page=second.prev_page)
    assert [s.id for s in back.data] == newest_first[:2]
    # Auto-pagination walks every page forward.
    assert [s.id for s in client.beta.sessions.list(agent_id=agent.id, limit=2)] == newest_first
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.list(page="not-a-cursor")


def test_archive(client: anthropic.Anthropic, session) -> None:
    archived = client.beta.sessions.archive(session.id)
    assert archived.archived_at is not None
    assert archived.id == session.id
    assert client.beta.sessions.retrieve(session.id).archived_at is not None
    # Archive keeps history, rejects updates and new events.
    with pytest.raises(anthropic.ConflictError):
        client.beta.sessions.update(session.id, title="no")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.archive(MISSING)


def test_archive_and_delete_running_are_409(counted, session) -> None:
    client, counter = counted
    client.beta.sessions.events.send(session.id, events=[user_message("busy")])
    assert client.beta.sessions.retrieve(session.id).status == "running"
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.sessions.archive(session.id)
    assert err.value.response.headers.get("x-should-retry") == "false"
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.sessions.delete(session.id)
    assert "running" in err.value.message
    assert counter.count("DELETE", f"/v1/sessions/{session.id}") == 1
    assert client.beta.sessions.retrieve(session.id).archived_at is None


def test_delete(client: anthropic.Anthropic, session) -> None:
    deleted = client.beta.sessions.delete(session.id)
    assert deleted.id == session.id
    assert deleted.type == "session_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.retrieve(session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.list(session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.delete(session.id)
    assert session.id not in [s.id for s in client.beta.sessions.list(include_archived=True, limit=100)]
