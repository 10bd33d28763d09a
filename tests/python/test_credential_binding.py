"""Credentials are bound to their destination (issue 8, finding 3): write-only secrets cannot be
read back by re-pointing a vault.

The attack: a workspace user who may edit vaults but never read secrets sets a vault's metadata
to `role = llm` with `llm_base_url` at a listener they run, starts a session, and receives the
credential's token in the model request (or in the `session.error` echoing the listener's
answer). Here the listener is a loopback HTTP server run by the test; it records every request
and answers 401 with an error message that echoes the `x-api-key` it got (as an attacker's
would), padded with newlines and 20 000 characters.

- An MCP credential (one with `mcp_server_url`) is never a model API key: not in a re-pointed
  vault, not in a real LLM vault next to a model key.
- `mcp_server_url` is immutable: an update naming another URL is a 400 naming the field.
- A model API key is sent only to the `llm_base_url` it was entered for; after the vault is
  re-pointed it must be entered again, and then a hostile endpoint's echo is redacted and cut.
- `serve --llm-endpoint-allow` / `MANAGED_AGENTS_LLM_ENDPOINT_ALLOW` refuses other endpoints
  before any request.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import anthropic
import pytest

from conftest import Server, ServerProcess, binary, new_key, unique
from harness_support import (  # noqa: F401  (fixtures)
    BASE_URL,
    ROLE,
    TOOLSET,
    WAIT,
    mock,
    MockModel,
    harness_server,
    searchable,
    types,
)


class Listener:
    """A loopback HTTP server that records every request and answers 401, echoing the
    `x-api-key` and `authorization` headers it received in a long multi-line message."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                with lock:
                    outer.requests.append(
                        {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                    )
                echo = f"invalid x-api-key {self.headers.get('x-api-key')!s} / {self.headers.get('authorization')!s}"
                message = echo + "\n\n" + "\x1b[2J" + "Z" * 20000
                payload = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": message}})
                data = payload.encode()
                self.send_response(401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_POST = do_GET = do_PUT = _any

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def carrying(self, value: str) -> list[dict[str, Any]]:
        """Requests with `value` anywhere in their path, headers or body."""
        return [r for r in self.requests if value in json.dumps(r)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.stop()


def new_session(client: anthropic.Anthropic, vault_id: str) -> str:
    agent = client.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6", tools=[TOOLSET])
    environment = client.beta.environments.create(name=unique("env"))
    return client.beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[vault_id]).id


def run_turn(client: anthropic.Anthropic, vault_id: str, prompt: str = "hello") -> tuple[str, list[Any]]:
    """Creates a session with `vault_id`, sends one message, waits for idle; returns the session
    id and the turn's events."""
    session_id = new_session(client, vault_id)
    return session_id, send_turn(client, session_id, prompt)


def send_turn(client: anthropic.Anthropic, session_id: str, prompt: str = "hello") -> list[Any]:
    sent = client.beta.sessions.events.send(
        session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": prompt}]}]
    ).data[0]
    deadline = time.monotonic() + WAIT
    while True:
        events = list(client.beta.sessions.events.list(session_id, limit=1000))
        ids = [e.id for e in events]
        if sent.id in ids:
            tail = events[ids.index(sent.id) :]
            if any(e.type == "session.status_idle" for e in tail[1:]):
                return tail
        assert time.monotonic() < deadline, f"no idle after {sent.id}: {[e.type for e in events]}"
        time.sleep(0.05)


def errors(events: list[Any]) -> list[Any]:
    return [e.error for e in events if e.type == "session.error"]


def raw_events(client: anthropic.Anthropic, session_id: str) -> str:
    """The session's whole event list as the raw JSON text the server sent."""
    return client.beta.sessions.events.with_raw_response.list(session_id, limit=1000).http_response.text


def mcp_token() -> str:
    return "MCP-PROD-TOKEN-" + secrets.token_hex(16)


# --- (a) an MCP credential is never sent as the model API key -------------------------------


def test_repointing_a_vault_does_not_send_its_mcp_token_to_the_listener(
    harness_server: Server, listener: Listener
) -> None:
    client = harness_server.client()
    token = mcp_token()
    vault = client.beta.vaults.create(display_name=unique("mcp"))
    client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/github", "token": token}
    )
    # The attack: re-point the vault at the listener as an LLM vault.
    client.beta.vaults.update(vault.id, metadata={ROLE: "llm", BASE_URL: listener.url})
    session_id, events = run_turn(client, vault.id)

    assert listener.carrying(token) == []
    assert listener.requests == [], "no model request without a model API key"
    errs = errors(events)
    assert errs and errs[-1].retry_status.type == "terminal"
    assert "without an mcp_server_url" in errs[-1].message
    assert token not in raw_events(client, session_id)
    assert types(events)[-1] == "session.status_idle"


def test_an_llm_vault_never_uses_its_mcp_credential_as_the_model_key(
    harness_server: Server, mock: MockModel
) -> None:
    client = harness_server.client()
    token = mcp_token()
    model_key = "sk-model-" + secrets.token_hex(8)
    vault = client.beta.vaults.create(display_name=unique("llm"), metadata={ROLE: "llm", BASE_URL: mock.url})
    # The MCP credential is the newest static_bearer of the vault.
    client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": model_key})
    client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/x", "token": token}
    )
    _, events = run_turn(client, vault.id)

    assert "agent.message" in types(events), types(events)
    requests = [r for r in mock.requests() if r["path"].endswith("/v1/messages")]
    assert requests and all(r["headers"].get("x-api-key") == model_key for r in requests)
    assert all(token not in json.dumps(r) for r in mock.requests())


