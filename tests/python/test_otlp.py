"""OpenTelemetry traces (issue 15): `serve --otlp-endpoint` exports the spans of a session turn
over OTLP/HTTP (protobuf) to a receiver in this test, which decodes every
`ExportTraceServiceRequest` with the official protos. The turn runs one bash tool call through
the native engine against the mock model: the model request and tool spans are children of the
turn span, carry the GenAI attributes, and neither the vault token nor the message text is
exported, unless `--otlp-include-content`, which puts the text in."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import ServerProcess, new_key, unique
from harness_support import Harness, MockModel, bash, llm_vault, mock, searchable  # noqa: F401


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1: keeps every request body and its decoded spans."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.spans: list[Any] = []
        self.paths: list[str] = []
        lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                with lock:
                    outer.paths.append(self.path)
                    outer.bodies.append(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            outer.spans.extend(scope.spans)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(span: Any) -> dict[str, Any]:
    """A span's attributes as Python values."""
    out: dict[str, Any] = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None
    return out


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


#: A private address the door refuses without `--egress-allow-private` (nothing is sent).
PRIVATE = "10.255.255.1"


def run_traced_turn(
    tmp_path: Path, mock: MockModel, receiver: Receiver, content: bool, prompt: str = ""
) -> dict[str, Any]:
    """A server exporting to `receiver` runs one turn (by default a bash call that prints a
    marker and tries a private address through the egress door); returns what was sent and
    the spans of that session, once its turn span has arrived."""
    searchable(tmp_path)
    args = ["--otlp-endpoint", receiver.url] + (["--otlp-include-content"] if content else [])
    process = ServerProcess("rocksdb", tmp_path / "data", new_key(), tmp_path / "server.log", runner=True, args=args)
    # Batches leave every 100 ms instead of every 5 s (the SDK's OTEL_BSP_SCHEDULE_DELAY).
    import os

    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        process.start()
    finally:
        os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
    try:
        client = process.client()
        token = "sk-otlp-" + unique("secret")
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url, token), token=token)  # type: ignore[arg-type]
        agent = h.agent()
        session = h.session(agent=agent)
        marker = unique("private-words")
        command = f"echo {marker}-out; curl -sS --max-time 10 http://{PRIVATE}/ || true"
        events = h.turn(session.id, f"{marker} " + (prompt or bash(command)))
        if not prompt:
            assert [e.type for e in events if e.type == "agent.tool_result"] == ["agent.tool_result"]

        def turn_spans() -> list[Any]:
            return [
                s
                for s in list(receiver.spans)
                if s.name == "invoke_agent" and attributes(s).get("session.id") == session.id
            ]

        deadline = time.monotonic() + 30
        while not turn_spans():
            assert time.monotonic() < deadline, f"no turn span arrived; got {[s.name for s in receiver.spans]}"
            time.sleep(0.1)
    finally:
        # A graceful stop exports what is still queued before the process exits.
        assert process.stop() == 0
    return {
        "session": session,
        "agent": agent,
        "token": token,
        "marker": marker,
        "spans": list(receiver.spans),
        "raw": b"".join(receiver.bodies),
        "paths": list(receiver.paths),
    }


def test_a_turn_exports_parented_spans_without_secrets_or_content(
    tmp_path: Path, mock: MockModel, receiver: Receiver
) -> None:
    got = run_traced_turn(tmp_path, mock, receiver, content=False)
    session, spans = got["session"], got["spans"]
    assert set(got["paths"]) == {"/v1/traces"}
    mine = [s for s in spans if attributes(s).get("session.id") == session.id]
    (turn,) = [s for s in mine if s.name == "invoke_agent"]
    turn_attrs = attributes(turn)
    assert turn_attrs["agent.id"] == got["agent"].id
    assert turn_attrs["gen_ai.operation.name"] == "invoke_agent"
    assert turn_attrs["turn.outcome"] == "idle"

    chats = [s for s in mine if s.name == "chat claude-sonnet-4-6"]
    tools = [s for s in mine if s.name == "execute_tool bash"]
    assert len(chats) == 2 and len(tools) == 1, [s.name for s in mine]
    for child in chats + tools:
        assert child.trace_id == turn.trace_id
        assert child.parent_span_id == turn.span_id, child.name
        assert turn.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= turn.end_time_unix_nano
    first, second = sorted(chats, key=lambda s: s.start_time_unix_nano)
    for chat in (first, second):
        a = attributes(chat)
        assert a["gen_ai.request.model"] == "claude-sonnet-4-6"
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.system"] == "anthropic"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
        assert a["gen_ai.request.retry_attempts"] == 0
        assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a
    assert attributes(first)["gen_ai.response.finish_reasons"] == "tool_use"
    assert attributes(second)["gen_ai.response.finish_reasons"] == "end_turn"
    # The tool ran between the two model requests.
    (tool,) = tools
    assert first.end_time_unix_nano <= tool.start_time_unix_nano <= second.start_time_unix_nano
    t = attributes(tool)
    assert t["gen_ai.tool.name"] == "bash" and t["gen_ai.operation.name"] == "execute_tool"
    assert t["gen_ai.tool.call.id"].startswith("sevt_")
    assert t["tool.is_error"] is False and t["process.exit.code"] == 0
    assert t["sandbox.start"] in ("cold", "warm") and t["tool.duration_ms"] > 0
    assert "gen_ai.tool.call.arguments" not in t and "gen_ai.tool.call.result" not in t

    # The door's refusal of the private address: a decision span of the session.
    egress = [attributes(s) for s in mine if s.name == "egress"]
    assert {(e["egress.kind"], e["egress.decision"], e["server.address"]) for e in egress} == {
        ("http", "private", PRIVATE)
    }

    # The HTTP request that sent the message: its own span, with the request id.
    posts = [s for s in spans if s.name == "POST /v1/sessions/{session_id}/events"]
    assert posts, sorted({s.name for s in spans})
    post = attributes(posts[0])
    assert post["request_id"].startswith("req_") and post["http.response.status_code"] == 200
    assert post["session_id"] == session.id

    # Nothing secret, nothing said.
    assert got["token"].encode() not in got["raw"]
    assert got["marker"].encode() not in got["raw"]


