#!/usr/bin/env bash
# Tests the logic of the set-up scripts in seconds, without compiling RocksDB or downloading the
# agent CLIs: a stand-in `cargo` on PATH creates `librocksdb.a` where the real one would (under
# CARGO_TARGET_DIR when it is set, else under ./target), a stand-in `npm` lays out node_modules,
# and each case runs scripts/rocksdb-lib.sh, scripts/agent-runtimes.sh or sources scripts/env.sh
# with a temporary cache directory. Prints one line per case and `N passed, N failed` at the end;
# exits non-zero when a case failed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

sys_version=$(awk '$0 == "name = \"librocksdb-sys\"" { getline; gsub(/version = |"/, ""); print; exit }' \
    "$repo/Cargo.lock")
passed=0
failed=0

# The stand-in: records each call in $STANDIN_LOG, sleeps $STANDIN_SLEEP seconds (to widen races),
# and unless $STANDIN_FAIL is set writes the artefacts of a librocksdb-sys build script run.
mkdir -p "$scratch/bin"
cat >"$scratch/bin/cargo" <<'STANDIN'
#!/usr/bin/env bash
set -euo pipefail
echo "cargo $* (CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-unset}, ROCKSDB_LIB_DIR=${ROCKSDB_LIB_DIR:-unset}, pwd=$PWD)" >>"$STANDIN_LOG"
sleep "${STANDIN_SLEEP:-0}"
[ -z "${STANDIN_FAIL:-}" ] || { echo "stand-in cargo: failing on purpose" >&2; exit 101; }
[ "$1 $2" = "build --release" ] || { echo "stand-in cargo: unexpected arguments $*" >&2; exit 2; }
target=${CARGO_TARGET_DIR:-$PWD/target}
out="$target/release/build/librocksdb-sys-0123456789abcdef/out"
mkdir -p "$out"
printf 'static library stand-in built from %s\n' "$PWD" >"$out/librocksdb.a"
STANDIN
chmod +x "$scratch/bin/cargo"
export PATH="$scratch/bin:$PATH"

check() { # check NAME CONDITION-COMMAND...
    local name=$1
    shift
    if "$@"; then
        echo "ok: $name"
        passed=$((passed + 1))
    else
        echo "FAILED: $name" >&2
        failed=$((failed + 1))
    fi
}
calls() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }
lib_dir() { echo "$1/rocksdb-$sys_version-lz4-zstd"; }
no_helper_left() { ! compgen -G "$1/rocksdb-build-*" >/dev/null; }

