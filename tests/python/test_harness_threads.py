"""Multiagent sessions on the native engine with the mock model (API §4.6, §7, §10).

A coordinator (an agent with a roster) delegates with its `message_agent` tool; each delegation
runs the roster member in a child thread of its own (`sthr_…`, its own stream and agent
snapshot, the session's workspace). The mock's `<<mock:...>>` directives inside the delegated
message script the child's model; the coordinator's own `[[mock:...]]` script the coordinator.
Coordinators on the agent-CLI engines are tested in test_engine_claude.py and
test_engine_codex.py.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

import anthropic
import pytest

from conftest import unique
from harness_support import (  # noqa: F401  (fixtures)
    TOOLSET,
    Harness,
    harness,
    harness_server,
    mock,
    stop_type,
    text,
    types,
    wait_for,
)


def delegate(agent: Any, message: str, thread: str | None = None) -> str:
    body: dict[str, Any] = {"agent": agent.name, "message": message}
    if thread is not None:
        body["session_thread_id"] = thread
    return f"[[mock:tool message_agent {json.dumps(body)}]]"


def team(h: Harness, **member_tools: Any) -> tuple[Any, Any, Any]:
    reviewer = h.agent(name=unique("reviewer"), description="reviews code")
    tester = h.agent(name=unique("tester"), **member_tools)
    coordinator = h.agent(
        name=unique("lead"), multiagent={"type": "coordinator", "agents": [reviewer.id, tester.id]}
    )
    return coordinator, reviewer, tester


def threads_of(h: Harness, session_id: str) -> list[Any]:
    return list(h.client.beta.sessions.threads.list(session_id).data)


def thread_events(h: Harness, session_id: str, thread_id: str) -> list[Any]:
    return list(h.client.beta.sessions.threads.events.list(thread_id, session_id=session_id, limit=1000))


def test_a_coordinator_delegates_to_two_roster_agents(harness: Harness) -> None:
    h = harness
    coordinator, reviewer, tester = team(h)
    session = h.session(agent=coordinator)
    prompt = delegate(reviewer, "<<mock:delay 1s>><<mock:text looks good>>") + delegate(
        tester, "<<mock:delay 1s>><<mock:text tests pass>>"
    )
    events = h.turn(session.id, prompt)
    assert stop_type(events[-1]) == "end_turn"

    created = [e for e in events if e.type == "session.thread_created"]
    assert [c.agent_name for c in created] == [reviewer.name, tester.name]
    first, second = (c.session_thread_id for c in created)
    # Each delegation, in order: created, message sent, running, idle, reply, tool result.
    def lifecycle(thread: str) -> list[str]:
        return [
            e.type
            for e in events
            if getattr(e, "session_thread_id", None) == thread
            or getattr(e, "to_session_thread_id", None) == thread
            or getattr(e, "from_session_thread_id", None) == thread
        ]

    expected = [
        "session.thread_created",
        "agent.thread_message_sent",
        "session.thread_status_running",
        "session.thread_status_idle",
        "agent.thread_message_received",
    ]
    assert lifecycle(first) == expected and lifecycle(second) == expected
    # The two delegations of one response run at once: both run before either replies.
    running = [i for i, e in enumerate(events) if e.type == "session.thread_status_running"]
    idles = [i for i, e in enumerate(events) if e.type == "session.thread_status_idle"]
    assert max(running) < min(idles)
    # Their model requests overlapped.
    def span(thread: str) -> tuple[Any, Any]:
        mine = thread_events(h, session.id, thread)
        start = [e.processed_at for e in mine if e.type == "span.model_request_start"][0]
        end = [e.processed_at for e in mine if e.type == "span.model_request_end"][0]
        return start, end

    (a_start, a_end), (b_start, b_end) = span(first), span(second)
    assert a_start < b_end and b_start < a_end
    # Each child's reply comes as soon as it is done (in whichever order they finish).
    received = {
        r.from_session_thread_id: r
        for r in events
        if r.type == "agent.thread_message_received"
    }
    assert {thread: text(r) for thread, r in received.items()} == {
        first: "looks good",
        second: "tests pass",
    }
    assert received[first].from_agent_name == reviewer.name
    results = [e for e in events if e.type == "agent.tool_result"]
    assert len(results) == 2 and not any(r.is_error for r in results)
    assert any("looks good" in text(r) and first in text(r) for r in results)
    assert any("tests pass" in text(r) and second in text(r) for r in results)

    # The threads: the primary and two children with their own agents.
    listed = threads_of(h, session.id)
    assert len(listed) == 3
    primary = listed[0]
    assert primary.parent_thread_id is None and primary.agent.id == coordinator.id
    children = {t.id: t for t in listed[1:]}
    assert set(children) == {first, second}
    assert children[first].agent.id == reviewer.id and children[first].agent.version == 1
    assert children[second].agent.id == tester.id
    for child in children.values():
        assert child.parent_thread_id == primary.id
        assert child.status == "idle"
        assert child.usage is not None and child.usage.output_tokens > 0
        assert child.agent.multiagent is None
    assert h.client.beta.sessions.threads.retrieve(first, session_id=session.id).id == first
    assert [t.id for t in h.client.beta.sessions.threads.list(session.id, statuses=["running"]).data] == []
    page = h.client.beta.sessions.threads.list(session.id, limit=2)
    assert len(page.data) == 2 and page.next_page
    rest = h.client.beta.sessions.threads.list(session.id, limit=2, page=page.next_page)
    assert [t.id for t in rest.data] == [second]

    # Each child thread's events are its own: its input, its turn, its reply.
    mine = thread_events(h, session.id, first)
    assert mine[0].type == "agent.thread_message_received" and mine[0].from_session_thread_id == primary.id
    assert "session.status_running" in types(mine) and stop_type(mine[-1]) == "end_turn"
    assert [text(e) for e in mine if e.type == "agent.message"] == ["looks good"]
    assert all("tests pass" not in text(e) for e in mine)
    # The session's list is the primary thread's plus the condensed child activity.
    session_events = h.events(session.id)
    assert "agent.message" in types(session_events)
    assert not any(text(e) == "looks good" and e.type == "agent.message" for e in session_events)

    # The session's usage includes the children's.
    total = h.client.beta.sessions.retrieve(session.id).usage.output_tokens
    children_out = sum(t.usage.output_tokens for t in children.values())
    assert total > children_out

    # A follow-up continues the same thread with its earlier turns.
    before = len(h.model_requests())
    follow = h.turn(session.id, delegate(reviewer, "<<mock:echo>> and again", thread=first))
    assert not [e for e in follow if e.type == "session.thread_created"]
    child_requests = [
        r
        for r in h.model_requests()[before:]
        if '"<<mock:echo>> and again"' in json.dumps(r["body"]["messages"][-1])
    ]
    assert child_requests and len(child_requests[0]["body"]["messages"]) == 3
    again = [e for e in follow if e.type == "agent.thread_message_received"]
    assert [text(e) for e in again] == ["and again"]
    assert len(threads_of(h, session.id)) == 3

    # An idle child thread can be archived; the session goes on.
    archived = h.client.beta.sessions.threads.archive(second, session_id=session.id)
    assert archived.archived_at is not None and archived.id == second
    late = h.turn(session.id, delegate(tester, "<<mock:text hello>>", thread=second))
    result = [e for e in late if e.type == "agent.tool_result"][0]
    assert result.is_error and "archived" in text(result)

    # Child streams are no sessions of their own.
    sessions = [s.id for s in h.client.beta.sessions.list(limit=100).data]
    assert session.id in sessions
    assert not any(s.replace("sesn_", "sthr_") in (first, second) for s in sessions)
    with pytest.raises(anthropic.NotFoundError):
        h.client.beta.sessions.retrieve(first.replace("sthr_", "sesn_"))
    with pytest.raises(anthropic.NotFoundError):
        h.client.beta.sessions.events.list(first.replace("sthr_", "sesn_"))

    # Deleting the session deletes its threads.
    h.client.beta.sessions.delete(session.id)
    with pytest.raises(anthropic.NotFoundError):
        h.client.beta.sessions.threads.list(session.id)


def test_running_thread_cannot_be_archived_and_its_stream_is_its_own(harness: Harness) -> None:
    h = harness
    coordinator, reviewer, _ = team(h)
    session = h.session(agent=coordinator)
    sent = h.send(
        session.id,
        {
            "type": "user.message",
            "content": [{"type": "text", "text": delegate(reviewer, "<<mock:delay 2s>><<mock:text slow>>")}],
        },
    )

    def running_child() -> Any:
        found = [t for t in threads_of(h, session.id)[1:] if t.status == "running"]
        return found[0] if found else None

    child = wait_for(running_child)
    assert h.client.beta.sessions.threads.list(session.id, statuses=["running"]).data[-1].id == child.id
    with pytest.raises(anthropic.ConflictError) as err:
        h.client.beta.sessions.threads.archive(child.id, session_id=session.id)
    assert err.value.status_code == 409
    assert h.client.beta.sessions.retrieve(session.id).status == "running"

    seen: list[Any] = []

    def read() -> None:
        with h.client.beta.sessions.threads.events.stream(child.id, session_id=session.id) as stream:
            for event in stream:
                seen.append(event)
                if event.type == "session.status_idle":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    h.wait_idle(session.id, sent[0].id)
    reader.join(20)
    assert not reader.is_alive()
    assert "agent.message" in types(seen)
    assert not any(t.startswith("session.thread_") for t in types(seen))
    assert h.client.beta.sessions.threads.archive(child.id, session_id=session.id).archived_at is not None


def ask_team(h: Harness) -> tuple[Any, Any, Any]:
    return team(h, tools=[{**TOOLSET, "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}]}])


def waiting_call(h: Harness, session_id: str) -> Any:
    def cross_posted() -> Any:
        uses = [e for e in h.events(session_id) if e.type == "agent.tool_use" and e.session_thread_id]
        return uses[-1] if uses else None

    return wait_for(cross_posted)


def since(h: Harness, session_id: str, first: str, last: str) -> list[Any]:
    """Waits for the session's next idle after event `last`; returns its events from `first` on."""
    h.wait_idle(session_id, last)
    events = h.events(session_id)
    return events[[e.id for e in events].index(first) :]


