#!/usr/bin/env bash
# Runs the server on its embedded default: RocksDB in ./data, listening on 127.0.0.1:8080.
# Extra arguments go to `managed-agents serve` (see `--help`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/env.sh
. "$repo/scripts/env.sh"
exec cargo run --release -p managed-agents-server --bin managed-agents -- serve "$@"
