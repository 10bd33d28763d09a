"""Memory stores in a session's sandbox: each `memory_store` resource is written out before
every turn as one file per memory at its `mount_path` (`/mnt/memory/<slug>`); changes to the
store show up at the next turn. `read_only` mounts refuse writes; under `read_write` what the
agent creates, changes or deletes is saved to the store when the turn ends, as versions by a
`session_actor`."""

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
    session = h.session(
        resources=[
            {"type": "memory_store", "memory_store_id": store.id, "access": "read_only", "instructions": "Look here."}
        ]
    )
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


def test_read_write_stores_save_the_agents_changes_as_session_versions(harness: Harness) -> None:
    h = harness
    ms = h.client.beta.memory_stores
    store = ms.create(name="Scratch")
    keep = ms.memories.create(store.id, path="/keep.md", content="kept\n")
    edit = ms.memories.create(store.id, path="/notes/edit.md", content="before\n")
    drop = ms.memories.create(store.id, path="/drop.md", content="dropped\n")
    session = h.session(resources=[{"type": "memory_store", "memory_store_id": store.id}])
    mount = "/mnt/memory/scratch"
    out = one_result(
        h,
        session,
        f"cat {mount}/keep.md && echo after > {mount}/notes/edit.md && rm {mount}/drop.md && "
        f"mkdir -p {mount}/new/dir && printf 'fresh' > {mount}/new/dir/made.md && "
        f"printf '\\377' > {mount}/binary.bin && ln -s /etc/passwd {mount}/link && echo done",
    )
    assert out.strip().endswith("done"), out

    # Saved before the idle event: the store shows the changes as soon as the turn is over.
    by_path = {m.path: m for m in ms.memories.list(store.id, view="full", limit=20)}
    assert sorted(by_path) == ["/keep.md", "/new/dir/made.md", "/notes/edit.md"], by_path
    assert by_path["/notes/edit.md"].content == "after\n" and by_path["/notes/edit.md"].id == edit.id
    assert by_path["/new/dir/made.md"].content == "fresh"
    assert by_path["/keep.md"].memory_version_id == keep.memory_version_id  # untouched: no version
    versions = list(ms.memory_versions.list(store.id, session_id=session.id))
    assert sorted(v.operation for v in versions) == ["created", "deleted", "modified"], versions
    for v in versions:
        assert v.created_by is not None and v.created_by.type == "session_actor"
        assert v.created_by.session_id == session.id  # type: ignore[union-attr]
    assert {v.memory_id for v in versions if v.operation == "deleted"} == {drop.id}

    # A change made through the API reaches the same shell at the next turn, and a file the
    # agent then edits is saved on top of it.
    ms.memories.update(keep.id, memory_store_id=store.id, content="from the api\n")
    out = one_result(h, session, f"cat {mount}/keep.md; test -e {mount}/drop.md && echo back || echo gone")
    assert out.startswith("from the api\n") and "gone" in out, out
    one_result(h, session, f"echo agent >> {mount}/keep.md")
    assert ms.memories.retrieve(keep.id, memory_store_id=store.id).content == "from the api\nagent\n"

    # An archived store refuses the agent's writes; the store is unchanged.
    ms.archive(store.id)
    one_result(h, session, f"echo late > {mount}/late.md")
    assert "/late.md" not in [m.path for m in ms.memories.list(store.id)]