# 1. No CARGO_TARGET_DIR: built, cached, helper removed; the second call reuses the cache.
cache="$scratch/cache-plain"
export STANDIN_LOG="$scratch/plain.log"
first=$(env -u CARGO_TARGET_DIR MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" 2>"$scratch/plain.err")
check "without CARGO_TARGET_DIR the library is found and cached" test -f "$(lib_dir "$cache")/librocksdb.a"
check "without CARGO_TARGET_DIR it prints the cache directory" test "$first" = "$(lib_dir "$cache")"
check "the helper build (~1 GB for real) is removed" no_helper_left "$cache"
check "one line says what is compiled and that it happens once" \
    grep -q "compiling RocksDB $sys_version .*once per version" "$scratch/plain.err"
second=$(env -u CARGO_TARGET_DIR MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" 2>/dev/null)
check "the second call prints the same directory" test "$second" = "$first"
check "the second call does not build again" test "$(calls "$STANDIN_LOG")" -eq 1

# 2. CARGO_TARGET_DIR set to a shared target dir (as scripts/env.sh does) and a stale
# ROCKSDB_LIB_DIR inherited: the helper still builds RocksDB in its own target dir, finds its
# library, and leaves the shared target dir alone.
cache="$scratch/cache-shared"
export STANDIN_LOG="$scratch/shared.log"
shared_target="$scratch/shared-target"
first=$(ROCKSDB_LIB_DIR=/nonexistent CARGO_TARGET_DIR="$shared_target" MANAGED_AGENTS_CACHE="$cache" \
    "$repo/scripts/rocksdb-lib.sh" 2>/dev/null)
check "with CARGO_TARGET_DIR the library is found and cached" test -f "$(lib_dir "$cache")/librocksdb.a"
check "with CARGO_TARGET_DIR nothing lands in the shared target dir" test ! -e "$shared_target"
check "with CARGO_TARGET_DIR the helper build is removed" no_helper_left "$cache"
check "the helper build ignores an inherited ROCKSDB_LIB_DIR" grep -q "ROCKSDB_LIB_DIR=unset" "$STANDIN_LOG"
second=$(CARGO_TARGET_DIR="$shared_target" MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" 2>/dev/null)
check "with CARGO_TARGET_DIR the second call reuses the cache" \
    test "$second" = "$first" -a "$(calls "$STANDIN_LOG")" -eq 1

# 3. A build that produces nothing fails loudly and caches nothing.
cache="$scratch/cache-failing"
export STANDIN_LOG="$scratch/failing.log"
STANDIN_FAIL=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" >/dev/null 2>&1
status=$?
check "a failed build exits non-zero" test "$status" -ne 0
check "a failed build leaves no library (nor a partial one) in the cache" \
    test -z "$(find "$cache" -name 'librocksdb.a*' -print -quit)"

# 4. Two concurrent first calls build once (the second waits for the first's lock).
cache="$scratch/cache-concurrent"
export STANDIN_LOG="$scratch/concurrent.log"
STANDIN_SLEEP=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" >"$scratch/a.out" 2>/dev/null &
STANDIN_SLEEP=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/rocksdb-lib.sh" >"$scratch/b.out" 2>/dev/null &
wait
check "concurrent first calls build once" test "$(calls "$STANDIN_LOG")" -eq 1
check "concurrent first calls print the same directory" \
    test "$(cat "$scratch/a.out")" = "$(lib_dir "$cache")" -a "$(cat "$scratch/b.out")" = "$(lib_dir "$cache")"

# 5. scripts/env.sh (what serve.sh and test.sh source) with an empty cache: the target dir lives in
# that cache, RocksDB is linked from the library it built, statically.
cache="$scratch/cache-env"
export STANDIN_LOG="$scratch/env.log"
# shellcheck disable=SC2016 # expanded by the inner shell, after env.sh set them
env_out=$(env -u CARGO_TARGET_DIR -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC MANAGED_AGENTS_CACHE="$cache" \
    bash -c '. "$1/scripts/env.sh" >/dev/null 2>&1 && echo "$CARGO_TARGET_DIR|$ROCKSDB_LIB_DIR|$ROCKSDB_STATIC"' _ "$repo")
check "env.sh keeps the target dir in MANAGED_AGENTS_CACHE" test "${env_out%%|*}" = "$cache/target"
check "env.sh links the library rocksdb-lib.sh built, statically" \
    test "${env_out#*|}" = "$(lib_dir "$cache")|1" -a -f "$(lib_dir "$cache")/librocksdb.a"

# 6. scripts/agent-runtimes.sh with a stand-in npm (records calls in $NPM_LOG, sleeps
# $STANDIN_SLEEP, fails when $STANDIN_FAIL is set, else lays out node_modules like npm with a
# private umask): every pinned CLI is installed once, complete and readable by everyone.
cat >"$scratch/bin/npm" <<'STANDIN'
#!/usr/bin/env bash
set -euo pipefail
umask 077
echo "npm $*" >>"$NPM_LOG"
sleep "${STANDIN_SLEEP:-0}"
[ -z "${STANDIN_FAIL:-}" ] || { echo "stand-in npm: failing on purpose" >&2; exit 1; }
prefix="" spec=""
while [ $# -gt 0 ]; do
    case "$1" in --prefix) prefix=$2; shift ;; install | -*) ;; *) spec=$1 ;; esac
    shift
done
name=${spec%@*}
name=${name##*/}
[ "$name" = claude-code ] && name=claude
mkdir -p "$prefix/node_modules/$spec/bin" "$prefix/node_modules/.bin"
printf '#!/bin/sh\necho %s\n' "$spec" >"$prefix/node_modules/$spec/bin/$name"
chmod 700 "$prefix/node_modules/$spec/bin/$name"
ln -s "../$spec/bin/$name" "$prefix/node_modules/.bin/$name"
STANDIN
chmod +x "$scratch/bin/npm"
pins() { grep -v '^#' "$repo/harness/runtimes.pins" | grep -c .; }
complete() { # every pinned CLI has its marker and a runnable entry point
    local name package version
    while read -r name package version; do
        case "$name" in '' | '#'*) continue ;; esac
        [ "$(cat "$1/$name-$version/.managed-agents-runtime")" = "$package@$version" ] || return 1
        [ "$("$1/$name-$version/node_modules/.bin/$name")" = "$package@$version" ] || return 1
    done <"$repo/harness/runtimes.pins"
}
no_temp_left() { ! compgen -G "$1/.*.installing-*" >/dev/null; }

cache="$scratch/cache-runtimes"
export NPM_LOG="$scratch/npm.log"
first=$(MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/agent-runtimes.sh" 2>"$scratch/runtimes.err")
check "agent-runtimes prints the runtime directory" test "$first" = "$cache/runtimes"
check "agent-runtimes installs every pinned CLI at its pinned version" complete "$cache/runtimes"
check "agent-runtimes calls npm once per CLI" test "$(calls "$NPM_LOG")" -eq "$(pins)"
check "agent-runtimes says what it installs and that it happens once" \
    grep -q "installing @openai/codex@.*(once per version)" "$scratch/runtimes.err"
check "agent-runtimes leaves everything readable by the sandbox uids" \
    test -z "$(find "$cache/runtimes" ! -type l \( ! -perm -0444 -o -perm /0022 \) -print -quit)"
check "agent-runtimes leaves no temporary directory" no_temp_left "$cache/runtimes"
second=$(MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/agent-runtimes.sh" 2>/dev/null)
check "agent-runtimes' second call installs nothing" \
    test "$second" = "$first" -a "$(calls "$NPM_LOG")" -eq "$(pins)"

# 7. A failing npm: non-zero, and neither a version directory nor a temporary one is left.
cache="$scratch/cache-runtimes-failing"
export NPM_LOG="$scratch/npm-failing.log"
STANDIN_FAIL=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/agent-runtimes.sh" >/dev/null 2>&1
status=$?
check "agent-runtimes fails when npm fails" test "$status" -ne 0
check "a failed install leaves nothing in the runtime directory" \
    test -z "$(find "$cache/runtimes" -mindepth 1 -print -quit)"

# 8. Two concurrent first calls: both succeed with complete installs and nothing half-made.
cache="$scratch/cache-runtimes-concurrent"
export NPM_LOG="$scratch/npm-concurrent.log"
STANDIN_SLEEP=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/agent-runtimes.sh" >"$scratch/ra.out" 2>/dev/null &
STANDIN_SLEEP=1 MANAGED_AGENTS_CACHE="$cache" "$repo/scripts/agent-runtimes.sh" >"$scratch/rb.out" 2>/dev/null &
wait
check "concurrent agent-runtimes calls both print the directory" \
    test "$(cat "$scratch/ra.out")" = "$cache/runtimes" -a "$(cat "$scratch/rb.out")" = "$cache/runtimes"
check "concurrent agent-runtimes calls leave complete installs" complete "$cache/runtimes"
check "concurrent agent-runtimes calls leave no temporary directory" no_temp_left "$cache/runtimes"

echo "setup-scripts: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
