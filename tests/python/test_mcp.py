"""MCP servers (issue 11, item 1): the agent's `mcp_servers` and `mcp_toolset`s, with vault
credentials, on the resident engine (`native`: the harness is the MCP client, from the server
process) and on `claude` and `codex` (the CLI is the client, through the egress proxy, which
injects the credential).

The MCP server is `mcp_test_server.py` (the official Python MCP SDK, streamable HTTP) on HTTPS
at 127.0.0.2 with a certificate of a test CA the managed-agents server trusts upstream
(`--egress-upstream-ca`; `--egress-allow-private` lets it reach loopback). It requires a bearer
token and has an OAuth token endpoint beside it; `/_test/state` shows what it received.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import pytest

from conftest import unique
from harness_support import TOOLSET, Harness, MockModel, llm_vault, mock, searchable, text, tool_prompt  # noqa: F401
from test_credential_injection import HOST, CaFiles, Injecting, make_ca

SERVER_NAME = "tests"
SCRIPT = Path(__file__).resolve().parent / "mcp_test_server.py"


@dataclasses.dataclass
class McpServer:
    """One `mcp_test_server.py` child process."""

    proc: subprocess.Popen[str]
    port: int
    ca: CaFiles

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}/mcp"

    def _client(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca.ca_pem)), timeout=10)

    def configure(self, tokens: list[str], refresh_token: str = "") -> None:
        with self._client() as c:
            c.post(f"https://{HOST}:{self.port}/_test/config", json={"tokens": tokens, "refresh_token": refresh_token})

    def state(self) -> dict[str, Any]:
        with self._client() as c:
            return c.get(f"https://{HOST}:{self.port}/_test/state").json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_mcp_server(ca: CaFiles, tools: int = 0) -> McpServer:
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--host", HOST, "--cert", str(ca.leaf_pem), "--key", str(ca.leaf_key),
         "--tools", str(tools)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    port = 0
    for line in proc.stdout:
        if line.startswith("listening on "):
            port = int(line.split()[-1])
            break
    if not port:
        proc.kill()
        raise RuntimeError("the MCP test server did not start")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return McpServer(proc=proc, port=port, ca=ca)


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return make_ca(tmp_path_factory.mktemp("mcp-ca"))


@pytest.fixture(scope="module")
def injecting(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFiles) -> Iterator[Injecting]:
    base = tmp_path_factory.mktemp("mcp")
    searchable(base)
    server = Injecting(base, test_ca)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mcp_server(test_ca: CaFiles) -> Iterator[McpServer]:
    server = start_mcp_server(test_ca)
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# Helpers


def toolset(policy: Optional[str] = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "mcp_toolset", "mcp_server_name": SERVER_NAME, **extra}
    if policy is not None:
        entry["default_config"] = {"permission_policy": {"type": policy}}
    return entry


def mcp_agent(h: Harness, url: str, policy: Optional[str] = "always_allow", **extra: Any) -> Any:
    return h.agent(
        tools=[TOOLSET, toolset(policy, **extra)],
        mcp_servers=[{"type": "url", "name": SERVER_NAME, "url": url}],
    )


def bearer_vault(h: Harness, url: str, token: str) -> Any:
    vault = h.client.beta.vaults.create(display_name=unique("mcp"))
    h.client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": url, "token": token}
    )
    return vault


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.type == kind]


def idle(events: list[Any]) -> Any:
    """The turn's `session.status_idle` (an agent CLI's last span may be recorded after it)."""
    return [e for e in events if e.type == "session.status_idle"][-1]


def offered_tools(h: Harness) -> dict[str, Any]:
    """The tools of the last model request, by name."""
    return {t["name"]: t for t in h.model_requests()[-1]["body"].get("tools", [])}


def assert_secret_nowhere(h: Harness, injecting: Injecting, session_id: str, secrets: list[str]) -> None:
    dumped = json.dumps([e.model_dump(mode="json") for e in h.events(session_id)])
    log = injecting.log_path.read_text()
    requests = json.dumps(h.mock.requests())
    workspace = injecting.data_dir / "workspaces" / session_id
    files = [p for p in workspace.rglob("*") if p.is_file() and not p.is_symlink()] if workspace.is_dir() else []
    for secret in secrets:
        assert secret not in dumped, "a secret in the events"
        assert secret not in log, "a secret in the server log"
        assert secret not in requests, "a secret in a model request"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"a secret in {path}"


# ---------------------------------------------------------------------------------------------
# native: the harness is the MCP client


@pytest.mark.parametrize("engine", ["native", "openai-agents"])
def test_resident_engines_list_tools_once_and_call_one(
    injecting: Injecting, mock: MockModel, mcp_server: McpServer, engine: str
) -> None:
    h = injecting.harness(mock)
    if engine != "native":
        h.vault = llm_vault(h.client, mock.url, h.token, engine=engine)
    token = unique("mcp-token")
    mcp_server.configure([token])
    vault = bearer_vault(h, mcp_server.url, token)
    session = h.session(agent=mcp_agent(h, mcp_server.url), vault_ids=[h.vault.id, vault.id])

    events = h.turn(session.id, tool_prompt("mcp__tests__echo", {"text": "hi there"}), timeout=60)
    uses = of_type(events, "agent.mcp_tool_use")
    assert len(uses) == 1, [e.type for e in events]
    use = uses[0]
    assert (use.mcp_server_name, use.name, use.input) == (SERVER_NAME, "echo", {"text": "hi there"})
    assert use.evaluated_permission == "allow"
    results = of_type(events, "agent.mcp_tool_result")
    assert len(results) == 1
    assert results[0].mcp_tool_use_id == use.id
    assert text(results[0]) == "echo: hi there"
    assert not results[0].is_error
    assert not of_type(events, "agent.tool_use") and not of_type(events, "session.error")
    assert idle(events).stop_reason.type == "end_turn"

    # Offered with the server's own input schema; the result went back to the model.
    offered = offered_tools(h)
    schema = offered["mcp__tests__echo"].get("input_schema") or offered["mcp__tests__echo"]["parameters"]
    assert schema["properties"]["text"]["type"] == "string"
    assert schema["required"] == ["text"]
    assert "mcp__tests__add" in offered
    last = json.dumps(h.model_requests()[-1]["body"])
    assert "echo: hi there" in last and "mcp__tests__echo" in last

    state = mcp_server.state()
    assert state["calls"] == [{"name": "echo", "arguments": {"text": "hi there"}}]
    assert set(state["authorizations"]) == {f"Bearer {token}"}
    assert state["methods"].count("tools/list") == 1

    # A later turn offers the same tools without listing them again.
    h.turn(session.id, "[[mock:text done]]", timeout=60)
    assert "mcp__tests__echo" in offered_tools(h)
    assert mcp_server.state()["methods"].count("tools/list") == 1

    assert_secret_nowhere(h, injecting, session.id, [token])


def test_native_always_ask_waits_for_a_confirmation(
    injecting: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = injecting.harness(mock)
    token = unique("mcp-token")
    mcp_server.configure([token])
    vault = bearer_vault(h, mcp_server.url, token)
    # No default_config: MCP toolsets default to always_ask; `add` is disabled.
    agent = mcp_agent(h, mcp_server.url, policy=None, configs=[{"name": "add", "enabled": False}])
    session = h.session(agent=agent, vault_ids=[h.vault.id, vault.id])

    events = h.turn(session.id, tool_prompt("mcp__tests__echo", {"text": "may I"}), timeout=60)
    use = of_type(events, "agent.mcp_tool_use")[0]
    assert use.evaluated_permission == "ask"
    assert idle(events).stop_reason.type == "requires_action"
    assert idle(events).stop_reason.event_ids == [use.id]
    assert not of_type(events, "agent.mcp_tool_result")
    assert mcp_server.state()["calls"] == []
    assert "mcp__tests__add" not in offered_tools(h)

    sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = h.wait_idle(session.id, sent[0].id, timeout=60)
    results = of_type(after, "agent.mcp_tool_result")
    assert [(r.mcp_tool_use_id, text(r)) for r in results] == [(use.id, "echo: may I")]
    assert mcp_server.state()["calls"] == [{"name": "echo", "arguments": {"text": "may I"}}]

    # A denial answers the call with the message and never reaches the server.
    events = h.turn(session.id, tool_prompt("mcp__tests__echo", {"text": "again"}), timeout=60)
    use = of_type(events, "agent.mcp_tool_use")[0]
    sent = h.send(
        session.id,
        {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny", "deny_message": "not now"},
    )
    after = h.wait_idle(session.id, sent[0].id, timeout=60)
    denied = of_type(after, "agent.mcp_tool_result")
    assert len(denied) == 1 and denied[0].is_error and "not now" in text(denied[0])
    assert len(mcp_server.state()["calls"]) == 1


def test_native_wrong_token_is_an_authentication_error(
    injecting: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = injecting.harness(mock)
    good, wrong = unique("good"), unique("wrong")
    mcp_server.configure([good])
    vault = bearer_vault(h, mcp_server.url, wrong)
    session = h.session(agent=mcp_agent(h, mcp_server.url), vault_ids=[h.vault.id, vault.id])

    events = h.turn(session.id, "[[mock:text fine without it]]", timeout=60)
    errors = of_type(events, "session.error")
    assert [(e.error.type, e.error.mcp_server_name) for e in errors] == [
        ("mcp_authentication_failed_error", SERVER_NAME)
    ], errors
    # The session goes on without the server's tools.
    assert idle(events).stop_reason.type == "end_turn"
    assert not any(name.startswith("mcp__") for name in offered_tools(h))
    assert set(mcp_server.state()["authorizations"]) == {f"Bearer {wrong}"}
    assert_secret_nowhere(h, injecting, session.id, [wrong])


def test_native_unreachable_server_is_a_connection_error(injecting: Injecting, mock: MockModel) -> None:
    h = injecting.harness(mock)
    url = f"https://{HOST}:9/mcp"  # the discard port: nothing listens
    session = h.session(agent=mcp_agent(h, url))
    events = h.turn(session.id, "[[mock:text ok]]", timeout=90)
    errors = of_type(events, "session.error")
    assert [(e.error.type, e.error.mcp_server_name) for e in errors] == [
        ("mcp_connection_failed_error", SERVER_NAME)
    ], errors
    assert idle(events).stop_reason.type == "end_turn"


def test_native_expired_oauth_token_is_refreshed_once_and_kept(
    injecting: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = injecting.harness(mock)
    old_access, refresh = unique("old-access"), unique("refresh")
    # The old access token is no longer accepted; only a refreshed one is.
    mcp_server.configure([], refresh_token=refresh)
    # Within the refresh margin (60 s): as good as expired, refreshed before its first use (the
    # API accepts only a future expiry).
    expired = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    vault = h.client.beta.vaults.create(display_name=unique("oauth"))
    credential = h.client.beta.vaults.credentials.create(
        vault.id,
        auth={
            "type": "mcp_oauth",
            "mcp_server_url": mcp_server.url,
            "access_token": old_access,
            "expires_at": expired,
            "refresh": {
                "token_endpoint": f"https://{HOST}:{mcp_server.port}/token",
                "client_id": "test-client",
                "refresh_token": refresh,
                "token_endpoint_auth": {"type": "none"},
            },
        },
    )
    session = h.session(agent=mcp_agent(h, mcp_server.url), vault_ids=[h.vault.id, vault.id])

    events = h.turn(session.id, tool_prompt("mcp__tests__add", {"a": 2, "b": 3}), timeout=60)
    assert not of_type(events, "session.error"), of_type(events, "session.error")
    assert [text(r) for r in of_type(events, "agent.mcp_tool_result")] == ["5"]
    state = mcp_server.state()
    assert len(state["token_calls"]) == 1, state["token_calls"]
    assert state["token_calls"][0]["refresh_token"] == [refresh]
    new_access, new_refresh = state["issued"]
    assert set(state["authorizations"]) == {f"Bearer {new_access}"}

    # Persisted: the credential's expiry moved ahead, and a new session uses the new token
    # without refreshing again.
    stored = h.client.beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id)
    expires = stored.auth.expires_at
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    assert expires > datetime.now(timezone.utc) + timedelta(minutes=50), stored
    again = h.session(agent=mcp_agent(h, mcp_server.url), vault_ids=[h.vault.id, vault.id])
    events = h.turn(again.id, tool_prompt("mcp__tests__add", {"a": 1, "b": 1}), timeout=60)
    assert [text(r) for r in of_type(events, "agent.mcp_tool_result")] == ["2"]
    state = mcp_server.state()
    assert len(state["token_calls"]) == 1
    assert set(state["authorizations"]) == {f"Bearer {new_access}"}
    assert_secret_nowhere(h, injecting, session.id, [old_access, refresh, new_access, new_refresh])


# ---------------------------------------------------------------------------------------------
# claude: Claude Code is the MCP client, through the egress proxy that injects the credential


@pytest.fixture(scope="module")
def claude_server(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFiles) -> Iterator[Injecting]:
    from test_engine_claude import runtimes_dir

    base = tmp_path_factory.mktemp("mcp-claude")
    searchable(base)
    server = Injecting(base, test_ca)
    server.args += ["--runtimes-dir", runtimes_dir()]
    server.start()
    yield server
    server.stop()


def test_claude_calls_mcp_tools_through_the_door(
    claude_server: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = claude_server.harness(mock)
    h.vault = llm_vault(h.client, mock.url, h.token, engine="claude")
    token = unique("mcp-token")
    mcp_server.configure([token])
    vault = bearer_vault(h, mcp_server.url, token)
    agent = h.agent(
        model="claude-sonnet-4-5",
        tools=[
            TOOLSET,
            toolset("always_allow", configs=[{"name": "add", "permission_policy": {"type": "always_ask"}}]),
        ],
        mcp_servers=[{"type": "url", "name": SERVER_NAME, "url": mcp_server.url}],
    )
    session = h.session(agent=agent, vault_ids=[h.vault.id, vault.id])

    # always_allow: Claude Code's call goes through the proxy, which adds the vault's token.
    events = h.turn(session.id, tool_prompt("mcp__tests__echo", {"text": "from claude"}), timeout=120)
    uses = of_type(events, "agent.mcp_tool_use")
    assert [(u.mcp_server_name, u.name, u.input, u.evaluated_permission) for u in uses] == [
        (SERVER_NAME, "echo", {"text": "from claude"}, "allow")
    ], [e.type for e in events]
    results = of_type(events, "agent.mcp_tool_result")
    assert [(r.mcp_tool_use_id, r.is_error) for r in results] == [(uses[0].id, False)]
    assert "echo: from claude" in text(results[0])
    assert not of_type(events, "agent.tool_use")
    state = mcp_server.state()
    assert state["calls"] == [{"name": "echo", "arguments": {"text": "from claude"}}]
    assert set(state["authorizations"]) == {f"Bearer {token}"}

    # always_ask: the session waits; the confirmation lets Claude Code's call go on.
    events = h.turn(session.id, tool_prompt("mcp__tests__add", {"a": 20, "b": 22}), timeout=120)
    use = of_type(events, "agent.mcp_tool_use")[0]
    assert (use.name, use.evaluated_permission) == ("add", "ask")
    assert idle(events).stop_reason.type == "requires_action"
    assert idle(events).stop_reason.event_ids == [use.id]
    assert len(mcp_server.state()["calls"]) == 1
    sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = h.wait_idle(session.id, sent[0].id, timeout=120)
    results = of_type(after, "agent.mcp_tool_result")
    assert [r.mcp_tool_use_id for r in results] == [use.id]
    assert "42" in text(results[0])
    assert mcp_server.state()["calls"][-1] == {"name": "add", "arguments": {"a": 20, "b": 22}}

    assert_secret_nowhere(h, claude_server, session.id, [token])


# ---------------------------------------------------------------------------------------------
# codex: Codex is the MCP client, through the egress proxy that injects the credential


def test_codex_calls_mcp_tools_through_the_door(
    claude_server: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = claude_server.harness(mock)
    h.vault = llm_vault(h.client, mock.url, h.token, engine="codex")
    token = unique("mcp-token")
    mcp_server.configure([token])
    vault = bearer_vault(h, mcp_server.url, token)
    agent = mcp_agent(
        h, mcp_server.url, configs=[{"name": "add", "permission_policy": {"type": "always_ask"}}]
    )
    session = h.session(agent=agent, vault_ids=[h.vault.id, vault.id])

    # Codex offers each server's tools as a namespace `mcp__<server>` (the mock's
    # `namespace.name` calls a function of one). It asks before each MCP call; `echo` is
    # always_allow, so the engine accepts at once.
    events = h.turn(session.id, tool_prompt("mcp__tests.echo", {"text": "from codex"}), timeout=120)
    namespaces = [t for t in h.model_requests()[0]["body"]["tools"] if t.get("name") == "mcp__tests"]
    assert [sorted(f["name"] for f in n["tools"]) for n in namespaces] == [["add", "echo"]]
    uses = of_type(events, "agent.mcp_tool_use")
    assert [(u.mcp_server_name, u.name, u.input, u.evaluated_permission) for u in uses] == [
        (SERVER_NAME, "echo", {"text": "from codex"}, "allow")
    ], [e.type for e in events]
    results = of_type(events, "agent.mcp_tool_result")
    assert [r.mcp_tool_use_id for r in results] == [uses[0].id]
    assert "echo: from codex" in text(results[0])
    assert set(mcp_server.state()["authorizations"]) == {f"Bearer {token}"}

    # always_ask: the session waits while Codex waits for our answer to its elicitation.
    events = h.turn(session.id, tool_prompt("mcp__tests.add", {"a": 40, "b": 2}), timeout=120)
    use = of_type(events, "agent.mcp_tool_use")[0]
    assert (use.name, use.evaluated_permission) == ("add", "ask")
    assert idle(events).stop_reason.type == "requires_action", [e.type for e in events]
    assert idle(events).stop_reason.event_ids == [use.id]
    assert len(mcp_server.state()["calls"]) == 1
    sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = h.wait_idle(session.id, sent[0].id, timeout=120)
    results = of_type(after, "agent.mcp_tool_result")
    assert [r.mcp_tool_use_id for r in results] == [use.id], [e.type for e in after]
    assert "42" in text(results[0])
    assert mcp_server.state()["calls"][-1] == {"name": "add", "arguments": {"a": 40, "b": 2}}
    assert_secret_nowhere(h, claude_server, session.id, [token])


def test_claude_wrong_token_is_an_authentication_error_and_the_server_is_left_out(
    claude_server: Injecting, mock: MockModel, mcp_server: McpServer
) -> None:
    h = claude_server.harness(mock)
    h.vault = llm_vault(h.client, mock.url, h.token, engine="claude")
    wrong = unique("wrong")
    mcp_server.configure([unique("good")])
    vault = bearer_vault(h, mcp_server.url, wrong)
    agent = h.agent(
        model="claude-sonnet-4-5",
        tools=[TOOLSET, toolset("always_allow")],
        mcp_servers=[{"type": "url", "name": SERVER_NAME, "url": mcp_server.url}],
    )
    session = h.session(agent=agent, vault_ids=[h.vault.id, vault.id])
    events = h.turn(session.id, "[[mock:text fine without it]]", timeout=120)
    errors = of_type(events, "session.error")
    assert [(e.error.type, e.error.mcp_server_name) for e in errors] == [
        ("mcp_authentication_failed_error", SERVER_NAME)
    ], errors
    assert idle(events).stop_reason.type == "end_turn"
    assert "fine without it" in text(of_type(events, "agent.message")[-1])
    # Claude Code was not given the server: only the harness's check reached it.
    assert not any("mcp__tests" in json.dumps(r["body"].get("tools", [])) for r in h.model_requests())
    assert_secret_nowhere(h, claude_server, session.id, [wrong])
