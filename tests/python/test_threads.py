"""Session threads (API §10) through the official SDK: every session has its primary thread.

The primary thread (`sthr_…`, `parent_thread_id: null`) is the session's own agent loop: list
(with `statuses[]`), retrieve, its events list and its stream are the session's; archiving it
alone is refused (it is archived with its session). Child threads (a coordinator's
delegations) are tested with the runner in `test_harness_threads.py`.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import anthropic
import pytest

from conftest import user_message


def test_a_session_lists_its_primary_thread(client: anthropic.Anthropic, session: Any) -> None:
    threads = client.beta.sessions.threads.list(session.id)
    assert len(threads.data) == 1
    primary = threads.data[0]
    assert primary.type == "session_thread"
    assert primary.id.startswith("sthr_")
    assert primary.session_id == session.id
    assert primary.parent_thread_id is None
    assert primary.workflow_run_id is None
    assert primary.status == "idle"
    assert primary.agent.id == session.agent.id
    assert primary.agent.version == session.agent.version
    assert primary.stats is None and primary.usage is None  # no transition yet
    assert primary.archived_at is None
    assert threads.next_page is None

    again = client.beta.sessions.threads.retrieve(primary.id, session_id=session.id)
    assert again.id == primary.id and again.created_at == primary.created_at

    assert [t.id for t in client.beta.sessions.threads.list(session.id, statuses=["idle"]).data] == [primary.id]
    assert client.beta.sessions.threads.list(session.id, statuses=["running", "terminated"]).data == []


def test_thread_errors_use_the_envelope(client: anthropic.Anthropic, session: Any, make_session: Callable[..., Any]) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.threads.list(session.id, statuses=["sleeping"])
    assert err.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve("sthr_nosuchthread", session_id=session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve("not-a-thread", session_id=session.id)
    # Another session's primary thread is not this session's.
    other = make_session()
    other_primary = client.beta.sessions.threads.list(other.id).data[0]
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.retrieve(other_primary.id, session_id=session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.events.list(other_primary.id, session_id=session.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.sessions.threads.list("sesn_nosuchsession")

    primary = client.beta.sessions.threads.list(session.id).data[0]
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.sessions.threads.archive(primary.id, session_id=session.id)
    assert "primary thread" in err.value.message
    assert client.beta.sessions.threads.retrieve(primary.id, session_id=session.id).archived_at is None


def test_primary_thread_events_and_stream_are_the_sessions(client: anthropic.Anthropic, session: Any) -> None:
    primary = client.beta.sessions.threads.list(session.id).data[0]
    seen: list[Any] = []
    opened = threading.Event()

    def read() -> None:
        with client.beta.sessions.threads.events.stream(primary.id, session_id=session.id) as stream:
            opened.set()
            for event in stream:
                seen.append(event)
                if len(seen) == 2:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert opened.wait(10)
    sent = client.beta.sessions.events.send(session.id, events=[user_message("one"), user_message("two")])
    reader.join(20)
    assert not reader.is_alive()
    assert [e.id for e in seen] == [e.id for e in sent.data]

    listed = client.beta.sessions.threads.events.list(primary.id, session_id=session.id)
    assert [e.id for e in listed.data] == [e.id for e in client.beta.sessions.events.list(session.id).data]
    assert {e.id for e in sent.data} <= {e.id for e in listed.data}


def test_archiving_the_session_archives_its_primary_thread(client: anthropic.Anthropic, session: Any) -> None:
    client.beta.sessions.archive(session.id)
    primary = client.beta.sessions.threads.list(session.id).data[0]
    assert primary.archived_at is not None
