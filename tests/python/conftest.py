"""Fixtures of the Python SDK suite: real `managed-agents serve` processes on 127.0.0.1:0.

Every test that takes `server` (or `client`) runs twice, once against a server with
`--storage rocksdb` and once against `--storage memory`: `backend` is a session-scoped,
parametrized fixture, so each backend's server starts once for the whole run.
`MANAGED_AGENTS_TEST_BACKENDS` (comma-separated) picks other backends, e.g. `postgres`: every
`postgres` server runs on a throwaway PostgreSQL cluster of its own (scripts/pg-cluster.sh).
`postgres-2nodes` is two API nodes (`serve --storage postgres`) over one cluster and one shared
data directory (file bytes, the secret key), and the SDK clients of `server.client()` send
their requests to the nodes in turn ([`Alternating`]): a stream opened on one node sees the
events sent through the other.

The binary comes from `MANAGED_AGENTS_BIN`, else `$CARGO_TARGET_DIR/debug/managed-agents`
(default target dir: /var/cache/managed-agents/target), else `target/debug/managed-agents`.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import secrets
import signal
import socket
import subprocess
import threading
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import anthropic
import httpx2
import pytest

REPO = Path(__file__).resolve().parents[2]
BACKENDS = [b for b in os.environ.get("MANAGED_AGENTS_TEST_BACKENDS", "rocksdb,memory").split(",") if b]
#: Backends whose keys the CLI can create (everything but memory).
DURABLE = ("rocksdb", "postgres", "postgres-2nodes")
#: Backends of several API nodes over one database: the storage each node runs and how many.
MULTI_NODE = {"postgres-2nodes": ("postgres", 2)}
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def binary() -> Path:
    explicit = os.environ.get("MANAGED_AGENTS_BIN")
    candidates = []
    if explicit:
        candidates.append(Path(explicit))
    target = os.environ.get("CARGO_TARGET_DIR", "/var/cache/managed-agents/target")
    candidates += [Path(target) / "debug" / "managed-agents", REPO / "target" / "debug" / "managed-agents"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise RuntimeError(
        "managed-agents binary not found; build it with `cargo build -p managed-agents-server` "
        f"and/or set MANAGED_AGENTS_BIN (looked at {', '.join(map(str, candidates))})"
    )


def free_port() -> int:
    """A loopback port nothing listens on now (for a server that must come back where it was)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def new_key() -> str:
    return "sk-test-" + secrets.token_urlsafe(24)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs `managed-agents ARGS` to completion."""
    return subprocess.run([str(binary()), *args], check=True, capture_output=True, text=True, timeout=60)


class PgCluster:
    """A throwaway PostgreSQL cluster (scripts/pg-cluster.sh): initdb in a temporary directory
    as an unprivileged user, a server on a free loopback port; `stop()` (closing the script's
    stdin) stops it and removes the directory."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [str(REPO / "scripts" / "pg-cluster.sh")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith("postgres://"):
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start (scripts/pg-cluster.sh printed {self.url!r})")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(STOP_TIMEOUT)


def storage_args(storage: str, database_url: Optional[str]) -> list[str]:
    """The flags that select `storage` (and its database)."""
    args = ["--storage", storage]
    if database_url is not None:
        args += ["--database-url", database_url]
    return args


