#!/usr/bin/env bash
# End-to-end checks of backups as an operator makes them:
#   backup_cli_test.sh BUILD_DIR
# `fieldsync backup create` against a running fieldsyncd, `backup verify`
# offline (and its refusals of a tampered head, another backup's head, a
# changed file and another log's key), `backup restore` (and its refusals
# of a non-empty target, a backup without or with a broken manifest and the
# wrong master key), and a fieldsyncd serving the restored directory.
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-backup-cli-XXXXXX")"
SERVER_PID=""
RESTORED_PID=""
passed=0
failed=0

cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  [[ -n "$RESTORED_PID" ]] && kill "$RESTORED_PID" 2>/dev/null
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

# start_server DIR OUT LOG: starts fieldsyncd on DIR; sets PID and ADDR.
start_server() {
  : >"$2"
  "$FSD" --data-dir "$1" --listen 127.0.0.1:0 >"$2" 2>"$3" &
  PID=$!
  ADDR=""
  for _ in $(seq 1 100); do
    ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$2")"
    [[ -n "$ADDR" ]] && break
    sleep 0.1
  done
}

# flip FILE OFFSET: xors one byte of FILE in place.
flip() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
path, at = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
data[at] ^= 0x01
open(path, "wb").write(bytes(data))
PY
}

tree() { find "$1" -type f -exec sha256sum {} + | sort; }

# --- a deployment with a running server ---
"$FS" init --data-dir "$WORK/d" >/dev/null 2>&1
check "init succeeds" test $? -eq 0
start_server "$WORK/d" "$WORK/server.out" "$WORK/server.log"
SERVER_PID=$PID
check "server starts" test -n "$ADDR"
A=(--data-dir "$WORK/d" --server "$ADDR")
"$FS" "${A[@]}" staff add --id amina --role supervisor --region northern \
  --out "$WORK/amina" >/dev/null 2>&1
check "a supervisor is added before the backup" test $? -eq 0

# --- backup create ---
"$FS" backup --help >"$WORK/help.out" 2>&1
check "backup --help lists the verbs" grep -q "backup restore" "$WORK/help.out"
"$FS" backup create --help >"$WORK/help_create.out" 2>&1
check "backup create --help says DIR is on the server's machine" \
  grep -q "ON THE SERVER'S MACHINE" "$WORK/help_create.out"
check "fieldsync --help lists backup" sh -c "'$FS' --help | grep -q 'backup create'"
"$FS" "${A[@]}" backup create --out "$WORK/b1" >"$WORK/create.out" 2>&1
check "backup create succeeds" test $? -eq 0
check "backup create prints the tree size" grep -q "audit tree size:" "$WORK/create.out"
check "backup create prints its time" grep -q "in [0-9.]* s" "$WORK/create.out"
check "the backup has a manifest, a head, a checkpoint and files" \
  test -f "$WORK/b1/MANIFEST.textproto" -a -f "$WORK/b1/tree-head.note" \
  -a -f "$WORK/b1/db/CURRENT" -a -f "$WORK/b1/files/DEPLOYMENT"
check "the backup directory is 0700" test "$(stat -c %a "$WORK/b1")" = 700
check "no master.key in the backup" test -z "$(find "$WORK/b1" -name 'master.key*')"
key_line="$(grep '^1 ' "$WORK/d/master.key" | cut -d' ' -f2)"  # version 1's key
check "the master key's bytes are nowhere in the backup" \
  sh -c "test -n '$key_line' && ! grep -rqF -- '$key_line' '$WORK/b1'"
check "the server logs the backup" grep -q "event=backup.created" "$WORK/server.log"
"$FS" "${A[@]}" backup create --out "$WORK/b1" >"$WORK/create2.out" 2>&1
status=$?
check "backup create into a non-empty directory: one line" one_line_failure "$WORK/create2.out" $status
check "backup create into a non-empty directory: ALREADY_EXISTS" grep -q "ALREADY_EXISTS" "$WORK/create2.out"
"$FS" "${A[@]}" backup create --out relative/b >"$WORK/create3.out" 2>&1
status=$?
check "backup create to a relative path: one line" one_line_failure "$WORK/create3.out" $status
"$FS" --server "$ADDR" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" \
  --ca "$WORK/amina/ca.crt" backup create --out "$WORK/b_sup" >"$WORK/create4.out" 2>&1
