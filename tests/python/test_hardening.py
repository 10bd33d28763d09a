"""Issue 8 (security review): each finding's attack, performed against a real `managed-agents
serve` process, and the fixed behaviour.

- Finding 2: junk methods and paths must not become metric labels (`/metrics` stays small).
- Finding 5: file uploads and downloads stream (the server's peak RSS, `VmHWM`, grows far less
  than the file), and downloads are attachments with `X-Content-Type-Options: nosniff`.
- Finding 9: nothing under the data dir is group or other readable or writable.
- Finding 11: `/readyz` says only whether it is ready; event list pages have a byte cap that
  paging clients do not notice.

Run with `-s` to see the measured memory numbers.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import stat
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import anthropic
import httpx
import pytest

from conftest import Server, ServerProcess, new_key, unique, user_message
from harness_support import TOOLSET, Harness, MockModel, bash, llm_vault, text, tool_results, wait_for

MiB = 1024 * 1024


def serve(tmp_path: Path, storage: str, runner: bool = False) -> ServerProcess:
    return ServerProcess(
        storage, tmp_path / "data", new_key(), tmp_path / "server.log", runner=runner, args=["--uploads-downloadable"]
    ).start()


@pytest.fixture
def rocksdb_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = serve(tmp_path, "rocksdb")
    yield srv
    assert srv.stop() == 0, srv.log_tail()


@pytest.fixture
def memory_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = serve(tmp_path, "memory")
    yield srv
    assert srv.stop() == 0, srv.log_tail()


def vm_kib(srv: ServerProcess, field: str) -> int:
    """A `Vm…` line of the server's /proc/<pid>/status, in KiB."""
    assert srv.proc is not None
    status = Path(f"/proc/{srv.proc.pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.M)
    assert match, status
    return int(match.group(1))


def auth(srv: ServerProcess) -> dict[str, str]:
    assert srv.key is not None
    return {"x-api-key": srv.key}


# --- Finding 2: metrics labels --------------------------------------------------------------

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE", "other"}
# A sample line of the text exposition format: name, optional labels with escaped values, value.
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(rf"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{{(?:{LABEL}(?:,{LABEL})*)?\}})? (\S+)$")


def series(text: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_junk_methods_and_paths_do_not_become_metric_labels(memory_server: ServerProcess) -> None:
    srv = memory_server
    with httpx.Client(base_url=srv.url, timeout=30) as http:
        assert http.get("/v1/agents", headers=auth(srv)).status_code == 200
        http.get("/v1/agents/agent_missing", headers=auth(srv))
        http.get("/metrics")
        before = http.get("/metrics").text
        rss_before = vm_kib(srv, "VmRSS")
        for _ in range(200):
            tag = uuid.uuid4().hex
            method = f"JUNK{tag}" + "M" * 8000
            assert http.request(method, "/v1/agents", headers=auth(srv)).status_code >= 400
            assert http.request(method, f"/junk-{tag}").status_code >= 400
            assert http.get(f"/v1/junk-{tag}/" + "p" * 4000, headers=auth(srv)).status_code == 404
            assert http.get(f"/{tag}").status_code == 404
        after = http.get("/metrics").text
        rss_after = vm_kib(srv, "VmRSS")
    print(
        f"\n/metrics: {len(before)} bytes before, {len(after)} bytes after 800 junk requests; "
        f"VmRSS {rss_before} -> {rss_after} KiB"
    )
    assert "JUNK" not in after and "junk" not in after
    assert len(after) < 64 * 1024, f"/metrics grew to {len(after)} bytes"
    # At most a few new label sets (junk method on a route, no route matched, ...), each a
    # request counter and one latency histogram (15 lines), whatever was sent.
    added = series(after) - series(before)
    counters = sorted(s for s in added if s.startswith("managed_agents_http_requests_total{"))
    assert len(counters) <= 6, counters
    assert len(added) <= 6 * 16, sorted(added)
    for line in after.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$", line), line
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid exposition line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"', match.group(2) or ""))
        if "method" in labels:
            assert labels["method"] in METHODS, line
        if "route" in labels:
            assert labels["route"] == "unmatched" or labels["route"].startswith("/"), line
            assert len(labels["route"]) < 100, line
    assert 'method="other",route="unmatched"' in after
    assert rss_after - rss_before < 16 * 1024, f"VmRSS grew {rss_after - rss_before} KiB"


# --- Finding 5: streamed files ----------------------------------------------------------------


def sparse_file(path: Path, size: int) -> str:
    """A sparse file of `size` bytes with markers at its start, middle and end; its sha256."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset in (0, size // 2, size - 16):
            f.seek(offset)
            f.write(b"<html>%010d" % offset)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def upload(srv: ServerProcess, path: Path, name: str, mime: str) -> dict[str, Any]:
    """A multipart upload that httpx streams from the file (64 KiB at a time)."""
    with open(path, "rb") as f:
        response = httpx.post(
            f"{srv.url}/v1/files", headers=auth(srv), files={"file": (name, f, mime)}, timeout=600
        )
    assert response.status_code == 200, response.text
    return response.json()


def download(srv: ServerProcess, file_id: str) -> tuple[int, str, httpx.Headers]:
    """Streams a download; returns its length, sha256 and headers."""
    digest = hashlib.sha256()
    n = 0
    with httpx.stream("GET", f"{srv.url}/v1/files/{file_id}/content", headers=auth(srv), timeout=600) as r:
        assert r.status_code == 200, r.read()
        for chunk in r.iter_bytes(MiB):
            digest.update(chunk)
            n += len(chunk)
        return n, digest.hexdigest(), r.headers


def assert_attachment(headers: httpx.Headers, name: str, mime: str) -> None:
    assert headers["content-type"] == mime  # the uploader's type is kept ...
    assert headers["x-content-type-options"] == "nosniff"  # ... but never sniffed
    assert headers["content-disposition"].startswith("attachment;"), headers
    assert f'filename="{name}"' in headers["content-disposition"]


def transfers(srv: ServerProcess, tmp_path: Path, size: int, downloads: int) -> tuple[int, int]:
    """Uploads a `size`-byte HTML file and downloads it `downloads` times at once; returns the
    growth of the server's VmHWM (KiB) during the upload and during the downloads."""
    small = tmp_path / "warm.html"
    small_sum = sparse_file(small, MiB)
    warm = upload(srv, small, "warm.html", "text/html")
    assert download(srv, warm["id"])[:2] == (MiB, small_sum)
    big = tmp_path / "big.html"
    big_sum = sparse_file(big, size)
    hwm_start = vm_kib(srv, "VmHWM")
    meta = upload(srv, big, "big.html", "text/html")
    assert meta["size_bytes"] == size
    hwm_uploaded = vm_kib(srv, "VmHWM")
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(downloads) as pool:
        results = list(pool.map(lambda _: download(srv, meta["id"]), range(downloads)))
    elapsed = time.monotonic() - started
    hwm_downloaded = vm_kib(srv, "VmHWM")
    up, down = hwm_uploaded - hwm_start, hwm_downloaded - hwm_uploaded
    print(
        f"\n{srv.storage}: file {size // MiB} MiB; VmHWM {hwm_start} KiB at start, "
        f"{up:+} KiB after the upload, {down:+} KiB after {downloads} concurrent downloads "
        f"({elapsed:.1f}s)"
    )
    for n, digest, headers in results:
        assert (n, digest) == (size, big_sum)
        assert headers["content-length"] == str(size)
        assert_attachment(headers, "big.html", "text/html")
    return up, down


def test_files_stream_in_and_out_on_disk(rocksdb_server: ServerProcess, tmp_path: Path) -> None:
    size = 320 * MiB
    up, down = transfers(rocksdb_server, tmp_path, size, downloads=4)
    assert up < 64 * 1024, f"the upload grew the server's peak RSS by {up} KiB"
    assert down < 64 * 1024, f"4 downloads grew the server's peak RSS by {down} KiB"
    blobs = rocksdb_server.data_dir / "files"
    assert not [p.name for p in blobs.iterdir() if p.name.endswith(".tmp")]


def test_memory_backend_downloads_share_the_stored_bytes(memory_server: ServerProcess, tmp_path: Path) -> None:
    size = 128 * MiB
    up, down = transfers(memory_server, tmp_path, size, downloads=4)
    # The memory backend keeps the bytes (once), and downloads do not copy them.
    assert up < size // 1024 + 64 * 1024, f"the upload grew the server's peak RSS by {up} KiB"
    assert down < 32 * 1024, f"4 downloads grew the server's peak RSS by {down} KiB"


def test_downloads_are_attachments_that_are_not_sniffed(memory_server: ServerProcess) -> None:
    client = memory_server.client()
    page = b"<html><script>alert(document.cookie)</script></html>"
    meta = client.beta.files.upload(file=("my page.html", page, "text/html"))
    downloaded = client.beta.files.download(meta.id)
    assert downloaded.read() == page
    headers = downloaded.http_response.headers
    assert headers["content-type"] == "text/html"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"] == "attachment; filename=\"my page.html\"; filename*=UTF-8''my%20page.html"


# --- Finding 9: private data dir ------------------------------------------------------------


def open_entries(root: Path) -> list[str]:
    """Every entry under `root` (itself included) with a group or other read/write bit."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o066:
                found.append(f"{oct(mode & 0o7777)} {path}")
    return found


def test_the_data_dir_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)  # what an operator's `mkdir` leaves: the server must tighten it
    mock = MockModel(tmp_path / "mock.log").start()
    srv = ServerProcess("rocksdb", data, new_key(), tmp_path / "server.log", runner=True).start()
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        client = srv.client()
        secret = client.beta.files.upload(file=("secret.txt", b"top secret", "text/plain"))
        # Attached material (a file resource, a skill, outputs) is private in the data dir too.
        skill_md = b"---\nname: private-skill\ndescription: d\n---\n"
        skill = client.beta.skills.create(files=[("private-skill/SKILL.md", skill_md, "text/markdown")])
        vault = llm_vault(client, mock.url)
        h = Harness(
            client=client,
            server=Server(storage="rocksdb", url=srv.url, key=srv.key or "", other_key=None, process=srv),
            mock=mock,
            vault=vault,
            token="sk-mock-token",
        )
        agent = client.beta.agents.create(
            name=unique("agent"),
            model="claude-sonnet-4-6",
            tools=[TOOLSET],
            skills=[{"type": "custom", "skill_id": skill.id}],
        )
        session = h.session(agent=agent, resources=[{"type": "file", "file_id": secret.id}])
        if "sessions will not run" not in srv.log_tail(200):
            # A turn creates the session's workspace, and the tool writes into it.
            events = h.turn(
                session.id,
                bash(
                    "echo secret > out.txt && mkdir -p sub && echo x > sub/f && "
                    f"cp /mnt/session/uploads/{secret.id} /mnt/skills/private-skill/SKILL.md /mnt/session/outputs/"
                ),
            )
            workspace = data / "workspaces" / session.id
            assert workspace.is_dir()
            assert [text(e) for e in tool_results(events)] == [""]  # no output, as the reference
            assert (workspace / "sub" / "f").is_file()  # the walk below covers what tools write
        running = open_entries(data)
    finally:
        assert srv.stop() == 0, srv.log_tail()
        mock.stop()
    assert (data / "files").is_dir() and (data / "db").is_dir() and (data / "secret.key").is_file()
    # The one readable entry: the CA bundle the sandboxes trust (public certificates only), bound
    # read-only into every sandbox, whose uids must read it; the data dir itself stays 0700.
    bundle = f"0o644 {data / 'egress-ca-bundle.pem'}"
    assert bundle in running, running
    assert [e for e in running if e != bundle] == [], running
    assert [e for e in open_entries(data) if e != bundle] == [], "after shutdown (RocksDB flushes)"


# --- Finding 11: /readyz, event page bytes ----------------------------------------------------


def test_readyz_tells_only_the_status(rocksdb_server: ServerProcess) -> None:
    srv = rocksdb_server
    ready = httpx.get(f"{srv.url}/readyz", timeout=10)
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    files = srv.data_dir / "files"
    if files.is_dir():
        files.rmdir()
    files.write_text("not a directory")  # file storage breaks
    try:
        broken = httpx.get(f"{srv.url}/readyz", timeout=10)
        assert (broken.status_code, broken.json()) == (503, {"status": "unavailable"})
        assert str(srv.data_dir) not in broken.text
        # The detail is logged (the server's log writer is buffered: wait for the line).
        wait_for(lambda: "not ready: file storage is unusable" in srv.log_tail(50))
    finally:
        files.unlink()
    assert httpx.get(f"{srv.url}/readyz", timeout=10).status_code == 200


def test_event_pages_are_capped_in_bytes_and_paging_sees_every_event(memory_server: ServerProcess) -> None:
    srv = memory_server
    client = srv.client()
    agent = client.beta.agents.create(name=unique("agent"), model="claude-sonnet-4-6")
    env = client.beta.environments.create(name=unique("env"))
    session = client.beta.sessions.create(agent=agent.id, environment_id=env.id)
    sent = []
    for batch in range(3):
        events = [user_message(f"{batch}-{i}:" + "x" * (MiB - 100)) for i in range(4)]
        sent += [e.id for e in client.beta.sessions.events.send(session.id, events=events).data]
    raw = httpx.get(f"{srv.url}/v1/sessions/{session.id}/events", headers=auth(srv), timeout=60)
    assert raw.status_code == 200
    first = raw.json()
    print(f"\nfirst page: {len(raw.content)} bytes, {len(first['data'])} events")
    assert len(raw.content) <= 4 * MiB + 64 * 1024, f"a page of {len(raw.content)} bytes"
    assert first["next_page"] is not None
    for order in ("asc", "desc"):
        listed = [e.id for e in client.beta.sessions.events.list(session.id, order=order)]
        assert len(listed) == len(set(listed)), "duplicates across pages"
        if order == "desc":
            listed.reverse()
        assert [i for i in listed if i in sent] == sent, order
    # One event larger than the cap still makes a page of its own.
    before = [e.id for e in client.beta.sessions.events.list(session.id, limit=1000)]
    [big] = client.beta.sessions.events.send(session.id, events=[user_message("big:" + "y" * (5 * MiB))]).data
    everything = [e.id for e in client.beta.sessions.events.list(session.id, limit=1000)]
    assert everything == before + [big.id]
