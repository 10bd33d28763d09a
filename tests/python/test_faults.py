"""Faults on purpose (issue 16, item 2): a model stream cut midway, a model that stops sending,
a flood of processes and a memory hog inside the sandbox. In each case the session goes on
(the model request is retried, the tool call ends with an error result) and the server is
unaffected. Real server, real sandbox, the mock model's `fault` directive (a streamed reply that
fails after half its frames)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from conftest import Server, ServerProcess, new_key
from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    MockModel,
    harness,
    harness_server,
    llm_vault,
    mock,
    searchable,
    stop_type,
    text,
    tool_prompt,
    tool_results,
    types,
    wait_for,
)


def agent_messages(events: list[Any]) -> list[str]:
    return [text(e) for e in events if e.type == "agent.message"]


def assert_retried_once(events: list[Any], reply: str) -> Any:
    """The turn failed once with a retrying model error, was rescheduled and then finished with
    `reply` (and nothing of the failed attempt's partial text)."""
    kinds = types(events)
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 1, kinds
    assert errors[0].error.type == "model_request_failed_error"
    assert errors[0].error.retry_status.type == "retrying"
    assert kinds.index("session.error") < kinds.index("session.status_rescheduled") < len(kinds) - 1
    assert agent_messages(events) == [reply], kinds
    assert stop_type(events[-1]) == "end_turn"
    ends = [e for e in events if e.type == "span.model_request_end"]
    assert [bool(e.is_error) for e in ends] == [True, False], kinds
    return errors[0]


def test_a_model_stream_cut_midway_is_retried(harness: Harness) -> None:
    session = harness.session()
    events = harness.turn(session.id, "[[mock:slow 20ms 8]] [[mock:fault cut]] [[mock:text the whole reply]]")
    assert_retried_once(events, "the whole reply")
    assert len(harness.model_requests()) == 2
    # The session takes new input as before.
    after = harness.turn(session.id, "[[mock:text next]]")
    assert agent_messages(after) == ["next"]


@pytest.fixture
def impatient(tmp_path: Path, mock: MockModel) -> Iterator[Harness]:
    """A server that gives up on a silent model stream after 2 s."""
    base = tmp_path / "impatient"
    searchable(base)
    key = new_key()
    process = ServerProcess(
        "rocksdb", base / "data", key, base / "server.log", runner=True, args=["--model-stream-idle-timeout", "2"]
    ).start()
    server = Server(storage="rocksdb", url=process.url, key=key, other_key=None, process=process)
    client = server.client()
    yield Harness(client=client, server=server, mock=mock, vault=llm_vault(client, mock.url), token="sk-mock-token")
    assert process.stop() == 0


def test_a_model_that_stops_sending_times_out_and_is_retried(impatient: Harness) -> None:
    h = impatient
    session = h.session()
    events = h.turn(session.id, "[[mock:fault hang]] [[mock:text after the silence]]", timeout=60)
    error = assert_retried_once(events, "after the silence")
    assert "stopped sending" in error.error.message
    assert len(h.model_requests()) == 2


def test_the_stream_idle_timeout_flag_is_validated(tmp_path: Path) -> None:
    process = ServerProcess(
        "memory", tmp_path / "data", new_key(), tmp_path / "server.log", args=["--model-stream-idle-timeout", "0"]
    )
    with pytest.raises(RuntimeError):
        process.start()
    assert "--model-stream-idle-timeout 0: must be between 1 and 3600 seconds" in process.log_tail()


def processes_in(namespace: str) -> int:
    """Processes on the host in the pid namespace `namespace` (`pid:[inode]`)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            count += os.readlink(f"/proc/{pid}/ns/pid") == namespace
        except OSError:
            pass
    return count


def controllers(h: Harness) -> str:
    """The sandbox's cgroup controllers, as the server logged them at start-up."""
    line = [l for l in Path(h.server.process.log_path).read_text().splitlines() if "cgroup v1 controllers" in l]
    assert line, "the server did not log its sandbox limits"
    return line[-1]


def test_a_fork_bomb_is_contained_and_the_session_goes_on(harness: Harness) -> None:
    h = harness
    # Without the pids controller a fork bomb would reach the host: refuse to run it there.
    assert "pids" in controllers(h), "this machine's sandboxes must have the pids controller"
    session = h.session()
    # The session's shell (the bomb runs in it) has a pid namespace of its own.
    namespace = text(tool_results(h.turn(session.id, tool_prompt("bash", {"command": "readlink /proc/self/ns/pid"})))[0]).strip()
    assert namespace.startswith("pid:["), namespace
    assert processes_in(namespace) > 0
    bomb = "bomb() { bomb | bomb; }; bomb"
    events = h.turn(session.id, tool_prompt("bash", {"command": bomb, "timeout_ms": 5000}), timeout=90)
    results = tool_results(events)
    assert len(results) == 1, types(events)
    assert results[0].is_error and "timed out" in text(results[0]), text(results[0])
    assert stop_type(events[-1]) == "end_turn"
    # The timeout ended the shell and the kernel its whole pid namespace: nothing of the bomb
    # is left on the host (the tool answers once the kill is sent; the kernel finishes it), and
    # the server still answers.
    wait_for(lambda: processes_in(namespace) == 0, timeout=10)
    assert httpx.get(h.server.url + "/healthz", timeout=10).status_code == 200
    after = h.turn(session.id, tool_prompt("bash", {"command": "echo alive"}))
    assert text(tool_results(after)[0]).strip() == "alive"


def test_a_memory_hog_is_killed_alone(harness: Harness) -> None:
    h = harness
    assert "memory" in controllers(h), "this machine's sandboxes must have the memory controller"
    session = h.session()
    hog = "python3 -c \"b = bytearray(3 * 1024 ** 3); print('ALLOC' + 'ATED')\"; echo exit=$?"
    events = h.turn(session.id, tool_prompt("bash", {"command": hog}), timeout=90)
    results = tool_results(events)
    assert len(results) == 1, types(events)
    output = text(results[0])
    # Killed by the sandbox's 2 GiB memory limit (SIGKILL: 128 + 9), not the server.
    assert "ALLOCATED" not in output and "exit=137" in output, output
    assert httpx.get(h.server.url + "/healthz", timeout=10).status_code == 200
    after = h.turn(session.id, tool_prompt("bash", {"command": "echo alive"}))
    assert text(tool_results(after)[0]).strip() == "alive"
