"""File tools against hostile files through the real server (security review, issue 8): an
`edit` with `replace_all` that would turn a 200 KB file into 200 MB is refused with a clear tool
error while the server's peak memory stays flat, and an `edit` of a file that is not UTF-8 is
refused and leaves the file byte for byte as it was. The files are created by the bash tool in
the session's sandbox, as an agent would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness_support import Harness, bash, harness, harness_server, mock, text, tool_prompt, tool_results  # noqa: F401

MIB = 1 << 20


def peak_rss(pid: int) -> int:
    """`VmHWM` of process `pid`, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for {pid}")


def reset_peak(pid: int) -> None:
    """Resets `VmHWM` to the current resident set (`5` to clear_refs), when we may."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass  # not our process to reset: the peak since start still bounds the check


def one_result(h: Harness, session: Any, prompt: str) -> Any:
    events = h.turn(session.id, prompt, timeout=120)
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return results[0]


def workspace_file(h: Harness, session: Any, name: str) -> Path:
    return h.server.process.data_dir / "workspaces" / session.id / name


def test_replace_all_amplification_is_refused_with_bounded_server_memory(harness: Harness) -> None:
    session = harness.session()
    made = one_result(harness, session, bash("head -c 200000 /dev/zero | tr '\\0' x > big.txt && wc -c < big.txt"))
    assert not made.is_error and text(made).strip() == "200000", text(made)
    big = workspace_file(harness, session, "big.txt")
    original = big.read_bytes()

    pid = harness.server.process.proc.pid
    reset_peak(pid)
    before = peak_rss(pid)
    edit = {"file_path": "big.txt", "old_string": "x", "new_string": "y" * 1000, "replace_all": True}
    result = one_result(harness, session, tool_prompt("edit", edit))
    grown = peak_rss(pid) - before

    assert result.is_error is True, text(result)[:300]
    assert "would make the file 200000000 bytes" in text(result), text(result)
    assert "the file was not modified" in text(result), text(result)
    assert grown < 64 * MIB, f"the server's peak memory grew by {grown / MIB:.0f} MiB"
    assert big.read_bytes() == original

    # Control: the same edit on a small file goes through.
    one_result(harness, session, bash("printf xxx > small.txt"))
    small = {"file_path": "small.txt", "old_string": "x", "new_string": "yz", "replace_all": True}
    ok = one_result(harness, session, tool_prompt("edit", small))
    assert not ok.is_error, text(ok)
    assert workspace_file(harness, session, "small.txt").read_bytes() == b"yzyzyz"


def test_edit_of_a_non_utf8_file_is_refused_and_leaves_it_unchanged(harness: Harness) -> None:
    session = harness.session()
    made = one_result(harness, session, bash("printf 'head \\377\\376 old_string tail\\000\\n' > blob.bin"))
    assert not made.is_error, text(made)
    blob = workspace_file(harness, session, "blob.bin")
    original = blob.read_bytes()
    assert original == b"head \xff\xfe old_string tail\x00\n"

    edit = {"path": "blob.bin", "old_string": "old_string", "new_string": "new_string"}
    result = one_result(harness, session, tool_prompt("edit", edit))
    assert result.is_error is True, text(result)
    assert "not valid UTF-8" in text(result), text(result)
    assert blob.read_bytes() == original
