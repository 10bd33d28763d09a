"""API keys (issue 3, deliverable 2) on RocksDB: a first start with no keys creates one and
prints it once; `keys create` / `keys list` / `keys revoke` manage keys; revoked keys get 401."""

from __future__ import annotations

import re

import anthropic
import pytest

from conftest import ServerProcess, cli, create_key


def test_first_start_prints_a_key_once_and_keys_can_be_revoked(tmp_path) -> None:
    data = tmp_path / "data"
    first = ServerProcess("rocksdb", data, None, tmp_path / "server.log").start()
    try:
        printed = "".join(first.stdout_lines)
        match = re.search(r"created API key (apikey_\S+) for workspace default: (\S+)", printed)
        assert match, f"no key printed on first start: {printed!r}"
        key_id, key = match.groups()
        client = anthropic.Anthropic(base_url=first.url, api_key=key)
        agent = client.beta.agents.create(name="first-key", model="claude-sonnet-4-6")
    finally:
        assert first.stop() == 0

    listed = cli("keys", "list", "--data-dir", str(data)).stdout
    assert key_id in listed
    assert key not in listed  # never the value
    second_key = create_key(data, "default")

    second = ServerProcess("rocksdb", data, None, tmp_path / "server.log").start()
    try:
        assert "created API key" not in "".join(second.stdout_lines), "a key was printed again"
        # Both keys of workspace `default` see the same objects.
        for k in (key, second_key):
            assert anthropic.Anthropic(base_url=second.url, api_key=k).beta.agents.retrieve(agent.id).id == agent.id
    finally:
        assert second.stop() == 0

    cli("keys", "revoke", "--data-dir", str(data), key_id)
    assert "revoked" in cli("keys", "list", "--data-dir", str(data)).stdout
    third = ServerProcess("rocksdb", data, None, tmp_path / "server.log").start()
    try:
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=third.url, api_key=key).beta.agents.list()
        still = anthropic.Anthropic(base_url=third.url, api_key=second_key)
        assert still.beta.agents.retrieve(agent.id).name == "first-key"
    finally:
        assert third.stop() == 0
