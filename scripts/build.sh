#!/usr/bin/env bash
# Builds the core (build/) and, with --asan, a sanitizer build (build-asan/). Run setup.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
if [ "${1:-}" = "--asan" ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOTELPROF_SANITIZE=address,undefined >/dev/null
  cmake --build build-asan -j "$jobs"
fi
