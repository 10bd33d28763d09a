"""SSE (API §8): `client.beta.sessions.events.stream(...)` with the SDK, and resume with
`Last-Event-ID` over raw httpx.

Waits are bounded only as a safety net (a watchdog closes a stream that never delivers); no
test asserts on timing.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator, Optional

import anthropic
import httpx
import pytest
from anthropic.types.beta.sessions import (
    BetaManagedAgentsSessionDeletedEvent,
    BetaManagedAgentsSessionStatusRunningEvent,
    BetaManagedAgentsUserMessageEvent,
)

from conftest import Server, user_message
from harness_support import Harness, harness, harness_server, mock  # noqa: F401  (fixtures)

SAFETY = 30.0


def collect(stream: Any, done: Callable[[list[Any]], bool]) -> list[Any]:
    """Events of an SDK stream until `done(events)`; a watchdog closes a stream that stalls."""
    events: list[Any] = []
    watchdog = threading.Timer(SAFETY, stream.close)
    watchdog.start()
    try:
        for event in stream:
            events.append(event)
            if done(events):
                break
    except Exception:
        if not watchdog.is_alive():
            pytest.fail(f"stream stalled; got {[e.type for e in events]}")
        raise
    finally:
        watchdog.cancel()
        stream.close()
    assert done(events), f"stream ended early; got {[getattr(e, 'type', e) for e in events]}"
    return events


def test_sdk_stream_delivers_typed_events_sent_after_connecting(client: anthropic.Anthropic, session) -> None:
    # An event sent before connecting is not replayed.
    client.beta.sessions.events.send(session.id, events=[{"type": "user.interrupt"}])
    stream = client.beta.sessions.events.stream(session.id)
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"].startswith("text/event-stream")
    assert stream.response.headers.get("request-id", "").startswith("req_")
    sent = client.beta.sessions.events.send(session.id, events=[user_message("streamed")])
    events = collect(stream, lambda evs: any(e.type == "session.status_running" for e in evs))
    assert [e.type for e in events] == ["user.message", "session.status_running"]
    echo = events[0]
    assert isinstance(echo, BetaManagedAgentsUserMessageEvent)
    assert echo.id == sent.data[0].id
    assert echo.content[0].text == "streamed"
    assert isinstance(events[1], BetaManagedAgentsSessionStatusRunningEvent)
    assert events[1].id and events[1].processed_at is not None
    listed = [e.id for e in client.beta.sessions.events.list(session.id)]
    assert listed[-2:] == [e.id for e in events]


def test_replayed_events_render_like_the_list(harness: Harness) -> None:
    """A `user.message` the runner processed after it was stored replays on the stream with its
    `processed_at`, exactly as the list shows it (issue 9): both render through core."""
    session = harness.session()
    # A first event before the message, so a resume after the first event replays the message.
    harness.send(session.id, {"type": "user.interrupt"})
    harness.turn(session.id, "[[mock:text processed]]")
    listed = harness.events(session.id)
    message = next(e for e in listed if e.type == "user.message")
    assert message.processed_at is not None
    first = harness.client.beta.sessions.events.list(session.id, limit=1)
    assert first.data[0].type == "user.interrupt" and first.next_page
    stream = harness.client.beta.sessions.events.stream(
        session.id, extra_headers={"Last-Event-ID": first.next_page}
    )
    replayed = collect(stream, lambda evs: len(evs) == len(listed) - 1)
    assert [e.model_dump() for e in replayed] == [e.model_dump() for e in listed[1:]]


def test_sdk_stream_ends_after_session_deleted(client: anthropic.Anthropic, session) -> None:
    stream = client.beta.sessions.events.stream(session.id)
    client.beta.sessions.delete(session.id)
    events = collect(stream, lambda evs: False if not evs else evs[-1].type == "session.deleted")
    assert [e.type for e in events] == ["session.deleted"]
    assert isinstance(events[0], BetaManagedAgentsSessionDeletedEvent)
    assert events[0].id and events[0].processed_at is not None


def test_sdk_stream_iteration_finishes_when_server_closes(client: anthropic.Anthropic, session) -> None:
    stream = client.beta.sessions.events.stream(session.id)
    client.beta.sessions.delete(session.id)
    events: list[Any] = []
    watchdog = threading.Timer(SAFETY, stream.close)
    watchdog.start()
    try:
        for event in stream:  # must end by itself after session.deleted
            events.append(event)
    finally:
        finished_by_server = watchdog.is_alive()
        watchdog.cancel()
    assert finished_by_server, "stream stayed open after session.deleted"
    assert [e.type for e in events] == ["session.deleted"]


def test_stream_errors(client: anthropic.Anthropic, session) -> None:
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.events.stream("sesn_01doesnotexist0000000000")
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.events.stream(session.id, event_deltas=["agent.tool_use"])
    assert "event_deltas" in err.value.message
    ok = client.beta.sessions.events.stream(session.id, event_deltas=["agent.message", "agent.thinking"])
    assert ok.response.status_code == 200
    ok.close()


# ---------------------------------------------------------------------------------------------
# Raw SSE


class Frame:
    def __init__(self) -> None:
        self.event: Optional[str] = None
        self.id: Optional[str] = None
        self.data: list[str] = []
        self.comment = False

    @property
    def json(self) -> Any:
        import json

        return json.loads("\n".join(self.data))


def frames(response: httpx.Response) -> Iterator[Frame]:
    frame = Frame()
    for line in response.iter_lines():
        if line == "":
            if frame.event or frame.data or frame.id or frame.comment:
                yield frame
            frame = Frame()
            continue
        if line.startswith(":"):
            frame.comment = True
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "event":
            frame.event = value
        elif field == "data":
            frame.data.append(value)
        elif field == "id":
            frame.id = value


class RawStream:
    """A raw SSE connection; reads event frames (not pings/comments) on demand."""

    def __init__(self, server: Server, session_id: str, last_event_id: Optional[str] = None, query: str = "") -> None:
        headers = {"x-api-key": server.key, "anthropic-version": "2023-06-01", "anthropic-beta": "managed-agents-2026-04-01"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.http = httpx.Client(timeout=httpx.Timeout(SAFETY))
        self.cm = self.http.stream("GET", f"{server.url}/v1/sessions/{session_id}/events/stream{query}", headers=headers)
        self.response = self.cm.__enter__()
        self.frames = frames(self.response)
        self.pings = 0
        self.comments = 0

    def next_event(self) -> Frame:
        deadline = time.monotonic() + SAFETY
        for frame in self.frames:
            if frame.comment and not frame.event:
                self.comments += 1
                continue
            if frame.event == "ping":
                self.pings += 1
                if time.monotonic() > deadline:
                    break
                continue
            return frame
        pytest.fail("no event frame arrived on the stream")

    def take(self, n: int) -> list[Frame]:
        return [self.next_event() for _ in range(n)]

    def close(self) -> None:
        self.cm.__exit__(None, None, None)
        self.http.close()


def test_raw_frames_have_event_data_and_id(server: Server, client: anthropic.Anthropic, session) -> None:
    raw = RawStream(server, session.id)
    try:
        assert raw.response.status_code == 200
        sent = client.beta.sessions.events.send(session.id, events=[user_message("one")])
        frame = raw.next_event()
        assert frame.event == "user.message"
        assert frame.json["type"] == "user.message"
        assert frame.json["id"] == sent.data[0].id
        assert frame.id
        frame = raw.next_event()
        assert frame.event == frame.json["type"] == "session.status_running"
    finally:
        raw.close()


def test_raw_stream_sends_pings_when_idle(server: Server, session) -> None:
    raw = RawStream(server, session.id)
    try:
        for frame in raw.frames:
            if frame.event == "ping":
                assert frame.json == {"type": "ping"}
                break
            assert frame.comment, f"unexpected frame {frame.event}"
    finally:
        raw.close()


def test_resume_with_last_event_id_no_gap_no_duplicate(server: Server, client: anthropic.Anthropic, session) -> None:
    client.beta.sessions.events.send(session.id, events=[user_message("before-1")])
    client.beta.sessions.events.send(session.id, events=[user_message("before-2")])
    first = RawStream(server, session.id)
    try:
        a = client.beta.sessions.events.send(session.id, events=[user_message("a")]).data[0]
        b = client.beta.sessions.events.send(session.id, events=[user_message("b")]).data[0]
        got_a = first.next_event()  # read only part of what is queued, then drop the connection
        assert got_a.json["id"] == a.id
    finally:
        first.close()
    c = client.beta.sessions.events.send(session.id, events=[user_message("c")]).data[0]
    second = RawStream(server, session.id, last_event_id=got_a.id)
    try:
        replayed = second.take(2)
        assert [f.json["id"] for f in replayed] == [b.id, c.id]
        d = client.beta.sessions.events.send(session.id, events=[user_message("d")]).data[0]
        live = second.next_event()
        assert live.json["id"] == d.id
        seen = [got_a] + replayed + [live]
    finally:
        second.close()
    # The stream's ids are those of the list endpoint, in the same order.
    listed = list(client.beta.sessions.events.list(session.id))
    listed_ids = [e.id for e in listed]
    start = listed_ids.index(a.id)
    assert listed_ids[start:] == [f.json["id"] for f in seen]
    # And its cursors are the list's cursors: paging after a frame's id lists what follows it.
    for i, frame in enumerate(seen):
        after = [e.id for e in client.beta.sessions.events.list(session.id, page=frame.id)]
        assert after == listed_ids[start + i + 1 :]
    # A list page's next_page, used as Last-Event-ID, resumes right after that page.
    page = client.beta.sessions.events.list(session.id, limit=start + 1)
    assert page.data[-1].id == a.id
    assert page.next_page == got_a.id
    third = RawStream(server, session.id, last_event_id=page.next_page)
    try:
        assert [f.json["id"] for f in third.take(3)] == [b.id, c.id, d.id]
    finally:
        third.close()


def test_resume_with_cursor_query_parameter(server: Server, client: anthropic.Anthropic, session) -> None:
    events = client.beta.sessions.events.send(
        session.id, events=[user_message("x"), user_message("y"), user_message("z")]
    ).data
    page = client.beta.sessions.events.list(session.id, limit=1)
    assert page.data[0].id == events[0].id
    raw = RawStream(server, session.id, query=f"?page={page.next_page}")
    try:
        got = [f.json for f in raw.take(3)]
        assert [e["id"] for e in got] == [events[1].id, events[2].id, got[2]["id"]]
        assert got[2]["type"] == "session.status_running"
    finally:
        raw.close()


def test_resume_from_a_list_cursor_replays_the_rest_once(server: Server, client: anthropic.Anthropic, session) -> None:
    sent = client.beta.sessions.events.send(session.id, events=[user_message(f"m{i}") for i in range(3)]).data
    listed = [e.id for e in client.beta.sessions.events.list(session.id)]
    page = client.beta.sessions.events.list(session.id, limit=1)
    # Resume from after the first event; then everything else arrives exactly once.
    raw = RawStream(server, session.id, last_event_id=page.next_page)
    try:
        got = [f.json["id"] for f in raw.take(len(listed) - 1)]
        assert got == listed[1:]
        more = client.beta.sessions.events.send(session.id, events=[user_message("live")]).data[0]
        assert raw.next_event().json["id"] == more.id
    finally:
        raw.close()
    assert listed[0] == sent[0].id


def test_resume_with_bad_cursor_is_400(server: Server, session) -> None:
    response = httpx.get(
        f"{server.url}/v1/sessions/{session.id}/events/stream",
        headers={"x-api-key": server.key, "Last-Event-ID": "garbage"},
        timeout=SAFETY,
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
