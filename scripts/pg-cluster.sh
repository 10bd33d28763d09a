#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for tests and examples: initdb into a new temporary
# directory as an unprivileged user (the `postgres` system user when run as root), a server on
# 127.0.0.1 at a free port with trust authentication, then prints its URL
# (postgres://postgres@127.0.0.1:PORT/postgres) on stdout. It then waits until its stdin
# closes (the caller exited or closed the pipe) and stops the server and removes the directory.
# Extra server settings come from PG_CLUSTER_OPTIONS (e.g. "-c fsync=off"). Needs the Debian
# `postgresql` package (scripts/test.sh installs it).
set -euo pipefail

bindir=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
    echo "pg-cluster: no initdb under /usr/lib/postgresql/*/bin (install the postgresql package)" >&2
    exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/pg-cluster.XXXXXX")
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
    as_owner=(runuser -u postgres --)
fi
cleanup() {
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if ! "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    exit 1
fi

# A random port, retried: pg_ctl -w fails when the port is taken.
started=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 30000))
    if "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -h 127.0.0.1 -k $dir -c max_connections=300 ${PG_CLUSTER_OPTIONS:-}" \
        start >/dev/null 2>&1; then
        started=yes
        break
    fi
done
if [ -z "$started" ]; then
    echo "pg-cluster: the server did not start; its log:" >&2
    cat "$dir/server.log" >&2 || true
    exit 1
fi

echo "postgres://postgres@127.0.0.1:$port/postgres"
# Runs until stdin reaches its end.
cat >/dev/null || true
