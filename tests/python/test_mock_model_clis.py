"""The real agent CLIs (Claude Code and Codex, the pinned versions scripts/agent-runtimes.sh
installs) against `managed-agents mock-model` on 127.0.0.1, outside any sandbox: the mock serves
what they send (Claude Code's `?beta=true` requests with a trailing system message, Codex's
streamed Responses requests), and its directives script a text reply and a shell tool call the
CLI executes. The runtime directory comes from MANAGED_AGENTS_RUNTIMES_DIR (scripts/test.sh
exports it); a machine without the CLIs fails here rather than skipping."""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from harness_support import MockModel, mock  # noqa: F401 (the fixture)

PLACEHOLDER = "sk-ant-placeholder-cli-test"


def runtime(name: str) -> Path:
    pins = Path(__file__).resolve().parents[2] / "harness" / "runtimes.pins"
    versions = {
        line.split()[0]: line.split()[2]
        for line in pins.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    root = os.environ.get("MANAGED_AGENTS_RUNTIMES_DIR")
    assert root, "MANAGED_AGENTS_RUNTIMES_DIR is not set: run scripts/agent-runtimes.sh (scripts/test.sh does)"
    binary = Path(root) / f"{name}-{versions[name]}" / "node_modules" / ".bin" / name
    assert binary.exists(), f"{binary} is missing: run scripts/agent-runtimes.sh"
    return binary


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def claude(tmp_path: Path, mock: MockModel, prompt: str) -> list[dict[str, Any]]:
    work = tmp_path / "claude-work"
    work.mkdir(exist_ok=True)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path / "claude-home"),
        "ANTHROPIC_BASE_URL": mock.url,
        "ANTHROPIC_API_KEY": PLACEHOLDER,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
    }
    done = subprocess.run(
        [str(runtime("claude")), "-p", prompt, "--output-format", "stream-json", "--verbose", "--allowedTools", "Bash"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return jsonl(done.stdout)


def codex(tmp_path: Path, mock: MockModel, prompt: str) -> list[dict[str, Any]]:
    # Codex refuses to make its helper binaries under /tmp: its home is elsewhere.
    home = Path(os.environ.get("MANAGED_AGENTS_RUNTIMES_DIR", "/var/tmp")).parent / "codex-test-homes" / tmp_path.name
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(
        'model = "gpt-5"\nmodel_provider = "mock"\n[model_providers.mock]\nname = "mock"\n'
        f'base_url = "{mock.url}/v1"\nenv_key = "MOCK_KEY"\nwire_api = "responses"\n'
    )
    work = tmp_path / "codex-work"
    work.mkdir(exist_ok=True)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "MOCK_KEY": PLACEHOLDER}
    try:
        done = subprocess.run(
            [
                str(runtime("codex")),
                "exec",
                "--json",
                "--skip-git-repo-check",
                "--dangerously-bypass-approvals-and-sandbox",
                prompt,
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["rm", "-rf", str(home)], check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return jsonl(done.stdout)


def test_claude_code_text_and_a_bash_call_against_the_mock(tmp_path: Path, mock: MockModel) -> None:
    lines = claude(tmp_path, mock, "say [[mock:text hello from the mock]]")
    result = lines[-1]
    assert result["type"] == "result" and result["result"] == "hello from the mock", lines
    first = mock.requests()[-1]
    assert (first["method"], first["path"], first["query"]) == ("POST", "/v1/messages", "beta=true")
    assert first["headers"]["x-api-key"] == PLACEHOLDER
    body = first["body"]
    for field in ["thinking", "tools", "metadata", "context_management", "system", "stream"]:
        assert field in body, f"Claude Code no longer sends {field}"
    assert body["messages"][-1]["role"] == "system", "the trailing system message the mock skips"

    before = len(mock.requests())
    command = "echo made-by-claude > f.txt && cat f.txt"
    lines = claude(tmp_path, mock, "do [[mock:tool Bash " + json.dumps({"command": command}) + "]]")
    results = [
        block
        for line in lines
        if line["type"] == "user"
        for block in line["message"]["content"]
        if block.get("type") == "tool_result"
    ]
    assert [r["content"] for r in results] == ["made-by-claude"], lines
    assert (tmp_path / "claude-work" / "f.txt").read_text() == "made-by-claude\n"
    assert lines[-1]["result"] == "Tool result: made-by-claude"
    assert len(mock.requests()) == before + 2


def test_codex_text_and_a_shell_call_against_the_mock(tmp_path: Path, mock: MockModel) -> None:
    lines = codex(tmp_path, mock, "say [[mock:text hello codex]]")
    messages = [l["item"]["text"] for l in lines if l["type"] == "item.completed" and l["item"]["type"] == "agent_message"]
    assert messages == ["hello codex"], lines
    assert any(l["type"] == "turn.completed" and l["usage"]["output_tokens"] > 0 for l in lines)
    request = mock.requests()[-1]
    assert (request["method"], request["path"]) == ("POST", "/v1/responses")
    assert request["headers"]["authorization"] == f"Bearer {PLACEHOLDER}"
    assert request["body"]["stream"] is True

    command = "echo made-by-codex > g.txt && cat g.txt"
    lines = codex(tmp_path, mock, "do [[mock:tool exec_command " + json.dumps({"cmd": command}) + "]]")
    runs = [l["item"] for l in lines if l["type"] == "item.completed" and l["item"]["type"] == "command_execution"]
    assert [(r["exit_code"], r["aggregated_output"]) for r in runs] == [(0, "made-by-codex\n")], lines
    assert (tmp_path / "codex-work" / "g.txt").read_text() == "made-by-codex\n"
    outputs = [i for i in mock.requests()[-1]["body"]["input"] if i.get("type") == "function_call_output"]
    assert len(outputs) == 1 and "made-by-codex" in outputs[0]["output"]
