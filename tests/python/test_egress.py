"""The sandbox's one door (issue 10, items 1 and 2): every sandbox has its own network namespace
and reaches the network only through the server's egress proxy, which applies the
environment's networking policy.

A `limited` environment with `allowed_hosts = ["127.0.0.2"]` on a server started with
`--egress-allow-private` (the test servers listen on loopback): `curl` through the proxy reaches
the allowed test server (plain HTTP and a CONNECT tunnel, and `web_fetch` too); another loopback
address and port, the server's own API port, a private address and a direct connection that
ignores the proxy all fail, and the proxy's refusals are one readable line in the 403 body. An
`unrestricted` environment reaches the allowed server too but never the API port; on a server
without the flag it cannot reach loopback at all. Each refusal is counted in `/metrics`.

`allowed_hosts` entries may be IP literals (the API allows hostname | IPv4 | `*.domain`): the
test server listens on 127.0.0.2 so that no `/etc/hosts` entry is needed and the name is not in
the sandbox's `NO_PROXY` (`127.0.0.1,localhost`, kept for the door's own endpoints)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import httpx
import pytest

from conftest import Server, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401
    Harness,
    MockModel,
    bash,
    harness,
    harness_server,
    llm_vault,
    mock,
    searchable,
    text,
    tool_prompt,
    tool_results,
)

ALLOWED_IP = "127.0.0.2"
OTHER_IP = "127.0.0.1"
PRIVATE = "10.255.1.2"


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = f"hello from {self.server.server_address[0]}\n".encode()  # type: ignore[index]
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def page_server(host: str) -> Iterator[int]:
    httpd = http.server.ThreadingHTTPServer((host, 0), Page)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="module")
def allowed_port() -> Iterator[int]:
    yield from page_server(ALLOWED_IP)


@pytest.fixture(scope="module")
def other_port() -> Iterator[int]:
    yield from page_server(OTHER_IP)


@pytest.fixture(scope="module")
def private_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that runs sessions with `--egress-allow-private`."""
    base = tmp_path_factory.mktemp(f"egress-{backend}")
    searchable(base)
    key = new_key()
    process = ServerProcess(
        backend, base / "data", key, base / "server.log", runner=True, args=["--egress-allow-private"]
    ).start()
    yield Server(storage=backend, url=process.url, key=key, other_key=None, process=process)
    code = process.stop()
    assert code == 0, f"server exited with {code}; log tail:\n{process.log_tail()}"


@pytest.fixture
def open_harness(private_server: Server, mock: MockModel) -> Harness:
    client = private_server.client()
    token = "sk-mock-" + unique("secret")
    return Harness(
        client=client, server=private_server, mock=mock, vault=llm_vault(client, mock.url, token), token=token
    )


def run(h: Harness, session: Any, command: str) -> str:
    events = h.turn(session.id, bash(command), timeout=90)
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return text(results[0])


def marked(out: str, mark: str) -> str:
    """The output between `<mark>` and `</mark>`."""
    start = out.index(f"<{mark}>") + len(mark) + 2
    return out[start : out.index(f"</{mark}>")]


def probe(mark: str, command: str) -> str:
    """`command`'s output and exit code between markers."""
    return f"echo '<{mark}>'; {command} 2>&1; echo \"rc=$?\"; echo '</{mark}>'; "


def door_dir(server: Server) -> Path:
    """Where the server keeps its sessions' door sockets."""
    data_dir = str(server.process.data_dir.absolute())
    if os.geteuid() != 0:
        return Path(data_dir) / "doors"
    return Path("/run/managed-agents-doors") / hashlib.sha256(data_dir.encode()).hexdigest()[:16]


def metrics(server: Server) -> str:
    return httpx.get(server.url + "/metrics", timeout=10).text


def counter(text_: str, kind: str, decision: str) -> int:
    line = f'managed_agents_egress_requests_total{{kind="{kind}",decision="{decision}"}} '
    for row in text_.splitlines():
        if row.startswith(line):
            return int(row[len(line) :])
    raise AssertionError(f"no counter {kind}/{decision} in /metrics")


