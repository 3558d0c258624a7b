#!/usr/bin/env bash
# Runs every test of outlake on a fresh machine: installs and starts the storage emulators
# (Azurite, an S3-compatible server) on 127.0.0.1, then runs the whole workspace's tests, then
# the Graph SDK conformance check of the simulator (scripts/sdk-conformance/).
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if [ -f scripts/emulators.sh ]; then
  bash scripts/emulators.sh start
  trap 'bash scripts/emulators.sh stop || true' EXIT
  eval "$(bash scripts/emulators.sh env)"
fi

cargo test --workspace --locked --no-fail-fast -- --test-threads 2

# Microsoft's own Graph SDK (Python msgraph-sdk, pinned, in a venv cached under ~/.cache/outlake)
# pages every delta endpoint of `outlake sim`; `cargo test` has just built the binary it serves.
OUTLAKE_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/outlake" bash scripts/sdk-conformance/run.sh
