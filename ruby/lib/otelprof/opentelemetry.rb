# frozen_string_literal: true

module Otelprof
  # OpenTelemetry integration, optional and detected at run time: with OpenTelemetry's API loaded
  # (now, or by a later require), every sample carries the span active on the fiber that was
  # running. The span is republished as the thread's OTEP 4947 record after every change of the
  # context (Context.attach, .detach, .clear, wrapped here) and after every fiber switch
  # (ruby/ext/otelprof/span_context.c, which reads the span through the context's instance
  # variables, never by calling its methods). Without OpenTelemetry nothing is loaded and samples
  # carry no link.
  module OpenTelemetrySupport
    # Prepended to OpenTelemetry::Context's singleton class.
    module ContextHooks
      def attach(context)
        token = super
        Native.publish_span
        token
      end

      def detach(token)
        matched = super
        Native.publish_span
        matched
      end

      def clear
        result = super
        Native.publish_span
        result
      end
    end

    @installed = false
    @watching = false

    class << self
      def installed?
        @installed
      end

      # Wraps the context and hands the current-span key to the extension once both exist.
      def install
        return true if @installed
        return false unless defined?(::OpenTelemetry::Context) && defined?(::OpenTelemetry::Trace) &&
                            ::OpenTelemetry::Trace.const_defined?(:CURRENT_SPAN_KEY, false)

        @installed = true
        ::OpenTelemetry::Context.singleton_class.prepend(ContextHooks)
        # A private constant in OpenTelemetry's API: const_get reads it all the same.
        Native.span_key(::OpenTelemetry::Trace.const_get(:CURRENT_SPAN_KEY, false))
        true
      end

      # Now, or once a later require has loaded OpenTelemetry.
      def watch
        return if @watching

        @watching = true
        RequireHook.wait_for { install }
      end
    end
  end

  # Sets pyroscope.profile.id (the hex span id) on local root spans, which Grafana's
  # traces-to-profiles joins on:
  #   OpenTelemetry::SDK.configure { |c| c.add_span_processor(Otelprof::ProfileIdSpanProcessor.new) }
  class ProfileIdSpanProcessor
    def on_start(span, parent_context)
      parent = ::OpenTelemetry::Trace.current_span(parent_context).context
      return if parent.valid? && !parent.remote?

      span.set_attribute("pyroscope.profile.id", span.context.hex_span_id)
    end

    def on_finish(_span); end

    def force_flush(timeout: nil)
      success
    end

    def shutdown(timeout: nil)
      success
    end

    private

    def success
      defined?(::OpenTelemetry::SDK::Trace::Export::SUCCESS) ? ::OpenTelemetry::SDK::Trace::Export::SUCCESS : 0
    end
  end
end
