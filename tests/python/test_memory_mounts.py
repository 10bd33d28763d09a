"""Memory stores in a session's sandbox: each `memory_store` resource is written out before
every turn as one file per memory and mounted read-only at its `mount_path`
(`/mnt/memory/<slug>`); changes to the store show up at the next turn. Writing back from the
sandbox is not implemented, so the mount is read-only whatever the resource's `access`."""

from __future__ import annotations

import json
from typing import Any

from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    bash,
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


def test_memory_stores_are_mounted_read_only_and_follow_the_store(harness: Harness) -> None:
    h = harness
    ms = h.client.beta.memory_stores
    store = ms.create(name="Team Notes", description="what the team decided")
    ms.memories.create(store.id, path="/decisions/2026.md", content="use rust\n")
    top = ms.memories.create(store.id, path="/readme.md", content="hello memory\n")
    session = h.session(resources=[{"type": "memory_store", "memory_store_id": store.id, "instructions": "Look here."}])
    mount = "/mnt/memory/team-notes"
    out = one_result(
        h,
        session,
        f"cat {mount}/readme.md {mount}/decisions/2026.md; "
        f"echo x >> {mount}/readme.md 2>/dev/null && echo appended || echo refused; "
        f"touch {mount}/new.md 2>/dev/null && echo created || echo kept",
    )
    assert out.startswith("hello memory\nuse rust\n"), out
    assert "refused" in out and "appended" not in out
    assert "kept" in out and "created" not in out
    assert ms.memories.retrieve(top.id, memory_store_id=store.id).content == "hello memory\n"

    # Changes to the store are seen by the next turn; deleted memories are gone.
    ms.memories.update(top.id, memory_store_id=store.id, content="changed\n")
    ms.memories.create(store.id, path="/later.md", content="later\n")
    gone = ms.memories.list(store.id, path_prefix="/decisions/").data[0]
    ms.memories.delete(gone.id, memory_store_id=store.id)
    out = one_result(
        h,
        session,
        f"cat {mount}/readme.md {mount}/later.md; test -e {mount}/decisions/2026.md && echo present || echo absent",
    )
    assert out.startswith("changed\nlater\n"), out
    assert "absent" in out

    # The resident engine is told about the store.
    system = json.dumps(h.model_requests()[-1]["body"].get("system"))
    assert "Team Notes" in system and mount in system and "Look here." in system
