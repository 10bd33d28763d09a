"""Sessions that run (issue 4): turns through the native engine against the mock model, tools in
the bubblewrap sandbox, confirmations, custom tools, interrupts, retries and secrecy of the
model token. Official SDK, real server process, real sandbox."""

from __future__ import annotations

import threading
import time
from typing import Any

import anthropic
import pytest

from conftest import ServerProcess, new_key, unique
from harness_support import (  # noqa: F401  (fixtures)
    TOOLSET,
    WAIT,
    Harness,
    MockModel,
    bash,
    harness,
    harness_server,
    llm_vault,
    mock,
    searchable,
    stop_type,
    text,
    tool_results,
    types,
)


def usage_of(span: Any) -> tuple[int, int]:
    return span.model_usage.input_tokens, span.model_usage.output_tokens


def test_text_turn_event_order_usage_and_previews(harness: Harness) -> None:
    session = harness.session()
    received: list[Any] = []
    with harness.client.beta.sessions.events.stream(session.id, event_deltas=["agent.message"]) as stream:
        watchdog = threading.Timer(WAIT, stream.close)
        watchdog.start()
        try:
            harness.send(
                session.id,
                {
                    "type": "user.message",
                    "content": [{"type": "text", "text": "[[mock:text hello from the mock]] [[mock:slow 1ms 4]]"}],
                },
            )
            for event in stream:
                received.append(event)
                if event.type == "session.status_idle":
                    break
        finally:
            watchdog.cancel()

    events = harness.events(session.id)
    assert types(events) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    start, message, end, idle = events[2], events[3], events[4], events[5]
    assert text(message) == "hello from the mock"
    assert stop_type(idle) == "end_turn"
    assert end.model_request_start_id == start.id
    assert end.is_error is False
    inp, out = usage_of(end)
    assert inp > 0 and out > 0

    # The stream carried the same buffered events, in the same order, plus the previews.
    buffered = [e for e in received if e.type not in ("event_start", "event_delta")]
    assert [e.id for e in buffered] == [e.id for e in events]
    previews = [e for e in received if e.type in ("event_start", "event_delta")]
    assert previews and previews[0].type == "event_start"
    assert previews[0].event.id == message.id and previews[0].event.type == "agent.message"
    deltas = [e for e in previews if e.type == "event_delta"]
    assert len(deltas) >= 2, "the slow directive splits the text into chunks"
    assert all(d.event_id == message.id for d in deltas)
    assert "".join(d.delta.content.text for d in deltas) == "hello from the mock"
    # Previews come after the span start and before the final event; they are never listed.
    order = [e.type for e in received]
    assert order.index("span.model_request_start") < order.index("event_start") < order.index("agent.message")

    # Session usage is the sum of the spans and accumulates over a second turn.
    first = harness.client.beta.sessions.retrieve(session.id).usage
    assert (first.input_tokens, first.output_tokens) == (inp, out)
    second_turn = harness.turn(session.id, "[[mock:text again]]")
    assert types(second_turn) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    inp2, out2 = usage_of(second_turn[4])
    total = harness.client.beta.sessions.retrieve(session.id).usage
    assert (total.input_tokens, total.output_tokens) == (inp + inp2, out + out2)
    assert inp2 > inp, "the second request carries the whole conversation"

    # What the model saw: the agent's model, both prompts in order, streaming.
    requests = harness.model_requests()
    assert len(requests) == 2
    body = requests[1]["body"]
    assert body["model"] == "claude-sonnet-4-6" and body["stream"] is True
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_stream_without_event_deltas_has_no_previews(harness: Harness) -> None:
    session = harness.session()
    received = []
    with harness.client.beta.sessions.events.stream(session.id) as stream:
        watchdog = threading.Timer(WAIT, stream.close)
        watchdog.start()
        try:
            harness.send(
                session.id,
                {"type": "user.message", "content": [{"type": "text", "text": "[[mock:text a b c d]] [[mock:slow 1ms 4]]"}]},
            )
            for event in stream:
                received.append(event.type)
                if event.type == "session.status_idle":
                    break
        finally:
            watchdog.cancel()
    assert "event_start" not in received and "event_delta" not in received
    assert "agent.message" in received


