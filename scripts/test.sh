#!/usr/bin/env bash
# Runs every test: installs what is missing, builds (normal and ASan/UBSan), runs the unit tests
# under ctest in both builds, then the integration tests under pytest, then the CPython adapter's
# tests on each other supported CPython version.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh --asan
export PATH="$PATH:/usr/local/go/bin"

echo "== unit tests (ctest)"
ctest --test-dir build --output-on-failure
echo "== unit tests under ASan/UBSan (ctest)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure

echo "== benchmark harness, quick mode (figures not asserted; fails only if the harness breaks)"
python3 bench/run all --quick

echo "== integration tests (pytest)"
python3 -m pytest -q tests "$@"

# The CPython adapter's tests again on every other supported version (scripts/python_versions.sh).
versions=$(bash scripts/python_versions.sh list)
while read -r version py; do
  [ -n "$version" ] || continue
  echo "== CPython $version adapter tests (pytest, $py)"
  "$py" -m pytest -q tests/python "$@" </dev/null
done <<<"$versions"
