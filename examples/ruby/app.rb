# A Rails 6.1 application in one file, profiled by otelprof: a CPU-heavy route (/cpu), an I/O
# route (/io), and a Rack middleware that makes an OpenTelemetry server span per request when the
# OpenTelemetry SDK is loaded (every sample taken inside a request then carries its span). Served
# by Puma in cluster mode (puma.rb: 2 workers, preload_app!); the Railtie starts the profiler as
# the application boots, and each worker goes on profiling itself from its fork.
#
#   cd examples/ruby && bundle install --local && (cd ../../ruby && rake compile)
#   bundle exec puma -C puma.rb          # then: curl http://127.0.0.1:3000/cpu
require "action_controller/railtie"
require "otelprof"

# The service's name in profiles (and spans), unless the environment gives one.
ENV["OTEL_SERVICE_NAME"] ||= "example-rails"

# OpenTelemetry, when its SDK is installed: spans, and pyroscope.profile.id on request spans.
OTEL = begin
  require "opentelemetry/sdk"
  OpenTelemetry::SDK.configure do |c|
    c.service_name = ENV["OTEL_SERVICE_NAME"]
    c.add_span_processor(Otelprof::ProfileIdSpanProcessor.new)
  end
  true
rescue LoadError
  false
end

# One server span per request, its ids in the response headers (x-trace-id, x-span-id) with the
# pid of the worker that served it.
class ServerSpan
  def initialize(app)
    @app = app
    @tracer = OpenTelemetry.tracer_provider.tracer("example-rails") if OTEL
  end

  def call(env)
    return tag(@app.call(env), nil) unless @tracer

    @tracer.in_span("#{env["REQUEST_METHOD"]} #{env["PATH_INFO"]}", kind: :server) do |span|
      tag(@app.call(env), span)
    end
  end

  private

  def tag(response, span)
    status, headers, body = response
    headers["x-pid"] = Process.pid.to_s
    if span
      headers["x-trace-id"] = span.context.hex_trace_id
      headers["x-span-id"] = span.context.hex_span_id
    end
    [status, headers, body]
  end
end

class ExampleApp < Rails::Application
  config.root = __dir__
  config.eager_load = true
  config.logger = Logger.new(nil)
  config.secret_key_base = "example-only-not-secret"
  config.hosts.clear
  config.middleware.insert_before 0, ServerSpan
  # Profiler options, as for Otelprof.start (the OTELPROF_* variables apply where none is given).
  config.otelprof.options = {}

  routes.append do
    get "/cpu" => "work#cpu"
    get "/io" => "work#io"
    get "/health" => "work#health"
  end
end

# The routes' work.
module Primes
  module_function

  # Counts primes below n by trial division: plain Ruby CPU.
  def count_below(n)
    (2...n).count { |k| (2..Integer.sqrt(k)).none? { |d| (k % d).zero? } }
  end
end

class WorkController < ActionController::Base
  def cpu
    n = Integer(params.fetch(:n, 30_000))
    render plain: "#{Primes.count_below(n)} primes below #{n}\n"
  end

  def io
    # Waiting, as on a database or a remote call.
    sleep(Float(params.fetch(:ms, 50)) / 1000)
    render plain: File.read(__FILE__).lines.size.to_s + " lines\n"
  end

  def health
    render plain: "ok\n"
  end
end

Rails.application.initialize!
