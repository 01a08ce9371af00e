#!/usr/bin/env bash
# Schema upgrades as an operator makes them:
#   schema_cli_test.sh BUILD_DIR
# Simulated tablets write cases; `fieldsync schema check` (offline,
# read-only, also while fieldsyncd runs) judges an unchanged schema, a
# compatible change, a field in use removed and a changed schema whose
# version was not raised; fieldsyncd refuses the incompatible schema with one
# line, starts with --accept-schema-change (the acceptance is in the audit
# export, which still verifies), and starts again without the flag.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-schema-cli-XXXXXX")"
SERVER_PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "work kept in $WORK"; else rm -rf "$WORK"; fi
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

# start_server DIR OUT LOG [FLAG]: starts fieldsyncd on DIR; sets PID and ADDR
# (empty if it did not come up).
start_server() {
  : >"$2"
  "$FSD" --data-dir "$1" --listen 127.0.0.1:0 ${4:-} >"$2" 2>"$3" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$2")"
    [[ -n "$ADDR" ]] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# edit_schema IN OUT EDIT...: writes OUT, the schema IN with each EDIT:
#   version+1              raise the version
#   drop-field:NAME        remove the field NAME (of any record type)
#   add-value:FIELD:VALUE  add an enum value to FIELD
edit_schema() {
  /usr/bin/python3 - "$@" <<'PY'
import re, sys
src, dst, edits = sys.argv[1], sys.argv[2], sys.argv[3:]
text = open(src).read()
for e in edits:
    if e == "version+1":
        text = re.sub(r"(?m)^version: (\d+)$", lambda m: "version: %d" % (int(m.group(1)) + 1), text)
    elif e.startswith("drop-field:"):
        name = e.split(":", 1)[1]
        text, n = re.subn(r'(?s)\n  fields \{\n    name: "%s"\n.*?\n  \}' % name, "", text, count=1)
        assert n == 1, name
    elif e.startswith("add-value:"):
        _, field, value = e.split(":")
        text, n = re.subn(r'(?s)(\n    name: "%s"\n.*?)(\n    enum_values: )' % field,
                          lambda m: m.group(1) + '\n    enum_values: "%s"' % value + m.group(2),
                          text, count=1)
        assert n == 1, field
open(dst, "w").write(text)
PY
}

D="$WORK/d"
# --- a deployment whose tablets wrote cases ---
"$FS" init --data-dir "$D" >/dev/null 2>&1
check "init succeeds" test $? -eq 0
start_server "$D" "$WORK/server.out" "$WORK/server.log"
SERVER_PID=$PID
check "server starts" test -n "$ADDR"
check "the first start records the schema" grep -q "schema.recorded" "$WORK/server.log"
"$FS" --data-dir "$D" --server "$ADDR" device simulate --devices 2 --seed 5 --json \
  >"$WORK/sim.json" 2>"$WORK/sim.err"
check "simulated tablets push cases" test $? -eq 0

# --- schema check: help and usage ---
"$FS" --help >"$WORK/help.out" 2>&1
check "fieldsync --help lists schema check" grep -q "schema check --data-dir DIR" "$WORK/help.out"
"$FS" schema --help >"$WORK/help_schema.out" 2>&1
check "schema --help names check" grep -q "fieldsync schema check" "$WORK/help_schema.out"
"$FS" schema check --help >"$WORK/help_check.out" 2>&1
check "schema check --help names the flag that accepts" \
  grep -q -- "--accept-schema-change" "$WORK/help_check.out"
"$FS" schema check >"$WORK/usage.out" 2>&1
status=$?
check "schema check without --data-dir is a usage error" test $status -eq 2
"$FS" schema check --data-dir "$D" --bogus x >"$WORK/usage2.out" 2>&1
status=$?
check "an unknown option is a usage error" test $status -eq 2
"$FS" schema check --data-dir "$WORK/nowhere" >"$WORK/nodir.out" 2>&1
status=$?
check "a missing data directory fails with one line" one_line_failure "$WORK/nodir.out" $status

# --- while fieldsyncd runs: the store opens read-only ---
"$FS" schema check --data-dir "$D" >"$WORK/unchanged.out" 2>&1
status=$?
check "unchanged schema: exit 0 while the server runs" test $status -eq 0
check "unchanged schema: says so" grep -q "verdict: unchanged" "$WORK/unchanged.out"
check "the store's schema is named" grep -q "store:      child_protection@2" "$WORK/unchanged.out"
stop_server

# --- a compatible change ---
edit_schema "$D/schema.textproto" "$WORK/compatible.textproto" version+1 add-value:sex:intersex
"$FS" schema check --data-dir "$D" --schema "$WORK/compatible.textproto" >"$WORK/compat.out" 2>&1
status=$?
check "a new enum value is compatible: exit 0" test $status -eq 0
check "the new value is listed" \
  grep -q "compatible    enum-value-added .*new value intersex of case_registration.sex" \
  "$WORK/compat.out"
check "the verdict is compatible" grep -q "verdict: compatible" "$WORK/compat.out"

# --- a field in use removed ---
edit_schema "$D/schema.textproto" "$WORK/nofamily.textproto" version+1 drop-field:family_name
"$FS" schema check --data-dir "$D" --schema "$WORK/nofamily.textproto" >"$WORK/incompat.out" \
  2>"$WORK/incompat.err"
status=$?
check "a field in use removed: exit 1" test $status -eq 1
check "the change is listed as INCOMPATIBLE" \
  grep -q "INCOMPATIBLE  field-removed" "$WORK/incompat.out"
check "the verdict names the field and how many records hold it" \
  grep -q "verdict: schema change child_protection@2 -> child_protection@3 refused: field case_registration.family_name is removed, but [0-9]* records hold values of it" \
  "$WORK/incompat.out"
"$FS" schema check --data-dir "$D" --schema "$WORK/nofamily.textproto" --json \
  >"$WORK/incompat.json" 2>/dev/null
check "--json gives the outcome" grep -q '"outcome":"incompatible"' "$WORK/incompat.json"
check "--json lists the change" grep -q '"kind":"field-removed","level":"incompatible"' \
  "$WORK/incompat.json"
"$FS" schema check --data-dir "$D" >"$WORK/still.out" 2>&1
check "the check wrote nothing: the store still serves child_protection@2" \
  grep -q "verdict: unchanged" "$WORK/still.out"

# --- the version not raised ---
edit_schema "$D/schema.textproto" "$WORK/sameversion.textproto" add-value:sex:intersex
"$FS" schema check --data-dir "$D" --schema "$WORK/sameversion.textproto" >"$WORK/ver.out" 2>&1
status=$?
check "changed content with the same version: exit 1" test $status -eq 1
check "the verdict says to raise the version" grep -q "set version: 3" "$WORK/ver.out"

# --- a malformed schema file ---
printf 'schema_id: "child_protection"\nversion: three\n' >"$WORK/bad.textproto"
"$FS" schema check --data-dir "$D" --schema "$WORK/bad.textproto" >"$WORK/bad.out" 2>&1
status=$?
check "a malformed schema file fails with one line" one_line_failure "$WORK/bad.out" $status
check "the line names the line of the mistake" grep -q "line 2" "$WORK/bad.out"

# --- fieldsyncd refuses the incompatible schema, then accepts it with the flag ---
cp "$D/schema.textproto" "$WORK/shipped.textproto"
cp "$WORK/nofamily.textproto" "$D/schema.textproto"
"$FSD" --data-dir "$D" --listen 127.0.0.1:0 >"$WORK/refused.out" 2>"$WORK/refused.err"
status=$?
check "fieldsyncd refuses to start" test $status -eq 1
check "with one line of its own on stderr" test "$(grep -c '^fieldsyncd: ' "$WORK/refused.err")" -eq 1
check "naming the field and the flag" \
  grep -q "^fieldsyncd: schema change child_protection@2 -> child_protection@3 refused: field case_registration.family_name is removed.*--accept-schema-change" \
  "$WORK/refused.err"
"$FSD" --help >"$WORK/fsd_help.out" 2>&1
check "fieldsyncd --help documents --accept-schema-change" \
  grep -q -- "--accept-schema-change" "$WORK/fsd_help.out"

start_server "$D" "$WORK/server2.out" "$WORK/server2.log" --accept-schema-change
SERVER_PID=$PID
check "fieldsyncd --accept-schema-change serves" test -n "$ADDR"
check "the acceptance is logged with the change" \
  grep -q "schema.change-accepted.*field-removed case_registration.family_name" "$WORK/server2.log"
"$FS" --data-dir "$D" --server "$ADDR" audit export --out "$WORK/audit.export" >/dev/null 2>&1
check "audit export succeeds" test $? -eq 0
check "the export holds the acceptance" grep -a -q "schema.change-accepted" "$WORK/audit.export"
check "the export names the schemas, not a value" \
  grep -a -q "from=child_protection@2" "$WORK/audit.export"
"$FS" audit verify "$WORK/audit.export" --key "$D/audit-log.pub" >"$WORK/verify.out" 2>&1
check "the export still verifies" test $? -eq 0
stop_server

start_server "$D" "$WORK/server3.out" "$WORK/server3.log"
SERVER_PID=$PID
check "the next start needs no flag" test -n "$ADDR"
stop_server
"$FS" schema check --data-dir "$D" >"$WORK/after.out" 2>&1
check "the store now records the new schema" grep -q "store:      child_protection@3" "$WORK/after.out"

# --- going back to the old file is a lower version ---
"$FS" schema check --data-dir "$D" --schema "$WORK/shipped.textproto" >"$WORK/back.out" 2>&1
status=$?
check "the old schema file is refused (lower version)" test $status -eq 1
check "the verdict says the version is lower" grep -q "version 2 is lower than 3" "$WORK/back.out"

echo "passed $passed, failed $failed"
[[ $failed -eq 0 ]]
