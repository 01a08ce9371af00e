#!/usr/bin/env bash
# The restore drill of docs/OPERATIONS.md, end to end, as an operator runs it:
#   rollback_cli_test.sh BUILD_DIR
# A deployment whose config keeps a copy of the signed audit head outside
# the data directory (audit_head_copy_file) is backed up while tablets
# sync, syncs more, and is restored from that backup into a new
# directory. fieldsyncd refuses the restored store in one line with both
# sizes and the way forward; --accept-rollback with another size is
# refused; with the printed size it serves, `fieldsync audit verify`
# prints the rollback-accepted event, and a restart needs no flag. A
# restore whose head file is the newer one (copied over) is caught too.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-rollback-cli-XXXXXX")"
PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# start_server DIR OUT LOG [FLAGS...]: starts fieldsyncd on DIR; sets PID
# and ADDR (empty if it did not serve; then PID has exited).
start_server() {
  local dir="$1" out="$2" log="$3"; shift 3
  : >"$out"
  "$FSD" --data-dir "$dir" --listen 127.0.0.1:0 "$@" >"$out" 2>"$log" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$out")"
    [[ -n "$ADDR" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
}

stop_server() {
  kill -TERM "$PID"
  wait "$PID"
  PID=""
}

# refused DIR LOG [FLAGS...]: fieldsyncd exits 1 with one line on stderr.
refused() {
  local dir="$1" log="$2"; shift 2
  "$FSD" --data-dir "$dir" --listen 127.0.0.1:0 "$@" >/dev/null 2>"$log"
  local status=$?
  [[ $status -eq 1 ]] && [[ "$(grep -cv 'level=' "$log")" -eq 1 ]]
}

# size_of EXPORT: the size of the export's signed head, from audit verify.
head_size() {
  "$FS" audit verify "$1" --key "$WORK/d/audit-log.pub" --json |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["latest_head"]["size"])'
}

# --- a deployment that keeps a copy of its audit head elsewhere ---
"$FS" init --data-dir "$WORK/d" >/dev/null 2>&1
check "init succeeds" test $? -eq 0
mkdir -p "$WORK/elsewhere"
echo "audit_head_copy_file: \"$WORK/elsewhere/audit-head.note\"" >>"$WORK/d/fieldsyncd.conf"
start_server "$WORK/d" "$WORK/server.out" "$WORK/server.log"
check "server starts" test -n "$ADDR"
A=(--data-dir "$WORK/d" --server "$ADDR")
"$FS" "${A[@]}" device simulate --devices 2 >/dev/null 2>&1
check "two tablets sync" test $? -eq 0
"$FS" "${A[@]}" backup create --out "$WORK/b1" >/dev/null 2>&1
check "backup create succeeds" test $? -eq 0
"$FS" "${A[@]}" device simulate --devices 2 --seed 2 >/dev/null 2>&1
check "more tablets sync after the backup" test $? -eq 0
"$FS" "${A[@]}" audit export --out "$WORK/newer.export" >/dev/null 2>&1
check "audit export of the newer log" test $? -eq 0
NEWER="$(head_size "$WORK/newer.export")"
check "the copy elsewhere holds the newest head" \
  cmp -s "$WORK/d/audit-head.note" "$WORK/elsewhere/audit-head.note"
stop_server

# --- restore the older backup into a new directory ---
"$FS" backup restore --from "$WORK/b1" --data-dir "$WORK/r" \
  --master-key-file "$WORK/d/master.key" >/dev/null 2>&1
check "backup restore succeeds" test $? -eq 0
check "the restored config still names the copy" \
  grep -q "audit_head_copy_file" "$WORK/r/fieldsyncd.conf"

refused "$WORK/r" "$WORK/refused.log"
check "fieldsyncd refuses the restored store: exit 1, one line" test $? -eq 0
OLDER="$(sed -n 's/.*audit tree (size \([0-9]*\)).*/\1/p' "$WORK/refused.log")"
check "the refusal names the store's size" test -n "$OLDER"
check "the refusal names the published head's size and the copy" \
  grep -q "size $NEWER, in $WORK/elsewhere/audit-head.note" "$WORK/refused.log"
check "the refusal gives the way forward" \
  grep -q "Restore the newer store.*--accept-rollback $OLDER" "$WORK/refused.log"

refused "$WORK/r" "$WORK/wrong.log" --accept-rollback "$NEWER"
check "--accept-rollback with another size: exit 1, one line" test $? -eq 0
check "--accept-rollback with another size: says it does not match" \
  grep -q "does not match the store's audit tree size $OLDER" "$WORK/wrong.log"
"$FSD" --data-dir "$WORK/r" --accept-rollback nine >/dev/null 2>"$WORK/usage.log"
check "--accept-rollback needs a number: usage error" test $? -eq 2
"$FSD" --help >"$WORK/help.out" 2>&1
check "fieldsyncd --help documents --accept-rollback" grep -q -- "--accept-rollback SIZE" "$WORK/help.out"

# --- the administrator accepts the restored state ---
start_server "$WORK/r" "$WORK/accepted.out" "$WORK/accepted.log" --accept-rollback "$OLDER"
check "with the printed size fieldsyncd serves" test -n "$ADDR"
check "the acceptance is logged" grep -q "event=audit.rollback.accepted" "$WORK/accepted.log"
R=(--data-dir "$WORK/r" --server "$ADDR")
"$FS" "${R[@]}" audit export --out "$WORK/after.export" >/dev/null 2>&1
check "audit export after the acceptance" test $? -eq 0
"$FS" audit verify "$WORK/after.export" --key "$WORK/d/audit-log.pub" >"$WORK/verify.out" 2>&1
check "audit verify passes after the acceptance" test $? -eq 0
check "audit verify prints the rollback" \
  grep -q "ROLLBACK accepted at entry $OLDER by local-operator:uid=" "$WORK/verify.out"
check "audit verify prints the abandoned head" \
  grep -q "abandoned signed head: size $NEWER" "$WORK/verify.out"
check "audit verify counts the event" grep -q "rollback-accepted *1" "$WORK/verify.out"
"$FS" audit verify "$WORK/after.export" --key "$WORK/d/audit-log.pub" --json >"$WORK/verify.json" 2>&1
check "audit verify --json lists the rollback" \
  /usr/bin/python3 -c "import json; r=json.load(open('$WORK/verify.json'))['rollbacks']; assert r[0]['entry']==$OLDER and r[0]['abandoned_heads'][0]['size']==$NEWER"
"$FS" audit verify "$WORK/after.export" --key "$WORK/d/audit-log.pub" \
  --trusted-head "$WORK/d/audit-head.note" >/dev/null 2>"$WORK/trusted.err"
check "a head saved before the rollback is not extended" test $? -eq 1
check "... and the failure names the acceptance" grep -q "accepted at entry $OLDER" "$WORK/trusted.err"
check "the copy elsewhere holds the new head" \
  cmp -s "$WORK/r/audit-head.note" "$WORK/elsewhere/audit-head.note"
"$FS" "${R[@]}" device simulate --devices 1 --seed 3 >/dev/null 2>&1
check "tablets sync after the acceptance" test $? -eq 0
stop_server

start_server "$WORK/r" "$WORK/restart.out" "$WORK/restart.log"
check "a restart needs no flag" test -n "$ADDR"
"$FS" --data-dir "$WORK/r" --server "$ADDR" audit export --out "$WORK/restart.export" >/dev/null 2>&1
"$FS" audit verify "$WORK/restart.export" --key "$WORK/d/audit-log.pub" \
  --trusted-head "$WORK/r/audit-head.note" >/dev/null 2>&1
check "the log extends the head signed at the acceptance" test $? -eq 0
stop_server

# --- a restore of db/ alone under the newer head file ---
"$FS" backup restore --from "$WORK/b1" --data-dir "$WORK/r2" \
  --master-key-file "$WORK/d/master.key" >/dev/null 2>&1
sed -i '/audit_head_copy_file/d' "$WORK/r2/fieldsyncd.conf"
cp "$WORK/d/audit-head.note" "$WORK/r2/audit-head.note"
refused "$WORK/r2" "$WORK/refused2.log"
check "the newer head file alone is enough to refuse" test $? -eq 0
check "... naming the head file" grep -q "size $NEWER, in $WORK/r2/audit-head.note" "$WORK/refused2.log"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
