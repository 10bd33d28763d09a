"""Idempotent sends (our extension): `POST /v1/sessions/{id}/events` with an `Idempotency-Key`
header, sent through the official SDK's `extra_headers`. A retry with the same key and body
answers the first response and appends nothing; another body under the key is a 409; the key
table lives in the session's log, so it survives a restart and is exact under concurrency."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import anthropic
import pytest

from conftest import ServerProcess, new_key, user_message


def key() -> str:
    return f"idem-{uuid.uuid4()}"


def send(client: anthropic.Anthropic, session_id: str, events: list[dict[str, Any]], k: str | None) -> Any:
    headers = {"Idempotency-Key": k} if k is not None else {}
    return client.beta.sessions.events.send(session_id, events=events, extra_headers=headers)


def messages(client: anthropic.Anthropic, session_id: str) -> list[Any]:
    return [e for e in client.beta.sessions.events.list(session_id) if e.type == "user.message"]


def test_same_key_twice_appends_once_and_answers_the_same(client, session) -> None:
    k = key()
    first = send(client, session.id, [user_message("once")], k)
    again = send(client, session.id, [user_message("once")], k)
    assert again.model_dump() == first.model_dump()
    assert [e.id for e in messages(client, session.id)] == [first.data[0].id]


def test_key_answers_a_batch_with_every_event(client, session) -> None:
    k = key()
    events = [user_message("a"), user_message("b"), {"type": "user.interrupt"}]
    first = send(client, session.id, events, k)
    assert len(first.data) == 3
    again = send(client, session.id, events, k)
    assert again.model_dump() == first.model_dump()
    assert len(messages(client, session.id)) == 2


def test_concurrent_sends_with_one_key_append_once(client, session) -> None:
    k = key()
    answers: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def one() -> None:
        try:
            start.wait()
            answers.append(send(client, session.id, [user_message("race")], k).model_dump())
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) == 8 and all(a == answers[0] for a in answers)
    listed = messages(client, session.id)
    assert [e.id for e in listed] == [answers[0]["data"][0]["id"]]


def test_different_body_under_a_key_is_409(client, session) -> None:
    k = key()
    send(client, session.id, [user_message("first")], k)
    with pytest.raises(anthropic.ConflictError) as err:
        send(client, session.id, [user_message("second")], k)
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == f'Idempotency-Key "{k}" was used with a different request body'
    assert err.value.response.headers.get("x-should-retry") == "false"
    assert len(messages(client, session.id)) == 1


def test_keys_are_per_session(client, make_session) -> None:
    a, b = make_session(), make_session()
    k = key()
    first = send(client, a.id, [user_message("x")], k)
    other = send(client, b.id, [user_message("x")], k)
    assert first.data[0].id != other.data[0].id
    assert len(messages(client, a.id)) == 1 and len(messages(client, b.id)) == 1


def test_without_a_key_every_send_appends(client, session) -> None:
    one = send(client, session.id, [user_message("same")], None)
    two = send(client, session.id, [user_message("same")], None)
    assert one.data[0].id != two.data[0].id
    assert len(messages(client, session.id)) == 2


@pytest.mark.parametrize("bad", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_bad_key_is_400(client, session, bad) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        send(client, session.id, [user_message("bad key")], bad)
    assert "Idempotency-Key" in err.value.message
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "invalid_request_error"
    assert messages(client, session.id) == []


def test_longest_key_and_punctuation_are_accepted(client, session) -> None:
    k = "~ !" + "k" * 252
    first = send(client, session.id, [user_message("long")], k)
    assert send(client, session.id, [user_message("long")], k).model_dump() == first.model_dump()


def test_restart_keeps_the_key_table(tmp_path) -> None:
    """RocksDB only: the memory store does not survive a restart."""
    data, api_key = tmp_path / "data", new_key()
    k = key()
    first_server = ServerProcess("rocksdb", data, api_key, tmp_path / "server.log").start()
    try:
        c = first_server.client()
        agent = c.beta.agents.create(name=f"idem-{uuid.uuid4()}", model="claude-sonnet-4-6")
        env = c.beta.environments.create(name=f"idem-{uuid.uuid4()}")
        session = c.beta.sessions.create(agent=agent.id, environment_id=env.id)
        first = send(c, session.id, [user_message("durable")], k)
    finally:
        assert first_server.stop() == 0, first_server.log_tail()
    second_server = ServerProcess("rocksdb", data, api_key, tmp_path / "server.log").start()
    try:
        c = second_server.client()
        again = send(c, session.id, [user_message("durable")], k)
        assert again.model_dump() == first.model_dump()
        with pytest.raises(anthropic.ConflictError):
            send(c, session.id, [user_message("changed")], k)
        assert [e.id for e in messages(c, session.id)] == [first.data[0].id]
    finally:
        assert second_server.stop() == 0, second_server.log_tail()
