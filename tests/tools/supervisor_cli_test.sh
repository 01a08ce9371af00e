#!/usr/bin/env bash
# A supervisor's day, end to end, through the real fieldsyncd over mutual TLS:
#   supervisor_cli_test.sh BUILD_DIR SOURCE_DIR
# An administrator registers officers and a supervisor; simulated tablets
# leave conflicts; the supervisor reads cases (list, show, history), takes
# the deployment to zero open conflicts with the CLI alone (keep-current,
# take, value), assigns, transfers, closes and reopens a case; and every
# refusal is one line with a non-zero exit: a case of another region, an
# unknown region, an unknown or revoked officer, a decision on a conflict
# that a tablet changed after the supervisor looked, a second close.
# JSON is read with /usr/bin/python3 (a dependency of the tests already;
# jq is not one).
set -uo pipefail

BUILD="$1"
SOURCE="${2:-$(cd "$(dirname "$0")/../.." && pwd)}"
FS="$BUILD/tools/fieldsync"
FSD="$BUILD/server/fieldsyncd"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-supervisor-XXXXXX")"
SERVER_PID=""
passed=0
failed=0
# The remembered conflict versions go here, not into the user's home.
export XDG_STATE_HOME="$WORK/state"

cleanup() {  # KEEP_WORK=1 keeps the outputs for a look after a failure
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "outputs kept in $WORK"; else rm -rf "$WORK"; fi
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
# refused OUT_FILE STATUS: the server refused (exit 1, not a usage error's 2),
# in exactly one line.
refused() {
  if [[ "$2" -eq 1 ]] && [[ "$(wc -l <"$1")" -eq 1 ]]; then return 0; fi
  echo "     exit status $2, output:" && sed 's/^/     | /' "$1"
  return 1
}
# same NAME A B: A and B are equal and not empty.
same() { [[ -n "$1" && "$1" == "$2" ]]; }

# j FILE EXPR: prints EXPR evaluated over the JSON document in FILE (as d);
# lists and objects as JSON. Fails (no output) when the file is not JSON.
j() {
  /usr/bin/python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
r = eval(sys.argv[2])
print(json.dumps(r) if isinstance(r, (dict, list)) else r)' "$1" "$2" 2>/dev/null
}
# jtrue FILE EXPR: succeeds when EXPR is true of the JSON document in FILE.
jtrue() { [[ "$(j "$1" "bool($2)")" == "True" ]]; }

# --- a deployment and its server ---
"$FS" init --data-dir "$WORK/d" >/dev/null 2>&1
"$FSD" --data-dir "$WORK/d" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server.out" 2>/dev/null)"
  [[ -n "$ADDR" ]] && break
  sleep 0.1
done
check "server starts" test -n "$ADDR"
ADMIN=(--data-dir "$WORK/d" --server "$ADDR")

# --- every new verb is listed and has --help ---
"$FS" --help >"$WORK/help.out" 2>&1
for verb in "case list" "case show" "case history" "case assign" "case transfer" "case close" \
  "case reopen" "conflict list" "conflict show" "conflict resolve" "officer add" "officer list" \
  "officer revoke"; do
  check "fieldsync --help lists $verb" grep -q "^  $verb" "$WORK/help.out"
  # shellcheck disable=SC2086
  "$FS" $verb --help >"$WORK/verb_help.out" 2>&1
  check "$verb --help" grep -q "^usage: fieldsync .*$verb" "$WORK/verb_help.out"
done

# --- officers and a supervisor ---
for o in "amara central" "bako central" "chidi northern" "dede central"; do
  set -- $o
  "$FS" "${ADMIN[@]}" officer add --id "$1" --region "$2" >"$WORK/officer_$1.out" 2>&1
  check "officer add $1" grep -q "registered officer $1 in region $2" "$WORK/officer_$1.out"
done
"$FS" "${ADMIN[@]}" officer revoke --id dede >"$WORK/revoke_dede.out" 2>&1
check "officer revoke without tablets" grep -q "it had no active tablets" "$WORK/revoke_dede.out"
"$FS" "${ADMIN[@]}" officer list --json >"$WORK/officers.json" 2>&1
check "officer list: amara in central" \
  jtrue "$WORK/officers.json" '[o["region"] for o in d if o["id"] == "amara"] == ["central"]'
check "officer list: a revoked officer is left out" \
  jtrue "$WORK/officers.json" 'sorted(o["id"] for o in d) == ["amara", "bako", "chidi"]'
"$FS" "${ADMIN[@]}" officer list --include-revoked --json >"$WORK/officers_all.json" 2>&1
check "officer list --include-revoked: dede revoked" \
  jtrue "$WORK/officers_all.json" '[o["status"] for o in d if o["id"] == "dede"] == ["revoked"]'
"$FS" "${ADMIN[@]}" officer add --id amara --region central >"$WORK/officer_again.out" 2>&1
status=$?
check "officer add of a used id: one line" refused "$WORK/officer_again.out" $status
"$FS" "${ADMIN[@]}" device enrol-code --officer amara >"$WORK/code_amara.out" 2>&1
check "enrol-code without --region: the officer's region" \
  grep -q "^region: *central" "$WORK/code_amara.out"
"$FS" "${ADMIN[@]}" device enrol-code --officer nobody >"$WORK/code_nobody.out" 2>&1
status=$?
check "enrol-code for an unregistered officer: one line" \
  refused "$WORK/code_nobody.out" $status
"$FS" "${ADMIN[@]}" device enrol-code --officer dede >"$WORK/code_dede.out" 2>&1
status=$?
check "enrol-code for a revoked officer: one line" refused "$WORK/code_dede.out" $status

"$FS" "${ADMIN[@]}" staff add --id sam --role supervisor --region central --region northern \
  --out "$WORK/sam" >/dev/null 2>&1
"$FS" "${ADMIN[@]}" staff add --id ella --role supervisor --region eastern \
  --out "$WORK/ella" >/dev/null 2>&1
SUP=(--server "$ADDR" --cert "$WORK/sam/sam.crt" --key "$WORK/sam/sam.key"
     --ca "$WORK/sam/ca.crt")
EAST=(--server "$ADDR" --cert "$WORK/ella/ella.crt" --key "$WORK/ella/ella.key"
      --ca "$WORK/ella/ca.crt")
"$FS" "${SUP[@]}" officer list --region central --json >"$WORK/sup_officers.json" 2>&1
check "a supervisor lists the officers of its region" \
  jtrue "$WORK/sup_officers.json" 'sorted(o["id"] for o in d) == ["amara", "bako"]'

# --- simulated tablets leave conflicts ---
"$FS" "${ADMIN[@]}" device simulate --devices 6 --edits 12 --seed 5 --json \
  >"$WORK/sim.json" 2>"$WORK/sim.err"
check "device simulate succeeds" test $? -eq 0
check "device simulate leaves at least 3 conflicts" jtrue "$WORK/sim.json" 'd["conflicts_open"] >= 3'
RUN="$(j "$WORK/sim.json" 'd["run"]')"  # sim-TAG; tablets are labelled "(TAG)"
"$FS" "${ADMIN[@]}" staff list --include-simulated >"$WORK/staff.out" 2>&1
check "staff list: a simulated tablet with its label" \
  grep -q "$RUN-officer-1 *simulated tablet 1 (${RUN#sim-})" "$WORK/staff.out"
"$FS" "${ADMIN[@]}" officer list --json >"$WORK/officers2.json" 2>&1
check "device simulate registered its officers" \
  jtrue "$WORK/officers2.json" "'$RUN-officer-2' in [o['id'] for o in d]"

# --- cases ---
"$FS" "${SUP[@]}" case list --json >"$WORK/cases.json" 2>"$WORK/cases.err"
check "case list --json succeeds" test $? -eq 0
check "case list: the run's cases, in the supervisor's regions" \
  jtrue "$WORK/cases.json" \
  "len(d) >= 6 and all(c['region'] in ('central', 'northern') and c['id'] for c in d)"
check "case list: ordered by region, then case id" \
  jtrue "$WORK/cases.json" '[(c["region"], c["id"]) for c in d] == sorted((c["region"], c["id"]) for c in d)'
"$FS" "${SUP[@]}" case list --region central --has-conflicts --json >"$WORK/cases_c.json" 2>&1
check "case list --region central --has-conflicts" \
  jtrue "$WORK/cases_c.json" \
  'len(d) > 0 and all(c["region"] == "central" and c["open_conflicts"] > 0 for c in d)'
"$FS" "${SUP[@]}" case list --status closed --json >"$WORK/cases_closed0.json" 2>&1
check "case list --status closed: none yet" jtrue "$WORK/cases_closed0.json" 'd == []'
"$FS" "${SUP[@]}" case list >"$WORK/cases.out" 2>&1
check "case list prints its table" \
  grep -q "^CASE  *REGION  *DISTRICT  *OFFICER  *STATUS  *CONFLICTS  *LAST CHANGE" "$WORK/cases.out"
CASE="$(j "$WORK/cases_c.json" 'd[0]["id"]')"
CASE_OFFICER="$(j "$WORK/cases_c.json" 'd[0]["officer"]')"
check "the case has a simulated officer" test "$CASE_OFFICER" = "$RUN-officer-1"

"$FS" "${SUP[@]}" case show "$CASE" --json >"$WORK/show.json" 2>&1
check "case show: the case, its region and officer" \
  jtrue "$WORK/show.json" \
  "d['id'] == '$CASE' and d['region'] == 'central' and d['officer'] == '$CASE_OFFICER'"
check "case show: the registration record first, with its region field and version" \
  jtrue "$WORK/show.json" \
  "d['records'][0]['id'] == '$CASE' and [(f['value'], f['version'] > 0) for f in d['records'][0]['fields'] if f['field'] == 'region'] == [('central', True)]"
check "case show: a field marked with its open conflict" \
  jtrue "$WORK/show.json" 'any(f["conflict"] for r in d["records"] for f in r["fields"])'
check "case show: who changed a field, by officer and tablet label" \
  jtrue "$WORK/show.json" \
  "any(f['changed_by'] == '$CASE_OFFICER / ' + f['device_label'] and 'simulated tablet' in f['device_label'] for f in d['records'][0]['fields'])"
"$FS" "${SUP[@]}" case show "$CASE" >"$WORK/show.out" 2>&1
check "case show prints the case's region" grep -q "^  region  *central$" "$WORK/show.out"
check "case show marks a conflict" grep -q "CONFLICT [0-9]*/[a-z_]*" "$WORK/show.out"
"$FS" "${SUP[@]}" case history "$CASE" --json >"$WORK/history.json" 2>&1
check "case history: positions ascending, from the case's creation" \
  jtrue "$WORK/history.json" \
  "len(d) > 1 and all(a['position'] < b['position'] for a, b in zip(d, d[1:])) and d[0]['position'] == $(j "$WORK/show.json" 'd["created_position"]')"
check "case history: fields written with their outcomes" \
  jtrue "$WORK/history.json" 'any(f["outcome"] in ("conflict", "superseded") for e in d for f in e["fields"])'
"$FS" "${SUP[@]}" case history "$CASE" >"$WORK/history.out" 2>&1
check "case history prints its table" grep -q "^POSITION  *TIME (UTC)  *KIND" "$WORK/history.out"

# --- refusals: another region's supervisor, an unknown case ---
"$FS" "${EAST[@]}" case show "$CASE" >"$WORK/east_show.out" 2>&1
status=$?
check "case of another region: one line" refused "$WORK/east_show.out" $status
check "case of another region: OUT_OF_SCOPE" grep -q "OUT_OF_SCOPE" "$WORK/east_show.out"
"$FS" "${EAST[@]}" case close "$CASE" --reason "not mine" >"$WORK/east_close.out" 2>&1
status=$?
check "closing a case of another region: OUT_OF_SCOPE" \
  bash -c "[[ $status -ne 0 ]] && grep -q OUT_OF_SCOPE '$WORK/east_close.out'"
"$FS" "${SUP[@]}" case list --region atlantis >"$WORK/atlantis.out" 2>&1
status=$?
check "case list of an unknown region: one line" refused "$WORK/atlantis.out" $status
check "case list of an unknown region: lists the known ones" \
  grep -q "central.*northern.*eastern.*western" "$WORK/atlantis.out"

# --- a decision on a conflict that changed after the supervisor looked ---
"$FS" "${SUP[@]}" conflict list --region central --json >"$WORK/conflicts0.json" 2>&1
STALE="$(j "$WORK/conflicts0.json" '[c["id"] for c in d if c["field"] and not c["current"]["withheld"]][0]')"
check "a field conflict to change" test -n "$STALE"
"$FS" "${SUP[@]}" conflict show "$STALE" --json >"$WORK/stale_show.json" 2>&1
check "conflict show: the current value and every losing value, numbered from 1" \
  jtrue "$WORK/stale_show.json" \
  "d['id'] == '$STALE' and d['current']['field_value'] is not None and [v['number'] for v in d['losing']] == list(range(1, d['losing_count'] + 1)) and d['losing_count'] >= 1"
check "conflict show: each losing write by officer and tablet" \
  jtrue "$WORK/stale_show.json" 'all(w["officer"] and w["device_label"] and w["time"] for v in d["losing"] for w in v["writes"])'
check "conflict show: the commands to resolve it" \
  jtrue "$WORK/stale_show.json" \
  "any(c.endswith('conflict resolve $STALE --take 1') for c in d['resolve_commands'])"
"$FS" "${SUP[@]}" conflict show "$STALE" >"$WORK/stale_show.out" 2>&1
check "conflict show prints the current value and value 1" \
  bash -c "grep -q '^current ' '$WORK/stale_show.out' && grep -q '^1 ' '$WORK/stale_show.out'"
check "conflict show prints the exact resolve commands" \
  grep -q "^  fieldsync --server $ADDR --cert .* conflict resolve $STALE --keep-current$" \
  "$WORK/stale_show.out"
SEEN="$(sed -n "s|^$ADDR $STALE \([0-9]*\)$|\1|p" "$XDG_STATE_HOME/fieldsync/seen-conflicts")"
check "the version shown is remembered" same "$SEEN" "$(j "$WORK/stale_show.json" 'd["version"]')"
check "the remembered versions are the user's alone (0600)" \
  test "$(stat -c %a "$XDG_STATE_HOME/fieldsync/seen-conflicts")" = 600
STALE_VALUE="$(j "$WORK/stale_show.json" 'd["current"]["value"]')"
not_in() { [[ -n "$1" ]] && ! grep -q -F -- "$1" "$2"; }  # not_in TEXT FILE
check "no value is remembered" not_in "$STALE_VALUE" "$XDG_STATE_HOME/fieldsync/seen-conflicts"
# A tablet of the case's officer that comes back from the field writes the
# conflicting field again (the value it holds, without having seen any).
STALE_CASE="$(j "$WORK/stale_show.json" 'd["case_id"]')"
STALE_OFFICER="$(j "$WORK/cases.json" "[c['officer'] for c in d if c['id'] == '$STALE_CASE'][0]")"
"$FS" "${ADMIN[@]}" device enrol-code --officer "$STALE_OFFICER" --region central \
  >"$WORK/code_tablet.out" 2>&1
CODE="$(sed -n 's/^enrolment code: *//p' "$WORK/code_tablet.out")"
/usr/bin/python3 "$SOURCE/tests/tools/tablet_write.py" "$SOURCE" "$WORK/gen" "$ADDR" \
  "$WORK/d/admin/ca.crt" "$CODE" "$STALE_CASE" "$(j "$WORK/stale_show.json" 'd["record_id"]')" \
  "$(j "$WORK/stale_show.json" 'd["record_type"]')" "$(j "$WORK/stale_show.json" 'd["field"]')" \
  "$(j "$WORK/stale_show.json" 'd["current"]["field_value"]')" >"$WORK/tablet.json" 2>"$WORK/tablet.err"
check "a tablet writes the conflict's field" \
  jtrue "$WORK/tablet.json" 'd["outcome"] != "CHANGE_OUTCOME_REJECTED" and d["log_position"] > 0'
"$FS" "${SUP[@]}" conflict resolve "$STALE" --keep-current >"$WORK/stale.out" 2>&1
status=$?
check "stale decision: one line" refused "$WORK/stale.out" $status
check "stale decision: changed since you looked" \
  grep -q "conflict $STALE changed since you looked: show it again (fieldsync conflict show $STALE)" \
  "$WORK/stale.out"
"$FS" "${SUP[@]}" conflict show "$STALE" --json >"$WORK/stale_show2.json" 2>&1
check "the conflict's version is the tablet's write" \
  same "$(j "$WORK/stale_show2.json" 'd["version"]')" "$(j "$WORK/tablet.json" 'd["log_position"]')"
"$FS" "${SUP[@]}" conflict resolve "$STALE" --keep-current >"$WORK/stale2.out" 2>&1
check "shown again, the decision is taken" grep -q "^resolved conflict $STALE: kept the current value" \
  "$WORK/stale2.out"
"$FS" "${SUP[@]}" conflict resolve "$STALE" --keep-current >"$WORK/stale3.out" 2>&1
status=$?
check "a resolved conflict: refused" test $status -eq 1
check "a resolved conflict: says so" grep -q "conflict $STALE is already resolved" "$WORK/stale3.out"
"$FS" "${SUP[@]}" conflict show "$STALE" >"$WORK/closed_show.out" 2>&1
check "a resolved conflict shows as closed" grep -q "closed at log position" "$WORK/closed_show.out"
check "a closed conflict offers no decision" not_in "conflict resolve" "$WORK/closed_show.out"

# --- a bad value is refused before anything is sent ---
"$FS" "${SUP[@]}" conflict list --json >"$WORK/conflicts1.json" 2>&1
ENUM="$(j "$WORK/conflicts1.json" '[c["id"] for c in d if c["current"]["field_value"] and "enum_value" in c["current"]["field_value"]][0]')"
check "an enum field conflict" test -n "$ENUM"
"$FS" "${SUP[@]}" conflict resolve "$ENUM" --value "not-a-listed-value" >"$WORK/bad_value.out" 2>&1
status=$?
check "a bad --value: one line, exit 2" \
  bash -c "[[ $status -eq 2 ]] && [[ \$(wc -l <'$WORK/bad_value.out') -eq 1 ]]"
check "a bad --value: names the allowed values" grep -q "must be one of: " "$WORK/bad_value.out"
"$FS" "${SUP[@]}" conflict resolve "$ENUM" --take 1 --keep-current >"$WORK/two.out" 2>&1
check "two decisions at once: exit 2" test $? -eq 2

# --- to zero open conflicts, with the CLI alone ---
kept=0; taken=0; valued=0; bad=0
for round in 1 2 3; do
  "$FS" "${SUP[@]}" conflict list --json >"$WORK/round.json" 2>&1 || break
  n="$(j "$WORK/round.json" 'len(d)')"
  [[ "$n" == "0" ]] && break
  for ((i = 0; i < n; i++)); do
    id="$(j "$WORK/round.json" "d[$i]['id']")"
    value="$(j "$WORK/round.json" "d[$i]['losing'][0]['value']")"
    if [[ "$(j "$WORK/round.json" "d[$i]['record_level']")" == "True" ]] || ((i % 3 == 0)); then
      choice=(--keep-current); what="kept"
    elif ((i % 3 == 1)); then
      choice=(--take 1); what="took value 1"
    elif [[ "$value" != "None" ]]; then
      choice=(--value "$value"); what="wrote the new value"
    else
      choice=(--take 1); what="took value 1"
    fi
    "$FS" "${SUP[@]}" conflict resolve "$id" "${choice[@]}" >"$WORK/resolve.out" 2>&1
    if grep -q "^resolved conflict $id: $what" "$WORK/resolve.out"; then
      case "${choice[0]}" in
        --keep-current) kept=$((kept + 1)) ;; --take) taken=$((taken + 1)) ;; *) valued=$((valued + 1)) ;;
      esac
    else
      bad=$((bad + 1)); echo "  resolve $id ${choice[*]}: $(cat "$WORK/resolve.out")"
    fi
  done
