#!/usr/bin/env bash
# The batch-sealing key runbook (docs/OPERATIONS.md "Rotating the
# batch-sealing key") as an operator runs it, against a running fieldsyncd:
#   sealing_cli_test.sh BUILD_DIR SOURCE_DIR
# `keys list`, `keys rotate-sealing` (default cutoff, --previous-until as a
# date, a duration and `now`), a tablet (the independent Python device,
# tests/interop/fieldsync_device.py) refused with SEALING_KEY_RETIRED after
# its key was retired, fetching the keys and resealing, the keys surviving
# a restart, the audit log's KeyRotated entries, and the refusals: bad
# dates and durations (usage errors), a cutoff in the past or beyond a
# year, a non-administrator, an operand.
set -uo pipefail

BUILD="$1"
SOURCE="$2"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-sealing-cli-XXXXXX")"
SERVER_PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# one_line_failure OUT_FILE STATUS EXPECTED_STATUS: that exit status and one line.
one_line_failure() {
  [[ "$2" -eq "$3" ]] && [[ "$(wc -l <"$1")" -eq 1 ]]
}

# jtrue FILE EXPR: the Python expression over the JSON object d is true.
jtrue() {
  /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}

# start_server DIR OUT LOG: starts fieldsyncd; sets SERVER_PID and PORT.
start_server() {
  : >"$2"
  "$FSD" --data-dir "$1" --listen 127.0.0.1:0 >"$2" 2>"$3" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 100); do
    PORT="$(sed -n 's/.* on .*:\([0-9]*\)$/\1/p' "$2")"
    [[ -n "$PORT" ]] && break
    sleep 0.1
  done
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

D="$WORK/d"
"$FS" init --data-dir "$D" >/dev/null 2>&1
check "init succeeds" test $? -eq 0
start_server "$D" "$WORK/server.out" "$WORK/server.log"
check "server starts" test -n "$PORT"
A=(--data-dir "$D" --server "127.0.0.1:$PORT")

# --- help ---
"$FS" --help >"$WORK/help.out" 2>&1
check "fieldsync --help lists keys rotate-sealing and keys list" \
  sh -c "grep -q 'keys rotate-sealing' '$WORK/help.out' && grep -q 'keys list' '$WORK/help.out'"
"$FS" keys --help >"$WORK/help_keys.out" 2>&1
check "keys --help lists rotate-sealing" grep -q "rotate-sealing" "$WORK/help_keys.out"
"$FS" keys rotate-sealing --help >"$WORK/help_rotate.out" 2>&1
check "keys rotate-sealing --help explains --previous-until" \
  sh -c "grep -q -- '--previous-until WHEN' '$WORK/help_rotate.out' && grep -q 'sealing_key_overlap_days' '$WORK/help_rotate.out'"
"$FS" keys list --help >"$WORK/help_list.out" 2>&1
check "keys list --help" grep -q "batch-sealing keys" "$WORK/help_list.out"

# --- keys list on a new deployment ---
"$FS" "${A[@]}" keys list >"$WORK/list0.out" 2>&1
check "keys list succeeds" test $? -eq 0
check "a new deployment has key 1, current" grep -q "^1 .* current, no end$" "$WORK/list0.out"

# --- a tablet across a rotation that retires its key at once ---
"$FS" "${A[@]}" officer add --id amina --region northern >/dev/null 2>&1
"$FS" "${A[@]}" device enrol-code --officer amina --region northern >"$WORK/code.out" 2>&1
CODE="$(sed -n 's/^enrolment code: *//p' "$WORK/code.out")"
check "an enrolment code is issued" test -n "$CODE"
/usr/bin/python3 "$SOURCE/tests/tools/tablet_reseal.py" "$SOURCE" "$WORK/gen" "127.0.0.1:$PORT" \
  "$D/admin/ca.crt" "$CODE" "ca000000-0000-4000-8000-000000000001" -- \
  "$FS" "${A[@]}" keys rotate-sealing --previous-until now >"$WORK/tablet.json" 2>"$WORK/tablet.err"
check "the tablet's run completes" test $? -eq 0
check "the tablet enrolled with key 1 and its first batch was applied" \
  jtrue "$WORK/tablet.json" 'd["enrolled_keys"] == [1] and d["first_key"] == 1 and d["first"] == "CHANGE_OUTCOME_APPLIED"'
check "the rotation succeeded" jtrue "$WORK/tablet.json" 'd["rotate_status"] == 0'
check "a batch sealed to the retired key 1: FAILED_PRECONDITION SEALING_KEY_RETIRED" \
  jtrue "$WORK/tablet.json" 'd["second_key"] == 1 and d["second"] == "FAILED_PRECONDITION" and d["second_reason"] == "SYNC_ERROR_REASON_SEALING_KEY_RETIRED" and d["second_key_echoed"] == 1'
check "... the message says to fetch the keys and reseal to key 2" \
  jtrue "$WORK/tablet.json" '"GetSealingKeys" in d["second_message"] and "reseal the batch to key 2" in d["second_message"]'
check "the tablet fetches key 2 only, reseals (same sequence), and it is applied" \
  jtrue "$WORK/tablet.json" 'd["fetched_keys"] == [2] and d["resealed_key"] == 2 and d["resealed_sequence_kept"] and d["resealed"] == "CHANGE_OUTCOME_APPLIED"'
"$FS" "${A[@]}" keys list >"$WORK/list1.out" 2>&1
check "keys list: key 1 retired, key 2 current" \
  sh -c "grep -q '^1 .* retired, was accepted until ' '$WORK/list1.out' && grep -q '^2 .* current, no end$' '$WORK/list1.out'"