status=$?
check "a supervisor may not back up" one_line_failure "$WORK/create4.out" $status
check "a supervisor's backup leaves nothing" test ! -e "$WORK/b_sup"
"$FS" "${A[@]}" backup create >"$WORK/create5.out" 2>&1
check "backup create without --out is a usage error" test $? -eq 2
"$FS" "${A[@]}" staff add --id nadia --role analyst --region northern \
  --out "$WORK/nadia" >/dev/null 2>&1
"$FS" "${A[@]}" backup create --out "$WORK/b2" >/dev/null 2>&1
check "a second backup after more changes" test $? -eq 0

# --- backup verify ---
"$FS" backup verify "$WORK/b1" --key "$WORK/d/audit-log.pub" >"$WORK/verify.out" 2>&1
check "backup verify succeeds" test $? -eq 0
check "backup verify prints one ok line per check" test "$(grep -c '^ok  ' "$WORK/verify.out")" -eq 6
"$FS" backup verify "$WORK/b1" --key "$WORK/d/audit-log.pub" --json >"$WORK/verify.json" 2>&1
check "backup verify --json" grep -q '"ok":true' "$WORK/verify.json"
"$FS" backup verify "$WORK/b1" >"$WORK/verify_nokey.out" 2>&1
check "backup verify without --key is a usage error" test $? -eq 2

cp -a "$WORK/b1" "$WORK/t_sig"
sig_at=$(( $(stat -c %s "$WORK/t_sig/tree-head.note") - 10 ))
flip "$WORK/t_sig/tree-head.note" "$sig_at"
"$FS" backup verify "$WORK/t_sig" --key "$WORK/d/audit-log.pub" >"$WORK/t_sig.out" 2>"$WORK/t_sig.err"
status=$?
check "a flipped signature byte: exit 1" test $status -eq 1
check "a flipped signature byte: the tree head check fails" grep -q "^FAIL  tree head" "$WORK/t_sig.out"
check "a flipped signature byte: one error line naming it" \
  sh -c "test \$(wc -l <'$WORK/t_sig.err') -eq 1 && grep -q 'tree head' '$WORK/t_sig.err'"

cp -a "$WORK/b2" "$WORK/t_head"
cp "$WORK/b1/tree-head.note" "$WORK/t_head/tree-head.note"
"$FS" backup verify "$WORK/t_head" --key "$WORK/d/audit-log.pub" >"$WORK/t_head.out" 2>"$WORK/t_head.err"
check "another backup's head: refused" test $? -eq 1
check "another backup's head: names the size" grep -q "tree size" "$WORK/t_head.err"

cp -a "$WORK/b1" "$WORK/t_file"
flip "$WORK/t_file/files/schema.textproto" 20
"$FS" backup verify "$WORK/t_file" --key "$WORK/d/audit-log.pub" >"$WORK/t_file.out" 2>"$WORK/t_file.err"
check "a changed file: refused" test $? -eq 1
check "a changed file: named" grep -q "schema.textproto differs" "$WORK/t_file.err"

"$FS" init --data-dir "$WORK/other" >/dev/null 2>&1
"$FS" backup verify "$WORK/b1" --key "$WORK/other/audit-log.pub" >"$WORK/t_key.out" 2>"$WORK/t_key.err"
check "another log's key: refused" test $? -eq 1
check "another log's key: says so" grep -q "the key of another log" "$WORK/t_key.err"

# --- backup restore ---
"$FS" backup restore --from "$WORK/b1" --data-dir "$WORK/r1" \
  --master-key-file "$WORK/d/master.key" >"$WORK/restore.out" 2>&1
check "restore succeeds" test $? -eq 0
check "restore verifies the backup first" test "$(grep -c '^ok  ' "$WORK/restore.out")" -eq 6
check "restore says how to start fieldsyncd" grep -q "fieldsyncd --data-dir $WORK/r1" "$WORK/restore.out"
check "restored directory is 0700" test "$(stat -c %a "$WORK/r1")" = 700
check "restored master key is 0600" test "$(stat -c %a "$WORK/r1/master.key")" = 600
check "restored server key is 0600" test "$(stat -c %a "$WORK/r1/tls/server.key")" = 600
check "restored admin key is 0600" test "$(stat -c %a "$WORK/r1/admin/admin.key")" = 600

