#!/usr/bin/env bash
# deploy/install.sh into a temporary root, as an image build or a test does:
#   install_test.sh BUILD_DIR SOURCE_DIR
# The files, owners and modes it makes, the unit it installs, the
# deployment it creates (the master key outside the data directory), that
# a second run changes nothing but puts modes right, its refusals, and a
# fieldsyncd serving the installed deployment. The user is created in the
# staged root's own /etc/passwd when the test runs as root (skipped, saying
# so, otherwise).
set -uo pipefail

BUILD="$1"
SRC="$2"
INSTALL="$SRC/deploy/install.sh"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fieldsync-install-XXXXXX")"
R="$WORK/root"
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
mode_is() { [[ "$(stat -c %a "$1")" == "$2" ]]; }
owner_is() { [[ "$(stat -c %u:%g "$1")" == "$2" ]]; }
tree() { find "$1" -type f -exec sha256sum {} + | sort; }

IS_ROOT=0
[[ "$(id -u)" -eq 0 ]] && IS_ROOT=1

# --- usage and refusals ---
"$INSTALL" --help >"$WORK/help.out" 2>&1
check "--help names --root and --dry-run" grep -q -- "--root DIR" "$WORK/help.out"
"$INSTALL" --bogus >"$WORK/bogus.out" 2>&1
status=$?
check "an unknown option is refused in one line" \
  test $status -ne 0 -a "$(wc -l <"$WORK/bogus.out")" -eq 1
"$INSTALL" --build-dir "$WORK/nothing" --root "$R" >"$WORK/nobuild.out" 2>&1
status=$?
check "a missing build is refused, saying how to build" \
  bash -c "test $status -ne 0 && grep -q 'build first' '$WORK/nobuild.out'"
check "a refused install made nothing" test ! -e "$R"

# --- dry run ---
mkdir -p "$R"
"$INSTALL" --build-dir "$BUILD" --root "$R" --dry-run >"$WORK/dry.out" 2>&1
check "--dry-run succeeds" test $? -eq 0
check "--dry-run prints the steps" grep -q "^+ install -m 0755 .*/usr/local/bin/fieldsyncd" "$WORK/dry.out"
check "--dry-run changes nothing" test -z "$(ls -A "$R")"

# --- a staged root with its own user database (an image being built) ---
mkdir -p "$R/etc"
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
printf 'root:*::\n' >"$R/etc/gshadow"
chmod 600 "$R/etc/shadow" "$R/etc/gshadow"

"$INSTALL" --build-dir "$BUILD" --root "$R" --listen 0.0.0.0:7443 \
  --host fieldsync.example.org >"$WORK/install.out" 2>&1
status=$?
check "install succeeds" test $status -eq 0
[[ $status -eq 0 ]] || cat "$WORK/install.out"

OWNER=""
if [[ $IS_ROOT -eq 1 ]]; then
  check "the fieldsync group is created" grep -q '^fieldsync:' "$R/etc/group"
  check "the fieldsync system user is created, without a login shell" \
    grep -q '^fieldsync:x:[0-9]*:[0-9]*:fieldsync server:/var/lib/fieldsync:/usr/sbin/nologin$' \
    "$R/etc/passwd"
  uid="$(awk -F: '$1 == "fieldsync" { print $3 }' "$R/etc/passwd")"
  gid="$(awk -F: '$1 == "fieldsync" { print $3 }' "$R/etc/group")"
  check "the user is a system user (uid below 1000)" test "${uid:-1000}" -lt 1000
  OWNER="$uid:$gid"
else
  echo "skip user creation and owners: not running as root"
fi

# Binaries and unit.
check "fieldsyncd installed 0755" mode_is "$R/usr/local/bin/fieldsyncd" 755
check "fieldsync installed 0755" mode_is "$R/usr/local/bin/fieldsync" 755
check "the installed fieldsyncd is the build's" cmp -s "$BUILD/server/fieldsyncd" "$R/usr/local/bin/fieldsyncd"
UNIT="$R/etc/systemd/system/fieldsyncd.service"
check "unit installed 0644" mode_is "$UNIT" 644
check "unit runs as User=fieldsync" grep -qx "User=fieldsync" "$UNIT"
check "unit runs as Group=fieldsync" grep -qx "Group=fieldsync" "$UNIT"
check "unit starts the installed binary on the data directory" \
  grep -qx "ExecStart=/usr/local/bin/fieldsyncd --data-dir /var/lib/fieldsync" "$UNIT"
check "unit may write the data, backup and key directories" \
  grep -qx "ReadWritePaths=/var/lib/fieldsync -/var/backups/fieldsync -/etc/fieldsync" "$UNIT"
check "unit creates private files" grep -qx "UMask=0077" "$UNIT"

