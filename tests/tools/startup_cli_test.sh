#!/usr/bin/env bash
# fieldsyncd's start-up checks, as an operator meets them:
#   startup_cli_test.sh BUILD_DIR
# Each refusal is one line on standard error, exit status 1, naming what is
# wrong and the fix: a config number out of range, a secret or the data
# directory open to other users, a missing or unreadable store, a master
# key command that hangs (killed after its timeout) and a stop signal
# while it runs. Also: `init --master-key-file` and its warning, and
# --log-format json lines that are JSON objects and nothing else.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-startup-XXXXXX")"
PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
  chmod -R u+rwX "$WORK" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# refused NAME PATTERN ARGS...: fieldsyncd ARGS exits 1 within 10 s with
# one line on standard error that matches PATTERN (grep -E).
refused() {
  local name="$1" pattern="$2"; shift 2
  timeout 10 "$FSD" "$@" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err"
  local status=$?
  if [[ $status -eq 1 && "$(wc -l <"$WORK/err")" -eq 1 ]] && grep -Eq -- "$pattern" "$WORK/err"; then
    passed=$((passed + 1)); echo "ok   $name"
  else
    failed=$((failed + 1)); echo "FAIL $name (status $status)"; cat "$WORK/err"
  fi
}

# serves DIR ARGS...: fieldsyncd starts on DIR; sets PID and ADDR.
serves() {
  local dir="$1"; shift
  "$FSD" --data-dir "$dir" --listen 127.0.0.1:0 "$@" >"$WORK/serve.out" 2>"$WORK/serve.log" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/serve.out")"
    [[ -n "$ADDR" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n "$ADDR" ]]
}

