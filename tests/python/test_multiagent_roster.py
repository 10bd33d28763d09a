"""Multiagent rosters on agent create and update (API §4.6), through the official SDK.

Roster entries are resolved against the agents they name (exist in the caller's workspace, not
archived, no roster of their own, distinct, at most one `self` and one `advisor`) and echoed
resolved: `{type: agent, id, version}` (latest at save time unless pinned), `self` as the agent
itself at the rendered version, the advisor last. `multiagent_20261001` echoes all three keys.
"""

from __future__ import annotations

from typing import Any, Callable

import anthropic
import pytest

from conftest import unique


def roster(agent: Any) -> list[dict[str, Any]]:
    return [a.to_dict() for a in agent.multiagent.agents]


def test_coordinator_roster_resolves_and_echoes(client: anthropic.Anthropic, make_agent: Callable[..., Any]) -> None:
    reviewer = make_agent()
    reviewer2 = client.beta.agents.update(reviewer.id, system="review carefully")
    assert reviewer2.version == 2
    tester = make_agent()
    coordinator = make_agent(
        multiagent={
            "type": "coordinator",
            "agents": [
                {"type": "advisor", "model": "claude-opus-4-6"},
                reviewer.id,
                {"type": "agent", "id": tester.id, "version": 1},
                {"type": "self"},
            ],
        }
    )
    expected = [
        {"type": "agent", "id": reviewer.id, "version": 2},
        {"type": "agent", "id": tester.id, "version": 1},
        {"type": "agent", "id": coordinator.id, "version": 1},
        {"type": "advisor", "model": "claude-opus-4-6"},
    ]
    assert coordinator.multiagent.type == "coordinator"
    assert roster(coordinator) == expected
    assert roster(client.beta.agents.retrieve(coordinator.id)) == expected

    # A newer reviewer version does not move the pinned roster; `self` follows the version.
    client.beta.agents.update(reviewer.id, system="review even more carefully")
    updated = client.beta.agents.update(coordinator.id, system="coordinate")
    assert updated.version == 2
    assert roster(updated)[0] == {"type": "agent", "id": reviewer.id, "version": 2}
    assert roster(updated)[2] == {"type": "agent", "id": coordinator.id, "version": 2}
    assert roster(client.beta.agents.retrieve(coordinator.id, version=1))[2]["version"] == 1

    # Updating the roster re-resolves it (the bare id now means version 3); null clears it.
    again = client.beta.agents.update(coordinator.id, multiagent={"type": "coordinator", "agents": [reviewer.id]})
    assert roster(again) == [{"type": "agent", "id": reviewer.id, "version": 3}]
    cleared = client.beta.agents.update(coordinator.id, multiagent=None)
    assert cleared.multiagent is None


def test_multiagent_20261001_echoes_every_key(client: anthropic.Anthropic, make_agent: Callable[..., Any]) -> None:
    helper = make_agent()
    bare = make_agent(multiagent={"type": "multiagent_20261001"})
    body = bare.multiagent.to_dict()
    assert body == {
        "type": "multiagent_20261001",
        "advisor": {"type": "disabled"},
        "subagents": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
        "workflows": {"type": "enabled", "inline_agents": {"type": "enabled"}, "predefined_agents": []},
    }
    full = make_agent(
        multiagent={
            "type": "multiagent_20261001",
            "advisor": {"type": "enabled", "model": "claude-opus-4-6"},
            "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [helper.id, {"type": "self"}]},
            "workflows": {"type": "disabled"},
        }
    )
    body = full.multiagent.to_dict()
    assert body["advisor"] == {"type": "enabled", "model": "claude-opus-4-6"}
    assert body["subagents"] == {
        "type": "enabled",
        "inline_agents": {"type": "disabled"},
        "predefined_agents": [
            {"type": "agent", "id": helper.id, "version": 1},
            {"type": "agent", "id": full.id, "version": 1},
        ],
    }
    assert body["workflows"] == {"type": "disabled"}


def test_bad_rosters_are_400_and_change_nothing(client: anthropic.Anthropic, make_agent: Callable[..., Any]) -> None:
    plain = make_agent()
    archived = make_agent()
    client.beta.agents.archive(archived.id)
    nested = make_agent(multiagent={"type": "coordinator", "agents": [plain.id]})
    cases = [
        ({"type": "coordinator", "agents": []}, "multiagent.agents"),
        ({"type": "coordinator", "agents": ["agent_011CZkZaBF1tNoB5wlCeusgy"]}, "does not exist"),
        ({"type": "coordinator", "agents": [archived.id]}, "archived"),
        ({"type": "coordinator", "agents": [nested.id]}, "one level"),
        ({"type": "coordinator", "agents": [plain.id, {"type": "agent", "id": plain.id}]}, "more than once"),
        ({"type": "coordinator", "agents": [{"type": "self"}, {"type": "self"}]}, "self"),
        (
            {"type": "coordinator", "agents": [{"type": "advisor", "model": "a"}, {"type": "advisor", "model": "b"}]},
            "advisor",
        ),
        ({"type": "coordinator", "agents": [{"type": "agent", "id": plain.id, "version": 7}]}, "no version 7"),
        ({"type": "swarm", "agents": [plain.id]}, "multiagent.type"),
    ]
    for multiagent, text in cases:
        with pytest.raises(anthropic.BadRequestError) as err:
            client.beta.agents.create(name=unique("coord"), model="claude-sonnet-4-6", multiagent=multiagent)
        assert err.value.status_code == 400
        assert err.value.body["error"]["type"] == "invalid_request_error"
        assert text in err.value.message, (multiagent, err.value.message)

    # On update too, and a refused update writes no version.
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.agents.update(plain.id, multiagent={"type": "coordinator", "agents": [archived.id]})
    assert "archived" in err.value.message
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.agents.update(plain.id, multiagent={"type": "coordinator", "agents": [plain.id]})
    assert "self" in err.value.message
    assert client.beta.agents.retrieve(plain.id).version == 1


def test_a_session_holds_its_rosters_full_definitions(
    client: anthropic.Anthropic, make_agent: Callable[..., Any], environment: Any
) -> None:
    reviewer = make_agent(system="review carefully", description="reviews")
    coordinator = make_agent(
        system="coordinate",
        multiagent={
            "type": "coordinator",
            "agents": [reviewer.id, {"type": "self"}, {"type": "advisor", "model": "claude-opus-4-6"}],
        },
    )
    client.beta.agents.update(reviewer.id, system="changed later")
    session = client.beta.sessions.create(
        agent={"type": "agent_with_overrides", "id": coordinator.id, "system": "overridden"},
        environment_id=environment.id,
    )
    agents = session.agent.multiagent.agents
    assert session.agent.multiagent.type == "coordinator"
    assert [a.type for a in agents] == ["agent", "agent", "advisor"]
    assert agents[0].id == reviewer.id and agents[0].version == 1
    assert agents[0].name == reviewer.name and agents[0].system == "review carefully"
    assert agents[0].description == "reviews" and agents[0].model.id == "claude-sonnet-4-6"
    # `self` is the coordinator as the session runs it, overrides included, without its roster.
    assert agents[1].id == coordinator.id and agents[1].system == "overridden"
    assert "multiagent" not in agents[1].to_dict()
    assert agents[2].model == "claude-opus-4-6"
    assert client.beta.sessions.retrieve(session.id).agent.multiagent.to_dict() == session.agent.multiagent.to_dict()
