#!/usr/bin/env bash
# The administrator's everyday verbs, end to end through the real fieldsync
# and fieldsyncd over mutual TLS:
#   everyday_cli_test.sh BUILD_DIR
# --version on both executables; fieldsync status (serving, not running,
# refused to a non-administrator); the address file fieldsyncd writes and
# removes, and that the tool finds the server through it; staff list (its
# columns, filters, JSON, simulated tablets hidden unless asked, last sync);
# staff update; device codes list and cancel; audit verify --save-head and
# --trusted-head (the saved head and the printed line, a tampered one
# refused); a failed staff add leaves no directory and never overwrites;
# administrative log lines name ids and refused callers their principal.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-everyday-XXXXXX")"
PID=""
passed=0
failed=0
export XDG_STATE_HOME="$WORK/state"

cleanup() {  # KEEP_WORK=1 keeps the outputs for a look after a failure
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "outputs kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}
# one_line_failure OUT_FILE STATUS: exit status 1 and exactly one line.
one_line_failure() { [[ "$2" -eq 1 ]] && [[ "$(wc -l <"$1")" -eq 1 ]]; }
j() {  # j FILE EXPR: EXPR over the JSON document in FILE (as d)
  /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2])
print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1" "$2" 2>/dev/null
}
jtrue() { [[ "$(j "$1" "bool($2)")" == "True" ]]; }

# start_server DIR LOG: starts fieldsyncd on DIR (port 0); sets PID and ADDR.
start_server() {
  "$FSD" --data-dir "$1" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$2" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server.out" 2>/dev/null)"
    [[ -n "$ADDR" ]] && break
    sleep 0.1
  done
}

D="$WORK/d"
A=(--data-dir "$D")  # no --server: the tool finds the server itself

# --- --version ---
"$FS" --version >"$WORK/v1" 2>&1; s1=$?
"$FSD" --version >"$WORK/v2" 2>&1; s2=$?
check "fieldsync --version exits 0" test "$s1" -eq 0
check "fieldsyncd --version exits 0" test "$s2" -eq 0
for f in v1 v2; do
  check "$f: version, commit and build type" \
    grep -Eq '^fieldsync(d)? [0-9]+\.[0-9]+\.[0-9]+ \(commit ([0-9a-f]{12}(-dirty)?|unknown|[^ ]+), [A-Za-z]+ build\)$' "$WORK/$f"
done
check "both binaries report the same build" \
  test "$(sed 's/^fieldsyncd\? //' "$WORK/v1")" == "$(sed 's/^fieldsyncd //' "$WORK/v2")"
"$FS" --help >"$WORK/help" 2>&1
for verb in "status" "staff list" "staff update" "device codes list" "device codes cancel"; do
  check "fieldsync --help lists $verb" grep -q "^  $verb" "$WORK/help"
  # shellcheck disable=SC2086
  "$FS" $verb --help >"$WORK/vh" 2>&1
  check "$verb --help" grep -q "^usage: fieldsync" "$WORK/vh"
done

# --- not running: one line, exit 1 ---
"$FS" init --data-dir "$D" >/dev/null 2>&1
"$FS" "${A[@]}" status >"$WORK/st0" 2>&1; s=$?
check "status without a server: one line, exit 1" one_line_failure "$WORK/st0" "$s"
check "status says it is not running" grep -q "not running" "$WORK/st0"

# --- the address file ---
start_server "$D" "$WORK/server.log"
check "server starts" test -n "$ADDR"
check "address file names the bound address" grep -qx "address=$ADDR" "$D/fieldsyncd.address"
check "address file names the pid" grep -qx "pid=$PID" "$D/fieldsyncd.address"
# The config's listen is another address: the tool must not use it.
"$FS" "${A[@]}" whoami >"$WORK/who" 2>&1
check "without --server the tool reaches the running server" grep -q "fieldsync://staff/admin" "$WORK/who"

# --- status ---
"$FS" "${A[@]}" status >"$WORK/st1" 2>&1; s=$?
check "status exits 0" test "$s" -eq 0
check "status: serving at the address" grep -q "^fieldsyncd at $ADDR: serving" "$WORK/st1"
for what in "version:" "up since:" "store on disk:" "audit log:" "last signed head:" "devices:" \
  "certificates:"; do
  check "status shows $what" grep -q "^$what" "$WORK/st1"
