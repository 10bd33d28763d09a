"""Outcomes (issue 13 item 2): `user.define_outcome` through the official SDK starts the agent
working toward it; after each agent turn a grader (a separate request to the same mock model,
scripted by `[[mock:grade ...]]` in the rubric) judges the work; `needs_revision` sends the agent
back to work, `satisfied` / `max_iterations_reached` / `interrupted` end the loop; the
`span.outcome_evaluation_*` events and the session's `outcome_evaluations` agree. Real server
with the runner on, native engine, mock model."""

from __future__ import annotations

import json
import threading
from typing import Any

from conftest import unique
from harness_support import (  # noqa: F401  (fixtures)
    WAIT,
    Harness,
    define_outcome,
    harness,
    harness_server,
    llm_vault,
    mock,
    stop_type,
    text,
    types,
    wait_for,
)


def grader_requests(harness: Harness) -> list[dict[str, Any]]:
    return [r for r in harness.model_requests() if "outcome grader" in str(r["body"].get("system", ""))]


def last_user_text(request: dict[str, Any]) -> str:
    message = request["body"]["messages"][-1]
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content if b.get("type") == "text")


def evaluation_ends(events: list[Any]) -> list[Any]:
    return [e for e in events if e.type == "span.outcome_evaluation_end"]


def test_one_revision_then_satisfied_order_usage_and_session(harness: Harness) -> None:
    session = harness.session()
    received: list[Any] = []
    with harness.client.beta.sessions.events.stream(session.id) as stream:
        watchdog = threading.Timer(WAIT, stream.close)
        watchdog.start()
        try:
            defined = define_outcome(
                harness,
                session.id,
                "Write a haiku about rust. [[mock:text rust haiku draft]]",
                "Has a title. [[mock:grade needs_revision: add a title | satisfied: titled and 17 syllables]]",
            )
            for event in stream:
                received.append(event)
                if event.type == "session.status_idle":
                    break
        finally:
            watchdog.cancel()

    events = harness.wait_idle(session.id, defined.id)
    assert types(events) == [
        "user.define_outcome",
        "session.status_running",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "span.outcome_evaluation_start",
        "span.outcome_evaluation_end",
        "span.model_request_start",
        "agent.message",
        "span.model_request_end",
        "span.outcome_evaluation_start",
        "span.outcome_evaluation_end",
        "session.status_idle",
    ]
    assert stop_type(events[-1]) == "end_turn"
    assert text(events[3]) == "rust haiku draft"
    starts = [e for e in events if e.type == "span.outcome_evaluation_start"]
    ends = evaluation_ends(events)
    assert [(s.outcome_id, s.iteration) for s in starts] == [(defined.outcome_id, 0), (defined.outcome_id, 1)]
    assert [(e.iteration, e.result, e.explanation) for e in ends] == [
        (0, "needs_revision", "add a title"),
        (1, "satisfied", "titled and 17 syllables"),
    ]
    assert [e.outcome_evaluation_start_id for e in ends] == [s.id for s in starts]
    assert all(e.usage.input_tokens > 0 and e.usage.output_tokens > 0 for e in ends)

    # The stream carried the same events in the same order.
    assert [e.id for e in received] == [e.id for e in events]

    # What the models saw: the agent got the description, then the grader's feedback; the
    # grader got the rubric and the agent's work, with the session's own credential.
    agent_requests = [r for r in harness.model_requests() if r not in grader_requests(harness)]
    assert len(agent_requests) == 2
    assert "Write a haiku about rust." in last_user_text(agent_requests[0])
    assert "add a title" in last_user_text(agent_requests[1])
    graders = grader_requests(harness)
    assert len(graders) == 2
    question = last_user_text(graders[0])
    assert question.startswith("OUTCOME GRADING REQUEST\nIteration: 0")
    assert "Has a title." in question and "rust haiku draft" in question
    assert "Iteration: 1" in last_user_text(graders[1])
    assert graders[0]["headers"]["x-api-key"] == harness.token
    assert graders[0]["body"].get("tools") in (None, [])

    # The session object agrees with the events, and the grader's usage counts.
    retrieved = harness.client.beta.sessions.retrieve(session.id)
    assert len(retrieved.outcome_evaluations) == 1
    evaluation = retrieved.outcome_evaluations[0]
    assert evaluation.outcome_id == defined.outcome_id
    assert evaluation.description == "Write a haiku about rust. [[mock:text rust haiku draft]]"
    assert (evaluation.iteration, evaluation.result, evaluation.explanation) == (
        1,
        "satisfied",
        "titled and 17 syllables",
    )
    assert evaluation.completed_at == ends[-1].processed_at
    spans = [e for e in events if e.type == "span.model_request_end"]
    expected_input = sum(s.model_usage.input_tokens for s in spans) + sum(e.usage.input_tokens for e in ends)
    assert retrieved.usage.input_tokens == expected_input


