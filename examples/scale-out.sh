#!/usr/bin/env bash
# Scale out on one machine, no containers: a throwaway PostgreSQL cluster (scripts/pg-cluster.sh)
# and three `managed-agents serve` processes over it, sharing one data directory (workspaces,
# file bytes, the secret key that seals vault credentials): node A serves the API and runs
# turns (`--runner on`), node B only serves the API (`--runner off`), and the worker runs turns
# (`--runner on`; its HTTP port answers too, e.g. `/metrics`). Runners lease each session they
# drive, so A and the worker share the sessions, and when one dies the other takes its
# sessions over once their leases lapse (`--runner-lease-seconds`, 15 by default). Put any HTTP
# load balancer in front of A and B; an SDK client may talk to either, and a stream on one node
# sees what is sent through the other.
#
# Usage: examples/scale-out.sh [BASE_DIR]
#   MANAGED_AGENTS_BIN   the server binary [cargo's release build, built if missing]
#   MANAGED_AGENTS_BOOTSTRAP_KEY   the API key every node accepts [a random one, printed]
# Prints `node-a URL`, `node-b URL`, `worker URL` and `key KEY` lines, then runs until stdin
# closes or Ctrl-C, and stops everything it started.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
base=${1:-$(mktemp -d "${TMPDIR:-/tmp}/scale-out.XXXXXX")}
mkdir -p "$base"
bin=${MANAGED_AGENTS_BIN:-}
if [ -z "$bin" ]; then
    # shellcheck source=scripts/env.sh
    . "$repo/scripts/env.sh"
    cargo build --release -q -p managed-agents-server --bin managed-agents >&2
    bin="$CARGO_TARGET_DIR/release/managed-agents"
fi
key=${MANAGED_AGENTS_BOOTSTRAP_KEY:-sk-scale-out-$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')}
nodes=()
cluster_in=
stop() {
    # The nodes first (they use the database), then the cluster: closing its stdin stops it.
    for pid in "${nodes[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${nodes[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$cluster_in" ]; then
        exec {cluster_in}>&-
        wait "$cluster" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 1' INT TERM HUP

# The cluster: the script prints its URL, and stops it when its stdin closes (at our exit).
exec {cluster_in}> >(exec "$repo/scripts/pg-cluster.sh" > "$base/cluster.url")
cluster=$!
for _ in $(seq 600); do
    [ -s "$base/cluster.url" ] && break
    sleep 0.1
done
url=$(head -n 1 "$base/cluster.url")
case "$url" in postgres://*) ;; *) echo "scale-out: PostgreSQL did not start" >&2; exit 1 ;; esac

# One node: prints its address once it listens.
node() {
    local name=$1 runner=$2
    MANAGED_AGENTS_BOOTSTRAP_KEY=$key MANAGED_AGENTS_RUNNER=$runner "$bin" serve \
        --listen 127.0.0.1:0 --storage postgres --database-url "$url" \
        --data-dir "$base/data" > "$base/$name.out" 2> "$base/$name.log" &
    nodes+=($!)
    for _ in $(seq 600); do
        if grep -q '^listening on ' "$base/$name.out" 2>/dev/null; then
            echo "$name $(sed -n 's/^listening on //p' "$base/$name.out" | head -n 1)"
            return
        fi
        sleep 0.1
    done
    echo "scale-out: $name did not start; see $base/$name.log" >&2
    exit 1
}
node node-a on
node node-b off
node worker on
echo "key $key"
# Keep running until our stdin closes (or a signal).
cat > /dev/null || true
