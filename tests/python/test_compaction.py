"""Context compaction on the resident engines (API §7: `agent.thread_context_compacted`): once
the agent's previous model request's input reached the server's `--compact-at-tokens` (150,000 by
default), the next model request is preceded by a summary request; the conversation then goes
on from the summary alone. Official SDK, real server, native engine, the mock model reporting
scripted token counts (`[[mock:usage ...]]`) and answering summary requests with
`mock summary of N messages`."""

from __future__ import annotations

import json
from typing import Any

from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    harness,
    harness_server,
    mock,
    stop_type,
    text,
    tool_prompt,
    types,
)


def prompt_of(request: dict[str, Any]) -> str:
    return json.dumps(request["body"].get("messages") or request["body"].get("input"))


def test_a_large_context_is_compacted_and_the_turn_goes_on_from_the_summary(harness: Harness) -> None:
    h = harness
    session = h.session()
    first = h.turn(session.id, "[[mock:text noted: the secret word is kiwi]]")
    assert stop_type(first[-1]) == "end_turn"
    assert "agent.thread_context_compacted" not in types(first)

    # 200,000 input tokens: the request after this response's tool call compacts first.
    events = h.turn(
        session.id, tool_prompt("bash", {"command": "echo big"}, before="[[mock:usage 200000 10]] ")
    )
    assert stop_type(events[-1]) == "end_turn"
    assert types(events)[types(events).index("agent.tool_result") :] == [
        "agent.tool_result",
        "span.model_request_start",
        "span.model_request_end",
        "agent.thread_context_compacted",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    requests = h.model_requests()
    summary_request, after = requests[-2], requests[-1]
    # The summary request held the whole conversation so far and the instruction.
    assert "kiwi" in prompt_of(summary_request) and "echo big" in prompt_of(summary_request)
    assert "compacted" in prompt_of(summary_request)
    # The conversation went on from the summary alone.
    assert len(after["body"]["messages"]) == 1
    assert "mock summary of" in prompt_of(after) and "kiwi" not in prompt_of(after)
    ends = [e for e in events if e.type == "span.model_request_end"]
    assert ends[0].model_usage.input_tokens > 0

    # The next turn builds on the compacted conversation, and does not compact again.
    later = h.turn(session.id, "[[mock:text and on]]")
    assert "agent.thread_context_compacted" not in types(later)
    messages = h.model_requests()[-1]["body"]["messages"]
    assert "mock summary of" in json.dumps(messages[0]) and "and on" in json.dumps(messages[-1])
    assert text([e for e in later if e.type == "agent.message"][0]) == "and on"


def test_a_compaction_before_a_new_message_keeps_that_message_verbatim(harness: Harness) -> None:
    """The turn's new input is not summarized away: the summary covers what came before it,
    and the model gets the summary followed by the message itself."""
    h = harness
    session = h.session()
    # 200,000 input tokens: the next turn's first model request compacts first.
    first = h.turn(session.id, "[[mock:usage 200000 10]] [[mock:text noted: the secret word is kiwi]]")
    assert stop_type(first[-1]) == "end_turn"

    events = h.turn(session.id, "[[mock:text answered the new message]] what now?")
    assert "agent.thread_context_compacted" in types(events)
    requests = h.model_requests()
    summary_request, after = requests[-2], requests[-1]
    assert "kiwi" in prompt_of(summary_request) and "what now?" not in prompt_of(summary_request)
    assert "mock summary of" in prompt_of(after) and "what now?" in prompt_of(after)
    assert "kiwi" not in prompt_of(after)
    assert text([e for e in events if e.type == "agent.message"][-1]) == "answered the new message"
