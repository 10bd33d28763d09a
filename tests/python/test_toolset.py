"""The built-in toolset as the hosted one defines it (issue 11, item 6), through the real server,
the official SDK, real sandboxes and the scripted mock model:

- the reference's inputs (`read` with `file_path` and `view_range`, `edit` with `replace_all`,
  `bash` in one persistent shell per session with `restart`), recorded as given in the events,
  and the reference's results (plain text, errors for non-zero exits and non-UTF-8 files,
  images read as content blocks); our earlier names still work as aliases;
- the `auto` permission policy decided by a classifier model request (allow, deny, and a
  failed classifier falling back to `always_ask`);
- thinking and effort/speed from the agent's model config on the wire;
- an `image` block with a `file` source resolved to the file's bytes before the model sees it;
- `web_search` offered as the provider's server-side tool on the Anthropic API.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from harness_support import (  # noqa: F401
    Harness,
    harness,
    harness_server,
    mock,
    text,
    tool_prompt,
    tool_results,
    types,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def call(h: Harness, session: Any, name: str, input: dict[str, Any]) -> tuple[Any, Any]:
    """One turn in which the model calls `name` with `input`: its `agent.tool_use` and result."""
    events = h.turn(session.id, tool_prompt(name, input), timeout=60)
    uses = [e for e in events if e.type == "agent.tool_use"]
    results = tool_results(events)
    assert len(uses) == 1 and len(results) == 1, types(events)
    assert results[0].tool_use_id == uses[0].id
    return uses[0], results[0]


def input_of(event: Any) -> dict[str, Any]:
    return dict(event.input)


def test_reference_inputs_and_results(harness: Harness) -> None:
    session = harness.session()
    _, made = call(harness, session, "write", {"file_path": "notes.txt", "content": "one\ntwo x\nthree x\nfour\n"})
    assert not made.is_error and text(made) == "wrote 23 bytes to notes.txt", text(made)

    use, read = call(harness, session, "read", {"file_path": "notes.txt", "view_range": [2, 3]})
    assert input_of(use) == {"file_path": "notes.txt", "view_range": [2, 3]}
    assert not read.is_error and text(read) == "two x\nthree x", text(read)
    _, whole = call(harness, session, "read", {"file_path": "/workspace/notes.txt"})
    assert text(whole) == "one\ntwo x\nthree x\nfour\n", text(whole)
    _, tail = call(harness, session, "read", {"file_path": "notes.txt", "view_range": [3, -1]})
    assert text(tail) == "three x\nfour\n", text(tail)

    use, edited = call(
        harness, session, "edit", {"file_path": "notes.txt", "old_string": "x", "new_string": "y", "replace_all": True}
    )
    assert input_of(use) == {"file_path": "notes.txt", "old_string": "x", "new_string": "y", "replace_all": True}
    assert not edited.is_error and text(edited) == "edited notes.txt (2 replacement(s))", text(edited)
    _, unique = call(harness, session, "edit", {"file_path": "notes.txt", "old_string": "y", "new_string": "z"})
    assert unique.is_error and text(unique) == "edit: old_string appears 2 times in notes.txt (must be unique)"

    # Our earlier names are aliases.
    _, old = call(harness, session, "read", {"path": "notes.txt", "offset": 2, "limit": 1})
    assert text(old) == "two y", text(old)

    # Non-UTF-8 text is refused; an image is a content block.
    _, bin_made = call(harness, session, "bash", {"command": "printf 'a\\377b' > blob.txt"})
    assert not bin_made.is_error, text(bin_made)
    _, binary = call(harness, session, "read", {"file_path": "blob.txt"})
    assert binary.is_error and "not valid UTF-8 text" in text(binary), text(binary)
    encoded = base64.b64encode(PNG).decode()
    _, png_made = call(harness, session, "bash", {"command": f"echo {encoded} | base64 -d > dot.png"})
    assert not png_made.is_error, text(png_made)
    _, image = call(harness, session, "read", {"file_path": "dot.png"})
    assert not image.is_error
    block = image.content[0]
    assert block.type == "image" and block.source.type == "base64", block
    assert block.source.media_type == "image/png" and base64.b64decode(block.source.data) == PNG
    # The model got the image block inside the tool result.
    last = harness.model_requests()[-1]["body"]["messages"][-1]["content"][0]
    assert last["type"] == "tool_result" and last["content"][0]["type"] == "image", last


def test_bash_keeps_one_shell_per_session(harness: Harness) -> None:
    session = harness.session()
    first_input = {"command": "mkdir -p /tmp/x && cd /tmp/x && export A=1 && B=2"}
    use, first = call(harness, session, "bash", first_input)
    assert input_of(use) == first_input
    assert not first.is_error, text(first)

    use, second = call(harness, session, "bash", {"command": "pwd; echo $A $B"})
    assert input_of(use) == {"command": "pwd; echo $A $B"}
    assert not second.is_error and text(second) == "/tmp/x\n1 2", text(second)

    _, failed = call(harness, session, "bash", {"command": "echo oops >&2; false"})
    assert failed.is_error and text(failed) == "oops", text(failed)

    use, restarted = call(harness, session, "bash", {"restart": True})
    assert input_of(use) == {"restart": True}
    assert not restarted.is_error and text(restarted) == "bash session restarted", text(restarted)

    _, fresh = call(harness, session, "bash", {"command": "pwd; echo \"[$A]\"; ls /tmp/x 2>&1 | head -1"})
    assert text(fresh).splitlines()[:2] == ["/workspace", "[]"], text(fresh)

    _, timed_out = call(harness, session, "bash", {"command": "export C=3; sleep 30", "timeout_ms": 500})
    assert timed_out.is_error and "timed out" in text(timed_out), text(timed_out)
    _, after = call(harness, session, "bash", {"command": "echo \"[$C]\"; pwd"})
    assert text(after) == "[]\n/workspace", text(after)

    # Other sessions have their own shell.
    other = harness.session()
    _, elsewhere = call(harness, other, "bash", {"command": "pwd"})
    assert text(elsewhere) == "/workspace", text(elsewhere)


def test_offered_schemas_are_the_reference(harness: Harness) -> None:
    session = harness.session()
    harness.turn(session.id, "[[mock:text hi]]")
    tools = {t["name"]: t for t in harness.model_requests()[-1]["body"]["tools"]}
    assert tools["read"]["input_schema"]["required"] == ["file_path"]
    assert set(tools["read"]["input_schema"]["properties"]) == {"file_path", "view_range"}
    assert set(tools["edit"]["input_schema"]["properties"]) == {"file_path", "old_string", "new_string", "replace_all"}
    assert set(tools["write"]["input_schema"]["properties"]) == {"file_path", "content"}
    assert set(tools["bash"]["input_schema"]["properties"]) == {"command", "restart", "timeout_ms"}
    assert set(tools["glob"]["input_schema"]["properties"]) == {"pattern", "path"}
    assert set(tools["grep"]["input_schema"]["properties"]) == {"pattern", "path"}


AUTO = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "auto"}}}]


def classifier_requests(h: Harness) -> list[dict[str, Any]]:
    return [r["body"] for r in h.model_requests() if "permission classifier" in str(r["body"].get("system", ""))]


def auto_call(h: Harness, session: Any, command: str) -> list[Any]:
    return h.turn(session.id, tool_prompt("bash", {"command": command}), timeout=60)


def evaluation(use: Any) -> dict[str, Any]:
    return use.evaluation.model_dump(exclude_none=True) if use.evaluation else {}


def test_auto_policy_asks_a_classifier_for_each_call(harness: Harness) -> None:
    agent = harness.agent(tools=AUTO)
    session = harness.session(agent=agent)

    # The classifier (a separate request to the same model endpoint) allows: the call runs.
    events = auto_call(harness, session, "echo fine # [[mock:text allow]]")
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.evaluated_permission == "allow"
    assert evaluation(use) == {"type": "auto", "evaluated_permission": {"type": "allow"}}
    result = tool_results(events)[0]
    assert not result.is_error and text(result) == "fine", text(result)
    asked = classifier_requests(harness)
    assert len(asked) == 1
    question = asked[0]["messages"][0]["content"][0]["text"]
    assert question.startswith("Tool: bash\nInput (JSON): ") and "echo fine" in question, question
    assert "tools" not in asked[0] and "thinking" not in asked[0]
    # The classifier used the session's credential, like the agent's own requests.
    classifier = [r for r in harness.model_requests() if "permission classifier" in str(r["body"].get("system", ""))]
    assert classifier[0]["headers"]["x-api-key"] == harness.token

    # It denies: the call is refused with its reason and the turn goes on.
    events = auto_call(harness, session, "rm -rf / # [[mock:text deny destructive_command]]")
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.evaluated_permission == "deny"
    assert evaluation(use) == {
        "type": "auto",
        "evaluated_permission": {"type": "deny", "reason_code": "destructive_command"},
    }
    result = tool_results(events)[0]
    assert result.is_error and "destructive_command" in text(result), text(result)
    assert events[-1].stop_reason.type == "end_turn"

    # It asks: the session waits for a confirmation, as under always_ask.
    events = auto_call(harness, session, "curl example.com # [[mock:text ask network_access]]")
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.evaluated_permission == "ask"
    assert evaluation(use) == {"type": "auto", "evaluated_permission": {"type": "ask", "reason_code": "network_access"}}
    assert events[-1].stop_reason.type == "requires_action" and events[-1].stop_reason.event_ids == [use.id]
    sent = harness.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "deny"})
    harness.wait_idle(session.id, sent[0].id)


def test_a_failed_classifier_falls_back_to_always_ask(harness: Harness) -> None:
    agent = harness.agent(tools=AUTO)
    session = harness.session(agent=agent)
    events = auto_call(harness, session, "echo held # [[mock:error 400]]")
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.evaluated_permission == "ask"
    assert evaluation(use) == {
        "type": "auto",
        "evaluated_permission": {"type": "ask", "reason_code": "classifier_unavailable"},
    }
    assert events[-1].stop_reason.type == "requires_action"
    assert not tool_results(events)
    # Confirmed, it runs.
    sent = harness.send(session.id, {"type": "user.tool_confirmation", "tool_use_id": use.id, "result": "allow"})
    after = harness.wait_idle(session.id, sent[0].id)
    result = tool_results(after)[0]
    assert result.tool_use_id == use.id and not result.is_error and text(result) == "held", text(result)

    # An answer that is no verdict is a failure too.
    events = auto_call(harness, session, "echo odd # [[mock:text sure, go ahead]]")
    use = next(e for e in events if e.type == "agent.tool_use")
    assert evaluation(use)["evaluated_permission"] == {"type": "ask", "reason_code": "classifier_unavailable"}


def test_effort_speed_and_thinking_reach_the_model(harness: Harness) -> None:
    agent = harness.agent(model={"id": "claude-opus-4-6", "effort": "low", "speed": "fast"})
    session = harness.session(agent=agent)
    events = harness.turn(session.id, "[[mock:thinking pondering]] [[mock:text done]]")
    assert "agent.thinking" in types(events)
    request = harness.model_requests()[-1]
    body = request["body"]
    assert body["thinking"] == {"type": "adaptive"}
    assert body["output_config"] == {"effort": "low"}
    assert body["speed"] == "fast"
    assert "fast-mode-2026-02-01" in request["headers"].get("anthropic-beta", "")

    # The per-model default effort when none is given; standard speed sends none.
    plain = harness.session(agent=harness.agent(model="claude-sonnet-4-6"))
    harness.turn(plain.id, "[[mock:text hi]]")
    body = harness.model_requests()[-1]["body"]
    assert body["output_config"] == {"effort": "high"} and "speed" not in body
    assert body["thinking"] == {"type": "adaptive"}


def test_web_search_is_the_providers_server_tool(harness: Harness) -> None:
    tools = [
        {
            "type": "agent_toolset_20260401",
            "configs": [{"name": "web_search", "enabled": True}],
        }
    ]
    session = harness.session(agent=harness.agent(tools=tools))
    harness.turn(session.id, "[[mock:text hi]]")
    offered = {t["name"]: t for t in harness.model_requests()[-1]["body"]["tools"]}
    assert offered["web_search"]["type"] == "web_search_20250305", offered["web_search"]
    assert "input_schema" not in offered["web_search"]
    assert "input_schema" in offered["bash"]


def test_file_sourced_blocks_reach_the_model_as_bytes(harness: Harness) -> None:
    image = harness.client.beta.files.upload(file=("dot.png", PNG, "image/png"))
    notes = harness.client.beta.files.upload(file=("notes.txt", b"plain notes\n", "text/plain"))
    session = harness.session()
    content = [
        {"type": "text", "text": "[[mock:text seen]] look"},
        {"type": "image", "source": {"type": "file", "file_id": image.id}},
        {"type": "document", "source": {"type": "file", "file_id": notes.id}, "title": "Notes"},
        {"type": "image", "source": {"type": "file", "file_id": "file_01doesnotexist00000000000"}},
    ]
    sent = harness.send(session.id, {"type": "user.message", "content": content})
    events = harness.wait_idle(session.id, sent[0].id)
    assert text([e for e in events if e.type == "agent.message"][0]) == "seen"
    # The event keeps the file reference; the model got the bytes.
    assert harness.events(session.id)[0].content[1].source.type == "file"
    blocks = harness.model_requests()[-1]["body"]["messages"][-1]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
    }
    assert blocks[2] == {
        "type": "document",
        "title": "Notes",
        "source": {"type": "text", "media_type": "text/plain", "data": "plain notes\n"},
    }
    assert blocks[3]["type"] == "text" and "could not be given to the model: no such file" in blocks[3]["text"]


# The `claude` engine asks the same classifier when Claude Code wants to run an `auto` tool.
from test_engine_claude import TURN, claude, claude_prompt, runtimes  # noqa: E402,F401


def test_auto_policy_on_the_claude_engine(claude: Any, mock: Any) -> None:  # noqa: F811
    h = claude.harness(mock, "sk-vault-auto")
    tools = [{"type": "agent_toolset_20260401", "default_config": {"permission_policy": {"type": "auto"}}}]
    session = h.session(agent=h.agent(model="claude-sonnet-4-5", tools=tools))

    events = h.turn(session.id, claude_prompt("Bash", {"command": "echo ran # [[mock:text allow]]"}), timeout=TURN)
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.name == "bash" and use.evaluated_permission == "allow"
    assert evaluation(use) == {"type": "auto", "evaluated_permission": {"type": "allow"}}
    result = tool_results(events)[0]
    assert not result.is_error and text(result).strip() == "ran", text(result)

    command = "touch /workspace/denied.txt # [[mock:text deny destructive_command]]"
    events = h.turn(session.id, claude_prompt("Bash", {"command": command}), timeout=TURN)
    use = next(e for e in events if e.type == "agent.tool_use")
    assert use.evaluated_permission == "deny"
    assert evaluation(use) == {
        "type": "auto",
        "evaluated_permission": {"type": "deny", "reason_code": "destructive_command"},
    }
    events = h.turn(session.id, claude_prompt("Bash", {"command": "ls /workspace/denied.txt # [[mock:text allow]]"}), timeout=TURN)
    assert tool_results(events)[0].is_error, "the denied command ran"
    asked = [r for r in h.model_requests() if "permission classifier" in str(r["body"].get("system", ""))]
    assert len(asked) == 3 and all(r["path"].endswith("/v1/messages") for r in asked)
