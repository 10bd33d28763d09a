"""The self-hosted environments' work queue (API §5.3) through the official SDK's
`client.beta.environments.work.*`: a session on a `self_hosted` environment enqueues a work
item that a worker holding the **environment key** polls, acks and heartbeats.

Environment keys are created with `managed-agents keys create --environment` (RocksDB, server
stopped), so this module runs its own RocksDB server: start, create the environment, stop,
create the key, start again.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx2
import pytest

from conftest import ServerProcess, binary, new_key, unique


class Queue:
    def __init__(self, process: ServerProcess, env_id: str, env_key: str, other_env_id: str):
        self.process = process
        self.env_id = env_id
        self.env_key = env_key
        self.other_env_id = other_env_id

    @property
    def api(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.process.url, api_key=self.process.key, max_retries=0)

    @property
    def worker(self) -> anthropic.Anthropic:
        # Bearer, as the SDK's worker sends it.
        return anthropic.Anthropic(
            base_url=self.process.url, api_key=None, auth_token=self.env_key, max_retries=0
        )

    def session(self) -> Any:
        agent = self.api.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
        return self.api.beta.sessions.create(agent=agent.id, environment_id=self.env_id)

    def drain(self) -> None:
        """Stops every live item, so each test starts from an empty queue."""
        w = self.worker.beta.environments.work
        for item in w.list(environment_id=self.env_id):
            if item.state != "stopped":
                w.stop(item.id, environment_id=self.env_id, force=True)


def create_env_key(data_dir: Path, env_id: str) -> str:
    out = subprocess.run(
        [str(binary()), "keys", "create", "--data-dir", str(data_dir), "--environment", env_id],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    key_id, env, key = out.stdout.strip().splitlines()[-1].split("\t")
    assert key_id.startswith("apikey_") and env == env_id and key.startswith("sk-ma-env01-")
    return key


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queue]:
    base = tmp_path_factory.mktemp("work-queue")
    data_dir = base / "data"
    process = ServerProcess("rocksdb", data_dir, new_key(), base / "server.log").start()
    api = anthropic.Anthropic(base_url=process.url, api_key=process.key)
    env = api.beta.environments.create(name=unique("selfhosted"), config={"type": "self_hosted"})
    other = api.beta.environments.create(name=unique("selfhosted-b"), config={"type": "self_hosted"})
    cloud = api.beta.environments.create(name=unique("cloud"))
    assert process.stop() == 0
    env_key = create_env_key(data_dir, env.id)
    refused = subprocess.run(
        [str(binary()), "keys", "create", "--data-dir", str(data_dir), "--environment", cloud.id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "not self_hosted" in refused.stderr
    listed = subprocess.run(
        [str(binary()), "keys", "list", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert any(line.endswith("\t" + env.id) for line in listed.splitlines()), listed
    process.start()
    yield Queue(process, env.id, env_key, other.id)
    assert process.stop() == 0, process.log_tail()


@pytest.fixture
def q(queue: Queue) -> Queue:
    queue.drain()
    return queue


def test_a_self_hosted_session_enqueues_one_work_item_that_a_worker_polls_acks_and_heartbeats(q: Queue) -> None:
    session = q.session()
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id, anthropic_worker_id="w1")
    assert item is not None
    assert item.id.startswith("work_") and item.type == "work"
    assert item.environment_id == q.env_id
    assert (item.data.type, item.data.id) == ("session", session.id)
    assert item.state == "queued" and item.secret is None and item.acknowledged_at is None
    # Delivered and not acked: nobody else gets it within the reclaim window.
    assert w.poll(environment_id=q.env_id, anthropic_worker_id="w2") is None

    acked = w.ack(item.id, environment_id=q.env_id)
    assert acked.state == "starting" and acked.acknowledged_at is not None
    beat = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT")
    assert beat.type == "work_heartbeat" and beat.state == "active"
    assert beat.lease_extended is True and beat.ttl_seconds == 90 and beat.last_heartbeat
    again = w.heartbeat(
        item.id, environment_id=q.env_id, expected_last_heartbeat=beat.last_heartbeat, desired_ttl_seconds=30
    )
    assert again.ttl_seconds == 30 and again.last_heartbeat > beat.last_heartbeat

    shown = q.api.beta.environments.work.retrieve(item.id, environment_id=q.env_id)
    assert shown.state == "active" and shown.started_at is not None
    assert shown.latest_heartbeat_at == again.last_heartbeat and shown.secret is None
    listed = [i.id for i in w.list(environment_id=q.env_id)]
    assert item.id in listed


def test_two_heartbeats_with_the_same_expected_value_one_wins_the_other_gets_412(q: Queue) -> None:
    q.session()
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id)
    assert item is not None
    w.ack(item.id, environment_id=q.env_id)
    first = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT")
    results: list[Any] = []
    barrier = threading.Barrier(2)

    def beat() -> None:
        barrier.wait()
        try:
            results.append(
                w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat=first.last_heartbeat)
            )
        except anthropic.APIStatusError as e:
            results.append(e)

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    err = lost[0]
    assert err.status_code == 412
    assert type(err).__name__ == "BetaHeartbeatPreconditionFailedError"
    details = err.body["error"]["details"]
    assert details["error_code"] == "heartbeat_precondition_failed"
    assert details["current_state"] == {
        "last_heartbeat": won[0].last_heartbeat,
        "lease_extended": False,
        "state": "active",
        "ttl_seconds": 90,
    }


def test_a_lapsed_lease_is_requeued_and_the_old_holder_loses_it(q: Queue) -> None:
    session = q.session()
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id, anthropic_worker_id="old")
    assert item is not None
    w.ack(item.id, environment_id=q.env_id)
    beat = w.heartbeat(
        item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT", desired_ttl_seconds=1
    )
    assert w.poll(environment_id=q.env_id) is None
    time.sleep(1.2)
    again = w.poll(environment_id=q.env_id, anthropic_worker_id="new")
    assert again is not None and again.id == item.id and again.data.id == session.id
    assert again.state == "queued" and again.latest_heartbeat_at is None
    with pytest.raises(anthropic.PreconditionFailedError) as lost:
        w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat=beat.last_heartbeat)
    assert lost.value.body["error"]["details"]["current_state"]["state"] == "queued"
    assert lost.value.body["error"]["details"]["current_state"]["last_heartbeat"] is None


def test_un_acked_items_are_redelivered_after_reclaim_older_than_ms(q: Queue) -> None:
    q.session()
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id)
    assert item is not None
    assert w.poll(environment_id=q.env_id, reclaim_older_than_ms=60_000) is None
    time.sleep(0.3)
    again = w.poll(environment_id=q.env_id, reclaim_older_than_ms=200)
    assert again is not None and again.id == item.id


def test_concurrent_polls_never_hand_one_item_to_two_workers(q: Queue) -> None:
    sessions = {q.session().id for _ in range(3)}
    got: list[Any] = []
    barrier = threading.Barrier(6)

    def poll(n: int) -> None:
        client = q.worker
        barrier.wait()
        got.append(client.beta.environments.work.poll(environment_id=q.env_id, anthropic_worker_id=f"w{n}"))

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items = [i for i in got if i is not None]
    assert sorted(i.data.id for i in items) == sorted(sessions)
    assert len({i.id for i in items}) == 3 and got.count(None) == 3


def test_poll_parameters_block_ms_and_null_body(q: Queue) -> None:
    w = q.worker.beta.environments.work
    assert w.poll(environment_id=q.env_id) is None
    for bad in (0, 1000):
        with pytest.raises(anthropic.BadRequestError):
            w.poll(environment_id=q.env_id, block_ms=bad)
    started = time.monotonic()
    assert w.poll(environment_id=q.env_id, block_ms=300) is None
    assert time.monotonic() - started >= 0.25
    # Work arriving while a poll blocks is handed over before block_ms runs out.
    got: list[Any] = []
    poller = threading.Thread(target=lambda: got.append(w.poll(environment_id=q.env_id, block_ms=999)))
    poller.start()
    time.sleep(0.1)
    session = q.session()
    poller.join()
    assert got and got[0] is not None and got[0].data.id == session.id
    raw = httpx2.get(
        f"{q.process.url}/v1/environments/{q.env_id}/work/poll",
        headers={"authorization": f"Bearer {q.env_key}"},
    )
    assert raw.status_code == 200 and raw.text == "null"


def test_stop_graceful_then_forced(q: Queue) -> None:
    q.session()
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id)
    assert item is not None
    w.ack(item.id, environment_id=q.env_id)
    beat = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT")
    stopping = q.api.beta.environments.work.stop(item.id, environment_id=q.env_id)
    assert stopping.state == "stopping" and stopping.stop_requested_at is not None
    seen = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat=beat.last_heartbeat)
    assert (seen.state, seen.lease_extended) == ("stopping", False)
    stopped = w.stop(item.id, environment_id=q.env_id, force=True)
    assert stopped.state == "stopped" and stopped.stopped_at is not None
    with pytest.raises(anthropic.ConflictError):
        w.stop(item.id, environment_id=q.env_id, force=True)
    assert w.poll(environment_id=q.env_id) is None


def test_metadata_update_and_stats(q: Queue) -> None:
    session = q.session()
    api = q.api.beta.environments.work
    empty = api.stats(environment_id=q.env_id)
    assert empty.type == "work_queue_stats" and (empty.depth, empty.pending) == (1, 0)
    assert empty.oldest_queued_at is not None
    w = q.worker.beta.environments.work
    item = w.poll(environment_id=q.env_id, anthropic_worker_id="stats-worker")
    assert item is not None and item.data.id == session.id
    stats = w.stats(environment_id=q.env_id)
    assert (stats.depth, stats.pending) == (0, 1)
    assert stats.workers_polling is not None and stats.workers_polling >= 1
    updated = api.update(item.id, environment_id=q.env_id, metadata={"team": "a", "gone": None})
    assert updated.metadata == {"team": "a"}
    w.ack(item.id, environment_id=q.env_id)
    after = api.stats(environment_id=q.env_id)
    assert (after.depth, after.pending, after.oldest_queued_at) == (0, 0, None)


def test_auth_split(q: Queue) -> None:
    session = q.session()
    api = q.api
    worker = q.worker
    # Worker-only endpoints refuse the API key.
    with pytest.raises(anthropic.PermissionDeniedError):
        api.beta.environments.work.poll(environment_id=q.env_id)
    item = worker.beta.environments.work.poll(environment_id=q.env_id)
    assert item is not None
    with pytest.raises(anthropic.PermissionDeniedError):
        api.beta.environments.work.ack(item.id, environment_id=q.env_id)
    with pytest.raises(anthropic.PermissionDeniedError):
        api.beta.environments.work.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT")
    with pytest.raises(anthropic.PermissionDeniedError):
        api.beta.environments.work.list(environment_id=q.env_id)
    # API-key-only endpoints refuse the environment key.
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.environments.work.retrieve(item.id, environment_id=q.env_id)
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.environments.work.update(item.id, environment_id=q.env_id, metadata={"a": "b"})
    # The environment key reaches nothing else...
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.agents.list()
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.sessions.list()
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.environments.retrieve(q.env_id)
    with pytest.raises(anthropic.PermissionDeniedError):
        worker.beta.sessions.archive(session.id)
    # ... not another environment's queue or sessions ...
    with pytest.raises(anthropic.NotFoundError):
        worker.beta.environments.work.poll(environment_id=q.other_env_id)
    agent = api.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
    elsewhere = api.beta.sessions.create(agent=agent.id, environment_id=q.other_env_id)
    with pytest.raises(anthropic.NotFoundError):
        worker.beta.sessions.retrieve(elsewhere.id)
    with pytest.raises(anthropic.NotFoundError):
        worker.beta.sessions.events.list(elsewhere.id)
    with pytest.raises(anthropic.NotFoundError):
        worker.beta.sessions.events.send(
            elsewhere.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "x"}]}]
        )
    # ... but the sessions it serves: retrieve and the event endpoints.
    assert worker.beta.sessions.retrieve(session.id).id == session.id
    sent = worker.beta.sessions.events.send(
        session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": "hi"}]}]
    )
    assert sent.data[0].type == "user.message"
    assert any(e.type == "user.message" for e in worker.beta.sessions.events.list(session.id))
    # Both keys: stop and stats.
    assert worker.beta.environments.work.stats(environment_id=q.env_id).type == "work_queue_stats"
    assert api.beta.environments.work.stats(environment_id=q.env_id).type == "work_queue_stats"
    assert api.beta.environments.work.stop(item.id, environment_id=q.env_id, force=True).state == "stopped"
    # A cloud environment's sessions enqueue nothing.
    cloud = api.beta.environments.create(name=unique("cloud"))
    api.beta.sessions.create(agent=agent.id, environment_id=cloud.id)
    assert api.beta.environments.work.stats(environment_id=cloud.id).depth == 0


def test_the_sdk_worker_helper_unmodified_serves_a_session_to_end_turn(tmp_path: Path) -> None:
    """`client.beta.environments.work.worker(...)` (the SDK's own self-hosted worker) against a
    server whose runner drives the native engine with the mock model: the server leaves the
    agent's built-in tool call open, the worker (environment key) claims the work item, runs
    the tool in its own workdir and answers with `user.tool_result`, and the turn ends."""
    import asyncio

    from harness_support import MockModel, bash, llm_vault, searchable

    searchable(tmp_path)
    mock = MockModel(tmp_path / "mock.log").start()
    data_dir = tmp_path / "data"
    process = ServerProcess("rocksdb", data_dir, new_key(), tmp_path / "server.log", runner=True).start()
    loop = asyncio.new_event_loop()
    worker_task: Any = None
    thread: Any = None
    try:
        api = process.client()
        vault = llm_vault(api, mock.url)
        agent = api.beta.agents.create(
            name=unique("agent"), model="claude-sonnet-4-6", tools=[{"type": "agent_toolset_20260401"}]
        )
        env = api.beta.environments.create(name=unique("selfhosted"), config={"type": "self_hosted"})
        assert process.stop() == 0
        env_key = create_env_key(data_dir, env.id)
        process.start()
        api = process.client()
        session = api.beta.sessions.create(agent=agent.id, environment_id=env.id, vault_ids=[vault.id])

        workdir = tmp_path / "worker"
        workdir.mkdir()
        parent = anthropic.AsyncAnthropic(base_url=process.url, api_key="unused-by-the-worker")
        worker = parent.beta.environments.work.worker(
            environment_id=env.id,
            environment_key=env_key,
            workdir=str(workdir),
            max_idle=2.0,
            memory_sync_interval=None,
        )
        async def serve() -> None:
            try:
                await worker.run()
            except asyncio.CancelledError:
                pass

        worker_task = loop.create_task(serve())
        thread = threading.Thread(target=loop.run_until_complete, args=(worker_task,), daemon=True)
        thread.start()

        marker = unique("by-the-worker")
        sent = api.beta.sessions.events.send(
            session.id,
            events=[{"type": "user.message", "content": [{"type": "text", "text": bash(f"echo {marker} > notes.txt && echo done")}]}],
        ).data[0]
        deadline = time.monotonic() + 60
        while True:
            events = list(api.beta.sessions.events.list(session.id, limit=1000))
            ids = [e.id for e in events]
            tail = events[ids.index(sent.id) :]
            idle = [e for e in tail if e.type == "session.status_idle"]
            if idle and idle[-1].stop_reason.type == "end_turn":
                break
            assert time.monotonic() < deadline, [e.type for e in tail]
            time.sleep(0.1)
        kinds = [e.type for e in tail]
        use = next(e for e in tail if e.type == "agent.tool_use")
        result = next(e for e in tail if e.type == "user.tool_result")
        assert use.name == "bash" and result.tool_use_id == use.id and not result.is_error
        assert "agent.tool_result" not in kinds, "the server ran the tool itself"
        assert kinds.index("agent.tool_use") < kinds.index("user.tool_result") < kinds.index("agent.message")
        assert [e for e in tail if e.type == "session.status_idle"][0].stop_reason.type == "requires_action"
        message = next(e for e in tail if e.type == "agent.message")
        assert "done" in "".join(b.text for b in message.content)
        # The tool ran on the worker's side, in its per-session workdir.
        written = list(workdir.rglob("notes.txt"))
        assert written and written[0].read_text().strip() == marker
        # The worker served the item and force-stopped it once the session stayed idle.
        as_worker = anthropic.Anthropic(base_url=process.url, api_key=None, auth_token=env_key)
        stopped_deadline = time.monotonic() + 30
        while True:
            states = [i.state for i in as_worker.beta.environments.work.list(environment_id=env.id)]
            if states == ["stopped"]:
                break
            assert time.monotonic() < stopped_deadline, states
            time.sleep(0.2)
    finally:
        if worker_task is not None:
            loop.call_soon_threadsafe(worker_task.cancel)
            thread.join(10)
        process.stop()
        mock.stop()


def test_a_user_message_after_the_worker_stopped_the_item_enqueues_a_new_one(q: Queue) -> None:
    session = q.session()
    w = q.worker.beta.environments.work
    first = w.poll(environment_id=q.env_id)
    assert first is not None
    message = {"type": "user.message", "content": [{"type": "text", "text": "again"}]}
    # While the item is live, input enqueues nothing more.
    q.api.beta.sessions.events.send(session.id, events=[message])
    assert q.api.beta.environments.work.stats(environment_id=q.env_id).depth == 0
    w.ack(first.id, environment_id=q.env_id)
    w.stop(first.id, environment_id=q.env_id, force=True)
    q.api.beta.sessions.events.send(session.id, events=[message])
    second = w.poll(environment_id=q.env_id)
    assert second is not None and second.id != first.id and second.data.id == session.id
    # Racing messages enqueue one item.
    w.ack(second.id, environment_id=q.env_id)
    w.stop(second.id, environment_id=q.env_id, force=True)
    threads = [
        threading.Thread(target=lambda: q.api.beta.sessions.events.send(session.id, events=[message]))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.api.beta.environments.work.stats(environment_id=q.env_id).depth == 1


def test_archiving_or_deleting_the_session_stops_its_work_item(q: Queue) -> None:
    w = q.worker.beta.environments.work
    held = q.session()
    item = w.poll(environment_id=q.env_id)
    assert item is not None and item.data.id == held.id
    w.ack(item.id, environment_id=q.env_id)
    beat = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat="NO_HEARTBEAT")
    q.api.beta.sessions.archive(held.id)
    seen = w.heartbeat(item.id, environment_id=q.env_id, expected_last_heartbeat=beat.last_heartbeat)
    assert (seen.state, seen.lease_extended) == ("stopping", False)

    queued = q.session()
    q.api.beta.sessions.delete(queued.id)
    assert q.api.beta.environments.work.stats(environment_id=q.env_id).depth == 0
    states = {i.data.id: i.state for i in w.list(environment_id=q.env_id)}
    assert states[queued.id] == "stopped"


def test_a_forked_self_hosted_session_gets_its_own_work_item(q: Queue) -> None:
    parent = q.session()
    w = q.worker.beta.environments.work
    first = w.poll(environment_id=q.env_id, anthropic_worker_id="w1")
    assert first is not None and first.data.id == parent.id
    child = q.api.post(f"/v1/sessions/{parent.id}/fork", body={}, cast_to=object)
    assert child["metadata"]["forked_from"] == parent.id
    second = w.poll(environment_id=q.env_id, anthropic_worker_id="w1")
    assert second is not None and second.data.id == child["id"]
    assert w.poll(environment_id=q.env_id, anthropic_worker_id="w1") is None
