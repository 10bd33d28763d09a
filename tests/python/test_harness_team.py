"""A coordinator's team beyond its roster members, on the native engine with the mock model
(API §4.6, §7, §10): agents it defines inline, its advisor, workflows of parallel tasks, and a
child's retries mirrored onto the session's stream.

The coordinator's tools are `message_agent` (with `inline_agent`), `ask_advisor` and
`run_workflow` (our names). The mock's `<<mock:...>>` directives inside a delegated message
script the child's model; the coordinator's own `[[mock:...]]` script the coordinator.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import unique
from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    harness,
    harness_server,
    mock,
    stop_type,
    text,
    types,
    wait_for,
)

ADVISOR_MODEL = "claude-opus-4-6"


def call(tool: str, body: dict[str, Any]) -> str:
    return f"[[mock:tool {tool} {json.dumps(body)}]]"


def threads_of(h: Harness, session_id: str) -> list[Any]:
    return list(h.client.beta.sessions.threads.list(session_id).data)


def tool_results(events: list[Any]) -> list[Any]:
    return [e for e in events if e.type == "agent.tool_result"]


def requests_for(h: Harness, model: str) -> list[dict[str, Any]]:
    return [r for r in h.model_requests() if r["body"].get("model") == model]


def user_text(request: dict[str, Any]) -> str:
    last = [m for m in request["body"]["messages"] if m["role"] == "user"][-1]
    content = last["content"]
    if isinstance(content, str):
        return content
    return "\n".join(b.get("text", "") for b in content if b.get("type") == "text")


def tool_names(request: dict[str, Any]) -> list[str]:
    return [t["name"] for t in request["body"].get("tools", [])]


def test_the_advisor_is_consulted_in_one_thread_with_a_transcript(harness: Harness) -> None:
    h = harness
    lead = h.agent(
        name=unique("lead"),
        multiagent={"type": "multiagent_20261001", "advisor": {"type": "enabled", "model": ADVISOR_MODEL}},
    )
    session = h.session(agent=lead)
    first = h.turn(session.id, "[[mock:text I am looking at the parser]]")
    assert stop_type(first[-1]) == "end_turn"
    coordinator_tools = tool_names(h.model_requests()[-1])
    assert {"ask_advisor", "message_agent", "run_workflow"} <= set(coordinator_tools)

    events = h.turn(session.id, call("ask_advisor", {"question": "<<mock:text use a hash map>>"}))
    assert stop_type(events[-1]) == "end_turn"
    created = [e for e in events if e.type == "session.thread_created"]
    assert [c.agent_name for c in created] == ["anthropic.advisor"]
    advisor = created[0].session_thread_id
    result = tool_results(events)[0]
    assert not result.is_error and "use a hash map" in text(result)
    # The advisor ran its own model, with no tools, and saw the transcript and the question.
    asked = requests_for(h, ADVISOR_MODEL)
    assert len(asked) == 1 and tool_names(asked[0]) == []
    prompt = json.dumps(asked[0]["body"]["messages"])
    assert "I am looking at the parser" in prompt and "Question:" in prompt
    thread = h.client.beta.sessions.threads.retrieve(advisor, session_id=session.id)
    assert thread.agent.type == "advisor" and thread.agent.model == ADVISOR_MODEL
    assert thread.parent_thread_id == threads_of(h, session.id)[0].id

    # A second consultation continues the same thread and sends only what is new.
    again = h.turn(
        session.id, "[[mock:text the map works]]" + call("ask_advisor", {"question": "<<mock:text ship it>>"})
    )
    assert not [e for e in again if e.type == "session.thread_created"]
    assert "ship it" in text(tool_results(again)[0])
    asked = requests_for(h, ADVISOR_MODEL)
    assert len(asked) == 2
    latest = json.dumps(asked[1]["body"]["messages"][-1])
    assert "the map works" in latest and "I am looking at the parser" not in latest
    assert len(threads_of(h, session.id)) == 2


def test_a_coordinator_delegates_to_an_agent_it_defines_inline(harness: Harness) -> None:
    h = harness
    lead = h.agent(name=unique("lead"), multiagent={"type": "multiagent_20261001"})
    session = h.session(agent=lead)
    body = {
        "inline_agent": {"name": "checker", "system": "You check spelling.", "model": "claude-haiku-4-5"},
        "message": "<<mock:text no typos>>",
    }
    events = h.turn(session.id, call("message_agent", body))
    assert stop_type(events[-1]) == "end_turn"
    created = [e for e in events if e.type == "session.thread_created"]
    assert [c.agent_name for c in created] == ["checker"]
    assert "no typos" in text(tool_results(events)[0])
    child = h.client.beta.sessions.threads.retrieve(created[0].session_thread_id, session_id=session.id)
    assert child.agent.type == "inline"
    assert child.agent.name == "checker" and child.agent.system == "You check spelling."
    assert child.agent.model.id == "claude-haiku-4-5"
    # It has the coordinator's tools (not its team's) and its own instructions.
    ran = requests_for(h, "claude-haiku-4-5")
    assert len(ran) == 1
    assert "bash" in tool_names(ran[0]) and "message_agent" not in tool_names(ran[0])
    assert "You check spelling." in json.dumps(ran[0]["body"].get("system"))


def test_inline_agents_are_refused_where_the_roster_disables_them(harness: Harness) -> None:
    h = harness
    member = h.agent(name=unique("member"))
    lead = h.agent(
        name=unique("lead"),
        multiagent={
            "type": "multiagent_20261001",
            "subagents": {"type": "enabled", "inline_agents": {"type": "disabled"}, "predefined_agents": [member.id]},
            "workflows": {"type": "disabled"},
        },
    )
    session = h.session(agent=lead)
    events = h.turn(
        session.id, call("message_agent", {"inline_agent": {"name": "x", "system": "y"}, "message": "hi"})
    )
    result = tool_results(events)[0]
    assert result.is_error and "inline agents are not enabled" in text(result)
    assert not [e for e in events if e.type == "session.thread_created"]
    tools = tool_names(h.model_requests()[0])
    assert "message_agent" in tools and "run_workflow" not in tools and "ask_advisor" not in tools


def test_a_workflow_runs_phases_of_parallel_tasks(harness: Harness) -> None:
    h = harness
    member = h.agent(name=unique("drafter"))
    lead = h.agent(
        name=unique("lead"),
        multiagent={
            "type": "multiagent_20261001",
            "subagents": {"type": "disabled"},
            "workflows": {"type": "enabled", "predefined_agents": [member.id]},
        },
    )
    session = h.session(agent=lead)
    workflow = {
        "name": "review",
        "description": "draft twice, then judge",
        "phases": [
            {
                "name": "draft",
                "tasks": [
                    {"agent": member.name, "message": "<<mock:delay 500ms>><<mock:text draft one>>"},
                    {"inline_agent": {"name": "second", "system": "s"}, "message": "<<mock:text draft two>>"},
                ],
            },
            {"name": "judge", "tasks": [{"inline_agent": {"name": "judge", "system": "j"}, "message": "<<mock:echo>>"}]},
        ],
    }
    events = h.turn(session.id, call("run_workflow", workflow))
    assert stop_type(events[-1]) == "end_turn"
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
    created = next(e for e in events if e.type == "workflow_run.created")
    run = created.workflow_run_id
    assert created.name == "review" and [p.name for p in created.phases] == ["draft", "judge"]
    started = [e for e in events if e.type == "workflow_run.phase_started"]
    ended = [e for e in events if e.type == "workflow_run.phase_ended"]
    assert [e.phase_started_id for e in ended] == [e.id for e in started]
    assert [e.workflow_run_phase_id for e in started] == [p.id for p in created.phases]
    final = next(e for e in events if e.type == "workflow_run.status_ended")
    assert final.result.type == "completed"
    # Three threads, started by the run; the draft tasks ran at once, inside their phase.
    threads = [e for e in events if e.type == "session.thread_created"]
    assert [t.agent_name for t in threads] == [member.name, "second", "judge"]
    assert all(t.workflow_run_id == run for t in threads)
    index = {e.id: i for i, e in enumerate(events)}
    running = [index[e.id] for e in events if e.type == "session.thread_status_running"]
    idles = [index[e.id] for e in events if e.type == "session.thread_status_idle"]
    assert running[1] < idles[0]
    assert index[ended[0].id] < index[started[1].id] < index[threads[2].id]
    listed = {t.id: t for t in threads_of(h, session.id)}
    assert all(listed[t.session_thread_id].workflow_run_id == run for t in threads)
    # The judge was given the earlier phase's results; the call answers with every reply.
    result = text(tool_results(events)[0])
    assert "draft one" in result and "draft two" in result
    judge = text([e for e in events if e.type == "agent.thread_message_received"][-1])
    assert "draft one" in judge and "draft two" in judge


def test_a_workflow_naming_an_unknown_agent_starts_no_run(harness: Harness) -> None:
    h = harness
    lead = h.agent(name=unique("lead"), multiagent={"type": "multiagent_20261001"})
    session = h.session(agent=lead)
    bad = {"name": "w", "phases": [{"name": "p", "tasks": [{"agent": "nobody", "message": "hi"}]}]}
    events = h.turn(session.id, call("run_workflow", bad))
    result = tool_results(events)[0]
    assert result.is_error and "phases[0].tasks[0]" in text(result)
    assert not [e for e in events if e.type.startswith("workflow_run.") or e.type == "session.thread_created"]


def test_a_child_retry_is_mirrored_as_thread_rescheduled(harness: Harness) -> None:
    h = harness
    member = h.agent(name=unique("flaky"))
    lead = h.agent(name=unique("lead"), multiagent={"type": "coordinator", "agents": [member.id]})
    session = h.session(agent=lead)
    body = {"agent": member.name, "message": "<<mock:error 529 x1>><<mock:text recovered>>"}
    events = h.turn(session.id, call("message_agent", body))
    assert stop_type(events[-1]) == "end_turn"
    thread = next(e for e in events if e.type == "session.thread_created").session_thread_id
    mine = [
        e.type
        for e in events
        if getattr(e, "session_thread_id", None) == thread and e.type.startswith("session.thread_status")
    ]
    assert mine == [
        "session.thread_status_running",
        "session.thread_status_rescheduled",
        "session.thread_status_running",
        "session.thread_status_idle",
    ]
    assert "recovered" in text(tool_results(events)[0])


def test_advisor_threads_render_through_the_sdk_types(harness: Harness) -> None:
    # The thread list parses advisor and inline agents as the SDK's union types.
    h = harness
    lead = h.agent(
        name=unique("lead"),
        multiagent={"type": "coordinator", "agents": [{"type": "self"}, {"type": "advisor", "model": ADVISOR_MODEL}]},
    )
    session = h.session(agent=lead)
    events = h.turn(session.id, call("ask_advisor", {"question": "<<mock:text fine>>"}))
    assert "fine" in text(tool_results(events)[0])
    kinds = {type(t.agent).__name__ for t in threads_of(h, session.id)}
    assert any("Advisor" in k for k in kinds), kinds


def test_a_workflow_cut_by_a_crash_ends_at_restart(tmp_path: Any, mock: Any) -> None:
    """A server killed while a workflow's task runs: on restart the run ends with an error
    result saying the server restarted, then idles; its task's thread goes idle; the
    coordinator's call gets the restart's error result and its turn goes on."""
    from conftest import ServerProcess, new_key
    from harness_support import llm_vault, searchable

    key = new_key()
    data_dir = tmp_path / "data"
    searchable(data_dir)
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        member = h.agent(name=unique("sleeper"))
        lead = h.agent(
            name=unique("lead"),
            multiagent={
                "type": "multiagent_20261001",
                "subagents": {"type": "disabled"},
                "workflows": {"type": "enabled", "predefined_agents": [member.id]},
            },
        )
        session = h.session(agent=lead)
        sleep = '<<mock:tool bash {"command": "sleep 60"}>>'
        workflow = {"name": "slow", "phases": [{"name": "sleep", "tasks": [{"agent": member.name, "message": sleep}]}]}
        h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": call("run_workflow", workflow)}]})

        def sleeping() -> Any:
            children = threads_of(h, session.id)[1:]
            if not children:
                return None
            events = list(h.client.beta.sessions.threads.events.list(children[0].id, session_id=session.id))
            return children[0] if "agent.tool_use" in types(events) else None

        child = wait_for(sleeping)
    finally:
        assert process.proc is not None
        process.proc.kill()
        process.proc.wait()
        process.proc = None
    process = ServerProcess("rocksdb", data_dir, key, tmp_path / "server.log", runner=True).start()
    try:
        h.client = process.client()

        def settled() -> Any:
            events = h.events(session.id)
            done = events and events[-1].type == "session.status_idle"
            return events if done and h.client.beta.sessions.retrieve(session.id).status == "idle" else None

        events = wait_for(settled)
        runs = [e for e in events if e.type.startswith("workflow_run.")]
        assert [e.type for e in runs][-2:] == ["workflow_run.status_ended", "workflow_run.status_idle"]
        ended = runs[-2]
        assert ended.workflow_run_id == runs[0].workflow_run_id
        assert ended.result.type == "error" and ended.result.error.type == "unknown_error"
        assert "restarted" in ended.result.error.message
        # The task's thread went idle on the session's stream and on its own.
        idles = [e for e in events if e.type == "session.thread_status_idle" and e.session_thread_id == child.id]
        assert [stop_type(e) for e in idles] == ["end_turn"]
        assert h.client.beta.sessions.threads.retrieve(child.id, session_id=session.id).status == "idle"
        # The coordinator's call got the restart's error result, and its turn went on to the end.
        use = next(e for e in events if e.type == "agent.tool_use" and e.name == "run_workflow")
        result = next(e for e in events if e.type == "agent.tool_result" and e.tool_use_id == use.id)
        assert result.is_error and "restarted" in text(result)
        index = {e.id: i for i, e in enumerate(events)}
        assert index[ended.id] < index[result.id]
        assert "session.status_rescheduled" in types(events) and stop_type(events[-1]) == "end_turn"
        # Nothing is left running: a new workflow runs.
        again = h.turn(
            session.id,
            call("run_workflow", {"name": "quick", "phases": [{"name": "p", "tasks": [{"agent": member.name, "message": "<<mock:text fine>>"}]}]}),
        )
        final = [e for e in again if e.type == "workflow_run.status_ended"]
        assert [e.result.type for e in final] == ["completed"]
    finally:
        assert process.stop() == 0
