#!/usr/bin/env bash
# Runs examples/java/PriceService.java under the OpenTelemetry Java agent with otelprof (the native
# agent build/lib/libotelprof_jvmti.so, and the jar target/otelprof-jvm.jar as the Java agent's
# extension), sends it REQUESTS /price and /io requests, then stops it; the profiles (OTLP,
# pprof, folded stacks, HTML flame graph) land in OUTPUT_DIR.
#   examples/java/run.sh [OUTPUT_DIR] [REQUESTS]
# Builds what is missing (scripts/build.sh, mvn package). OTEL_* and OTELPROF_* variables set by
# the caller are passed on (e.g. OTEL_EXPORTER_OTLP_ENDPOINT sends spans and profiles to a
# Collector); without them spans are not exported and profiles are written locally.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$PWD/otelprof-out}
requests=${2:-20}
java_home=${JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}

[ -f build/lib/libotelprof_jvmti.so ] || bash scripts/build.sh
if [ ! -f target/otelprof-jvm.jar ] || [ ! -f target/opentelemetry-javaagent.jar ]; then
  JAVA_HOME=$java_home mvn -B -q package -DskipTests
fi
classes=build/examples-java
mkdir -p "$classes" "$out"
"$java_home/bin/javac" -d "$classes" examples/java/PriceService.java
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

OTEL_SERVICE_NAME=${OTEL_SERVICE_NAME:-price-service} OTELPROF_OUTPUT_DIR=$out \
OTEL_TRACES_EXPORTER=${OTEL_TRACES_EXPORTER:-none} OTEL_METRICS_EXPORTER=${OTEL_METRICS_EXPORTER:-none} \
OTEL_LOGS_EXPORTER=${OTEL_LOGS_EXPORTER:-none} \
  "$java_home/bin/java" -agentpath:"$PWD/build/lib/libotelprof_jvmti.so" \
    -javaagent:"$PWD/target/opentelemetry-javaagent.jar" \
    -Dotel.javaagent.extensions="$PWD/target/otelprof-jvm.jar" \
    -cp "$classes" PriceService "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/io?ms=1" >/dev/null 2>&1 && break
  kill -0 $pid 2>/dev/null || { echo "PriceService exited before it listened" >&2; exit 1; }
  sleep 0.5
done
for i in $(seq 1 "$requests"); do
  curl -fs "http://127.0.0.1:$port/price?items=60" >/dev/null &
  client=$!
  curl -fs "http://127.0.0.1:$port/io?ms=20" >/dev/null
  wait $client
done
curl -fs "http://127.0.0.1:$port/quit" >/dev/null
wait $pid
trap - EXIT
echo "PriceService: $requests /price and /io requests profiled into $out"
