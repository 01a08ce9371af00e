#!/usr/bin/env bash
# End-to-end checks of the two executables as an operator uses them:
#   cli_test.sh BUILD_DIR
# init, a refused second init, operator errors as one line with a non-zero
# exit, the real fieldsyncd over mutual TLS 1.3 (TLS 1.2 refused), whoami,
# staff add/list/revoke, device simulate (and its reproducibility on a fresh
# deployment), aggregates queries and exports, case erase and keys
# rotate-master (and an audit export that still verifies), and a clean stop
# on SIGTERM.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-cli-XXXXXX")"
SERVER_PID=""
passed=0
failed=0

SERVER2_PID=""

cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  [[ -n "$SERVER2_PID" ]] && kill "$SERVER2_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

# one_line_failure OUT_FILE STATUS: exit status non-zero and exactly one line.
one_line_failure() {
  [[ "$2" -ne 0 ]] && [[ "$(wc -l <"$1")" -eq 1 ]]
}

# --- init ---
"$FS" init --data-dir "$WORK/d" --host fieldsync.test >"$WORK/init.out" 2>&1
check "init succeeds" test $? -eq 0
check "init prints the admin certificate path" grep -q "admin/admin.crt" "$WORK/init.out"
check "master key is 0600" test "$(stat -c %a "$WORK/d/master.key")" = 600
before="$(find "$WORK/d" -type f -exec sha256sum {} + | sort)"
"$FS" init --data-dir "$WORK/d" >"$WORK/init2.out" 2>&1
status=$?
check "second init fails with one line" one_line_failure "$WORK/init2.out" $status
check "second init changes nothing" test "$before" = "$(find "$WORK/d" -type f -exec sha256sum {} + | sort)"

# --- operator errors of fieldsyncd ---
"$FSD" --data-dir "$WORK/missing" >"$WORK/e1.out" 2>&1
status=$?
check "missing data dir: one line" one_line_failure "$WORK/e1.out" $status
check "missing data dir: names the fix" grep -q "fieldsync init" "$WORK/e1.out"
echo 'listen: "127.0.0.1:0"
no_such_key: 1' >"$WORK/bad.conf"
"$FSD" --data-dir "$WORK/d" --config "$WORK/bad.conf" >"$WORK/e2.out" 2>&1
status=$?
check "unknown config key: one line" one_line_failure "$WORK/e2.out" $status
check "unknown config key: named" grep -q "no_such_key" "$WORK/e2.out"
"$FSD" --data-dir "$WORK/d" --listen 0.0.0.0:0 --insecure-plaintext-loopback >"$WORK/e3.out" 2>&1
status=$?
check "plaintext off loopback refused" one_line_failure "$WORK/e3.out" $status
chmod 644 "$WORK/d/master.key"
"$FSD" --data-dir "$WORK/d" --listen 127.0.0.1:0 >"$WORK/e4.out" 2>&1
status=$?
check "readable master key: one line" one_line_failure "$WORK/e4.out" $status
check "readable master key: says chmod" grep -q "chmod 600" "$WORK/e4.out"
chmod 600 "$WORK/d/master.key"
quiet() { "$@" >/dev/null 2>&1; }
check "fieldsyncd --help" quiet "$FSD" --help
check "fieldsync --help" quiet "$FS" --help
check "every verb has --help" quiet "$FS" staff add --help

# --- a running server ---
"$FSD" --data-dir "$WORK/d" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server.out")"
  [[ -n "$ADDR" ]] && break
  sleep 0.1
done
check "server starts and prints its address" test -n "$ADDR"

"$FS" --data-dir "$WORK/d" --server "$ADDR" whoami >"$WORK/who.out" 2>&1
check "whoami reaches the server" grep -q "role:      administrator" "$WORK/who.out"
check "whoami names the principal" grep -q "fieldsync://staff/admin" "$WORK/who.out"

if command -v openssl >/dev/null; then
  echo | timeout 10 openssl s_client -connect "$ADDR" -tls1_2 >"$WORK/tls12.out" 2>&1
  check "TLS 1.2 refused" test $? -ne 0
  echo | timeout 10 openssl s_client -connect "$ADDR" -tls1_3 >"$WORK/tls13.out" 2>&1
  check "TLS 1.3 accepted" grep -q "TLSv1.3" "$WORK/tls13.out"
