"""Runners that take sessions by lease (issue 14, item 3): two `serve --runner on` nodes over one
PostgreSQL cluster and one shared data directory (workspaces, sealing key), each session's
lease lasting 3 s. Official SDK, real servers, real sandboxes, the mock model.

- SIGKILL the node running a session's turn mid-tool-call: once the lease lapses the other
  node takes the session over, closes the cut call with an error result, reschedules and ends
  the turn; no event is lost or duplicated, and the session takes new input.
- SIGSTOP the node running a turn until the other has taken the session over and finished its
  turn, then SIGCONT it: its tool call completes and its late append is refused (the log holds
  the successor's claim), so the log never shows the stale runner's result.
- SIGTERM (an orderly stop, a rolling restart) releases the node's leases: with leases of ten
  minutes, the other node still takes the cut turn over within seconds (its rescan retries a
  refused session after at most 5 s, whatever the lease's length).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import pytest

from conftest import PgCluster, ServerProcess, new_key
from harness_support import (
    Harness,
    MockModel,
    bash,
    llm_vault,
    mock,  # noqa: F401  (fixture)
    searchable,
    stop_type,
    text,
    tool_results,
    types,
    wait_for,
)

LEASE_SECONDS = "3"


class Pair:
    """Two runner nodes over one cluster and one data directory."""

    def __init__(self, base: Path, extra_args: Sequence[str] = (), lease_seconds: str = LEASE_SECONDS) -> None:
        searchable(base)
        self.base = base
        self.key = new_key()
        self.cluster = PgCluster()
        self.nodes: list[ServerProcess] = []
        try:
            for name in ("a", "b"):
                node = ServerProcess(
                    "postgres",
                    base / "data",
                    self.key,
                    base / f"node-{name}.log",
                    runner=True,
                    args=["--runner-lease-seconds", lease_seconds, *extra_args],
                    cluster=self.cluster,
                )
                self.nodes.append(node.start())
        except BaseException:
            self.stop()
            raise

    def running(self, marker: str) -> Optional[ServerProcess]:
        """The node whose process tree runs a command line containing `marker`."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None and runs(node.proc.pid, marker):
                return node
        return None

    def other(self, node: ServerProcess) -> ServerProcess:
        return next(n for n in self.nodes if n is not node)

    def stop(self) -> list[int]:
        codes = []
        for node in self.nodes:
            if node.proc is not None:
                codes.append(node.stop_server())
        self.cluster.stop()
        return codes


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces: the fields after it start after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, parent in parents.items():
            if parent == current and child not in found:
                found.add(child)
                frontier.append(child)
    return found


def runs(pid: int, marker: str) -> bool:
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if marker.encode() in cmdline:
            return True
    return False


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path / "pair")
    yield p
    p.stop()


def harness_on(node: ServerProcess, mock: MockModel) -> Harness:
    client = node.client()
    return Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]


def settled_after(h: Harness, session_id: str, count: int, timeout: float = 120) -> list[Any]:
    def idle_again() -> Any:
        events = h.events(session_id)
        return events if len(events) > count and events[-1].type == "session.status_idle" else None

    return wait_for(idle_again, timeout=timeout)


def send(h: Harness, session_id: str, prompt: str) -> None:
    h.send(session_id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})


def test_a_killed_runner_node_s_session_is_taken_over_after_its_lease(pair: Pair, mock: MockModel) -> None:
    h = harness_on(pair.nodes[0], mock)
    session = h.session()
    send(h, session.id, bash("sleep 61"))
    wait_for(lambda: "agent.tool_use" in types(h.events(session.id)))
    running = wait_for(lambda: pair.running("sleep 61"), timeout=60)
    survivor = pair.other(running)
    before = h.events(session.id)
    assert running.proc is not None
    running.proc.kill()
    running.proc.wait()
    running.proc = None
    h.client = survivor.client()

    events = settled_after(h, session.id, len(before))
    ids = [e.id for e in events]
    assert len(ids) == len(set(ids)), "no event is duplicated"
    assert ids[: len(before)] == [e.id for e in before], "no event is lost"
    after = types(events)[len(before) :]
    assert after[:3] == ["agent.tool_result", "session.status_rescheduled", "session.status_running"], after
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error, results
    assert "server restarted" in text(results[0])
    assert stop_type(events[-1]) == "end_turn"
    assert "session.error" not in types(events)
    # The survivor runs the session from now on.
    assert stop_type(h.turn(session.id, "[[mock:text carried on]]")[-1]) == "end_turn"
    assert pair.running("sleep 61") is None


