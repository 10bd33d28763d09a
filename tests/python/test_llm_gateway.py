"""The LLM gateway through the real server (issue 10): an agent CLI in the session's sandbox
(Claude Code for `claude`, Codex for `codex`) reaches the mock model only through the door's
`/llm/` endpoint, which swaps the session's placeholder key for the vault token, refuses a wrong
key, and records every model request as a span with its usage, accumulated on the session.
Official SDK, real server, real sandbox, the project's mock model, the pinned runtimes
(MANAGED_AGENTS_RUNTIMES_DIR, exported by scripts/test.sh; a missing runtime fails)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness_support import (  # noqa: F401  (fixtures)
    Harness,
    harness,
    harness_server,
    llm_vault,
    mock,
    text,
    tool_results,
    unique,
)

#: Agent CLIs start, and Codex writes its home, within the turn: give turns more time.
TURN = 180.0

#: A request from inside the sandbox with a guessed key: the gateway must answer 401 and send
#: nothing upstream.
GUESS = (
    "curl -sS -o /dev/null -w 'guess:%{http_code}' -X POST "
    "-H 'x-api-key: sk-ant-placeholder-guess' -H 'content-type: application/json' "
    "-d '{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}' "
    "http://127.0.0.1:3128/llm/anthropic/v1/messages"
)

#: Each engine's shell tool as the mock scripts it.
TOOLS = {
    "claude": ("Bash", "command"),
    "codex": ("exec_command", "cmd"),
}


def auth_of(request: dict[str, Any]) -> str:
    headers = request["headers"]
    return headers.get("x-api-key") or headers.get("authorization", "")


@pytest.mark.parametrize("engine", ["claude", "codex"])
def test_the_cli_reaches_the_model_only_through_the_gateway_with_spans_and_usage(
    harness: Harness, engine: str
) -> None:
    token = "sk-vault-" + unique("secret")
    vault = llm_vault(harness.client, harness.mock.url, token, engine=engine)
    session = harness.session(vault=vault)
    tool, field = TOOLS[engine]
    prompt = f"[[mock:tool {tool} {json.dumps({field: GUESS})}]]"
    events = harness.turn(session.id, prompt, timeout=TURN)
    assert events[-1].type == "session.status_idle", [e.type for e in events]

    # The guess was refused inside the sandbox.
    results = " ".join(text(e) for e in tool_results(events))
    assert "guess:401" in results, results

    # Every model request at the mock came through the gateway, with the vault token.
    requests = harness.model_requests()
    assert len(requests) >= 2, "the tool call and the answer after it"
    expected = token if engine == "claude" else f"Bearer {token}"
    assert [auth_of(r) for r in requests] == [expected] * len(requests)
    assert not any("placeholder" in json.dumps(r["headers"]) for r in requests)

    # One span per model request, each ended with the usage on the wire.
    all_events = harness.events(session.id)
    starts = [e for e in all_events if e.type == "span.model_request_start"]
    ends = [e for e in all_events if e.type == "span.model_request_end"]
    assert len(starts) == len(ends) == len(requests), [e.type for e in all_events]
    assert [e.model_request_start_id for e in ends] == [e.id for e in starts]
    assert all(e.is_error is False for e in ends)
    assert all(e.model_usage.input_tokens > 0 and e.model_usage.output_tokens > 0 for e in ends)
    usage = harness.client.beta.sessions.retrieve(session.id).usage
    assert usage.input_tokens == sum(e.model_usage.input_tokens for e in ends)
    assert usage.output_tokens == sum(e.model_usage.output_tokens for e in ends)

    # The token is in no event.
    dumped = json.dumps([e.model_dump(mode="json") for e in all_events])
    assert token not in dumped