def session_idle(h: Harness, session_id: str, after: str) -> Any:
    """Waits until the session shows idle with a `session.status_idle` after event `after`;
    returns that (latest) idle event."""

    def idle() -> Any:
        if h.client.beta.sessions.retrieve(session_id).status != "idle":
            return None
        events = h.events(session_id)
        tail = events[[e.id for e in events].index(after) + 1 :]
        idles = [e for e in tail if e.type == "session.status_idle"]
        return idles[-1] if idles else None

    return wait_for(idle)


def test_a_childs_confirmation_is_answered_on_the_session(harness: Harness) -> None:
    h = harness
    coordinator, _, tester = ask_team(h)
    session = h.session(agent=coordinator)
    streamed: list[Any] = []
    opened = threading.Event()

    def read() -> None:
        with h.client.beta.sessions.events.stream(session.id) as stream:
            opened.set()
            for event in stream:
                streamed.append(event)
                if event.type == "session.status_idle" and stop_type(event) == "end_turn":
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    sent = h.send(
        session.id,
        {
            "type": "user.message",
            "content": [{"type": "text", "text": delegate(tester, '<<mock:tool bash {"command": "echo ran"}>>')}],
        },
    )
    use = waiting_call(h, session.id)
    assert use.name == "bash" and use.evaluated_permission == "ask"
    idle = wait_for(
        lambda: [e for e in h.events(session.id) if e.type == "session.thread_status_idle"]
    )[-1]
    assert idle.session_thread_id == use.session_thread_id
    assert stop_type(idle) == "requires_action" and idle.stop_reason.event_ids == [use.id]
    # No thread works and one waits on the client: the session is idle, listing the call.
    waits = session_idle(h, session.id, sent[0].id)
    assert stop_type(waits) == "requires_action" and waits.stop_reason.event_ids == [use.id]

    echo = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    assert echo[0].session_thread_id == use.session_thread_id
    events = since(h, session.id, sent[0].id, echo[0].id)
    assert stop_type(events[-1]) == "end_turn"
    child = thread_events(h, session.id, use.session_thread_id)
    result = [e for e in child if e.type == "agent.tool_result"][0]
    assert result.tool_use_id == use.id and not result.is_error and text(result).strip() == "ran"
    # The session's stream: the primary thread plus the condensed child activity.
    reader.join(20)
    assert not reader.is_alive()
    kinds = types(streamed)
    for kind in (
        "session.thread_created",
        "agent.thread_message_sent",
        "session.thread_status_running",
        "session.thread_status_idle",
        "agent.thread_message_received",
    ):
        assert kind in kinds, kind
    # The session's own statuses: idle on the child's call, running once it was answered.
    statuses = [(e.type, stop_type(e)) for e in streamed if e.type.startswith("session.status_")]
    assert statuses[-3:] == [
        ("session.status_idle", "requires_action"),
        ("session.status_running", None),
        ("session.status_idle", "end_turn"),
    ]
    posted = [e for e in streamed if e.type == "agent.tool_use" and e.session_thread_id]
    assert [e.id for e in posted] == [use.id]
    assert [e.session_thread_id for e in streamed if e.type == "user.tool_confirmation"] == [use.session_thread_id]
    assert not any(e.type == "agent.message" and text(e).strip() == "ran" for e in streamed)


