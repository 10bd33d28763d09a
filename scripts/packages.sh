#!/usr/bin/env bash
# Sourced by the set-up scripts: `ensure_packages NAME...` installs the named Debian packages that
# are not installed yet. apt only runs when one is missing, so warm runs cost a dpkg query each.
# shellcheck shell=bash
ensure_packages() {
    local missing=() package sudo=""
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
        $sudo apt-get update >&2
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}" >&2
    fi
}
