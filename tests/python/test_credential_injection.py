"""Credential injection (issue 10, item 3): vault credentials are added on the way out of the
sandbox by the door, and never exist inside it.

Test servers speak HTTPS on 127.0.0.2 (loopback, but not in the sandbox's `NO_PROXY`) with
certificates of a test CA made here with `openssl`; the managed-agents server trusts that CA
upstream through `--egress-upstream-ca` and may reach loopback through `--egress-allow-private`.
The sandbox trusts the server's own egress CA through its system trust store, with no flag.

- `static_bearer` for an MCP-style server: `curl` from a bash tool call arrives with the vault's
  token in place of its own `Authorization`; curl trusting only the test CA refuses the
  intercepted connection (it was shown the door's certificate), while a destination without a
  credential is tunnelled untouched (curl trusting only the test CA succeeds, and that server
  gets the client's own header). The token is in no event, no server log line, no model
  request, no file of the workspace, and no process environment or command line inside the
  sandbox (`/proc/*/environ` and `/proc/*/cmdline` scanned from inside).
- `mcp_oauth` whose access token is about to expire: it is refreshed at the test's token
  endpoint (`client_secret_post`) before the request, which carries the new token; the
  credential shows the new expiry; after a server restart the next request still carries the
  new token and the endpoint is not called again. The new tokens appear nowhere either.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import ssl
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Optional
from urllib.parse import parse_qs

import pytest

from conftest import Server, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401
    Harness,
    MockModel,
    bash,
    llm_vault,
    mock,
    searchable,
    text,
    tool_results,
)

HOST = "127.0.0.2"
CURL = "curl -sS --max-time 30"


# ---------------------------------------------------------------------------------------------
# A test CA and HTTPS servers


@dataclasses.dataclass
class CaFiles:
    ca_pem: Path
    leaf_pem: Path
    leaf_key: Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(dir_: Path) -> CaFiles:
    """A throw-away CA and a leaf for 127.0.0.2 (and `localhost`) signed by it."""
    ca_key, ca_pem = dir_ / "ca.key", dir_ / "ca.pem"
    leaf_key, leaf_csr, leaf_pem = dir_ / "leaf.key", dir_ / "leaf.csr", dir_ / "leaf.pem"
    ext = dir_ / "leaf.ext"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl(
        "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_pem), "-days", "2",
        "-subj", "/CN=credential injection test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
    )
    openssl("req", *ec, "-keyout", str(leaf_key), "-out", str(leaf_csr), "-subj", f"/CN={HOST}")
    ext.write_text(
        f"subjectAltName=IP:{HOST},DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
    )
    openssl(
        "x509", "-req", "-in", str(leaf_csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(leaf_pem), "-days", "2", "-extfile", str(ext),
    )
    return CaFiles(ca_pem=ca_pem, leaf_pem=leaf_pem, leaf_key=leaf_key)


class Recorder:
    """What an HTTPS test server received, and its token endpoint's state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.refresh_token = ""
        self.token_calls: list[dict[str, list[str]]] = []
        self.issued: list[str] = []

    def authorizations(self, path_prefix: str = "/") -> list[Optional[str]]:
        with self.lock:
            return [r["authorization"] for r in self.requests if r["path"].startswith(path_prefix)]


def handler_for(recorder: Recorder) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def record(self) -> bytes:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            with recorder.lock:
                recorder.requests.append(
                    {"path": self.path, "authorization": self.headers.get("authorization")}
                )
            return body

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.record()
            self.answer(200, b"seen\n")

        def do_POST(self) -> None:  # noqa: N802
            body = self.record()
            if self.path != "/token":
                self.answer(200, b"seen\n")
                return
            form = parse_qs(body.decode())
            with recorder.lock:
                recorder.token_calls.append(form)
                if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [
                    recorder.refresh_token
                ]:
                    self.answer(400, json.dumps({"error": "invalid_grant"}).encode(), "application/json")
                    return
                n = len(recorder.issued) + 1
                access = unique(f"new-access-{n}")
                recorder.refresh_token = unique(f"new-refresh-{n}")
                recorder.issued += [access, recorder.refresh_token]
                answer = {
                    "access_token": access,
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "refresh_token": recorder.refresh_token,
                }
            self.answer(200, json.dumps(answer).encode(), "application/json")

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@dataclasses.dataclass
class TlsServer:
    port: int
    recorder: Recorder
    httpd: http.server.ThreadingHTTPServer

    def url(self, path: str = "/") -> str:
        return f"https://{HOST}:{self.port}{path}"


