"""The terminal client (issue 15): `managed-agents sessions list` shows a session the SDK created,
`managed-agents send` sends it a message, and `managed-agents sessions tail` prints the turn's
events one line each, then survives a restart of the server (same data dir and port): it
reconnects with the cursor of the last event it printed and prints the next turn's events,
none lost and none twice."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path
from typing import Any

from conftest import ServerProcess, binary, free_port, new_key
from harness_support import Harness, MockModel, llm_vault, mock, searchable, wait_for  # noqa: F401


class Lines:
    """The lines a child process writes to one of its pipes, collected by a thread."""

    def __init__(self, pipe: Any) -> None:
        self.lines: list[str] = []

        def pump() -> None:
            for line in pipe:
                self.lines.append(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(binary()), *args], check=True, capture_output=True, text=True, timeout=60, env=env)


def test_list_send_and_tail_across_a_server_restart(tmp_path: Path, mock: MockModel) -> None:
    searchable(tmp_path)
    key = new_key()
    port = free_port()
    listen = f"127.0.0.1:{port}"
    data = tmp_path / "data"
    process = ServerProcess("rocksdb", data, key, tmp_path / "server.log", runner=True, listen=listen).start()
    # The key and URL from the environment, as a user would set them.
    env = dict(os.environ, MANAGED_AGENTS_URL=process.url, MANAGED_AGENTS_API_KEY=key)
    tail = None
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        session = h.session(title="watched from a terminal")

        listed = run("sessions", "list", env=env).stdout.splitlines()
        (line,) = [line for line in listed if session.id in line]
        assert "idle" in line and "watched from a terminal" in line
        # Not a terminal: no colour codes.
        assert "\x1b[" not in line

        tail = subprocess.Popen(
            [str(binary()), "sessions", "tail", session.id],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        out, err = Lines(tail.stdout), Lines(tail.stderr)
        wait_for(lambda: err.has("tail: following"))

        sent = run("send", session.id, "first [[mock:text first-reply]]", env=env).stdout
        assert sent.startswith("sent sevt_")
        wait_for(lambda: out.has("first-reply") and out.lines[-1].split()[1:2] == ["session.status_idle"])

        assert process.stop() == 0
        wait_for(lambda: err.has("reconnecting"))
        process = ServerProcess("rocksdb", data, key, tmp_path / "server.log", runner=True, listen=listen).start()
        assert process.url == env["MANAGED_AGENTS_URL"]
        wait_for(lambda: err.has("tail: reconnected"))

        h.client = process.client()
        h.turn(session.id, "second [[mock:text second-reply]]")
        wait_for(lambda: out.has("second-reply") and out.lines[-1].split()[1:2] == ["session.status_idle"])
        events = h.events(session.id)

        # `--history` prints the session's past first, each event once, then follows it.
        history = subprocess.Popen(
            [str(binary()), "sessions", "tail", "--history", session.id],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        past = Lines(history.stdout)
        wait_for(lambda: len(past.lines) >= len(events))
        history.terminate()
        history.wait(10)
        assert [line.split()[1] for line in past.lines] == [e.type for e in events]
    finally:
        if tail is not None:
            tail.terminate()
            tail.wait(10)
        assert process.stop() == 0
    # Every event from the first message on, each once and in order.
    ids = [e.id for e in events]
    first = next(i for i, e in enumerate(events) if e.type == "user.message")
    expected = [e.type for e in events[first:]]
    printed = [line.split()[1] for line in out.lines]
    assert printed == expected, (printed, expected, ids)
    assert [line for line in out.lines if "first-reply" in line and "agent.message" in line]
    assert sum("second-reply" in line and "agent.message" in line for line in out.lines) == 1
    user_lines = [line for line in out.lines if line.split()[1] == "user.message"]
    assert [line.split(None, 2)[2] for line in user_lines] == [
        "first [[mock:text first-reply]]",
        "second [[mock:text second-reply]]",
    ]
