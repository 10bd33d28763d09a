"""The pending-action timeout (our extension, `serve --requires-action-timeout SECS`): a session
left waiting in `requires_action` has each pending call denied with "no response within N s"
once the timeout passes, without any client action, and the turn goes on to `end_turn`. The
native engine against the mock model; the decision is core's, the timer the runner's, and a
deadline that passed while the server was down is resolved at start-up."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import ServerProcess, new_key
from harness_support import (  # noqa: F401  (fixtures)
    TOOLSET,
    Harness,
    MockModel,
    bash,
    llm_vault,
    mock,
    searchable,
    stop_type,
    text,
    tool_results,
    types,
    wait_for,
)

TIMEOUT = 2
MESSAGE = f"no response within {TIMEOUT} s"


def start(storage: str, data_dir: Path, key: str, log: Path, timeout: int | None) -> ServerProcess:
    args = ["--requires-action-timeout", str(timeout)] if timeout is not None else []
    return ServerProcess(storage, data_dir, key, log, runner=True, args=args).start()


@pytest.fixture(scope="module", params=["rocksdb", "memory"])
def timed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp(f"timeout-{request.param}")
    searchable(base)
    process = start(request.param, base / "data", new_key(), base / "server.log", TIMEOUT)
    yield process
    assert process.stop() == 0, process.log_tail()


def harness_on(process: ServerProcess, mock: MockModel) -> Harness:
    client = process.client()
    return Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]


def ask_agent(h: Harness) -> Any:
    return h.agent(tools=[{**TOOLSET, "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}]}])


def test_an_unanswered_confirmation_is_denied_and_the_turn_ends(timed: ServerProcess, mock: MockModel) -> None:
    h = harness_on(timed, mock)
    session = h.session(agent=ask_agent(h))
    events = h.turn(session.id, bash("touch never.txt"))
    use = [e for e in events if e.type == "agent.tool_use"][0]
    waiting = events[-1]
    assert stop_type(waiting) == "requires_action" and waiting.stop_reason.event_ids == [use.id]
    began = time.monotonic()
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"

    after = h.wait_idle(session.id, waiting.id, timeout=TIMEOUT + 20)
    elapsed = time.monotonic() - began
    assert elapsed < TIMEOUT + 15, elapsed
    denial = after[1]
    assert denial.type == "user.tool_confirmation"
    assert denial.tool_use_id == use.id and denial.result == "deny" and denial.deny_message == MESSAGE
    assert types(after)[2] == "session.status_running"
    result = tool_results(after)[0]
    assert result.tool_use_id == use.id and result.is_error is True and MESSAGE in text(result)
    assert stop_type(after[-1]) == "end_turn"
    # The model saw the denial as the tool's error result; the command never ran.
    last = h.model_requests()[-1]["body"]["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and last["is_error"] is True and MESSAGE in str(last["content"])
    assert not (timed.data_dir / "workspaces" / session.id / "never.txt").exists()


def test_an_unanswered_custom_tool_gets_an_error_result(timed: ServerProcess, mock: MockModel) -> None:
    h = harness_on(timed, mock)
    agent = h.agent(
        tools=[
            TOOLSET,
            {
                "type": "custom",
                "name": "lookup",
                "description": "Look a key up in the caller's table.",
                "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}},
            },
        ]
    )
    session = h.session(agent=agent)
    events = h.turn(session.id, '[[mock:tool lookup {"key": "answer"}]]')
    use = [e for e in events if e.type == "agent.custom_tool_use"][0]
    assert stop_type(events[-1]) == "requires_action"
    after = h.wait_idle(session.id, events[-1].id, timeout=TIMEOUT + 20)
    result = after[1]
    assert result.type == "user.custom_tool_result" and result.custom_tool_use_id == use.id
    assert result.is_error is True and text(result) == MESSAGE
    assert stop_type(after[-1]) == "end_turn"
    last = h.model_requests()[-1]["body"]["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and last["is_error"] is True and MESSAGE in str(last["content"])


def test_an_answer_in_time_wins(timed: ServerProcess, mock: MockModel) -> None:
    h = harness_on(timed, mock)
    session = h.session(agent=ask_agent(h))
    events = h.turn(session.id, bash("echo allowed"))
    use = [e for e in events if e.type == "agent.tool_use"][0]
    sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = h.wait_idle(session.id, sent[0].id)
    assert text(tool_results(after)[0]).strip() == "allowed"
    time.sleep(TIMEOUT + 1)
    listed = h.events(session.id)
    assert [e.id for e in listed if e.type == "user.tool_confirmation"] == [sent[0].id]
    assert stop_type(listed[-1]) == "end_turn"


def test_off_by_default_and_a_passed_deadline_is_resolved_at_start_up(tmp_path: Path, mock: MockModel) -> None:
    data_dir, key = tmp_path / "data", new_key()
    searchable(data_dir)
    log = tmp_path / "server.log"
    process = start("rocksdb", data_dir, key, log, None)
    try:
        h = harness_on(process, mock)
        session = h.session(agent=ask_agent(h))
        events = h.turn(session.id, bash("touch later.txt"))
        waiting = events[-1]
        assert stop_type(waiting) == "requires_action"
        time.sleep(TIMEOUT + 1)  # no timeout configured: still waiting
        assert h.events(session.id)[-1].id == waiting.id
    finally:
        assert process.stop() == 0, process.log_tail()
    process = start("rocksdb", data_dir, key, log, TIMEOUT)
    try:
        h.client = process.client()
        after = h.wait_idle(session.id, waiting.id, timeout=20)
        assert after[1].type == "user.tool_confirmation" and after[1].deny_message == MESSAGE
        assert stop_type(after[-1]) == "end_turn"
    finally:
        assert process.stop() == 0, process.log_tail()


def test_a_child_threads_unanswered_confirmation_is_denied_too(timed: ServerProcess, mock: MockModel) -> None:
    h = harness_on(timed, mock)
    tester = ask_agent(h)
    coordinator = h.agent(multiagent={"type": "coordinator", "agents": [tester.id]})
    session = h.session(agent=coordinator)
    message = '<<mock:tool bash {"command": "touch never.txt"}>>'
    prompt = "[[mock:tool message_agent " + json.dumps({"agent": tester.name, "message": message}) + "]]"
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})
    # The child waits on the client: the session is idle on it until the timeout denies it.
    waits = h.wait_idle(session.id, sent[0].id, timeout=TIMEOUT + 30)
    assert stop_type(waits[-1]) == "requires_action"

    def ended() -> Any:
        events = h.events(session.id)
        return events if stop_type(events[-1]) == "end_turn" else None

    events = wait_for(ended, timeout=TIMEOUT + 30)
    statuses = [e.type for e in events if e.type.startswith("session.status_")]
    assert statuses[-3:] == ["session.status_idle", "session.status_running", "session.status_idle"]
    thread = [e for e in events if e.type == "session.thread_created"][0].session_thread_id
    child = list(h.client.beta.sessions.threads.events.list(thread, session_id=session.id, limit=1000))
    denial = [e for e in child if e.type == "user.tool_confirmation"][0]
    assert denial.result == "deny" and denial.deny_message == MESSAGE
    result = tool_results(child)[0]
    assert result.is_error is True and MESSAGE in text(result)
    assert not (timed.data_dir / "workspaces" / session.id / "never.txt").exists()
