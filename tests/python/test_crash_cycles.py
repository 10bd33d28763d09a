"""Crash cycles (issue 16, item 2): a server on RocksDB is killed with SIGKILL at a random moment
while SDK clients send events, 20 times over. After each restart every acknowledged event is
there exactly once, and a send whose answer the crash swallowed, retried with its
`Idempotency-Key` as a client would, is there exactly once too (the first attempt was either
committed, then the retry answers with it, or lost, then the retry appends it). Official SDK,
real server (runner off: the API path), real RocksDB."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import anthropic

from conftest import ServerProcess, new_key, user_message

#: SIGKILL cycles per run (`MANAGED_AGENTS_CRASH_CYCLES` for longer runs).
CYCLES = int(os.environ.get("MANAGED_AGENTS_CRASH_CYCLES", "20"))
WRITERS = 4


def test_acknowledged_events_survive_sigkill_exactly_once(tmp_path: Path) -> None:
    key = new_key()
    data_dir = tmp_path / "data"
    rng = random.Random(0x5EED)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log").start()
    client = process.client(max_retries=0)
    agent = client.beta.agents.create(name="crash", model="claude-sonnet-4-6")
    environment = client.beta.environments.create(name="crash-env")
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    acked: dict[str, str] = {}  # marker -> event id
    lost: list[str] = []  # markers whose send got no answer
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()
            lock = threading.Lock()

            def write() -> None:
                while not stop.is_set():
                    marker = f"c{cycle}-{uuid.uuid4().hex}"
                    try:
                        sent = client.beta.sessions.events.send(
                            session.id,
                            events=[user_message(marker)],
                            extra_headers={"Idempotency-Key": marker},
                        )
                    except (anthropic.APIConnectionError, anthropic.APIStatusError):
                        with lock:
                            lost.append(marker)
                        return
                    with lock:
                        acked[marker] = sent.data[0].id

            writers = [threading.Thread(target=write) for _ in range(WRITERS)]
            for w in writers:
                w.start()
            time.sleep(rng.uniform(0.05, 0.6))
            assert process.proc is not None
            process.proc.kill()
            process.proc.wait()
            process.proc = None
            stop.set()
            for w in writers:
                w.join(30)
            process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log").start()
            client = process.client(max_retries=0)
            # The client retries what it sent without an answer, with the same key.
            for marker in lost:
                sent = client.beta.sessions.events.send(
                    session.id, events=[user_message(marker)], extra_headers={"Idempotency-Key": marker}
                )
                acked[marker] = sent.data[0].id
            lost.clear()
            check(client, session.id, acked, cycle)
    finally:
        assert process.stop() == 0, process.log_tail()
    assert len(acked) > CYCLES


def check(client: anthropic.Anthropic, session_id: str, acked: dict[str, str], cycle: int) -> None:
    events: list[Any] = list(client.beta.sessions.events.list(session_id, limit=1000))
    seen: dict[str, list[str]] = {}
    for event in events:
        if event.type == "user.message":
            seen.setdefault(event.content[0].text, []).append(event.id)
    for marker, event_id in acked.items():
        assert seen.get(marker) == [event_id], f"cycle {cycle}: {marker} is {seen.get(marker)}, acked as {event_id}"
    unexpected = set(seen) - set(acked)
    assert not unexpected, f"cycle {cycle}: events never acknowledged nor retried: {sorted(unexpected)[:5]}"
