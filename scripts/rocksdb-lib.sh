#!/usr/bin/env bash
# Builds RocksDB's C++ library once, as a static librocksdb.a outside the clone, and prints the
# directory holding it. Later builds link it through ROCKSDB_LIB_DIR + ROCKSDB_STATIC instead of
# compiling RocksDB again (18 to 35 minutes on 2 cores). The version follows the
# `librocksdb-sys` pinned in Cargo.lock, and the compression features follow the ones the
# workspace enables, so a dependency bump or a feature change builds a fresh library.
#
# The helper crate is built in its own target directory (whatever CARGO_TARGET_DIR says), the
# library is copied into the cache atomically (temporary name, then rename), and the helper build
# (about 1 GB) is removed afterwards. A lock keeps two concurrent callers from building twice.
#
# Environment: MANAGED_AGENTS_CACHE (default /var/cache/managed-agents). `cargo` comes from PATH.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

lock_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' \
        "$repo/Cargo.lock"
}
sys_version=$(lock_version librocksdb-sys)
rocksdb_version=$(lock_version rocksdb)
lz4_version=$(lock_version lz4-sys)
zstd_version=$(lock_version zstd-sys)
for version in "$sys_version" "$rocksdb_version" "$lz4_version" "$zstd_version"; do
    [ -n "$version" ] || {
        echo "rocksdb-lib: rocksdb, librocksdb-sys, lz4-sys or zstd-sys missing from $repo/Cargo.lock" >&2
        exit 1
    }
done
# The compression libraries compiled into librocksdb.a; the workspace's `rocksdb` dependency
# enables the same features so that lz4-sys and zstd-sys are linked beside it.
features='"lz4", "zstd"'
feature_tag=lz4-zstd

cache=${MANAGED_AGENTS_CACHE:-/var/cache/managed-agents}
out="$cache/rocksdb-$sys_version-$feature_tag"
if [ -f "$out/librocksdb.a" ]; then
    echo "$out"
    exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/rocksdb-lib.lock"
flock 9
# Another caller may have finished the build while this one waited for the lock.
if [ -f "$out/librocksdb.a" ]; then
    echo "$out"
    exit 0
fi

work="$cache/rocksdb-build-$sys_version-$feature_tag"
rm -rf "$work"
mkdir -p "$work/src" "$out"
cat >"$work/Cargo.toml" <<TOML
[package]
name = "rocksdb-lib-build"
version = "0.0.0"
edition = "2021"
[dependencies]
rocksdb = { version = "=${rocksdb_version%%+*}", default-features = false, features = [$features] }
librocksdb-sys = { version = "=${sys_version%%+*}", default-features = false }
lz4-sys = "=${lz4_version%%+*}"
zstd-sys = { version = "=${zstd_version%%+*}", default-features = false }
[workspace]
TOML
echo 'fn main() { let _ = rocksdb::Options::default(); }' >"$work/src/main.rs"

echo "rocksdb-lib: compiling RocksDB $sys_version ($feature_tag) into $out, once per version;" \
    "it is linked statically afterwards. 18 to 35 minutes on 2 cores, depending on load." >&2
started=$(date +%s)
(
    cd "$work"
    env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC CARGO_TARGET_DIR="$work/target" \
        cargo build --release >&2
)
lib=$(find "$work/target/release/build" -name librocksdb.a -print -quit 2>/dev/null || true)
if [ -z "$lib" ]; then
    echo "rocksdb-lib: the helper build produced no librocksdb.a under $work/target" >&2
    exit 1
fi
cp "$lib" "$out/librocksdb.a.tmp"
mv "$out/librocksdb.a.tmp" "$out/librocksdb.a"
rm -rf "$work"
echo "rocksdb-lib: built in $(($(date +%s) - started)) s" >&2
echo "$out"