done
check "every decision taken" test "$bad" -eq 0
check "decisions of every kind (kept $kept, taken $taken, new value $valued)" \
  test "$kept" -gt 0 -a "$taken" -gt 0 -a "$valued" -gt 0
"$FS" "${SUP[@]}" conflict list --json >"$WORK/conflicts_end.json" 2>&1
check "zero open conflicts" test "$(tr -d '[:space:]' <"$WORK/conflicts_end.json")" = "[]"
"$FS" "${SUP[@]}" case list --has-conflicts --json >"$WORK/cases_end.json" 2>&1
check "no case has a conflict left" jtrue "$WORK/cases_end.json" 'd == []'
"$FS" "${SUP[@]}" case history "$CASE" --json >"$WORK/history2.json" 2>&1
check "case history: the supervisor's resolutions" \
  jtrue "$WORK/history2.json" 'any(e["kind"] == "resolve" and e["writer"] == "staff:sam" and e["resolves"] for e in d)'

# --- assign, transfer, close, reopen ---
"$FS" "${SUP[@]}" case assign "$CASE" --officer bako >"$WORK/assign.out" 2>&1
check "case assign" grep -q "^case $CASE assigned to officer bako" "$WORK/assign.out"
"$FS" "${SUP[@]}" case show "$CASE" --json >"$WORK/show2.json" 2>&1
check "the case is bako's" jtrue "$WORK/show2.json" 'd["officer"] == "bako"'
"$FS" "${SUP[@]}" case assign "$CASE" --officer bako >"$WORK/assign2.out" 2>&1
status=$?
check "assigning to its officer again: one line" refused "$WORK/assign2.out" $status
check "assigning to its officer again: the server's message names the officer" \
  grep -q "bako" "$WORK/assign2.out"
