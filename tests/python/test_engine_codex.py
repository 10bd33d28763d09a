"""The `codex` engine (issue 10): Codex (`codex app-server`, the pinned `@openai/codex`,
installed by scripts/agent-runtimes.sh) runs inside the session's sandbox and reaches the mock
model only through the door's LLM gateway. Text and tool turns, a file that outlives turns and
a server restart (the same Codex thread is resumed), `always_ask` allow and deny, an interrupt
during `sleep 30`, the vault token only ever on the gateway's side, spans and usage.

The mock answers Codex's `/v1/responses` requests; `[[mock:tool exec_command {"cmd": ...}]]`
makes it call Codex's shell tool, which our events name `bash`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from conftest import REPO, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401  (fixtures)
    REVISED_ONCE,
    Harness,
    define_outcome,
    idle_after,
    MockModel,
    llm_vault,
    mock,
    searchable,
    settled,
    stop_type,
    text,
    tool_prompt,
    tool_results,
    types,
    wait_for,
)

TURN_WAIT = 120.0
ASK = {"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "always_ask"}}}


def runtimes_dir() -> str:
    """The runtime directory with the pinned Codex, installed by scripts/agent-runtimes.sh when
    missing (a failed install fails the test; nothing is skipped)."""
    out = subprocess.run(
        [str(REPO / "scripts" / "agent-runtimes.sh")], check=True, capture_output=True, text=True, timeout=900
    )
    return out.stdout.strip().splitlines()[-1]


class CodexServer:
    """A server with the runner on and the runtime directory set, restartable on its data dir."""

    def __init__(self, base: Path, runtimes: str):
        searchable(base)
        self.base = base
        self.key = new_key()
        self.runtimes = runtimes
        self.process: Optional[ServerProcess] = None

    def start(self) -> "CodexServer":
        saved = os.environ.get("MANAGED_AGENTS_RUNTIMES_DIR")
        os.environ["MANAGED_AGENTS_RUNTIMES_DIR"] = self.runtimes
        try:
            self.process = ServerProcess(
                "rocksdb", self.base / "data", self.key, self.base / "server.log", runner=True
            ).start()
        finally:
            if saved is None:
                os.environ.pop("MANAGED_AGENTS_RUNTIMES_DIR", None)
            else:
                os.environ["MANAGED_AGENTS_RUNTIMES_DIR"] = saved
        return self

    def stop(self) -> None:
        if self.process is not None:
            code = self.process.stop()
            log = self.process.log_tail()
            self.process = None
            assert code == 0, f"server exited with {code}; log tail:\n{log}"

    def crash(self) -> None:
        """Kills the server (SIGKILL) and starts it again on the same data dir."""
        assert self.process is not None and self.process.proc is not None
        self.process.proc.kill()
        self.process.proc.wait()
        self.process.proc = None
        self.process = None
        self.start()

    def harness(self, mock: MockModel) -> Harness:
        """A client, the mock and an LLM vault selecting the `codex` engine."""
        assert self.process is not None
        client = self.process.client()
        token = "sk-codex-" + unique("secret")
        vault = llm_vault(client, mock.url, token, engine="codex")
        server: Any = None
        return Harness(client=client, server=server, mock=mock, vault=vault, token=token)


@pytest.fixture(scope="module")
def runtimes() -> str:
    return runtimes_dir()


@pytest.fixture(scope="module")
def codex_server(tmp_path_factory: pytest.TempPathFactory, runtimes: str) -> Iterator[CodexServer]:
    server = CodexServer(tmp_path_factory.mktemp("codex-server"), runtimes).start()
    yield server
    server.stop()


@pytest.fixture
def h(codex_server: CodexServer, mock: MockModel) -> Harness:
    return codex_server.harness(mock)


def shell(command: str, before: str = "") -> str:
    return tool_prompt("exec_command", {"cmd": command}, before)


def codex_agent(h: Harness, **kwargs: Any) -> Any:
    kwargs.setdefault("model", "gpt-5")
    return h.agent(**kwargs)


def responses(h: Harness) -> list[dict[str, Any]]:
    return [r for r in h.mock.requests() if r["path"].endswith("/v1/responses")]


def header(request: dict[str, Any], name: str) -> str:
    return next((v for k, v in request["headers"].items() if k.lower() == name), "")


def dump(events: list[Any]) -> list[Any]:
    """What a failed assertion shows: each event's type, text and error."""
    return [(e.type, text(e), getattr(e, "error", None)) for e in events]