def test_max_iterations_reached_then_final_turn(harness: Harness) -> None:
    session = harness.session()
    defined = define_outcome(
        harness,
        session.id,
        "Make the tests pass.",
        "All green. [[mock:grade needs_revision: two tests still fail]]",
        max_iterations=2,
    )
    events = harness.wait_idle(session.id, defined.id)
    ends = evaluation_ends(events)
    assert [(e.iteration, e.result, e.explanation) for e in ends] == [
        (0, "needs_revision", "two tests still fail"),
        (1, "max_iterations_reached", "two tests still fail"),
    ]
    # One final turn acknowledges it (no evaluation after it), then idle.
    after = types(events[events.index(ends[-1]) + 1 :])
    assert after == ["span.model_request_start", "agent.message", "span.model_request_end", "session.status_idle"]
    assert stop_type(events[-1]) == "end_turn"
    assert len(grader_requests(harness)) == 2
    assert "last evaluation" in last_user_text(harness.model_requests()[-1])

    evaluation = harness.client.beta.sessions.retrieve(session.id).outcome_evaluations[0]
    assert (evaluation.iteration, evaluation.result) == (1, "max_iterations_reached")
    assert evaluation.completed_at == ends[-1].processed_at


def test_interrupt_while_grading_ends_the_loop(harness: Harness) -> None:
    session = harness.session()
    defined = define_outcome(
        harness,
        session.id,
        "Summarise the repository.",
        "Mentions every module. [[mock:grade satisfied]] [[mock:delay 20s]]",
    )

    def events_of(kind: str) -> list[Any]:
        return [e for e in harness.events(session.id) if e.type == kind]

    start = wait_for(lambda: events_of("span.outcome_evaluation_start"))[0]
    # The grader is slow: heartbeats while it runs.
    ongoing = wait_for(lambda: events_of("span.outcome_evaluation_ongoing"), timeout=10)[0]
    assert (ongoing.outcome_id, ongoing.iteration) == (defined.outcome_id, 0)
    harness.send(session.id, {"type": "user.interrupt"})
    events = harness.wait_idle(session.id, defined.id, timeout=10)

    ends = evaluation_ends(events)
    assert len(ends) == 1
    end = ends[0]
    assert (end.outcome_evaluation_start_id, end.iteration, end.result) == (start.id, 0, "interrupted")
    assert stop_type(events[-1]) == "end_turn"
    assert types(events).index("span.outcome_evaluation_end") < types(events).index("session.status_idle")

    evaluation = harness.client.beta.sessions.retrieve(session.id).outcome_evaluations[0]
    assert (evaluation.iteration, evaluation.result, evaluation.explanation) == (0, "interrupted", end.explanation)
    assert evaluation.completed_at == end.processed_at

    # The session stays usable, and a plain message after the loop is not graded.
    turn = harness.turn(session.id, "[[mock:text still here]]")
    assert "span.outcome_evaluation_start" not in types(turn)
    assert stop_type(turn[-1]) == "end_turn"