done
"$FS" "${A[@]}" status --json --window 1h >"$WORK/st.json" 2>&1
check "status --json: serving" jtrue "$WORK/st.json" "d['health'] == 'serving'"
check "status --json: window" jtrue "$WORK/st.json" "d['active_window_seconds'] == 3600"
check "status --json: store size" jtrue "$WORK/st.json" "d['store_bytes'] > 0"
check "status --json: audit log" jtrue "$WORK/st.json" "d['audit_tree_size'] >= 1"
check "status --json: CA, server and the nearest client certificate" \
  jtrue "$WORK/st.json" "sorted(c['kind'] for c in d['certificates']) == ['ca', 'server', 'staff']"
check "status --json: the server's commit is the tool's" \
  jtrue "$WORK/st.json" "d['commit'] == d['client_commit']"
"$FS" "${A[@]}" status --window 9d >"$WORK/stw" 2>&1; s=$?
check "status --window over 7 days is a usage error" test "$s" -eq 2

# --- a failed staff add leaves nothing behind, never overwrites ---
"$FS" "${A[@]}" staff add --id sup1 --role supervisor --region atlantis --out "$WORK/out/sup1" \
  >"$WORK/sa1" 2>&1; s=$?
check "staff add with an unknown region: one line, exit 1" one_line_failure "$WORK/sa1" "$s"
check "staff add names the known regions" grep -q "northern" "$WORK/sa1"
check "failed staff add leaves no output directory" test ! -e "$WORK/out"
mkdir -p "$WORK/taken" && echo keep >"$WORK/taken/sup1.key"
"$FS" "${A[@]}" staff add --id sup1 --role supervisor --region northern --out "$WORK/taken" \
  >"$WORK/sa2" 2>&1; s=$?
check "staff add refuses an existing key file" one_line_failure "$WORK/sa2" "$s"
check "the existing file is untouched" grep -qx keep "$WORK/taken/sup1.key"
"$FS" "${A[@]}" staff add --id sup1 --role supervisor --region northern --out "$WORK/sup1" \
  >/dev/null 2>&1
check "staff add writes the key pair" test -f "$WORK/sup1/sup1.key" -a -f "$WORK/sup1/sup1.crt"
"$FS" "${A[@]}" staff add --id ana1 --role analyst --region central --out "$WORK/ana1" \
  >/dev/null 2>&1
SUP=(--data-dir "$D" --cert "$WORK/sup1/sup1.crt" --key "$WORK/sup1/sup1.key" --ca "$WORK/sup1/ca.crt")
ANA=(--data-dir "$D" --cert "$WORK/ana1/ana1.crt" --key "$WORK/ana1/ana1.key" --ca "$WORK/ana1/ca.crt")
"$FS" "${ANA[@]}" status >"$WORK/st2" 2>&1; s=$?
check "status is refused to an analyst in one line" one_line_failure "$WORK/st2" "$s"
check "the refusal is PERMISSION_DENIED" grep -q "PERMISSION_DENIED" "$WORK/st2"
check "the refused analyst is logged with its principal" \
  grep -q "rpc=/fieldsync.v1.AdminService/GetStatus principal=fieldsync://staff/ana1 code=PERMISSION_DENIED" "$WORK/server.log"

# --- officers, simulated tablets, staff list ---
"$FS" "${A[@]}" officer add --id amina --region northern >/dev/null 2>&1
"$FS" "${A[@]}" officer add --id baraka --region central >/dev/null 2>&1
"$FS" "${A[@]}" device simulate --devices 2 --seed 7 --json >"$WORK/sim.json" 2>"$WORK/sim.err"
check "device simulate runs" test -s "$WORK/sim.json"
"$FS" "${A[@]}" staff list >"$WORK/sl" 2>&1
check "staff list columns" grep -q "^PRINCIPAL *ROLE *STATUS *REGIONS *OFFICER *DEVICE LABEL *CREATED (UTC) *LAST SYNC (UTC) *REVOKED (UTC)" "$WORK/sl"
check "staff list hides simulated tablets by default" bash -c "! grep -q 'simulated tablet' '$WORK/sl'"
check "staff list says how many it hid" grep -q "made by device simulate not shown" "$WORK/sl"
"$FS" "${A[@]}" staff list --include-simulated --json >"$WORK/sl.json" 2>&1
check "--include-simulated shows the simulated tablets" \
  jtrue "$WORK/sl.json" "len([p for p in d if p['kind'] == 'device' and p['simulated']]) == 2"
