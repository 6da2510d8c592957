# frozen_string_literal: true

# STAND-IN for a minimal part of the OpenTelemetry Ruby SDK, written for otelprof's tests (see
# ../opentelemetry.rb): a tracer that makes recording spans with fresh ids (a child keeps its
# parent's trace id) and runs span processors' on_start(span, parent_context) and on_finish(span),
# and OpenTelemetry::SDK.configure with service_name= and add_span_processor. Finished spans are
# kept in OpenTelemetry::SDK.finished_spans for the tests to read.
require_relative "../opentelemetry"

module OpenTelemetry
  module SDK
    @finished = []
    @lock = Mutex.new

    class << self
      def configure
        config = Configurator.new
        yield config if block_given?
        OpenTelemetry.tracer_provider = Trace::TracerProvider.new(config.processors)
      end

      def finished_spans
        @lock.synchronize { @finished.dup }
      end

      def record(span)
        @lock.synchronize { @finished << span }
      end
    end

    class Configurator
      attr_accessor :service_name
      attr_reader :processors

      def initialize
        @processors = []
      end

      def add_span_processor(processor)
        @processors << processor
      end
    end

    module Trace
      module Export
        SUCCESS = 0
      end

      class Span < OpenTelemetry::Trace::Span
        attr_reader :name, :kind, :attributes, :parent_span_id

        def initialize(name, kind, span_context, parent_span_id, attributes, processors)
          super(span_context: span_context)
          @name = name
          @kind = kind
          @parent_span_id = parent_span_id
          @attributes = (attributes || {}).dup
          @processors = processors
          @ended = false
        end

        def recording?
          !@ended
        end

        def set_attribute(key, value)
          @attributes[key] = value unless @ended
          self
        end

        def finish(end_timestamp: nil)
          return self if @ended

          @ended = true
          @processors.each { |p| p.on_finish(self) }
          SDK.record(self)
          self
        end
      end

      class Tracer < OpenTelemetry::Trace::Tracer
        def initialize(processors)
          super()
          @processors = processors
        end

        def start_span(name, with_parent: nil, attributes: nil, links: nil, start_timestamp: nil, kind: nil)
          parent_context = with_parent || OpenTelemetry::Context.current
          parent = OpenTelemetry::Trace.current_span(parent_context).context
          trace_id = parent.valid? ? parent.trace_id : OpenTelemetry::Trace.generate_trace_id
          context = OpenTelemetry::Trace::SpanContext.new(trace_id: trace_id,
                                                          trace_flags: OpenTelemetry::Trace::TraceFlags::SAMPLED)
          span = Span.new(name, kind || :internal, context,
                          parent.valid? ? parent.span_id : OpenTelemetry::Trace::INVALID_SPAN_ID, attributes, @processors)
          @processors.each { |p| p.on_start(span, parent_context) }
          span
        end
      end

      class TracerProvider
        def initialize(processors = [])
          @processors = processors
          @tracers = {}
          @lock = Mutex.new
        end

        def add_span_processor(processor)
          @processors << processor
        end

        def tracer(name = nil, version = nil)
          @lock.synchronize { @tracers[[name, version]] ||= Tracer.new(@processors) }
        end
      end
    end
  end
end
