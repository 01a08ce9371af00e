#!/usr/bin/env bash
# Installs fieldsync as a systemd service, from a build directory:
#   - the system group and user `fieldsync` (if absent), which the unit runs as;
#   - /var/lib/fieldsync           the data directory, 0700, owned by fieldsync;
#   - /etc/fieldsync               0750, owned by fieldsync: the master key
#                                  (/etc/fieldsync/master.key, 0600), kept out
#                                  of the data directory and of its backups;
#   - /var/backups/fieldsync       backups (`fieldsync backup create`), 0700;
#   - PREFIX/bin/fieldsyncd, PREFIX/bin/fieldsync   (PREFIX: /usr/local);
#   - /etc/systemd/system/fieldsyncd.service        (ExecStart under PREFIX);
#   - a deployment: `fieldsync init` run as fieldsync, unless
#     /var/lib/fieldsync already holds one.
# Idempotent: run it again to upgrade the binaries and the unit; existing
# users, deployments and keys are never changed, only the top directories'
# owners and modes are put right.
#
#   sudo deploy/install.sh --build-dir build [--listen 0.0.0.0:7443] [--host NAME]...
#   deploy/install.sh --build-dir build --root /tmp/stage    (staged, no root needed)
#
# With --root DIR everything goes under DIR (as DESTDIR does): the user is
# created only in DIR/etc/passwd when that exists and the caller is root (an
# image being built); the deployment is made as the calling user and handed
# to the user's ids when they exist, and its config names the key at its
# final place, /etc/fieldsync/master.key.
set -euo pipefail

usage() {
  cat <<'USAGE'
usage: deploy/install.sh --build-dir DIR [--root DIR] [--prefix DIR] [--listen HOST:PORT]
                         [--host NAME]... [--no-init] [--dry-run]

  --build-dir DIR     the cmake build directory holding server/fieldsyncd and
                      tools/fieldsync (default: ./build next to deploy/)
  --root DIR          install under DIR instead of / (a staged install: no user
                      is created, nothing outside DIR is touched)
  --prefix DIR        where bin/ goes (default /usr/local)
  --listen HOST:PORT  the address the new deployment serves on (default
                      0.0.0.0:7443: tablets reach the server over the network)
  --host NAME         a name or address tablets use for the server; repeat it
                      (goes into the server certificate)
  --no-init           do not create a deployment
  --dry-run           print each step, change nothing
USAGE
}

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$SRC/build"
ROOT="/"
PREFIX="/usr/local"
LISTEN="0.0.0.0:7443"
HOSTS=()
DO_INIT=1
DRY_RUN=0
USER_NAME="fieldsync"
GROUP_NAME="fieldsync"

