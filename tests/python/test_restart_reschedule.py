"""A restart is a reschedule, not a failure (issue 16, item 3), on the resident engines: a
server killed with SIGKILL mid-turn comes back, emits `session.status_rescheduled` then
`session.status_running` for the session it cut short, and continues the turn from the log:
the model request that was in flight is made again; a tool call that was running gets an error
result saying the server restarted (read-only tools are run again); a turn paused on
`requires_action` stays paused. Official SDK, real server on RocksDB, real sandbox, mock model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import ServerProcess, new_key
from harness_support import (
    Harness,
    MockModel,
    bash,
    llm_vault,
    mock,  # noqa: F401  (fixture)
    searchable,
    stop_type,
    text,
    tool_results,
    types,
    wait_for,
)


class Restartable:
    """A runner-on server on one data dir that can be killed and started again."""

    def __init__(self, base: Path):
        searchable(base)
        self.base = base
        self.key = new_key()
        self.process: ServerProcess | None = None

    def start(self) -> ServerProcess:
        self.process = ServerProcess(
            "rocksdb", self.base / "data", self.key, self.base / "server.log", runner=True
        ).start()
        return self.process

    def kill(self) -> None:
        assert self.process is not None and self.process.proc is not None
        self.process.proc.kill()
        self.process.proc.wait()
        self.process.proc = None
        self.process = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Restartable]:
    restartable = Restartable(tmp_path / "srv")
    restartable.start()
    yield restartable
    if restartable.process is not None:
        assert restartable.process.stop() == 0


def harness_on(server: Restartable, mock: MockModel, vault: Any = None) -> Harness:
    assert server.process is not None
    client = server.process.client()
    return Harness(client=client, server=None, mock=mock, vault=vault or llm_vault(client, mock.url), token="")  # type: ignore[arg-type]


def restart(server: Restartable, h: Harness) -> None:
    server.kill()
    h.client = server.start().client()


def settled_after(h: Harness, session_id: str, count: int) -> list[Any]:
    """Waits until the session is idle again after its first `count` events; its events."""

    def idle_again() -> Any:
        events = h.events(session_id)
        return events if len(events) > count and events[-1].type == "session.status_idle" else None

    return wait_for(idle_again, timeout=120)


def send(h: Harness, session_id: str, prompt: str) -> None:
    h.send(session_id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})


def test_a_model_request_in_flight_is_made_again(server: Restartable, mock: MockModel) -> None:
    h = harness_on(server, mock)
    session = h.session()
    send(h, session.id, "[[mock:slow 200ms 40]] [[mock:text made it after all]]")
    wait_for(lambda: "span.model_request_start" in types(h.events(session.id)))
    before = len(h.events(session.id))
    restart(server, h)

    events = settled_after(h, session.id, before)
    after = types(events)[before:]
    assert after == [
        "span.model_request_end",
        "session.status_rescheduled",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ], after
    assert events[before].is_error and events[before].model_request_start_id == events[before - 1].id
    assert stop_type(events[-1]) == "end_turn"
    assert text([e for e in events if e.type == "agent.message"][0]) == "made it after all"
    assert "session.error" not in types(events)
    prompts = [r for r in h.model_requests() if "made it after all" in str(r["body"])]
    assert len(prompts) == 2


def test_a_running_tool_call_gets_an_error_result_and_the_turn_goes_on(
    server: Restartable, mock: MockModel
) -> None:
    h = harness_on(server, mock)
    session = h.session()
    send(h, session.id, bash("sleep 60"))
    wait_for(lambda: "agent.tool_use" in types(h.events(session.id)))
    before = len(h.events(session.id))
    restart(server, h)

    events = settled_after(h, session.id, before)
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error
    assert "server restarted" in text(results[0])
    after = types(events)[before:]
    assert after[:3] == ["agent.tool_result", "session.status_rescheduled", "session.status_running"], after
    assert stop_type(events[-1]) == "end_turn"
    # The model saw the error result and answered (the mock echoes tool results).
    message = [e for e in events if e.type == "agent.message"][-1]
    assert "server restarted" in text(message)
    # And the session takes new input.
    assert stop_type(h.turn(session.id, "[[mock:text still here]]")[-1]) == "end_turn"


def test_a_turn_paused_on_requires_action_stays_paused(server: Restartable, mock: MockModel) -> None:
    h = harness_on(server, mock)
    ask = {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}
    session = h.session(agent=h.agent(tools=[ask]))
    events = h.turn(session.id, bash("echo confirmed"))
    assert stop_type(events[-1]) == "requires_action"
    count = len(h.events(session.id))
    restart(server, h)

    # Nothing is written for it, and the confirmation still runs the call.
    wait_for(lambda: h.client.beta.sessions.retrieve(session.id).status == "idle")
    assert len(h.events(session.id)) == count
    call = [e for e in events if e.type == "agent.tool_use"][0]
    h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": call.id, "result": "allow"})
    done = settled_after(h, session.id, count)
    assert "confirmed" in text(tool_results(done)[0])
    assert "session.status_rescheduled" not in types(done)
