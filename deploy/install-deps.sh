#!/usr/bin/env bash
# Installs the Debian 12 packages Siper builds with; with --test also what only the
# tests use (a headless browser for the HTML report, systemd-journal-remote). Idempotent.
# Usage: deploy/install-deps.sh [--test]
set -euo pipefail
pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates openssl
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  librocksdb-dev libssl-dev libhyperscan-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev libbenchmark-dev libyaml-cpp-dev nlohmann-json3-dev
  libcli11-dev libre2-dev libabsl-dev zlib1g-dev libsystemd-dev libcpp-httplib-dev
  libjemalloc-dev
  libnghttp2-dev
)
if [ "${1:-}" = "--test" ]; then
  # chromium: the HTML report test; systemd-journal-remote: journal files for
  # the journald collector's tests, without a running journald.
  pkgs+=(chromium systemd-journal-remote)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