die() { echo "install: $*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) [[ $# -ge 2 ]] || die "--build-dir needs a directory"; BUILD="$2"; shift 2 ;;
    --root) [[ $# -ge 2 ]] || die "--root needs a directory"; ROOT="$2"; shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
    --listen) [[ $# -ge 2 ]] || die "--listen needs HOST:PORT"; LISTEN="$2"; shift 2 ;;
    --host) [[ $# -ge 2 ]] || die "--host needs a name"; HOSTS+=("$2"); shift 2 ;;
    --no-init) DO_INIT=0; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument \"$1\"; see deploy/install.sh --help" ;;
  esac
done

[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path, not $PREFIX"
ROOT="$(realpath -m "$ROOT")"
STAGED=0
[[ "$ROOT" != "/" ]] && STAGED=1
R="${ROOT%/}"  # "" for the real root

DATA_DIR=/var/lib/fieldsync
ETC_DIR=/etc/fieldsync
MASTER_KEY=$ETC_DIR/master.key
BACKUP_DIR=/var/backups/fieldsync
UNIT=/etc/systemd/system/fieldsyncd.service
BIN_DIR="$PREFIX/bin"

FSD_BUILT="$BUILD/server/fieldsyncd"
FS_BUILT="$BUILD/tools/fieldsync"
for b in "$FSD_BUILT" "$FS_BUILT"; do
  [[ -x "$b" ]] || die "$b is missing: build first (cmake --build $BUILD --target fieldsyncd fieldsync) or give --build-dir"
done

IS_ROOT=0
[[ "$(id -u)" -eq 0 ]] && IS_ROOT=1
if [[ $STAGED -eq 0 && $IS_ROOT -eq 0 && $DRY_RUN -eq 0 ]]; then
  die "installing into / needs root: sudo $0 $*  (or --root DIR for a staged install)"
fi

run() {  # run CMD...: prints it; runs it unless --dry-run
  echo "+ $*"
  [[ $DRY_RUN -eq 1 ]] || "$@"
}

# The user and group, looked up in the target's own files for a staged
# root (the host's may differ), in the system's otherwise.
lookup() {  # lookup passwd|group NAME: prints the entry's id, or nothing
  if [[ $STAGED -eq 1 ]]; then
    [[ -f "$R/etc/$1" ]] && awk -F: -v n="$2" '$1 == n { print $3 }' "$R/etc/$1"
  else
    getent "$1" "$2" | cut -d: -f3
  fi
}
user_exists() { [[ -n "$(lookup passwd "$USER_NAME")" ]]; }
group_exists() { [[ -n "$(lookup group "$GROUP_NAME")" ]]; }

# 1. The service user and group: on the system, or in a staged root that
# has its own /etc/passwd (an image being built), as root.
ROOT_ARGS=()
[[ $STAGED -eq 1 ]] && ROOT_ARGS=(--root "$ROOT")
if [[ $STAGED -eq 0 || ( -f "$R/etc/passwd" && $IS_ROOT -eq 1 ) ]]; then
  if group_exists; then
    echo "install: group $GROUP_NAME exists"
  else
    run groupadd "${ROOT_ARGS[@]}" --system "$GROUP_NAME"
  fi
  if user_exists; then
    echo "install: user $USER_NAME exists"
  else
    nologin=/usr/sbin/nologin
    [[ -x "$R$nologin" || $STAGED -eq 1 ]] || nologin=/bin/false
    run useradd "${ROOT_ARGS[@]}" --system --gid "$GROUP_NAME" --home-dir "$DATA_DIR" \
      --no-create-home --shell "$nologin" --comment "fieldsync server" "$USER_NAME"
  fi
else
  echo "install: staged install into $ROOT without its own /etc/passwd (or not as root): no user made; create the system user $USER_NAME on the target (useradd --system $USER_NAME)"
fi

# Owners are set when we can: as root, once the user exists. Numeric ids,
# so that a staged root's own ids are used.
OWNER=""
if [[ $IS_ROOT -eq 1 ]] && user_exists && group_exists; then
  OWNER="$(lookup passwd "$USER_NAME"):$(lookup group "$GROUP_NAME")"
elif [[ $IS_ROOT -eq 1 && $DRY_RUN -eq 1 ]]; then
  OWNER="$USER_NAME:$GROUP_NAME"
fi

# make_dir PATH MODE: creates PATH under the root (parents 0755), then puts
# its mode and owner right (also on a re-run).
make_dir() {
  local path="$R$1" mode="$2"
  [[ -d "$(dirname "$path")" ]] || run install -d -m 0755 "$(dirname "$path")"
  [[ -d "$path" ]] || run mkdir "$path"
  run chmod "$mode" "$path"
  if [[ -n "$OWNER" ]]; then run chown "$OWNER" "$path"; fi
}

# 2. Directories.
make_dir "$DATA_DIR" 0700
make_dir "$ETC_DIR" 0750
make_dir "$BACKUP_DIR" 0700

# 3. Binaries.
run install -d -m 0755 "$R$BIN_DIR"
run install -m 0755 "$FSD_BUILT" "$R$BIN_DIR/fieldsyncd"
run install -m 0755 "$FS_BUILT" "$R$BIN_DIR/fieldsync"

# 4. The unit, with ExecStart under PREFIX.
run install -d -m 0755 "$R$(dirname "$UNIT")"
if [[ $DRY_RUN -eq 1 ]]; then
  echo "+ install -m 0644 deploy/fieldsyncd.service $R$UNIT  (ExecStart=$BIN_DIR/fieldsyncd)"
else
  echo "+ install -m 0644 deploy/fieldsyncd.service $R$UNIT  (ExecStart=$BIN_DIR/fieldsyncd)"
  tmp_unit="$(mktemp)"
  sed "s|^ExecStart=/usr/local/bin/fieldsyncd |ExecStart=$BIN_DIR/fieldsyncd |" \
    "$SRC/deploy/fieldsyncd.service" >"$tmp_unit"
  install -m 0644 "$tmp_unit" "$R$UNIT"
  rm -f "$tmp_unit"
fi

# 5. The deployment, made by the service user so that it owns every file.
# (A staged root's user is not the host's: there it is made as the caller
# and handed to the user's ids afterwards.)
as_service_user() {
  if [[ $STAGED -eq 0 ]]; then
    if command -v runuser >/dev/null 2>&1; then
      run runuser -u "$USER_NAME" -- "$@"
    else
      run setpriv --reuid="$USER_NAME" --regid="$GROUP_NAME" --init-groups -- "$@"
    fi
  else
    run "$@"
  fi
}

if [[ $DO_INIT -eq 0 ]]; then
  echo "install: --no-init: no deployment made"
elif [[ -f "$R$DATA_DIR/DEPLOYMENT" ]]; then
  echo "install: $DATA_DIR already holds a deployment; left as it is"
elif [[ -d "$R$DATA_DIR" && -n "$(ls -A "$R$DATA_DIR" 2>/dev/null)" ]]; then
  die "$R$DATA_DIR holds files but no deployment (no DEPLOYMENT file): move them away, or restore a backup there with \`fieldsync backup restore\`, then run this again"
else
  init_args=(init --data-dir "$R$DATA_DIR" --master-key-file "$R$MASTER_KEY" --listen "$LISTEN")
  for h in "${HOSTS[@]}"; do init_args+=(--host "$h"); done
  (cd / && as_service_user "$R$BIN_DIR/fieldsync" "${init_args[@]}")
  if [[ $STAGED -eq 1 ]]; then
    # The config names the key where the target will have it.
    run sed -i "s|^master_key_file: \"$R$MASTER_KEY\"|master_key_file: \"$MASTER_KEY\"|" \
      "$R$DATA_DIR/fieldsyncd.conf"
    if [[ -n "$OWNER" ]]; then run chown -R "$OWNER" "$R$DATA_DIR" "$R$MASTER_KEY"; fi
  fi
fi

# 6. systemd learns of the unit (real installs on a running systemd only).
if [[ $STAGED -eq 0 && -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
  run systemctl daemon-reload
fi

cat <<MSG
install: done$([[ $DRY_RUN -eq 1 ]] && echo " (dry run: nothing was changed)")
  binaries:        $R$BIN_DIR/fieldsyncd, $R$BIN_DIR/fieldsync
  unit:            $R$UNIT
  data directory:  $R$DATA_DIR (0700, $USER_NAME)
  master key:      $R$MASTER_KEY (0600, $USER_NAME; never in a backup: keep a copy offline)
  backups:         $R$BACKUP_DIR
Start it:  systemctl enable --now fieldsyncd
Then:      sudo -u $USER_NAME $BIN_DIR/fieldsync --data-dir $DATA_DIR whoami
MSG
