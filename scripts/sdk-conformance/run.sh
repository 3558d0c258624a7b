#!/usr/bin/env bash
# Microsoft's Graph SDK against `outlake sim`: installs the pinned Python msgraph-sdk
# (requirements.txt, from PyPI) into a venv and runs conformance.py (what it checks: its docstring).
#
# The venv lives in ${OUTLAKE_SDK_VENV_ROOT:-${XDG_CACHE_HOME:-~/.cache}/outlake}/sdk-conformance-<key>,
# <key> a hash of requirements.txt and the Python version, so it is built once per machine (about
# 30 s; pip's own cache makes a rebuild faster) and reused until a pin or Python changes. It is
# built in a temporary folder and renamed into place, so an interrupted install is never reused.
#
# The outlake binary: $OUTLAKE_BIN if set (scripts/test.sh passes the one `cargo test` just built),
# else `cargo build -p outlake` and target/debug/outlake.
#
# Usage: bash scripts/sdk-conformance/run.sh [conformance.py flags, e.g. --users 3 --page-size 5]
# Exit: 0 conformant, 1 a discrepancy (printed with URL and JSON path), 2 setup failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
py="${PYTHON:-python3}"

die() { echo "sdk-conformance: error: $*" >&2; exit 2; }

command -v "$py" >/dev/null || die "$py not found: install Python 3.9 or newer with its venv module (Debian: apt-get install python3 python3-venv), or set PYTHON"
"$py" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 9))' 2>/dev/null \
  || die "$py is older than 3.9 or lacks venv/ensurepip (Debian: apt-get install python3-venv), or set PYTHON"

key="$({ cat "$here/requirements.txt"; "$py" -c 'import sys; print(sys.version, sys.base_prefix)'; } | sha256sum | cut -c1-16)"
venv="${OUTLAKE_SDK_VENV_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/outlake}/sdk-conformance-$key"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "sdk-conformance: installing msgraph-sdk (requirements.txt) into $venv" >&2
  mkdir -p "$(dirname "$venv")"
  tmp="$venv.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  "$py" -m venv "$tmp" || die "$py -m venv failed (Debian: apt-get install python3-venv)"
  "$tmp/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt" >&2 \
    || die "pip could not install requirements.txt from PyPI (offline? a pin withdrawn?)"
  # Scripts in a venv name their folder, so it is renamed before its first use, and only pip's
  # module entry point is used (never bin/pip).
  mv -T "$tmp" "$venv" 2>/dev/null || rm -rf "$tmp" # another run got there first: use its venv
  trap - EXIT
fi

bin="${OUTLAKE_BIN:-}"
if [[ -z "$bin" ]]; then
  (cd "$root" && cargo build -p outlake --locked --quiet)
  bin="$root/target/debug/outlake"
fi
[[ -x "$bin" ]] || die "no outlake binary at $bin (cargo build -p outlake)"

exec "$venv/bin/python" "$here/conformance.py" --outlake "$bin" "$@"
