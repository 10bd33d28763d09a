"""Soak run (issue 16, item 5): a fixed-rate mixed load against a real server for a bounded time,
sampling the server's resident memory, open files and threads and the clients' latencies every
interval, then a report.

It starts its own `managed-agents serve` (runner on, RocksDB in a temporary directory) and
`managed-agents mock-model`, and drives them with the official Python SDK from several client
threads. Operations, in a fixed rotation at `--rate` per second in all:

- `create`: a session (agent, environment and LLM vault made once);
- `text turn`: open the session's SSE stream, send a `user.message`, read until the idle event;
- `tool turn`: the same with a bash tool call run in the sandbox;
- `list`: the session's events (`limit=100`);
- `retire`: when more than `--sessions` are open, the oldest idle one is deleted.

Each sample also reads the server's `/metrics` memory figures, to say where the resident set
goes: the file-backed part (mostly the binary's own code pages, which the kernel reads in as
code first runs and drops under memory pressure) and the anonymous part (the heap and the
threads' stacks); jemalloc's `allocated` (the live heap of the whole process: jemalloc is its
`malloc`, RocksDB's C++ included) and `resident` (that plus pages the allocator keeps);
RocksDB's memtables, block cache, table readers and SST files, all inside `allocated`. Two
figures are derived: the heap outside RocksDB (`allocated` less RocksDB's memtables, block
cache and table readers, each bounded by configuration: the heap of the server's own code and
RocksDB's unbounded rest); and the anonymous resident set is split by what maps it
([`anon_split`]): the heap (jemalloc's mappings), the threads' stacks, and the binary's and
libraries' writable data, which add up to it.

It stops by itself after `--minutes` (at most 30). The exit status is 1 when any operation
failed; when, once the load is over and its sessions are deleted, the server holds more sockets
and pipes than before it (a leak of streams, sandboxes or connections); or when the live heap
grew over the second half of the run by more than the noise bound ([`heap_growth`]: the least-
squares trend of the heap outside RocksDB across the second half's samples, projected over that
half, against `max(2 MiB, 10 %)` of its level). The resident set is reported, not judged: it
also holds RocksDB's memtables, which fill to their budget and flush, and pages the allocator
keeps.

    "$(scripts/sdk-env.sh)/bin/python" benches/soak/soak.py --minutes 30 --rate 20   # the README run
    "$(scripts/sdk-env.sh)/bin/python" benches/soak/soak.py --minutes 2 --interval 20 # CI's run
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import anthropic
import httpx

ROLE = "sandbox0.managed_agents.role"
BASE_URL = "sandbox0.managed_agents.llm_base_url"
MAX_MINUTES = 30
ROTATION = ["create", "text turn", "list", "tool turn", "text turn", "list", "retire"]


def binary() -> str:
    explicit = os.environ.get("MANAGED_AGENTS_BIN")
    if explicit:
        return explicit
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/managed-agents/target"))
    for profile in ("release", "debug"):
        candidate = target / profile / "managed-agents"
        if candidate.is_file():
            return str(candidate)
    raise SystemExit("managed-agents binary not found: build it or set MANAGED_AGENTS_BIN")


def spawn(
    args: list[str], marker: str, stream: str, env: Optional[dict[str, str]] = None, log: Any = subprocess.DEVNULL
) -> tuple[subprocess.Popen[str], str]:
    """Starts a child and waits for the line starting with `marker` on `stream` (its URL); its
    other stream goes to `log`."""
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE if stream == "stdout" else log,
        stderr=subprocess.PIPE if stream == "stderr" else log,
        text=True,
        env=env,
    )
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    for line in pipe:
        if line.startswith(marker):
            url = line[len(marker) :].strip()
            threading.Thread(target=lambda: collections.deque(pipe, maxlen=0), daemon=True).start()
            return proc, url
    raise SystemExit(f"{args[1]} did not start")


def proc_status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon", "RssFile", "Threads"):
                fields[name] = int(value.split()[0])
    fds = os.listdir(f"/proc/{pid}/fd")
    fields["fds"] = len(fds)
    # Sockets and pipes (connections, streams, sandbox shells); RocksDB's table files are the
    # rest, and they grow with the data, legitimately.
    links = []
    for fd in fds:
        try:
            links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    fields["sockets_pipes"] = sum(1 for link in links if link.startswith(("socket:", "pipe:")))
    return fields


def anon_split(pid: int) -> dict[str, int]:
    """The anonymous resident set in KiB by what maps it, from `/proc/<pid>/smaps`: `stacks`
    (the main stack, and every anonymous mapping right above a no-access guard mapping: thread
    stacks and their signal stacks), `images` (the copied-on-write pages of the binary's and
    libraries' mappings, and the anonymous mapping right after an image: its `.bss`), and
    `heap`, the rest: the allocator's mappings (jemalloc is the process's `malloc`)."""
    split = {"stacks": 0, "images": 0, "heap": 0}
    previous_end, previous_kind = None, ""
    kind = ""
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                low, high = (int(x, 16) for x in head[0].split("-"))
                path = head[5] if len(head) > 5 else ""
                adjacent = previous_end == low
                if path == "[stack]":
                    kind = "stacks"
                elif path.startswith("/"):
                    kind = "images"
                elif adjacent and previous_kind == "guard":
                    kind = "stacks"
                elif adjacent and previous_kind == "images" and not path:
                    kind = "images"
                elif head[1] == "---p":
                    kind = "guard"
                else:
                    kind = "heap"
                previous_end, previous_kind = high, ("guard" if head[1] == "---p" else kind)
            elif head[0] == "Anonymous:" and kind in split:
                split[kind] += int(head[1])
    return split


def wal_mib(data_dir: Path) -> float:
    """The size of RocksDB's write-ahead logs: what its memtables hold until the next flush
    (RSS grows with it, up to the write buffer size, and drops back after a flush)."""
    return round(sum(p.stat().st_size for p in (data_dir / "db").glob("*.log")) / (1 << 20), 1)


def memory_figures(url: str) -> dict[str, float]:
    """The `/metrics` memory gauges (`managed_agents_jemalloc_*`, `managed_agents_rocksdb_*`)
    by their name without the prefix, in MiB (the SST file count as is)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    figures = {}
    for line in text.splitlines():
        for prefix, short in (("managed_agents_jemalloc_", "je_"), ("managed_agents_rocksdb_", "rocks_")):
            if line.startswith(prefix):
                name, _, value = line.partition(" ")
                key = short + name[len(prefix) :].removesuffix("_bytes")
                figures[key] = float(value) if key == "rocks_sst_files" else float(value) / (1 << 20)
    return figures


