"""A full data disk (issue 16, item 2): the RocksDB data dir on a small tmpfs that a test file
fills up. A write is refused with a clear 503 `overloaded_error` and `x-should-retry: true`,
nothing of it is written, reads go on, and once space is freed and the server restarted every
acknowledged event is there exactly once and writes work again. (RocksDB keeps refusing writes
after a disk-full error until it is reopened: the restart is part of the recovery.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

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