def test_bash_writes_a_file_a_later_turn_reads(harness: Harness) -> None:
    session = harness.session()
    marker = unique("data")
    first = harness.turn(session.id, bash(f"echo {marker} > notes.txt && pwd"))
    assert types(first) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.tool_use",
        "span.model_request_end",
        "agent.tool_result",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    use, result = first[3], first[5]
    assert use.name == "bash" and use.evaluated_permission == "allow"
    assert result.tool_use_id == use.id and not result.is_error
    assert text(result).strip() == "/workspace"
    assert text(first[7]) == "Tool result: /workspace"  # trailing newlines trimmed, as the reference

    second = harness.turn(session.id, bash("cat notes.txt"))
    assert text(tool_results(second)[0]).strip() == marker
    # The model received the tool result under the tool-use id.
    last = harness.model_requests()[-1]["body"]["messages"][-1]
    block = last["content"][0]
    assert block["type"] == "tool_result" and block["tool_use_id"] == tool_results(second)[0].tool_use_id


def test_tool_failure_is_an_error_result_not_a_crash(harness: Harness) -> None:
    session = harness.session()
    events = harness.turn(session.id, bash("echo oops >&2; exit 3"))
    result = tool_results(events)[0]
    assert result.is_error is True
    assert "oops" in text(result)
    assert stop_type(events[-1]) == "end_turn"
    # The session is still usable.
    again = harness.turn(session.id, "[[mock:text fine]]")
    assert text([e for e in again if e.type == "agent.message"][0]) == "fine"


def test_workspace_persists_across_restart_and_is_deleted_with_the_session(tmp_path: Any, mock: MockModel) -> None:
    key = new_key()
    data_dir = tmp_path / "data"
    searchable(data_dir)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        session = h.session()
        marker = unique("persist")
        h.turn(session.id, bash(f"echo {marker} > kept.txt"))
        workspace = data_dir / "workspaces" / session.id
        assert (workspace / "kept.txt").read_text().strip() == marker
    finally:
        assert process.stop() == 0
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h.client = client
        events = h.turn(session.id, bash("cat kept.txt"))
        assert text(tool_results(events)[0]).strip() == marker
        client.beta.sessions.delete(session.id)
        assert not workspace.exists()
    finally:
        assert process.stop() == 0


