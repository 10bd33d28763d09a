"""Environments (API §5) through `client.beta.environments`."""

from __future__ import annotations

import anthropic
import pytest

from conftest import unique

MISSING = "env_01doesnotexist0000000000"


def test_create_fills_defaults(client: anthropic.Anthropic) -> None:
    name = unique("env")
    env = client.beta.environments.create(name=name)
    assert env.type == "environment"
    assert env.id.startswith("env_")
    assert env.name == name
    assert env.description is None
    assert env.metadata == {}
    assert env.archived_at is None
    assert env.created_at and env.updated_at
    assert env.config.type == "cloud"
    assert env.config.networking.type == "unrestricted"
    packages = env.config.packages
    assert packages.type == "packages"
    for manager in ("apt", "cargo", "gem", "go", "npm", "pip"):
        assert getattr(packages, manager) == []


def test_create_with_config(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(
        name=unique("env"),
        description="limited",
        metadata={"team": "qa"},
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["api.example.com"], "allow_package_managers": True},
            "packages": {"pip": ["pandas==2.2"], "apt": ["ripgrep"]},
        },
    )
    assert env.description == "limited"
    assert env.metadata == {"team": "qa"}
    net = env.config.networking
    assert net.type == "limited"
    assert net.allowed_hosts == ["api.example.com"]
    assert net.allow_mcp_servers is False
    assert net.allow_package_managers is True
    assert env.config.packages.pip == ["pandas==2.2"]
    assert env.config.packages.apt == ["ripgrep"]
    assert env.config.packages.npm == []


def test_create_self_hosted(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(name=unique("env"), config={"type": "self_hosted"})
    assert env.config.type == "self_hosted"


def test_create_invalid_is_400(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.create(name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.create(name=unique("env"), config={"type": "moon"})
    with pytest.raises(anthropic.BadRequestError):
        client.beta.environments.create(name=unique("env"), metadata={"k" * 65: "v"})


def test_duplicate_name_is_409_not_retried(counted) -> None:
    client, counter = counted
    name = unique("env")
    client.beta.environments.create(name=name)
    before = counter.count("POST", "/v1/environments")
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.environments.create(name=name)
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert name in err.value.message
    assert counter.count("POST", "/v1/environments") - before == 1
    # Renaming onto an existing name is a conflict too.
    other = client.beta.environments.create(name=unique("env"))
    with pytest.raises(anthropic.ConflictError):
        client.beta.environments.update(other.id, name=name)


def test_retrieve(client: anthropic.Anthropic, environment) -> None:
    got = client.beta.environments.retrieve(environment.id)
    assert got.id == environment.id and got.name == environment.name
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.retrieve(MISSING)


def test_update_deep_merge(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(
        name=unique("env"),
        description="keep me",
        metadata={"a": "1", "b": "2", "c": "3"},
        config={
            "type": "cloud",
            "networking": {"type": "limited", "allowed_hosts": ["a.example.com"], "allow_package_managers": True},
            "packages": {"pip": ["requests"]},
        },
    )
    updated = client.beta.environments.update(
        env.id,
        metadata={"a": None, "b": "", "d": "4"},
        config={"type": "cloud", "packages": {"npm": ["left-pad"]}},
    )
    assert updated.description == "keep me"  # omitted: preserved
    assert updated.metadata == {"c": "3", "d": "4"}  # null and "" delete keys
    # Omitted networking preserved; packages merged per manager.
    assert updated.config.networking.type == "limited"
    assert updated.config.networking.allowed_hosts == ["a.example.com"]
    assert updated.config.packages.npm == ["left-pad"]
    assert updated.config.packages.pip == ["requests"]
    cleared = client.beta.environments.update(env.id, description=None)
    assert cleared.description is None
    assert client.beta.environments.retrieve(env.id).config.packages.npm == ["left-pad"]


def test_update_rules(client: anthropic.Anthropic, environment) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.environments.update(environment.id, config={"type": "self_hosted"})
    assert err.value.body["error"].get("details", {}).get("error_code") == "invalid_config_type_change"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.update(MISSING, name="x")
    client.beta.environments.archive(environment.id)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.environments.update(environment.id, description="no")
    assert err.value.body["error"].get("details", {}).get("error_code") == "environment_archived"


def test_list_and_archive(client: anthropic.Anthropic) -> None:
    envs = [client.beta.environments.create(name=unique("env")) for _ in range(3)]
    page = client.beta.environments.list(limit=2)
    assert len(page.data) == 2 and page.next_page
    all_ids = [e.id for e in client.beta.environments.list(limit=2)]
    assert len(all_ids) == len(set(all_ids))
    for env in envs:
        assert env.id in all_ids
    archived = client.beta.environments.archive(envs[0].id)
    assert archived.archived_at is not None
    assert envs[0].id not in [e.id for e in client.beta.environments.list(limit=100)]
    assert envs[0].id in [e.id for e in client.beta.environments.list(include_archived=True, limit=100)]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.archive(MISSING)


def test_archived_environment_rejects_sessions(client: anthropic.Anthropic, agent, environment) -> None:
    client.beta.environments.archive(environment.id)
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    assert err.value.body["error"].get("details", {}).get("error_code") == "environment_archived"


def test_delete(client: anthropic.Anthropic) -> None:
    env = client.beta.environments.create(name=unique("env"))
    deleted = client.beta.environments.delete(env.id)
    assert deleted.id == env.id
    assert deleted.type == "environment_deleted"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.retrieve(env.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.environments.delete(env.id)
    assert env.id not in [e.id for e in client.beta.environments.list(include_archived=True, limit=100)]
    # The name is free again.
    again = client.beta.environments.create(name=env.name)
    assert again.id != env.id
