#!/usr/bin/env bash
# Installs the Debian packages fieldsync needs, builds everything with
# warnings as errors, and runs every test with ctest.
#
#   FIELDSYNC_BUILD_DIR=build-asan FIELDSYNC_CMAKE_ARGS=-DFIELDSYNC_SANITIZE=ON deploy/test.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${FIELDSYNC_BUILD_DIR:-$ROOT/build}"

"$ROOT/deploy/install-deps.sh"
# shellcheck disable=SC2086
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFIELDSYNC_WERROR=ON ${FIELDSYNC_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" --timeout 900
