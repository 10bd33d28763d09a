#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/serve.sh: installs the system packages the build and the
# tests need when they are missing, keeps cargo's target dir outside the clone for caching, and
# links RocksDB from a static library built once outside the clone (scripts/rocksdb-lib.sh).
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}

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