# Directories.
check "data directory 0700" mode_is "$R/var/lib/fieldsync" 700
check "/etc/fieldsync 0750" mode_is "$R/etc/fieldsync" 750
check "backup directory 0700" mode_is "$R/var/backups/fieldsync" 700
if [[ -n "$OWNER" ]]; then
  for p in var/lib/fieldsync etc/fieldsync var/backups/fieldsync etc/fieldsync/master.key \
           var/lib/fieldsync/db var/lib/fieldsync/admin/admin.key var/lib/fieldsync/tls/server.key; do
    check "$p owned by fieldsync" owner_is "$R/$p" "$OWNER"
  done
fi

# The deployment.
D="$R/var/lib/fieldsync"
check "a deployment is created" test -f "$D/DEPLOYMENT"
check "the master key is in /etc/fieldsync, 0600" mode_is "$R/etc/fieldsync/master.key" 600
check "no master key in the data directory" test -z "$(find "$D" -name 'master.key*')"
check "the config names the key at its final place" \
  grep -qx 'master_key_file: "/etc/fieldsync/master.key"' "$D/fieldsyncd.conf"
check "the config listens where asked" grep -qx 'listen: "0.0.0.0:7443"' "$D/fieldsyncd.conf"
check "no staging directory is left" test -z "$(find "$R" -name '*.init-*')"
check "the server key is 0600" mode_is "$D/tls/server.key" 600
check "install says the key is never in a backup" grep -q "never in a backup" "$WORK/install.out"

# --- a second run: nothing changes, modes are put right ---
before="$(tree "$D"; tree "$R/etc/fieldsync")"
chmod 0777 "$D"
chmod 0755 "$R/var/backups/fieldsync"
"$INSTALL" --build-dir "$BUILD" --root "$R" >"$WORK/again.out" 2>&1
check "a second install succeeds" test $? -eq 0
check "a second install leaves the deployment as it is" grep -q "already holds a deployment" "$WORK/again.out"
check "a second install changes no deployment file or key" test "$before" == "$(tree "$D"; tree "$R/etc/fieldsync")"
check "a second install puts the data directory back to 0700" mode_is "$D" 700
check "a second install puts the backup directory back to 0700" mode_is "$R/var/backups/fieldsync" 700
if [[ $IS_ROOT -eq 1 ]]; then
  check "a second install makes no second user" test "$(grep -c '^fieldsync:' "$R/etc/passwd")" -eq 1
fi

# --- --prefix ---
R2="$WORK/root2"
mkdir -p "$R2"
"$INSTALL" --build-dir "$BUILD" --root "$R2" --prefix /opt/fieldsync --no-init >"$WORK/prefix.out" 2>&1
check "--prefix install succeeds" test $? -eq 0
check "--prefix puts the binaries under it" test -x "$R2/opt/fieldsync/bin/fieldsyncd"
check "--prefix points the unit at them" \
  grep -qx "ExecStart=/opt/fieldsync/bin/fieldsyncd --data-dir /var/lib/fieldsync" \
  "$R2/etc/systemd/system/fieldsyncd.service"
check "--no-init makes no deployment" test ! -e "$R2/var/lib/fieldsync/DEPLOYMENT"
check "a root without its own /etc/passwd gets no user, saying so" grep -q "no user made" "$WORK/prefix.out"

# --- a data directory holding something else is refused ---
R3="$WORK/root3"
mkdir -p "$R3/var/lib/fieldsync"
echo "someone's notes" >"$R3/var/lib/fieldsync/notes.txt"
"$INSTALL" --build-dir "$BUILD" --root "$R3" >"$WORK/foreign.out" 2>&1
status=$?
check "a data directory with other files is refused" test $status -ne 0
check "the refusal says what to do" grep -q "holds files but no deployment" "$WORK/foreign.out"
check "the other files are untouched" test "$(cat "$R3/var/lib/fieldsync/notes.txt")" == "someone's notes"

# --- the installed deployment serves (the key read from its staged place) ---
sed "s|^master_key_file: .*|master_key_file: \"$R/etc/fieldsync/master.key\"|" \
  "$D/fieldsyncd.conf" >"$WORK/staged.conf"
"$R/usr/local/bin/fieldsyncd" --data-dir "$D" --config "$WORK/staged.conf" \
  --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 1 100); do
  ADDR="$(sed -n 's/.* on \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$WORK/server.out")"
  [[ -n "$ADDR" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
check "fieldsyncd serves the installed deployment" test -n "$ADDR"
[[ -n "$ADDR" ]] || cat "$WORK/server.log"
"$R/usr/local/bin/fieldsync" --data-dir "$D" --server "$ADDR" whoami >"$WORK/whoami.out" 2>&1
check "the administrator made by install is recognised" grep -q "role:      administrator" "$WORK/whoami.out"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID"
check "fieldsyncd stops cleanly on SIGTERM" test $? -eq 0
SERVER_PID=""

if command -v shellcheck >/dev/null 2>&1; then
  check "install.sh passes shellcheck" shellcheck "$INSTALL"
fi

echo "install_test: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
