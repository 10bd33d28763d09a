#!/usr/bin/env bash
# The project's test command (CI runs it through .ci/run). On a fresh Debian machine it installs
# what the tests need, links RocksDB from a static library built once outside the clone
# (scripts/rocksdb-lib.sh), keeps cargo's target dir outside the clone for caching, and then
# checks formatting, lints and runs every test.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# System packages: bindgen (librocksdb-sys) needs libclang and clang, sandbox tests need
# bubblewrap, the Python SDK suite needs venv. apt only runs when something is missing.
missing=()
for package in libclang-dev clang bubblewrap python3-venv; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y "${missing[@]}"
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/managed-agents/target}
# RocksDB's C++ library is built once per librocksdb-sys version (about 15 minutes on 2 cores)
# and then linked statically; the script prints the directory holding librocksdb.a.
ROCKSDB_LIB_DIR=$("$repo/scripts/rocksdb-lib.sh")
export ROCKSDB_LIB_DIR
export ROCKSDB_STATIC=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace

# ---------------------------------------------------------------------------------------------
# SDK suites: the official Python SDK (anthropic==2.14.0, pytest, tests/python) and the latest
# TypeScript SDK (pinned in tests/typescript/package-lock.json, node --test) drive real
# `managed-agents serve` processes on 127.0.0.1:0 (RocksDB and memory storage) started from this
# build. scripts/sdk-env.sh prepares the venv and node_modules once and reuses them.
# ---------------------------------------------------------------------------------------------
cargo build -p managed-agents-server --bin managed-agents
export MANAGED_AGENTS_BIN="$CARGO_TARGET_DIR/debug/managed-agents"
sdk_venv=$("$repo/scripts/sdk-env.sh")
# Both suites run even when the first fails; the script fails if either did.
sdk_status=0
"$sdk_venv/bin/python" -m pytest "$repo/tests/python" -q || sdk_status=$?
(cd "$repo/tests/typescript" && node --test) || sdk_status=$?
exit "$sdk_status"
