"""Escape attempts through the bash tool fail (issue 4): the sandbox cannot write the host's
system directories, read root-only files, see the server's data dir or another session's
workspace, or reach the network in a `limited` environment. Each case has a control showing
the command itself works where it is allowed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from conftest import unique
from harness_support import Harness, bash, harness, harness_server, mock, text, tool_results  # noqa: F401


def run(h: Harness, session: Any, command: str) -> str:
    events = h.turn(session.id, bash(command))
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return text(results[0])


def test_cannot_write_usr(harness: Harness) -> None:
    session = harness.session()
    name = unique("escape")
    out = run(harness, session, f"touch /usr/{name} && echo WROTE; touch /workspace/{name} && echo LOCAL")
    assert "WROTE" not in out and "LOCAL" in out
    assert not Path("/usr", name).exists()
    out = run(harness, session, f"mount -o remount,rw /usr && touch /usr/{name} && echo WROTE")
    assert "WROTE" not in out
    assert not Path("/usr", name).exists()


def test_cannot_read_etc_shadow(harness: Harness) -> None:
    session = harness.session()
    out = run(harness, session, "cat /etc/shadow && echo READ; id -u")
    assert "READ" not in out and "root:" not in out
    assert out.strip().splitlines()[-1] != "0", "the sandbox must not run as root"


def test_cannot_read_the_server_data_dir(harness: Harness) -> None:
    session = harness.session()
    data_dir = harness.server.process.data_dir.resolve()
    assert any(data_dir.iterdir()), "the data dir has content to protect"
    out = run(
        harness,
        session,
        f"ls {data_dir} && echo LISTED; cat {data_dir}/db/CURRENT && echo READ; "
        f"ls /workspace/.. ; cat /proc/1/root{data_dir}/db/CURRENT && echo PROC",
    )
    assert "LISTED" not in out and "READ" not in out and "PROC" not in out
    assert session.id not in out or "LISTED" not in out


def test_cannot_read_another_sessions_workspace(harness: Harness) -> None:
    victim = harness.session()
    secret = unique("victim-secret")
    run(harness, victim, f"echo {secret} > secret.txt")
    victim_dir = (harness.server.process.data_dir / "workspaces" / victim.id).resolve()
    assert (victim_dir / "secret.txt").read_text().strip() == secret

    attacker = harness.session()
    out = run(
        harness,
        attacker,
        f"cat {victim_dir}/secret.txt; cat /workspace/../{victim.id}/secret.txt; "
        f"cat ../{victim.id}/secret.txt; "
        "ls -la / /workspace/.. /tmp; "
        "echo DONE",
    )
    assert "DONE" in out
    assert secret not in out


def test_limited_environment_has_no_network(harness: Harness) -> None:
    mock_addr = urlparse(harness.mock.url)
    server_addr = urlparse(harness.server.url)
    probe = (
        f"(exec 3<>/dev/tcp/{mock_addr.hostname}/{mock_addr.port}) 2>/dev/null && echo MOCK; "
        f"(exec 3<>/dev/tcp/{server_addr.hostname}/{server_addr.port}) 2>/dev/null && echo SERVER; "
        "timeout 2 bash -c '(exec 3<>/dev/tcp/1.1.1.1/53)' 2>/dev/null && echo INTERNET; "
        "cat /sys/class/net/*/operstate 2>/dev/null | tr '\\n' ' '; ls /sys/class/net; echo DONE"
    )
    limited = harness.environment(config={"type": "cloud", "networking": {"type": "limited"}})
    out = run(harness, harness.session(environment=limited), probe)
    assert "DONE" in out
    assert "MOCK" not in out and "SERVER" not in out and "INTERNET" not in out

    # Control: an unrestricted environment shares the host network and reaches the mock.
    unrestricted = harness.environment(config={"type": "cloud", "networking": {"type": "unrestricted"}})
    out = run(harness, harness.session(environment=unrestricted), probe)
    assert "MOCK" in out


def test_sandbox_sees_a_private_tmp_and_no_host_processes(harness: Harness) -> None:
    session = harness.session()
    marker = unique("tmp")
    Path("/tmp", marker).write_text("host")
    try:
        out = run(harness, session, f"ls /tmp; cat /tmp/{marker} 2>/dev/null && echo SEEN; ls /proc | grep -c '^[0-9]'")
        assert "SEEN" not in out
        processes = int(out.strip().splitlines()[-1])
        assert processes < 10, f"the sandbox sees {processes} processes: not its own pid namespace"
        assert str(os.getpid()) not in out.split()
    finally:
        Path("/tmp", marker).unlink()