def test_several_waiting_children_are_posted_and_answered_at_once(harness: Harness) -> None:
    h = harness
    coordinator, _, tester = ask_team(h)
    session = h.session(agent=coordinator)
    prompt = delegate(tester, '<<mock:tool bash {"command": "echo one"}>>') + delegate(
        tester, '<<mock:tool bash {"command": "echo two"}>>'
    )
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})

    def both_posted() -> Any:
        events = h.events(session.id)
        uses = [e for e in events if e.type == "agent.tool_use" and e.session_thread_id]
        idles = [e for e in events if e.type == "session.thread_status_idle"]
        return (uses, idles) if len(uses) == 2 and len(idles) == 2 else None

    # Both children's calls are on the session's stream before any is answered, each with
    # its thread, and each thread's idle names its own call.
    uses, idles = wait_for(both_posted)
    # The children post in whichever order they get there: take them in delegation order.
    uses = sorted(uses, key=lambda u: u.input["command"])
    assert [u.input["command"] for u in uses] == ["echo one", "echo two"]
    threads = [u.session_thread_id for u in uses]
    assert len(set(threads)) == 2 and all(t.startswith("sthr_") for t in threads)
    assert all(u.name == "bash" and u.evaluated_permission == "ask" for u in uses)
    assert {(i.session_thread_id, tuple(i.stop_reason.event_ids)) for i in idles} == {
        (u.session_thread_id, (u.id,)) for u in uses
    }
    assert all(stop_type(i) == "requires_action" for i in idles)
    session_idle(h, session.id, sent[0].id)

    # The later child is answered first; each answer reaches its own thread.
    second = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": uses[1].id, "result": "allow"})
    first = h.send(
        session.id,
        {"type": "user.tool_confirmation", "tool_use_id": uses[0].id, "result": "deny", "deny_message": "not now"},
    )
    assert second[0].session_thread_id == threads[1] and first[0].session_thread_id == threads[0]
    events = since(h, session.id, sent[0].id, first[0].id)
    assert stop_type(events[-1]) == "end_turn"
    for use, thread in zip(uses, threads):
        mine = thread_events(h, session.id, thread)
        results = [e for e in mine if e.type == "agent.tool_result"]
        assert [r.tool_use_id for r in results] == [use.id]
        assert stop_type(mine[-1]) == "end_turn"
        statuses = [
            stop_type(e) for e in events if e.type == "session.thread_status_idle" and e.session_thread_id == thread
        ]
        assert statuses == ["requires_action", "end_turn"]
    denied = [e for e in thread_events(h, session.id, threads[0]) if e.type == "agent.tool_result"][0]
    allowed = [e for e in thread_events(h, session.id, threads[1]) if e.type == "agent.tool_result"][0]
    assert denied.is_error and "not now" in text(denied)
    assert not allowed.is_error and text(allowed).strip() == "two"
    replies = {e.from_session_thread_id: e for e in events if e.type == "agent.thread_message_received"}
    assert set(replies) == set(threads)
    assert "two" in text(replies[threads[1]])
    # Each call was cross-posted once.
    posted = [e.id for e in h.events(session.id) if e.type == "agent.tool_use" and e.session_thread_id]
    assert sorted(posted) == sorted(u.id for u in uses)


