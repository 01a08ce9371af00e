#!/usr/bin/env bash
# End-to-end checks of the certificate runbook (docs/OPERATIONS.md
# "Certificates: status, renewal and CA rotation") as an operator runs it:
#   certs_cli_test.sh BUILD_DIR
# `certs status` (table and --json, --within), `staff renew` (the earlier
# certificate keeps working; --revoke-old refuses it; an administrator
# renews its own; refusals), a server reached by a name its certificate
# lacks (the error says how to add it), `certs renew-server --host` and a
# restart, then connecting by that name, and the expiry warnings in the
# server log (certificate_warning_days, and its bound).
set -uo pipefail

BUILD="$1"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-certs-cli-XXXXXX")"
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

# one_line_failure OUT_FILE STATUS: exit status non-zero and exactly one line.
one_line_failure() {
  [[ "$2" -ne 0 ]] && [[ "$(wc -l <"$1")" -eq 1 ]]
}

# start_server DIR LISTEN OUT LOG: starts fieldsyncd; sets SERVER_PID and PORT.
start_server() {
  : >"$3"
  "$FSD" --data-dir "$1" --listen "$2" >"$3" 2>"$4" &
  SERVER_PID=$!
  PORT=""
  for _ in $(seq 1 100); do
    PORT="$(sed -n 's/.* on .*:\([0-9]*\)$/\1/p' "$3")"
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
# Reachable on every local address, so that 127.0.0.2 (not in the
# certificate) reaches it too.
start_server "$D" "0.0.0.0:0" "$WORK/server.out" "$WORK/server.log"
check "server starts" test -n "$PORT"
A=(--data-dir "$D" --server "127.0.0.1:$PORT")

# --- help ---
"$FS" --help >"$WORK/help.out" 2>&1
check "fieldsync --help lists certs status, renew-server and staff renew" \
  sh -c "grep -q 'certs status' '$WORK/help.out' && grep -q 'certs renew-server' '$WORK/help.out' && grep -q 'staff renew' '$WORK/help.out'"
"$FS" certs --help >"$WORK/help_certs.out" 2>&1
check "certs --help lists its verbs" grep -q "renew-server" "$WORK/help_certs.out"
"$FS" certs status --help >"$WORK/help_status.out" 2>&1
check "certs status --help explains --within" grep -q "within DAYS" "$WORK/help_status.out"
"$FS" certs renew-server --help >"$WORK/help_server.out" 2>&1
check "certs renew-server --help says to restart" grep -q "restart" "$WORK/help_server.out"
"$FS" staff renew --help >"$WORK/help_renew.out" 2>&1
check "staff renew --help explains --revoke-old" grep -q "revoke-old" "$WORK/help_renew.out"

# --- certs status ---
"$FS" "${A[@]}" staff add --id amina --role supervisor --region northern \
  --out "$WORK/amina" >/dev/null 2>&1
check "a supervisor is added" test $? -eq 0
"$FS" "${A[@]}" certs status >"$WORK/status.out" 2>&1
check "certs status succeeds" test $? -eq 0
check "certs status lists the CA, the server, admin and amina" \
  sh -c "grep -q ' ca ' '$WORK/status.out' && grep -q ' server ' '$WORK/status.out' && grep -q ' admin ' '$WORK/status.out' && grep -q ' amina ' '$WORK/status.out'"
check "nothing expires within the default 30 days" grep -q "4 certificates, 0 expiring within 30 days" "$WORK/status.out"
"$FS" "${A[@]}" certs status --within 400 >"$WORK/status400.out" 2>&1
check "--within 400 marks the two staff certificates" \
  grep -q "4 certificates, 2 expiring within 400 days" "$WORK/status400.out"
check "the marked rows are the staff's" test "$(grep -c '^! .* staff ' "$WORK/status400.out")" -eq 2
"$FS" "${A[@]}" certs status --json >"$WORK/status.json" 2>&1
check "certs status --json: every kind, soonest first, with days left" /usr/bin/python3 - "$WORK/status.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
kinds = [r["kind"] for r in rows]
assert sorted(kinds) == ["ca", "server", "staff", "staff"], kinds
assert [r["not_after"] for r in rows] == sorted(r["not_after"] for r in rows)
assert all(r["days_left"] >= 364 for r in rows), rows
assert rows[-1]["kind"] == "ca"
PY
"$FS" "${A[@]}" certs status --within soon >"$WORK/status_bad.out" 2>&1
check "certs status --within soon is a usage error" test $? -eq 2
"$FS" --server "127.0.0.1:$PORT" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" \
  --ca "$WORK/amina/ca.crt" certs status >"$WORK/status_sup.out" 2>&1
status=$?
check "a supervisor may not read certs status (one line)" one_line_failure "$WORK/status_sup.out" $status
check "... PERMISSION_DENIED" grep -q "PERMISSION_DENIED" "$WORK/status_sup.out"

# --- staff renew ---
cp -r "$WORK/amina" "$WORK/amina-old"
"$FS" "${A[@]}" staff renew --id amina --out "$WORK/amina" >"$WORK/renew.out" 2>&1
check "staff renew succeeds" test $? -eq 0
check "staff renew says the earlier certificate keeps working" \
  grep -q "keeps working until it expires" "$WORK/renew.out"
check "the renewed certificate replaced the file" \
  sh -c "! cmp -s '$WORK/amina/amina.crt' '$WORK/amina-old/amina.crt'"
check "the new key file is 0600" test "$(stat -c %a "$WORK/amina/amina.key")" = 600
AS_NEW=(--server "127.0.0.1:$PORT" --cert "$WORK/amina/amina.crt" --key "$WORK/amina/amina.key" --ca "$WORK/amina/ca.crt")
AS_OLD=(--server "127.0.0.1:$PORT" --cert "$WORK/amina-old/amina.crt" --key "$WORK/amina-old/amina.key" --ca "$WORK/amina-old/ca.crt")
"$FS" "${AS_NEW[@]}" whoami >"$WORK/who_new.out" 2>&1
check "the renewed certificate works" grep -q "fieldsync://staff/amina" "$WORK/who_new.out"
"$FS" "${AS_OLD[@]}" whoami >"$WORK/who_old.out" 2>&1
check "the earlier certificate still works" grep -q "fieldsync://staff/amina" "$WORK/who_old.out"
"$FS" "${A[@]}" certs status >"$WORK/status2.out" 2>&1
check "certs status shows amina's earlier certificate as previous" \
  grep -q "staff (previous) .*amina" "$WORK/status2.out"
cp -r "$WORK/amina" "$WORK/amina-second"
"$FS" "${A[@]}" staff renew --id amina --out "$WORK/amina" --revoke-old >"$WORK/renew2.out" 2>&1
check "staff renew --revoke-old succeeds" test $? -eq 0
check "staff renew --revoke-old names what it refuses" grep -q "refused from now on" "$WORK/renew2.out"
"$FS" "${AS_OLD[@]}" whoami >"$WORK/who_old2.out" 2>&1
status=$?
check "after --revoke-old the first certificate is refused (one line)" one_line_failure "$WORK/who_old2.out" $status
check "... saying it was replaced" grep -q "replaced by a renewal" "$WORK/who_old2.out"
"$FS" --server "127.0.0.1:$PORT" --cert "$WORK/amina-second/amina.crt" \
  --key "$WORK/amina-second/amina.key" --ca "$WORK/amina-second/ca.crt" whoami \
  >"$WORK/who_second.out" 2>&1
check "after --revoke-old the second certificate is refused too" test $? -ne 0
"$FS" "${AS_NEW[@]}" whoami >"$WORK/who_new2.out" 2>&1
check "the newest certificate works" grep -q "fieldsync://staff/amina" "$WORK/who_new2.out"
"$FS" "${A[@]}" staff renew --id nobody --out "$WORK/nobody" >"$WORK/renew_unknown.out" 2>&1
status=$?
check "staff renew of an unknown id: one line" one_line_failure "$WORK/renew_unknown.out" $status
check "... listing the active staff" grep -q "active staff: admin, amina" "$WORK/renew_unknown.out"
check "... and no output directory" test ! -e "$WORK/nobody"
"$FS" "${AS_NEW[@]}" staff renew --id amina --out "$WORK/self" >"$WORK/renew_sup.out" 2>&1
status=$?
check "a supervisor may not renew (one line)" one_line_failure "$WORK/renew_sup.out" $status
"$FS" "${A[@]}" staff renew --id amina >"$WORK/renew_usage.out" 2>&1
check "staff renew without --out is a usage error" test $? -eq 2
# The administrator renews its own certificate in place.
"$FS" "${A[@]}" staff renew --id admin --out "$D/admin" --revoke-old >"$WORK/renew_admin.out" 2>&1
check "the administrator renews its own certificate in DATA_DIR/admin" test $? -eq 0
"$FS" "${A[@]}" whoami >"$WORK/who_admin.out" 2>&1
check "... and the default credentials still work" grep -q "fieldsync://staff/admin" "$WORK/who_admin.out"

# --- a server reached by a name its certificate lacks ---
"$FS" --data-dir "$D" --server "127.0.0.2:$PORT" whoami >"$WORK/who_other.out" 2>&1
status=$?
check "reaching the server by 127.0.0.2 fails in one line" one_line_failure "$WORK/who_other.out" $status
check "... saying the name is not in the server certificate" \
  grep -q "127.0.0.2 is not in the server certificate" "$WORK/who_other.out"
check "... and how to add it" grep -q "certs renew-server --host 127.0.0.2" "$WORK/who_other.out"
"$FS" "${A[@]}" certs renew-server --host 127.0.0.2 --host fieldsync.example.org \
  >"$WORK/renew_server.out" 2>&1
check "certs renew-server --host succeeds" test $? -eq 0
check "certs renew-server names the new hosts and keeps the old ones" \
  grep -q "names:       localhost, fieldsync.example.org, 127.0.0.1, ::1, 127.0.0.2" "$WORK/renew_server.out"
check "certs renew-server says to restart fieldsyncd" grep -q "restart fieldsyncd" "$WORK/renew_server.out"
check "the server key stays 0600" test "$(stat -c %a "$D/tls/server.key")" = 600
check "the server logs the renewal" grep -q "event=certs.renew-server" "$WORK/server.log"
stop_server
start_server "$D" "0.0.0.0:0" "$WORK/server2.out" "$WORK/server2.log"
check "the server restarts with the renewed certificate" test -n "$PORT"
"$FS" --data-dir "$D" --server "127.0.0.2:$PORT" whoami >"$WORK/who_other2.out" 2>&1
check "after the restart 127.0.0.2 reaches the server" grep -q "fieldsync://staff/admin" "$WORK/who_other2.out"
"$FS" --data-dir "$D" --server "127.0.0.2:$PORT" certs renew-server --drop-host localhost \
  >"$WORK/drop.out" 2>&1
status=$?
check "dropping localhost is refused in one line" one_line_failure "$WORK/drop.out" $status
"$FS" --data-dir "$D" --server "127.0.0.2:$PORT" audit export --out "$WORK/audit.export" \
  >/dev/null 2>&1
"$FS" audit verify "$WORK/audit.export" --key "$D/audit-log.pub" --json >"$WORK/verify.json" 2>&1
check "the audit log verifies and holds the renewals" /usr/bin/python3 - "$WORK/verify.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["ok"], report
# init's administrator, amina, three staff renewals, one server renewal
assert report["events_by_kind"].get("admin-action", 0) >= 4, report
PY

# --- CA rotation ---
R=(--data-dir "$D" --server "127.0.0.1:$PORT")
"$FS" certs rotate-ca --help >"$WORK/help_rotate.out" 2>&1
check "certs rotate-ca --help explains --finish and --force" \
  sh -c "grep -q -- '--finish' '$WORK/help_rotate.out' && grep -q -- '--force' '$WORK/help_rotate.out'"
check "fieldsync --help lists certs rotate-ca" grep -q "certs rotate-ca" "$WORK/help.out"
"$FS" "${R[@]}" certs rotate-ca --force >"$WORK/rotate_usage.out" 2>&1
check "--force without --finish is a usage error" test $? -eq 2
cp -r "$WORK/amina" "$WORK/amina-gen1"
"$FS" "${R[@]}" certs rotate-ca >"$WORK/rotate.out" 2>&1
check "certs rotate-ca starts a rotation" test $? -eq 0
check "... naming the staff to renew" grep -q "renew: fieldsync staff renew --id amina" "$WORK/rotate.out"
check "... and writing both CAs to the administrator's CA file" \
  test "$(grep -c 'BEGIN CERTIFICATE' "$D/admin/ca.crt")" -eq 2
AS_GEN1=(--server "127.0.0.1:$PORT" --cert "$WORK/amina-gen1/amina.crt" --key "$WORK/amina-gen1/amina.key" --ca "$WORK/amina-gen1/ca.crt")
"$FS" "${AS_GEN1[@]}" whoami >"$WORK/who_gen1.out" 2>&1
check "a certificate of the old CA keeps working during the rotation" \
  grep -q "fieldsync://staff/amina" "$WORK/who_gen1.out"
"$FS" "${R[@]}" certs status >"$WORK/status_rotation.out" 2>&1
check "certs status lists the new CA and the old one as previous" \
  sh -c "grep -qE ' ca +- ' '$WORK/status_rotation.out' && grep -qE ' ca \\(previous\\) +- ' '$WORK/status_rotation.out'"
"$FS" "${R[@]}" status >"$WORK/status_during_rotation.out" 2>&1
check "status marks the CA being retired" \
  grep -q "ca .*(being retired by a CA rotation)" "$WORK/status_during_rotation.out"
"$FS" "${R[@]}" certs rotate-ca >"$WORK/rotate_again.out" 2>&1
status=$?
check "a second start is refused in one line" one_line_failure "$WORK/rotate_again.out" $status
check "... saying how to finish" grep -q "rotate-ca --finish" "$WORK/rotate_again.out"
"$FS" "${AS_GEN1[@]}" certs rotate-ca >"$WORK/rotate_sup.out" 2>&1
status=$?
check "a supervisor may not rotate the CA (one line)" one_line_failure "$WORK/rotate_sup.out" $status
"$FS" "${R[@]}" certs rotate-ca --finish >"$WORK/finish_early.out" 2>&1
status=$?
check "finishing before anyone renewed is refused in one line" \
  one_line_failure "$WORK/finish_early.out" $status
check "... listing who still holds an old certificate" \
  sh -c "grep -q 'fieldsync://staff/admin' '$WORK/finish_early.out' && grep -q 'fieldsync://staff/amina' '$WORK/finish_early.out'"
"$FS" "${R[@]}" staff renew --id admin --out "$D/admin" >/dev/null 2>&1
check "the administrator renews under the new CA" test $? -eq 0
"$FS" "${R[@]}" staff renew --id amina --out "$WORK/amina-gen2" >/dev/null 2>&1
check "amina is renewed under the new CA" test $? -eq 0
"$FS" "${R[@]}" certs rotate-ca --finish >"$WORK/finish.out" 2>&1
check "certs rotate-ca --finish succeeds" test $? -eq 0
check "... and says to restart fieldsyncd" grep -q "restart fieldsyncd" "$WORK/finish.out"
check "the administrator's CA file names the new CA alone" \
  test "$(grep -c 'BEGIN CERTIFICATE' "$D/admin/ca.crt")" -eq 1
"$FS" "${AS_GEN1[@]}" whoami >"$WORK/who_gen1_after.out" 2>&1
status=$?
check "a certificate of the old CA is refused once finished (one line)" \
  one_line_failure "$WORK/who_gen1_after.out" $status
check "the server logs the rotation by ids" \
  sh -c "grep -q 'event=certs.rotate-ca ' '$WORK/server2.log' && grep -q 'event=certs.rotate-ca-finish' '$WORK/server2.log' && ! grep -q BEGIN '$WORK/server2.log'"
stop_server
start_server "$D" "127.0.0.1:0" "$WORK/server_rotated.out" "$WORK/server_rotated.log"
check "the server restarts with a certificate of the new CA" test -n "$PORT"
check "... which the new CA file verifies" \
  openssl verify -CAfile "$D/admin/ca.crt" "$D/tls/server.crt"
"$FS" --data-dir "$D" whoami >"$WORK/who_rotated.out" 2>&1
check "the administrator reaches the restarted server" \
  grep -q "fieldsync://staff/admin" "$WORK/who_rotated.out"
"$FS" --server "127.0.0.1:$PORT" --cert "$WORK/amina-gen2/amina.crt" \
  --key "$WORK/amina-gen2/amina.key" --ca "$WORK/amina-gen2/ca.crt" whoami >"$WORK/who_gen2.out" 2>&1
check "amina's renewed files reach it too" grep -q "fieldsync://staff/amina" "$WORK/who_gen2.out"
"$FS" --data-dir "$D" audit export --out "$WORK/audit2.export" >/dev/null 2>&1
"$FS" audit verify "$WORK/audit2.export" --key "$D/audit-log.pub" --json >"$WORK/verify2.json" 2>&1
check "the audit log verifies across the rotation" /usr/bin/python3 - "$WORK/verify2.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
assert report["ok"], report
PY
stop_server

# --- expiry warnings ---
echo "certificate_warning_days: 365" >>"$D/fieldsyncd.conf"
start_server "$D" "127.0.0.1:0" "$WORK/server3.out" "$WORK/server3.log"
check "the server starts with certificate_warning_days 365" test -n "$PORT"
for _ in $(seq 1 100); do  # the warnings follow the "serving" line
  grep -q "id=amina" "$WORK/server3.log" && break
  sleep 0.1
done
check "it warns of the staff certificates at start" \
  sh -c "grep 'event=certificate.expiring' '$WORK/server3.log' | grep -q 'kind=staff id=amina'"
check "the warnings name no key or certificate body" sh -c "! grep -q 'BEGIN' '$WORK/server3.log'"
check "the server certificate (two years) is not warned of" \
  sh -c "! grep 'event=certificate.expiring' '$WORK/server3.log' | grep -q 'kind=server'"
stop_server
sed -i 's/certificate_warning_days: 365/certificate_warning_days: 366/' "$D/fieldsyncd.conf"
"$FSD" --data-dir "$D" --listen 127.0.0.1:0 >"$WORK/server4.out" 2>"$WORK/server4.err" &
bad_pid=$!
wait "$bad_pid"
status=$?
check "certificate_warning_days 366 is refused" test "$status" -ne 0
check "... naming the bound" grep -q "certificate_warning_days is 366, outside the allowed range 1..365" "$WORK/server4.err"

echo "$passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