# --- (b) mcp_server_url is immutable ---------------------------------------------------------


def test_mcp_server_url_cannot_be_changed(harness_server: Server, listener: Listener) -> None:
    client = harness_server.client()
    vault = client.beta.vaults.create(display_name=unique("mcp"))
    original = "https://mcp.example.com/github"
    bearer = client.beta.vaults.credentials.create(
        vault.id, auth={"type": "static_bearer", "mcp_server_url": original, "token": mcp_token()}
    )
    oauth = client.beta.vaults.credentials.create(
        vault.id,
        auth={"type": "mcp_oauth", "mcp_server_url": original, "access_token": mcp_token()},
    )
    for cred, kind in ((bearer, "static_bearer"), (oauth, "mcp_oauth")):
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.beta.vaults.credentials.update(
                cred.id, vault_id=vault.id, auth={"type": kind, "mcp_server_url": listener.url + "/mcp"}
            )
        assert "auth.mcp_server_url" in str(caught.value)
        assert "immutable" in str(caught.value)
        assert client.beta.vaults.credentials.retrieve(cred.id, vault_id=vault.id).auth.mcp_server_url == original
        # Repeating the stored URL is accepted.
        same = client.beta.vaults.credentials.update(
            cred.id, vault_id=vault.id, auth={"type": kind, "mcp_server_url": original}, display_name="same"
        )
        assert same.auth.mcp_server_url == original and same.display_name == "same"
    # A model API key cannot gain an MCP server URL either.
    key = client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": "sk-model"})
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.beta.vaults.credentials.update(
            key.id, vault_id=vault.id, auth={"type": "static_bearer", "mcp_server_url": listener.url}
        )
    assert "auth.mcp_server_url" in str(caught.value)
    assert listener.requests == []


# --- (c) a model key is sent only where it was entered for -----------------------------------


