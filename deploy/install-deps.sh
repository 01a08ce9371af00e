#!/usr/bin/env bash
# Installs every build, test and benchmark dependency of fieldsync from
# Debian 12 packages. Idempotent: packages already present are left alone.
# Run as root on a fresh Debian 12 (bookworm) machine.
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: run as root (apt-get needs it): sudo $0" >&2
  exit 1
fi

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev librocksdb-dev libspdlog-dev libssl-dev libicu-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev
  # fieldsyncd's allocator (server/CMakeLists.txt).
  libjemalloc-dev
  libglpk-dev coinor-libclp-dev
  # The CI's clang builds (.ci/run): clang 14, its sanitizer runtimes and
  # libFuzzer (libclang-rt-14-dev), llvm-symbolizer for their reports.
  clang libclang-rt-14-dev llvm-14
  # The linker every build uses when present (CMakeLists.txt FIELDSYNC_LLD).
  lld
  openssl
  python3 python3-grpcio python3-protobuf python3-cryptography python3-jsonschema
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
