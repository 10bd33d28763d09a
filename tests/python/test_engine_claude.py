"""The `claude` engine (issue 10): Claude Code 2.1.332 runs inside the session's sandbox, reaches
the mock model only through the door's LLM gateway, and its stream becomes our events. Official
SDK, real server, real sandbox, the project's mock model, the runtime installed by
scripts/agent-runtimes.sh (run here when needed; a missing runtime fails, never skips).

The mock answers Claude Code's requests by the directives in the prompt, with Claude Code's own
tool names (`[[mock:tool Bash {...}]]`)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import REPO, ServerProcess, new_key, unique
from harness_support import (  # noqa: F401  (fixtures)
    REVISED_ONCE,
    WAIT,
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
    tool_results,
    types,
    wait_for,
)

MODEL = "claude-sonnet-4-5"
#: Claude Code starts and resumes its conversation in each turn: give turns more time.
TURN = 90.0


def runtimes_dir() -> str:
    """The runtime directory with the pinned Claude Code, installed if missing."""
    out = subprocess.run(
        [str(REPO / "scripts" / "agent-runtimes.sh")], check=True, capture_output=True, text=True, timeout=900
    )
    return out.stdout.strip().splitlines()[-1]


def claude_prompt(tool: str, input: dict[str, Any]) -> str:
    return f"[[mock:tool {tool} {json.dumps(input)}]]"


class ClaudeServer:
    """A server with the runner on, its runtime directory set, restartable on one data dir."""

    def __init__(self, base: Path, runtimes: str):
        searchable(base)
        self.base = base
        self.key = new_key()
        self.runtimes = runtimes
        self.process: ServerProcess | None = None

    def start(self) -> "ClaudeServer":
        self.process = ServerProcess(
            "rocksdb",
            self.base / "data",
            self.key,
            self.base / "server.log",
            runner=True,
            args=["--runtimes-dir", self.runtimes],
        ).start()
        return self

    def stop(self) -> None:
        if self.process is not None:
            code = self.process.stop()
            self.process = None
            assert code == 0, f"server exited with {code}"

    def restart(self) -> None:
        self.stop()
        self.start()

    def crash(self) -> None:
        """Kills the server (SIGKILL) and starts it again on the same data dir."""
        assert self.process is not None and self.process.proc is not None
        self.process.proc.kill()
        self.process.proc.wait()
        self.process.proc = None
        self.process = None
        self.start()

    def harness(self, mock: MockModel, token: str) -> Harness:
        assert self.process is not None
        client = self.process.client()
        vault = llm_vault(client, mock.url, token, engine="claude")
        server: Any = None
        return Harness(client=client, server=server, mock=mock, vault=vault, token=token)


@pytest.fixture(scope="module")
def runtimes() -> str:
    return runtimes_dir()


@pytest.fixture
def claude(tmp_path: Path, runtimes: str) -> Iterator[ClaudeServer]:
    server = ClaudeServer(tmp_path / "claude-server", runtimes).start()
    yield server
    server.stop()


@pytest.fixture
def h(claude: ClaudeServer, mock: MockModel) -> Harness:
    return claude.harness(mock, "sk-vault-" + unique("secret"))


def agent(h: Harness, **toolset: Any) -> Any:
    tools = [{"type": "agent_toolset_20260401", **toolset}]
    return h.agent(model=MODEL, tools=tools, system="You are a careful test agent.")


def turn(h: Harness, session_id: str, prompt: str) -> list[Any]:
    return h.turn(session_id, prompt, timeout=TURN)


def messages_of(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["body"]["messages"] if m.get("role") in ("user", "assistant")]


def test_a_text_turn(h: Harness) -> None:
    session = h.session(agent=agent(h))
    events = turn(h, session.id, "[[mock:thinking let me see]] [[mock:text hello from claude code]]")
    assert stop_type(settled(events)) == "end_turn"
    kinds = types(events)
    assert "agent.thinking" in kinds
    messages = [e for e in events if e.type == "agent.message"]
    assert [text(m) for m in messages] == ["hello from claude code"]
    assert "session.error" not in kinds

    requests = h.model_requests()
    assert requests and all(r["path"].endswith("/v1/messages") for r in requests)
    body = requests[-1]["body"]
    assert body["model"] == MODEL
    system = json.dumps(body.get("system"))
    assert "You are a careful test agent." in system


def test_the_vault_token_reaches_the_model_only_through_the_gateway(h: Harness) -> None:
    session = h.session(agent=agent(h))
    events = turn(
        h,
        session.id,
        claude_prompt("Bash", {"command": "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; env; ls -a ~"}),
    )
    assert stop_type(settled(events)) == "end_turn"
    results = tool_results(events)
    assert len(results) == 1 and not results[0].is_error
    inside = text(results[0])
    assert "ANTHROPIC_BASE_URL=http://127.0.0.1:3128/llm/anthropic" in inside
    assert h.token not in inside

    requests = h.model_requests()
    assert requests
    for request in requests:
        headers = json.dumps(request["headers"])
        assert h.token in headers, headers
        assert "placeholder" not in headers
    everything = "".join(e.model_dump_json() for e in h.events(session.id))
    assert h.token not in everything


def test_spans_and_usage_are_recorded(h: Harness) -> None:
    session = h.session(agent=agent(h))
    events = turn(h, session.id, claude_prompt("Bash", {"command": "echo spans"}))
    assert stop_type(settled(events)) == "end_turn"
    starts = [e for e in events if e.type == "span.model_request_start"]
    ends = [e for e in events if e.type == "span.model_request_end"]
    assert len(starts) == len(ends) == len(h.model_requests()) >= 2
    assert all(e.model_usage.input_tokens > 0 for e in ends)
    usage = h.client.beta.sessions.retrieve(session.id).usage
    assert usage.input_tokens == sum(e.model_usage.input_tokens for e in ends)
    assert usage.output_tokens == sum(e.model_usage.output_tokens for e in ends)


def test_a_bash_turn_whose_file_outlives_turns_and_a_restart(
    claude: ClaudeServer, mock: MockModel
) -> None:
    h = claude.harness(mock, "sk-vault-" + unique("secret"))
    session = h.session(agent=agent(h))
    events = turn(h, session.id, claude_prompt("Bash", {"command": "echo persisted > note.txt && echo wrote"}))
    assert stop_type(settled(events)) == "end_turn"
    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [(u.name, u.input["command"]) for u in uses] == [("bash", "echo persisted > note.txt && echo wrote")]
    assert uses[0].evaluated_permission == "allow"
    results = tool_results(events)
    assert [(r.tool_use_id, text(r).strip(), r.is_error) for r in results] == [(uses[0].id, "wrote", False)]
    replies = [text(e) for e in events if e.type == "agent.message"]
    assert len(replies) == 1 and replies[0].startswith("Tool result: wrote")

    events = turn(h, session.id, claude_prompt("Bash", {"command": "cat note.txt"}))
    assert [text(r).strip() for r in tool_results(events)] == ["persisted"]
    # The same conversation: the second turn's requests carry the first turn.
    assert len(messages_of(h.model_requests()[-1])) > 3

    claude.restart()
    h = claude.harness(mock, h.token)
    h.client.beta.sessions.retrieve(session.id)
    events = turn(h, session.id, claude_prompt("Bash", {"command": "cat note.txt"}))
    assert [text(r).strip() for r in tool_results(events)] == ["persisted"]
    assert stop_type(settled(events)) == "end_turn"
    # Resumed after the restart: the conversation still holds the earlier turns.
    assert len(messages_of(h.model_requests()[-1])) > 6


def ask_agent(h: Harness) -> Any:
    return agent(h, configs=[{"name": "bash", "permission_policy": {"type": "always_ask"}}])


@pytest.mark.parametrize("answer", ["allow", "deny"])
def test_always_ask_pauses_until_the_confirmation(h: Harness, answer: str) -> None:
    session = h.session(agent=ask_agent(h))
    events = turn(h, session.id, claude_prompt("Bash", {"command": "echo asked > asked.txt && echo ran"}))
    idle = settled(events)
    assert stop_type(idle) == "requires_action"
    uses = [e for e in events if e.type == "agent.tool_use"]
    assert len(uses) == 1 and uses[0].name == "bash" and uses[0].evaluated_permission == "ask"
    assert idle.stop_reason.event_ids == [uses[0].id]
    assert tool_results(events) == []
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"

    confirmation: dict[str, Any] = {"type": "user.tool_confirmation", "tool_use_id": uses[0].id, "result": answer}
    if answer == "deny":
        confirmation["deny_message"] = "not today"
    sent = h.send(session.id, confirmation)
    events = h.wait_idle(session.id, sent[0].id, timeout=TURN)
    assert stop_type(settled(events)) == "end_turn"
    results = tool_results(events)
    assert [r.tool_use_id for r in results] == [uses[0].id]
    if answer == "allow":
        assert (text(results[0]).strip(), results[0].is_error) == ("ran", False)
    else:
        assert results[0].is_error and "not today" in text(results[0])
        # The file was never written: ask in a new turn.
        check = turn(h, session.id, "[[mock:text fine]]")
        assert stop_type(settled(check)) == "end_turn"
        events = turn(h, session.id, claude_prompt("Read", {"file_path": "/workspace/asked.txt"}))
        assert tool_results(events)[0].is_error


def test_interrupt_stops_a_running_command(h: Harness) -> None:
    session = h.session(agent=agent(h))
    nap = f"timeout 30.{time.time_ns() % 1_000_000:06d}"
    sent = h.send(
        session.id,
        {"type": "user.message", "content": [{"type": "text", "text": claude_prompt("Bash", {"command": f"{nap} tail -f /dev/null; echo woke"})}]},
    )
    wait_for(lambda: any(e.type == "agent.tool_use" for e in h.events(session.id)), timeout=TURN)
    # The command runs (Claude Code refuses a long sleep, so it is not one).
    wait_for(lambda: host_processes_with(nap), TURN)
    h.send(session.id, {"type": "user.interrupt"})
    # Well before the command would have finished by itself.
    events = h.wait_idle(session.id, sent[0].id, timeout=20)
    assert stop_type(settled(events)) == "end_turn"
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error
    assert "Blocked" not in text(results[0])
    assert host_processes_with(nap) == []
    # The session goes on: the next message resumes the conversation.
    events = turn(h, session.id, "[[mock:text after the interrupt]]")
    assert [text(e) for e in events if e.type == "agent.message"] == ["after the interrupt"]


def test_a_missing_runtime_is_a_clear_session_error(tmp_path: Path, mock: MockModel) -> None:
    empty = tmp_path / "no-runtimes"
    empty.mkdir()
    server = ClaudeServer(tmp_path / "server", str(empty)).start()
    try:
        h = server.harness(mock, "sk-vault-" + unique("secret"))
        session = h.session(agent=agent(h))
        events = turn(h, session.id, "[[mock:text hello]]")
        errors = [e for e in events if e.type == "session.error"]
        assert len(errors) == 1
        assert "runtimes install claude" in errors[0].error.message
        assert stop_type(settled(events)) == "end_turn"
        assert h.model_requests() == []
    finally:
        server.stop()


def test_a_custom_tool_call_waits_for_the_client_result(h: Harness) -> None:
    weather = {
        "type": "custom",
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    session = h.session(agent=h.agent(model=MODEL, tools=[{"type": "agent_toolset_20260401"}, weather]))
    events = turn(h, session.id, claude_prompt("mcp__custom__get_weather", {"city": "Paris"}))
    idle = settled(events)
    assert stop_type(idle) == "requires_action"
    uses = [e for e in events if e.type == "agent.custom_tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "Paris"})]
    assert idle.stop_reason.event_ids == [uses[0].id]

    sent = h.send(
        session.id,
        {
            "type": "user.custom_tool_result",
            "custom_tool_use_id": uses[0].id,
            "content": [{"type": "text", "text": "sunny and 21 degrees"}],
        },
    )
    events = h.wait_idle(session.id, sent[0].id, timeout=TURN)
    assert stop_type(settled(events)) == "end_turn"
    replies = [text(e) for e in events if e.type == "agent.message"]
    assert len(replies) == 1 and replies[0].startswith("Tool result: sunny and 21 degrees")
    assert tool_results(events) == []


def agent_processes(server_pid: int) -> list[int]:
    """Claude Code processes under the server (in any of its sandboxes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [server_pid]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"--permission-prompt-tool" in cmdline and b"bwrap" not in cmdline.split(b"\0")[0]:
                found.append(child)
    return found


def test_deleting_a_session_waiting_for_a_confirmation_ends_its_process(
    claude: ClaudeServer, mock: MockModel
) -> None:
    h = claude.harness(mock, "sk-vault-" + unique("secret"))
    assert claude.process is not None and claude.process.proc is not None
    server_pid = claude.process.proc.pid
    session = h.session(agent=ask_agent(h))
    events = turn(h, session.id, claude_prompt("Bash", {"command": "echo waiting"}))
    assert stop_type(settled(events)) == "requires_action"
    # Claude Code is kept, blocked on the permission prompt, until the confirmation comes.
    assert agent_processes(server_pid)
    h.client.beta.sessions.delete(session.id)
    wait_for(lambda: not agent_processes(server_pid), timeout=TURN)


def test_a_message_sent_while_waiting_for_a_confirmation_is_answered_in_its_turn(h: Harness) -> None:
    session = h.session(agent=ask_agent(h))
    events = turn(h, session.id, claude_prompt("Bash", {"command": "echo first"}))
    assert stop_type(settled(events)) == "requires_action"
    use = [e for e in events if e.type == "agent.tool_use"][0]
    h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": "[[mock:text and the second]]"}]})
    sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    events = h.wait_idle(session.id, sent[0].id, timeout=TURN)
    assert stop_type(settled(events)) == "end_turn"
    assert [text(r).strip() for r in tool_results(events)] == ["first"]
    # Claude Code hands the message to the model within the same turn (after the tool result).
    assert "[[mock:text and the second]]" in json.dumps(h.model_requests()[-1]["body"]["messages"])


def test_an_outcome_is_graded_and_claude_code_revises(h: Harness) -> None:
    session = h.session(agent=agent(h))
    defined = define_outcome(h, session.id, *REVISED_ONCE)
    events = h.wait_idle(session.id, defined.id, timeout=2 * TURN)
    assert stop_type(settled(events)) == "end_turn", types(events)
    ends = [e for e in events if e.type == "span.outcome_evaluation_end"]
    assert [e.result for e in ends] == ["needs_revision", "satisfied"], types(events)
    assert ends[0].explanation == "add a title"
    # Claude Code was given the outcome, then the grader's explanation as its next message.
    agent_requests = [r for r in h.model_requests() if "outcome grader" not in json.dumps(r["body"].get("system"))]
    prompts = [json.dumps(messages_of(r)) for r in agent_requests]
    assert any("Write a haiku about rust." in p for p in prompts)
    assert "add a title" in prompts[-1]
    graded = h.client.beta.sessions.retrieve(session.id).outcome_evaluations
    assert [o.result for o in graded] == ["satisfied"]


def test_a_budget_stops_claude_code_at_its_cap(h: Harness) -> None:
    cap = {"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
    session = h.session(agent=agent(h), budget=cap)
    # 400,000 input and 1,000 output tokens of a $3/$15 model: $1.215, past the $1.00 cap. The
    # Bash call of that response runs; Claude Code's next model request is refused at the door.
    prompt = "[[mock:usage 400000 1000]] " + claude_prompt("Bash", {"command": "echo capped"})
    events = turn(h, session.id, prompt)
    assert stop_type(settled(events)) == "budget_reached", types(events)
    assert "capped" in text(tool_results(events)[0])
    assert len(h.model_requests()) == 1
    spent = h.client.beta.sessions.retrieve(session.id)
    assert spent.usage.list_cost.amount == "121"


#: The start of what the `claude` and `codex` engines tell the agent when a restart cut its turn.
RESUMED = "The server running this session restarted while you were working on the current request"


def host_processes_with(marker: str) -> list[str]:
    """The command lines of host processes that hold `marker`."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in cmdline:
            found.append(cmdline)
    return found


def last_user_text(request: dict[str, Any]) -> str:
    users = [m for m in messages_of(request) if m["role"] == "user"]
    content = users[-1]["content"] if users else ""
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def test_a_kill_mid_turn_reschedules_and_claude_code_goes_on(claude: ClaudeServer, mock: MockModel) -> None:
    """Issue 16 item 3 on an agent CLI: a SIGKILL while Claude Code runs a command is a
    reschedule: the call gets the restart's error result, Claude Code is started again on its
    kept conversation, told its turn was cut, and finishes the turn; no `session.error`."""
    h = claude.harness(mock, "sk-vault-" + unique("secret"))
    session = h.session(agent=agent(h))
    # Not a sleep, which Claude Code refuses to run for long.
    nap = f"timeout 60.{time.time_ns() % 1_000_000:06d}"
    prompt = claude_prompt("Bash", {"command": f"{nap} tail -f /dev/null; echo woke"})
    h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": prompt}]})
    wait_for(lambda: "agent.tool_use" in types(h.events(session.id)), TURN)
    wait_for(lambda: host_processes_with(nap), TURN)
    before = len(h.events(session.id))
    claude.crash()
    assert claude.process is not None
    h.client = claude.process.client()
    # The sandbox died with the server.
    assert host_processes_with(nap) == []

    events = idle_after(h, session.id, before, TURN)
    after = types(events)[before:]
    assert after.index("session.status_rescheduled") < after.index("session.status_running"), after
    assert "session.error" not in types(events), after
    results = tool_results(events)
    assert len(results) == 1 and results[0].is_error, after
    assert "server restarted" in text(results[0])
    assert stop_type(settled(events)) == "end_turn"
    assert [e for e in events[before:] if e.type == "agent.message"], after
    # Claude Code went on in its own conversation: the request after the restart holds the cut
    # turn's prompt and ends with the notice.
    # (Claude Code's side requests, a title say, carry only the last message.)
    resumed = [r for r in h.model_requests() if RESUMED in last_user_text(r)]
    assert resumed, [last_user_text(r) for r in h.model_requests()]
    assert any(nap in json.dumps(r["body"]["messages"]) for r in resumed)
    # And the session takes new input.
    again = turn(h, session.id, "[[mock:text still here]]")
    assert [text(e) for e in again if e.type == "agent.message"] == ["still here"], types(again)



def test_a_confirmation_sent_through_another_runner_node_reaches_the_waiting_process(
    tmp_path: Path, runtimes: str, mock: MockModel
) -> None:
    """Two runner nodes over one PostgreSQL (issue 14): the runner whose Claude Code process waits
    on a permission prompt keeps the session's lease while it waits, so a confirmation sent
    through the other node is run by that process (not answered "the process is gone")."""
    from test_runner_leases import Pair

    pair = Pair(tmp_path / "pair", extra_args=["--runtimes-dir", runtimes])
    try:
        client = pair.nodes[0].client()
        vault = llm_vault(client, mock.url, "sk-vault-" + unique("secret"), engine="claude")
        h = Harness(client=client, server=None, mock=mock, vault=vault, token="")  # type: ignore[arg-type]
        session = h.session(agent=ask_agent(h))
        events = turn(h, session.id, claude_prompt("Bash", {"command": "echo across > across.txt && echo ran"}))
        idle = settled(events)
        assert stop_type(idle) == "requires_action", types(events)
        use = [e for e in events if e.type == "agent.tool_use"][0]
        waiting = wait_for(lambda: pair.running("claude"), timeout=30)
        # Send the confirmation through the node whose runner holds no process.
        h.client = pair.other(waiting).client()
        # Past a lease time, so a lease that was not kept would have lapsed by now.
        time.sleep(4)
        sent = h.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
        events = h.wait_idle(session.id, sent[0].id, timeout=TURN)
        assert stop_type(settled(events)) == "end_turn"
        results = tool_results(events)
        assert [r.tool_use_id for r in results] == [use.id]
        assert (text(results[0]).strip(), results[0].is_error) == ("ran", False), text(results[0])
    finally:
        pair.stop()


def test_a_coordinator_delegates_through_claude_code(h: Harness) -> None:
    """A coordinator on the `claude` engine: its team tool reaches Claude Code as a tool of the
    harness's `team` MCP server; the call runs the roster member in a child thread (itself a
    Claude Code process, with the session's engine) and its reply is the tool's result."""
    reviewer = h.agent(name=unique("reviewer"), model=MODEL, description="reviews code")
    coordinator = h.agent(
        name=unique("lead"), model=MODEL, multiagent={"type": "coordinator", "agents": [reviewer.id]}
    )
    session = h.session(agent=coordinator)
    call = {"agent": reviewer.name, "message": "<<mock:text looks good>>"}
    events = turn(h, session.id, claude_prompt("mcp__team__message_agent", call))
    assert "session.error" not in types(events), [e for e in events if e.type == "session.error"]
    assert stop_type(settled(events)) == "end_turn"

    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [(u.name, u.input) for u in uses] == [("message_agent", call)]
    created = [e for e in events if e.type == "session.thread_created"]
    assert [c.agent_name for c in created] == [reviewer.name]
    child = created[0].session_thread_id
    assert child.startswith("sthr_")
    # The thread's lifecycle on the session's stream, in order, each naming the thread.
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
    ]
    kinds = types(events)
    assert kinds.index("agent.tool_use") < kinds.index("session.thread_created")
    received = [e for e in events if e.type == "agent.thread_message_received"]
    assert [text(r) for r in received] == ["looks good"] and received[0].from_agent_name == reviewer.name
    # The reply is the call's result, and the coordinator's final message uses it.
    results = tool_results(events)
    assert [r.tool_use_id for r in results] == [uses[0].id] and not results[0].is_error
    assert "looks good" in text(results[0]) and child in text(results[0])
    assert kinds.index("agent.thread_message_received") < kinds.index("agent.tool_result")
    messages = [text(e) for e in events if e.type == "agent.message"]
    assert len(messages) == 1 and messages[0].startswith("Tool result: looks good"), messages
    assert kinds.index("agent.tool_result") < kinds.index("agent.message")

    # The threads: the primary (the coordinator) and the child (the member), both idle.
    listed = list(h.client.beta.sessions.threads.list(session.id).data)
    assert len(listed) == 2
    primary, member = listed
    assert primary.parent_thread_id is None and primary.agent.id == coordinator.id
    assert member.id == child and member.parent_thread_id == primary.id
    assert member.agent.id == reviewer.id and member.status == "idle"
    assert member.usage is not None and member.usage.output_tokens > 0
    # The child's own events: the message it got, its own Claude Code turn, its reply.
    mine = list(h.client.beta.sessions.threads.events.list(child, session_id=session.id, limit=1000))
    assert mine[0].type == "agent.thread_message_received" and mine[0].from_session_thread_id == primary.id
    assert [text(e) for e in mine if e.type == "agent.message"] == ["looks good"]
    assert "span.model_request_end" in types(mine) and stop_type(mine[-1]) == "end_turn"
    # Each thread's model requests went through the gateway: the coordinator's two, the child's.
    prompts = [json.dumps(messages_of(r)) for r in h.model_requests()]
    assert sum("<<mock:text looks good>>" in p and "mcp__team__message_agent" not in p for p in prompts) >= 1
    assert h.client.beta.sessions.retrieve(session.id).status == "idle"

    # The next turn (Claude Code resumed) follows up in the same child thread, whose Claude
    # Code conversation goes on.
    again = {"session_thread_id": child, "message": "<<mock:text still good>>"}
    events = turn(h, session.id, claude_prompt("mcp__team__message_agent", again))
    assert "session.error" not in types(events), [e for e in events if e.type == "session.error"]
    assert stop_type(settled(events)) == "end_turn"
    assert [e for e in events if e.type == "session.thread_created"] == []
    received = [e for e in events if e.type == "agent.thread_message_received"]
    assert [(text(r), r.from_session_thread_id) for r in received] == [("still good", child)]
    assert [text(e) for e in events if e.type == "agent.message"][-1].startswith("Tool result: still good")
    mine = list(h.client.beta.sessions.threads.events.list(child, session_id=session.id, limit=1000))
    assert [text(e) for e in mine if e.type == "agent.message"] == ["looks good", "still good"]
    prompts = [json.dumps(messages_of(r)) for r in h.model_requests()]
    child_prompts = [p for p in prompts if "<<mock:text still good>>" in p and "mcp__team__" not in p]
    assert child_prompts and "<<mock:text looks good>>" in child_prompts[-1]
    assert len(list(h.client.beta.sessions.threads.list(session.id).data)) == 2


def test_a_coordinator_runs_a_workflow_through_claude_code(h: Harness) -> None:
    """`run_workflow` from Claude Code: the phases' tasks run as child threads (Claude Code
    processes, a member and an inline agent at once), and the call answers with every reply."""
    member = h.agent(name=unique("drafter"), model=MODEL)
    lead = h.agent(
        name=unique("lead"),
        model=MODEL,
        multiagent={
            "type": "multiagent_20261001",
            "subagents": {"type": "disabled"},
            "workflows": {"type": "enabled", "predefined_agents": [member.id]},
        },
    )
    session = h.session(agent=lead)
    workflow = {
        "name": "review",
        "phases": [
            {
                "name": "draft",
                "tasks": [
                    {"agent": member.name, "message": "<<mock:text draft one>>"},
                    {"inline_agent": {"name": "second", "system": "s"}, "message": "<<mock:text draft two>>"},
                ],
            },
            {"name": "judge", "tasks": [{"inline_agent": {"name": "judge", "system": "j"}, "message": "<<mock:text fine>>"}]},
        ],
    }
    events = turn(h, session.id, claude_prompt("mcp__team__run_workflow", workflow))
    assert "session.error" not in types(events), [e for e in events if e.type == "session.error"]
    assert stop_type(settled(events)) == "end_turn"
    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [u.name for u in uses] == ["run_workflow"]
    kinds = [e.type for e in events if e.type.startswith("workflow_run.")]
    assert kinds == [
        "workflow_run.created",
        "workflow_run.status_running",
        "workflow_run.phase_started",
        "workflow_run.phase_ended",
        "workflow_run.phase_started",
        "workflow_run.phase_ended",
        "workflow_run.status_ended",
        "workflow_run.status_idle",
    ]
    assert next(e for e in events if e.type == "workflow_run.status_ended").result.type == "completed"
    threads = [e for e in events if e.type == "session.thread_created"]
    assert [t.agent_name for t in threads] == [member.name, "second", "judge"]
    received = [text(e) for e in events if e.type == "agent.thread_message_received"]
    assert sorted(received) == ["draft one", "draft two", "fine"]
    # The judge was sent the draft phase's results; the call answers with every reply.
    sent = [text(e) for e in events if e.type == "agent.thread_message_sent"]
    assert "draft one" in sent[-1] and "draft two" in sent[-1]
    results = tool_results(events)
    assert [r.tool_use_id for r in results] == [uses[0].id] and not results[0].is_error
    assert all(word in text(results[0]) for word in ("draft one", "draft two", "fine"))
    assert [text(e) for e in events if e.type == "agent.message"][-1].startswith("Tool result:")
    assert len(list(h.client.beta.sessions.threads.list(session.id).data)) == 4


def test_a_claude_child_thread_stops_at_the_sessions_cap(h: Harness) -> None:
    """A `claude` coordinator's child (a Claude Code process of its own) spends against the
    session's budget: once its response crossed the cap, its next model request is refused at
    the door and it idles `budget_reached`; the coordinator's next request is refused too and
    the session pauses at the cap."""
    member = h.agent(name=unique("spender"), model=MODEL, description="spends")
    lead = h.agent(
        name=unique("lead"), model=MODEL, multiagent={"type": "coordinator", "agents": [member.id]}
    )
    cap = {"type": "limit", "max_list_cost": {"amount": "100", "currency": "USD"}}
    session = h.session(agent=lead, budget=cap)
    # The child's first response costs $1.215 (past the $1.00 cap) and asks for a Bash call,
    # which runs; its next model request must not reach the model.
    child = '<<mock:usage 400000 1000>><<mock:tool Bash {"command": "echo child-capped"}>>'
    call = {"agent": member.name, "message": child}
    events = turn(h, session.id, claude_prompt("mcp__team__message_agent", call))
    assert stop_type(settled(events)) == "budget_reached", types(events)
    thread = next(e for e in events if e.type == "session.thread_created").session_thread_id
    idles = [e for e in events if e.type == "session.thread_status_idle"]
    assert [(e.session_thread_id, stop_type(e)) for e in idles] == [(thread, "budget_reached")]
    mine = list(h.client.beta.sessions.threads.events.list(thread, session_id=session.id, limit=1000))
    assert types(mine).count("span.model_request_start") == 1, types(mine)
    assert any("child-capped" in text(r) for r in tool_results(mine))
    # The coordinator's request and the child's first: nothing after the cap was crossed.
    assert len(h.model_requests()) == 2
    paused = h.client.beta.sessions.retrieve(session.id)
    assert paused.status == "idle" and int(paused.usage.list_cost.amount) >= 121


def test_a_claude_coordinator_delegates_twice_in_one_response(h: Harness) -> None:
    """Two delegations in one Claude Code response, to two roster agents: each runs in its
    own child thread (one after the other: the harness serves each call as Claude Code makes
    it) and answers its call."""
    reviewer = h.agent(name=unique("reviewer"), model=MODEL)
    tester = h.agent(name=unique("tester"), model=MODEL)
    coordinator = h.agent(
        name=unique("lead"), model=MODEL, multiagent={"type": "coordinator", "agents": [reviewer.id, tester.id]}
    )
    session = h.session(agent=coordinator)
    prompt = claude_prompt(
        "mcp__team__message_agent", {"agent": reviewer.name, "message": "<<mock:text looks good>>"}
    ) + claude_prompt("mcp__team__message_agent", {"agent": tester.name, "message": "<<mock:text tests pass>>"})
    events = turn(h, session.id, prompt)
    assert "session.error" not in types(events), [e for e in events if e.type == "session.error"]
    assert stop_type(settled(events)) == "end_turn"
    uses = [e for e in events if e.type == "agent.tool_use"]
    assert [u.input["agent"] for u in uses] == [reviewer.name, tester.name]
    created = [e for e in events if e.type == "session.thread_created"]
    assert sorted(c.agent_name for c in created) == sorted([reviewer.name, tester.name])
    replies = {e.from_session_thread_id: text(e) for e in events if e.type == "agent.thread_message_received"}
    by_name = {c.agent_name: c.session_thread_id for c in created}
    assert replies == {by_name[reviewer.name]: "looks good", by_name[tester.name]: "tests pass"}
    results = {r.tool_use_id: text(r) for r in tool_results(events)}
    assert set(results) == {u.id for u in uses}
    assert "looks good" in results[uses[0].id] and "tests pass" in results[uses[1].id]
    assert len(list(h.client.beta.sessions.threads.list(session.id).data)) == 3
