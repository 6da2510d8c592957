#!/usr/bin/env bash
# Builds the OpenTelemetry Collector used by tests/collector (otlp receiver; debug and, when it
# builds, contrib file exporter) with the Collector Builder from Go modules, caches it, and prints
# the binary's path on the last line of stdout. Reused while the cached build is present.
set -euo pipefail

VERSION=${OTELCOL_VERSION:-0.159.0}
CACHE=${OTELPROF_CACHE:-$HOME/.cache/otelprof}
DIR=$CACHE/otelcol-$VERSION
BIN=$DIR/otelcol-otelprof
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS=${GOFLAGS:--buildvcs=false}

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
command -v go >/dev/null || { echo "collector: Go is not installed (run scripts/setup.sh)" >&2; exit 1; }
# The Collector needs Go >= 1.25. Go 1.21+ fetches a newer toolchain itself, as a module from
# the Go module proxy, when GOTOOLCHAIN names one; older Go cannot.
gov=$(go env GOVERSION | sed 's/^go//')
gominor=$(echo "$gov" | cut -d. -f2)
if [ "$(echo "$gov" | cut -d. -f1)" = 1 ] && [ "$gominor" -lt 25 ]; then
  if [ "$gominor" -ge 21 ]; then
    export GOTOOLCHAIN=go1.25.0
  else
    echo "collector: Go $gov is too old to build the Collector (needs 1.25; install it under /usr/local/go)" >&2
    exit 1
  fi
fi
mkdir -p "$DIR"
if [ ! -x "$DIR/builder" ]; then
  echo "collector: installing the Collector Builder v$VERSION" >&2
  GOBIN="$DIR" go install "go.opentelemetry.io/collector/cmd/builder@v$VERSION" >&2
fi

manifest() { # $1 = 1 to include the contrib file exporter
  cat <<YAML
dist:
  name: otelcol-otelprof
  description: OpenTelemetry Collector for the otelprof tests
  output_path: $DIR/src
  version: $VERSION
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v$VERSION
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter v$VERSION
YAML
  if [ "$1" = 1 ]; then
    echo "  - gomod: github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter v$VERSION"
  fi
}

# The file exporter lets a test read exactly what was received; without it the tests parse the
# debug exporter's detailed output, so a failed contrib build is not fatal.
echo "collector: building v$VERSION (takes minutes the first time)" >&2
manifest 1 >"$DIR/manifest.yaml"
if "$DIR/builder" --config "$DIR/manifest.yaml" >"$DIR/build.log" 2>&1; then
  echo "otlp debug file" >"$DIR/components"
else
  echo "collector: the contrib file exporter did not build (see $DIR/build.log); using debug only" >&2
  manifest 0 >"$DIR/manifest.yaml"
  "$DIR/builder" --config "$DIR/manifest.yaml" >"$DIR/build.log" 2>&1 ||
    { tail -20 "$DIR/build.log" >&2; echo "collector: build failed" >&2; exit 1; }
  echo "otlp debug" >"$DIR/components"
fi
cp "$DIR/src/otelcol-otelprof" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
echo "$BIN"
