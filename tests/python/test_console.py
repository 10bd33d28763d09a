"""The web console (issue 15, item 1) in a real headless Chromium (Debian's `chromium`, driven by
Playwright for Python with the system browser as its executable; nothing is downloaded at run
time) against a real server with the runner on, the mock model and real sandboxes. Sessions are
created and driven with the official SDK; the page is used as a person would: sign in, click,
type. Screenshots of the session page go to `$CARGO_TARGET_DIR/console-screenshots/`."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import Server, ServerProcess, free_port, new_key
from harness_support import (  # noqa: F401  (fixtures)
    TOOLSET,
    Harness,
    MockModel,
    bash,
    llm_vault,
    searchable,
    harness,
    harness_server,
    mock,
    stop_type,
    tool_results,
    types,
    unique,
    wait_for,
)

CHROMIUM = os.environ.get("MANAGED_AGENTS_CHROMIUM") or shutil.which("chromium")
SHOTS = Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/managed-agents/target")) / "console-screenshots"
#: How long the page may take to show what the server already has.
SHOWN = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM, "no chromium on PATH: scripts/env.sh installs Debian's chromium package"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, harness: Harness) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    opened.requests = []  # type: ignore[attr-defined]
    opened.on("request", lambda request: opened.requests.append(request))  # type: ignore[attr-defined]
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, h: Harness, hash: str = "") -> None:
    page.goto(h.server.url + "/console/" + hash)
    page.get_by_label("API key").fill(h.server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#nav")).to_be_visible()


def open_session(page: Page, h: Harness, session_id: str) -> None:
    sign_in(page, h, "#/sessions/" + session_id)
    expect(page.locator("#connection")).to_have_text("live", timeout=SHOWN)


def event_items(page: Page, kind: str) -> Any:
    return page.locator(f'#timeline li[data-type="{kind}"]')


def assert_key_only_in_headers(page: Page, key: str) -> None:
    api_calls = [r for r in page.requests if "/v1/" in r.url]  # type: ignore[attr-defined]
    assert api_calls, "the page made no API call"
    for request in page.requests:  # type: ignore[attr-defined]
        assert key not in request.url
    for request in api_calls:
        assert request.headers.get("authorization") == f"Bearer {key}", request.url


def test_the_console_is_served_with_a_strict_policy(harness: Harness) -> None:
    import httpx

    page = httpx.get(harness.server.url + "/console/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    for asset in ("console.js", "console.css"):
        assert f"assets/{asset}" in page.text
        got = httpx.get(f"{harness.server.url}/console/assets/{asset}", timeout=10)
        assert got.status_code == 200 and got.headers["x-content-type-options"] == "nosniff"
    missing = httpx.get(harness.server.url + "/console/assets/nope.js", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"
    moved = httpx.get(harness.server.url + "/console", timeout=10)
    assert moved.status_code == 308 and moved.headers["location"] == "/console/"


def test_a_wrong_key_gets_a_clear_message(harness: Harness, page: Page) -> None:
    page.goto(harness.server.url + "/console/")
    page.get_by_label("API key").fill("sk-not-a-key-" + unique("k"))
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("did not accept this API key")
    expect(alert).to_contain_text("401")
    expect(page.locator("#nav")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    # The right key then works from the same page.
    page.get_by_label("API key").fill(harness.server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()


def test_the_session_list_shows_sdk_sessions_with_filters(harness: Harness, page: Page) -> None:
    h = harness
    kept = h.session(title=unique("kept"))
    archived = h.session(title=unique("archived"))
    h.client.beta.sessions.archive(archived.id)
    sign_in(page, h)
    row = page.locator(f'tr[data-session-id="{kept.id}"]')
    expect(row).to_contain_text(kept.title)
    expect(row).to_contain_text("idle")
    expect(row).to_contain_text(kept.agent.name)
    expect(page.locator(f'tr[data-session-id="{archived.id}"]')).to_have_count(0)

    page.get_by_label("Include archived").check()
    expect(page.locator(f'tr[data-session-id="{archived.id}"]')).to_contain_text("archived")
    page.get_by_label("Status").select_option("running")
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    expect(page.locator(f'tr[data-session-id="{kept.id}"]')).to_have_count(0)
    page.get_by_label("Status").select_option("")
    page.get_by_label("Agent").select_option(kept.agent.id)
    expect(page.locator(f'tr[data-session-id="{kept.id}"]')).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(1)

    page.locator(f'tr[data-session-id="{kept.id}"] a').click()
    expect(page.get_by_role("heading", name=kept.title)).to_be_visible()
    assert_key_only_in_headers(page, h.server.key)


def test_a_running_session_shows_events_arriving_live(harness: Harness, page: Page) -> None:
    h = harness
    session = h.session(title=unique("live"))
    open_session(page, h, session.id)
    words = " ".join(f"word{i}" for i in range(12))
    page.get_by_label("Message to the agent").fill(f"[[mock:slow 250ms 12]] [[mock:text {words}]]")
    page.get_by_role("button", name="Send").click()

    expect(event_items(page, "user.message")).to_contain_text("word11")
    expect(page.locator("#session-status")).to_have_text("running", timeout=SHOWN)
    # The reply appears while the model is still streaming it: a partial text first.
    streaming = page.locator("#timeline li.streaming")
    expect(streaming).to_contain_text("word0", timeout=SHOWN)
    partial = streaming.inner_text()
    assert "word11" not in partial, partial
    assert h.client.beta.sessions.retrieve(session.id).status == "running"
    screenshot(page, "session-streaming")

    reply = page.locator('#timeline li[data-type="agent.message"]:not(.streaming)')
    expect(reply).to_contain_text(words, timeout=SHOWN)
    expect(page.locator("#session-status")).to_have_text("idle", timeout=SHOWN)
    expect(event_items(page, "span.model_request_end")).to_contain_text(re.compile(r"ended in [0-9.]+ s"))
    expect(event_items(page, "session.status_idle")).to_contain_text("end_turn")
    # The message was queued when sent; the page shows when it was processed once the turn ran.
    expect(event_items(page, "user.message").locator("time")).to_be_visible()
    expect(event_items(page, "user.message")).not_to_contain_text("queued")
    usage = h.client.beta.sessions.retrieve(session.id).usage
    assert usage.output_tokens, usage
    expect(page.locator("#session-usage")).to_contain_text(f"/ {usage.output_tokens:,}")
    # What the page shows is the server's log: one item per event, in order.
    listed = [e for e in h.events(session.id)]
    shown = page.locator("#timeline li").evaluate_all("items => items.map(i => i.dataset.eventId)")
    expected = [e.id for e in listed if e.type not in ("agent.tool_result",)]
    assert shown == expected, (shown, types(listed))
    screenshot(page, "session-after-turn")
    assert_key_only_in_headers(page, h.server.key)


def ask_agent(h: Harness) -> Any:
    return h.agent(tools=[{**TOOLSET, "configs": [{"name": "bash", "permission_policy": {"type": "always_ask"}}]}])


def test_allow_runs_an_always_ask_call_and_deny_refuses_one(harness: Harness, page: Page) -> None:
    h = harness
    session = h.session(agent=ask_agent(h))
    open_session(page, h, session.id)
    h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": bash("echo allowed-$((6*7))")}]})
    allow = page.get_by_role("button", name="Allow")
    expect(allow).to_be_visible(timeout=SHOWN)
    screenshot(page, "session-requires-action")
    allow.click()
    card = event_items(page, "agent.tool_use")
    expect(card.locator(".result")).to_contain_text("allowed-42", timeout=SHOWN)
    expect(page.locator("#session-status")).to_have_text("idle", timeout=SHOWN)
    events = h.events(session.id)
    confirmations = [e for e in events if e.type == "user.tool_confirmation"]
    assert [c.result for c in confirmations] == ["allow"]
    assert "allowed-42" in "".join(b.text for b in tool_results(events)[0].content)

    h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": bash("echo never-run")}]})
    expect(page.get_by_role("button", name="Deny")).to_be_visible(timeout=SHOWN)
    page.get_by_label("Reason for denying").fill("not today")
    page.get_by_role("button", name="Deny").click()
    expect(event_items(page, "user.tool_confirmation").last).to_contain_text("denied", timeout=SHOWN)
    expect(card.last.locator(".result")).to_contain_text("not today", timeout=SHOWN)
    events = h.events(session.id)
    denial = [e for e in events if e.type == "user.tool_confirmation"][-1]
    assert denial.result == "deny" and denial.deny_message == "not today"
    assert "never-run" not in "".join(b.text for b in tool_results(events)[-1].content)


def test_interrupt_stops_a_sleep(harness: Harness, page: Page) -> None:
    h = harness
    session = h.session()
    open_session(page, h, session.id)
    page.get_by_label("Message to the agent").fill(bash("sleep 30"))
    page.get_by_role("button", name="Send").click()
    expect(event_items(page, "agent.tool_use")).to_contain_text("sleep 30", timeout=SHOWN)
    expect(event_items(page, "agent.tool_use").locator(".result")).to_contain_text("waiting")
    page.get_by_role("button", name="Interrupt").click()
    expect(page.locator("#session-status")).to_have_text("idle", timeout=SHOWN)
    expect(event_items(page, "user.interrupt")).to_be_visible()
    expect(event_items(page, "agent.tool_use").locator(".result.is-error")).to_be_visible()
    events = h.events(session.id)
    assert "user.interrupt" in types(events)
    assert tool_results(events)[0].is_error
    idle = [e for e in events if e.type == "session.status_idle"][-1]
    assert stop_type(idle) == "end_turn"
    screenshot(page, "session-interrupted")


def test_the_timeline_resumes_after_a_server_restart(browser: Browser, mock: MockModel, tmp_path: Path) -> None:
    """The server goes away under an open page (its shutdown ends every stream) and comes back
    on the same address: the page reconnects with `Last-Event-ID` and shows what happened
    meanwhile, nothing twice."""
    base = tmp_path / "restart"
    searchable(base)
    key = new_key()
    listen = f"127.0.0.1:{free_port()}"

    def start() -> ServerProcess:
        return ServerProcess("rocksdb", base / "data", key, base / "server.log", runner=True, listen=listen).start()

    process = start()
    server = Server(storage="rocksdb", url=process.url, key=key, other_key=None, process=process)
    client = server.client()
    h = Harness(client=client, server=server, mock=mock, vault=llm_vault(client, mock.url), token="sk-mock-token")
    session = h.session()
    context = browser.new_context()
    page = context.new_page()
    page.requests = []  # type: ignore[attr-defined]
    page.on("request", lambda request: page.requests.append(request))  # type: ignore[attr-defined]
    try:
        open_session(page, h, session.id)
        h.turn(session.id, "[[mock:text before the restart]]")
        expect(event_items(page, "agent.message")).to_contain_text("before the restart", timeout=SHOWN)

        assert process.stop() == 0
        expect(page.locator("#connection")).to_have_text("reconnecting…", timeout=SHOWN)
        process = start()
        h.turn(session.id, "[[mock:text after the restart]]")
        expect(event_items(page, "agent.message").last).to_contain_text("after the restart", timeout=SHOWN)
        expect(page.locator("#connection")).to_have_text("live")
        shown = page.locator("#timeline li").evaluate_all("items => items.map(i => i.dataset.eventId)")
        assert len(shown) == len(set(shown)), "an event was shown twice"
        assert shown == [e.id for e in h.events(session.id)]
        streams = [r for r in page.requests if r.url.split("?")[0].endswith("/events/stream")]  # type: ignore[attr-defined]
        assert len(streams) >= 2 and streams[-1].headers.get("last-event-id"), "the reconnect did not resume"
    finally:
        context.close()
        process.stop()


def test_older_events_load_on_demand(harness: Harness, page: Page) -> None:
    h = harness
    session = h.session()
    for i in range(4):
        h.send(session.id, *[{"type": "user.message", "content": [{"type": "text", "text": f"[[mock:text r{i}-{j}]]"}]} for j in range(50)])

    def settled() -> bool:
        events = h.events(session.id)
        done = all(e.processed_at for e in events if e.type == "user.message")
        return done and h.client.beta.sessions.retrieve(session.id).status == "idle"

    wait_for(settled, timeout=120)
    total = len(h.events(session.id))
    assert total > 200, total
    open_session(page, h, session.id)
    expect(page.locator("#timeline li")).to_have_count(100)
    older = page.get_by_role("button", name="Load older events")
    while older.is_visible():
        older.click()
        time.sleep(0.2)
    expect(page.locator("#timeline li")).to_have_count(total)
    shown = page.locator("#timeline li").evaluate_all("items => items.map(i => i.dataset.eventId)")
    assert shown == [e.id for e in h.events(session.id)]


def test_agent_versions_are_compared(harness: Harness, page: Page) -> None:
    h = harness
    agent = h.agent(system="first prompt")
    h.client.beta.agents.update(agent.id, version=agent.version, system="second prompt")
    sign_in(page, h, "#/agents/" + agent.id)
    diff = page.get_by_label("Differences")
    expect(diff.locator(".del")).to_contain_text("first prompt")
    expect(diff.locator(".add")).to_contain_text("second prompt")
    page.locator("#diff-from").select_option("2")
    expect(diff).to_contain_text("No differences.")


def test_environments_vaults_and_files_pages(harness: Harness, page: Page) -> None:
    h = harness
    environment = h.environment(
        config={"type": "cloud", "networking": {"type": "limited", "allowed_hosts": ["example.test"]}}
    )
    secret = "sk-secret-" + unique("tok")
    vault = h.client.beta.vaults.create(display_name=unique("tools"))
    h.client.beta.vaults.credentials.create(
        vault.id, display_name="docs server", auth={"type": "static_bearer", "token": secret, "mcp_server_url": "https://mcp.example.test/mcp"}
    )
    session = h.session()
    events = h.turn(session.id, bash("echo report-body > /mnt/session/outputs/report.txt && echo ok"))
    assert tool_results(events), types(events)

    sign_in(page, h, "#/environments")
    expect(page.locator("tr", has_text=environment.name)).to_contain_text("limited (example.test)")
    page.goto(h.server.url + "/console/#/vaults/" + vault.id)
    row = page.locator("tr", has_text="docs server")
    expect(row).to_contain_text("static_bearer")
    expect(row).to_contain_text("https://mcp.example.test/mcp")
    assert secret not in page.content()

    page.goto(h.server.url + f"/console/#/files?scope={session.id}")
    row = page.locator("tr", has_text="report.txt")
    with page.expect_download() as download:
        row.get_by_role("button", name="Download").click()
    assert Path(download.value.path()).read_bytes() == b"report-body\n"
    assert_key_only_in_headers(page, h.server.key)


def test_threads_show_as_tabs_with_their_own_timelines(harness: Harness, page: Page) -> None:
    h = harness
    reviewer = h.agent(name=unique("reviewer"), description="reviews code")
    coordinator = h.agent(name=unique("lead"), multiagent={"type": "coordinator", "agents": [reviewer.id]})
    session = h.session(agent=coordinator)
    open_session(page, h, session.id)
    expect(page.get_by_role("tablist")).to_be_hidden()
    delegation = json.dumps({"agent": reviewer.name, "message": "<<mock:text looks good to me>>"})
    h.turn(session.id, f"[[mock:tool message_agent {delegation}]]")
    # The child thread appears as a tab beside the primary one, while the page is open.
    child_tab = page.get_by_role("tab", name=re.compile(reviewer.name))
    expect(child_tab).to_be_visible(timeout=SHOWN)
    expect(event_items(page, "session.thread_created")).to_contain_text(reviewer.name)
    child_tab.click()
    expect(child_tab).to_have_attribute("aria-selected", "true")
    expect(event_items(page, "agent.message")).to_contain_text("looks good to me", timeout=SHOWN)
    thread = [t for t in h.client.beta.sessions.threads.list(session.id).data if t.parent_thread_id][0]
    listed = h.client.beta.sessions.threads.events.list(thread.id, session_id=session.id, limit=1000)
    shown = page.locator("#timeline li").evaluate_all("items => items.map(i => i.dataset.eventId)")
    assert shown == [e.id for e in listed.data]
    page.get_by_role("tab", name="Primary").click()
    expect(event_items(page, "session.thread_created")).to_be_visible()
    screenshot(page, "session-threads")


def test_a_custom_tool_result_is_sent_from_the_form(harness: Harness, page: Page) -> None:
    h = harness
    lookup = {
        "type": "custom",
        "name": "lookup",
        "description": "Look a key up in the caller's table.",
        "input_schema": {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
    }
    session = h.session(agent=h.agent(tools=[TOOLSET, lookup]))
    open_session(page, h, session.id)
    h.send(session.id, {"type": "user.message", "content": [{"type": "text", "text": '[[mock:tool lookup {"key": "answer"}]]'}]})
    form = page.get_by_label("Result of lookup")
    expect(form).to_be_visible(timeout=SHOWN)
    value = unique("forty-two")
    form.fill(value)
    page.get_by_role("button", name="Send result").click()
    expect(event_items(page, "agent.custom_tool_use").locator(".result")).to_contain_text(value, timeout=SHOWN)
    expect(page.locator("#session-status")).to_have_text("idle", timeout=SHOWN)
    events = h.events(session.id)
    answer = [e for e in events if e.type == "user.custom_tool_result"][0]
    assert answer.custom_tool_use_id == [e for e in events if e.type == "agent.custom_tool_use"][0].id
    assert answer.content[0].text == value and not answer.is_error
    # The model got the result in its next request.
    assert value in json.dumps(h.model_requests()[-1]["body"]["messages"][-1])