"$FS" "${SUP[@]}" case assign "$CASE" --officer nobody >"$WORK/assign_unknown.out" 2>&1
status=$?
check "an unknown officer: one line" refused "$WORK/assign_unknown.out" $status
check "an unknown officer: lists the region's officers" \
  bash -c "grep -q amara '$WORK/assign_unknown.out' && grep -q bako '$WORK/assign_unknown.out'"
"$FS" "${SUP[@]}" case assign "$CASE" --officer dede >"$WORK/assign_revoked.out" 2>&1
status=$?
check "a revoked officer: one line" refused "$WORK/assign_revoked.out" $status
check "a revoked officer: lists the active ones" grep -q amara "$WORK/assign_revoked.out"
"$FS" "${SUP[@]}" case transfer "$CASE" --region northern --officer chidi \
  --confirm 00000000-0000-4000-8000-000000000001 >"$WORK/transfer_bad.out" 2>&1
status=$?
check "transfer with another --confirm: exit 2, one line" \
  bash -c "[[ $status -eq 2 ]] && [[ \$(wc -l <'$WORK/transfer_bad.out') -eq 1 ]]"
"$FS" "${SUP[@]}" case show "$CASE" --json >"$WORK/show3.json" 2>&1
check "nothing was transferred" jtrue "$WORK/show3.json" 'd["region"] == "central"'
"$FS" "${SUP[@]}" case transfer "$CASE" --region atlantis --confirm "$CASE" \
  >"$WORK/transfer_unknown.out" 2>&1
