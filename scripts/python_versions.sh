#!/usr/bin/env bash
# The CPython versions the adapter is tested on besides the default interpreter, each in its own
# virtual environment under build/ (pyenv's interpreters from the machine image), and any versions
# it does not support yet that should still be installed (none now: the refusal of an unsupported
# version is tested on a build made as if for 3.14, tests/python/test_cpython_versions.py).
#   scripts/python_versions.sh list          prints "<version> <venv python>" per supported version
#   scripts/python_versions.sh path V        prints version V's venv python
#   scripts/python_versions.sh setup         creates the venvs, installs test requirements and
#                                            the package (pip install .) into each
# A version whose interpreter is missing is reported; under CI=true that is an error.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSIONS=(3.12 3.13) # supported: the whole Python suite runs on each
REFUSED=()           # builds and installs; start() refuses

interpreter() {
  local v=$1 root p
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for p in "$root"/versions/"$v".*/bin/python"$v"; do
    [ -x "$p" ] && { echo "$p"; return 0; }
  done
  command -v "python$v" 2>/dev/null || return 1
}

missing() {
  echo "python_versions: no CPython $1 interpreter (pyenv install $1, or python$1 on PATH)" >&2
  [ "${CI:-}" = true ] && exit 1
  return 0
}

case "${1:-list}" in
list)
  for v in "${VERSIONS[@]}"; do
    venv=build/py$v
    if [ -x "$venv/bin/python" ]; then echo "$v $venv/bin/python"; else missing "$v"; fi
  done
  ;;
path)
  venv=build/py${2:?version}
  if [ -x "$venv/bin/python" ]; then echo "$venv/bin/python"; else missing "$2"; exit 1; fi
  ;;
setup)
  # ${a[@]+...}: an empty array is "unbound" to set -u in older bash.
  for v in "${VERSIONS[@]}" ${REFUSED[@]+"${REFUSED[@]}"}; do
    py=$(interpreter "$v") || { missing "$v"; continue; }
    venv=build/py$v
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    if ! "$venv/bin/python" -c 'import pytest, opentelemetry.sdk.trace, gunicorn, setuptools' 2>/dev/null; then
      echo "setup: installing Python $v test requirements"
      # setuptools: the sanitizer tests build the extension with setup.py directly.
      "$venv/bin/python" -m pip install -q -r tests/requirements.txt setuptools wheel
    fi
    echo "setup: pip install . (otelprof for $("$venv/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
    PIP_ROOT_USER_ACTION=ignore "$venv/bin/python" -m pip install -q .
    "$venv/bin/python" -c 'import otelprof'
  done
  ;;
*)
  echo "usage: scripts/python_versions.sh list|setup" >&2
  exit 2
  ;;
esac
