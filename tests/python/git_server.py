"""A git HTTPS test server for the repository tests: git's own `git http-backend` (CGI) behind
a small threaded HTTP server with HTTP Basic authentication, on TLS with a test CA.

Every request must carry `Authorization: Basic` whose password is one of the tokens the
server currently accepts (`GitServer.accept`); the user name is ignored, as GitHub does with
`x-access-token`. Each request's path and `Authorization` are recorded. Request bodies may come
with a `content-length` or chunked (the door re-frames bodies it forwards); `content-encoding:
gzip` is passed to http-backend, which decodes it. The repositories are bare repositories under
`root`, made with the helpers below.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import os
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any, Optional

BACKEND = "/usr/lib/git-core/git-http-backend"


def git(*args: str, cwd: Optional[Path] = None) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip()


class Repository:
    """A bare repository `<root>/<name>.git` and a work tree that pushes to it."""

    def __init__(self, root: Path, name: str):
        self.bare = root / f"{name}.git"
        self.work = root / f"{name}-work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))

    def commit(self, branch: str, path: str, content: str) -> str:
        """Commits `content` at `path` on `branch` (created from the current one) and pushes;
        returns the commit's sha."""
        current = git("branch", "--show-current", cwd=self.work)
        if current != branch:
            existing = git("branch", "--list", branch, cwd=self.work)
            git("checkout", "--quiet", *([] if existing else ["-b"]), branch, cwd=self.work)
        (self.work / path).write_text(content)
        git("add", path, cwd=self.work)
        git("commit", "--quiet", "-m", f"{path} on {branch}", cwd=self.work)
        git("push", "--quiet", str(self.bare), f"{branch}:{branch}", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


class Recorded:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []


def _chunked(rfile: Any) -> bytes:
    body = b""
    while True:
        size = int(rfile.readline().split(b";", 1)[0].strip(), 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass
            return body
        body += rfile.read(size)
        rfile.readline()


def handler_for(server: "GitServer") -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def serve(self) -> None:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                body = _chunked(self.rfile)
            else:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
            authorization = self.headers.get("authorization")
            with server.recorded.lock:
                server.recorded.requests.append({"path": self.path, "authorization": authorization})
            if not server.authorized(authorization):
                self.answer(401, [("www-authenticate", 'Basic realm="git test"')], b"unauthorized\n")
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null",
                "REQUEST_METHOD": self.command,
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "CONTENT_TYPE": self.headers.get("content-type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "test",
                "REMOTE_ADDR": self.client_address[0],
                "GATEWAY_INTERFACE": "CGI/1.1",
            }
            for header in ("content-encoding", "git-protocol"):
                if self.headers.get(header):
                    env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
            done = subprocess.run([BACKEND], input=body, env=env, capture_output=True, timeout=60)
            head, _, payload = done.stdout.partition(b"\r\n\r\n")
            status, headers = 200, []
            for line in head.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.strip().split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.answer(status, headers, payload)

        do_GET = serve  # noqa: N815 (the stdlib's names)
        do_POST = serve  # noqa: N815

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@dataclasses.dataclass
class GitServer:
    root: Path
    host: str
    accept: set[str]
    recorded: Recorded = dataclasses.field(default_factory=Recorded)
    httpd: Optional[http.server.ThreadingHTTPServer] = None

    def authorized(self, authorization: Optional[str]) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        except ValueError:
            return False
        return password in self.accept

    def passwords(self) -> list[Optional[str]]:
        """The password of every request so far (None: no Basic credentials)."""
        out: list[Optional[str]] = []
        with self.recorded.lock:
            for r in self.recorded.requests:
                a = r["authorization"]
                out.append(
                    base64.b64decode(a[6:]).decode().partition(":")[2] if a and a.startswith("Basic ") else None
                )
        return out

    def url(self, name: str) -> str:
        assert self.httpd is not None
        return f"https://{self.host}:{self.httpd.server_address[1]}/{name}.git"

    def start(self, leaf_pem: Path, leaf_key: Path) -> "GitServer":
        self.httpd = http.server.ThreadingHTTPServer((self.host, 0), handler_for(self))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(leaf_pem), str(leaf_key))
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
