#!/usr/bin/env bash
# Storage emulators for the sink conformance tests: Azurite (Azure Blob) and moto (S3).
#
#   scripts/emulators.sh start   install (once, into .ci/tools/) and start both; wait until ready;
#                                create the `outlake-test` container and bucket
#   scripts/emulators.sh stop    stop what `start` started (by the pids it recorded)
#   scripts/emulators.sh env     print the export lines the tests read:  eval "$(scripts/emulators.sh env)"
#
# Needs node 20 + npm and python3 (venv); no docker. Ports: Azurite 10000, moto 9000
# (override with AZURITE_PORT / MOTO_PORT). Tools go to .ci/tools/ (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.ci/tools"
AZURITE_VERSION="3.35.0"
STORAGE_BLOB_VERSION="12"
AZURITE_PORT="${AZURITE_PORT:-10000}"
MOTO_PORT="${MOTO_PORT:-9000}"
HOST=127.0.0.1
NAME=outlake-test
# The well-known Azurite development account (public, documented by Microsoft).
AZ_ACCOUNT=devstoreaccount1
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

log() { echo "emulators: $*" >&2; }

alive() { [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Poll until an HTTP server answers on $1 (any status), or fail after $2 seconds.
wait_http() {
  local url=$1 limit=$2 start=$SECONDS code
  while (( SECONDS - start < limit )); do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    if [[ "$code" != "000" ]]; then return 0; fi
    sleep 0.2
  done
  return 1
}

install_azurite() {
  if [[ -x "$TOOLS/node_modules/.bin/azurite-blob" && -d "$TOOLS/node_modules/@azure/storage-blob" ]]; then return; fi
  log "installing azurite@$AZURITE_VERSION and @azure/storage-blob@$STORAGE_BLOB_VERSION into .ci/tools"
  mkdir -p "$TOOLS"
  npm install --prefix "$TOOLS" --no-audit --no-fund --loglevel=error \
    "azurite@$AZURITE_VERSION" "@azure/storage-blob@$STORAGE_BLOB_VERSION" >&2
}

install_moto() {
  if [[ -x "$TOOLS/moto-venv/bin/moto_server" ]]; then return; fi
  log "installing moto[server] into .ci/tools/moto-venv"
  mkdir -p "$TOOLS"
  python3 -m venv "$TOOLS/moto-venv"
  "$TOOLS/moto-venv/bin/pip" install --quiet 'moto[server]' >&2
}

start_azurite() {
  local url="http://$HOST:$AZURITE_PORT"
  if alive "$TOOLS/azurite.pid"; then
    log "azurite already running (pid $(cat "$TOOLS/azurite.pid"))"
  else
    local dir
    dir=$(mktemp -d -t outlake-azurite.XXXXXX)
    echo "$dir" > "$TOOLS/azurite.dir"
    "$TOOLS/node_modules/.bin/azurite-blob" --blobHost "$HOST" --blobPort "$AZURITE_PORT" \
      --location "$dir" --silent --skipApiVersionCheck >"$TOOLS/azurite.log" 2>&1 &
    echo $! > "$TOOLS/azurite.pid"
    if ! wait_http "$url/$AZ_ACCOUNT?comp=list" 60 || ! alive "$TOOLS/azurite.pid"; then
      log "azurite did not start on $url (port $AZURITE_PORT busy? set AZURITE_PORT); log:"; cat "$TOOLS/azurite.log" >&2; exit 1
    fi
    log "azurite ready on $url (pid $(cat "$TOOLS/azurite.pid"))"
  fi
  (cd "$TOOLS" && AZ_URL="$url/$AZ_ACCOUNT" AZ_ACCOUNT="$AZ_ACCOUNT" AZ_KEY="$AZ_KEY" AZ_CONTAINER="$NAME" node -e '
    const { BlobServiceClient, StorageSharedKeyCredential } = require("@azure/storage-blob");
    const cred = new StorageSharedKeyCredential(process.env.AZ_ACCOUNT, process.env.AZ_KEY);
    const svc = new BlobServiceClient(process.env.AZ_URL, cred);
    svc.getContainerClient(process.env.AZ_CONTAINER).createIfNotExists()
      .then(() => process.exit(0))
      .catch((e) => { console.error("could not create container:", e.message); process.exit(1); });
  ')
  log "azurite container $NAME exists"
}

start_moto() {
  local url="http://$HOST:$MOTO_PORT"
  if alive "$TOOLS/moto.pid"; then
    log "moto already running (pid $(cat "$TOOLS/moto.pid"))"
  else
    "$TOOLS/moto-venv/bin/moto_server" -H "$HOST" -p "$MOTO_PORT" >"$TOOLS/moto.log" 2>&1 &
    echo $! > "$TOOLS/moto.pid"
    if ! wait_http "$url/" 60 || ! alive "$TOOLS/moto.pid"; then
      log "moto did not start on $url (port $MOTO_PORT busy? set MOTO_PORT); log:"; cat "$TOOLS/moto.log" >&2; exit 1
    fi
    log "moto ready on $url (pid $(cat "$TOOLS/moto.pid"))"
  fi
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$url/$NAME")
  if [[ "$code" != 200 && "$code" != 409 ]]; then log "could not create bucket $NAME (HTTP $code)"; exit 1; fi
  log "moto bucket $NAME exists"
}

stop_one() {
  local name=$1 pidfile="$TOOLS/$1.pid"
  if alive "$pidfile"; then
    local pid; pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
    log "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  start)
    install_azurite
    install_moto
    start_azurite
    start_moto
    ;;
  stop)
    stop_one azurite
    stop_one moto
    if [[ -f "$TOOLS/azurite.dir" ]]; then rm -rf "$(cat "$TOOLS/azurite.dir")" "$TOOLS/azurite.dir"; fi
    ;;
  env)
    cat <<EOT
export OUTLAKE_TEST_AZURITE=http://$HOST:$AZURITE_PORT/$AZ_ACCOUNT
export AZURITE_BLOB_STORAGE_URL=http://$HOST:$AZURITE_PORT
export OUTLAKE_TEST_S3_ENDPOINT=http://$HOST:$MOTO_PORT
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
EOT
    ;;
  *)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
