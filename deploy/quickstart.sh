#!/usr/bin/env bash
# Sets up fieldsync on this machine and runs it: installs the Debian
# packages it needs, builds it, creates a deployment in ./data (unless one
# is there), starts fieldsyncd in the background on 127.0.0.1:7443, waits
# until it answers, and prints where it listens and where the
# administrator's credentials are.
#
#   FIELDSYNC_DATA_DIR=... FIELDSYNC_LISTEN=HOST:PORT deploy/quickstart.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR="${FIELDSYNC_DATA_DIR:-$ROOT/data}"
LISTEN="${FIELDSYNC_LISTEN:-127.0.0.1:7443}"
BUILD_DIR="${FIELDSYNC_BUILD_DIR:-$ROOT/build}"

"$ROOT/deploy/install-deps.sh"

echo "quickstart: building (first build takes a few minutes)"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD_DIR" --target fieldsyncd fieldsync -j"$(nproc)"

BIN="$BUILD_DIR"
if [[ ! -f "$DATA_DIR/DEPLOYMENT" ]]; then
  "$BIN/tools/fieldsync" init --data-dir "$DATA_DIR" --listen "$LISTEN"
fi

PID_FILE="$DATA_DIR/fieldsyncd.pid"
LOG_FILE="$DATA_DIR/fieldsyncd.log"
if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
  echo "quickstart: fieldsyncd is already running (pid $(cat "$PID_FILE"))"
else
  nohup "$BIN/server/fieldsyncd" --data-dir "$DATA_DIR" >>"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  # Wait until it answers an authenticated call (or has exited).
  for _ in $(seq 1 50); do
    if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
      echo "quickstart: fieldsyncd stopped; last lines of $LOG_FILE:" >&2
      tail -n 5 "$LOG_FILE" >&2
      exit 1
    fi
    if "$BIN/tools/fieldsync" --data-dir "$DATA_DIR" whoami >/dev/null 2>&1; then
      break
    fi
    sleep 0.2
  done
fi

SERVER="$(sed -n 's/^listen: "\(.*\)"/\1/p' "$DATA_DIR/fieldsyncd.conf")"
cat <<MSG

fieldsyncd is running (pid $(cat "$PID_FILE")), serving mutual TLS 1.3 on ${SERVER}
  data directory:            $DATA_DIR  (RocksDB in $DATA_DIR/db)
  log:                       $LOG_FILE
  administrator certificate: $DATA_DIR/admin/admin.crt
  administrator key:         $DATA_DIR/admin/admin.key
  CA certificate:            $DATA_DIR/admin/ca.crt
  audit log verifier key:    $DATA_DIR/audit-log.pub

Try:   $BIN/tools/fieldsync --data-dir $DATA_DIR --server $SERVER whoami
Then eight simulated tablets (synthetic cases) enrol, edit shared cases offline and sync:
       $BIN/tools/fieldsync --data-dir $DATA_DIR --server $SERVER device simulate --devices 8
Stop:  kill \$(cat $PID_FILE)
MSG