status=$?
check "transfer to an unknown region: one line" refused "$WORK/transfer_unknown.out" $status
check "transfer to an unknown region: lists the known ones" \
  grep -q "central.*northern.*eastern.*western" "$WORK/transfer_unknown.out"
"$FS" "${SUP[@]}" case transfer "$CASE" --region northern --officer chidi --district northern_2 \
  --confirm "$CASE" >"$WORK/transfer.out" 2>&1
check "case transfer" grep -q "^case $CASE transferred to region northern" "$WORK/transfer.out"
"$FS" "${SUP[@]}" case show "$CASE" --json >"$WORK/show4.json" 2>&1
check "the case is in northern_2, chidi's" \
  jtrue "$WORK/show4.json" \
  'd["region"] == "northern" and d["district"] == "northern_2" and d["officer"] == "chidi"'
"$FS" "${SUP[@]}" case close "$CASE" >"$WORK/close_noreason.out" 2>&1
check "case close without --reason: exit 2" test $? -eq 2
"$FS" "${SUP[@]}" case close "$CASE" --reason "reunified" >"$WORK/close_badreason.out" 2>&1
status=$?
check "a reason the schema does not list: one line" refused "$WORK/close_badreason.out" $status
check "a reason the schema does not list: names the allowed ones" \
  grep -q "goals_achieved" "$WORK/close_badreason.out"