def ask_agent(h: Harness) -> Any:
    return h.agent(
        tools=[{**TOOLSET, "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}]}]
    )


def test_always_ask_allow_runs_the_tool(harness: Harness) -> None:
    session = harness.session(agent=ask_agent(harness))
    events = harness.turn(session.id, bash("echo allowed > a.txt && cat a.txt"))
    use = [e for e in events if e.type == "agent.tool_use"][0]
    assert use.evaluated_permission == "ask"
    idle = events[-1]
    assert idle.type == "session.status_idle" and stop_type(idle) == "requires_action"
    assert idle.stop_reason.event_ids == [use.id]
    assert tool_results(events) == []
    assert harness.client.beta.sessions.retrieve(session.id).status == "idle"

    sent = harness.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = harness.wait_idle(session.id, sent[0].id)
    assert types(after)[:3] == ["user.tool_confirmation", "session.status_running", "agent.tool_result"]
    result = tool_results(after)[0]
    assert result.tool_use_id == use.id and not result.is_error
    assert text(result).strip() == "allowed"
    assert stop_type(after[-1]) == "end_turn"


def test_always_ask_deny_does_not_run_and_the_model_gets_the_message(harness: Harness) -> None:
    session = harness.session(agent=ask_agent(harness))
    events = harness.turn(session.id, bash("touch denied.txt"))
    use = [e for e in events if e.type == "agent.tool_use"][0]
    assert stop_type(events[-1]) == "requires_action"
    deny = unique("not-today")
    sent = harness.send(
        session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny", "deny_message": deny}
    )
    after = harness.wait_idle(session.id, sent[0].id)
    result = tool_results(after)[0]
    assert result.tool_use_id == use.id and result.is_error is True
    assert deny in text(result)
    assert stop_type(after[-1]) == "end_turn"
    # The model received the deny message as the tool's error result.
    last = harness.model_requests()[-1]["body"]["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and last["is_error"] is True
    assert deny in str(last["content"])
    # The command never ran.
    assert not (harness.server.process.data_dir / "workspaces" / session.id / "denied.txt").exists()


def test_custom_tool_round_trip(harness: Harness) -> None:
    agent = harness.agent(
        tools=[
            TOOLSET,
            {
                "type": "custom",
                "name": "lookup",
                "description": "Look a key up in the caller's table.",
                "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
            },
        ]
    )
    session = harness.session(agent=agent)
    events = harness.turn(session.id, '[[mock:tool lookup {"key": "answer"}]]')
    use = [e for e in events if e.type == "agent.custom_tool_use"][0]
    assert use.name == "lookup" and use.input == {"key": "answer"}
    assert stop_type(events[-1]) == "requires_action"
    assert events[-1].stop_reason.event_ids == [use.id]
    # The model was offered the custom tool with its schema next to the toolset.
    tools = {t["name"]: t for t in harness.model_requests()[0]["body"]["tools"]}
    assert tools["lookup"]["input_schema"]["required"] == ["key"]
    assert "bash" in tools

    value = unique("forty-two")
    sent = harness.send(
        session.id,
        {"type": "user.custom_tool_result", "custom_tool_use_id": use.id, "content": [{"type": "text", "text": value}]},
    )
    after = harness.wait_idle(session.id, sent[0].id)
    message = [e for e in after if e.type == "agent.message"][0]
    assert text(message) == f"Tool result: {value}"
    assert stop_type(after[-1]) == "end_turn"


def test_interrupt_during_sleep_idles_within_two_seconds(harness: Harness) -> None:
    session = harness.session()
    harness.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": bash("sleep 30")}]})

    def tool_started() -> bool:
        return any(e.type == "agent.tool_use" for e in harness.events(session.id))

    deadline = time.monotonic() + WAIT
    while not tool_started():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # the sandbox is running `sleep 30`
    assert harness.client.beta.sessions.retrieve(session.id).status == "running"
    t0 = time.monotonic()
    harness.send(session.id, {"type": "user.interrupt"})
    while harness.client.beta.sessions.retrieve(session.id).status != "idle":
        assert time.monotonic() - t0 < 2.0, "not idle within 2 s of the interrupt"
        time.sleep(0.02)
    events = harness.events(session.id)
    assert stop_type(events[-1]) == "end_turn"
    assert "user.interrupt" in types(events)
    # The tool call is closed (an error result), and the session takes new input.
    assert len(tool_results(events)) == 1 and tool_results(events)[0].is_error
    after = harness.turn(session.id, "[[mock:text back]]")
    assert text([e for e in after if e.type == "agent.message"][0]) == "back"


def test_529_once_then_success_shows_the_rescheduled_cycle(harness: Harness) -> None:
    session = harness.session()
    events = harness.turn(session.id, "[[mock:error 529 x1]] [[mock:text recovered]]")
    kinds = types(events)
    assert kinds[:2] == ["user.message", "session.status_running"]
    error = [e for e in events if e.type == "session.error"][0]
    assert error.error.retry_status.type == "retrying"
    i_err, i_res = kinds.index("session.error"), kinds.index("session.status_rescheduled")
    assert i_err < i_res
    assert "session.status_running" in kinds[i_res:]
    assert kinds[-3:] == ["agent.message", "span.model_request_end", "session.status_idle"]
    assert text(events[-3]) == "recovered" and stop_type(events[-1]) == "end_turn"
    assert len(harness.model_requests()) == 2


def test_529_always_ends_with_retries_exhausted(harness: Harness) -> None:
    session = harness.session()
    events = harness.turn(session.id, "[[mock:error 529 always]]", timeout=120)
    idle = events[-1]
    assert stop_type(idle) == "retries_exhausted"
    errors = [e for e in events if e.type == "session.error"]
    assert errors and errors[-1].error.retry_status.type == "exhausted"
    assert "agent.message" not in types(events)
    assert harness.client.beta.sessions.retrieve(session.id).status == "idle"


def test_the_vault_token_reaches_the_model_only(harness: Harness) -> None:
    session = harness.session()
    events = harness.turn(session.id, bash("env; cat /proc/self/environ; ls -la /workspace"))
    requests = harness.model_requests()
    assert requests and all(r["headers"].get("x-api-key") == harness.token for r in requests)
    assert all("authorization" not in r["headers"] for r in requests)
    # Not in the sandbox, the events, the session object, or the server's log.
    assert harness.token not in text(tool_results(events)[0])
    everything = "".join(e.model_dump_json() for e in harness.events(session.id))
    assert harness.token not in everything
    assert harness.token not in harness.client.beta.sessions.retrieve(session.id).model_dump_json()
    log = harness.server.process.log_path.read_text()
    assert harness.token not in log
