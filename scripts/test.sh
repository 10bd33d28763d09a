#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run). On a fresh Debian machine it installs
# what the tests need, links RocksDB from a static library built once outside the clone
# (scripts/rocksdb-lib.sh), keeps cargo's target dir outside the clone for caching, and then
# checks formatting, lints and runs every test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# The set-up scripts first: a lint (shellcheck) and a test of their logic with a stand-in cargo
# (seconds), so a broken install step fails here and not 35 minutes into a fresh machine's build.
# shellcheck source=scripts/packages.sh
. "$repo/scripts/packages.sh"
ensure_packages shellcheck
shellcheck -x scripts/*.sh scripts/tests/*.sh .ci/run
"$repo/scripts/tests/setup-scripts.sh"

# shellcheck source=scripts/env.sh
. "$repo/scripts/env.sh"
# CI builds a fresh clone every time into the shared target dir: incremental compilation data
# would only pile up there (several GB per run, never reused), so CI builds without it.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi

# The agent CLIs the `claude` and `codex` engines run (pinned in harness/runtimes.pins), installed
# once outside the clone; servers started by the suites find them through
# MANAGED_AGENTS_RUNTIMES_DIR (`serve --runtimes-dir`). A machine without them installs them here
# or fails: no test skips for a missing CLI.
MANAGED_AGENTS_RUNTIMES_DIR=$("$repo/scripts/agent-runtimes.sh")
export MANAGED_AGENTS_RUNTIMES_DIR

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Architecture invariant 1: core depends on no runtime, storage engine or HTTP crate.
if cargo tree -p managed-agents-core -e normal --prefix none | grep -Eq '^(tokio|rocksdb|librocksdb-sys|axum|hyper|reqwest) '; then
    echo "core must not depend on tokio, rocksdb, axum, hyper or reqwest:" >&2
    cargo tree -p managed-agents-core -e normal -i tokio >&2 || true
    exit 1
fi
# Architecture invariant 9 (the server makes no session decisions) is server/tests/thin.rs, run
# here with every other test.
cargo test --workspace
# Agents run embedded: a real turn (store, runner, sandbox, in-process mock model, no HTTP);
# the example exits non-zero unless it saw an agent.message and a session.status_idle.
cargo run -q -p managed-agents-examples --example embedded_agent >/dev/null

# ---------------------------------------------------------------------------------------------
# SDK suites: the official Python SDK (anthropic==2.14.0, pytest, tests/python) and the latest
# TypeScript SDK (pinned in tests/typescript/package-lock.json, node --test) drive real
# `managed-agents serve` processes on 127.0.0.1:0 (RocksDB and memory storage, PostgreSQL for
# part of the Python suite) started from this build. scripts/sdk-env.sh prepares the venv and
# node_modules once and reuses them.
# ---------------------------------------------------------------------------------------------
cargo build -p managed-agents-server --bin managed-agents
export MANAGED_AGENTS_BIN="$CARGO_TARGET_DIR/debug/managed-agents"
sdk_venv=$("$repo/scripts/sdk-env.sh")
# Every suite runs even when one fails; the script fails if any did.
sdk_status=0
"$sdk_venv/bin/python" -m pytest "$repo/tests/python" -q || sdk_status=$?
# The API files and real agent turns once more on `--storage postgres` (each server on a
# throwaway cluster of its own, scripts/pg-cluster.sh; about 2 minutes).
(cd "$repo/tests/python" && MANAGED_AGENTS_TEST_BACKENDS=postgres "$sdk_venv/bin/python" -m pytest -q \
    test_agents.py test_environments.py test_errors.py test_events.py test_files_resources.py \
    test_fork.py test_sessions.py test_stream.py test_threads.py test_vaults.py test_skills.py \
    test_outcomes.py test_toolset.py test_budget.py test_harness_turns.py) || sdk_status=$?
# The API files once more against two API nodes over one cluster, each request of a client sent
# to the next node in turn (conftest.py `postgres-2nodes`: streams on one node, sends on the
# other; about 1.5 minutes).
(cd "$repo/tests/python" && MANAGED_AGENTS_TEST_BACKENDS=postgres-2nodes "$sdk_venv/bin/python" -m pytest -q \
    test_agents.py test_environments.py test_errors.py test_events.py test_files_resources.py \
    test_sessions.py test_stream.py test_threads.py test_vaults.py test_keys.py test_tenants.py \
    test_idempotency.py test_memory_stores.py) || sdk_status=$?
(cd "$repo/tests/typescript" && node --test) || sdk_status=$?
exit "$sdk_status"