def start_tls_server(ca: CaFiles) -> TlsServer:
    recorder = Recorder()
    httpd = http.server.ThreadingHTTPServer((HOST, 0), handler_for(recorder))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(ca.leaf_pem), str(ca.leaf_key))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return TlsServer(port=httpd.server_address[1], recorder=recorder, httpd=httpd)


# ---------------------------------------------------------------------------------------------
# The managed-agents server


class Injecting:
    """A server with `--egress-allow-private --egress-upstream-ca <test CA>` that can restart
    on its data dir."""

    def __init__(self, base: Path, ca: CaFiles):
        self.base = base
        self.key = new_key()
        self.args = ["--egress-allow-private", "--egress-upstream-ca", str(ca.ca_pem)]
        self.process: Optional[ServerProcess] = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "server.log"

    def start(self) -> ServerProcess:
        with pytest.MonkeyPatch.context() as env:
            # Debug logs of our own crates too: no line may carry a secret.
            env.setenv("MANAGED_AGENTS_LOG", "info,managed_agents_harness=debug,managed_agents_server=debug")
            self.process = ServerProcess(
                "rocksdb", self.data_dir, self.key, self.log_path, runner=True, args=self.args
            ).start()
        return self.process

    def stop(self) -> None:
        if self.process is not None:
            code = self.process.stop()
            assert code == 0, f"server exited with {code}; log tail:\n{self.process.log_tail()}"
            self.process = None

    def harness(self, mock: MockModel, vault: Any = None) -> Harness:
        assert self.process is not None
        server = Server(storage="rocksdb", url=self.process.url, key=self.key, other_key=None, process=self.process)
        client = server.client()
        token = "sk-mock-" + unique("secret")
        return Harness(
            client=client, server=server, mock=mock, vault=vault or llm_vault(client, mock.url, token), token=token
        )


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> CaFiles:
    return make_ca(tmp_path_factory.mktemp("test-ca"))


@pytest.fixture(scope="module")
def servers(test_ca: CaFiles) -> Iterator[dict[str, TlsServer]]:
    started = {name: start_tls_server(test_ca) for name in ("bearer", "plain", "oauth", "auth")}
    yield started
    for server in started.values():
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture(scope="module")
def injecting(tmp_path_factory: pytest.TempPathFactory, test_ca: CaFiles) -> Iterator[Injecting]:
    base = tmp_path_factory.mktemp("injection")
    searchable(base)
    server = Injecting(base, test_ca)
    server.start()
    yield server
    server.stop()


# ---------------------------------------------------------------------------------------------
# Helpers


def run(h: Harness, session: Any, command: str) -> str:
    events = h.turn(session.id, bash(command), timeout=120)
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return text(results[0])


def not_self_matching(secret: str) -> str:
    """A grep pattern for `secret` that its own command line does not match."""
    return f"{secret[:-1]}[{secret[-1]}]"


def assert_nowhere(h: Harness, injecting: Injecting, session_ids: list[str], secrets: list[str]) -> None:
    """None of `secrets` is in an event, the server log, a model request or a workspace file."""
    for session_id in session_ids:
        dumped = json.dumps([e.model_dump(mode="json") for e in h.events(session_id)])
        workspace = injecting.data_dir / "workspaces" / session_id
        assert workspace.is_dir(), workspace
        files = [p for p in workspace.rglob("*") if p.is_file() and not p.is_symlink()]
        for secret in secrets:
            assert secret not in dumped, f"{secret} in the events of {session_id}"
            for path in files:
                assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
    log = injecting.log_path.read_text()
    requests = json.dumps(h.mock.requests())
    for secret in secrets:
        assert secret not in log, f"{secret} in the server log"
        assert secret not in requests, f"{secret} in a model request"


def write_ca(ca: CaFiles) -> str:
    """A shell line writing the test CA (public) into the workspace."""
    return f"cat > /workspace/test-ca.pem <<'PEM'\n{ca.ca_pem.read_text()}PEM\n"


# ---------------------------------------------------------------------------------------------
# Tests