def test_file_rubric_is_read_for_the_grader(harness: Harness) -> None:
    upload = harness.client.beta.files.upload(
        file=("rubric.md", b"Cites a source. [[mock:grade satisfied: cited]]\n", "text/markdown")
    )
    session = harness.session()
    sent = harness.send(
        session.id,
        {
            "type": "user.define_outcome",
            "description": "Find a fact.",
            "rubric": {"type": "file", "file_id": upload.id},
        },
    )
    events = harness.wait_idle(session.id, sent[0].id)
    ends = evaluation_ends(events)
    assert [(e.result, e.explanation) for e in ends] == [("satisfied", "cited")]
    assert "Cites a source." in last_user_text(grader_requests(harness)[0])


def test_openai_agents_engine_grades_too(harness: Harness) -> None:
    token = "sk-openai-" + unique("secret")
    vault = llm_vault(harness.client, harness.mock.url, token, engine="openai-agents")
    h = Harness(client=harness.client, server=harness.server, mock=harness.mock, vault=vault, token=token)
    session = h.session()
    defined = define_outcome(
        h,
        session.id,
        "Name a colour. [[mock:text blue]]",
        "One word. [[mock:grade needs_revision: say it in capitals | satisfied: BLUE]]",
    )
    events = h.wait_idle(session.id, defined.id)
    ends = evaluation_ends(events)
    assert [(e.iteration, e.result, e.explanation) for e in ends] == [
        (0, "needs_revision", "say it in capitals"),
        (1, "satisfied", "BLUE"),
    ]
    assert stop_type(events[-1]) == "end_turn"
    requests = h.model_requests()
    assert [r["path"] for r in requests] == ["/v1/responses"] * 4
    graders = [r for r in requests if "outcome grader" in str(r["body"].get("instructions", ""))]
    assert len(graders) == 2
    assert all(r["headers"].get("authorization") == f"Bearer {token}" for r in graders)
    # The revision reached the agent as its next input.
    assert "say it in capitals" in json.dumps(requests[2]["body"]["input"])


def test_interrupt_while_the_agent_works_ends_the_outcome(harness: Harness) -> None:
    session = harness.session()
    defined = define_outcome(harness, session.id, "Think hard. [[mock:delay 20s]]", "Anything. [[mock:grade satisfied]]")
    wait_for(lambda: "span.model_request_start" in types(harness.events(session.id)))
    harness.send(session.id, {"type": "user.interrupt"})
    events = harness.wait_idle(session.id, defined.id, timeout=10)
    # No grader ran: a start and an `interrupted` end of iteration 0 are written together.
    starts = [e for e in events if e.type == "span.outcome_evaluation_start"]
    ends = evaluation_ends(events)
    assert len(starts) == 1 and len(ends) == 1
    assert (ends[0].outcome_evaluation_start_id, ends[0].iteration, ends[0].result) == (starts[0].id, 0, "interrupted")
    assert ends[0].usage.input_tokens == 0
    assert grader_requests(harness) == []
    assert stop_type(events[-1]) == "end_turn"
    evaluation = harness.client.beta.sessions.retrieve(session.id).outcome_evaluations[0]
    assert (evaluation.result, evaluation.completed_at) == ("interrupted", ends[0].processed_at)


def test_an_outcome_in_initial_events_starts_the_loop_at_create(harness: Harness) -> None:
    session = harness.session(
        initial_events=[
            {
                "type": "user.define_outcome",
                "description": "Summarise the notes. [[mock:text summary v1]]",
                "rubric": {"type": "text", "content": "Short. [[mock:grade satisfied: short enough]]"},
                "max_iterations": 2,
            }
        ]
    )
    defined = wait_for(lambda: next((e for e in harness.events(session.id) if e.type == "user.define_outcome"), None))
    events = harness.wait_idle(session.id, defined.id)
    ends = evaluation_ends(events)
    assert [(e.result, e.iteration) for e in ends] == [("satisfied", 0)]
    assert stop_type(events[-1]) == "end_turn"
    evaluations = harness.client.beta.sessions.retrieve(session.id).outcome_evaluations
    assert [(o.outcome_id, o.result) for o in evaluations] == [(defined.outcome_id, "satisfied")]