def test_a_model_key_does_not_follow_the_vault_to_a_new_url(
    harness_server: Server, mock: MockModel, listener: Listener
) -> None:
    client = harness_server.client()
    key = "sk-model-A-" + secrets.token_hex(12)
    vault = client.beta.vaults.create(display_name=unique("llm"), metadata={ROLE: "llm", BASE_URL: mock.url})
    cred = client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": key})
    session_id = new_session(client, vault.id)

    # Bound to A (the mock): works.
    first = send_turn(client, session_id)
    assert "agent.message" in types(first), types(first)
    assert any(r["headers"].get("x-api-key") == key for r in mock.requests())

    # Re-pointed to B (the listener): nothing is sent, the error says what to do.
    client.beta.vaults.update(vault.id, metadata={BASE_URL: listener.url})
    second = send_turn(client, session_id)
    assert listener.carrying(key) == []
    assert listener.requests == []
    errs = errors(second)
    assert errs and errs[-1].retry_status.type == "terminal"
    assert cred.id in errs[-1].message and "enter the key again" in errs[-1].message
    assert key not in raw_events(client, session_id)

    # A new session, and B spelled with a trailing slash: still refused.
    client.beta.vaults.update(vault.id, metadata={BASE_URL: listener.url + "/"})
    _, third = run_turn(client, vault.id)
    assert errors(third) and listener.requests == []

    # Entering a key again binds it to B: now B gets that key, and its echo of the key is
    # redacted and its long, multi-line message cut to one short line.
    key_b = "sk-model-B-" + secrets.token_hex(12)
    client.beta.vaults.credentials.update(cred.id, vault_id=vault.id, auth={"type": "static_bearer", "token": key_b})
    fourth = send_turn(client, session_id)
    assert listener.carrying(key_b), "the re-entered key is sent to the endpoint it was entered for"
    assert listener.carrying(key) == []
    errs = errors(fourth)
    assert errs, types(fourth)
    message = errs[-1].message
    assert "HTTP 401" in message and "[redacted]" in message
    assert len(message) <= 401 and "\n" not in message and "\x1b" not in message
    raw = raw_events(client, session_id)
    assert key_b not in raw and key not in raw

    # And the old endpoint no longer accepts the re-bound key.
    before = len(mock.requests())
    client.beta.vaults.update(vault.id, metadata={BASE_URL: mock.url})
    fifth = send_turn(client, session_id)
    assert errors(fifth) and len(mock.requests()) == before


# --- (d) the operator's allow-list -----------------------------------------------------------


@pytest.fixture
def allow_server(
    tmp_path: Path, mock: MockModel, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Server]:
    """A runner-on server allowing only api.anthropic.com and the mock (comma-separated env)."""
    searchable(tmp_path)
    monkeypatch.setenv("MANAGED_AGENTS_LLM_ENDPOINT_ALLOW", f"api.anthropic.com,{mock.url}")
    key = new_key()
    process = ServerProcess("memory", tmp_path / "data", key, tmp_path / "server.log", runner=True).start()
    yield Server(storage="memory", url=process.url, key=key, other_key=None, process=process)
    assert process.stop() == 0


def test_the_allow_list_refuses_other_endpoints_before_any_request(
    allow_server: Server, mock: MockModel, listener: Listener
) -> None:
    client = allow_server.client()
    key = "sk-model-" + secrets.token_hex(12)
    allowed = client.beta.vaults.create(display_name=unique("ok"), metadata={ROLE: "llm", BASE_URL: mock.url})
    client.beta.vaults.credentials.create(allowed.id, auth={"type": "static_bearer", "token": key})
    _, ok = run_turn(client, allowed.id)
    assert "agent.message" in types(ok), types(ok)

    # The key is entered for the listener (so the binding would allow it): only the list stops it.
    other = client.beta.vaults.create(display_name=unique("no"), metadata={ROLE: "llm", BASE_URL: listener.url})
    client.beta.vaults.credentials.create(other.id, auth={"type": "static_bearer", "token": key})
    _, refused = run_turn(client, other.id)
    assert listener.requests == []
    errs = errors(refused)
    assert errs and errs[-1].retry_status.type == "terminal"
    assert "not allowed on this server" in errs[-1].message
    assert key not in errs[-1].message


def test_a_bad_allow_list_entry_stops_the_server_naming_the_flag(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANAGED_AGENTS_")}
    out = subprocess.run(
        [str(binary()), "serve", "--storage", "memory", "--listen", "127.0.0.1:0",
         "--data-dir", str(tmp_path), "--llm-endpoint-allow", "ftp://models.example"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert out.returncode != 0
    assert "--llm-endpoint-allow" in out.stderr and "ftp://models.example" in out.stderr
