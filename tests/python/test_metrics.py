"""The operator's view (issue 15): after a session turn with a tool call, `/metrics` parses with
the Prometheus client's text-format parser and holds every family docs/operations.md lists,
with values that follow from the turn; `--log-format json` writes one JSON object per line
carrying the request id and the session id."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from conftest import ServerProcess, new_key
from harness_support import Harness, MockModel, bash, llm_vault, mock, searchable, wait_for  # noqa: F401


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by its name (`…_total`, `…_bucket`, a gauge's own name)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels`."""
    assert name in found, f"{name} missing from /metrics"
    return sum(v for l, v in found[name] if all(l.get(k) == want for k, want in labels.items()))


def test_metrics_cover_requests_store_streams_sessions_turns_models_tools_and_sandboxes(
    tmp_path: Path, mock: MockModel
) -> None:
    searchable(tmp_path)
    process = ServerProcess("rocksdb", tmp_path / "data", new_key(), tmp_path / "server.log", runner=True).start()
    try:
        client = process.client()
        h = Harness(client=client, server=None, mock=mock, vault=llm_vault(client, mock.url), token="")  # type: ignore[arg-type]
        session = h.session()
        h.turn(session.id, bash("echo counted"))
        # An SSE stream held open while scraping.
        opened = threading.Event()
        stop = threading.Event()

        def hold_stream() -> None:
            headers = {"x-api-key": process.key or "", "accept": "text/event-stream"}
            with httpx.stream("GET", f"{process.url}/v1/sessions/{session.id}/events/stream", headers=headers, timeout=30) as r:
                assert r.status_code == 200
                opened.set()
                for _ in r.iter_raw():
                    if stop.is_set():
                        return

        holder = threading.Thread(target=hold_stream, daemon=True)
        holder.start()
        assert opened.wait(10)
        text = httpx.get(f"{process.url}/metrics", timeout=10).text
        stop.set()
        holder.join(5)
    finally:
        assert process.stop() == 0
    found = samples(text)
    # Requests by route and status, with latency histograms.
    assert value(found, "managed_agents_http_requests_total", route="/v1/sessions/{session_id}/events", method="POST", status="200") >= 1
    assert value(found, "managed_agents_http_request_duration_seconds_count", route="/v1/sessions", method="POST") >= 1
    assert value(found, "managed_agents_http_request_duration_seconds_bucket", route="/v1/sessions", le="+Inf") >= 1
    # Appends through the API and the store's group commits (one fsync each).
    assert value(found, "managed_agents_appended_events_total") >= 1
    assert value(found, "managed_agents_append_batches_total") >= 1
    assert value(found, "managed_agents_store_batches_total") >= 1
    assert value(found, "managed_agents_store_batch_size_count") >= 1
    # Streams open, sessions by status.
    assert value(found, "managed_agents_sse_open_streams") >= 1
    assert value(found, "managed_agents_sessions", status="idle") >= 1
    assert {l["status"] for l, _ in found["managed_agents_sessions"]} == {"idle", "running", "rescheduling", "terminated"}
    # Turns, model requests and tokens by model, tools by tool and outcome, sandbox starts.
    assert value(found, "managed_agents_turns_total", outcome="idle") >= 1
    assert value(found, "managed_agents_turn_duration_seconds_count") >= 1
    assert value(found, "managed_agents_turns_running") == 0
    assert value(found, "managed_agents_model_requests_total", model="claude-sonnet-4-6", outcome="ok") == 2
    assert value(found, "managed_agents_model_tokens_total", model="claude-sonnet-4-6", kind="input") > 0
    assert value(found, "managed_agents_model_tokens_total", model="claude-sonnet-4-6", kind="output") > 0
    assert value(found, "managed_agents_model_request_retries_total", model="claude-sonnet-4-6") == 0
    assert value(found, "managed_agents_model_request_duration_seconds_count", model="claude-sonnet-4-6") == 2
    assert value(found, "managed_agents_tool_executions_total", tool="bash", outcome="ok") == 1
    assert value(found, "managed_agents_tool_duration_seconds_count", tool="bash") == 1
    assert value(found, "managed_agents_sandbox_starts_total") >= 1
    # The runner's queue: nothing left to do once the turn is over.
    assert "managed_agents_runner_queue_depth" in found
    # The door's decisions.
    assert "managed_agents_egress_requests_total" in found
    # Memory: jemalloc's figures (the live heap holds at least the turn's state) in their
    # order, and RocksDB's bounded caches with their bound (the server's default, 32 MiB).
    allocated = value(found, "managed_agents_jemalloc_allocated_bytes")
    assert 0 < allocated <= value(found, "managed_agents_jemalloc_active_bytes")
    assert value(found, "managed_agents_jemalloc_active_bytes") <= value(found, "managed_agents_jemalloc_resident_bytes")
    for name in ("metadata", "mapped", "retained"):
        assert f"managed_agents_jemalloc_{name}_bytes" in found
    assert value(found, "managed_agents_rocksdb_block_cache_capacity_bytes") == 32 << 20
    assert value(found, "managed_agents_rocksdb_memtable_bytes") > 0
    for name in ("block_cache_usage_bytes", "block_cache_pinned_bytes", "table_readers_bytes", "sst_files"):
        assert f"managed_agents_rocksdb_{name}" in found


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_json_logs_carry_request_and_session_ids(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    key = new_key()
    process = ServerProcess("memory", tmp_path / "data", key, log, args=["--log-format", "json"]).start()
    try:
        client = process.client()
        agent = client.beta.agents.create(name="json-logs", model="claude-sonnet-4-6")
        environment = client.beta.environments.create(name="json-logs")
        session = client.beta.sessions.create(agent=agent.id, environment_id=environment.id)
        raw = client.beta.sessions.with_raw_response.retrieve(session.id)
        request_id = raw.headers["request-id"]

        def finished() -> list[dict[str, Any]]:
            return [
                line
                for line in json_lines(log)
                if line.get("fields", {}).get("message") == "request finished"
                and any(span.get("request_id") == request_id for span in line.get("spans", []))
            ]

        (line,) = wait_for(finished)
    finally:
        assert process.stop() == 0
    # Every line is one JSON object (json_lines raised otherwise).
    lines = json_lines(log)
    assert lines and all(isinstance(line, dict) and "level" in line and "timestamp" in line for line in lines)
    (request,) = [span for span in line["spans"] if span["name"] == "request"]
    assert request["request_id"] == request_id
    assert request["session_id"] == session.id
    assert line["fields"]["status"] == 200