before="$(tree "$WORK/r1")"
"$FS" backup restore --from "$WORK/b2" --data-dir "$WORK/r1" \
  --master-key-file "$WORK/d/master.key" >"$WORK/restore2.out" 2>&1
status=$?
check "restore into a non-empty directory: one line" one_line_failure "$WORK/restore2.out" $status
check "restore into a non-empty directory changes nothing" test "$before" = "$(tree "$WORK/r1")"

cp -a "$WORK/b1" "$WORK/t_nomanifest"
rm "$WORK/t_nomanifest/MANIFEST.textproto"
"$FS" backup restore --from "$WORK/t_nomanifest" --data-dir "$WORK/r_x" \
  --master-key-file "$WORK/d/master.key" >"$WORK/restore3.out" 2>&1
status=$?
check "restore of a backup without a manifest: one line" one_line_failure "$WORK/restore3.out" $status
check "restore of a backup without a manifest: says so" grep -q "not a fieldsync backup" "$WORK/restore3.out"
check "restore of a backup without a manifest leaves nothing" test ! -e "$WORK/r_x"

cp -a "$WORK/b1" "$WORK/t_truncated"
head -c 200 "$WORK/b1/MANIFEST.textproto" >"$WORK/t_truncated/MANIFEST.textproto"
"$FS" backup restore --from "$WORK/t_truncated" --data-dir "$WORK/r_x" \
  --master-key-file "$WORK/d/master.key" >"$WORK/restore4.out" 2>&1
status=$?
check "restore of a truncated manifest: one line" one_line_failure "$WORK/restore4.out" $status
check "restore of a truncated manifest leaves nothing" test ! -e "$WORK/r_x"

"$FS" backup restore --from "$WORK/b1" --data-dir "$WORK/r_x" \
  --master-key-file "$WORK/other/master.key" >"$WORK/restore5.out" 2>&1
status=$?
check "restore with another deployment's master key: one line" one_line_failure "$WORK/restore5.out" $status
check "restore with another deployment's master key leaves nothing" test ! -e "$WORK/r_x"

"$FS" backup restore --from "$WORK/b1" --data-dir "$WORK/r2" >"$WORK/restore6.out" 2>&1
check "restore without a master key succeeds" test $? -eq 0
check "restore without a master key says where it goes" grep -q "NOT restored" "$WORK/restore6.out"
check "restore without a master key writes none" test ! -e "$WORK/r2/master.key"

# --- the restored deployment serves, with the same master key ---
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
SERVER_PID=""
start_server "$WORK/r1" "$WORK/restored.out" "$WORK/restored.log"
RESTORED_PID=$PID
check "fieldsyncd serves the restored directory" test -n "$ADDR"
"$FS" --data-dir "$WORK/r1" --server "$ADDR" whoami >"$WORK/who.out" 2>&1
check "the restored administrator is recognised" grep -q "role:      administrator" "$WORK/who.out"
"$FS" --data-dir "$WORK/r1" --server "$ADDR" staff list >"$WORK/list.out" 2>&1
check "the supervisor added before the backup is there" grep -q "amina" "$WORK/list.out"
check "the analyst added after it is not" sh -c "! grep -q nadia '$WORK/list.out'"
"$FS" --data-dir "$WORK/r1" --server "$ADDR" audit export --out "$WORK/r1.export" >/dev/null 2>&1
"$FS" audit verify "$WORK/r1.export" --key "$WORK/d/audit-log.pub" >"$WORK/r1_verify.out" 2>&1
check "the restored audit log verifies with the deployment's key" test $? -eq 0
kill -TERM "$RESTORED_PID"
wait "$RESTORED_PID"
RESTORED_PID=""
check "the restored server stops cleanly" test $? -eq 0

cp "$WORK/d/master.key" "$WORK/r2/master.key"
chmod 600 "$WORK/r2/master.key"
start_server "$WORK/r2" "$WORK/restored2.out" "$WORK/restored2.log"
RESTORED_PID=$PID
check "a restore given its master key afterwards serves" test -n "$ADDR"
kill -TERM "$RESTORED_PID"
wait "$RESTORED_PID"
RESTORED_PID=""

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
