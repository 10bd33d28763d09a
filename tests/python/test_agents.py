"""Agents (API §4) through `client.beta.agents` and `client.beta.agents.versions`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anthropic
import pytest

from conftest import unique

WEATHER_TOOL = {
    "type": "custom",
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def test_create_with_string_model(client: anthropic.Anthropic) -> None:
    name = unique("agent")
    agent = client.beta.agents.create(name=name, model="claude-sonnet-4-6", system="Be brief.")
    assert agent.type == "agent"
    assert agent.id.startswith("agent_")
    assert agent.name == name
    assert agent.version == 1
    assert agent.system == "Be brief."
    assert agent.description is None
    # Responses always carry the object form of the model.
    assert agent.model.id == "claude-sonnet-4-6"
    assert agent.model.speed == "standard"
    assert agent.model.effort is not None and agent.model.effort.type
    assert agent.tools == [] and agent.mcp_servers == [] and agent.skills == []
    assert agent.metadata == {}
    assert agent.execution_identity.type == "service_account"
    assert agent.archived_at is None
    assert agent.created_at is not None and agent.updated_at is not None


def test_create_with_object_model(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(
        name=unique("agent"),
        model={"id": "claude-opus-4-6", "speed": "fast", "effort": "high", "inference_geo": "us"},
        description="object model",
        metadata={"team": "qa"},
    )
    assert agent.model.id == "claude-opus-4-6"
    assert agent.model.speed == "fast"
    assert agent.model.effort.type == "high"
    assert agent.model.inference_geo == "us"
    assert agent.description == "object model"
    assert agent.metadata == {"team": "qa"}


def test_create_with_toolset_and_custom_tool(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(
        name=unique("agent"),
        model="claude-sonnet-4-6",
        tools=[
            {
                "type": "agent_toolset_20260401",
                "configs": [
                    {"name": "bash", "enabled": False},
                    {"name": "web_fetch", "allowed_domains": ["docs.example.com"]},
                ],
            },
            WEATHER_TOOL,
        ],
    )
    assert [t.type for t in agent.tools] == ["agent_toolset_20260401", "custom"]
    toolset = agent.tools[0]
    # Defaults are resolved in the response.
    assert toolset.default_config.enabled is True
    assert toolset.default_config.permission_policy.type == "always_allow"
    configs = {c.name: c for c in toolset.configs}
    assert configs["bash"].enabled is False
    assert configs["web_fetch"].allowed_domains == ["docs.example.com"]
    for config in toolset.configs:
        assert config.permission_policy is not None
    custom = agent.tools[1]
    assert custom.name == "get_weather"
    assert custom.input_schema.type == "object"


def test_create_with_mcp_server_and_toolset(client: anthropic.Anthropic) -> None:
    agent = client.beta.agents.create(
        name=unique("agent"),
        model="claude-sonnet-4-6",
        mcp_servers=[{"type": "url", "name": "github", "url": "https://mcp.example.com/github"}],
        tools=[
            {
                "type": "mcp_toolset",
                "mcp_server_name": "github",
                "configs": [{"name": "create_issue", "permission_policy": {"type": "always_allow"}}],
            }
        ],
    )
    assert len(agent.mcp_servers) == 1
    assert agent.mcp_servers[0].name == "github"
    assert agent.mcp_servers[0].url == "https://mcp.example.com/github"
    toolset = agent.tools[0]
    assert toolset.type == "mcp_toolset"
    assert toolset.mcp_server_name == "github"
    # MCP toolsets default to always_ask.
    assert toolset.default_config.permission_policy.type == "always_ask"
    assert toolset.configs[0].name == "create_issue"
    assert toolset.configs[0].permission_policy.type == "always_allow"


def test_create_with_skills_and_execution_identity(client: anthropic.Anthropic) -> None:
    # Anthropic skills need `--anthropic-skills-dir` (test_skills.py); a custom one is uploaded.
    skill = client.beta.skills.create(
        files=[("sheet-tools/SKILL.md", b"---\nname: sheet-tools\ndescription: Sheets\n---\n", "text/markdown")]
    )
    agent = client.beta.agents.create(
        name=unique("agent"),
        model="claude-sonnet-4-6",
        skills=[{"type": "custom", "skill_id": skill.id}],
        execution_identity={"type": "aws_role", "role_arn": "arn:aws:iam::123456789012:role/agent"},
    )
    assert len(agent.skills) == 1
    assert agent.skills[0].type == "custom" and agent.skills[0].skill_id == skill.id
    assert isinstance(agent.skills[0].version, str)  # always resolved to a string
    assert agent.execution_identity.type == "aws_role"
    assert agent.execution_identity.role_arn == "arn:aws:iam::123456789012:role/agent"
    reset = client.beta.agents.update(agent.id, execution_identity=None, skills=None)
    assert reset.execution_identity.type == "service_account"
    assert reset.skills == []


def test_create_mcp_server_without_toolset_is_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.agents.create(
            name=unique("agent"),
            model="claude-sonnet-4-6",
            mcp_servers=[{"type": "url", "name": "github", "url": "https://mcp.example.com/github"}],
        )
    assert err.value.status_code == 400
    assert "mcp_servers" in err.value.message


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"name": "", "model": "claude-sonnet-4-6"}, "name"),
        ({"name": "x", "model": "claude-sonnet-4-6", "tools": [{**WEATHER_TOOL, "name": "bad name!"}]}, "name"),
        (
            {
                "name": "x",
                "model": "claude-sonnet-4-6",
                "tools": [{"type": "agent_toolset_20260401", "configs": [{"name": "no_such_tool"}]}],
            },
            "configs",
        ),
        ({"name": "x", "model": "claude-sonnet-4-6", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
    ],
    ids=["empty-name", "bad-custom-tool-name", "unknown-builtin-tool", "too-much-metadata"],
)
def test_create_invalid_is_400(client: anthropic.Anthropic, kwargs: dict, field: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.agents.create(**kwargs)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert field in err.value.message


def test_create_missing_model_is_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.post("/v1/agents", body={"name": "no-model"}, cast_to=object)


def test_retrieve_latest_and_by_version(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent(system="v1")
    updated = client.beta.agents.update(agent.id, system="v2")
    assert updated.version == 2
    latest = client.beta.agents.retrieve(agent.id)
    assert latest.version == 2 and latest.system == "v2"
    first = client.beta.agents.retrieve(agent.id, version=1)
    assert first.version == 1 and first.system == "v1"
    assert first.id == agent.id


def test_retrieve_unknown_version_and_id_are_404(client: anthropic.Anthropic, agent) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.retrieve(agent.id, version=99)
    with pytest.raises(anthropic.NotFoundError) as err:
        client.beta.agents.retrieve("agent_01doesnotexist000000000")
    assert err.value.body["error"]["type"] == "not_found_error"


def test_update_creates_versions_and_patches_metadata(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent(metadata={"a": "1", "b": "2"}, description="first")
    v2 = client.beta.agents.update(agent.id, metadata={"a": None, "c": "3"}, version=1)
    assert v2.version == 2
    assert v2.metadata == {"b": "2", "c": "3"}
    assert v2.description == "first"  # omitted = preserved
    v3 = client.beta.agents.update(agent.id, description=None, tools=[WEATHER_TOOL])
    assert v3.version == 3
    assert v3.description is None  # null clears
    assert [t.name for t in v3.tools] == ["get_weather"]
    v4 = client.beta.agents.update(agent.id, tools=None)
    assert v4.version == 4 and v4.tools == []
    # Older versions stay immutable.
    assert client.beta.agents.retrieve(agent.id, version=3).tools[0].name == "get_weather"
    assert client.beta.agents.retrieve(agent.id, version=1).metadata == {"a": "1", "b": "2"}


def test_update_with_stale_version_is_409_and_not_retried(server, counted, make_agent) -> None:
    client, counter = counted
    agent = make_agent()
    client.beta.agents.update(agent.id, system="now version 2", version=1)
    path = f"/v1/agents/{agent.id}"
    before = counter.count("POST", path)
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.agents.update(agent.id, system="stale", version=1)
    assert err.value.status_code == 409
    assert "stale" in err.value.message
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert err.value.request_id and err.value.request_id.startswith("req_")
    # The SDK retries 409 twice by default unless told not to: exactly one request went out.
    assert counter.count("POST", path) - before == 1
    # Nothing was written.
    assert client.beta.agents.retrieve(agent.id).version == 2


def test_stale_version_raw_response_headers(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent()
    client.beta.agents.update(agent.id, name=unique("renamed"))
    with pytest.raises(anthropic.ConflictError) as err:
        client.with_options(max_retries=0).beta.agents.with_raw_response.update(agent.id, version=1, system="x")
    assert err.value.response.headers["x-should-retry"] == "false"
    assert err.value.body["error"]["type"] == "invalid_request_error"


def test_update_invalid_is_400(client: anthropic.Anthropic, agent) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.update(agent.id, name="")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.update("agent_01doesnotexist000000000", name="x")


def test_list_newest_first_with_pagination(client: anthropic.Anthropic, make_agent) -> None:
    made = [make_agent() for _ in range(5)]
    page = client.beta.agents.list(limit=2)
    assert len(page.data) == 2
    assert page.next_page
    seen = [a.id for a in client.beta.agents.list(limit=2)]  # auto-pagination across pages
    assert len(seen) == len(set(seen))
    positions = [seen.index(a.id) for a in made]
    # Newest first: the last created comes first.
    assert positions == sorted(positions, reverse=True)
    created = [a.created_at for a in client.beta.agents.list(limit=100)]
    assert created == sorted(created, reverse=True)


def test_list_shows_latest_version(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent()
    client.beta.agents.update(agent.id, system="second")
    listed = {a.id: a for a in client.beta.agents.list(limit=100)}
    assert listed[agent.id].version == 2
    assert listed[agent.id].system == "second"


def test_list_created_at_range(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent()
    future = datetime.now(timezone.utc) + timedelta(days=1)
    past = datetime.now(timezone.utc) - timedelta(days=1)
    assert agent.id not in [a.id for a in client.beta.agents.list(created_at_gte=future)]
    assert agent.id in [a.id for a in client.beta.agents.list(created_at_gte=past, limit=100)]
    assert agent.id not in [a.id for a in client.beta.agents.list(created_at_lte=past)]
    window = [a.id for a in client.beta.agents.list(created_at_gte=past, created_at_lte=future, limit=100)]
    assert agent.id in window


def test_list_invalid_params_are_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.list(limit=101)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.agents.list(created_at_gte="not-a-date")


def test_archive_and_include_archived(client: anthropic.Anthropic, make_agent, environment) -> None:
    agent = make_agent()
    archived = client.beta.agents.archive(agent.id)
    assert archived.archived_at is not None
    assert archived.id == agent.id
    assert agent.id not in [a.id for a in client.beta.agents.list(limit=100)]
    assert agent.id in [a.id for a in client.beta.agents.list(include_archived=True, limit=100)]
    assert client.beta.agents.retrieve(agent.id).archived_at is not None
    # Archived agents cannot start new sessions.
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.archive("agent_01doesnotexist000000000")


def test_versions_list(client: anthropic.Anthropic, make_agent) -> None:
    agent = make_agent(system="s1")
    for i in range(2, 5):
        client.beta.agents.update(agent.id, system=f"s{i}")
    versions = list(client.beta.agents.versions.list(agent.id))
    assert [v.version for v in versions] == [4, 3, 2, 1]
    assert [v.system for v in versions] == ["s4", "s3", "s2", "s1"]
    assert all(v.id == agent.id for v in versions)
    page = client.beta.agents.versions.list(agent.id, limit=3)
    assert [v.version for v in page.data] == [4, 3, 2]
    assert page.next_page
    rest = client.beta.agents.versions.list(agent.id, limit=3, page=page.next_page)
    assert [v.version for v in rest.data] == [1]
    assert not rest.next_page
    with pytest.raises(anthropic.NotFoundError):
        client.beta.agents.versions.list("agent_01doesnotexist000000000")
