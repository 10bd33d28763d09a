"""Support for the harness tests (issue 4): the mock model as a child process, LLM vaults that
point at it, and helpers that run turns and wait for the session to settle.

The mock is `managed-agents mock-model --listen 127.0.0.1:0` (one per test, so its recorded
requests belong to that test alone); `GET /_mock/requests` returns what it received. Its
replies are chosen by directives in the prompt (`[[mock:tool bash {...}]]`, `[[mock:error 529
x1]]`, ...; see `harness/src/mock_model/mod.rs`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import anthropic
import httpx
import pytest

from conftest import Server, ServerProcess, binary, new_key, unique

ROLE = "sandbox0.managed_agents.role"
BASE_URL = "sandbox0.managed_agents.llm_base_url"
ENGINE = "sandbox0.managed_agents.engine"
WAIT = 30.0
TOOLSET = {"type": "agent_toolset_20260401"}


class MockModel:
    """One `managed-agents mock-model` child process."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.url = ""
        self.proc: Optional[subprocess.Popen[str]] = None

    def start(self) -> "MockModel":
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [str(binary()), "mock-model", "--listen", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                log.write(line)
                log.flush()
                if line.startswith("mock model listening on ") and not ready.is_set():
                    self.url = line.split(" on ", 1)[1].strip()
                    ready.set()
            log.close()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        ready.wait(30)
        if not self.url:
            self.stop()
            raise RuntimeError(f"mock model did not start; log: {self.log_path.read_text()}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def requests(self) -> list[dict[str, Any]]:
        """Every model request received so far (`/_mock/requests` itself is not recorded)."""
        return httpx.get(self.url + "/_mock/requests", timeout=10).json()


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[MockModel]:
    m = MockModel(tmp_path / "mock.log").start()
    yield m
    m.stop()


def llm_vault(
    client: anthropic.Anthropic, url: str, token: str = "sk-mock-token", engine: Optional[str] = None
) -> Any:
    """A vault with the LLM role pointing at `url`, holding `token` as a static bearer."""
    metadata = {ROLE: "llm", BASE_URL: url}
    if engine is not None:
        metadata[ENGINE] = engine
    vault = client.beta.vaults.create(display_name=unique("llm"), metadata=metadata)
    client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": token})
    return vault


def text(event: Any) -> str:
    return "".join(getattr(block, "text", "") for block in (getattr(event, "content", None) or []))


def settled(events: list[Any]) -> Any:
    """The event a turn settled on: its last `session.status_idle` or terminated. An agent CLI's
    side request (a title, a quota probe) may end its gateway span just after it, so the last
    event of the list is not always the settling one."""
    return [e for e in events if e.type in ("session.status_idle", "session.status_terminated")][-1]


def stop_type(event: Any) -> Optional[str]:
    reason = getattr(event, "stop_reason", None)
    return getattr(reason, "type", None)


@dataclasses.dataclass
class Harness:
    """A client, a mock model and an LLM vault pointing at it, plus turn helpers."""

    client: anthropic.Anthropic
    server: Server
    mock: MockModel
    vault: Any
    token: str

    def agent(self, **kwargs: Any) -> Any:
        kwargs.setdefault("name", unique("agent"))
        kwargs.setdefault("model", "claude-sonnet-4-6")
        kwargs.setdefault("tools", [TOOLSET])
        return self.client.beta.agents.create(**kwargs)

    def environment(self, **kwargs: Any) -> Any:
        kwargs.setdefault("name", unique("env"))
        return self.client.beta.environments.create(**kwargs)

    def session(self, agent: Any = None, environment: Any = None, vault: Any = None, **kwargs: Any) -> Any:
        agent = agent or self.agent()
        environment = environment or self.environment()
        kwargs.setdefault("vault_ids", [(vault or self.vault).id])
        return self.client.beta.sessions.create(agent=agent.id, environment_id=environment.id, **kwargs)

    def events(self, session_id: str) -> list[Any]:
        return list(self.client.beta.sessions.events.list(session_id, limit=1000))

    def send(self, session_id: str, *events: dict[str, Any]) -> list[Any]:
        return self.client.beta.sessions.events.send(session_id, events=list(events)).data

    def wait_idle(self, session_id: str, after: str, timeout: float = WAIT) -> list[Any]:
        """Polls the event list until a `session.status_idle` (or terminated) follows the event
        `after`; returns the events from `after` on."""
        deadline = time.monotonic() + timeout
        while True:
            events = self.events(session_id)
            ids = [e.id for e in events]
            if after in ids:
                tail = events[ids.index(after) :]
                if any(e.type in ("session.status_idle", "session.status_terminated") for e in tail[1:]):
                    return tail
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"session {session_id} did not settle in {timeout}s: {[e.type for e in events]}"
                )
            time.sleep(0.05)

    def turn(self, session_id: str, prompt: str, timeout: float = WAIT) -> list[Any]:
        """Sends a user message and waits for the turn to settle; returns its events."""
        sent = self.send(session_id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})
        return self.wait_idle(session_id, sent[0].id, timeout)

    def model_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.mock.requests() if r["path"].endswith(("/v1/messages", "/v1/responses"))]