check "simulated officers are marked too" \
  jtrue "$WORK/sl.json" "any(p['kind'] == 'officer' and p['simulated'] for p in d)"
check "real principals are not marked simulated" \
  jtrue "$WORK/sl.json" "not any(p['simulated'] for p in d if p['id'] in ('admin', 'sup1', 'amina'))"
check "tablets have an officer, a label, created and last sync" \
  jtrue "$WORK/sl.json" "all(p['officer'] and p['device_label'] and p['created'] and p['last_sync'] for p in d if p['kind'] == 'device')"
check "staff have a created time and no last sync" \
  jtrue "$WORK/sl.json" "all(p['created'] and p['last_sync'] is None for p in d if p['kind'] == 'staff')"
"$FS" "${A[@]}" staff list --role supervisor --json >"$WORK/slr.json" 2>&1
check "--role supervisor" jtrue "$WORK/slr.json" "[p['id'] for p in d] == ['sup1']"
"$FS" "${A[@]}" staff list --region central --json >"$WORK/slg.json" 2>&1
check "--region central" jtrue "$WORK/slg.json" "sorted(p['id'] for p in d) == ['ana1', 'baraka']"
SIM_OFFICER="$(j "$WORK/sl.json" "[p['officer'] for p in d if p['kind'] == 'device'][0]")"
"$FS" "${A[@]}" staff list --officer "$SIM_OFFICER" --include-simulated --json >"$WORK/slo.json" 2>&1
check "--officer: the officer and its tablets" \
  jtrue "$WORK/slo.json" "len(d) >= 2 and all(p['id'] == '$SIM_OFFICER' or p['officer'] == '$SIM_OFFICER' for p in d)"
"$FS" "${A[@]}" staff list --officer nobody >"$WORK/sle1" 2>&1; s=$?
check "--officer unknown: one line, exit 1" one_line_failure "$WORK/sle1" "$s"
check "--officer unknown names the officers" grep -q "amina, baraka" "$WORK/sle1"
"$FS" "${A[@]}" staff list --region atlantis >"$WORK/sle2" 2>&1; s=$?
check "--region unknown: one line naming the regions" one_line_failure "$WORK/sle2" "$s"
check "--region unknown names the regions" grep -q "northern" "$WORK/sle2"
"$FS" "${A[@]}" staff list --role janitor >"$WORK/sle3" 2>&1; s=$?
check "--role unknown is a usage error naming the roles" test "$s" -eq 2
check "--role unknown names the roles" grep -q "supervisor" "$WORK/sle3"
"$FS" "${A[@]}" status --json >"$WORK/st3.json" 2>&1
check "status counts the simulated tablets as connected" \
  jtrue "$WORK/st3.json" "d['active_devices'] == 2 and d['enrolled_devices'] == 2"

# --- staff update ---
"$FS" "${A[@]}" staff update --id sup1 --region northern --region central >"$WORK/su" 2>&1; s=$?
check "staff update exits 0" test "$s" -eq 0
check "staff update prints old and new regions" grep -q "regions northern, central (were northern)" "$WORK/su"
"$FS" "${A[@]}" staff list --role supervisor --json >"$WORK/slu.json" 2>&1
check "staff list shows the new regions" jtrue "$WORK/slu.json" "d[0]['regions'] == ['northern', 'central']"
"$FS" "${SUP[@]}" conflict list --region central >"$WORK/suc" 2>&1; s=$?
check "the supervisor reaches its new region" test "$s" -eq 0
"$FS" "${A[@]}" staff update --id sup1 --region atlantis >"$WORK/sue1" 2>&1; s=$?
check "staff update with an unknown region: one line naming the regions" one_line_failure "$WORK/sue1" "$s"
check "staff update's refusal names the regions" grep -q "northern" "$WORK/sue1"
"$FS" "${A[@]}" staff update --id nobody --region central >"$WORK/sue2" 2>&1; s=$?
check "staff update of an unknown id: one line" one_line_failure "$WORK/sue2" "$s"
check "staff update of an unknown id names the staff" grep -q "ana1, sup1" "$WORK/sue2"
"$FS" "${A[@]}" staff update --id admin --region central >"$WORK/sue3" 2>&1; s=$?
check "an administrator has no regions" one_line_failure "$WORK/sue3" "$s"
check "staff.update is logged with ids" grep -q "event=staff.update staff=sup1 .*actor=fieldsync://staff/admin" "$WORK/server.log"