def test_include_content_exports_the_message_text(tmp_path: Path, mock: MockModel, receiver: Receiver) -> None:
    got = run_traced_turn(tmp_path, mock, receiver, content=True)
    mine = [s for s in got["spans"] if attributes(s).get("session.id") == got["session"].id]
    chats = sorted((s for s in mine if s.name.startswith("chat ")), key=lambda s: s.start_time_unix_nano)
    assert got["marker"] in attributes(chats[0])["gen_ai.input.messages"]
    (tool,) = [s for s in mine if s.name == "execute_tool bash"]
    assert f"{got['marker']}-out" in attributes(tool)["gen_ai.tool.call.result"]
    assert "echo" in attributes(tool)["gen_ai.tool.call.arguments"]
    # Content, but still no secret.
    assert got["token"].encode() not in got["raw"]


def test_a_retried_model_request_is_one_span_counting_its_attempts(
    tmp_path: Path, mock: MockModel, receiver: Receiver
) -> None:
    got = run_traced_turn(tmp_path, mock, receiver, content=False, prompt="[[mock:error 529 x1]] [[mock:text recovered]]")
    mine = [s for s in got["spans"] if attributes(s).get("session.id") == got["session"].id]
    (turn,) = [s for s in mine if s.name == "invoke_agent"]
    (chat,) = [s for s in mine if s.name.startswith("chat ")]
    assert chat.parent_span_id == turn.span_id
    a = attributes(chat)
    assert a["gen_ai.request.retry_attempts"] == 1
    assert a["gen_ai.response.finish_reasons"] == "end_turn"


def test_a_claude_turn_traces_its_gateway_requests_under_the_turn(
    tmp_path: Path, mock: MockModel, receiver: Receiver
) -> None:
    """On the `claude` engine the model requests go through the LLM gateway: each is a
    `chat {model}` span under the turn's `invoke_agent`, with the usage the response reported,
    and the vault token is not exported."""
    from test_engine_claude import MODEL, TURN, runtimes_dir

    searchable(tmp_path)
    args = ["--otlp-endpoint", receiver.url, "--runtimes-dir", runtimes_dir()]
    import os

    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    try:
        process = ServerProcess(
            "rocksdb", tmp_path / "data", new_key(), tmp_path / "server.log", runner=True, args=args
        ).start()
    finally:
        os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
    try:
        client = process.client()
        token = "sk-otlp-" + unique("secret")
        vault = llm_vault(client, mock.url, token, engine="claude")
        h = Harness(client=client, server=None, mock=mock, vault=vault, token=token)  # type: ignore[arg-type]
        session = h.session(agent=h.agent(model=MODEL))
        events = h.turn(session.id, "[[mock:text traced through the gateway]]", timeout=TURN)
        assert any(e.type == "agent.message" for e in events), [e.type for e in events]

        def spans() -> tuple[list[Any], list[Any]]:
            every = list(receiver.spans)
            turns = [s for s in every if s.name == "invoke_agent" and attributes(s).get("session.id") == session.id]
            chats = [s for s in every if s.name.startswith("chat ") and attributes(s).get("session.id") == session.id]
            return turns, chats

        deadline = time.monotonic() + 30
        while not (spans()[0] and spans()[1]):
            assert time.monotonic() < deadline, f"spans missing; got {[s.name for s in receiver.spans]}"
            time.sleep(0.1)
    finally:
        assert process.stop() == 0
    turns, chats = spans()
    (turn,) = turns
    main = [c for c in chats if c.name == f"chat {MODEL}"]
    assert main, [c.name for c in chats]
    for chat in main:
        assert chat.parent_span_id == turn.span_id and chat.trace_id == turn.trace_id
        attrs = attributes(chat)
        assert attrs["gen_ai.request.model"] == MODEL and attrs["llm.gateway"] is True
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert token.encode() not in b"".join(receiver.bodies)