# --- cutoffs: default, a date, a duration ---
"$FS" "${A[@]}" keys rotate-sealing >"$WORK/rotate_default.out" 2>&1
check "rotate-sealing with the default cutoff" test $? -eq 0
check "... key 2 -> 3, and key 1 (past its cutoff) deleted" \
  sh -c "grep -q 'key 2 -> 3' '$WORK/rotate_default.out' && grep -q 'key 1 was past its cutoff: its private key is deleted' '$WORK/rotate_default.out'"
EXPECTED_DEFAULT="$(date -u -d '+30 days' +%Y-%m-%d)"
check "... key 2 is accepted for the default 30 days" \
  grep -q "key 2 is accepted until $EXPECTED_DEFAULT" "$WORK/rotate_default.out"
NEXT_YEAR_DATE="$(date -u -d '+100 days' +%Y-%m-%d)"
"$FS" "${A[@]}" keys rotate-sealing --previous-until "$NEXT_YEAR_DATE" >"$WORK/rotate_date.out" 2>&1
check "rotate-sealing --previous-until DATE" test $? -eq 0
check "... key 3 accepted until that date, midnight UTC" \
  grep -q "key 3 is accepted until ${NEXT_YEAR_DATE}T00:00:00Z" "$WORK/rotate_date.out"
"$FS" "${A[@]}" keys rotate-sealing --previous-until 14d >"$WORK/rotate_duration.out" 2>&1
check "rotate-sealing --previous-until 14d" test $? -eq 0
check "... key 4 accepted for 14 days" \
  grep -q "key 4 is accepted until $(date -u -d '+14 days' +%Y-%m-%d)" "$WORK/rotate_duration.out"
"$FS" "${A[@]}" keys list >"$WORK/list2.out" 2>&1
check "keys list: keys 2, 3, 4 accepted and 5 current" \
  sh -c "[ \$(grep -c ' yes until ' '$WORK/list2.out') -eq 3 ] && grep -q '^5 .* current' '$WORK/list2.out' && ! grep -q '^1 ' '$WORK/list2.out'"

# --- refusals ---
for bad in "yesterday" "2026-13-01" "12x" "-5d" ""; do
  "$FS" "${A[@]}" keys rotate-sealing --previous-until "$bad" >"$WORK/bad.out" 2>&1
  status=$?
  check "--previous-until '$bad' is a usage error (one line)" one_line_failure "$WORK/bad.out" $status 2
  check "... naming the accepted forms" grep -q "is not a date (2026-07-01 or 2026-07-01T12:00:00Z), a duration (72h, 14d) or now" "$WORK/bad.out"
done
"$FS" "${A[@]}" keys rotate-sealing --previous-until 2001-01-01 >"$WORK/past.out" 2>&1
status=$?
check "a cutoff in the past is refused (one line)" one_line_failure "$WORK/past.out" $status 1
check "... INVALID_ARGUMENT, is in the past" \
  sh -c "grep -q 'INVALID_ARGUMENT' '$WORK/past.out' && grep -q 'is in the past' '$WORK/past.out'"
"$FS" "${A[@]}" keys rotate-sealing --previous-until 400d >"$WORK/far.out" 2>&1
status=$?
check "a cutoff beyond 365 days is refused (one line)" one_line_failure "$WORK/far.out" $status 1
check "... saying so" grep -q "more than 365 days" "$WORK/far.out"
"$FS" "${A[@]}" keys rotate-sealing extra >"$WORK/operand.out" 2>&1
status=$?
check "an operand is a usage error" one_line_failure "$WORK/operand.out" $status 2
"$FS" "${A[@]}" keys rotate-sealing --until 3d >"$WORK/unknown.out" 2>&1
status=$?
check "an unknown option is a usage error" one_line_failure "$WORK/unknown.out" $status 2
"$FS" "${A[@]}" staff add --id sam --role supervisor --region northern --out "$WORK/sam" \
  >/dev/null 2>&1
SUP=(--server "127.0.0.1:$PORT" --cert "$WORK/sam/sam.crt" --key "$WORK/sam/sam.key" --ca "$WORK/sam/ca.crt")
"$FS" "${SUP[@]}" keys rotate-sealing >"$WORK/sup.out" 2>&1
status=$?
check "a supervisor may not rotate (one line)" one_line_failure "$WORK/sup.out" $status 1
check "... PERMISSION_DENIED" grep -q "PERMISSION_DENIED" "$WORK/sup.out"
"$FS" "${SUP[@]}" keys list >"$WORK/sup_list.out" 2>&1
status=$?
check "a supervisor may not list the keys" one_line_failure "$WORK/sup_list.out" $status 1
"$FS" "${A[@]}" keys list >"$WORK/list3.out" 2>&1
check "the refusals changed nothing" cmp -s "$WORK/list2.out" "$WORK/list3.out"

# --- a restart keeps the keys; the audit log has every rotation ---
stop_server
start_server "$D" "$WORK/server2.out" "$WORK/server2.log"
check "server restarts" test -n "$PORT"
A=(--data-dir "$D" --server "127.0.0.1:$PORT")
"$FS" "${A[@]}" keys list >"$WORK/list4.out" 2>&1
check "the keys and cutoffs are the same after the restart" cmp -s "$WORK/list2.out" "$WORK/list4.out"
"$FS" "${A[@]}" audit export --out "$WORK/audit.export" >/dev/null 2>&1
"$FS" audit verify "$WORK/audit.export" --key "$D/audit-log.pub" --json >"$WORK/verify.json" 2>&1
check "audit verify passes" test $? -eq 0
check "the server log records the rotations (ids only)" \
  sh -c "[ \$(grep -c 'sealing_key.rotated' '$WORK/server.log') -eq 4 ]"

stop_server
echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
