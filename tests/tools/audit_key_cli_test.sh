#!/usr/bin/env bash
# Rotating the audit log's signing key, as docs/OPERATIONS.md ("Rotating the
# audit signing key") runs it:
#   audit_key_cli_test.sh BUILD_DIR
# Tablets push, an administrator runs `fieldsync keys rotate-audit` (an
# auditor may not), tablets push again; the export spanning the rotation
# verifies with the first key (audit-log.pub) and with the new one
# (audit-log.v2.pub), a head saved before the rotation is still extended,
# an export whose transition head was removed is refused as a forged
# transition, a backup made after the rotation verifies with the first key,
# and a restarted fieldsyncd keeps signing with the new key.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-audit-key-cli-XXXXXX")"
PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$PID" ]] && kill "$PID" 2>/dev/null
  [[ -n "${KEEP:-}" ]] || rm -rf "$WORK"
}
trap cleanup EXIT

check() {  # check NAME COMMAND...: the command must succeed
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"
  else failed=$((failed + 1)); echo "FAIL $name"; fi
}

start_server() {
  "$FSD" --data-dir "$WORK/d" --listen 127.0.0.1:0 >"$WORK/server.out" 2>>"$WORK/server.log" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server.out")"
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

"$FS" init --data-dir "$WORK/d" >/dev/null 2>&1
check "init succeeds" test $? -eq 0
start_server
check "server starts" test -n "$ADDR"
A=(--data-dir "$WORK/d" --server "$ADDR")
"$FS" "${A[@]}" staff add --id aud1 --role auditor --out "$WORK/aud" >/dev/null 2>&1
AU=(--server "$ADDR" --cert "$WORK/aud/aud1.crt" --key "$WORK/aud/aud1.key" --ca "$WORK/aud/ca.crt")

# --- pushes before the rotation, an auditor's saved head ---
"$FS" "${A[@]}" device simulate --devices 2 --seed 3 >/dev/null 2>&1
check "tablets push before the rotation" test $? -eq 0
"$FS" "${AU[@]}" audit export --out "$WORK/before.fsa" >/dev/null 2>&1
"$FS" audit verify "$WORK/before.fsa" --key "$WORK/d/audit-log.pub" \
  --save-head "$WORK/saved-before.note" >/dev/null 2>&1
check "the export before the rotation verifies; its head is saved" test $? -eq 0

# --- the rotation ---
"$FS" keys rotate-audit --help >"$WORK/help.out" 2>&1
check "keys rotate-audit --help explains the transition" grep -q "key transition" "$WORK/help.out"
check "fieldsync --help lists keys rotate-audit" sh -c "'$FS' --help | grep -q 'keys rotate-audit'"
"$FS" "${AU[@]}" keys rotate-audit >"$WORK/rotate_au.out" 2>&1
status=$?
check "an auditor may not rotate the audit key" test $status -eq 1
check "the refusal says PERMISSION_DENIED" grep -q "PERMISSION_DENIED" "$WORK/rotate_au.out"
"$FS" "${A[@]}" keys rotate-audit >"$WORK/rotate.out" 2>&1
check "keys rotate-audit succeeds" test $? -eq 0
check "it prints the versions" grep -q "version 1 -> 2" "$WORK/rotate.out"
check "it says where the new key was written" grep -q "audit-log.v2.pub" "$WORK/rotate.out"
check "the new verifier key file exists" test -s "$WORK/d/audit-log.v2.pub"
check "the printed key is the file's" \
  grep -qF "$(cat "$WORK/d/audit-log.v2.pub")" "$WORK/rotate.out"
check "audit-log.pub keeps the first key" \
  test "$(cat "$WORK/d/audit-log.pub")" != "$(cat "$WORK/d/audit-log.v2.pub")"

# --- pushes after the rotation; the export spanning it ---
"$FS" "${A[@]}" device simulate --devices 2 --seed 4 >/dev/null 2>&1
check "tablets push after the rotation (their receipts verify)" test $? -eq 0
"$FS" "${AU[@]}" audit export --out "$WORK/after.fsa" >/dev/null 2>&1
check "audit export after the rotation" test -s "$WORK/after.fsa"
"$FS" audit verify "$WORK/after.fsa" --key "$WORK/d/audit-log.pub" >"$WORK/v1.out" 2>&1
check "the export verifies with the first key" test $? -eq 0
check "verify prints the key transition" grep -q "KEY TRANSITION at entry" "$WORK/v1.out"
"$FS" audit verify "$WORK/after.fsa" --key "$WORK/d/audit-log.pub" --json >"$WORK/v1.json" 2>&1
check "--json lists the transition and the key in force" /usr/bin/python3 - "$WORK/v1.json" \
  "$(cat "$WORK/d/audit-log.v2.pub")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["key_transitions"]
sys.exit(0 if r["ok"] and len(t) == 1 and t[0]["new_version"] == 2 and t[0]["old_key_checked"]
         and r["key_in_force"] == sys.argv[2] else 1)
PY
"$FS" audit verify "$WORK/after.fsa" --key "$WORK/d/audit-log.v2.pub" >"$WORK/v2.out" 2>&1
check "the export verifies with the new key alone" test $? -eq 0
"$FS" audit verify "$WORK/after.fsa" --key "$WORK/d/audit-log.pub" \
  --trusted-head "$WORK/saved-before.note" --save-head "$WORK/saved-after.note" \
  >"$WORK/v3.out" 2>&1
check "the log extends the head saved before the rotation" test $? -eq 0
"$FS" audit verify "$WORK/after.fsa" --key "$WORK/d/audit-log.pub" \
  --trusted-head "$WORK/saved-after.note" >/dev/null 2>&1
check "a head saved after the rotation (new key) is accepted with the first key" test $? -eq 0

# A forged transition: the head signed by both keys removed from the export.
/usr/bin/python3 - "$WORK/after.fsa" "$WORK/forged.fsa" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = b"fieldsync-audit-export/v1\n"
pos, records = len(magic), []
while pos < len(data):
    kind, n = data[pos], struct.unpack(">I", data[pos + 1:pos + 5])[0]
    records.append((kind, data[pos + 5:pos + 5 + n]))
    pos += 5 + n
heads = [r for r in records if r[0] == 1]
assert len(heads) == 2, len(heads)
out = [r for r in records if r != heads[0]]
entries, count = struct.unpack(">QI", out[-1][1])
out[-1] = (3, struct.pack(">QI", entries, count - 1))
open(sys.argv[2], "wb").write(magic + b"".join(bytes([k]) + struct.pack(">I", len(p)) + p
                                               for k, p in out))
PY
"$FS" audit verify "$WORK/forged.fsa" --key "$WORK/d/audit-log.pub" >"$WORK/forged.out" 2>&1
check "an export without the transition head is refused" test $? -eq 1
check "the refusal names a forged key transition" grep -q "forged key transition" "$WORK/forged.out"

# --- a backup after the rotation verifies with the first key ---
"$FS" "${A[@]}" backup create --out "$WORK/b1" >/dev/null 2>&1
"$FS" backup verify "$WORK/b1" --key "$WORK/d/audit-log.pub" >"$WORK/bv.out" 2>&1
check "backup verify across the rotation" test $? -eq 0
check "backup verify follows the transition" grep -q "key transition" "$WORK/bv.out"

# --- a restart keeps the new key; the head file written before counts ---
stop_server
start_server
check "the server restarts after the rotation" test -n "$ADDR"
A=(--data-dir "$WORK/d" --server "$ADDR")
AU=(--server "$ADDR" --cert "$WORK/aud/aud1.crt" --key "$WORK/aud/aud1.key" --ca "$WORK/aud/ca.crt")
"$FS" "${A[@]}" device simulate --devices 1 --seed 5 >/dev/null 2>&1
check "tablets push after the restart" test $? -eq 0
"$FS" "${AU[@]}" audit export --out "$WORK/restart.fsa" >/dev/null 2>&1
"$FS" audit verify "$WORK/restart.fsa" --key "$WORK/d/audit-log.v2.pub" >/dev/null 2>&1
check "heads after the restart are signed by the new key" test $? -eq 0
"$FS" audit verify "$WORK/restart.fsa" --key "$WORK/d/audit-log.pub" \
  --trusted-head "$WORK/saved-after.note" >/dev/null 2>&1
check "and verify with the first key" test $? -eq 0
"$FS" "${A[@]}" keys rotate-audit >"$WORK/rotate2.out" 2>&1
check "a second rotation goes from version 2 to 3" grep -q "version 2 -> 3" "$WORK/rotate2.out"
check "the third key file exists" test -s "$WORK/d/audit-log.v3.pub"
"$FS" "${AU[@]}" audit export --out "$WORK/twice.fsa" >/dev/null 2>&1
"$FS" audit verify "$WORK/twice.fsa" --key "$WORK/d/audit-log.pub" >"$WORK/twice.out" 2>&1
check "an export spanning two rotations verifies with the first key" test $? -eq 0
check "it shows both transitions" test "$(grep -c 'KEY TRANSITION' "$WORK/twice.out")" -eq 2
stop_server

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