def test_static_bearer_is_injected_and_never_inside(
    injecting: Injecting, mock: MockModel, servers: dict[str, TlsServer], test_ca: CaFiles
) -> None:
    h = injecting.harness(mock)
    bearer, plain = servers["bearer"], servers["plain"]
    token = unique("mcp-token")
    vault = h.client.beta.vaults.create(display_name=unique("mcp"))
    h.client.beta.vaults.credentials.create(
        vault.id,
        auth={"type": "static_bearer", "mcp_server_url": bearer.url("/mcp"), "token": token},
    )
    env = h.environment(config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": [HOST]}})
    session = h.session(environment=env, vault_ids=[h.vault.id, vault.id])

    out = run(
        h,
        session,
        write_ca(test_ca)
        + f"{CURL} {bearer.url('/mcp/tools')} -H 'Authorization: Bearer mine'; echo \"injected=$?\"\n"
        # Its complaint goes to stderr, which bash results carry too (as the hosted toolset's).
        + f"{CURL} --cacert /workspace/test-ca.pem {bearer.url('/mcp')} -o /dev/null 2>/dev/null;"
        + ' echo "own-ca-intercepted=$?"\n'
        + f"{CURL} --cacert /workspace/test-ca.pem {plain.url('/plain')} -H 'Authorization: Bearer mine';"
        + ' echo "own-ca-tunnelled=$?"\n'
        + f"cat /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null | grep -ac '{not_self_matching(token)}'\n"
        + "env | grep -c '^SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt$'\n",
    )
    lines = out.strip().splitlines()
    assert lines[:2] == ["seen", "injected=0"], out
    # curl trusting only the test CA is shown the door's certificate for the credentialed
    # destination (exit 60: certificate problem) ...
    assert lines[2] == "own-ca-intercepted=60", out
    # ... but the real one for a destination without a credential, tunnelled untouched.
    assert lines[3:5] == ["seen", "own-ca-tunnelled=0"], out
    # The token in no process's environment or command line; the trust store variables set.
    assert lines[5:7] == ["0", "1"], out

    assert bearer.recorder.authorizations() == [f"Bearer {token}"]
    assert plain.recorder.authorizations("/plain") == ["Bearer mine"]
    assert_nowhere(h, injecting, [session.id], [token])


def test_an_expiring_oauth_token_is_refreshed_and_kept_across_a_restart(
    injecting: Injecting, mock: MockModel, servers: dict[str, TlsServer]
) -> None:
    h = injecting.harness(mock)
    oauth, auth = servers["oauth"], servers["auth"]
    old_access, first_refresh, client_secret = unique("old-access"), unique("refresh"), unique("client-secret")
    with auth.recorder.lock:
        auth.recorder.refresh_token = first_refresh
    # Within the door's refresh margin (60 s): refreshed before its first use.
    soon = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    vault = h.client.beta.vaults.create(display_name=unique("oauth"))
    credential = h.client.beta.vaults.credentials.create(
        vault.id,
        auth={
            "type": "mcp_oauth",
            "mcp_server_url": oauth.url("/mcp"),
            "access_token": old_access,
            "expires_at": soon,
            "refresh": {
                "token_endpoint": auth.url("/token"),
                "client_id": "test-client",
                "refresh_token": first_refresh,
                "token_endpoint_auth": {"type": "client_secret_post", "client_secret": client_secret},
                "scope": "tools",
            },
        },
    )
    env = h.environment(config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": [HOST]}})
    session = h.session(environment=env, vault_ids=[h.vault.id, vault.id])

    out = run(h, session, f"{CURL} {oauth.url('/mcp')}; echo \"rc=$?\"")
    assert out.strip().splitlines() == ["seen", "rc=0"], out
    with auth.recorder.lock:
        calls = list(auth.recorder.token_calls)
        new_access, new_refresh = auth.recorder.issued
    assert len(calls) == 1, calls
    assert calls[0]["grant_type"] == ["refresh_token"]
    assert calls[0]["refresh_token"] == [first_refresh]
    assert calls[0]["client_id"] == ["test-client"]
    assert calls[0]["client_secret"] == [client_secret]
    assert calls[0]["scope"] == ["tools"]
    assert oauth.recorder.authorizations() == [f"Bearer {new_access}"]

    # The vault holds the new token: its expiry moved an hour ahead.
    stored = h.client.beta.vaults.credentials.retrieve(credential.id, vault_id=vault.id)
    expires = stored.auth.expires_at
    if isinstance(expires, str):
        expires = datetime.fromisoformat(expires.replace("Z", "+00:00"))
    assert expires > datetime.now(timezone.utc) + timedelta(minutes=50), stored

    # After a restart the stored (sealed) token is opened again and still used as is.
    injecting.stop()
    injecting.start()
    h = injecting.harness(mock, vault=h.vault)
    out = run(h, session, f"{CURL} {oauth.url('/mcp/again')}; echo \"rc=$?\"")
    assert out.strip().splitlines() == ["seen", "rc=0"], out
    assert oauth.recorder.authorizations("/mcp/again") == [f"Bearer {new_access}"]
    with auth.recorder.lock:
        assert len(auth.recorder.token_calls) == 1

    assert_nowhere(h, injecting, [session.id], [old_access, first_refresh, client_secret, new_access, new_refresh])
