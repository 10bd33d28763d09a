#!/usr/bin/env bash
# Builds RocksDB's C++ library once, as a static librocksdb.a outside the clone, and prints the
# directory holding it. Later builds link it through ROCKSDB_LIB_DIR + ROCKSDB_STATIC instead of
# compiling RocksDB again (about 15 minutes on 2 cores). The version follows the
# `librocksdb-sys` pinned in Cargo.lock, so a dependency bump builds a fresh library.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
sys_version=$(awk '/^name = "librocksdb-sys"$/{getline; gsub(/version = |"/,""); print; exit}' "$repo/Cargo.lock")
rocksdb_version=$(awk '/^name = "rocksdb"$/{getline; gsub(/version = |"/,""); print; exit}' "$repo/Cargo.lock")
cache=${MANAGED_AGENTS_CACHE:-/var/cache/managed-agents}
out="$cache/rocksdb-$sys_version"
if [ -f "$out/librocksdb.a" ]; then echo "$out"; exit 0; fi
work="$cache/rocksdb-build-$sys_version"
mkdir -p "$work/src" "$out"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "rocksdb-lib-build"
version = "0.0.0"
edition = "2021"
[dependencies]
rocksdb = { version = "=$rocksdb_version", default-features = false }
TOML
echo 'fn main() { let _ = rocksdb::Options::default(); }' > "$work/src/main.rs"
(cd "$work" && env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC cargo build --release >&2)
lib=$(find "$work/target/release/build" -name librocksdb.a | head -n 1)
[ -n "$lib" ] || { echo "librocksdb.a was not produced" >&2; exit 1; }
cp "$lib" "$out/librocksdb.a.tmp" && mv "$out/librocksdb.a.tmp" "$out/librocksdb.a"
echo "$out"
