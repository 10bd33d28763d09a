"""Forking a session (our extension, `POST /v1/sessions/{id}/fork`, issue 13 item 6): the child's
log is the parent's up to the fork point, its workspace a copy of the parent's as of the last idle
at or before that point (snapshotted at every idle), and both go on independently. Official SDK (`client.post` for the extension), real server, native engine,
real sandbox, mock model."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    bash,
    harness,
    harness_server,
    mock,
    stop_type,
    tool_results,
    types,
)


def fork(h: Harness, session_id: str, **body: Any) -> Any:
    return h.client.post(f"/v1/sessions/{session_id}/fork", body=body, cast_to=object)


def public(events: list[Any]) -> list[tuple[str, str]]:
    return [(e.id, e.type) for e in events]


def read(h: Harness, session_id: str, path: str) -> str:
    """The output of `cat path` in the session's sandbox (one bash turn)."""
    events = h.turn(session_id, bash(f"cat {path} 2>&1 || true"))
    return str(tool_results(events)[-1].content)


def test_fork_at_the_last_event_copies_log_and_workspace_and_both_go_on(harness: Harness) -> None:
    parent = harness.session(metadata={"team": "infra"})
    harness.turn(parent.id, bash("echo from-parent > shared.txt"))
    parent_events = harness.events(parent.id)

    child = fork(harness, parent.id)
    assert child["id"] != parent.id and child["id"].startswith("sesn_")
    assert child["metadata"] == {"team": "infra", "forked_from": parent.id}
    assert child["status"] == "idle"
    assert child["agent"]["id"] == parent.agent.id
    # Retrievable through the SDK like any session, with the parent's log.
    retrieved = harness.client.beta.sessions.retrieve(child["id"])
    assert retrieved.usage.input_tokens == harness.client.beta.sessions.retrieve(parent.id).usage.input_tokens
    assert public(harness.events(child["id"])) == public(parent_events)

    # The child's sandbox sees the parent's file; its writes stay its own, and the parent's too.
    assert "from-parent" in read(harness, child["id"], "shared.txt")
    harness.turn(child["id"], bash("echo child-only > mine.txt"))
    harness.turn(parent.id, bash("echo parent-later > later.txt"))
    assert "No such file" in read(harness, parent.id, "mine.txt")
    assert "No such file" in read(harness, child["id"], "later.txt")
    # The parent's log is untouched by the fork and the child's turns.
    assert public(harness.events(parent.id))[: len(parent_events)] == public(parent_events)
    child_new = {e.id for e in harness.events(child["id"])[len(parent_events) :]}
    assert child_new and not child_new & {e.id for e in harness.events(parent.id)}


def test_fork_at_an_idle_restores_the_workspace_of_that_idle(harness: Harness) -> None:
    parent = harness.session()
    first = harness.turn(parent.id, bash("echo v1 > f.txt"))
    second = harness.turn(parent.id, bash("echo v2 > f.txt && echo two > g.txt"))
    assert first[-1].type == second[-1].type == "session.status_idle"

    # At the first idle: the workspace as that idle left it, although the parent changed it
    # since. (A fork at a later point of the log gets the same workspace, as of its last idle:
    # core's `fork::workspace_point`; a child forked at a queued message then runs it.)
    child = fork(harness, parent.id, at_event_id=first[-1].id)
    assert "v1" in read(harness, child["id"], "f.txt")
    assert "No such file" in read(harness, child["id"], "g.txt")
    # At the last idle (the default): the workspace as it is.
    latest = fork(harness, parent.id)
    assert "v2" in read(harness, latest["id"], "f.txt")
    assert "two" in read(harness, latest["id"], "g.txt")
    # The parent's workspace is untouched by the restores.
    assert "v2" in read(harness, parent.id, "f.txt")


def test_fork_at_an_idle_that_changed_nothing_restores_the_workspace_it_had(harness: Harness) -> None:
    # The second idle's workspace is the first's: its snapshot is recorded as naming the first
    # (no tree of its own), and a fork there must still find it.
    parent = harness.session()
    harness.turn(parent.id, bash("echo v1 > f.txt"))
    quiet = harness.turn(parent.id, "[[mock:text nothing changed]]")
    harness.turn(parent.id, bash("echo v2 > f.txt"))
    assert quiet[-1].type == "session.status_idle"

    child = fork(harness, parent.id, at_event_id=quiet[-1].id)
    assert "v1" in read(harness, child["id"], "f.txt")
    assert "v2" in read(harness, parent.id, "f.txt")


def test_fork_mid_log_gives_the_prefix(harness: Harness) -> None:
    parent = harness.session()
    first = harness.turn(parent.id, "[[mock:text first answer]]")
    harness.turn(parent.id, "[[mock:text second answer]]")
    idle = first[-1]
    assert idle.type == "session.status_idle"

    child = fork(harness, parent.id, at_event_id=idle.id)
    events = harness.events(child["id"])
    assert events[-1].id == idle.id
    assert public(events) == public(harness.events(parent.id))[: len(events)]
    assert "second answer" not in str([e.model_dump() for e in events])
    # The child's conversation continues from the fork point: the model sees the first turn only.
    harness.turn(child["id"], "[[mock:text third answer]]")
    body = str(harness.model_requests()[-1]["body"]["messages"])
    assert "first answer" in body and "second answer" not in body
    assert stop_type(harness.events(child["id"])[-1]) == "end_turn"


def test_fork_errors(harness: Harness) -> None:
    parent = harness.session()
    harness.turn(parent.id, "[[mock:text hi]]")
    with pytest.raises(anthropic.BadRequestError) as unknown_event:
        fork(harness, parent.id, at_event_id="sevt_doesnotexist")
    assert "at_event_id" in str(unknown_event.value)
    with pytest.raises(anthropic.BadRequestError) as not_an_id:
        fork(harness, parent.id, at_event_id="nope")
    assert "at_event_id" in str(not_an_id.value)
    with pytest.raises(anthropic.BadRequestError):
        fork(harness, parent.id, bogus=1)
    with pytest.raises(anthropic.NotFoundError):
        fork(harness, "sesn_doesnotexist")
    # A running parent cannot be forked.
    harness.send(parent.id, {"type": "user.message", "content": [{"type": "text", "text": "[[mock:delay 2s]]"}]})
    with pytest.raises(anthropic.ConflictError) as running:
        fork(harness, parent.id)
    assert "idle" in str(running.value)
