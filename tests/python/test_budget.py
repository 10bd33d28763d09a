"""Session budgets (issue 13, item 4): list-priced spend folded from the model requests, the pause
at the cap (`session.usage` then `session.status_idle{budget_reached}`), what a paused session
accepts, and the resume when the cap is raised. Official SDK, real server, native engine, the
mock model reporting scripted token counts."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    harness,
    harness_server,
    mock,
    stop_type,
    text,
    tool_prompt,
    tool_results,
    types,
)


def budget(cents: str) -> dict[str, Any]:
    return {"type": "limit", "max_list_cost": {"amount": cents, "currency": "USD"}}


def requests_of(h: Harness, marker: str) -> list[dict[str, Any]]:
    """The model requests whose conversation contains `marker`."""
    return [r for r in h.model_requests() if marker in str(r["body"])]


def test_a_session_pauses_at_its_cap_and_resumes_when_it_is_raised(harness: Harness) -> None:
    session = harness.session(budget=budget("100"))
    assert session.budget.max_list_cost.amount == "100"
    assert session.usage.list_cost.amount == "0"

    # 400,000 input tokens at $3/M and 1,000 output at $15/M: $1.215, over the $1.00 cap. The
    # tool call the response asks for still runs; the next model request does not happen.
    marker = "budget-marker-1"
    prompt = tool_prompt("bash", {"command": f"echo {marker}"}, before="[[mock:usage 400000 1000]] ")
    events = harness.turn(session.id, prompt)
    assert types(events) == [
        "user.message",
        "session.status_running",
        "span.model_request_start",
        "agent.tool_use",
        "span.model_request_end",
        "agent.tool_result",
        "session.usage",
        "session.status_idle",
    ]
    assert stop_type(events[-1]) == "budget_reached"
    usage = events[-2]
    assert usage.usage.list_cost.amount == "121"
    assert usage.budget.max_list_cost.amount == "100"
    assert usage.usage.input_tokens == 400000 and usage.usage.output_tokens == 1000
    assert marker in str(tool_results(events)[0].content)
    assert len(requests_of(harness, marker)) == 1

    paused = harness.client.beta.sessions.retrieve(session.id)
    assert paused.status == "idle"
    assert paused.usage.list_cost.amount == "121"

    # Paused: new input is refused, nothing is appended.
    before = len(harness.events(session.id))
    with pytest.raises(anthropic.BadRequestError) as refused:
        harness.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": "more"}]})
    assert "budget" in str(refused.value)
    assert len(harness.events(session.id)) == before

    # A cap at or below what was spent is not a raise.
    with pytest.raises(anthropic.BadRequestError) as low:
        harness.client.beta.sessions.update(session.id, budget=budget("121"))
    assert "budget_not_raised" in str(low.value.body)

    # Raised: the paused turn goes on by itself, from the tool result, to its end.
    harness.client.beta.sessions.update(session.id, budget=budget("500"))
    updated = [e for e in harness.events(session.id) if e.type == "session.updated"][-1]
    resumed = harness.wait_idle(session.id, updated.id)
    # The 400,000-token request made the context large enough to compact (the server's default
    # `--compact-at-tokens` is 150,000): a summary request comes first, then the turn goes on.
    assert types(resumed) == [
        "session.updated",
        "session.status_running",
        "span.model_request_start",
        "span.model_request_end",
        "agent.thread_context_compacted",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "session.status_idle",
    ]
    assert stop_type(resumed[-1]) == "end_turn"
    assert len(requests_of(harness, marker)) == 2
    after = harness.client.beta.sessions.retrieve(session.id)
    assert after.budget.max_list_cost.amount == "500"
    assert int(after.usage.list_cost.amount) >= 121

    # And it takes new input again.
    assert stop_type(harness.turn(session.id, "[[mock:text done]]")[-1]) == "end_turn"


def test_a_budget_needs_a_priced_model_and_whole_cents(harness: Harness) -> None:
    unpriced = harness.agent(model="gpt-5-mini")
    with pytest.raises(anthropic.BadRequestError) as not_budgetable:
        harness.session(agent=unpriced, budget=budget("100"))
    assert "model_not_budgetable" in str(not_budgetable.value.body)
    for bad in ["1.50", "-5", "0", "ten"]:
        with pytest.raises(anthropic.BadRequestError) as rejected:
            harness.session(budget=budget(bad))
        assert "budget.max_list_cost.amount" in str(rejected.value), bad
    # A session without a budget cannot get one later; one with a budget can drop it.
    plain = harness.session()
    with pytest.raises(anthropic.BadRequestError) as create_only:
        harness.client.beta.sessions.update(plain.id, budget=budget("100"))
    assert "budget_create_only" in str(create_only.value.body)
    capped = harness.session(budget=budget("100"))
    assert harness.client.beta.sessions.update(capped.id, budget=None).budget is None


def test_a_child_thread_stops_at_the_sessions_cap_and_takes_messages_after_it_is_raised(harness: Harness) -> None:
    import json

    from conftest import unique

    h = harness
    member = h.agent(name=unique("spender"))
    lead = h.agent(name=unique("lead"), multiagent={"type": "coordinator", "agents": [member.id]})
    session = h.session(agent=lead, budget=budget("10"))

    def delegate(message: str, thread: str | None = None) -> str:
        body: dict[str, Any] = {"agent": member.name, "message": message}
        if thread is not None:
            body["session_thread_id"] = thread
        return f"[[mock:tool message_agent {json.dumps(body)}]]"

    # The child's first response costs $0.135 (over the $0.10 cap) and asks for a tool call:
    # the call runs, the child's next model request does not happen. (Few enough tokens that
    # no compaction follows.)
    marker = "child-budget-marker"
    child_prompt = f'<<mock:usage 40000 1000>><<mock:tool bash {{"command": "echo {marker}"}}>>'
    events = h.turn(session.id, delegate(child_prompt))
    assert types(events)[-2:] == ["session.usage", "session.status_idle"]
    assert stop_type(events[-1]) == "budget_reached"
    assert int(events[-2].usage.list_cost.amount) >= 13
    thread = next(e for e in events if e.type == "session.thread_created").session_thread_id
    idles = [e for e in events if e.type == "session.thread_status_idle"]
    assert [(e.session_thread_id, stop_type(e)) for e in idles] == [(thread, "budget_reached")]
    mine = list(h.client.beta.sessions.threads.events.list(thread, session_id=session.id, limit=1000))
    assert types(mine)[-3:] == ["span.model_request_end", "agent.tool_result", "session.status_idle"]
    assert stop_type(mine[-1]) == "budget_reached" and marker in str(mine[-2].content)
    assert "session.usage" not in types(mine)
    assert types(mine).count("span.model_request_start") == 1
    paused = h.client.beta.sessions.retrieve(session.id)
    assert paused.status == "idle" and int(paused.usage.list_cost.amount) >= 13
    # The session, not the child, is paused: only settling input is taken.
    with pytest.raises(anthropic.BadRequestError):
        h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": "more"}]})

    # Raised: the coordinator's paused turn goes on to its end.
    h.client.beta.sessions.update(session.id, budget=budget("100"))
    updated = [e for e in h.events(session.id) if e.type == "session.updated"][-1]
    resumed = h.wait_idle(session.id, updated.id)
    assert stop_type(resumed[-1]) == "end_turn"

    # A follow-up to the child that stopped at the cap runs it again.
    again = h.turn(session.id, delegate("<<mock:text back to work>>", thread=thread))
    assert stop_type(again[-1]) == "end_turn"
    assert [text(e) for e in again if e.type == "agent.thread_message_received"] == ["back to work"]
    idles = [stop_type(e) for e in again if e.type == "session.thread_status_idle"]
    assert idles == ["end_turn"]
    assert h.client.beta.sessions.threads.retrieve(thread, session_id=session.id).status == "idle"
