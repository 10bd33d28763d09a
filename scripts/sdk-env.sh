#!/usr/bin/env bash
# Prepares what the SDK suites need, idempotently and fast on re-runs, and prints the venv dir:
# - a Python venv (outside the clone, in the cache dir) with tests/python/requirements.txt
#   (the official `anthropic==2.14.0`, pytest, httpx); reinstalled only when that file changes;
# - tests/typescript/node_modules from package-lock.json (`npm ci`, the pinned @anthropic-ai/sdk);
#   reinstalled only when the lock file changes.
# Usage: venv=$(scripts/sdk-env.sh)   (progress goes to stderr)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${MANAGED_AGENTS_CACHE:-/var/cache/managed-agents}
mkdir -p "$cache"

# Python ---------------------------------------------------------------------------------------
requirements="$repo/tests/python/requirements.txt"
venv="$cache/sdk-venv"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
stamp="$venv/.requirements.sha256"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "sdk-env: preparing $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --disable-pip-version-check --quiet -r "$requirements" >&2
    echo "$want" > "$stamp"
fi

# Node -----------------------------------------------------------------------------------------
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "sdk-env: installing nodejs and npm" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y nodejs npm >&2
fi
ts="$repo/tests/typescript"
lock_sum=$(sha256sum "$ts/package-lock.json" | cut -d' ' -f1)
node_stamp="$ts/node_modules/.package-lock.sha256"
if [ ! -d "$ts/node_modules/@anthropic-ai/sdk" ] || [ "$(cat "$node_stamp" 2>/dev/null)" != "$lock_sum" ]; then
    echo "sdk-env: npm ci in tests/typescript" >&2
    (cd "$ts" && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$lock_sum" > "$node_stamp"
fi

echo "$venv"
