"""examples/scale-out.sh (issue 14): two API nodes and a worker over one PostgreSQL cluster and
one shared data directory, node A and the worker running turns (sessions by lease) and node B
serving the API only. Official SDK: an agent turn sent through node B is run by a runner
elsewhere, and a stream opened on node B before the send delivers the turn's events as they are
appended; a file uploaded through node B is mounted for the agent. (Taking over a dead runner's
sessions: test_runner_leases.py.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import anthropic
import pytest

from conftest import REPO, binary
from harness_support import (  # noqa: F401  (fixture)
    Harness,
    MockModel,
    llm_vault,
    mock,
    bash,
    searchable,
    text,
    tool_results,
    types,
)


class Deployment:
    """The example script running: its nodes' addresses and the key they accept."""

    def __init__(self, base: Path) -> None:
        env = dict(os.environ, MANAGED_AGENTS_BIN=str(binary()))
        env.pop("MANAGED_AGENTS_BOOTSTRAP_KEY", None)
        self.proc = subprocess.Popen(
            [str(REPO / "examples" / "scale-out.sh"), str(base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.base = base
        found: dict[str, str] = {}
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            name, _, value = line.strip().partition(" ")
            found[name] = value
            if "key" in found:
                break
        assert {"node-a", "node-b", "worker", "key"} <= found.keys(), (found, self.logs())
        self.node_a, self.node_b, self.key = found["node-a"], found["node-b"], found["key"]

    def client(self, url: str) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=url, api_key=self.key)

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in self.base.glob("*.log"))

    def stop(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(60)


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    # Node A's sandbox runs as another uid that must reach its workspace under the data dir.
    base = tmp_path / "scale-out"
    base.mkdir()
    searchable(base)
    d = Deployment(base)
    yield d
    assert d.stop() == 0, d.logs()


def test_a_turn_sent_to_one_node_runs_on_the_other_and_streams_across(
    deployment: Deployment, mock: MockModel
) -> None:
    on_b = deployment.client(deployment.node_b)
    on_a = deployment.client(deployment.node_a)
    h = Harness(client=on_b, server=None, mock=mock, vault=llm_vault(on_b, mock.url), token="")  # type: ignore[arg-type]
    session = h.session()
    streamed: list[Any] = []
    stream = on_b.beta.sessions.events.stream(session.id)

    def follow() -> None:
        for event in stream:
            streamed.append(event)
            if event.type == "session.status_idle":
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        events = h.turn(session.id, "[[mock:text answered by a runner]]")
        reader.join(30)
    finally:
        stream.close()
    assert [text(e) for e in events if e.type == "agent.message"] == ["answered by a runner"]
    # Node B runs no turns: node A or the worker ran it (no request reached either of them
    # yet, so a log naming the session is its runner's).
    runners = [name for name in ("node-a", "worker") if session.id in (deployment.base / f"{name}.log").read_text()]
    assert runners, "no runner's log names the session"
    assert "session.error" not in types(events)
    # The stream on node B delivered node A's appends, in the log's order.
    assert [e.id for e in streamed] == [e.id for e in events]
    # Both nodes answer for the same session.
    assert on_a.beta.sessions.retrieve(session.id).status == "idle"


def test_a_file_uploaded_through_one_node_is_mounted_by_the_other(
    deployment: Deployment, mock: MockModel
) -> None:
    """The file's bytes go to the shared data directory through node B and the runner that
    takes the session mounts them for the agent; the agent's checksum matches."""
    on_b = deployment.client(deployment.node_b)
    data = os.urandom(300_000)
    uploaded = on_b.beta.files.upload(file=("blob.bin", data, "application/octet-stream"))
    h = Harness(client=on_b, server=None, mock=mock, vault=llm_vault(on_b, mock.url), token="")  # type: ignore[arg-type]
    session = h.session(resources=[{"type": "file", "file_id": uploaded.id, "mount_path": "/data/in.bin"}])
    events = h.turn(session.id, bash("sha256sum /data/in.bin"))
    results = tool_results(events)
    assert len(results) == 1 and not results[0].is_error, types(events)
    assert hashlib.sha256(data).hexdigest() in text(results[0])
