#!/usr/bin/env bash
# The main job on the embedded default: builds otelprof, profiles the example programs with no
# collector, and writes OTLP, pprof, folded and HTML flame graph files into ./otelprof-out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
out="${OTELPROF_OUTPUT_DIR:-$PWD/otelprof-out}"
mkdir -p "$out"

echo "== native example, CPU (examples/native/demo_service.c)"
OTEL_SERVICE_NAME=demo-native-cpu OTELPROF_OUTPUT_DIR="$out" \
  LD_PRELOAD="$PWD/build/lib/libotelprof.so" build/bin/demo_service 4
echo "== native example, wall clock"
OTEL_SERVICE_NAME=demo-native-wall OTELPROF_MODE=wall OTELPROF_OUTPUT_DIR="$out" \
  LD_PRELOAD="$PWD/build/lib/libotelprof.so" build/bin/demo_service 4

echo "== Python example, CPU (examples/python/service.py: OpenTelemetry SDK, threads, asyncio)"
OTELPROF_OUTPUT_DIR="$out" python3 -m otelprof run --service-name demo-python-cpu -- examples/python/service.py 4
echo "== Python example, wall clock"
OTELPROF_OUTPUT_DIR="$out" python3 -m otelprof run --mode wall --service-name demo-python-wall -- examples/python/service.py 4

echo "== Java example, CPU (examples/java/PriceService.java: HTTP service under the OpenTelemetry Java agent)"
OTEL_SERVICE_NAME=demo-java-cpu bash examples/java/run.sh "$out" 20

OTELPROF_OUTPUT_DIR="$out" bash scripts/demo_ruby.sh

echo
echo "Flame graphs (open in a browser):"
ls -1 "$out"/*.html
echo "Other files: $(ls "$out" | wc -l) in $out (*.otlp.pb OTLP, *.pb.gz pprof, *.folded)"
