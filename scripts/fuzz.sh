#!/usr/bin/env bash
# Bounded fuzzing (issue 9): the fuzz-style property tests of page parsing + normalization and
# of the commit-record reader, each for OUTLAKE_FUZZ_SECS seconds (default 60). They replay the
# seed corpus in fuzz/corpus/<target>/ first (also on every plain `cargo test`, with a 2 s
# budget). A crashing input is saved under fuzz/artifacts/<target>/ (git-ignored) and the run
# fails naming it; once fixed, copy it into fuzz/corpus/<target>/regressions/.
# Reproduce a run: OUTLAKE_FUZZ_SEED=<seed printed by the test> bash scripts/fuzz.sh
# Usage: bash scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export OUTLAKE_FUZZ_SECS=${OUTLAKE_FUZZ_SECS:-60}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test --locked -p outlake-connectors --test it -- fuzz:: --nocapture --test-threads 1
cargo test --locked -p outlake --test it -- hostile::fuzz:: --nocapture --test-threads 1
