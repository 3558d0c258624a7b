#!/usr/bin/env bash
# Supply-chain check, offline: `cargo deny check advisories licenses` against the RustSec
# advisory-database snapshot in ../shared/advisory-db (relative to the repository root; override
# with OUTLAKE_ADVISORY_DB=/path). Installs cargo-deny 0.20.2 when it is missing.
# Fails on any vulnerable, unmaintained or unsound crate and on any non-permissive licence.
# Usage: bash scripts/supply-chain.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qF "$DENY_VERSION"; then
  echo "installing cargo-deny $DENY_VERSION" >&2
  cargo install cargo-deny --locked --version "$DENY_VERSION"
fi

# cargo-deny reads `cargo metadata --frozen`, which needs every package of Cargo.lock on disk,
# for every target platform (builds here fetch only the host's).
cargo fetch --locked

src=${OUTLAKE_ADVISORY_DB:-../shared/advisory-db}
if [ ! -d "$src" ]; then
  echo "error: advisory database snapshot not found at $src (set OUTLAKE_ADVISORY_DB)" >&2
  exit 2
fi
[ -f "$src/SNAPSHOT.txt" ] && echo "advisory db: $(head -c 200 "$src/SNAPSHOT.txt")" >&2

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# cargo-deny opens the database as a git repository in <db-path>/advisory-db-<hash of URL>.
db="$tmp/advisory-dbs/advisory-db-3157b0e258782691"
mkdir -p "$db"
cp -R "$src"/. "$db"/
rm -rf "$db/.git"
(
  cd "$db"
  git init -q
  git add -A
  git -c user.name=outlake-ci -c user.email=ci@localhost -c commit.gpgsign=false commit -q -m "advisory-db snapshot"
)
sed "s|^db-path = .*|db-path = \"$tmp/advisory-dbs\"|" deny.toml >"$tmp/deny.toml"

cargo deny ${OUTLAKE_DENY_LOG:+-L "$OUTLAKE_DENY_LOG"} --frozen --config "$tmp/deny.toml" check --show-stats advisories licenses
