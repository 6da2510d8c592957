# frozen_string_literal: true

# STAND-IN for the OpenTelemetry Ruby API, written for otelprof's tests (the real gems cannot be
# installed here: no RubyGems registry). It is not OpenTelemetry; it implements the small part of
# the API the tests and the example app use, and keeps the active context exactly where and how
# OpenTelemetry Ruby API 1.8 (the last release line for Ruby 3.1) keeps it, because that is what
# otelprof reads:
#   - each Fiber has an attribute @opentelemetry_context: an Array of Context, the last one current;
#   - a Context has @entries, a frozen Hash keyed by Context::Key objects;
#   - the current span is the value under OpenTelemetry::Trace::CURRENT_SPAN_KEY (a private
#     constant holding a Context::Key);
#   - a span's @context is a SpanContext whose @trace_id is a 16-byte and @span_id an 8-byte
#     binary String, and @trace_flags a TraceFlags with an Integer @flags;
#   - Context.attach pushes and returns the stack's size as the token, Context.detach pops (a
#     mismatched token is reported, the pop happens anyway), Context.clear empties the stack.
# Loadable as "opentelemetry" (tests/ruby/support/standin on the load path); "opentelemetry/sdk"
# adds a minimal recording tracer.
require "securerandom"

module OpenTelemetry
  class Error < StandardError; end

  class << self
    attr_writer :tracer_provider

    def tracer_provider
      @tracer_provider ||= Trace::TracerProvider.new
    end

    def handle_error(exception: nil, message: nil)
      warn "OpenTelemetry stand-in error: #{message} #{exception&.message}"
    end
  end

  Fiber.attr_accessor :opentelemetry_context

  # The active context of the running fiber, and the immutable contexts it is made of.
  class Context
    # A context key; compared by identity (it keeps Object#hash and #eql?).
    class Key
      attr_reader :name

      def initialize(name)
        @name = name
      end

      def get(context = Context.current)
        context.value(self)
      end
    end

    DetachError = Class.new(OpenTelemetry::Error)
    NO_ENTRIES = {}.freeze
    private_constant :NO_ENTRIES

    class << self
      def create_key(name)
        Key.new(name)
      end

      def current
        stack.last || ROOT
      end

      def attach(context)
        contexts = stack
        contexts.push(context)
        contexts.size
      end

      def detach(token)
        contexts = stack
        matched = token == contexts.size
        OpenTelemetry.handle_error(exception: DetachError.new("detach does not match the last attach")) unless matched
        contexts.pop
        matched
      end

      def with_current(context)
        token = attach(context)
        yield context
      ensure
        detach(token)
      end

      def with_value(key, value)
        context = current.set_value(key, value)
        token = attach(context)
        yield context, value
      ensure
        detach(token)
      end

      def with_values(values)
        context = current.set_values(values)
        token = attach(context)
        yield context, values
      ensure
        detach(token)
      end

      def value(key)
        current.value(key)
      end

      def clear
        Fiber.current.opentelemetry_context = []
      end

      def empty
        new(NO_ENTRIES)
      end

      private

      def stack
        Fiber.current.opentelemetry_context ||= []
      end
    end

    def initialize(entries)
      @entries = entries.freeze
    end

    def value(key)
      @entries[key]
    end
    alias [] value

    def set_value(key, value)
      Context.new(@entries.merge(key => value))
    end

    def set_values(values)
      Context.new(@entries.merge(values))
    end

    ROOT = empty.freeze
  end

  module Trace
    extend self

    CURRENT_SPAN_KEY = Context.create_key("current-span")
    private_constant :CURRENT_SPAN_KEY

    INVALID_TRACE_ID = ("\0" * 16).b
    INVALID_SPAN_ID = ("\0" * 8).b

    def generate_trace_id
      loop do
        id = SecureRandom.random_bytes(16)
        return id unless id == INVALID_TRACE_ID
      end
    end

    def generate_span_id
      loop do
        id = SecureRandom.random_bytes(8)
        return id unless id == INVALID_SPAN_ID
      end
    end

    def current_span(context = nil)
      (context || Context.current).value(CURRENT_SPAN_KEY) || Span::INVALID
    end

    def context_with_span(span, parent_context: Context.current)
      parent_context.set_value(CURRENT_SPAN_KEY, span)
    end

    def with_span(span)
      Context.with_value(CURRENT_SPAN_KEY, span) { |context, s| yield s, context }
    end

    def non_recording_span(span_context)
      Span.new(span_context: span_context)
    end

    class TraceFlags
      def initialize(flags)
        @flags = flags
      end

      def sampled?
        (@flags & 1) != 0
      end

      DEFAULT = new(0)
      SAMPLED = new(1)
    end

    class SpanContext
      attr_reader :trace_id, :span_id, :trace_flags

      def initialize(trace_id: Trace.generate_trace_id, span_id: Trace.generate_span_id,
                     trace_flags: TraceFlags::DEFAULT, remote: false)
        @trace_id = trace_id
        @span_id = span_id
        @trace_flags = trace_flags
        @remote = remote
      end

      def hex_trace_id
        @trace_id.unpack1("H*")
      end

      def hex_span_id
        @span_id.unpack1("H*")
      end

      def valid?
        @trace_id != INVALID_TRACE_ID && @span_id != INVALID_SPAN_ID
      end

      def remote?
        @remote
      end

      INVALID = new(trace_id: INVALID_TRACE_ID, span_id: INVALID_SPAN_ID)
    end

    # The API's span: records nothing, carries its SpanContext in @context.
    class Span
      attr_reader :context

      def initialize(span_context: SpanContext::INVALID)
        @context = span_context
      end

      def recording?
        false
      end

      def set_attribute(_key, _value)
        self
      end

      def record_exception(_exception); end

      def finish(end_timestamp: nil)
        self
      end

      INVALID = new
    end

    class Tracer
      def start_span(name, with_parent: nil, attributes: nil, links: nil, start_timestamp: nil, kind: nil)
        Span.new(span_context: Trace.current_span(with_parent).context)
      end

      def in_span(name, attributes: nil, links: nil, start_timestamp: nil, kind: nil)
        span = start_span(name, attributes: attributes, links: links, start_timestamp: start_timestamp, kind: kind)
        Trace.with_span(span) { |s, context| yield s, context }
      rescue Exception => e # rubocop:disable Lint/RescueException
        span&.record_exception(e)
        raise
      ensure
        span&.finish
      end
    end

    class TracerProvider
      def tracer(_name = nil, _version = nil)
        @tracer ||= Tracer.new
      end
    end
  end
end
