"""`managed-agents runtimes install claude|codex` as an operator runs it, with a stand-in npm
(`--npm`): the pinned package goes into `<data-dir>/runtimes` (or `--runtimes-dir`) as a complete
version directory readable by the sandbox uids, a second call installs nothing, and a failing npm
is a one-line error with a non-zero exit and nothing left behind."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from conftest import binary

STAND_IN = """#!/bin/sh
set -eu
umask 077
echo "$*" >> "$(dirname "$0")/npm.log"
[ ! -e "$(dirname "$0")/fail" ] || { echo "npm error 404 Not Found - GET https://registry.npmjs.org/x" >&2; exit 1; }
prefix=; spec=
while [ $# -gt 0 ]; do
  case "$1" in --prefix) prefix=$2; shift ;; install|-*) ;; *) spec=$1 ;; esac
  shift
done
name=${spec%@*}; name=${name##*/}; [ "$name" = claude-code ] && name=claude
mkdir -p "$prefix/node_modules/pkg/bin" "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho %s\\n' "$spec" > "$prefix/node_modules/pkg/bin/$name"
chmod 700 "$prefix/node_modules/pkg/bin/$name"
ln -s "../pkg/bin/$name" "$prefix/node_modules/.bin/$name"
"""


def stand_in(tmp_path: Path) -> Path:
    npm = tmp_path / "npm-bin" / "npm"
    npm.parent.mkdir()
    npm.write_text(STAND_IN)
    npm.chmod(0o755)
    return npm


def install(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MANAGED_AGENTS_")}
    return subprocess.run(
        [str(binary()), "runtimes", "install", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_install_is_complete_idempotent_and_readable(tmp_path: Path) -> None:
    npm = stand_in(tmp_path)
    data = tmp_path / "data"
    done = install("claude", "--data-dir", str(data), "--npm", str(npm))
    assert done.returncode == 0, done.stderr
    version_dir = Path(done.stdout.strip())
    assert version_dir.parent == data / "runtimes" and version_dir.name.startswith("claude-")
    assert "installing @anthropic-ai/claude-code@" in done.stderr
    entry = version_dir / "node_modules" / ".bin" / "claude"
    out = subprocess.run([str(entry)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("@anthropic-ai/claude-code@")
    for path in [version_dir, *version_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            assert mode & 0o444 == 0o444 and not mode & 0o022, f"{oct(mode)} {path}"

    again = install("claude", "--data-dir", str(data), "--npm", str(npm))
    assert again.returncode == 0 and Path(again.stdout.strip()) == version_dir
    assert "is installed" in again.stderr
    assert len((npm.parent / "npm.log").read_text().splitlines()) == 1

    # --runtimes-dir wins over the data dir.
    elsewhere = tmp_path / "shared-runtimes"
    done = install("codex", "--runtimes-dir", str(elsewhere), "--npm", str(npm))
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == elsewhere


def test_a_failing_npm_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    npm = stand_in(tmp_path)
    (npm.parent / "fail").write_text("")
    runtimes = tmp_path / "runtimes"
    done = install("codex", "--runtimes-dir", str(runtimes), "--npm", str(npm))
    assert done.returncode != 0
    assert "npm install @openai/codex@" in done.stderr and "404 Not Found" in done.stderr, done.stderr
    assert done.stdout == ""
    assert list(runtimes.iterdir()) == []

    missing = install("codex", "--runtimes-dir", str(runtimes), "--npm", str(tmp_path / "no-npm"))
    assert missing.returncode != 0 and "cannot run npm" in missing.stderr, missing.stderr
    unknown = install("gemini", "--runtimes-dir", str(runtimes))
    assert unknown.returncode != 0 and "gemini" in unknown.stderr