fi

"$FS" --data-dir "$WORK/d" --server "$ADDR" staff add --id amina --role supervisor \
  --region northern --out "$WORK/amina" >"$WORK/add.out" 2>&1
check "staff add writes a key pair" test -f "$WORK/amina/amina.crt" -a -f "$WORK/amina/amina.key"
check "staff key is 0600" test "$(stat -c %a "$WORK/amina/amina.key")" = 600
"$FS" --server "$ADDR" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" \
  --ca "$WORK/amina/ca.crt" whoami >"$WORK/who2.out" 2>&1
check "new supervisor is recognised" grep -q "regions:   northern$" "$WORK/who2.out"
"$FS" --server "$ADDR" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" \
  --ca "$WORK/amina/ca.crt" staff list >"$WORK/list_denied.out" 2>&1
status=$?
check "supervisor may not list staff" grep -q "PERMISSION_DENIED" "$WORK/list_denied.out"
"$FS" --data-dir "$WORK/d" --server "$ADDR" staff list >"$WORK/list.out" 2>&1
check "staff list shows both" test "$(grep -c 'fieldsync://staff/' "$WORK/list.out")" -eq 2
"$FS" --data-dir "$WORK/d" --server "$ADDR" staff revoke --id amina >/dev/null 2>&1
"$FS" --server "$ADDR" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" \
  --ca "$WORK/amina/ca.crt" whoami >"$WORK/who3.out" 2>&1
status=$?
check "revoked supervisor refused with one line" one_line_failure "$WORK/who3.out" $status
check "refusal says revoked" grep -q "revoked" "$WORK/who3.out"
check "log lines carry the principal and rpc" grep -q "rpc=/fieldsync.v1.AdminService/WhoAmI principal=fieldsync://staff/admin" "$WORK/server.log"

# --- device simulate: simulated tablets enrol, push and pull over mutual TLS ---
json_count() {  # json_count FILE KEY: an integer member of the one-line JSON report
  sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1"
}
"$FS" --data-dir "$WORK/d" --server "$ADDR" device simulate --devices 4 --seed 7 --json \
  >"$WORK/sim1.json" 2>"$WORK/sim1.err"
check "device simulate --devices 4 succeeds" test $? -eq 0
check "device simulate enrols 4 tablets" test "$(json_count "$WORK/sim1.json" devices_enrolled)" = 4
check "device simulate applies changes" test "$(json_count "$WORK/sim1.json" applied)" -gt 0
overlap=$(( $(json_count "$WORK/sim1.json" conflict) + $(json_count "$WORK/sim1.json" superseded) \
  + $(json_count "$WORK/sim1.json" converged) ))
check "overlapping edits conflict or converge" test "$overlap" -gt 0
check "tablets of an officer agree after pulling" grep -q '"replicas_agree":true' "$WORK/sim1.json"
check "device simulate leaves conflicts for a supervisor" \
  test "$(json_count "$WORK/sim1.json" conflicts_open)" -gt 0
check "no conflict sets a tablet against itself" \
  test "$(json_count "$WORK/sim1.json" self_conflicts)" = 0
"$FS" --data-dir "$WORK/d" --server "$ADDR" aggregates verify --json >"$WORK/verify.json" 2>&1
check "aggregates verify: the counters match a recount from the log" test $? -eq 0
check "aggregates verify: counters were recounted" \
  test "$(json_count "$WORK/verify.json" counters)" -gt 0
check "aggregates verify: no difference" grep -q '"differences":\[\]' "$WORK/verify.json"
"$FS" --data-dir "$WORK/d" --server "$ADDR" device simulate --devices 2 --seed 7 >"$WORK/sim2.out" 2>&1
check "device simulate prints a readable summary" grep -q "conflicts open" "$WORK/sim2.out"
check "device simulate says how a supervisor goes on" \
  grep -q -- "staff add --id sim-[0-9a-f]*-reviewer --role supervisor" "$WORK/sim2.out"
check "device simulate --json has the next steps" \
  /usr/bin/python3 -c 'import json, sys