def heap_growth(samples: list[dict[str, Any]]) -> tuple[float, float]:
    """The live heap's growth over the second half of the run and the noise bound it is held to,
    in MiB: the least-squares slope of the heap outside RocksDB's bounded caches and memtables
    over the second half's samples times that half's length (a steady leak shows in full; one busy sample moves it little), and
    `max(2 MiB, 10 % of the half's mean)` (turns in flight, sessions opening and closing)."""
    half = samples[len(samples) // 2 :]
    if len(half) < 2:
        return 0.0, float("inf")
    xs = [s["minute"] for s in half]
    ys = [s["heap_other_mib"] for s in half]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / spread if spread else 0.0
    return slope * (xs[-1] - xs[0]), max(2.0, 0.1 * my)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Soak:
    def __init__(self, client: anthropic.Anthropic, agent: Any, environment: Any, vault: Any, sessions: int):
        self.client = client
        self.agent = agent
        self.environment = environment
        self.vault = vault
        self.max_sessions = sessions
        self.lock = threading.Lock()
        self.idle: collections.deque[str] = collections.deque()
        self.open = 0
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: list[str] = []
        self.done_ops = 0
        self.late = 0

    # ---- the operations --------------------------------------------------------------------

    def take(self) -> Optional[str]:
        with self.lock:
            return self.idle.popleft() if self.idle else None

    def give(self, session_id: str) -> None:
        with self.lock:
            self.idle.append(session_id)

    def create(self) -> None:
        session = self.client.beta.sessions.create(
            agent=self.agent.id, environment_id=self.environment.id, vault_ids=[self.vault.id]
        )
        with self.lock:
            self.open += 1
        self.give(session.id)

    def turn(self, prompt: str, expect: str) -> None:
        session_id = self.take()
        if session_id is None:
            return self.create()
        try:
            with self.client.beta.sessions.events.stream(session_id) as stream:
                self.client.beta.sessions.events.send(
                    session_id, events=[{"type": "user.message", "content": [{"type": "text", "text": prompt}]}]
                )
                seen = []
                for event in stream:
                    seen.append(event.type)
                    if event.type == "session.status_idle":
                        break
                    if event.type in ("session.error", "session.status_terminated"):
                        raise RuntimeError(f"turn failed: {seen}: {getattr(event, 'error', event)}")
            if expect not in seen:
                raise RuntimeError(f"no {expect} in {seen}")
        finally:
            self.give(session_id)

    def list_events(self) -> None:
        session_id = self.take()
        if session_id is None:
            return self.create()
        try:
            self.client.beta.sessions.events.list(session_id, limit=100)
        finally:
            self.give(session_id)

    def retire(self) -> None:
        with self.lock:
            if self.open <= self.max_sessions or not self.idle:
                return
            session_id = self.idle.popleft()
            self.open -= 1
        self.client.beta.sessions.delete(session_id)

    def run_one(self, name: str) -> None:
        operations: dict[str, Callable[[], None]] = {
            "create": self.create,
            "text turn": lambda: self.turn("[[mock:text soak]]", "agent.message"),
            "tool turn": lambda: self.turn('[[mock:tool bash {"command": "echo soak"}]]', "agent.tool_result"),
            "list": self.list_events,
            "retire": self.retire,
        }
        started = time.monotonic()
        try:
            operations[name]()
        except Exception as error:  # noqa: BLE001  (every failure is counted and reported)
            with self.lock:
                self.errors.append(f"{name}: {type(error).__name__}: {error}")
            return
        elapsed = time.monotonic() - started
        with self.lock:
            self.latencies[name].append(elapsed)
            self.done_ops += 1

    def window(self) -> tuple[dict[str, list[float]], int, int]:
        with self.lock:
            latencies, self.latencies = self.latencies, collections.defaultdict(list)
            done, self.done_ops = self.done_ops, 0
            return latencies, done, len(self.errors)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=60, help="seconds between samples")
    parser.add_argument("--rate", type=float, default=20, help="operations per second in all")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=24, help="sessions kept open")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    parser.add_argument("--server-log", type=Path, help="write the server's log (warnings and errors) here")
    parser.add_argument("--serve-arg", action="append", default=[], help="an extra flag for `serve` (repeatable)")
    args = parser.parse_args()
    minutes = min(args.minutes, MAX_MINUTES)
    key = "sk-soak-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        base = Path(tmp)
        # The sandbox runs as an unprivileged uid that must pass through to the workspaces.
        for p in [base, *base.parents]:
            p.chmod(p.stat().st_mode | 0o001)
        env = dict(os.environ, MANAGED_AGENTS_BOOTSTRAP_KEY=key, MANAGED_AGENTS_RUNNER="on", MANAGED_AGENTS_LOG="warn")
        for name in ("MANAGED_AGENTS_LISTEN", "MANAGED_AGENTS_STORAGE", "MANAGED_AGENTS_DATA_DIR"):
            env.pop(name, None)
        log = args.server_log.open("w") if args.server_log else subprocess.DEVNULL
        server, url = spawn(
            [binary(), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(base / "data"), *args.serve_arg],
            "listening on ",
            "stdout",
            env,
            log,
        )
        mock, mock_url = spawn([binary(), "mock-model", "--listen", "127.0.0.1:0"], "mock model listening on ", "stderr")
        try:
            return soak(args, minutes, server, url, mock_url, key, base / "data")
        finally:
            for child in (server, mock):
                child.terminate()
                try:
                    child.wait(30)
                except subprocess.TimeoutExpired:
                    child.kill()