def test_children_waiting_on_the_client_idle_the_session_and_resume_independently(harness: Harness) -> None:
    """Two children wait on `always_ask`: the session goes idle once, listing both calls, and a
    demanding client drives it like any `requires_action`: it answers the second call first,
    that child runs and finishes (its delegation answered) while the first still waits, the
    session is idle again on the first call alone, and answering it ends the turn."""
    h = harness
    coordinator, _, tester = ask_team(h)
    session = h.session(agent=coordinator)
    prompt = delegate(tester, '<<mock:tool bash {"command": "echo one"}>>') + delegate(
        tester, '<<mock:tool bash {"command": "echo two"}>>'
    )
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})

    waits = session_idle(h, session.id, sent[0].id)
    assert stop_type(waits) == "requires_action"
    uses = [e for e in h.events(session.id) if e.type == "agent.tool_use" and e.session_thread_id]
    assert len(uses) == 2 and sorted(waits.stop_reason.event_ids) == sorted(u.id for u in uses)
    # In delegation order (the children post in whichever order they get there).
    uses = sorted(uses, key=lambda u: u.input["command"])
    threads = [u.session_thread_id for u in uses]
    # One session idle for both: none before the second call was posted.
    events = h.events(session.id)
    after = events[[e.id for e in events].index(sent[0].id) :]
    assert [stop_type(e) for e in after if e.type == "session.status_idle"] == ["requires_action"]
    for thread in threads:
        assert h.client.beta.sessions.threads.retrieve(thread, session_id=session.id).status == "idle"
    primary = h.client.beta.sessions.threads.list(session.id).data[0]
    assert primary.parent_thread_id is None and primary.status == "idle"

    # An answer naming the other child's thread is refused, and changes nothing.
    with pytest.raises(anthropic.BadRequestError, match="session_thread_id"):
        h.send(
            session.id,
            {
                "type": "user.tool_confirmation",
                "tool_use_id": uses[1].id,
                "result": "allow",
                "session_thread_id": threads[0],
            },
        )
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"

    # The second call first (echoing its thread, as the docs ask): the session runs at once.
    second = h.send(
        session.id,
        {
            "type": "user.tool_confirmation",
            "tool_use_id": uses[1].id,
            "result": "allow",
            "session_thread_id": threads[1],
        },
    )
    assert second[0].session_thread_id == threads[1]
    assert h.client.beta.sessions.retrieve(session.id).status == "running"
    # That child finishes while the first still waits: the session is idle on the first alone.
    again = session_idle(h, session.id, second[0].id)
    assert stop_type(again) == "requires_action" and again.stop_reason.event_ids == [uses[0].id]
    mine = thread_events(h, session.id, threads[1])
    assert stop_type(mine[-1]) == "end_turn"
    assert [text(e).strip() for e in mine if e.type == "agent.tool_result"] == ["two"]
    assert [e for e in thread_events(h, session.id, threads[0]) if e.type == "agent.tool_result"] == []
    assert h.client.beta.sessions.threads.retrieve(threads[0], session_id=session.id).status == "idle"
    # Its delegation call is answered already.
    events = h.events(session.id)
    answered = [e for e in events if e.type == "agent.tool_result" and threads[1] in text(e)]
    assert len(answered) == 1 and not answered[0].is_error and "two" in text(answered[0])
    assert not [e for e in events if e.type == "agent.tool_result" and threads[0] in text(e)]

    first = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": uses[0].id, "result": "allow"})
    assert first[0].session_thread_id == threads[0]
    events = since(h, session.id, sent[0].id, first[0].id)
    assert stop_type(events[-1]) == "end_turn"
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"
    statuses = [(e.type, stop_type(e)) for e in events if e.type.startswith("session.status_")]
    assert statuses == [
        ("session.status_running", None),
        ("session.status_idle", "requires_action"),
        ("session.status_running", None),
        ("session.status_idle", "requires_action"),
        ("session.status_running", None),
        ("session.status_idle", "end_turn"),
    ]
    mine = thread_events(h, session.id, threads[0])
    assert [text(e).strip() for e in mine if e.type == "agent.tool_result"] == ["one"]
    results = [e for e in events if e.type == "agent.tool_result"]
    # The second child's delegation was answered before the first's.
    assert [threads[1] in text(r) for r in results] == [True, False]