stop() { kill -TERM "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; PID=""; }

# --- init: where the master key goes ---
"$FS" init --data-dir "$WORK/d" >"$WORK/init.out" 2>"$WORK/init.err"
check "init succeeds" test $? -eq 0
check "init warns when the master key is inside the data directory" \
  grep -q "warning: the master key is inside the data directory" "$WORK/init.err"
check "the warning names the production place" grep -q -- "--master-key-file /etc/fieldsync/master.key" "$WORK/init.err"
check "the data directory is 0700" test "$(stat -c %a "$WORK/d")" = 700

mkdir -m 0700 "$WORK/etc"
"$FS" init --data-dir "$WORK/p" --master-key-file "$WORK/etc/master.key" >"$WORK/initp.out" 2>"$WORK/initp.err"
check "init --master-key-file succeeds" test $? -eq 0
check "init --master-key-file gives no warning" test ! -s "$WORK/initp.err"
check "the key is written there, 0600" test "$(stat -c %a "$WORK/etc/master.key")" = 600
check "no key in the data directory" test ! -e "$WORK/p/master.key"
check "init says where the key is" grep -q "master key (keep safe):    $WORK/etc/master.key" "$WORK/initp.out"
check "the config points at it" grep -qx "master_key_file: \"$WORK/etc/master.key\"" "$WORK/p/fieldsyncd.conf"
"$FS" init --data-dir "$WORK/p2" --master-key-file "$WORK/etc/master.key" >/dev/null 2>"$WORK/initp2.err"
status=$?
check "init never overwrites a key file" \
  bash -c "test $status -ne 0 && grep -q 'never overwrites a key' '$WORK/initp2.err' && test ! -e '$WORK/p2'"
check "a deployment with its key outside serves" serves "$WORK/p"
stop

# --- config bounds ---
printf 'storage { max_background_jobs: 100000 }\n' >"$WORK/jobs.conf"
refused "max_background_jobs 100000 is refused naming key, value and range" \
  "config key storage.max_background_jobs is 100000, outside the allowed range 1\.\.64" \
  --data-dir "$WORK/d" --config "$WORK/jobs.conf"
printf 'sync { max_clock_skew_seconds: 4294967295 }\n' >"$WORK/skew.conf"
refused "max_clock_skew_seconds 4294967295 is refused" \
  "sync\.max_clock_skew_seconds is 4294967295, outside the allowed range 1\.\.86400" \
  --data-dir "$WORK/d" --config "$WORK/skew.conf"

# --- modes ---
chmod 0644 "$WORK/d/tls/server.key"
refused "a readable server key is refused with the chmod fix" \
  "secret file $WORK/d/tls/server.key has mode 0644.*run: chmod 600 $WORK/d/tls/server.key" \
  --data-dir "$WORK/d"
chmod 0600 "$WORK/d/tls/server.key"
chmod 0640 "$WORK/d/admin/admin.key"
refused "a group-readable admin key is refused" "secret file $WORK/d/admin/admin.key has mode 0640" \
  --data-dir "$WORK/d"
chmod 0600 "$WORK/d/admin/admin.key"
chmod 0644 "$WORK/etc/master.key"
refused "a readable master key outside the data directory is refused" \
  "secret file $WORK/etc/master.key has mode 0644.*chmod 600" --data-dir "$WORK/p"
chmod 0600 "$WORK/etc/master.key"
chmod 0777 "$WORK/d"
refused "a data directory open to everyone is refused with the chmod fix" \
  "data directory $WORK/d has mode 0777.*run: chmod 700 $WORK/d" --data-dir "$WORK/d"
chmod 0700 "$WORK/d"

# --- the store ---
cp -a "$WORK/d" "$WORK/nodb"
rm -rf "$WORK/nodb/db"
refused "a data directory without its store says init or restore" \
  "no store at $WORK/nodb/db.*fieldsync init.*fieldsync backup restore" --data-dir "$WORK/nodb"
if [[ "$(id -u)" -ne 0 ]]; then
  chmod 000 "$WORK/d/db"
  refused "an unreadable store names the directory, the user and the fix" \
    "permission denied on $WORK/d/db .*for user $(id -un) .*chown -R" --data-dir "$WORK/d"
  chmod 700 "$WORK/d/db"
else
  echo "skip unreadable store: root reads any directory (tests/storage covers the message)"
fi

# --- master_key_command ---
KEY_TEXT="$WORK/key-copy"
cp "$WORK/d/master.key" "$KEY_TEXT"
cp -a "$WORK/d" "$WORK/cmd"
rm "$WORK/cmd/master.key"
printf 'master_key_command: "cat %s"\n' "$KEY_TEXT" >"$WORK/cmd.conf"
check "a master key command that prints the key serves" serves "$WORK/cmd" --config "$WORK/cmd.conf"
stop
printf 'master_key_command: "sleep 60"\nmaster_key_command_timeout_seconds: 1\n' >"$WORK/slow.conf"
start=$(date +%s)
refused "a master key command past its timeout is killed, saying so" \
  "did not finish within 1 seconds.*master_key_command_timeout_seconds" \
  --data-dir "$WORK/cmd" --config "$WORK/slow.conf"
check "it fails within the bound" test $(( $(date +%s) - start )) -le 4
printf 'master_key_command: "cat %s; exit 5"\n' "$KEY_TEXT" >"$WORK/fail.conf"
refused "a failing master key command gives its exit status, not its output" \
  "exited with status 5" --data-dir "$WORK/cmd" --config "$WORK/fail.conf"
check "the output of a failing command is not shown" bash -c "! grep -q 'fieldsync-master-key' '$WORK/err'"

printf 'master_key_command: "sleep 67"\n' >"$WORK/hang.conf"
"$FSD" --data-dir "$WORK/cmd" --config "$WORK/hang.conf" --listen 127.0.0.1:0 \
  >"$WORK/term.out" 2>"$WORK/term.err" &
PID=$!
sleep 1
start=$(date +%s)
kill -TERM "$PID"
timeout 10 tail --pid="$PID" -f /dev/null
check "SIGTERM while the master key command runs stops fieldsyncd promptly" \
  test $(( $(date +%s) - start )) -le 3
check "it says why it stopped" grep -q "stopped by SIGTERM while waiting for the master key command" "$WORK/term.err"
wait "$PID" 2>/dev/null
PID=""
check "the command's sleep is gone with it" bash -c "! pgrep -f '^sleep 67$' >/dev/null"

# --- --log-format json ---
check "a server with JSON logs serves" serves "$WORK/d" --log-format json
"$FS" --data-dir "$WORK/d" --server "$ADDR" whoami >/dev/null 2>&1
"$FS" --data-dir "$WORK/d" --server "$ADDR" staff add --id "bad id" --role analyst --out "$WORK/x" >/dev/null 2>&1
stop
check "the JSON log has lines" test -s "$WORK/serve.log"
check "every log line is one JSON object with time, level and event" python3 - "$WORK/serve.log" <<'PY'
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
for line in lines:
    obj = json.loads(line)
    assert isinstance(obj, dict), line
    assert {"time", "level", "event"} <= obj.keys(), line
    assert line.startswith('{"time":"'), line
PY

echo "startup_cli_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
