# frozen_string_literal: true

# otelprof: always-on, in-process CPU and wall-clock profiler whose samples carry the active
# OpenTelemetry span, written as OTLP Profiles, pprof, folded stacks and HTML flame graphs.
#
#   require "otelprof"
#   Otelprof.start(mode: :cpu, interval: "10ms", service_name: "checkout")
#   ...
#   Otelprof.stop                      # also runs at exit
#
#   Otelprof.profile(mode: :wall) { work }   # the block form
#
# Options mirror the environment variables (OTELPROF_MODE -> mode:, OTEL_SERVICE_NAME ->
# service_name:, ...); a variable is used when its option is not given. In a Rails app the
# Railtie starts it (opt out with config.otelprof.autostart = false or OTELPROF_AUTOSTART=false);
# `otelprof run -- command` profiles any Ruby program.
require_relative "otelprof/version"
begin
  require_relative "otelprof/otelprof_native"
rescue LoadError => e
  raise LoadError, "otelprof: the extension otelprof_native is not built (#{e.message}); " \
                   "Bundler does not compile path: gems: run `rake compile` in the gem's directory"
end
require_relative "otelprof/options"
require_relative "otelprof/require_hook"
require_relative "otelprof/hooks"
require_relative "otelprof/opentelemetry"

module Otelprof
  class << self
    # Starts profiling this process. Returns false when configuration disables profiling
    # (OTEL_SDK_DISABLED=true, OTELPROF_DISABLED=true or mode: :off), true otherwise. Raises
    # ArgumentError naming the bad option or variable, Otelprof::Error when already started or
    # when the system refuses (signals, timers, memory).
    def start(**options)
      opts = Options.to_core(options)
      Hooks.install
      return false unless Native.start(opts)

      OpenTelemetrySupport.watch
      true
    end

    # Stops profiling and writes the final profile. Returns false when it was not running.
    def stop
      Native.stop
    end

    # Closes the current profile and writes it now; profiling goes on.
    def flush
      Native.flush
    end

    def running?
      Native.running?
    end

    # Self-metrics: samples taken and dropped (by reason), handler time, threads, files written,
    # memory, and the Ruby adapter's own counters.
    def stats
      Native.stats
    end

    # Which runtime APIs newer than Ruby 3.1 this build found (see ruby/ext/otelprof/orb.h).
    def capabilities
      Native.capabilities
    end

    # Profiles the block: starts, yields, stops (also when the block raises).
    def profile(**options)
      started = start(**options)
      begin
        yield
      ensure
        stop if started
      end
    end

    # Starting without the program asking for it (the Railtie, `otelprof run`): a bad value
    # prints one line and the program runs on unprofiled. OTELPROF_AUTOSTART=false skips it.
    def autostart(**options)
      return false unless autostart_enabled?

      start(**options)
    rescue ArgumentError, Otelprof::Error => e
      message = e.message.start_with?("otelprof:") ? e.message : "otelprof: #{e.message}"
      warn "#{message} (profiling is off)"
      false
    end

    def autostart_enabled?
      value = ENV.fetch("OTELPROF_AUTOSTART", "").strip.downcase
      return true if value.empty? || %w[1 true yes on].include?(value)
      return false if %w[0 false no off].include?(value)

      warn "otelprof: OTELPROF_AUTOSTART=#{ENV["OTELPROF_AUTOSTART"].inspect} is invalid: expected true or false (profiling is off)"
      false
    end
  end

  # Registered when the gem is loaded, so that it runs after the at_exit handlers the application
  # registers later (they run in reverse order): the final profile includes their work.
  at_exit do
    Native.stop
    Native.vm_exiting
  end
end

# The Railtie, now or as soon as Rails is loaded (`otelprof run` and RUBYOPT load the gem first):
# before the application's class body, which may configure config.otelprof.
Otelprof::RequireHook.wait_for do
  next false unless defined?(::Rails::Railtie)

  require_relative "otelprof/railtie"
  true
end
