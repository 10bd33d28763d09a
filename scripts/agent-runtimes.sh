#!/usr/bin/env bash
# Installs the pinned agent CLIs the `claude` and `codex` engines run in sandboxes (Claude Code
# and Codex, listed in harness/runtimes.pins) into a runtime directory outside the clone, once per
# version, and prints that directory. The layout is the one `managed-agents runtimes install`
# makes (harness/src/runtimes.rs): `<name>-<version>/node_modules/.bin/<name>` plus a marker file
# naming the package, everything readable by the sandbox uids, each version installed in a
# temporary directory and renamed into place (complete or absent; a concurrent caller's install
# is kept). `serve --runtimes-dir DIR` (or MANAGED_AGENTS_RUNTIMES_DIR) uses it.
#
# Environment: MANAGED_AGENTS_CACHE (default /var/cache/managed-agents; the directory is
# $MANAGED_AGENTS_CACHE/runtimes). `npm` comes from PATH (Debian's `npm` package when missing).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${MANAGED_AGENTS_CACHE:-/var/cache/managed-agents}
dir="$cache/runtimes"
marker=.managed-agents-runtime

if ! command -v npm >/dev/null 2>&1; then
    # shellcheck source=scripts/packages.sh
    . "$repo/scripts/packages.sh"
    ensure_packages nodejs npm
fi

umask 022
mkdir -p "$dir"
installed() { [ -f "$1/$marker" ] && [ -e "$1/node_modules/.bin/$2" ]; }

while read -r name package version; do
    case "$name" in '' | '#'*) continue ;; esac
    target="$dir/$name-$version"
    installed "$target" "$name" && continue
    echo "agent-runtimes: installing $package@$version into $dir (once per version)" >&2
    tmp=$(mktemp -d "$dir/.$name-$version.installing-XXXXXX")
    if ! npm install --prefix "$tmp" --no-audit --no-fund --no-save --loglevel=error \
        --engine-strict=false "$package@$version" >&2; then
        rm -rf "$tmp"
        echo "agent-runtimes: npm install $package@$version failed" >&2
        exit 1
    fi
    if [ ! -e "$tmp/node_modules/.bin/$name" ]; then
        rm -rf "$tmp"
        echo "agent-runtimes: npm installed $package@$version without node_modules/.bin/$name" >&2
        exit 1
    fi
    echo "$package@$version" >"$tmp/$marker"
    chmod -R u+rwX,go+rX,go-w "$tmp"
    # rename(2): fails when another caller renamed its complete install there first.
    if ! mv -T "$tmp" "$target" 2>/dev/null; then
        rm -rf "$tmp"
        installed "$target" "$name" || {
            echo "agent-runtimes: cannot move the install into $target" >&2
            exit 1
        }
    fi
done <"$repo/harness/runtimes.pins"
echo "$dir"