def test_limited_reaches_only_its_allowed_hosts(open_harness: Harness, allowed_port: int, other_port: int) -> None:
    h = open_harness
    api = urlparse(h.server.url)
    before = metrics(h.server)
    env = h.environment(
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": [ALLOWED_IP]}}
    )
    session = h.session(environment=env)
    curl = "curl -sS --max-time 20"
    out = run(
        h,
        session,
        probe("env", 'echo "$HTTP_PROXY|$HTTPS_PROXY|$http_proxy|$https_proxy|$NO_PROXY|$no_proxy"')
        + probe("plain", f"{curl} http://{ALLOWED_IP}:{allowed_port}/")
        + probe("tunnel", f"{curl} --proxytunnel http://{ALLOWED_IP}:{allowed_port}/")
        + probe("other", f"{curl} --noproxy '' http://{OTHER_IP}:{other_port}/")
        + probe("api", f"{curl} --noproxy '' http://{api.hostname}:{api.port}/v1/agents")
        + probe("private", f"{curl} http://{PRIVATE}/")
        + probe("private_tunnel", f"{curl} -v --proxytunnel http://{PRIVATE}:443/")
        + probe("direct", f"{curl} --noproxy '*' http://{ALLOWED_IP}:{allowed_port}/")
        + probe("direct_other", f"{curl} http://{OTHER_IP}:{other_port}/")
        + "echo DONE",
    )
    assert "DONE" in out, out
    proxy = "http://127.0.0.1:3128"
    assert marked(out, "env").strip() == f"{proxy}|{proxy}|{proxy}|{proxy}|127.0.0.1,localhost|127.0.0.1,localhost\nrc=0"
    assert marked(out, "plain").strip() == f"hello from {ALLOWED_IP}\nrc=0", out
    assert marked(out, "tunnel").strip() == f"hello from {ALLOWED_IP}\nrc=0", out

    # The proxy's refusals: one line in the 403 body, which the agent reads.
    other = marked(out, "other")
    assert f"egress proxy: {OTHER_IP} is not in this environment's allowed hosts" in other, out
    assert "hello" not in other
    assert "is not in this environment's allowed hosts" in marked(out, "api"), out
    assert f"egress proxy: {PRIVATE} is not in this environment's allowed hosts" in marked(out, "private"), out
    # A refused CONNECT: the reason is in the status line (clients show that, not the body).
    tunnel = marked(out, "private_tunnel")
    assert f"403 Forbidden (egress proxy: {PRIVATE} is not in this environment's allowed hosts" in tunnel, out
    assert "rc=0" not in tunnel, out

    # Ignoring the proxy leads nowhere: the namespace has only its own loopback.
    for mark in ("direct", "direct_other"):
        section = marked(out, mark)
        assert "hello" not in section and "rc=0" not in section, out

    # Deleting the session removes its door (the socket directory; see door_dir in main.rs).
    door = door_dir(h.server) / session.id
    assert (door / "door.sock").exists()
    h.client.beta.sessions.delete(session.id)
    assert not door.exists()

    after = metrics(h.server)
    assert counter(after, "http", "allowed") > counter(before, "http", "allowed")
    assert counter(after, "connect", "allowed") > counter(before, "connect", "allowed")
    assert counter(after, "http", "not_allowed") >= counter(before, "http", "not_allowed") + 3
    assert counter(after, "connect", "not_allowed") > counter(before, "connect", "not_allowed")


def test_web_fetch_in_limited_uses_the_proxy(open_harness: Harness, allowed_port: int, other_port: int) -> None:
    h = open_harness
    env = h.environment(
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": [ALLOWED_IP]}}
    )
    session = h.session(environment=env)
    events = h.turn(session.id, tool_prompt("web_fetch", {"url": f"http://{ALLOWED_IP}:{allowed_port}/"}), timeout=90)
    results = tool_results(events)
    assert len(results) == 1 and text(results[0]).strip() == f"hello from {ALLOWED_IP}", text(results[0])
    assert not results[0].is_error

    events = h.turn(session.id, tool_prompt("web_fetch", {"url": f"http://{OTHER_IP}:{other_port}/"}), timeout=90)
    denied = tool_results(events)[0]
    assert denied.is_error
    assert "is not in this environment's allowed hosts" in text(denied), text(denied)


def test_unrestricted_reaches_public_and_allowed_private_but_never_the_api(
    open_harness: Harness, allowed_port: int
) -> None:
    h = open_harness
    api = urlparse(h.server.url)
    env = h.environment(config={"type": "cloud", "networking": {"type": "unrestricted"}})
    session = h.session(environment=env)
    curl = "curl -sS --max-time 20"
    out = run(
        h,
        session,
        probe("plain", f"{curl} http://{ALLOWED_IP}:{allowed_port}/")
        + probe("api", f"{curl} --noproxy '' http://{api.hostname}:{api.port}/v1/agents")
        + probe("api_alias", f"{curl} --noproxy '' http://127.0.0.9:{api.port}/v1/agents")
        + probe("api_tunnel", f"{curl} --noproxy '' --proxytunnel http://localhost:{api.port}/v1/agents")
        + "echo DONE",
    )
    assert "DONE" in out, out
    assert marked(out, "plain").strip() == f"hello from {ALLOWED_IP}\nrc=0", out
    for mark in ("api", "api_alias"):
        assert "is this server's own API, which sandboxes may not reach" in marked(out, mark), out
    tunnel = marked(out, "api_tunnel")
    assert "403" in tunnel and "rc=0" not in tunnel, out


def test_unrestricted_without_the_flag_cannot_reach_loopback(harness: Harness, allowed_port: int) -> None:
    """The ordinary harness server has no `--egress-allow-private`."""
    h = harness
    mock_addr = urlparse(h.mock.url)
    env = h.environment(config={"type": "cloud", "networking": {"type": "unrestricted"}})
    session = h.session(environment=env)
    curl = "curl -sS --max-time 20"
    out = run(
        h,
        session,
        probe("allowed", f"{curl} http://{ALLOWED_IP}:{allowed_port}/")
        + probe("mock", f"{curl} --noproxy '' {h.mock.url}/_mock/requests")
        + probe("metadata", f"{curl} http://169.254.169.254/latest/meta-data/")
        + probe("private", f"{curl} http://{PRIVATE}/")
        + probe("rebinding", f"{curl} --noproxy '' http://localhost:{mock_addr.port}/")
        + probe("direct", f"{curl} --noproxy '*' http://{mock_addr.hostname}:{mock_addr.port}/")
        + "echo DONE",
    )
    assert "DONE" in out, out
    assert f"egress proxy: {ALLOWED_IP} is a loopback address" in marked(out, "allowed"), out
    assert f"egress proxy: {mock_addr.hostname} is a loopback address" in marked(out, "mock"), out
    assert "egress proxy: 169.254.169.254 is a link-local address" in marked(out, "metadata"), out
    assert f"egress proxy: {PRIVATE} is a private address" in marked(out, "private"), out
    # A name is checked on what it resolves to (DNS rebinding).
    assert "egress proxy: localhost resolves to" in marked(out, "rebinding"), out
    assert "rc=0" not in marked(out, "direct"), out
