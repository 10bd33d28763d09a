"""Ten sessions running at once do not interfere, and the `openai-agents` engine runs a text
turn and a tool turn over the OpenAI Responses API (issue 4)."""

from __future__ import annotations

import time
from typing import Any

from conftest import unique
from harness_support import (  # noqa: F401  (fixtures)
    WAIT,
    Harness,
    bash,
    harness,
    harness_server,
    llm_vault,
    mock,
    stop_type,
    text,
    tool_results,
    types,
)


def test_ten_sessions_at_once_do_not_interfere(harness: Harness) -> None:
    agent = harness.agent()
    environment = harness.environment()
    sessions = [harness.session(agent=agent, environment=environment) for _ in range(10)]
    markers = {s.id: unique(f"s{i}") for i, s in enumerate(sessions)}
    sent = {}
    for s in sessions:
        command = f"echo {markers[s.id]} > mine.txt; sleep 1; cat mine.txt; ls"
        sent[s.id] = harness.send(s.id, {"type": "user.message", "content": [{"type": "text", "text": bash(command)}]})[0].id

    # All ten run concurrently: at some point several are running together.
    deadline = time.monotonic() + WAIT
    most_running = 0
    while time.monotonic() < deadline:
        statuses = [harness.client.beta.sessions.retrieve(s.id).status for s in sessions]
        most_running = max(most_running, statuses.count("running"))
        if all(st == "idle" for st in statuses):
            break
        time.sleep(0.1)
    assert most_running >= 2

    for s in sessions:
        events = harness.wait_idle(s.id, sent[s.id])
        assert types(events) == [
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
        out = text(tool_results(events)[0]).split()
        assert out == [markers[s.id], "mine.txt"], out
        assert stop_type(events[-1]) == "end_turn"
    # Each session made exactly its own two model requests.
    assert len(harness.model_requests()) == 20


def openai_harness(h: Harness) -> Harness:
    token = "sk-openai-" + unique("secret")
    vault = llm_vault(h.client, h.mock.url, token, engine="openai-agents")
    return Harness(client=h.client, server=h.server, mock=h.mock, vault=vault, token=token)


def test_openai_agents_engine_text_and_tool_turns(harness: Harness) -> None:
    h = openai_harness(harness)
    session = h.session(agent=h.agent(system="be brief"))
    first = h.turn(session.id, "[[mock:text hello over responses]]")
    assert types(first) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    assert text(first[3]) == "hello over responses"
    assert first[4].model_usage.input_tokens > 0 and first[4].model_usage.output_tokens > 0

    marker = unique("oa")
    second = h.turn(session.id, bash(f"echo {marker} > o.txt && cat o.txt"))
    assert "agent.tool_use" in types(second)
    result = tool_results(second)[0]
    assert text(result).strip() == marker and not result.is_error
    assert text([e for e in second if e.type == "agent.message"][0]) == f"Tool result: {marker}"
    assert stop_type(second[-1]) == "end_turn"

    requests = h.model_requests()
    assert [r["path"] for r in requests] == ["/v1/responses"] * 3
    assert all(r["headers"].get("authorization") == f"Bearer {h.token}" for r in requests)
    body = requests[-1]["body"]
    assert body["stream"] is True and body["model"] == "claude-sonnet-4-6"
    assert any(t.get("name") == "bash" for t in body["tools"])
    kinds = [item.get("type") for item in body["input"]]
    assert "function_call" in kinds and "function_call_output" in kinds
    usage = h.client.beta.sessions.retrieve(session.id).usage
    assert usage.input_tokens == sum(
        e.model_usage.input_tokens for e in h.events(session.id) if e.type == "span.model_request_end"
    )
    assert h.token not in "".join(e.model_dump_json() for e in h.events(session.id))


def test_unavailable_engine_gives_a_clear_error_not_a_hang(harness: Harness) -> None:
    vault = llm_vault(harness.client, harness.mock.url, engine="no-such-engine")
    session = harness.session(vault=vault)
    events = harness.turn(session.id, "hello")
    errors = [e for e in events if e.type == "session.error"]
    assert errors and "no-such-engine" in errors[0].error.message
    assert stop_type(events[-1]) == "end_turn"
    assert harness.model_requests() == []
