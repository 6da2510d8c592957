#!/usr/bin/env bash
# Installs everything otelprof needs to build and test, on a fresh Debian bookworm machine, as root.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake ninja-build pkg-config protobuf-c-compiler libprotobuf-c-dev
          libunwind-dev libcurl4-openssl-dev zlib1g-dev python3 python3-pip chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  missing+=(golang-go)   # for `go tool pprof` (and the Collector later)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import pytest, opentelemetry.proto.profiles.v1development.profiles_pb2' 2>/dev/null; then
  echo "setup: installing Python test requirements"
  "$PY" -m pip install -q -r tests/requirements.txt
fi