def soak(
    args: argparse.Namespace,
    minutes: float,
    server: subprocess.Popen[str],
    url: str,
    mock_url: str,
    key: str,
    data_dir: Path,
) -> int:
    client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=2, timeout=60)
    agent = client.beta.agents.create(name="soak", model="claude-sonnet-4-6", tools=[{"type": "agent_toolset_20260401"}])
    environment = client.beta.environments.create(name="soak")
    vault = client.beta.vaults.create(display_name="llm", metadata={ROLE: "llm", BASE_URL: mock_url})
    client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": "sk-soak-model"})
    state = Soak(client, agent, environment, vault, args.sessions)
    before = proc_status(server.pid)

    stop = threading.Event()
    deadline = time.monotonic() + minutes * 60
    rotation = itertools.cycle(ROTATION)
    rotation_lock = threading.Lock()
    period = args.clients / args.rate  # each client's share of the fixed rate

    def client_loop(offset: float) -> None:
        next_at = time.monotonic() + offset
        while not stop.is_set() and time.monotonic() < deadline:
            delay = next_at - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            elif delay < -period:
                with state.lock:
                    state.late += 1
            with rotation_lock:
                name = next(rotation)
            state.run_one(name)
            next_at += period

    threads = [
        threading.Thread(target=client_loop, args=(i * period / args.clients,), daemon=True) for i in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    samples = []
    started = time.monotonic()
    columns = [
        "minute", "RSS MiB", "RSS file MiB", "RSS anon MiB", "allocated MiB", "jemalloc resident MiB",
        "memtables MiB", "block cache MiB", "table readers MiB", "heap outside RocksDB MiB",
        "anon: heap MiB", "anon: stacks MiB", "anon: images MiB", "SST files", "WAL MiB",
        "open files", "threads", "ops/s", "p50 ms", "p99 ms", "slowest op p99", "errors",
    ]  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    # A window is sampled while at least a second of the run is left (no sliver at the end).
    while deadline - time.monotonic() > 1.0:
        stop.wait(min(args.interval, deadline - time.monotonic()))
        latencies, done, errors = state.window()
        status = proc_status(server.pid)
        memory = memory_figures(url)
        anon = anon_split(server.pid)
        every = [v for values in latencies.values() for v in values]
        slowest = max(latencies.items(), key=lambda kv: percentile(kv[1], 0.99), default=("-", []))
        rocks = sum(memory.get(k, 0.0) for k in ("rocks_memtable", "rocks_block_cache_usage", "rocks_table_readers"))
        sample = {
            "minute": round((time.monotonic() - started) / 60, 2),
            "rss_mib": round(status["VmRSS"] / 1024, 1),
            "rss_file_mib": round(status["RssFile"] / 1024, 1),
            "rss_anon_mib": round(status["RssAnon"] / 1024, 1),
            "allocated_mib": round(memory.get("je_allocated", 0.0), 2),
            "je_resident_mib": round(memory.get("je_resident", 0.0), 1),
            "memtables_mib": round(memory.get("rocks_memtable", 0.0), 1),
            "block_cache_mib": round(memory.get("rocks_block_cache_usage", 0.0), 1),
            "table_readers_mib": round(memory.get("rocks_table_readers", 0.0), 2),
            "heap_other_mib": round(memory.get("je_allocated", 0.0) - rocks, 2),
            "anon_heap_mib": round(anon["heap"] / 1024, 1),
            "anon_stacks_mib": round(anon["stacks"] / 1024, 1),
            "anon_images_mib": round(anon["images"] / 1024, 1),
            "sst_files": int(memory.get("rocks_sst_files", 0)),
            "wal_mib": wal_mib(data_dir),
            "fds": status["fds"],
            "threads": status["Threads"],
            "ops_per_s": round(done / args.interval, 1),
            "p50_ms": round(percentile(every, 0.5) * 1000, 1),
            "p99_ms": round(percentile(every, 0.99) * 1000, 1),
            "slowest": f"{slowest[0]} {percentile(slowest[1], 0.99) * 1000:.0f}",
            "errors": errors,
        }
        samples.append(sample)
        print("| " + " | ".join(str(v) for v in sample.values()) + " |", flush=True)
    stop.set()
    for thread in threads:
        thread.join(120)
    # Quiet: every stream is closed and every turn settled. The sessions still open are deleted
    # (with their sandboxes), so what the server holds now should be what it held before.
    while True:
        session_id = state.take()
        if session_id is None:
            break
        client.beta.sessions.delete(session_id)
    client.close()  # its pooled keep-alive connections are not the server's to answer for
    time.sleep(3)
    after = proc_status(server.pid)
    load = os.getloadavg()
    print()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; late ticks: {state.late}")
    print(
        f"open files before the load: {before['fds']} ({before['sockets_pipes']} sockets and pipes), "
        f"after it and its sessions: {after['fds']} ({after['sockets_pipes']} sockets and pipes)"
    )
    warm = samples[1] if len(samples) > 1 else samples[0]
    growth = (samples[-1]["rss_mib"] - warm["rss_mib"]) / warm["rss_mib"] * 100
    print(f"RSS after warm-up {warm['rss_mib']} MiB, at the end {samples[-1]['rss_mib']} MiB ({growth:+.1f} %)")
    heap, bound = heap_growth(samples)
    print(
        f"heap outside RocksDB (jemalloc allocated less RocksDB's memtables and caches) after warm-up "
        f"{warm['heap_other_mib']} MiB, at the end {samples[-1]['heap_other_mib']} MiB; its trend over the "
        f"second half {heap:+.2f} MiB (noise bound {bound:.1f} MiB)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "samples": samples,
                    "before": before,
                    "after": after,
                    "errors": state.errors,
                    "heap_growth_mib": heap,
                    "heap_noise_bound_mib": bound,
                }
            )
        )
    failed = False
    if state.errors:
        print(f"{len(state.errors)} operations failed; the first ones:")
        for error in state.errors[:10]:
            print("  " + error)
        failed = True
    if after["sockets_pipes"] > before["sockets_pipes"] + 4:
        print(f"the server holds {after['sockets_pipes'] - before['sockets_pipes']} more sockets and pipes than before the load")
        failed = True
    if heap > bound:
        print(
            f"the heap outside RocksDB grew {heap:.2f} MiB over the second half of the run, "
            f"beyond the noise bound of {bound:.1f} MiB"
        )
        failed = True
    print("soak: " + ("FAILED" if failed else "ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