steps = json.load(open(sys.argv[1]))["next_steps"]
assert any(" conflict list --region " in s for s in steps), steps
assert any(" conflict resolve " in s for s in steps), steps' "$WORK/sim1.json"
"$FS" --data-dir "$WORK/d" --server "$ADDR" device simulate --devices 0 >"$WORK/sim0.out" 2>&1
status=$?
check "device simulate --devices 0: one line" one_line_failure "$WORK/sim0.out" $status
check "device simulate --devices 0: says the range" grep -q -- "--devices must be" "$WORK/sim0.out"
"$FS" --data-dir "$WORK/d" --server "$ADDR" device simulate --devices 2 --bogus 1 >"$WORK/simb.out" 2>&1
status=$?
check "device simulate bad flag: one line" one_line_failure "$WORK/simb.out" $status
check "device simulate bad flag: named" grep -q -- "--bogus" "$WORK/simb.out"
# The same seed on a fresh deployment gives the same counts (ids, run tag
# and time aside).
"$FS" init --data-dir "$WORK/d2" >/dev/null 2>&1
"$FSD" --data-dir "$WORK/d2" --listen 127.0.0.1:0 >"$WORK/server2.out" 2>"$WORK/server2.log" &
SERVER2_PID=$!
ADDR2=""
for _ in $(seq 1 100); do
  ADDR2="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server2.out")"
  [[ -n "$ADDR2" ]] && break
  sleep 0.1
done
"$FS" --data-dir "$WORK/d2" --server "$ADDR2" device simulate --devices 4 --seed 7 --json \
  >"$WORK/sim3.json" 2>"$WORK/sim3.err"
# counts FILE: the report without what differs from run to run (the run tag,
# the time, and the next steps, which name the run, the server and ids).
counts() {
  /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in ("run", "seconds", "next_steps"):
    d.pop(k, None)
print(json.dumps(d, sort_keys=True))' "$1"
}
check "same seed, fresh deployment: same counts" test "$(counts "$WORK/sim1.json")" = "$(counts "$WORK/sim3.json")"
kill -TERM "$SERVER2_PID"
wait "$SERVER2_PID"
SERVER2_PID=""

# --- aggregates: an analyst's queries and exports of what the tablets pushed ---
"$FS" --data-dir "$WORK/d" --server "$ADDR" staff add --id nadia --role analyst \
  --region central --region northern --region eastern --region western \
  --out "$WORK/nadia" >/dev/null 2>&1
AN=(--server "$ADDR" --cert "$WORK/nadia/nadia.crt" --key "$WORK/nadia/nadia.key"
    --ca "$WORK/nadia/ca.crt")
"$FS" "${AN[@]}" aggregates list >"$WORK/agg_list.out" 2>&1
check "aggregates list shows the shipped metrics" grep -q "registrations" "$WORK/agg_list.out"
"$FS" "${AN[@]}" aggregates query --metric closed_cases --group-by region \
  >"$WORK/agg_q.out" 2>&1
check "aggregates query prints a table with its total" grep -q "^(total) " "$WORK/agg_q.out"
"$FS" "${AN[@]}" aggregates export --format csv --out "$WORK/agg.csv" >/dev/null 2>&1
check "aggregates export csv" test -s "$WORK/agg.csv"
"$FS" "${AN[@]}" --data-dir "$WORK/d" aggregates export --format dhis2 >"$WORK/agg.json" 2>/dev/null
check "aggregates export dhis2 to standard output" test -s "$WORK/agg.json"
check "exports parse, round-trip, validate and publish no small count" \
  /usr/bin/python3 "$(dirname "$0")/../aggregates/check_exports.py" "$WORK/agg.csv" \
  "$WORK/agg.json" "$(dirname "$0")/../aggregates/dhis2_datavalueset.schema.json" 5
"$FS" --data-dir "$WORK/d" --server "$ADDR" aggregates list >"$WORK/agg_admin.out" 2>&1
status=$?
check "administrator may not query aggregates" one_line_failure "$WORK/agg_admin.out" $status
"$FS" "${AN[@]}" aggregates export --format xml >"$WORK/agg_bad.out" 2>&1
status=$?
check "aggregates export bad format: one line" one_line_failure "$WORK/agg_bad.out" $status

