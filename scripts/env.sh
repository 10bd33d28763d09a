#!/usr/bin/env bash
# Sourced by scripts/test.sh and scripts/serve.sh: installs the system packages the build and the
# tests need when they are missing, keeps cargo's target dir outside the clone for caching, and
# links RocksDB from a static library built once outside the clone (scripts/rocksdb-lib.sh).
# shellcheck shell=bash
repo=${repo:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cache=${MANAGED_AGENTS_CACHE:-/var/cache/managed-agents}

# shellcheck source=scripts/packages.sh
. "$repo/scripts/packages.sh"

# bindgen (librocksdb-sys) needs libclang and clang, a C++ compiler builds RocksDB, the sandbox
# needs bubblewrap (and mkfs.ext4, losetup and mount for workspace quotas), the Python SDK suite
# needs venv (and openssl for the credential injection tests' own test CA). Inside the sandbox
# (which sees the host's /usr) sessions use git (repository resources), curl (web_fetch), and
# pip and npm (environment packages; apt's are fetched with apt-get and dpkg-deb, always there).
# The PostgreSQL storage tests start throwaway clusters from the distribution's server
# (scripts/pg-cluster.sh: initdb and pg_ctl under /usr/lib/postgresql/*/bin). The console tests
# drive Debian's headless Chromium (with a font, so screenshots show text) through Playwright.
ensure_packages libclang-dev clang g++ make bubblewrap python3-venv e2fsprogs util-linux mount openssl \
    git curl ca-certificates python3-pip postgresql chromium fonts-liberation
# Debian's npm conflicts with NodeSource's nodejs, which brings its own npm.
if ! command -v npm >/dev/null 2>&1; then
    ensure_packages nodejs npm
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$cache/target}
# RocksDB's C++ library is built once per librocksdb-sys version (18 to 35 minutes on 2 cores)
# and then linked statically; the script prints the directory holding librocksdb.a.
ROCKSDB_LIB_DIR=$(MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh")
export ROCKSDB_LIB_DIR
export ROCKSDB_STATIC=1
