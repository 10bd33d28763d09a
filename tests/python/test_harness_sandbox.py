"""Escape attempts through the bash tool fail (issues 4 and 8): the sandbox cannot write the
host's system directories, read root-only files, see the server's data dir or another session's
workspace, or reach the network other than through the egress proxy; it runs under a seccomp filter, as
a host uid of its own per session, without the server's environment or data path, with a
bounded workspace and `/tmp`, and it works when the data dir is private. Each case has a
control showing the command itself works where it is allowed."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import pytest

from conftest import Server, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401
    Harness,
    MockModel,
    bash,
    harness,
    harness_server,
    llm_vault,
    mock,
    text,
    tool_results,
)

QUOTA = 32 << 20


def run(h: Harness, session: Any, command: str) -> str:
    return text(result(h, session, command))


def result(h: Harness, session: Any, command: str) -> Any:
    events = h.turn(session.id, bash(command))
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return results[0]


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

    # An unrestricted environment has no direct route either (issue 10: the egress proxy is the
    # only way out, see test_egress.py); the proxy is there and refuses the host's loopback.
    unrestricted = harness.environment(config={"type": "cloud", "networking": {"type": "unrestricted"}})
    out = run(
        harness,
        harness.session(environment=unrestricted),
        probe + f"; curl -sS --noproxy '' {harness.mock.url}/",
    )
    assert "DONE" in out
    assert "MOCK" not in out and "SERVER" not in out and "INTERNET" not in out
    assert "egress proxy: 127.0.0.1 is a loopback address" in out, out


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


def test_seccomp_filter_denies_namespaces_mounts_and_the_key_store(harness: Harness) -> None:
    session = harness.session()
    probe = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for name, nr, args in [('keyctl', 250, (0, -3, 1)), ('unshare', 272, (0x20000,)), "
        "('mount', 165, (0, 0, 0, 0, 0))]:\n"
        "    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])\n"
        "    print(name, 'errno', ctypes.get_errno() if r < 0 else 0)\n"
    )
    out = run(
        harness,
        session,
        f"grep '^Seccomp:' /proc/self/status; python3 -c \"{probe}\"; "
        "unshare --user --map-root-user true && echo UNSHARED; echo DONE",
    )
    assert "DONE" in out
    assert "Seccomp:\t2" in out, out
    for name in ("keyctl", "unshare", "mount"):
        assert f"{name} errno 1" in out, out  # EPERM
    assert "UNSHARED" not in out


def test_two_sessions_run_as_different_host_uids(harness: Harness) -> None:
    if os.geteuid() != 0:
        pytest.skip("per-session host uids need a root server")
    sessions = [harness.session(), harness.session()]
    for session in sessions:
        # Inside, every session is uid 1000 ...
        assert run(harness, session, "touch mine && id -u").strip() == "1000"
    # ... but what each one writes belongs to a host uid of its own.
    workspaces = harness.server.process.data_dir / "workspaces"
    owners = [(workspaces / s.id / "mine").stat().st_uid for s in sessions]
    assert owners[0] != owners[1], owners
    assert all(60000 <= uid <= 60999 for uid in owners), owners


def test_no_server_environment_or_data_path_inside(harness: Harness) -> None:
    process = harness.server.process
    assert process.proc is not None
    server_cwd = os.readlink(f"/proc/{process.proc.pid}/cwd")
    data_dir = str(process.data_dir.resolve())
    session = harness.session()
    out = run(
        harness,
        session,
        "tr '\\0' '\\n' < /proc/1/environ; echo ENVIRON-END; cat /proc/self/mountinfo; "
        "tr '\\0' ' ' < /proc/1/cmdline",
    )
    environ, rest = out.split("ENVIRON-END", 1)
    assert environ.strip() == "", f"/proc/1/environ: {environ!r}"
    assert "/workspace" in rest
    assert data_dir not in out and str(process.data_dir) not in out, out
    if server_cwd != "/":
        assert server_cwd not in out, out


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose data dir sits in a 0700 directory (like a home directory), with a small
    workspace quota and `/tmp`."""
    base = tmp_path_factory.mktemp("private")
    home = base / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    key = new_key()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MANAGED_AGENTS_WORKSPACE_QUOTA", str(QUOTA))
        env.setenv("MANAGED_AGENTS_SANDBOX_TMP_SIZE", "8MiB")
        process = ServerProcess("rocksdb", home / "data", key, base / "server.log", runner=True).start()
    yield Server(storage="rocksdb", url=process.url, key=key, other_key=None, process=process)
    code = process.stop()
    assert code == 0, f"server exited with {code}; log tail:\n{process.log_tail()}"


@pytest.fixture
def private(private_server: Server, mock: MockModel) -> Harness:
    client = private_server.client()
    token = "sk-mock-" + unique("secret")
    return Harness(
        client=client, server=private_server, mock=mock, vault=llm_vault(client, mock.url, token), token=token
    )


def test_tools_work_with_a_private_data_dir(private: Harness) -> None:
    data_dir = private.server.process.data_dir
    assert data_dir.parent.stat().st_mode & 0o777 == 0o700
    session = private.session()
    first = result(private, session, "echo kept > note.txt && cat note.txt")
    assert not first.is_error and text(first).strip() == "kept", text(first)
    assert (data_dir / "workspaces" / session.id / "note.txt").read_text() == "kept\n"


def test_workspace_quota_stops_a_disk_fill_with_a_clear_error(private: Harness) -> None:
    if os.geteuid() != 0:
        pytest.skip("workspace quotas need a root server")
    session = private.session()
    out = result(private, session, "fallocate -l 4G /workspace/big")
    assert out.is_error
    assert "No space left on device" in text(out), text(out)
    assert "the workspace quota is reached: /workspace is limited to" in text(out), text(out)
    image = private.server.process.data_dir / "workspaces" / f"{session.id}.img"
    assert image.stat().st_blocks * 512 <= QUOTA
    # Deleting files makes room again.
    again = result(private, session, "rm /workspace/big && echo fits > small && cat small")
    assert not again.is_error and text(again).strip() == "fits", text(again)


def test_tmp_is_bounded(private: Harness) -> None:
    session = private.session()
    out = result(private, session, "head -c 20000000 /dev/zero > /tmp/fill")
    assert out.is_error
    assert "/tmp is limited to 8.0 MiB" in text(out), text(out)
