"""Quickstart: the official Python SDK against a local managed-agents server and the mock model.

Creates an agent, an environment, an LLM vault pointing at the mock model, and a session; then
streams one turn in which the agent runs a bash tool in the sandbox, printing every event.

    managed-agents mock-model --listen 127.0.0.1:8089 &
    MANAGED_AGENTS_BOOTSTRAP_KEY=sk-local-quickstart-key-not-for-production scripts/serve.sh &
    python examples/quickstart.py

Environment: MANAGED_AGENTS_URL (default http://127.0.0.1:8080), MANAGED_AGENTS_API_KEY (default
sk-local-quickstart-key-not-for-production), MOCK_MODEL_URL (default http://127.0.0.1:8089). To
talk to the real Anthropic API instead, point `llm_base_url` at https://api.anthropic.com and put
your API key in the vault's credential.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import anthropic

SERVER = os.environ.get("MANAGED_AGENTS_URL", "http://127.0.0.1:8080")
API_KEY = os.environ.get("MANAGED_AGENTS_API_KEY", "sk-local-quickstart-key-not-for-production")
MOCK = os.environ.get("MOCK_MODEL_URL", "http://127.0.0.1:8089")

# The mock model replies according to directives in the prompt: this one makes the "model" call
# the bash tool; after the tool result it answers "Tool result: ...".
PROMPT = 'List the workspace. [[mock:tool bash {"command": "echo hello > hello.txt && ls -l && uname -sr"}]]'


def main() -> None:
    client = anthropic.Anthropic(base_url=SERVER, api_key=API_KEY)
    suffix = time.strftime("%Y%m%d-%H%M%S")

    agent = client.beta.agents.create(
        name=f"quickstart-{suffix}",
        model="claude-sonnet-4-6",
        system="You are a helpful agent with a sandboxed workspace.",
        tools=[{"type": "agent_toolset_20260401"}],
    )
    environment = client.beta.environments.create(
        name=f"quickstart-{suffix}", config={"type": "cloud", "networking": {"type": "limited"}}
    )
    # The LLM vault: which model endpoint the harness talks to, and the key it sends there. The
    # key never enters the sandbox, the event log or the server's logs.
    vault = client.beta.vaults.create(
        display_name=f"llm-{suffix}",
        metadata={
            "sandbox0.managed_agents.role": "llm",
            "sandbox0.managed_agents.llm_base_url": MOCK,
        },
    )
    client.beta.vaults.credentials.create(vault.id, auth={"type": "static_bearer", "token": "sk-mock-key"})
    session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id, vault_ids=[vault.id])
    print(f"session {session.id}")

    # Open the stream first, then send: the stream carries what happens after it connected.
    with client.beta.sessions.events.stream(session.id, event_deltas=["agent.message"]) as stream:
        client.beta.sessions.events.send(
            session.id, events=[{"type": "user.message", "content": [{"type": "text", "text": PROMPT}]}]
        )
        for event in stream:
            show(event)
            if event.type == "session.status_idle" and event.stop_reason.type != "requires_action":
                break
            if event.type == "session.status_terminated":
                break

    usage = client.beta.sessions.retrieve(session.id).usage
    print(f"usage: {usage.input_tokens} input tokens, {usage.output_tokens} output tokens")


def show(event: Any) -> None:
    if event.type == "event_delta":
        print(f"  … {event.delta.content.text!r}")
    elif event.type in ("user.message", "agent.message"):
        print(f"{event.type}: {''.join(b.text for b in event.content if b.type == 'text')}")
    elif event.type == "agent.tool_use":
        print(f"{event.type}: {event.name} {json.dumps(event.input)}")
    elif event.type == "agent.tool_result":
        out = "".join(getattr(b, "text", "") for b in event.content or [])
        print(f"{event.type}{' (error)' if event.is_error else ''}:\n    " + out.rstrip().replace("\n", "\n    "))
    elif event.type == "span.model_request_end":
        u = event.model_usage
        print(f"{event.type}: {u.input_tokens} in / {u.output_tokens} out")
    elif event.type == "session.status_idle":
        print(f"{event.type}: {event.stop_reason.type}")
    else:
        print(event.type)


if __name__ == "__main__":
    main()
