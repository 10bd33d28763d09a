"""Console benchmark (issue 15): the first render of a session with 10,000 events in headless
Chromium, measured with the Performance API.

A release `managed-agents serve` (runner off, RocksDB in a temporary directory) gets a session
with N `user.message` events sent through the official SDK. Two measurements, each repeated:

- cold: a new browser tab loads `/console/#/sessions/ID` with the key already in session
  storage; the time is the `console:timeline-rendered` mark, counted from navigation start
  (HTML, script, the session, the newest page of events and the stream, rendered);
- warm: in a signed-in tab, from setting `location.hash` to the same mark.

Run (after `cargo build --release -p managed-agents-server --bin managed-agents` and
`scripts/sdk-env.sh`):

    "$(scripts/sdk-env.sh)/bin/python" benches/console/render.py [--events 10000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import anthropic
from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]


def start_server(data_dir: Path, key: str) -> tuple[subprocess.Popen[str], str]:
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/cache/managed-agents/target"))
    binary = os.environ.get("MANAGED_AGENTS_BIN", str(target / "release" / "managed-agents"))
    env = dict(os.environ, MANAGED_AGENTS_BOOTSTRAP_KEY=key, MANAGED_AGENTS_RUNNER="off", MANAGED_AGENTS_LOG="warn")
    proc = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("listening on "):
            url = line.split("listening on ", 1)[1].strip()
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, url
    raise SystemExit("the server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    chromium = os.environ.get("MANAGED_AGENTS_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        raise SystemExit("no chromium on PATH")
    key = "sk-bench-" + secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp) / "data", key)
        try:
            client = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
            agent = client.beta.agents.create(name="bench", model="claude-sonnet-4-6")
            env = client.beta.environments.create(name="bench")
            session = client.beta.sessions.create(agent=agent.id, environment_id=env.id, title="10k events")
            batch = 50
            for start in range(0, args.events, batch):
                client.beta.sessions.events.send(
                    session.id,
                    events=[
                        {"type": "user.message", "content": [{"type": "text", "text": f"message {i} " + "x" * 80}]}
                        for i in range(start, min(start + batch, args.events))
                    ],
                )
            listed = client.beta.sessions.events.list(session.id, limit=1)
            assert listed.data, "no events"
            cold, warm = [], []
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                for _ in range(args.runs):
                    context = browser.new_context()
                    context.add_init_script(f"sessionStorage.setItem('managed-agents.api-key', {key!r})")
                    page = context.new_page()
                    page.goto(f"{url}/console/#/sessions/{session.id}")
                    page.wait_for_selector("section[data-ready='1']", timeout=60_000)
                    cold.append(page.evaluate("performance.getEntriesByName('console:timeline-rendered')[0].startTime"))
                    shown = page.locator("#timeline li").count()
                    assert shown == 100, shown
                    page.evaluate("location.hash = '#/sessions'")
                    page.wait_for_selector("h1:text('Sessions')")
                    page.evaluate(
                        f"performance.clearMarks(); performance.mark('go'); location.hash = '#/sessions/{session.id}'"
                    )
                    page.wait_for_selector("section[data-ready='1']", timeout=60_000)
                    warm.append(page.evaluate("performance.measure('m', 'go', 'console:timeline-rendered').duration"))
                    context.close()
                browser.close()
        finally:
            proc.terminate()
            proc.wait(30)
    load = os.getloadavg()
    print(f"events in the session: {args.events}, runs: {args.runs}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name, values in (("cold (page load)", cold), ("warm (hash navigation)", warm)):
        print(
            f"{name}: median {statistics.median(values):.0f} ms, max {max(values):.0f} ms "
            f"({', '.join(f'{v:.0f}' for v in values)})"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
