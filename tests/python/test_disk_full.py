"""A full data disk (issue 16, item 2): the RocksDB data dir on a small tmpfs that a test file
fills up. A write is refused with a clear 503 `overloaded_error` and `x-should-retry: true`,
nothing of it is written, and reads go on. Once space is freed the same server takes writes
again, without a restart (the RocksDB store reopens its database before its next write, see
storage-rocksdb/src/handle.rs), every acknowledged event is there exactly once, and an event
stream opened before the disk filled goes on; after a restart everything is there too."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator

import anthropic

import httpx
import pytest

from conftest import ServerProcess, new_key

HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 48 MiB tmpfs (mounting needs root, as the sandbox tests do)."""
    assert os.geteuid() == 0, "the disk-full test mounts a tmpfs and must run as root (CI does)"
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(path: Path) -> None:
    """Writes `path` until the disk has no room left."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
        # The last blocks: smaller writes until not even one byte fits.
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError:
                pass


def send(url: str, key: str, session_id: str, text: str) -> httpx.Response:
    body = {"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]}
    return httpx.post(
        f"{url}/v1/sessions/{session_id}/events", json=body, headers={**HEADERS, "x-api-key": key}, timeout=30
    )


def texts(url: str, key: str, session_id: str) -> list[str]:
    got = httpx.get(
        f"{url}/v1/sessions/{session_id}/events?limit=1000", headers={**HEADERS, "x-api-key": key}, timeout=30
    )
    assert got.status_code == 200, got.text
    return [e["content"][0]["text"] for e in got.json()["data"] if e["type"] == "user.message"]


def test_a_full_disk_refuses_writes_clearly_and_loses_nothing(small_disk: Path) -> None:
    key = new_key()
    server = ServerProcess("rocksdb", small_disk / "data", key, small_disk.parent / "server.log").start()
    client = server.client()
    agent = client.beta.agents.create(name="full", model="claude-sonnet-4-6")
    environment = client.beta.environments.create(name="full")
    session: Any = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
    acknowledged = []
    for i in range(5):
        response = send(server.url, key, session.id, f"before {i}")
        assert response.status_code == 200, response.text
        acknowledged.append(f"before {i}")

    filler = small_disk / "filler"
    fill(filler)
    refused = send(server.url, key, session.id, "x" * 200_000)
    assert refused.status_code == 503, refused.text
    assert refused.headers.get("x-should-retry") == "true"
    error = refused.json()["error"]
    assert error["type"] == "overloaded_error" and "disk is full" in error["message"], error
    assert "No space left" not in refused.text, "the OS detail stays in the log"
    # Reads go on, and show exactly what was acknowledged.
    assert texts(server.url, key, session.id) == acknowledged
    assert client.beta.sessions.retrieve(session.id).id == session.id
    server.stop()
    assert "the data disk is full" in server.log_tail(200)

    filler.unlink()
    server = ServerProcess("rocksdb", small_disk / "data", key, small_disk.parent / "server.log").start()
    try:
        assert texts(server.url, key, session.id) == acknowledged
        response = send(server.url, key, session.id, "after")
        assert response.status_code == 200, response.text
        assert texts(server.url, key, session.id) == acknowledged + ["after"]
    finally:
        server.stop()


def test_writes_come_back_without_a_restart_when_space_returns(small_disk: Path) -> None:
    key = new_key()
    server = ServerProcess("rocksdb", small_disk / "data", key, small_disk.parent / "server.log").start()
    try:
        client = server.client()
        agent = client.beta.agents.create(name="full", model="claude-sonnet-4-6")
        environment = client.beta.environments.create(name="full")
        session: Any = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        acknowledged = []
        for i in range(3):
            response = send(server.url, key, session.id, f"before {i}")
            assert response.status_code == 200, response.text
            acknowledged.append(f"before {i}")

        # A stream opened before the disk fills: it must go on after the recovery.
        streamed: list[str] = []
        opened = threading.Event()
        done = threading.Event()

        def follow(stream_client: anthropic.Anthropic) -> None:
            with stream_client.beta.sessions.events.stream(session.id) as stream:
                opened.set()
                for event in stream:
                    if event.type == "user.message":
                        streamed.append(event.content[0].text)
                        if streamed[-1] == "after 1":
                            done.set()
                            return

        follower = threading.Thread(target=follow, args=(server.client(),), daemon=True)
        follower.start()
        assert opened.wait(30), "the event stream did not open"

        filler = small_disk / "filler"
        fill(filler)
        for attempt in range(3):
            refused = send(server.url, key, session.id, f"refused {attempt} " + "x" * 200_000)
            assert refused.status_code == 503, refused.text
            assert refused.headers.get("x-should-retry") == "true"
            assert refused.json()["error"]["type"] == "overloaded_error"
            # Reads go on while the disk is full.
            assert texts(server.url, key, session.id) == acknowledged

        filler.unlink()
        # The same process takes writes again: appends, and a new object.
        for i in range(2):
            response = send(server.url, key, session.id, f"after {i}")
            assert response.status_code == 200, response.text
            acknowledged.append(f"after {i}")
        other: Any = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        assert client.beta.sessions.retrieve(other.id).id == other.id
        # Every acknowledged event exactly once, nothing of the refused ones.
        assert texts(server.url, key, session.id) == acknowledged
        assert done.wait(30), f"the stream opened before the disk filled stopped at {streamed}"
        # It follows from where it opened: the events acknowledged after the recovery.
        assert streamed == ["after 0", "after 1"]
        follower.join(30)
    finally:
        assert server.stop() == 0, server.log_tail()

    # And after a restart.
    server = ServerProcess("rocksdb", small_disk / "data", key, small_disk.parent / "server.log").start()
    try:
        assert texts(server.url, key, session.id) == acknowledged
    finally:
        server.stop()
