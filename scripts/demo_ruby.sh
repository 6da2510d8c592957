#!/usr/bin/env bash
# The Ruby part of the demo: builds the gem's extension in place, serves the example Rails app
# (examples/ruby: Puma cluster, 2 workers, preload_app!) under a short load, in CPU and in
# wall-clock mode, and lists the flame graphs written into ./otelprof-out (or OTELPROF_OUTPUT_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_ruby.sh
(cd ruby && rake -s compile >/dev/null)
out="${OTELPROF_OUTPUT_DIR:-$PWD/otelprof-out}"
mkdir -p "$out"

serve() { # serve MODE SERVICE: boot, load, stop
  local mode=$1 service=$2 port log
  port=$(ruby -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close')
  log=$(mktemp)
  OTELPROF_OUTPUT_DIR="$out" OTELPROF_MODE="$mode" OTEL_SERVICE_NAME="$service" PORT="$port" \
    ruby -Iruby/lib -S puma -C examples/ruby/puma.rb >"$log" 2>&1 &
  local pid=$!
  for _ in $(seq 300); do
    curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  for i in $(seq 40); do
    curl -fs "http://127.0.0.1:$port/cpu?n=30000" >/dev/null &
    curl -fs "http://127.0.0.1:$port/io?ms=50" >/dev/null &
    [ $((i % 4)) -eq 0 ] && wait_jobs "$pid"
  done
  wait_jobs "$pid"
  kill -TERM "$pid"
  wait "$pid" || true # Puma ends a TERM'ed master by the signal, after writing
  rm -f "$log"
}

wait_jobs() { # waits for every background job except the server
  local job
  for job in $(jobs -p); do [ "$job" = "$1" ] || wait "$job" || true; done
}

echo "== Ruby example, CPU (examples/ruby: Rails 6.1 on Puma, 2 workers)"
serve cpu demo-ruby-cpu
echo "== Ruby example, wall clock"
serve wall demo-ruby-wall

echo
echo "Ruby flame graphs (open in a browser; one per process: the Puma master and each worker):"
ls -1 "$out"/demo-ruby-*.html
