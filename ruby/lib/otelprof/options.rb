# frozen_string_literal: true

module Otelprof
  # Turns Ruby option values into the core's text forms: the same option names as the
  # OTELPROF_*/OTEL_* variables, lower-cased without the prefix (mode: :cpu, interval: "10ms",
  # output_dir:, formats: %w[otlp html], service_name:, resource_attributes: {"k" => "v"}, ...).
  # The core checks every value and names the bad one.
  module Options
    # Short names that stand for the core's longer option names.
    ALIASES = {"endpoint" => "otlp_endpoint", "headers" => "otlp_headers",
               "compression" => "otlp_compression", "timeout" => "otlp_timeout",
               "protocol" => "otlp_protocol"}.freeze

    module_function

    def text(key, value)
      case value
      when true then "true"
      when false then "false"
      when nil then raise ArgumentError, "otelprof: option #{key}: nil is not a value (leave it out instead)"
      when Array then value.map(&:to_s).join(",")
      when Hash then value.map { |k, v| "#{k}=#{v}" }.join(",")
      else value.to_s
      end
    end

    def to_core(options)
      options.each_with_object({}) do |(key, value), out|
        name = key.to_s
        out[ALIASES.fetch(name, name)] = text(name, value)
      end
    end
  end
end
