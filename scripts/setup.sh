#!/usr/bin/env bash
# Installs everything otelprof needs to build and test, on a fresh Debian bookworm machine, as root.
# Idempotent: packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(build-essential cmake ninja-build pkg-config protobuf-c-compiler libprotobuf-c-dev
          libunwind-dev libcurl4-openssl-dev zlib1g-dev python3 python3-pip chromium
          libgoogle-perftools-dev    # gperftools, a peer measured by bench/run
          strace                     # tests: system calls on the signal path
          openjdk-17-jdk maven)      # the JVM agent: jni.h/jvmti.h, java/javac/jcmd; the Java side
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

# The OpenTelemetry Collector the export tests send to, built once from Go modules and cached
# under ~/.cache/otelprof (several minutes the first time).
# A failure here only affects those tests (they then fail under CI=true), so it does not stop setup.
PATH="$PATH:/usr/local/go/bin" bash scripts/collector.sh >/dev/null ||
  echo "setup: the OpenTelemetry Collector did not build; tests/collector will fail or skip" >&2

# CPython adapter: its test dependencies, then the package itself (pip install . builds the
# extension otelprof._native from core/ and cpython/).
if ! "$PY" -c 'import opentelemetry.sdk.trace, gunicorn' 2>/dev/null; then
  echo "setup: installing Python test requirements (OpenTelemetry SDK, gunicorn)"
  "$PY" -m pip install -q -r tests/requirements.txt
fi
echo "setup: pip install . (otelprof for $("$PY" -c 'import sys; print(sys.version.split()[0])'))"
PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q .
"$PY" -c 'import otelprof'

# The other CPython versions the adapter supports, each in a venv under build/.
bash scripts/python_versions.sh setup

# The Ruby gem: Ruby 3.1, Rails 6.1, Puma and stackprof from Debian (RubyGems is not reachable).
bash scripts/setup_ruby.sh