def test_a_paused_runner_s_late_append_is_refused_after_the_takeover(pair: Pair, mock: MockModel) -> None:
    h = harness_on(pair.nodes[1], mock)
    session = h.session()
    # Long enough for the takeover to finish first; the stale node then completes it.
    send(h, session.id, bash("sleep 12; echo stale-runner-result"))
    wait_for(lambda: "agent.tool_use" in types(h.events(session.id)))
    stale = wait_for(lambda: pair.running("sleep 12"), timeout=60)
    successor = pair.other(stale)
    assert stale.proc is not None
    before = len(h.events(session.id))
    stale.proc.send_signal(signal.SIGSTOP)
    try:
        h.client = successor.client()
        events = settled_after(h, session.id, before)
        after = types(events)[before:]
        assert after[:3] == ["agent.tool_result", "session.status_rescheduled", "session.status_running"], after
        assert stop_type(events[-1]) == "end_turn"
    finally:
        stale.proc.send_signal(signal.SIGCONT)

    # The stale runner's command completes and its result is refused.
    wait_for(lambda: "its lease passed to another runner" in stale.log_path.read_text(), timeout=90)
    final = h.events(session.id)
    results = tool_results(final)
    assert len(results) == 1, [text(r) for r in results]
    assert "stale-runner-result" not in text(results[0])
    assert "server restarted" in text(results[0])
    assert [e.id for e in final[: len(events)]] == [e.id for e in events]
    assert final[-1].type == "session.status_idle" and stop_type(final[-1]) == "end_turn"
    assert "session.error" not in types(final)
    # Either node may run the next turn; the session goes on.
    assert stop_type(h.turn(session.id, "[[mock:text both well]]")[-1]) == "end_turn"


def test_sessions_sent_through_both_nodes_run_each_turn_exactly_once(pair: Pair, mock: MockModel) -> None:
    """Both nodes run turns; each send wakes its own node's runner, and the other node's rescan
    sees every running session too, so without the lease a turn could run twice."""
    clients = [node.client() for node in pair.nodes]
    h = Harness(client=clients[0], server=None, mock=mock, vault=llm_vault(clients[0], mock.url), token="")  # type: ignore[arg-type]
    sessions = [h.session() for _ in range(4)]
    for turn in range(3):
        for n, session in enumerate(sessions):
            h.client = clients[(n + turn) % 2]
            send(h, session.id, f"[[mock:text turn {turn} of {n}]]")
        for n, session in enumerate(sessions):
            wait_for(
                lambda: sum(1 for e in h.events(session.id) if e.type == "session.status_idle") == turn + 1
                and h.events(session.id)[-1].type == "session.status_idle",
                timeout=120,
            )
    for n, session in enumerate(sessions):
        events = h.events(session.id)
        messages = [text(e) for e in events if e.type == "agent.message"]
        assert messages == [f"turn {t} of {n}" for t in range(3)], messages
        assert types(events).count("session.status_running") == 3, types(events)
        assert "session.error" not in types(events)
    # The model was asked once per turn.
    asked = [r for r in h.model_requests() if "of " in str(r["body"])]
    assert len(asked) == 12, len(asked)


def test_an_interrupt_sent_through_the_other_node_stops_the_turn(pair: Pair, mock: MockModel) -> None:
    """The runner holding the session follows its log across nodes: an interrupt sent through
    the node that does not run the turn stops it (that node's own runner leaves it alone)."""
    h = harness_on(pair.nodes[0], mock)
    session = h.session()
    send(h, session.id, bash("sleep 62"))
    wait_for(lambda: "agent.tool_use" in types(h.events(session.id)))
    running = wait_for(lambda: pair.running("sleep 62"), timeout=60)
    h.client = pair.other(running).client()
    before = len(h.events(session.id))
    h.send(session.id, {"type": "user.interrupt"})
    events = settled_after(h, session.id, before, timeout=30)
    assert stop_type(events[-1]) == "end_turn"
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error, types(events)
    assert "session.status_rescheduled" not in types(events)
    wait_for(lambda: pair.running("sleep 62") is None, timeout=30)


def test_an_orderly_stop_hands_its_sessions_over_at_once(tmp_path: Path, mock: MockModel) -> None:
    pair = Pair(tmp_path / "pair", lease_seconds="600")
    try:
        h = harness_on(pair.nodes[0], mock)
        session = h.session()
        send(h, session.id, bash("sleep 63"))
        wait_for(lambda: "agent.tool_use" in types(h.events(session.id)))
        running = wait_for(lambda: pair.running("sleep 63"), timeout=60)
        h.client = pair.other(running).client()
        before = len(h.events(session.id))
        assert running.stop_server() == 0
        assert "session leases released" in running.log_path.read_text()
        # Far sooner than the 600 s lease: the released lease is taken by the other node's next
        # rescan (at most 5 s after it was last refused the lease, whatever the lease's length).
        events = settled_after(h, session.id, before, timeout=60)
        after = types(events)[before:]
        assert after[:3] == ["agent.tool_result", "session.status_rescheduled", "session.status_running"], after
        assert stop_type(events[-1]) == "end_turn"
        assert "session.error" not in types(events)
    finally:
        pair.stop()