def test_a_session_interrupt_closes_every_waiting_child(harness: Harness) -> None:
    h = harness
    coordinator, _, tester = ask_team(h)
    session = h.session(agent=coordinator)
    prompt = delegate(tester, '<<mock:tool bash {"command": "touch one"}>>') + delegate(
        tester, '<<mock:tool bash {"command": "touch two"}>>'
    )
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})

    def both_posted() -> Any:
        uses = [e for e in h.events(session.id) if e.type == "agent.tool_use" and e.session_thread_id]
        return uses if len(uses) == 2 else None

    uses = wait_for(both_posted)
    # Both wait: the session is idle on them, its turn open; the interrupt ends that turn.
    waits = session_idle(h, session.id, sent[0].id)
    assert set(waits.stop_reason.event_ids) == {u.id for u in uses}
    interrupt = h.send(session.id, {"type": "user.interrupt"})
    events = since(h, session.id, sent[0].id, interrupt[0].id)
    assert stop_type(events[-1]) == "end_turn"
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"
    call_results = [e for e in events if e.type == "agent.tool_result" and not any(e.tool_use_id == u.id for u in uses)]
    assert len(call_results) == 2 and all(r.is_error for r in call_results)
    for use in uses:
        thread = use.session_thread_id
        mine = thread_events(h, session.id, thread)
        closed = [e for e in mine if e.type == "agent.tool_result"]
        assert [(c.tool_use_id, c.is_error) for c in closed] == [(use.id, True)]
        assert stop_type(mine[-1]) == "end_turn"
        statuses = [
            stop_type(e) for e in events if e.type == "session.thread_status_idle" and e.session_thread_id == thread
        ]
        assert statuses == ["requires_action", "end_turn"]
    workspace = h.server.process.data_dir / "workspaces" / session.id
    assert not (workspace / "one").exists() and not (workspace / "two").exists()
    # Both threads take new messages.
    again = h.turn(session.id, delegate(tester, "<<mock:text back>>", thread=uses[1].session_thread_id))
    assert [text(e) for e in again if e.type == "agent.thread_message_received"] == ["back"]