# --- enrolment codes ---
"$FS" "${A[@]}" device enrol-code --officer amina >"$WORK/ec" 2>&1
CODE="$(sed -n 's/^enrolment code: //p' "$WORK/ec")"
CODE_ID="$(sed -n 's/^code id: *\([0-9a-f]*\).*/\1/p' "$WORK/ec")"
check "enrol-code prints a code id" test "${#CODE_ID}" -eq 16
"$FS" "${A[@]}" device enrol-code --officer baraka >/dev/null 2>&1
"$FS" "${A[@]}" device codes list --json >"$WORK/cl.json" 2>&1
check "codes list shows both open codes" jtrue "$WORK/cl.json" "len(d) == 2"
check "codes list has the code's id, officer, region, times and issuer" \
  jtrue "$WORK/cl.json" "any(c['code_id'] == '$CODE_ID' and c['officer'] == 'amina' and c['region'] == 'northern' and c['created'] and c['expires'] and c['created_by'] == 'fieldsync://staff/admin' for c in d)"
"$FS" "${A[@]}" device codes list >"$WORK/cl" 2>&1
check "codes list never shows a code" bash -c "! grep -qi '${CODE:0:4}-' '$WORK/cl' && ! grep -q '$CODE' '$WORK/server.log'"
"$FS" "${A[@]}" device codes list --officer amina --json >"$WORK/cla.json" 2>&1
check "codes list --officer" jtrue "$WORK/cla.json" "[c['officer'] for c in d] == ['amina']"
"$FS" "${A[@]}" device codes list --officer nobody >"$WORK/cle" 2>&1; s=$?
check "codes list --officer unknown: one line naming the officers" one_line_failure "$WORK/cle" "$s"
check "codes list --officer unknown names them" grep -q "amina" "$WORK/cle"
"$FS" "${A[@]}" device codes cancel --id "$CODE_ID" >"$WORK/cc" 2>&1; s=$?
check "codes cancel exits 0" test "$s" -eq 0
"$FS" "${A[@]}" device codes list --json >"$WORK/cl2.json" 2>&1
check "a cancelled code is no longer listed" jtrue "$WORK/cl2.json" "[c['officer'] for c in d] == ['baraka']"
"$FS" "${A[@]}" device codes cancel --id "$CODE_ID" >"$WORK/cc2" 2>&1; s=$?
check "cancelling twice: one line, exit 1" one_line_failure "$WORK/cc2" "$s"
"$FS" "${A[@]}" device codes cancel --id 0123456789abcdef >"$WORK/cc3" 2>&1; s=$?
check "an unknown code id: one line" one_line_failure "$WORK/cc3" "$s"
check "an unknown code id names the open codes" \
  grep -q "$(j "$WORK/cl2.json" "d[0]['code_id']")" "$WORK/cc3"
check "code cancel is logged with ids" \
  grep -q "event=enrolment_code.cancel code_id=$CODE_ID officer=amina actor=fieldsync://staff/admin" "$WORK/server.log"

# --- administrative log lines carry ids ---
"$FS" "${A[@]}" staff revoke --id ana1 >/dev/null 2>&1
check "staff.add is logged with ids" grep -q "event=staff.add staff=sup1 .*actor=fieldsync://staff/admin" "$WORK/server.log"
check "staff.revoke is logged with ids" grep -q "event=staff.revoke principal=fieldsync://staff/ana1 actor=fieldsync://staff/admin" "$WORK/server.log"
check "officer.add is logged with ids" grep -q "event=officer.add officer=amina actor=fieldsync://staff/admin" "$WORK/server.log"
"$FS" "${A[@]}" officer revoke --id baraka >/dev/null 2>&1
check "officer.revoke is logged with ids" grep -q "event=officer.revoke officer=baraka .*actor=fieldsync://staff/admin" "$WORK/server.log"
"$FS" "${ANA[@]}" whoami >/dev/null 2>&1
check "a revoked caller is logged with its principal" \
  grep -q "principal=fieldsync://staff/ana1 code=UNAUTHENTICATED" "$WORK/server.log"

