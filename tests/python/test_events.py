"""Session events (API §7): send and list through `client.beta.sessions.events`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import anthropic
import pytest

from conftest import user_message

MISSING = "sesn_01doesnotexist0000000000"


def test_send_user_message_is_echoed_with_ids(client: anthropic.Anthropic, session) -> None:
    sent = client.beta.sessions.events.send(session.id, events=[user_message("hi"), user_message("there")])
    assert [e.type for e in sent.data] == ["user.message", "user.message"]
    assert [e.content[0].text for e in sent.data] == ["hi", "there"]
    ids = [e.id for e in sent.data]
    assert all(i.startswith("sevt_") for i in ids)
    assert len(set(ids)) == 2
    # user.message stays queued until a runner processes it.
    assert all(e.processed_at is None for e in sent.data)
    listed = list(client.beta.sessions.events.list(session.id))
    assert [e.id for e in listed[:2]] == ids
    assert [e.type for e in listed] == ["user.message", "user.message", "session.status_running"]
    running = listed[2]
    assert running.processed_at is not None
    assert client.beta.sessions.retrieve(session.id).status == "running"


def test_send_other_sendable_events(client: anthropic.Anthropic, session) -> None:
    sent = client.beta.sessions.events.send(
        session.id,
        events=[
            {"type": "user.define_outcome", "description": "a report", "rubric": {"type": "text", "content": "is good"}},
            {"type": "system.message", "content": [{"type": "text", "text": "be terse"}]},
            {"type": "user.interrupt"},
        ],
    )
    types = [e.type for e in sent.data]
    assert types == ["user.define_outcome", "system.message", "user.interrupt"]
    outcome = sent.data[0]
    assert outcome.outcome_id and outcome.outcome_id.startswith("outc_")
    assert outcome.processed_at is not None  # processed at once
    assert sent.data[1].content[0].text == "be terse"
    evaluations = client.beta.sessions.retrieve(session.id).outcome_evaluations
    assert [o.outcome_id for o in evaluations] == [outcome.outcome_id]


@pytest.mark.parametrize(
    "events, field",
    [
        ([], "events"),
        ([{"type": "user.message", "content": []}], "content"),
        ([{"type": "user.message"}], "content"),
        ([{"type": "no.such_event"}], "type"),
        ([{"type": "system.message", "content": []}], "content"),
        ([{"type": "user.tool_confirmation", "tool_use_id": "sevt_01nothing00000000000000", "result": "allow"}], "tool_use_id"),
        ([{"type": "user.custom_tool_result", "custom_tool_use_id": "sevt_01nothing0000000000000"}], "custom_tool_use_id"),
        ([{"type": "user.tool_result", "tool_use_id": "sevt_01nothing00000000000000"}], "tool_use_id"),
        ([user_message("ok"), {"type": "user.tool_confirmation", "tool_use_id": "sevt_01nothing00000000000000", "result": "maybe"}], "result"),
    ],
    ids=[
        "empty-batch",
        "empty-content",
        "missing-content",
        "unknown-type",
        "empty-system-message",
        "confirmation-for-non-pending-tool",
        "custom-result-for-non-pending-tool",
        "tool-result-for-non-pending-tool",
        "bad-confirmation-result",
    ],
)
def test_invalid_sends_are_400_and_write_nothing(client: anthropic.Anthropic, session, events, field) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.events.send(session.id, events=events)
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert field in err.value.message
    assert list(client.beta.sessions.events.list(session.id)) == []
    assert client.beta.sessions.retrieve(session.id).status == "idle"


def test_send_to_archived_session_is_409(counted, session) -> None:
    client, counter = counted
    client.beta.sessions.archive(session.id)
    path = f"/v1/sessions/{session.id}/events"
    with pytest.raises(anthropic.ConflictError) as err:
        client.beta.sessions.events.send(session.id, events=[user_message("late")])
    assert "archived" in err.value.message
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert counter.count("POST", path) == 1


def test_send_to_unknown_session_is_404(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.send(MISSING, events=[user_message("x")])


def test_list_order_types_and_pages(client: anthropic.Anthropic, session) -> None:
    sent = []
    for i in range(5):
        sent += client.beta.sessions.events.send(session.id, events=[user_message(f"m{i}")]).data
    all_events = list(client.beta.sessions.events.list(session.id))
    # m0, status_running, m1..m4 (the session is running after the first message).
    assert [e.type for e in all_events] == ["user.message", "session.status_running"] + ["user.message"] * 4
    messages = [e.id for e in all_events if e.type == "user.message"]
    assert messages == [e.id for e in sent]
    desc = list(client.beta.sessions.events.list(session.id, order="desc"))
    assert [e.id for e in desc] == [e.id for e in reversed(all_events)]
    only = list(client.beta.sessions.events.list(session.id, types=["session.status_running"]))
    assert [e.type for e in only] == ["session.status_running"]
    both = list(client.beta.sessions.events.list(session.id, types=["session.status_running", "user.message"]))
    assert [e.id for e in both] == [e.id for e in all_events]
    # Explicit pages: cursors chain without gap or duplicate, in both orders.
    for order, expected in (("asc", all_events), ("desc", list(reversed(all_events)))):
        seen = []
        page = client.beta.sessions.events.list(session.id, limit=2, order=order)
        while True:
            seen += [e.id for e in page.data]
            if not page.next_page:
                break
            page = client.beta.sessions.events.list(session.id, limit=2, order=order, page=page.next_page)
        assert seen == [e.id for e in expected]
    # Auto-pagination with small pages.
    assert [e.id for e in client.beta.sessions.events.list(session.id, limit=2)] == [e.id for e in all_events]


def test_list_created_at_filters(client: anthropic.Anthropic, session) -> None:
    client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
    past = datetime.now(timezone.utc) - timedelta(days=1)
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert len(list(client.beta.sessions.events.list(session.id, created_at_gte=past))) == 1
    assert list(client.beta.sessions.events.list(session.id, created_at_gt=future)) == []
    assert len(list(client.beta.sessions.events.list(session.id, created_at_lt=future, created_at_gt=past))) == 1
    assert list(client.beta.sessions.events.list(session.id, created_at_lte=past)) == []


def test_list_invalid_params(client: anthropic.Anthropic, session) -> None:
    client.beta.sessions.events.send(session.id, events=[user_message("a"), user_message("b")])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.list(session.id, types=["no.such_type"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.list(session.id, types=["session.deleted"])
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.list(session.id, order="random")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.list(session.id, page="garbage")
    # A cursor encodes its order: reusing it with the other order is a 400.
    page = client.beta.sessions.events.list(session.id, limit=1, order="asc")
    assert page.next_page
    with pytest.raises(anthropic.BadRequestError):
        client.beta.sessions.events.list(session.id, limit=1, order="desc", page=page.next_page)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.list(MISSING)


def test_interrupt_on_idle_is_persisted_noop(client: anthropic.Anthropic, session) -> None:
    sent = client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
    assert sent.data[0].type == "user.interrupt"
    assert sent.data[0].processed_at is not None
    assert client.beta.sessions.retrieve(session.id).status == "idle"
    assert [e.id for e in client.beta.sessions.events.list(session.id)] == [sent.data[0].id]