"$FS" "${SUP[@]}" case close "$CASE" --reason goals_achieved >"$WORK/close.out" 2>&1
check "case close" grep -q "^case $CASE closed, reason goals_achieved" "$WORK/close.out"
"$FS" "${SUP[@]}" case list --status closed --json >"$WORK/cases_closed.json" 2>&1
check "case list --status closed: the case, with its reason" \
  jtrue "$WORK/cases_closed.json" "[(c['id'], c['closure_reason']) for c in d] == [('$CASE', 'goals_achieved')]"
"$FS" "${SUP[@]}" case close "$CASE" --reason duplicate >"$WORK/close2.out" 2>&1
status=$?
check "closing a closed case: one line" refused "$WORK/close2.out" $status
check "closing a closed case: exit 1" test $status -eq 1
check "closing a closed case: already closed" grep -q "already closed" "$WORK/close2.out"
"$FS" "${SUP[@]}" case reopen "$CASE" >"$WORK/reopen.out" 2>&1
check "case reopen" grep -q "^case $CASE reopened" "$WORK/reopen.out"
"$FS" "${SUP[@]}" case show "$CASE" --json >"$WORK/show5.json" 2>&1
check "the case is open, its reason cleared" \
  jtrue "$WORK/show5.json" 'd["status"] == "open" and d["closure_reason"] == ""'
"$FS" "${SUP[@]}" case reopen "$CASE" >"$WORK/reopen2.out" 2>&1
status=$?
check "reopening an open case: one line" refused "$WORK/reopen2.out" $status
"$FS" "${SUP[@]}" case history "$CASE" --json >"$WORK/history3.json" 2>&1
check "case history: assign, transfer, close, reopen by staff:sam, in order" \
  jtrue "$WORK/history3.json" \
  '[e["kind"] for e in d if e["writer"] == "staff:sam" and e["kind"] != "resolve"] == ["assign", "transfer", "close", "reopen"]'

# --- revoking an officer revokes its tablets ---
"$FS" "${ADMIN[@]}" officer revoke --id "$RUN-officer-2" >"$WORK/revoke.out" 2>&1
check "officer revoke lists its tablets" \
  test "$(grep -c '^  fieldsync://device/' "$WORK/revoke.out")" -eq 3
"$FS" "${ADMIN[@]}" staff list --include-revoked --include-simulated >"$WORK/staff2.out" 2>&1
check "its tablets are revoked" \
  test "$(grep -c "revoked .*$RUN-officer-2 " "$WORK/staff2.out")" -eq 3

kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
SERVER_PID=""

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
