"""API keys (issue 3, deliverable 2) on RocksDB: a first start with no keys creates one and
prints it once; `keys create` / `keys list` / `keys revoke` manage keys; revoked keys get 401.
Issue 8: a revoked bootstrap key stays revoked across restarts, weak bootstrap keys stop the
server at start-up, generated keys carry 256 random bits."""

from __future__ import annotations

import base64
import os
import re
import subprocess

import anthropic
import pytest

from conftest import ServerProcess, binary, cli, create_key, new_key


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


def key_ids(data) -> list[tuple[str, str, str]]:
    """`keys list` as (id, name, status) rows."""
    rows = []
    for line in cli("keys", "list", "--data-dir", str(data)).stdout.splitlines():
        fields = line.split("\t")
        rows.append((fields[0], fields[2], fields[-1]))
    return rows


def test_a_revoked_bootstrap_key_stays_revoked_across_restarts(tmp_path) -> None:
    """Issue 8, finding 4: revoking the key installed from MANAGED_AGENTS_BOOTSTRAP_KEY and
    restarting with the same variable must not bring the key back (under a new id)."""
    data = tmp_path / "data"
    key = new_key()
    first = ServerProcess("rocksdb", data, key, tmp_path / "server.log").start()
    try:
        anthropic.Anthropic(base_url=first.url, api_key=key).beta.agents.list()
    finally:
        assert first.stop() == 0
    [(key_id, name, status)] = key_ids(data)
    assert (name, status) == ("bootstrap", "active")
    cli("keys", "revoke", "--data-dir", str(data), key_id)

    warning = f"MANAGED_AGENTS_BOOTSTRAP_KEY was revoked ({key_id})"
    for restart in (1, 2):  # twice: a restart after the warning must not install it either
        again = ServerProcess("rocksdb", data, key, tmp_path / "server.log").start()
        try:
            with pytest.raises(anthropic.AuthenticationError):
                anthropic.Anthropic(base_url=again.url, api_key=key).beta.agents.list()
        finally:
            assert again.stop() == 0
        assert (tmp_path / "server.log").read_text().count(warning) == restart
        assert key_ids(data) == [(key_id, "bootstrap", "revoked")], "the key came back"


@pytest.mark.parametrize(
    "weak",
    [
        "sk-short-but-sixteen-plus",  # 25 characters: too short
        "a" * 40,  # long but one character
        "ab" * 24,  # long but two characters
        "sk-" + "01" * 20,  # long but two characters after the prefix
    ],
)
def test_weak_bootstrap_keys_are_refused_at_startup(tmp_path, weak: str) -> None:
    """Issue 8, finding 11: an operator-provided key must be long and not repetitive; a weak one
    stops `serve` with a clear error instead of becoming a working key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANAGED_AGENTS_")}
    env["MANAGED_AGENTS_BOOTSTRAP_KEY"] = weak
    try:
        out = subprocess.run(
            [str(binary()), "serve", "--listen", "127.0.0.1:0", "--storage", "memory",
             "--data-dir", str(tmp_path / "data"), "--runner", "off"],
            env=env, capture_output=True, text=True, timeout=20,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the server started with the weak key {weak!r}: {e.stdout!r}")
    assert out.returncode == 2, out
    assert "listening on" not in out.stdout
    assert "MANAGED_AGENTS_BOOTSTRAP_KEY" in out.stderr and "an API key must" in out.stderr, out.stderr
    assert weak not in out.stderr, "the error must not echo the key"


def test_generated_keys_carry_256_random_bits(tmp_path) -> None:
    """Issue 8, finding 11: `keys create` keys are the prefix and 32 random bytes (base64url)."""
    data = tmp_path / "data"
    keys = [create_key(data, "default") for _ in range(3)]
    for key in keys:
        assert re.fullmatch(r"sk-ma-api01-[A-Za-z0-9_-]{43}", key), key
        assert len(base64.urlsafe_b64decode(key.removeprefix("sk-ma-api01-") + "=")) == 32
    assert len(set(keys)) == 3