# --- case erase and master key rotation; the audit export still verifies ---
# first_case EXPORT: the first case id of a BatchAccepted entry (docs/AUDIT.md).
first_case() {
  /usr/bin/python3 - "$1" <<'PY'
import struct, sys, uuid
data = open(sys.argv[1], "rb").read()
pos = len(b"fieldsync-audit-export/v1\n")
while pos < len(data):
    rtype, n = data[pos], struct.unpack(">I", data[pos + 1:pos + 5])[0]
    payload, pos = data[pos + 5:pos + 5 + n], pos + 5 + n
    if rtype != 2:
        continue
    e = payload[8 + 32:]
    if e[25] != 4:  # BatchAccepted
        continue
    p = 25 + 1 + 8
    p += 4 + struct.unpack(">I", e[p:p + 4])[0]  # device_id
    p += 16 + 8 + 4 + 1 + 32 + 64 + 8 + 8 + 5 * 4
    if struct.unpack(">I", e[p:p + 4])[0] > 0:
        print(uuid.UUID(bytes=e[p + 4:p + 20]))
        break
PY
}
"$FS" --data-dir "$WORK/d" --server "$ADDR" audit export --out "$WORK/audit0.export" >/dev/null 2>&1
CASE="$(first_case "$WORK/audit0.export")"
check "a pushed case id is found in the audit export" test -n "$CASE"
"$FS" --data-dir "$WORK/d" --server "$ADDR" case erase "$CASE" --confirm "$CASE" \
  >"$WORK/erase.out" 2>&1
check "case erase succeeds" test $? -eq 0
check "case erase prints its audit entry" grep -q "audit log entry" "$WORK/erase.out"
"$FS" --data-dir "$WORK/d" --server "$ADDR" case erase "$CASE" --confirm "$CASE" \
  >"$WORK/erase2.out" 2>&1
status=$?
check "second case erase: one line" one_line_failure "$WORK/erase2.out" $status
check "second case erase: already erased" grep -q "already erased" "$WORK/erase2.out"
"$FS" --data-dir "$WORK/d" --server "$ADDR" case erase "$CASE" \
  --confirm 00000000-0000-4000-8000-000000000001 >"$WORK/erase3.out" 2>&1
status=$?
check "case erase with another --confirm: one line" one_line_failure "$WORK/erase3.out" $status
"$FS" --data-dir "$WORK/d" --server "$ADDR" case erase 00000000-0000-4000-8000-000000000001 \
  --confirm 00000000-0000-4000-8000-000000000001 >"$WORK/erase4.out" 2>&1
status=$?
check "case erase of an unknown case: one line" one_line_failure "$WORK/erase4.out" $status
check "case erase of an unknown case: NOT_FOUND" grep -q "NOT_FOUND" "$WORK/erase4.out"
"$FS" --data-dir "$WORK/d" --server "$ADDR" keys rotate-master >"$WORK/rotate.out" 2>&1
check "keys rotate-master succeeds" test $? -eq 0
check "keys rotate-master prints the versions" grep -q "version 1 -> 2" "$WORK/rotate.out"
check "rotated master key is still 0600" test "$(stat -c %a "$WORK/d/master.key")" = 600
check "rotated master key holds both versions" test "$(grep -c '^[12] ' "$WORK/d/master.key")" = 2
"$FS" "${AN[@]}" keys rotate-master >"$WORK/rotate_an.out" 2>&1
status=$?
check "an analyst may not rotate the master key" one_line_failure "$WORK/rotate_an.out" $status
"$FS" --data-dir "$WORK/d" --server "$ADDR" audit export --out "$WORK/audit1.export" \
  >/dev/null 2>&1
check "audit export after erase and rotation" test -s "$WORK/audit1.export"
"$FS" audit verify "$WORK/audit1.export" --key "$WORK/d/audit-log.pub" >"$WORK/verify.out" 2>&1
check "audit verify accepts CaseErased and KeyRotated" test $? -eq 0

kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
status=$?
SERVER_PID=""
check "SIGTERM stops the server cleanly" test $status -eq 0
check "shutdown is logged" grep -q "event=shutdown.done" "$WORK/server.log"

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
