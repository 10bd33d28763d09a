"""Issue 16, item 4 (abuse limits), against a real `managed-agents serve` on loopback with small
limits:

- per-key request rate (`--rate-limit`, `--rate-limit-burst`): the SDK gets a RateLimitError
  (429 `rate_limit_error`) with `retry-after`; with its retries on it waits and succeeds; another
  key is not affected;
- per-key open streams (`--max-streams-per-key`): one stream beyond the limit is refused with a
  RateLimitError, and a place frees when a stream closes;
- slow clients (`--header-read-timeout`, `--body-read-timeout`): a socket that sends half its
  headers is closed by the server; one that stalls its body gets a 408 `timeout_error` and is
  closed;
- every refusal and timeout is counted in `/metrics`.

No test asserts on timing: the socket waits are bounded only as a safety net.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

import anthropic
import httpx
import pytest

from conftest import ServerProcess, new_key, unique

SAFETY = 30.0


def serve(tmp_path: Path, *args: str) -> ServerProcess:
    return ServerProcess("memory", tmp_path / "data", new_key(), tmp_path / "server.log", args=list(args)).start()


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = serve(
        tmp_path,
        "--rate-limit", "1",
        "--rate-limit-burst", "5",
        "--max-streams-per-key", "2",
        "--header-read-timeout", "1",
        "--body-read-timeout", "1",
    )
    yield srv
    assert srv.stop() == 0, srv.log_tail()


def metric(srv: ServerProcess, name: str) -> int:
    text = httpx.get(f"{srv.url}/metrics", timeout=SAFETY).text
    match = re.search(rf"^{name} (\d+)$", text, re.M)
    assert match, f"{name} missing from /metrics"
    return int(match.group(1))


def test_a_key_over_its_rate_gets_a_rate_limit_error_with_retry_after(limited: ServerProcess) -> None:
    client = limited.client(max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as refused:
        for _ in range(50):
            client.beta.agents.list()
    error = refused.value
    assert error.status_code == 429
    assert int(error.response.headers["retry-after"]) >= 1
    body = error.response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert "retry-after" in body["error"]["message"]
    assert metric(limited, "managed_agents_rate_limited_requests_total") >= 1
    # The SDK's own retries honour retry-after, so a patient client gets through.
    patient = limited.client(max_retries=5)
    assert patient.beta.agents.list().data == []


def test_a_stream_beyond_the_per_key_limit_is_refused_until_one_closes(tmp_path: Path) -> None:
    srv = serve(tmp_path, "--max-streams-per-key", "2")
    try:
        client = srv.client(max_retries=0)
        agent = client.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
        environment = client.beta.environments.create(name=unique("env"))
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        first = client.beta.sessions.events.stream(session.id)
        second = client.beta.sessions.events.stream(session.id)
        with pytest.raises(anthropic.RateLimitError) as refused:
            client.beta.sessions.events.stream(session.id)
        assert refused.value.response.json()["error"]["type"] == "rate_limit_error"
        assert int(refused.value.response.headers["retry-after"]) >= 1
        assert metric(srv, "managed_agents_sse_streams_refused_total") == 1
        # Other requests of the key still work while it holds its streams.
        assert client.beta.sessions.retrieve(session.id).id == session.id
        first.close()
        # The server sees the close when its next write (a ping each second) fails: poll,
        # bounded, until the place is given back.
        third = None
        for _ in range(300):
            try:
                third = client.beta.sessions.events.stream(session.id)
                break
            except anthropic.RateLimitError:
                time.sleep(0.1)
        assert third is not None, "the closed stream's place was never given back"
        third.close()
        second.close()
    finally:
        assert srv.stop() == 0, srv.log_tail()


def connect(srv: ServerProcess) -> socket.socket:
    url = urlparse(srv.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=SAFETY)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (the safety timeout fails)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        except socket.timeout:
            pytest.fail(f"the server kept the connection open; got {data!r}")
        if not chunk:
            return data
        data += chunk


def test_a_slowloris_sending_half_its_headers_is_disconnected(limited: ServerProcess) -> None:
    sock = connect(limited)
    with sock:
        sock.sendall(b"GET /v1/agents HTTP/1.1\r\nhost: test\r\nx-api-key: ")
        # Never finishes the headers: the server closes the connection after its timeout.
        read_until_closed(sock)
    assert metric(limited, "managed_agents_header_read_timeouts_total") >= 1


def test_a_body_that_stalls_gets_a_408_timeout_error_and_the_connection_closes(limited: ServerProcess) -> None:
    sock = connect(limited)
    with sock:
        head = (
            "POST /v1/agents HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            f"x-api-key: {limited.key}\r\ncontent-length: 100\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"name": "slo')
        reply = read_until_closed(sock)
    status_line, _, rest = reply.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 408"), reply
    body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert body["type"] == "error" and body["error"]["type"] == "timeout_error", body
    assert metric(limited, "managed_agents_body_read_timeouts_total") == 1
    # Nothing was created.
    assert limited.client().beta.agents.list().data == []
