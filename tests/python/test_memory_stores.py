"""Memory stores, memories and memory versions (API §12) through `client.beta.memory_stores`,
`.memories` and `.memory_versions`, on both storage backends."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import anthropic
import httpx2
import pytest

from conftest import RequestCounter, Server, start_server, unique

MISSING_STORE = "memstore_01doesnotexist00000000"
MISSING_MEMORY = "mem_01doesnotexist000000000000"
MISSING_VERSION = "memver_01doesnotexist000000000"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def store(client: anthropic.Anthropic) -> Any:
    return client.beta.memory_stores.create(name=unique("store"))


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A RocksDB server with a key of a second workspace (keys are made by the CLI, which the
    memory backend cannot share with a running server)."""
    srv = start_server("rocksdb", tmp_path_factory.mktemp("memory-tenants"), other_workspace="tenant-b")
    yield srv
    assert srv.process.stop() == 0, srv.process.log_tail()


@pytest.fixture
def tenant_store(tenants: Server) -> Any:
    return tenants.client().beta.memory_stores.create(name=unique("store"))


def error_of(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.body["error"]


# Stores -------------------------------------------------------------------------------------


def test_store_crud_and_list(client: anthropic.Anthropic) -> None:
    name = unique("User Prefs")
    created = client.beta.memory_stores.create(name=name, description="what the user likes", metadata={"a": "1"})
    assert created.type == "memory_store"
    assert created.id.startswith("memstore_")
    assert (created.name, created.description, created.metadata) == (name, "what the user likes", {"a": "1"})
    assert created.archived_at is None and created.updated_at == created.created_at
    plain = client.beta.memory_stores.create(name=unique("plain"))
    assert plain.description == "" and plain.metadata == {}

    assert client.beta.memory_stores.retrieve(created.id).model_dump() == created.model_dump()
    time.sleep(0.01)
    updated = client.beta.memory_stores.update(created.id, name="renamed", metadata={"a": None, "b": "2"})
    assert updated.name == "renamed" and updated.metadata == {"b": "2"}
    assert updated.description == "what the user likes"
    assert updated.updated_at > created.updated_at
    cleared = client.beta.memory_stores.update(created.id, description="")
    assert cleared.description == ""
    same = client.beta.memory_stores.update(created.id, description=None, name=None)
    assert same.model_dump() == cleared.model_dump()

    ids = [s.id for s in client.beta.memory_stores.list(limit=1)]  # pages of one
    assert created.id in ids and plain.id in ids and len(ids) == len(set(ids))
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert list(client.beta.memory_stores.list(created_at_gte=future)) == []
    recent = [s.id for s in client.beta.memory_stores.list(created_at_lte=future, limit=100)]
    assert created.id in recent

    archived = client.beta.memory_stores.archive(created.id)
    assert archived.archived_at is not None
    assert client.beta.memory_stores.archive(created.id).archived_at == archived.archived_at
    assert created.id not in [s.id for s in client.beta.memory_stores.list(limit=100)]
    assert created.id in [s.id for s in client.beta.memory_stores.list(include_archived=True, limit=100)]

    deleted = client.beta.memory_stores.delete(created.id)
    assert (deleted.id, deleted.type) == (created.id, "memory_store_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.retrieve(created.id)


def test_store_validation_errors_use_the_envelope(client: anthropic.Anthropic, store: Any) -> None:
    bad_creates = [
        {"name": ""},
        {"name": "x" * 256},
        {"name": "a\nb"},
        {"name": "ok", "description": "d" * 1025},
        {"name": "ok", "metadata": {f"k{i}": "v" for i in range(17)}},
        {"name": "ok", "metadata": {"k" * 65: "v"}},
        {"name": "ok", "metadata": {"k": "v" * 513}},
    ]
    for body in bad_creates:
        with pytest.raises(anthropic.BadRequestError) as err:
            client.beta.memory_stores.create(**body)
        assert error_of(err)["type"] == "invalid_request_error", body
        assert err.value.body["request_id"] == err.value.request_id
    with pytest.raises(anthropic.BadRequestError) as err:
        client.beta.memory_stores.create(name="ok", metadata={"": "v"})
    assert err.value.body["error"]["details"]["error_code"] == "invalid_metadata"
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.update(store.id, name="")
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.list(limit=101)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.list(limit=0)
    with pytest.raises(anthropic.BadRequestError):
        client.beta.memory_stores.list(page="garbage")


def test_unknown_ids_are_404(client: anthropic.Anthropic, store: Any) -> None:
    ms = client.beta.memory_stores
    calls = [
        lambda: ms.retrieve(MISSING_STORE),
        lambda: ms.update(MISSING_STORE, name="x"),
        lambda: ms.archive(MISSING_STORE),
        lambda: ms.delete(MISSING_STORE),
        lambda: ms.retrieve("not-a-store-id"),
        lambda: ms.memories.create(MISSING_STORE, path="/a", content="x"),
        lambda: ms.memories.list(MISSING_STORE),
        lambda: ms.memories.retrieve(MISSING_MEMORY, memory_store_id=store.id),
        lambda: ms.memories.update(MISSING_MEMORY, memory_store_id=store.id, content="x"),
        lambda: ms.memories.delete(MISSING_MEMORY, memory_store_id=store.id),
        lambda: ms.memories.retrieve("mem_bad/x", memory_store_id=store.id),
        lambda: ms.memory_versions.list(MISSING_STORE),
        lambda: ms.memory_versions.retrieve(MISSING_VERSION, memory_store_id=store.id),
        lambda: ms.memory_versions.redact(MISSING_VERSION, memory_store_id=store.id),
    ]
    for call in calls:
        with pytest.raises(anthropic.NotFoundError) as err:
            call()
        assert error_of(err)["type"] == "not_found_error"


def test_a_memory_of_another_store_is_404(client: anthropic.Anthropic, store: Any) -> None:
    other = client.beta.memory_stores.create(name=unique("other"))
    memory = client.beta.memory_stores.memories.create(store.id, path="/mine.md", content="x")
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memories.retrieve(memory.id, memory_store_id=other.id)
    with pytest.raises(anthropic.NotFoundError):
        client.beta.memory_stores.memory_versions.retrieve(memory.memory_version_id, memory_store_id=other.id)


def test_other_workspaces_get_404(tenants: Server, tenant_store: Any) -> None:
    client, store = tenants.client(), tenant_store
    memory = client.beta.memory_stores.memories.create(store.id, path="/private.md", content="secret")
    assert tenants.other_key is not None
    b = tenants.client(key=tenants.other_key).beta.memory_stores
    for call in [
        lambda: b.retrieve(store.id),
        lambda: b.update(store.id, name="stolen"),
        lambda: b.archive(store.id),
        lambda: b.delete(store.id),
        lambda: b.memories.list(store.id),
        lambda: b.memories.create(store.id, path="/x", content="x"),
        lambda: b.memories.retrieve(memory.id, memory_store_id=store.id),
        lambda: b.memories.update(memory.id, memory_store_id=store.id, content="x"),
        lambda: b.memories.delete(memory.id, memory_store_id=store.id),
        lambda: b.memory_versions.list(store.id),
        lambda: b.memory_versions.redact(memory.memory_version_id, memory_store_id=store.id),
    ]:
        with pytest.raises(anthropic.NotFoundError):
            call()
    assert store.id not in [s.id for s in b.list(include_archived=True, limit=100)]
    assert client.beta.memory_stores.memories.retrieve(memory.id, memory_store_id=store.id).content == "secret"


# Memories -----------------------------------------------------------------------------------


def test_memory_create_retrieve_and_views(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    created = mem.create(store.id, path="/notes/todo.md", content="buy milk")
    assert created.type == "memory" and created.id.startswith("mem_")
    assert created.memory_store_id == store.id
    assert created.path == "/notes/todo.md"
    assert created.content is None  # create defaults to basic
    assert created.content_sha256 == sha("buy milk")
    assert created.content_size_bytes == len("buy milk")
    assert created.memory_version_id.startswith("memver_")
    full = mem.retrieve(created.id, memory_store_id=store.id)  # retrieve defaults to full
    assert full.content == "buy milk"
    assert mem.retrieve(created.id, memory_store_id=store.id, view="basic").content is None
    assert mem.create(store.id, path="/full.md", content="é", view="full").content == "é"
    empty = mem.create(store.id, path="/empty.md", content="")
    assert empty.content_size_bytes == 0 and empty.content_sha256 == sha("")
    # The store's own updated_at does not move with memory changes.
    assert client.beta.memory_stores.retrieve(store.id).updated_at == store.updated_at


def test_memory_path_and_content_validation(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    bad_paths = [
        "relative.md",
        "/",
        "/a//b",
        "/a/",
        "/a/./b",
        "/a/../b",
        "/tab\there",
        "/zero\u200bwidth",
        "/line\u2028sep",
        "/para\u2029sep",
        "/Cafe\u0301",  # not NFC
        "/" + "x" * 1024,
        "/" + "/".join(["s"] * 21),
    ]
    for path in bad_paths:
        with pytest.raises(anthropic.BadRequestError) as err:
            mem.create(store.id, path=path, content="x")
        assert error_of(err)["type"] == "invalid_request_error", path
        assert "path" in error_of(err)["message"], path
    mem.create(store.id, path="/" + "/".join(["s"] * 20), content="deep is fine")
    mem.create(store.id, path="/" + "x" * 1023, content="long is fine")
    mem.create(store.id, path="/Caf\u00e9", content="NFC is fine")
    with pytest.raises(anthropic.BadRequestError) as err:
        mem.create(store.id, path="/big", content="x" * 102_401)
    assert "content" in error_of(err)["message"]
    assert mem.create(store.id, path="/max", content="x" * 102_400).content_size_bytes == 102_400
    with pytest.raises(anthropic.BadRequestError):
        mem.create(store.id, path="/v", content="x", view="everything")  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError):
        client.post(f"/v1/memory_stores/{store.id}/memories", body={"path": "/no-content"}, cast_to=httpx2.Response)


def test_path_conflict_is_a_409_naming_the_holder_and_not_retried(
    server: Server, store: Any
) -> None:
    counter = RequestCounter()
    client = server.client(http_client=anthropic.DefaultHttpxClient(event_hooks={"request": [counter]}))
    mem = client.beta.memory_stores.memories
    first = mem.create(store.id, path="/taken.md", content="one")
    with pytest.raises(anthropic.ConflictError) as err:
        mem.create(store.id, path="/taken.md", content="two")
    assert error_of(err)["type"] == "memory_path_conflict_error"
    assert error_of(err)["conflicting_memory_id"] == first.id
    assert err.value.response.headers["x-should-retry"] == "false"
    assert counter.count("POST", f"/v1/memory_stores/{store.id}/memories") == 2  # no retry
    # Paths are case-sensitive; a rename onto a taken path conflicts too.
    other = mem.create(store.id, path="/TAKEN.md", content="three")
    with pytest.raises(anthropic.ConflictError) as err:
        mem.update(other.id, memory_store_id=store.id, path="/taken.md")
    assert error_of(err)["conflicting_memory_id"] == first.id
    # Deleting frees the path.
    mem.delete(first.id, memory_store_id=store.id)
    assert mem.create(store.id, path="/taken.md", content="again").id != first.id


def test_concurrent_creates_at_one_path_yield_exactly_one_memory(server: Server, store: Any) -> None:
    results: list[Any] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        client = server.client(max_retries=0)
        try:
            made = client.beta.memory_stores.memories.create(store.id, path="/race.md", content=f"writer {i}")
            outcome: Any = made.id
        except anthropic.ConflictError as e:
            outcome = e.body["error"]["type"]
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if r.startswith("mem_")]
    assert len(winners) == 1, results
    assert results.count("memory_path_conflict_error") == 11, results
    listed = server.client().beta.memory_stores.memories.list(store.id, path_prefix="/")
    assert [m.id for m in listed if m.path == "/race.md"] == winners


def test_update_rename_precondition_and_patch(server: Server, client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    created = mem.create(store.id, path="/a.md", content="one")
    time.sleep(0.01)
    renamed = mem.update(created.id, memory_store_id=store.id, path="/dir/a.md")
    assert renamed.id == created.id and renamed.path == "/dir/a.md"
    assert renamed.content is None  # update defaults to basic
    assert renamed.content_sha256 == sha("one")
    assert renamed.memory_version_id != created.memory_version_id
    assert renamed.updated_at > created.updated_at and renamed.created_at == created.created_at

    with pytest.raises(anthropic.ConflictError) as err:
        mem.update(
            created.id,
            memory_store_id=store.id,
            content="two",
            precondition={"type": "content_sha256", "content_sha256": sha("stale")},
        )
    assert error_of(err)["type"] == "memory_precondition_failed_error"
    assert err.value.response.headers["x-should-retry"] == "false"
    assert mem.retrieve(created.id, memory_store_id=store.id).content == "one"

    updated = mem.update(
        created.id,
        memory_store_id=store.id,
        content="two",
        precondition={"type": "content_sha256", "content_sha256": sha("one")},
        view="full",
    )
    assert updated.content == "two" and updated.content_sha256 == sha("two")
    with pytest.raises(anthropic.BadRequestError):
        mem.update(
            created.id, memory_store_id=store.id, precondition={"type": "content_sha256", "content_sha256": "ABC"}
        )
    with pytest.raises(anthropic.BadRequestError):
        mem.update(created.id, memory_store_id=store.id, precondition={"type": "etag"})  # type: ignore[typeddict-item]

    # An update that changes nothing writes no version.
    same = mem.update(created.id, memory_store_id=store.id, content="two")
    assert same.memory_version_id == updated.memory_version_id

    # PATCH (Anthropic's skill reference) works like POST.
    response = httpx2.patch(
        f"{server.url}/v1/memory_stores/{store.id}/memories/{created.id}?view=full",
        json={"content": "three"},
        headers={"Authorization": f"Bearer {server.key}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"] == "three"
    assert response.json()["id"] == created.id


def test_delete_with_expected_hash(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    created = mem.create(store.id, path="/d.md", content="bye")
    with pytest.raises(anthropic.ConflictError) as err:
        mem.delete(created.id, memory_store_id=store.id, expected_content_sha256=sha("other"))
    assert error_of(err)["type"] == "memory_precondition_failed_error"
    with pytest.raises(anthropic.BadRequestError):
        mem.delete(created.id, memory_store_id=store.id, expected_content_sha256="nothex")
    deleted = mem.delete(created.id, memory_store_id=store.id, expected_content_sha256=sha("bye"))
    assert (deleted.id, deleted.type) == (created.id, "memory_deleted")
    with pytest.raises(anthropic.NotFoundError):
        mem.retrieve(created.id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        mem.delete(created.id, memory_store_id=store.id)


def _paths(items: list[Any]) -> list[tuple[str, str]]:
    return [(i.type, i.path) for i in items]


def test_list_prefix_depth_views_and_pages(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    for path in [
        "/notes/todo.md",
        "/notes/a/one.md",
        "/notes/a/two.md",
        "/notes/a/deep/three.md",
        "/notes/b/x.md",
        "/notes-archive/old.md",
        "/top.md",
    ]:
        mem.create(store.id, path=path, content=f"content of {path}")

    everything = list(mem.list(store.id))
    assert len(everything) == 7
    assert all(m.type == "memory" and m.content is None for m in everything)  # list defaults to basic
    assert [m.path for m in everything] == sorted(m.path for m in everything)

    below = list(mem.list(store.id, path_prefix="/notes/"))
    assert "/notes-archive/old.md" not in [m.path for m in below]  # whole segments only
    assert len(below) == 5
    assert list(mem.list(store.id, path_prefix="/notes/", depth=0)) == below

    children = list(mem.list(store.id, path_prefix="/notes/", depth=1))
    assert _paths(children) == [
        ("memory_prefix", "/notes/a/"),
        ("memory_prefix", "/notes/b/"),
        ("memory", "/notes/todo.md"),
    ]
    top = list(mem.list(store.id, depth=1))
    assert _paths(top) == [
        ("memory_prefix", "/notes-archive/"),
        ("memory_prefix", "/notes/"),
        ("memory", "/top.md"),
    ]
    # Pages of one: each roll-up once, nothing repeated or lost.
    first = mem.list(store.id, path_prefix="/notes/", depth=1, limit=1)
    assert len(first.data) == 1 and first.next_page
    assert _paths(list(mem.list(store.id, path_prefix="/notes/", depth=1, limit=1))) == _paths(children)
    assert [m.path for m in mem.list(store.id, limit=2)] == [m.path for m in everything]

    full = list(mem.list(store.id, path_prefix="/notes/a/", view="full"))
    assert {m.path: m.content for m in full} == {
        p: f"content of {p}" for p in ["/notes/a/one.md", "/notes/a/two.md", "/notes/a/deep/three.md"]
    }
    for i in range(25):
        mem.create(store.id, path=f"/many/{i:02}.md", content="x")
    assert len(mem.list(store.id, path_prefix="/many/", view="full", limit=100).data) == 20
    assert len(mem.list(store.id, path_prefix="/many/", view="basic", limit=100).data) == 25
    assert len(list(mem.list(store.id, path_prefix="/many/", view="full", limit=100))) == 25

    for bad in [{"path_prefix": "/notes"}, {"path_prefix": "notes/"}, {"depth": -1}, {"view": "all"}, {"limit": 101}]:
        with pytest.raises(anthropic.BadRequestError):
            mem.list(store.id, **bad).data  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError):
        mem.list(store.id, page="page_bm90LWEta2V5").data


# Memory versions ----------------------------------------------------------------------------


def test_versions_record_every_change_with_the_api_actor(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    versions = client.beta.memory_stores.memory_versions
    created = mem.create(store.id, path="/v.md", content="1")
    modified = mem.update(created.id, memory_store_id=store.id, content="2", path="/w.md")
    mem.delete(created.id, memory_store_id=store.id)
    other = mem.create(store.id, path="/other.md", content="o")

    history = list(versions.list(store.id, memory_id=created.id))
    assert [v.operation for v in history] == ["deleted", "modified", "created"]  # newest first
    assert history[2].id == created.memory_version_id
    assert history[1].id == modified.memory_version_id
    for v in history:
        assert v.type == "memory_version" and v.memory_id == created.id and v.memory_store_id == store.id
        assert v.created_by is not None and v.created_by.type == "api_actor"
        assert v.created_by.api_key_id.startswith("apikey_")  # type: ignore[union-attr]
        assert v.content is None  # list defaults to basic
        assert v.redacted_at is None and v.redacted_by is None
    assert (history[1].path, history[1].content_sha256, history[1].content_size_bytes) == ("/w.md", sha("2"), 1)
    assert (history[0].path, history[0].content_sha256, history[0].content_size_bytes) == ("/w.md", None, None)

    full = versions.retrieve(created.memory_version_id, memory_store_id=store.id)  # retrieve: full
    assert (full.content, full.path, full.operation) == ("1", "/v.md", "created")
    assert versions.retrieve(created.memory_version_id, memory_store_id=store.id, view="basic").content is None
    assert [v.content for v in versions.list(store.id, memory_id=created.id, view="full")] == [None, "2", "1"]

    assert [v.id for v in versions.list(store.id, operation="created")] == [
        other.memory_version_id,
        created.memory_version_id,
    ]
    key = history[0].created_by.api_key_id  # type: ignore[union-attr]
    assert len(list(versions.list(store.id, api_key_id=key))) == 4
    assert list(versions.list(store.id, api_key_id="apikey_01someoneelse")) == []
    assert list(versions.list(store.id, session_id="sesn_01nobody")) == []
    assert list(versions.list(store.id, service_account_id="svac_01nobody")) == []
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert list(versions.list(store.id, created_at_gte=future)) == []
    assert len(list(versions.list(store.id, created_at_lte=future))) == 4
    paged = [v.id for v in versions.list(store.id, limit=1)]
    assert paged == [v.id for v in versions.list(store.id, limit=100)] and len(paged) == 4
    with pytest.raises(anthropic.BadRequestError):
        versions.list(store.id, operation="renamed").data  # type: ignore[arg-type]
    with pytest.raises(anthropic.BadRequestError):
        versions.list(store.id, limit=0).data


def test_redaction(client: anthropic.Anthropic, store: Any) -> None:
    mem = client.beta.memory_stores.memories
    versions = client.beta.memory_stores.memory_versions
    created = mem.create(store.id, path="/secret.md", content="hunter2")
    current = mem.update(created.id, memory_store_id=store.id, content="nothing to see")
    # The version holding a live memory's current content cannot be redacted.
    with pytest.raises(anthropic.BadRequestError):
        versions.redact(current.memory_version_id, memory_store_id=store.id)
    redacted = versions.redact(created.memory_version_id, memory_store_id=store.id)
    assert redacted.id == created.memory_version_id
    assert (redacted.content, redacted.path, redacted.content_sha256, redacted.content_size_bytes) == (
        None,
        None,
        None,
        None,
    )
    assert redacted.redacted_at is not None
    assert redacted.redacted_by is not None and redacted.redacted_by.type == "api_actor"
    assert redacted.created_by is not None and redacted.created_by.type == "api_actor"
    assert redacted.operation == "created" and redacted.memory_id == created.id
    again = versions.redact(created.memory_version_id, memory_store_id=store.id)
    assert again.redacted_at == redacted.redacted_at
    fetched = versions.retrieve(created.memory_version_id, memory_store_id=store.id)
    assert fetched.content is None and fetched.redacted_at == redacted.redacted_at
    assert fetched.created_at == redacted.created_at
    # The memory itself is untouched.
    assert mem.retrieve(created.id, memory_store_id=store.id).content == "nothing to see"
    # After deletion, its last content version can be redacted too.
    mem.delete(created.id, memory_store_id=store.id)
    assert versions.redact(current.memory_version_id, memory_store_id=store.id).content is None


def test_archived_store_rules(client: anthropic.Anthropic, store: Any) -> None:
    ms = client.beta.memory_stores
    keep = ms.memories.create(store.id, path="/keep.md", content="k")
    old = ms.memories.update(keep.id, memory_store_id=store.id, content="k2")
    gone = ms.memories.create(store.id, path="/gone.md", content="g")
    ms.archive(store.id)
    refused = [
        lambda: ms.memories.create(store.id, path="/new.md", content="x"),
        lambda: ms.memories.update(keep.id, memory_store_id=store.id, content="x"),
        lambda: ms.memories.update(keep.id, memory_store_id=store.id, path="/moved.md"),
        lambda: ms.update(store.id, name="x"),
        lambda: ms.update(store.id, metadata={"a": "b"}),
    ]
    for call in refused:
        with pytest.raises(anthropic.BadRequestError) as err:
            call()
        assert err.value.body["error"]["details"]["error_code"] == "memory_store_archived"
    # Reads, memory deletes, redactions and the store's delete still work.
    assert ms.retrieve(store.id).archived_at is not None
    assert ms.memories.retrieve(keep.id, memory_store_id=store.id).content == "k2"
    assert len(list(ms.memories.list(store.id))) == 2
    assert len(list(ms.memory_versions.list(store.id))) == 3
    ms.memories.delete(gone.id, memory_store_id=store.id)
    assert ms.memory_versions.redact(keep.memory_version_id, memory_store_id=store.id).redacted_at is not None
    assert old.memory_version_id
    ms.delete(store.id)
    with pytest.raises(anthropic.NotFoundError):
        ms.memories.list(store.id).data


def test_deleting_a_store_removes_its_memories(client: anthropic.Anthropic) -> None:
    ms = client.beta.memory_stores
    store = ms.create(name=unique("doomed"))
    memory = ms.memories.create(store.id, path="/x.md", content="x")
    ms.delete(store.id)
    with pytest.raises(anthropic.NotFoundError):
        ms.memories.retrieve(memory.id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        ms.memory_versions.retrieve(memory.memory_version_id, memory_store_id=store.id)
    with pytest.raises(anthropic.NotFoundError):
        ms.delete(store.id)


# Sessions -----------------------------------------------------------------------------------


def test_sessions_attach_memory_stores_at_creation(
    client: anthropic.Anthropic, make_session: Any, store: Any
) -> None:
    named = client.beta.memory_stores.create(name="User Preferences!", description="likes and dislikes")
    session = make_session(
        resources=[
            {"type": "memory_store", "memory_store_id": named.id, "access": "read_only", "instructions": "Read first."},
            {"type": "memory_store", "memory_store_id": store.id},
        ]
    )
    attached = [r for r in session.resources if r.type == "memory_store"]
    assert len(attached) == 2
    first, second = attached
    assert first.memory_store_id == named.id
    assert (first.access, first.instructions) == ("read_only", "Read first.")
    assert (first.name, first.description) == ("User Preferences!", "likes and dislikes")
    assert first.mount_path == "/mnt/memory/user-preferences"
    assert second.memory_store_id == store.id and second.access == "read_write"
    fetched = client.beta.sessions.retrieve(session.id)
    assert [r.memory_store_id for r in fetched.resources if r.type == "memory_store"] == [named.id, store.id]
    # Snapshotted at attach time: a later rename does not change the session's resource.
    client.beta.memory_stores.update(named.id, name="Renamed")
    again = client.beta.sessions.retrieve(session.id)
    assert [r.name for r in again.resources if r.type == "memory_store"][0] == "User Preferences!"


def test_sessions_list_filters_by_memory_store(client: anthropic.Anthropic, make_session: Any, store: Any) -> None:
    other = client.beta.memory_stores.create(name="Other store")
    with_store = [make_session(resources=[{"type": "memory_store", "memory_store_id": store.id}]) for _ in range(3)]
    both = make_session(
        resources=[
            {"type": "memory_store", "memory_store_id": other.id},
            {"type": "memory_store", "memory_store_id": store.id},
        ]
    )
    only_other = make_session(resources=[{"type": "memory_store", "memory_store_id": other.id}])
    # Sessions without a store sit between the matches, so pages must walk past them.
    for _ in range(5):
        make_session()
    wanted = {s.id for s in with_store} | {both.id}
    # Auto-pagination with a small page size sees every match once, and nothing else.
    listed = [s.id for s in client.beta.sessions.list(memory_store_id=store.id, limit=2)]
    assert sorted(listed) == sorted(wanted)
    assert {s.id for s in client.beta.sessions.list(memory_store_id=other.id)} == {both.id, only_other.id}
    assert list(client.beta.sessions.list(memory_store_id="memstore_01doesnotexist")) == []
    # Without the filter every session is listed.
    everything = {s.id for s in client.beta.sessions.list(limit=100)}
    assert wanted | {only_other.id} <= everything


def test_sessions_refuse_unknown_archived_and_late_memory_stores(
    client: anthropic.Anthropic, make_session: Any, session: Any, store: Any
) -> None:
    with pytest.raises(anthropic.NotFoundError) as err:
        make_session(resources=[{"type": "memory_store", "memory_store_id": MISSING_STORE}])
    assert "resources[0].memory_store_id" in error_of(err)["message"]
    with pytest.raises(anthropic.BadRequestError):
        make_session(
            resources=[{"type": "memory_store", "memory_store_id": store.id, "instructions": "x" * 4097}]
        )
    with pytest.raises(anthropic.BadRequestError):
        make_session(
            resources=[{"type": "memory_store", "memory_store_id": store.id, "access": "write_only"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        client.post(
            f"/v1/sessions/{session.id}/resources",
            body={"type": "memory_store", "memory_store_id": store.id},
            cast_to=httpx2.Response,
        )
    with pytest.raises(anthropic.BadRequestError) as err:
        make_session(
            resources=[
                {"type": "memory_store", "memory_store_id": store.id},
                {"type": "memory_store", "memory_store_id": store.id, "access": "read_only"},
            ]
        )
    assert "resources[1].memory_store_id" in error_of(err)["message"]
    twin = client.beta.memory_stores.create(name=store.name.upper())  # the same slug
    with pytest.raises(anthropic.BadRequestError) as err:
        make_session(
            resources=[
                {"type": "memory_store", "memory_store_id": store.id},
                {"type": "memory_store", "memory_store_id": twin.id},
            ]
        )
    assert "/mnt/memory/" in error_of(err)["message"]
    client.beta.memory_stores.archive(store.id)
    with pytest.raises(anthropic.BadRequestError) as err:
        make_session(resources=[{"type": "memory_store", "memory_store_id": store.id}])
    assert err.value.body["error"]["details"]["error_code"] == "memory_store_archived"


def test_other_workspaces_cannot_attach_a_store(tenants: Server, tenant_store: Any) -> None:
    store = tenant_store
    assert tenants.other_key is not None
    b = tenants.client(key=tenants.other_key)
    agent = b.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
    env = b.beta.environments.create(name=unique("env"))
    with pytest.raises(anthropic.NotFoundError):
        b.beta.sessions.create(
            agent=agent.id,
            environment_id=env.id,
            resources=[{"type": "memory_store", "memory_store_id": store.id}],
        )