# --- audit verify --save-head / --trusted-head ---
"$FS" "${A[@]}" audit export --out "$WORK/log1.fsa" >/dev/null 2>&1
"$FS" audit verify "$WORK/log1.fsa" --key "$D/audit-log.pub" --save-head "$WORK/saved.note" \
  >"$WORK/av1" 2>&1; s=$?
check "verify --save-head exits 0" test "$s" -eq 0
check "--save-head writes the head" test -s "$WORK/saved.note"
grep '^latest head: ' "$WORK/av1" >"$WORK/printed.head"
check "verify prints the latest head" test -s "$WORK/printed.head"
"$FS" "${A[@]}" device simulate --devices 1 --seed 8 >/dev/null 2>&1
"$FS" "${A[@]}" audit export --out "$WORK/log2.fsa" >/dev/null 2>&1
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/saved.note" \
  >"$WORK/av2" 2>&1; s=$?
check "a later export extends the saved head" test "$s" -eq 0
check "verify says so" grep -q "extends your saved head" "$WORK/av2"
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/printed.head" \
  >"$WORK/av3" 2>&1; s=$?
check "the printed head is accepted as --trusted-head" test "$s" -eq 0
# Tampered: one character of the root changed, in the note and in the line.
/usr/bin/python3 - "$WORK/saved.note" "$WORK/tampered.note" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
lines[2] = ("B" if lines[2][0] != "B" else "C") + lines[2][1:]
open(sys.argv[2], "w").write("\n".join(lines))
PY
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/tampered.note" \
  >"$WORK/av4" 2>&1; s=$?
check "a tampered saved head is refused" test "$s" -eq 1
/usr/bin/python3 - "$WORK/printed.head" "$WORK/tampered.head" <<'PY'
import sys
line = open(sys.argv[1]).read()
i = line.index("root ") + 5
c = "B" if line[i] != "B" else "C"
open(sys.argv[2], "w").write(line[:i] + c + line[i + 1:])
PY
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/tampered.head" \
  >"$WORK/av5" 2>&1; s=$?
check "a tampered printed head is refused" test "$s" -eq 1
sed 's/size \([0-9]*\)/size 999999/' "$WORK/printed.head" >"$WORK/bigger.head"
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/bigger.head" \
  >"$WORK/av6" 2>&1; s=$?
check "a saved head beyond the log (rolled back) is refused" test "$s" -eq 1
"$FS" audit verify "$WORK/log2.fsa" --key "$D/audit-log.pub" --trusted-head "$WORK/saved.note" \
  --save-head "$WORK/saved.note" >/dev/null 2>&1; s=$?
check "the saved head is replaced after a good run" test "$s" -eq 0
NEW_SIZE="$(sed -n 's/^latest head: .*, size \([0-9]*\), root .*/\1/p' "$WORK/av2")"
check "the replaced head is the newer one" test "$(sed -n 2p "$WORK/saved.note")" == "$NEW_SIZE"
check "the newer head is larger than the first" \
  test "$NEW_SIZE" -gt "$(sed -n 's/^latest head: .*, size \([0-9]*\), root .*/\1/p' "$WORK/av1")"

# --- a clean stop removes the address file; a stale one is named ---
kill -TERM "$PID"; wait "$PID" 2>/dev/null; PID=""
check "a clean stop removes the address file" test ! -e "$D/fieldsyncd.address"
printf 'address=127.0.0.1:1\npid=999999\n' >"$D/fieldsyncd.address"
"$FS" "${A[@]}" status >"$WORK/st4" 2>&1; s=$?
check "a stale address file: not running, one line" one_line_failure "$WORK/st4" "$s"
check "a stale address file is named as such" grep -q "has exited" "$WORK/st4"

echo "passed $passed, failed $failed"
[[ "$failed" -eq 0 ]]