def test_interrupting_a_child_waiting_on_always_ask(harness: Harness) -> None:
    h = harness
    coordinator, _, tester = ask_team(h)
    session = h.session(agent=coordinator)
    sent = h.send(
        session.id,
        {
            "type": "user.message",
            "content": [{"type": "text", "text": delegate(tester, '<<mock:tool bash {"command": "touch no"}>>')}],
        },
    )
    use = waiting_call(h, session.id)
    thread = use.session_thread_id
    with pytest.raises(anthropic.BadRequestError):
        h.send(session.id, {"type": "user.interrupt", "session_thread_id": "sthr_nosuchthread"})
    session_idle(h, session.id, sent[0].id)
    interrupt = h.send(session.id, {"type": "user.interrupt", "session_thread_id": thread})
    events = since(h, session.id, sent[0].id, interrupt[0].id)
    assert stop_type(events[-1]) == "end_turn"
    idles = [e for e in events if e.type == "session.thread_status_idle" and e.session_thread_id == thread]
    assert [stop_type(e) for e in idles] == ["requires_action", "end_turn"]
    child = thread_events(h, session.id, thread)
    closed = [e for e in child if e.type == "agent.tool_result"]
    assert len(closed) == 1 and closed[0].tool_use_id == use.id and closed[0].is_error
    assert stop_type(child[-1]) == "end_turn"
    assert h.client.beta.sessions.threads.retrieve(thread, session_id=session.id).status == "idle"
    assert not (h.server.process.data_dir / "workspaces" / session.id / "no").exists()
    # The coordinator went on: the interrupt was the child's, not the session's.
    assert [e for e in events if e.type == "agent.tool_result" and e.tool_use_id != use.id]


def delegate_a_sleep(h: Harness, session_id: str, member: Any) -> tuple[Any, Any]:
    """Sends a message delegating `sleep 30` to `member`; returns the sent events and the child
    thread once its `sleep` runs."""
    sent = h.send(
        session_id,
        {
            "type": "user.message",
            "content": [{"type": "text", "text": delegate(member, '<<mock:tool bash {"command": "sleep 30"}>>')}],
        },
    )

    def sleeping() -> Any:
        children = threads_of(h, session_id)[1:]
        if not children:
            return None
        events = thread_events(h, session_id, children[0].id)
        return children[0] if "agent.tool_use" in types(events) else None

    return sent, wait_for(sleeping)