def create_key(data_dir: Path, workspace: str, storage: str = "rocksdb", database_url: Optional[str] = None) -> str:
    """`managed-agents keys create` (RocksDB: the server must not be running on data_dir)."""
    out = subprocess.run(
        [
            str(binary()),
            "keys",
            "create",
            "--data-dir",
            str(data_dir),
            *storage_args(storage, database_url),
            "--workspace",
            workspace,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = out.stdout.strip().splitlines()[-1]
    key_id, ws, key = line.split("\t")
    assert ws == workspace and key_id.startswith("apikey_"), line
    return key


class ServerProcess:
    """One `managed-agents serve` child process; `start()` waits for `listening on …`.

    The API suite runs with `MANAGED_AGENTS_RUNNER=off` (sent events are stored and queue, no
    turn runs); the harness tests (`test_harness_*.py`) start servers with `runner=True`."""

    def __init__(
        self,
        storage: str,
        data_dir: Path,
        key: Optional[str],
        log_path: Path,
        runner: bool = False,
        args: Sequence[str] = (),
        cluster: Optional[PgCluster] = None,
        own_cluster: bool = False,
        listen: str = "127.0.0.1:0",
    ):
        #: The address to listen on: a free port by default; a fixed one lets a restarted
        #: server come back where its clients were.
        self.listen = listen
        #: The PostgreSQL cluster of a `postgres` server: given (kept across restarts), or
        #: started by `start()`; `stop()` stops it with the server when the server owns it.
        self.cluster = cluster
        self.own_cluster = own_cluster
        self.runner = runner
        self.args = list(args)
        # A test that starts a server of its own on a multi-node backend gets one node of it.
        self.storage = MULTI_NODE.get(storage, (storage, 1))[0]
        self.data_dir = data_dir
        self.key = key
        self.log_path = log_path
        self.proc: Optional[subprocess.Popen[str]] = None
        self.url = ""
        self.stdout_lines: list[str] = []

    def start(self) -> "ServerProcess":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.storage == "postgres" and self.cluster is None:
            self.cluster = PgCluster()
            self.own_cluster = True
        database_url = self.cluster.url if self.cluster is not None else None
        env = dict(os.environ)
        for name in (
            "MANAGED_AGENTS_LISTEN",
            "MANAGED_AGENTS_STORAGE",
            "MANAGED_AGENTS_DATA_DIR",
            "MANAGED_AGENTS_DATABASE_URL",
        ):
            env.pop(name, None)
        env.pop("MANAGED_AGENTS_BOOTSTRAP_KEY", None)
        if self.key is not None:
            env["MANAGED_AGENTS_BOOTSTRAP_KEY"] = self.key
        env["MANAGED_AGENTS_PING_SECONDS"] = "1"
        env["MANAGED_AGENTS_RUNNER"] = "on" if self.runner else "off"
        env.setdefault("MANAGED_AGENTS_LOG", "info")
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [
                str(binary()),
                "serve",
                "--listen",
                self.listen,
                *storage_args(self.storage, database_url),
                "--data-dir",
                str(self.data_dir),
                *self.args,
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        log.close()
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.stdout_lines.append(line)
                if line.startswith("listening on ") and not ready.is_set():
                    self.url = line.split("listening on ", 1)[1].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(START_TIMEOUT)
        if not self.url:
            self.stop()
            raise RuntimeError(
                f"server did not start ({self.storage}); stdout={self.stdout_lines!r}; "
                f"log tail:\n{self.log_tail()}"
            )
        return self

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM (graceful shutdown), then wait; returns the exit code. Stops the PostgreSQL
        cluster the server owns too."""
        try:
            return self.stop_server()
        finally:
            if self.cluster is not None and self.own_cluster:
                self.cluster.stop()
                self.cluster = None

    def stop_server(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("server ignored SIGTERM for %ss" % STOP_TIMEOUT)
        code = self.proc.returncode
        self.proc = None
        return code

    def client(self, key: Optional[str] = None, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.url, api_key=key or self.key, **kwargs)


class Alternating(httpx2.HTTPTransport):
    """An HTTP transport that sends each request to the next of several nodes in turn: a
    round-robin load balancer inside the client, so consecutive requests of one test (a stream
    and the sends it waits for, a create and the retrieve after it) reach different nodes."""

    def __init__(self, urls: Sequence[str]) -> None:
        super().__init__()
        self.nodes = [httpx2.URL(url) for url in urls]
        self.turn = itertools.count()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        node = self.nodes[next(self.turn) % len(self.nodes)]
        request.url = request.url.copy_with(host=node.host, port=node.port)
        return super().handle_request(request)


@dataclasses.dataclass
class Server:
    """What tests see of a running server (of several API nodes, the first one's address)."""

    storage: str
    url: str
    key: str
    #: A key of a second workspace (`tenant-b`); None on memory storage, where keys cannot be
    #: created from the CLI (only the bootstrap key exists).
    other_key: Optional[str]
    process: ServerProcess
    #: The other API nodes over the same database, if any.
    more: list[ServerProcess] = dataclasses.field(default_factory=list)

    def client(self, key: Optional[str] = None, **kwargs: Any) -> anthropic.Anthropic:
        if self.more and "http_client" not in kwargs:
            urls = [self.url, *(node.url for node in self.more)]
            kwargs["http_client"] = anthropic.DefaultHttpxClient(transport=Alternating(urls))
        return anthropic.Anthropic(base_url=self.url, api_key=key or self.key, **kwargs)

    def stop(self) -> int:
        """Stops every node (the first last: it owns the database cluster); the first nonzero
        exit code, else 0."""
        codes = [node.stop() for node in self.more]
        codes.append(self.process.stop())
        return next((code for code in codes if code != 0), 0)

    def log_tail(self) -> str:
        return "\n".join(node.log_tail() for node in [self.process, *self.more])


def start_server(backend: str, base: Path, other_workspace: Optional[str] = None) -> Server:
    storage, nodes = MULTI_NODE.get(backend, (backend, 1))
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = PgCluster() if storage == "postgres" else None
    database_url = cluster.url if cluster is not None else None
    more: list[ServerProcess] = []
    try:
        other_key = None
        if other_workspace is not None:
            other_key = create_key(data_dir, other_workspace, storage, database_url)
        key = new_key()
        process = ServerProcess(storage, data_dir, key, base / "server.log", cluster=cluster, own_cluster=True).start()
        try:
            for n in range(1, nodes):
                node = ServerProcess(storage, data_dir, key, base / f"server-{n}.log", cluster=cluster)
                more.append(node.start())
        except BaseException:
            for node in more:
                node.stop()
            process.stop()
            raise
    except BaseException:
        if cluster is not None and cluster.proc.poll() is None:
            cluster.stop()
        raise
    return Server(storage=storage, url=process.url, key=key, other_key=other_key, process=process, more=more)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp(f"server-{backend}")
    srv = start_server(backend, base, other_workspace="tenant-b" if backend in DURABLE else None)
    yield srv
    code = srv.stop()
    assert code == 0, f"server exited with {code}; log tail:\n{srv.log_tail()}"


@pytest.fixture
def client(server: Server) -> anthropic.Anthropic:
    return server.client()


class RequestCounter:
    """Counts the HTTP requests a client sends (through an httpx2 event hook)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []

    def __call__(self, request: httpx2.Request) -> None:
        self.requests.append((request.method, request.url.path))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p == path)


@pytest.fixture
def counted(server: Server) -> tuple[anthropic.Anthropic, RequestCounter]:
    """A client with the SDK's default retry policy whose requests are counted."""
    counter = RequestCounter()
    http = anthropic.DefaultHttpxClient(event_hooks={"request": [counter]})
    return server.client(http_client=http), counter


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_agent(client: anthropic.Anthropic) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("name", unique("agent"))
        kwargs.setdefault("model", "claude-sonnet-4-6")
        return client.beta.agents.create(**kwargs)

    return make


@pytest.fixture
def make_environment(client: anthropic.Anthropic) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("name", unique("env"))
        return client.beta.environments.create(**kwargs)

    return make


@pytest.fixture
def agent(make_agent: Callable[..., Any]) -> Any:
    return make_agent()


@pytest.fixture
def environment(make_environment: Callable[..., Any]) -> Any:
    return make_environment()


@pytest.fixture
def make_session(client: anthropic.Anthropic, agent: Any, environment: Any) -> Callable[..., Any]:
    def make(**kwargs: Any) -> Any:
        kwargs.setdefault("agent", agent.id)
        kwargs.setdefault("environment_id", environment.id)
        return client.beta.sessions.create(**kwargs)

    return make


@pytest.fixture
def session(make_session: Callable[..., Any]) -> Any:
    return make_session()


def user_message(text: str) -> dict[str, Any]:
    return {"type": "user.message", "content": [{"type": "text", "text": text}]}