def processes_of(session_id: str) -> list[int]:
    """Host processes whose environment names the session (Codex's placeholder key does)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue
        if session_id.encode() in environ:
            found.append(int(entry.name))
    return found


def host_processes_with(marker: str) -> list[str]:
    found = []
    for entry in os.scandir("/proc"):
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def test_text_turn_with_spans_and_usage(h: Harness) -> None:
    session = h.session(agent=codex_agent(h, system="Answer in one word."))
    events = h.turn(session.id, "[[mock:text hello from codex]]", TURN_WAIT)
    kinds = types(events)
    seen = dump(events)
    assert kinds[:2] == ["user.message", "session.status_running"], seen
    assert kinds[-1] == "session.status_idle" and stop_type(settled(events)) == "end_turn", seen
    messages = [e for e in events if e.type == "agent.message"]
    assert [text(m) for m in messages] == ["hello from codex"], seen
    assert "session.error" not in kinds, seen

    # The gateway recorded the model request (before Codex saw the end of the response, so
    # before the turn's idle): a span with its usage, and the session's usage. Codex may report
    # the message from an earlier part of the stream, so the message and the span's end come
    # in either order (the API's typical order is the message first).
    starts = [e for e in events if e.type == "span.model_request_start"]
    ends = [e for e in events if e.type == "span.model_request_end"]
    assert len(starts) == len(ends) == 1, seen
    assert kinds.index("span.model_request_start") < kinds.index("agent.message"), seen
    assert kinds.index("span.model_request_end") < kinds.index("session.status_idle"), seen
    assert ends[0].model_request_start_id == starts[0].id, seen
    assert ends[0].model_usage.input_tokens > 0 and ends[0].model_usage.output_tokens > 0, seen
    usage = h.client.beta.sessions.retrieve(session.id).usage
    assert usage.input_tokens >= ends[0].model_usage.input_tokens, (usage, seen)

    # The agent's model and system prompt reached the model.
    request = responses(h)[-1]
    assert request["body"]["model"] == "gpt-5"
    assert "Answer in one word." in json.dumps(request["body"]["input"])


def test_tool_turn_file_persists_into_the_next_turn(h: Harness) -> None:
    session = h.session(agent=codex_agent(h))
    marker = unique("codex-was-here")
    first = h.turn(session.id, shell(f"echo {marker} > note.txt && cat note.txt"), TURN_WAIT)
    uses = [e for e in first if e.type == "agent.tool_use"]
    assert [u.name for u in uses] == ["bash"], types(first)
    assert uses[0].input == {"command": f"echo {marker} > note.txt && cat note.txt"}
    assert uses[0].evaluated_permission == "allow"
    results = tool_results(first)
    assert len(results) == 1 and results[0].tool_use_id == uses[0].id
    assert marker in text(results[0]) and not results[0].is_error
    assert stop_type(first[-1]) == "end_turn"

    second = h.turn(session.id, shell("cat note.txt"), TURN_WAIT)
    assert marker in text(tool_results(second)[0])
    # One Codex thread: the second turn's request carries the first turn's conversation.
    assert f"echo {marker} > note.txt" in json.dumps(responses(h)[-1]["body"]["input"])


def test_always_ask_allow_runs_and_deny_does_not(h: Harness) -> None:
    session = h.session(agent=codex_agent(h, tools=[ASK]))

    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": shell("echo allowed > allowed.txt")}]})
    waiting = h.wait_idle(session.id, sent[0].id, TURN_WAIT)
    assert stop_type(waiting[-1]) == "requires_action", types(waiting)
    use = next(e for e in waiting if e.type == "agent.tool_use")
    assert use.name == "bash" and use.evaluated_permission == "ask"
    assert waiting[-1].stop_reason.event_ids == [use.id]
    assert not tool_results(waiting)

    allowed = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = h.wait_idle(session.id, allowed[0].id, TURN_WAIT)
    result = tool_results(after)
    assert len(result) == 1 and result[0].tool_use_id == use.id and not result[0].is_error
    assert stop_type(after[-1]) == "end_turn", types(after)

    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": shell("echo denied > denied.txt")}]})
    waiting = h.wait_idle(session.id, sent[0].id, TURN_WAIT)
    use = next(e for e in waiting if e.type == "agent.tool_use")
    denied = h.send(
        session.id,
        {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny", "deny_message": "not that file"},
    )
    after = h.wait_idle(session.id, denied[0].id, TURN_WAIT)
    result = [r for r in tool_results(after) if r.tool_use_id == use.id]
    assert len(result) == 1 and result[0].is_error and "not that file" in text(result[0])
    assert stop_type(after[-1]) == "end_turn", types(after)

    # Only the allowed command ran.
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": shell("ls")}]})
    waiting = h.wait_idle(session.id, sent[0].id, TURN_WAIT)
    use = next(e for e in waiting if e.type == "agent.tool_use")
    allowed = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    listing = text(tool_results(h.wait_idle(session.id, allowed[0].id, TURN_WAIT))[0])
    assert "allowed.txt" in listing and "denied.txt" not in listing, listing


def test_deleting_a_session_that_waits_for_a_confirmation_ends_its_codex(h: Harness) -> None:
    session = h.session(agent=codex_agent(h, tools=[ASK]))
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": shell("echo hi")}]})
    waiting = h.wait_idle(session.id, sent[0].id, TURN_WAIT)
    assert stop_type(waiting[-1]) == "requires_action", dump(waiting)
    # Codex is kept, waiting for our answer to its approval request ...
    assert processes_of(session.id)
    h.client.beta.sessions.delete(session.id)
    # ... until the session is gone (the runner, woken by the delete, ends it).
    wait_for(lambda: processes_of(session.id) == [], TURN_WAIT)


def test_interrupt_stops_sleep_and_the_next_turn_continues(h: Harness) -> None:
    session = h.session(agent=codex_agent(h))
    # `sleep 30.<n>`: thirty seconds, and a command line no other test's process has.
    nap = f"sleep 30.{time.time_ns() % 1_000_000:06d}"
    command = f"{nap} && echo done"
    sent = h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": shell(command)}]})
    wait_for(lambda: any(e.type == "agent.tool_use" for e in h.events(session.id)), TURN_WAIT)
    wait_for(lambda: host_processes_with(nap), TURN_WAIT)
    interrupt = h.send(session.id, {"type": "user.interrupt"})
    events = h.wait_idle(session.id, sent[0].id, TURN_WAIT)
    assert interrupt[0].id in [e.id for e in events]
    assert stop_type(settled(events)) == "end_turn"
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error, types(events)
    # The whole process tree is gone, not only Codex.
    assert host_processes_with(nap) == []

    after = h.turn(session.id, "[[mock:text still here]]", TURN_WAIT)
    assert [text(e) for e in after if e.type == "agent.message"] == ["still here"], types(after)


def test_the_vault_token_reaches_the_model_only_through_the_gateway(h: Harness) -> None:
    session = h.session(agent=codex_agent(h))
    events = h.turn(session.id, shell("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; ls -la ~ ~/.codex"), TURN_WAIT)
    output = text(tool_results(events)[0])
    assert "MANAGED_AGENTS_LLM_KEY" in output  # the placeholder's variable is there ...
    assert h.token not in output  # ... but not the token
    for request in responses(h):
        # The mock saw the vault's token, put there by the gateway.
        assert header(request, "authorization") == f"Bearer {h.token}"
    for event in h.events(session.id):
        assert h.token not in event.model_dump_json()


def test_the_thread_survives_a_server_restart(
    tmp_path_factory: pytest.TempPathFactory, runtimes: str, mock: MockModel
) -> None:
    # A short base: the session's door socket lives under the data dir (unix socket paths are
    # limited to 108 bytes).
    server = CodexServer(tmp_path_factory.mktemp("cxr"), runtimes).start()
    try:
        h = server.harness(mock)
        session = h.session(agent=codex_agent(h))
        marker = unique("before-restart")
        first = h.turn(session.id, shell(f"echo {marker} > kept.txt"), TURN_WAIT)
        ran = tool_results(first)
        assert len(ran) == 1 and not ran[0].is_error, dump(first)
        assert stop_type(first[-1]) == "end_turn"

        server.stop()
        server.start()
        assert server.process is not None
        h.client = server.process.client()
        after = h.turn(session.id, shell("cat kept.txt"), TURN_WAIT)
        assert marker in text(tool_results(after)[0]), types(after)
        # The same Codex thread: the request after the restart carries the turn before it.
        assert f"echo {marker} > kept.txt" in json.dumps(responses(h)[-1]["body"]["input"])
    finally:
        server.stop()


def test_an_outcome_is_graded_and_codex_revises(h: Harness) -> None:
    session = h.session(agent=codex_agent(h))
    defined = define_outcome(h, session.id, *REVISED_ONCE)
    events = h.wait_idle(session.id, defined.id, timeout=2 * TURN_WAIT)
    seen = dump(events)
    assert stop_type(settled(events)) == "end_turn", seen
    ends = [e for e in events if e.type == "span.outcome_evaluation_end"]
    assert [e.result for e in ends] == ["needs_revision", "satisfied"], seen
    # Codex was given the outcome, then the grader's explanation as its next input.
    agent_requests = [r for r in responses(h) if "outcome grader" not in json.dumps(r["body"].get("instructions"))]
    inputs = [json.dumps(r["body"]["input"]) for r in agent_requests]
    assert any("Write a haiku about rust." in i for i in inputs), inputs
    assert "add a title" in inputs[-1]
    graded = h.client.beta.sessions.retrieve(session.id).outcome_evaluations
    assert [o.result for o in graded] == ["satisfied"]


def test_a_budget_stops_codex_at_its_cap(h: Harness) -> None:
    cap = {"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
    session = h.session(agent=codex_agent(h, model="claude-sonnet-4-6"), budget=cap)
    prompt = shell("echo capped", before="[[mock:usage 400000 1000]] ")
    events = h.turn(session.id, prompt, TURN_WAIT)
    seen = dump(events)
    assert stop_type(settled(events)) == "budget_reached", seen
    assert "capped" in text(tool_results(events)[0]), seen
    assert "session.error" not in types(events), seen
    assert len(responses(h)) == 1
    assert h.client.beta.sessions.retrieve(session.id).usage.list_cost.amount == "121"


#: The start of what the `claude` and `codex` engines tell the agent when a restart cut its turn.
RESUMED = "The server running this session restarted while you were working on the current request"


def test_a_kill_mid_turn_reschedules_and_codex_goes_on(
    tmp_path_factory: pytest.TempPathFactory, runtimes: str, mock: MockModel
) -> None:
    """Issue 16 item 3 on an agent CLI: a SIGKILL while Codex runs a command is a reschedule:
    the call gets the restart's error result, Codex resumes its thread, is told its turn was
    cut, and finishes the turn; no `session.error`."""
    server = CodexServer(tmp_path_factory.mktemp("cxk"), runtimes).start()
    try:
        h = server.harness(mock)
        session = h.session(agent=codex_agent(h))
        nap = f"sleep 60.{time.time_ns() % 1_000_000:06d}"
        prompt = shell(nap)
        h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})
        wait_for(lambda: "agent.tool_use" in types(h.events(session.id)), TURN_WAIT)
        wait_for(lambda: host_processes_with(nap), TURN_WAIT)
        before = len(h.events(session.id))
        server.crash()
        assert server.process is not None
        h.client = server.process.client()
        # The sandbox died with the server.
        assert host_processes_with(nap) == []

        events = idle_after(h, session.id, before, TURN_WAIT)
        after = types(events)[before:]
        assert after.index("session.status_rescheduled") < after.index("session.status_running"), dump(events)
        assert "session.error" not in types(events), dump(events)
        results = tool_results(events)
        assert len(results) == 1 and results[0].is_error, dump(events)
        assert "server restarted" in text(results[0])
        assert stop_type(settled(events)) == "end_turn"
        # Codex went on in its resumed thread: the request after the restart holds the cut
        # turn's command and the notice.
        resumed = [r for r in responses(h) if RESUMED in json.dumps(r["body"]["input"])]
        assert resumed, dump(events)
        assert nap in json.dumps(resumed[0]["body"]["input"])
        again = h.turn(session.id, "[[mock:text still here]]", TURN_WAIT)
        assert [text(e) for e in again if e.type == "agent.message"] == ["still here"], types(again)
    finally:
        server.stop()



def test_a_coordinator_delegates_through_codex(h: Harness) -> None:
    """A coordinator on the `codex` engine: its team tools are the Codex thread's dynamic
    tools; Codex's `item/tool/call` runs the roster member in a child thread (itself a Codex
    app-server, with a Codex home of its own in the session's workspace) and the child's reply
    is the tool's result."""
    reviewer = codex_agent(h, name=unique("reviewer"), description="reviews code")
    coordinator = codex_agent(
        h, name=unique("lead"), multiagent={"type": "coordinator", "agents": [reviewer.id]}
    )
    session = h.session(agent=coordinator)
    call = {"agent": reviewer.name, "message": "<<mock:text looks good>>"}
    events = h.turn(session.id, tool_prompt("message_agent", call), TURN_WAIT)
    seen = dump(events)
    assert "session.error" not in types(events), seen
    assert stop_type(settled(events)) == "end_turn", seen

    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [(u.name, u.input) for u in uses] == [("message_agent", call)], seen
    created = [e for e in events if e.type == "session.thread_created"]
    assert [c.agent_name for c in created] == [reviewer.name], seen
    child = created[0].session_thread_id
    lifecycle = [
        e.type
        for e in events
        if child in (
            getattr(e, "session_thread_id", None),
            getattr(e, "to_session_thread_id", None),
            getattr(e, "from_session_thread_id", None),
        )
    ]
    assert lifecycle == [
        "session.thread_created",
        "agent.thread_message_sent",
        "session.thread_status_running",
        "session.thread_status_idle",
        "agent.thread_message_received",
    ], seen
    kinds = types(events)
    assert kinds.index("agent.tool_use") < kinds.index("session.thread_created"), seen
    received = [e for e in events if e.type == "agent.thread_message_received"]
    assert [text(r) for r in received] == ["looks good"] and received[0].from_agent_name == reviewer.name
    # The reply is the call's only result, and the coordinator's final message uses it.
    results = tool_results(events)
    assert [r.tool_use_id for r in results] == [uses[0].id] and not results[0].is_error, seen
    assert "looks good" in text(results[0]) and child in text(results[0]), seen
    messages = [text(e) for e in events if e.type == "agent.message"]
    assert len(messages) == 1 and "looks good" in messages[0], seen
    assert kinds.index("agent.tool_result") < kinds.index("agent.message"), seen

    listed = list(h.client.beta.sessions.threads.list(session.id).data)
    assert len(listed) == 2
    primary, member = listed
    assert primary.parent_thread_id is None and primary.agent.id == coordinator.id
    assert member.id == child and member.parent_thread_id == primary.id
    assert member.agent.id == reviewer.id and member.status == "idle"
    assert member.usage is not None and member.usage.output_tokens > 0
    mine = list(h.client.beta.sessions.threads.events.list(child, session_id=session.id, limit=1000))
    assert mine[0].type == "agent.thread_message_received" and mine[0].from_session_thread_id == primary.id
    assert [text(e) for e in mine if e.type == "agent.message"] == ["looks good"], dump(mine)
    assert "span.model_request_end" in types(mine) and stop_type(mine[-1]) == "end_turn"
    # The coordinator's Codex was offered the team's tools; the child's was not.
    offered = [
        [t.get("name") for t in r["body"].get("tools", [])] for r in responses(h)
    ]
    assert any("message_agent" in names for names in offered), offered
    assert any("message_agent" not in names for names in offered), offered
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"

    # The next turn (Codex resumes its thread, which keeps its dynamic tools) follows up in the
    # same child thread, whose own Codex thread goes on.
    again = {"session_thread_id": child, "message": "<<mock:text still good>>"}
    events = h.turn(session.id, tool_prompt("message_agent", again), TURN_WAIT)
    seen = dump(events)
    assert "session.error" not in types(events), seen
    assert stop_type(settled(events)) == "end_turn", seen
    assert [e for e in events if e.type == "session.thread_created"] == [], seen
    received = [e for e in events if e.type == "agent.thread_message_received"]
    assert [(text(r), r.from_session_thread_id) for r in received] == [("still good", child)], seen
    results = tool_results(events)
    assert len(results) == 1 and not results[0].is_error and "still good" in text(results[0]), seen
    mine = list(h.client.beta.sessions.threads.events.list(child, session_id=session.id, limit=1000))
    assert [text(e) for e in mine if e.type == "agent.message"] == ["looks good", "still good"], dump(mine)
    child_inputs = [
        json.dumps(r["body"].get("input"))
        for r in responses(h)
        if "message_agent" not in [t.get("name") for t in r["body"].get("tools", [])]
    ]
    assert any("still good" in i and "looks good" in i for i in child_inputs), child_inputs