def searchable(path: Path) -> None:
    """Makes `path` and its ancestors searchable by others (`o+x`, not readable): the sandbox
    runs as an unprivileged uid that must pass through them to the workspace it owns, and
    pytest's temp dirs are 0700."""
    path.mkdir(parents=True, exist_ok=True)
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod(mode | 0o001)


@pytest.fixture(scope="session")
def harness_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server per backend that runs sessions (the API suite's servers have the runner off)."""
    base = tmp_path_factory.mktemp(f"harness-{backend}")
    searchable(base)
    key = new_key()
    process = ServerProcess(backend, base / "data", key, base / "server.log", runner=True).start()
    yield Server(storage=backend, url=process.url, key=key, other_key=None, process=process)
    code = process.stop()
    assert code == 0, f"server exited with {code}; log tail:\n{process.log_tail()}"


@pytest.fixture
def harness(harness_server: Server, mock: MockModel) -> Harness:
    client = harness_server.client()
    token = "sk-mock-" + unique("secret")
    return Harness(
        client=client, server=harness_server, mock=mock, vault=llm_vault(client, mock.url, token), token=token
    )


#: An outcome the mock's grader first sends back once (`add a title`), then accepts.
REVISED_ONCE = (
    "Write a haiku about rust. [[mock:text rust haiku draft]]",
    "Has a title. [[mock:grade needs_revision: add a title | satisfied]]",
)


def define_outcome(h: "Harness", session_id: str, description: str, rubric: str, **extra: Any) -> Any:
    """Sends a `user.define_outcome` with a text rubric; returns the echoed event."""
    event = {"type": "user.define_outcome", "description": description, "rubric": {"type": "text", "content": rubric}}
    event.update(extra)
    sent = h.send(session_id, event)
    assert len(sent) == 1 and sent[0].type == "user.define_outcome"
    assert sent[0].outcome_id.startswith("outc_")
    return sent[0]


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def tool_prompt(name: str, input: dict[str, Any], before: str = "") -> str:
    return f"{before}[[mock:tool {name} {json.dumps(input)}]]"


def bash(command: str) -> str:
    return tool_prompt("bash", {"command": command})


def tool_results(events: list[Any]) -> list[Any]:
    return [e for e in events if e.type == "agent.tool_result"]


def result_text(event: Any) -> str:
    return text(event)


def idle_after(h: "Harness", session_id: str, count: int, timeout: float = WAIT) -> list[Any]:
    """Waits until a `session.status_idle` follows the session's first `count` events (a turn
    that went on after a restart settled); returns all its events."""

    def idle_again() -> Any:
        events = h.events(session_id)
        return events if any(e.type == "session.status_idle" for e in events[count:]) else None

    return wait_for(idle_again, timeout)


def wait_for(check: Callable[[], Any], timeout: float = WAIT, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