def test_interrupting_the_session_stops_a_running_child(harness: Harness) -> None:
    h = harness
    coordinator, reviewer, _ = team(h)
    session = h.session(agent=coordinator)
    sent, child = delegate_a_sleep(h, session.id, reviewer)
    started = time.monotonic()
    h.send(session.id, {"type": "user.interrupt"})
    events = h.wait_idle(session.id, sent[0].id)
    assert time.monotonic() - started < 10
    assert stop_type(events[-1]) == "end_turn"
    assert h.client.beta.sessions.threads.retrieve(child.id, session_id=session.id).status == "idle"
    child_events = thread_events(h, session.id, child.id)
    assert stop_type(child_events[-1]) == "end_turn"


def test_interrupting_the_session_stops_children_running_at_once(harness: Harness) -> None:
    h = harness
    coordinator, reviewer, tester = team(h)
    session = h.session(agent=coordinator)
    sleep = '<<mock:tool bash {"command": "sleep 30"}>>'
    sent = h.send(
        session.id,
        {"type": "user.message", "content": [{"type": "text", "text": delegate(reviewer, sleep) + delegate(tester, sleep)}]},
    )

    def both_sleeping() -> Any:
        children = threads_of(h, session.id)[1:]
        if len(children) < 2:
            return None
        busy = all("agent.tool_use" in types(thread_events(h, session.id, c.id)) for c in children)
        return children if busy else None

    children = wait_for(both_sleeping)
    started = time.monotonic()
    h.send(session.id, {"type": "user.interrupt"})
    events = h.wait_idle(session.id, sent[0].id)
    assert time.monotonic() - started < 10
    assert stop_type(events[-1]) == "end_turn"
    idle = {e.session_thread_id for e in events if e.type == "session.thread_status_idle"}
    assert idle == {c.id for c in children}
    for child in children:
        assert h.client.beta.sessions.threads.retrieve(child.id, session_id=session.id).status == "idle"
        assert stop_type(thread_events(h, session.id, child.id)[-1]) == "end_turn"


def test_interrupting_a_running_child_only(harness: Harness) -> None:
    h = harness
    coordinator, reviewer, _ = team(h)
    session = h.session(agent=coordinator)
    sent, child = delegate_a_sleep(h, session.id, reviewer)
    started = time.monotonic()
    h.send(session.id, {"type": "user.interrupt", "session_thread_id": child.id})
    events = h.wait_idle(session.id, sent[0].id)
    assert time.monotonic() - started < 10
    # The coordinator was not interrupted: its call got the child's (empty) reply and it went on.
    call = [e for e in events if e.type == "agent.tool_use" and e.name == "message_agent"][0]
    result = [e for e in events if e.type == "agent.tool_result" and e.tool_use_id == call.id][0]
    assert not result.is_error and child.id in text(result)
    assert [e for e in events if e.type == "agent.message"]
    child_events = thread_events(h, session.id, child.id)
    assert "user.interrupt" in types(child_events) and stop_type(child_events[-1]) == "end_turn"
    assert [e.is_error for e in child_events if e.type == "agent.tool_result"] == [True]


def across_a_crash(tmp_path: Any, mock: Any, before: Callable[[Harness], Any]) -> tuple[Harness, Any, Any]:
    """Runs `before` against a RocksDB server, SIGKILLs the server, starts it again on the same
    data; returns the harness (its client on the new server), the new server process and what
    `before` returned."""
    from conftest import ServerProcess, new_key
    from harness_support import llm_vault, searchable

    key = new_key()
    data_dir = tmp_path / "data"
    searchable(data_dir)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        value = before(h)
    finally:
        assert process.proc is not None
        process.proc.kill()
        process.proc.wait()
        process.proc = None
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    h.client = process.client()
    return h, process, value


