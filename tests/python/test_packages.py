"""Environment packages (issue 11, item 5): `packages.pip` and `packages.npm` of a `limited`
environment with `allow_package_managers` are installed from the real registries (PyPI and
npm, small pinned packages) through the door into a layer built once per package spec and
bound read-only at `/opt/managed-agents/env` into every session of the environment, with
`PATH`, `PYTHONPATH` and `NODE_PATH` pointing into it.

- The first session's bash tool imports the pip package, runs the npm package's executable
  and requires it from node; the layer is read-only; its build record names that session.
- A second session of the environment uses the same layer: the record still names the first
  session (no second build) and there is one layer on disk.
- `apt` without root: GNU hello downloaded with apt-get and unpacked with dpkg-deb, on `PATH`.
- A package that does not exist: a terminal `session.error` with pip's last lines, the
  session idles, and no layer is kept.

The server runs with `--egress-allow-private` because this machine reaches the registries
through a local mirror at a documentation-range address, which the door otherwise refuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import Server, ServerProcess, new_key, unique
from harness_support import Harness, MockModel, bash, llm_vault, mock, searchable, text, tool_results  # noqa: F401

MOUNT = "/opt/managed-agents/env"
RECORD = f"{MOUNT}/.managed-agents-layer.json"
PACKAGES = {"pip": ["six==1.16.0"], "npm": ["semver@7.6.3"]}
WAIT = 600.0


def limited(packages: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "type": "cloud",
        "networking": {"type": "limited", "allowed_hosts": [], "allow_package_managers": True},
        "packages": packages,
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    base = tmp_path_factory.mktemp("packages")
    searchable(base)
    process = ServerProcess(
        "rocksdb", base / "data", new_key(), base / "server.log", runner=True, args=["--egress-allow-private"]
    ).start()
    yield process
    code = process.stop()
    assert code == 0, f"server exited with {code}; log tail:\n{process.log_tail()}"


def harness(process: ServerProcess, mock: MockModel) -> Harness:
    server = Server(storage="rocksdb", url=process.url, key=process.key, other_key=None, process=process)
    client = server.client()
    token = "sk-mock-" + unique("secret")
    return Harness(client=client, server=server, mock=mock, vault=llm_vault(client, mock.url, token), token=token)


def layers(process: ServerProcess) -> list[Path]:
    root = process.data_dir / "layers"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def only_result(events: list[Any]) -> str:
    results = tool_results(events)
    assert len(results) == 1, [e.type for e in events]
    return text(results[0])


USE = bash(
    "python3 -c 'import six; print(six.__version__)'"
    " && semver 1.2.3 -r '>=1.0.0'"
    " && node -e 'console.log(require(\"semver\").valid(\"2.0.0\"))'"
    f" && (touch {MOUNT}/x 2>/dev/null && echo writable || echo read-only)"
    f" && cat {RECORD}"
)


def test_pip_and_npm_packages_are_installed_once_and_shared(server: ServerProcess, mock: MockModel) -> None:
    h = harness(server, mock)
    environment = h.environment(config=limited(PACKAGES))
    agent = h.agent()

    first = h.session(agent=agent, environment=environment)
    events = h.turn(first.id, USE, timeout=WAIT)
    assert not [e for e in events if e.type == "session.error"], [
        e.error.message for e in events if e.type == "session.error"
    ]
    out = only_result(events).splitlines()
    assert out[:4] == ["1.16.0", "1.2.3", "2.0.0", "read-only"], out
    record = json.loads("\n".join(out[4:]))
    assert record["built_by_session"] == first.id
    assert record["environment_id"] == environment.id
    assert record["packages"]["pip"] == PACKAGES["pip"] and record["packages"]["npm"] == PACKAGES["npm"]
    [layer] = layers(server)
    assert layer.name == record["key"]

    second = h.session(agent=agent, environment=environment)
    events = h.turn(second.id, USE, timeout=WAIT)
    assert not [e for e in events if e.type == "session.error"]
    out = only_result(events).splitlines()
    assert out[:4] == ["1.16.0", "1.2.3", "2.0.0", "read-only"], out
    assert json.loads("\n".join(out[4:])) == record  # built once, by the first session
    assert layers(server) == [layer]


def test_a_package_that_does_not_exist_is_a_session_error_and_the_session_idles(
    server: ServerProcess, mock: MockModel
) -> None:
    h = harness(server, mock)
    missing = unique("managed-agents-no-such-package").lower()
    environment = h.environment(config=limited({"pip": [f"{missing}==1.0"]}))
    before = layers(server)
    session = h.session(environment=environment)
    events = h.turn(session.id, bash("echo never"), timeout=WAIT)
    errors = [e for e in events if e.type == "session.error"]
    assert len(errors) == 1, [e.type for e in events]
    message = errors[0].error.message
    assert "pip" in message and missing in message, message
    assert "No matching distribution" in message or "Could not find a version" in message, message
    assert tool_results(events) == [] and not h.model_requests()
    assert events[-1].type == "session.status_idle"
    assert layers(server) == before
    assert not [p for p in (server.data_dir / "layers").iterdir() if p.name.startswith(".build-")]


def test_apt_packages_are_unpacked_into_the_layer_without_root(server: ServerProcess, mock: MockModel) -> None:
    h = harness(server, mock)
    environment = h.environment(config=limited({"apt": ["hello"]}))
    session = h.session(environment=environment)
    events = h.turn(session.id, bash("id -u; command -v hello; hello"), timeout=WAIT)
    assert not [e for e in events if e.type == "session.error"], [
        e.error.message for e in events if e.type == "session.error"
    ]
    uid, path, greeting = only_result(events).splitlines()
    assert uid != "0"
    assert path == f"{MOUNT}/apt/usr/bin/hello"
    assert greeting == "Hello, world!"
