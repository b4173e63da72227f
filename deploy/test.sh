#!/usr/bin/env bash
# Installs what is needed, builds everything and runs all tests (unit and end to end).
# Usage: deploy/test.sh [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh --test
build=build/test
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSIPER_BUILD_TESTS=ON -DSIPER_BUILD_BENCH=ON
cmake --build "$build" -j "$(nproc)"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "$@"