def test_a_crash_mid_delegation_recovers_the_session_and_its_child(tmp_path: Any, mock: Any) -> None:
    """A server killed while a child thread runs: on restart the coordinator's delegation call
    and the child's tool call are closed as after any cut turn, both go idle, and the session
    delegates again."""

    def before(h: Harness) -> tuple[Any, Any, Any]:
        coordinator, reviewer, _ = team(h)
        session = h.session(agent=coordinator)
        h.send(
            session.id,
            {
                "type": "user.message",
                "content": [{"type": "text", "text": delegate(reviewer, '<<mock:tool bash {"command": "sleep 60"}>>')}],
            },
        )

        def sleeping() -> Any:
            children = threads_of(h, session.id)[1:]
            if not children:
                return None
            events = thread_events(h, session.id, children[0].id)
            return children[0] if "agent.tool_use" in types(events) else None

        return session, reviewer, wait_for(sleeping)

    h, process, (session, reviewer, child) = across_a_crash(tmp_path, mock, before)
    try:

        def settled() -> Any:
            return h.client.beta.sessions.retrieve(session.id).status == "idle"

        wait_for(settled)
        events = h.events(session.id)
        call = [e for e in events if e.type == "agent.tool_use" and e.name == "message_agent"][0]
        closed = [e for e in events if e.type == "agent.tool_result" and e.tool_use_id == call.id]
        assert len(closed) == 1 and closed[0].is_error
        assert h.client.beta.sessions.threads.retrieve(child.id, session_id=session.id).status == "idle"
        child_events = thread_events(h, session.id, child.id)
        assert [e.is_error for e in child_events if e.type == "agent.tool_result"] == [True]
        assert stop_type(child_events[-1]) == "end_turn"
        # The thread goes on after the restart.
        again = h.turn(session.id, delegate(reviewer, "<<mock:text back>>", thread=child.id))
        assert [text(e) for e in again if e.type == "agent.thread_message_received"] == ["back"]
    finally:
        assert process.stop() == 0


def test_a_crash_while_a_child_waits_on_the_client_closes_its_calls(tmp_path: Any, mock: Any) -> None:
    """A server killed while a child's call waits on the client's confirmation: on restart the
    child's call is closed with the restart's error result, the child goes idle on both streams
    (its cross-posted call no longer waits), and a follow-up message runs it again."""

    def before(h: Harness) -> tuple[Any, Any, Any]:
        coordinator, _, tester = ask_team(h)
        session = h.session(agent=coordinator)
        h.send(
            session.id,
            {
                "type": "user.message",
                "content": [{"type": "text", "text": delegate(tester, '<<mock:tool bash {"command": "touch late"}>>')}],
            },
        )
        use = waiting_call(h, session.id)
        # Killed while the session is idle on its thread, its turn open.
        first = h.events(session.id)[0].id
        assert session_idle(h, session.id, first).stop_reason.event_ids == [use.id]
        return session, tester, use

    h, process, (session, tester, use) = across_a_crash(tmp_path, mock, before)
    try:
        thread = use.session_thread_id

        def settled() -> Any:
            events = h.events(session.id)
            done = events and stop_type(events[-1]) == "end_turn"
            return events if done and h.client.beta.sessions.retrieve(session.id).status == "idle" else None

        events = wait_for(settled)
        statuses = [stop_type(e) for e in events if e.type == "session.thread_status_idle" and e.session_thread_id == thread]
        assert statuses == ["requires_action", "end_turn"]
        # The coordinator's delegation call was closed by the restart.
        call = [e for e in events if e.type == "agent.tool_use" and e.name == "message_agent"][0]
        closed = [e for e in events if e.type == "agent.tool_result" and e.tool_use_id == call.id]
        assert len(closed) == 1 and closed[0].is_error
        child_events = thread_events(h, session.id, thread)
        closed = [e for e in child_events if e.type == "agent.tool_result"]
        assert [(c.tool_use_id, c.is_error) for c in closed] == [(use.id, True)]
        assert "restarted" in text(closed[0])
        assert stop_type(child_events[-1]) == "end_turn"
        assert h.client.beta.sessions.threads.retrieve(thread, session_id=session.id).status == "idle"
        # A late answer to the closed call is no answer of anything waiting.
        with pytest.raises(anthropic.BadRequestError):
            h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
        assert not (process.data_dir / "workspaces" / session.id / "late").exists()
        again = h.turn(session.id, delegate(tester, "<<mock:text back>>", thread=thread))
        assert [text(e) for e in again if e.type == "agent.thread_message_received"] == ["back"]
    finally:
        assert process.stop() == 0
