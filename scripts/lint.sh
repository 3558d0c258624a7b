#!/usr/bin/env bash
# Formatting and lints, as CI runs them: rustfmt (rustfmt.toml) and clippy on every target of
# the workspace with warnings as errors.
# Usage: bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
