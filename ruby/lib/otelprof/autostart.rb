# frozen_string_literal: true

# Loaded by `otelprof run` through RUBYOPT: starts profiling from the OTELPROF_*/OTEL_*
# variables before the program's first line. A bad value prints one line; the program runs on.
require_relative "../otelprof"

Otelprof.autostart unless Otelprof.running?
