"""Files in and out of a session's sandbox (issue 11, item 4): `file` resources mounted read-only
at their `mount_path` (default `/mnt/session/uploads/<file_id>`), added and removed while the
session lives, and whatever the agent writes to `/mnt/session/outputs/` stored after the turn as
a downloadable file scoped to the session; uploads themselves stay not downloadable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anthropic
import pytest

from conftest import ServerProcess, new_key
from test_engine_claude import MODEL as CLAUDE_MODEL
from test_engine_claude import TURN as CLAUDE_TURN
from test_engine_claude import claude, claude_prompt, h, runtimes  # noqa: F401  (fixtures)
from harness_support import (  # noqa: F401
    Harness,
    MockModel,
    bash,
    llm_vault,
    searchable,
    harness,
    harness_server,
    mock,
    text,
    tool_results,
    types,
)


def one_result(h: Harness, session: Any, command: str) -> str:
    events = h.turn(session.id, bash(command), timeout=120)
    results = tool_results(events)
    assert len(results) == 1, types(events)
    return text(results[0])


def outputs(h: Harness, session: Any) -> list[Any]:
    return list(h.client.beta.files.list(scope_id=session.id, limit=100))


def test_file_resource_is_readable_at_its_mount_and_not_writable(harness: Harness) -> None:
    h = harness
    content = b"name,score\nada,10\n"
    upload = h.client.beta.files.upload(file=("scores.csv", content, "text/csv"))
    session = h.session(resources=[{"type": "file", "file_id": upload.id}])
    mount = f"/mnt/session/uploads/{upload.id}"
    out = one_result(
        h,
        session,
        f"cat {mount}; echo x >> {mount} 2>/dev/null && echo appended || echo refused; "
        f"rm -f {mount} 2>/dev/null && echo removed || echo kept",
    )
    assert out.startswith(content.decode()), out
    assert "refused" in out and "appended" not in out
    assert "kept" in out

    # Added while the session lives: the next turn sees it at its own mount path.
    other = h.client.beta.files.upload(file=("notes.txt", b"second file\n", "text/plain"))
    added = h.client.beta.sessions.resources.add(session.id, type="file", file_id=other.id, mount_path="/data/notes.txt")
    assert "second file" in one_result(h, session, "cat /data/notes.txt")
    # Removed: gone from the next turn.
    h.client.beta.sessions.resources.delete(added.id, session_id=session.id)
    assert "missing" in one_result(h, session, "test -e /data/notes.txt && echo present || echo missing")
    # The upload itself is still not downloadable.
    with pytest.raises(anthropic.BadRequestError):
        h.client.beta.files.download(upload.id)


def test_outputs_become_downloadable_files_scoped_to_the_session(harness: Harness) -> None:
    h = harness
    blob = bytes(range(256)) + os.urandom(4096)
    upload = h.client.beta.files.upload(file=("in.bin", blob, "application/octet-stream"))
    session = h.session(resources=[{"type": "file", "file_id": upload.id, "mount_path": "/data/in.bin"}])
    other = h.session()
    out = one_result(
        h,
        session,
        "cp /data/in.bin /mnt/session/outputs/copy.bin && mkdir -p /mnt/session/outputs/sub && "
        "echo hello > /mnt/session/outputs/sub/report.txt && ln -s /etc/passwd /mnt/session/outputs/link && echo ok",
    )
    assert out.strip() == "ok", out
    # Stored before the turn's idle event: listed as soon as the turn is over.
    files = outputs(h, session)
    by_name = {f.filename: f for f in files}
    assert sorted(by_name) == ["copy.bin", "report.txt"], by_name  # the symlink is not followed
    for f in files:
        assert f.downloadable is True
        assert f.scope is not None and f.scope.type == "session" and f.scope.id == session.id
    assert h.client.beta.files.download(by_name["copy.bin"].id).read() == blob
    assert h.client.beta.files.download(by_name["report.txt"].id).read() == b"hello\n"
    assert by_name["report.txt"].mime_type == "text/plain"
    assert outputs(h, other) == []

    # A file left in place is not stored again; a changed one is, as a new file.
    one_result(h, session, "echo again > /mnt/session/outputs/sub/report.txt")
    files = outputs(h, session)
    assert sorted(f.filename for f in files) == ["copy.bin", "report.txt", "report.txt"]
    newest = [f for f in files if f.filename == "report.txt" and f.id != by_name["report.txt"].id][0]
    assert h.client.beta.files.download(newest.id).read() == b"again\n"


def test_outputs_survive_a_restart_and_go_with_the_session(tmp_path: Path, mock: MockModel) -> None:
    """Outputs already stored are not stored again after a restart (the outputs directory comes
    back with its files), and deleting the session removes its attachments."""
    key = new_key()
    data_dir = tmp_path / "data"
    searchable(data_dir)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        session = h.session()
        assert "ok" in one_result(h, session, "echo first > /mnt/session/outputs/a.txt && echo ok")
        assert len(outputs(h, session)) == 1
    finally:
        assert process.stop() == 0
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        h.client = process.client()
        out = one_result(h, session, "cat /mnt/session/outputs/a.txt && echo second > /mnt/session/outputs/b.txt")
        assert out.strip() == "first", out
        files = outputs(h, session)
        assert sorted(f.filename for f in files) == ["a.txt", "b.txt"]
        attachments = data_dir / "workspaces" / f"{session.id}.attach"
        assert attachments.is_dir()
        h.client.beta.sessions.delete(session.id)
        assert not attachments.exists()
    finally:
        assert process.stop() == 0


def test_claude_code_reads_uploads_and_writes_outputs(h: Harness) -> None:
    """The same mounts on the `claude` engine: Claude Code's Bash reads the upload and writes an
    output, stored by the time the session is idle."""
    upload = h.client.beta.files.upload(file=("in.txt", b"from the user\n", "text/plain"))
    agent = h.agent(model=CLAUDE_MODEL, tools=[{"type": "agent_toolset_20260401"}])
    session = h.session(agent=agent, resources=[{"type": "file", "file_id": upload.id}])
    command = f"tr a-z A-Z < /mnt/session/uploads/{upload.id} > /mnt/session/outputs/shout.txt && echo done"
    events = h.turn(session.id, claude_prompt("Bash", {"command": command}), timeout=CLAUDE_TURN)
    assert [text(r).strip() for r in tool_results(events)] == ["done"], types(events)
    files = outputs(h, session)
    assert [f.filename for f in files] == ["shout.txt"]
    assert h.client.beta.files.download(files[0].id).read() == b"FROM THE USER\n"
