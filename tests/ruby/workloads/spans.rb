# Workload: 6 threads, each in a span of its own, each running 5 fibers (30 in all) and one
# Enumerator-driven fiber that are each in a span of their own, interleaved (Fiber#resume /
# Fiber.yield, Enumerator#next), a child span inside each thread's span, and work outside any
# span. Each piece of work runs in a method of its own (work_t3_f2, outside_t3, ...), never across
# a fiber switch; the workload prints which span each method ran in ({"work_t3": [trace, span],
# "outside_t3": null, ...}) as one JSON line, and the attributes of the finished spans.
#   OTEL=before: OpenTelemetry (the stand-in SDK) is loaded before Otelprof.start
#   OTEL=after:  ... after it (the profiler notices the require)
#   OTEL=none:   no OpenTelemetry at all (the same work, no spans)
require "json"
require "otelprof"

MODE = ENV.fetch("OTEL", "after")
THREADS = 6
FIBERS = 5
ROUNDS = 8
CHUNK = 0.004

def thread_cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)

def spin(seconds)
  finish = thread_cpu + seconds
  x = 0
  x += 1 while thread_cpu < finish
  x
end

UNITS = {}
def unit(name)
  Object.class_eval("def #{name}(s) = spin(s)", __FILE__, __LINE__)
  UNITS[name] = nil
  name
end

def load_otel
  require "opentelemetry/sdk"
  OpenTelemetry::SDK.configure { |c| c.add_span_processor(Otelprof::ProfileIdSpanProcessor.new) }
end

# Without OpenTelemetry: the same structure, spans are plain blocks.
class NoTracer
  def in_span(_name)
    yield nil
  end
end

load_otel if MODE == "before"
Otelprof.start(interval: "2ms")
load_otel if MODE == "after"
TRACER = MODE == "none" ? NoTracer.new : OpenTelemetry.tracer_provider.tracer("spans")
LOCK = Mutex.new

def ids_of(span)
  span && [span.context.hex_trace_id, span.context.hex_span_id]
end

def record(name, span)
  LOCK.synchronize { UNITS[name] = ids_of(span) }
end

def thread_body(t)
  outside = unit("outside_t#{t}")
  mine = unit("work_t#{t}")
  child = unit("work_t#{t}_child")
  fibers = (0...FIBERS).map do |f|
    name = unit("work_t#{t}_f#{f}")
    Fiber.new do
      TRACER.in_span("fiber-#{t}-#{f}") do |span|
        record(name, span)
        ROUNDS.times do
          send(name, CHUNK)
          Fiber.yield
        end
      end
    end
  end
  enum_name = unit("work_t#{t}_enum")
  enum = Enumerator.new do |y|
    TRACER.in_span("enum-#{t}") do |span|
      record(enum_name, span)
      loop do
        send(enum_name, CHUNK)
        y << 1
      end
    end
  end
  ROUNDS.times { send(outside, CHUNK) }
  TRACER.in_span("thread-#{t}") do |span|
    record(mine, span)
    ROUNDS.times do
      send(mine, CHUNK)
      fibers.each(&:resume)
      send(mine, CHUNK)
      enum.next
    end
    TRACER.in_span("child-#{t}") do |c|
      record(child, c)
      ROUNDS.times { send(child, CHUNK) }
    end
    # The thread's own span again once the child's ended.
    ROUNDS.times { send(mine, CHUNK) }
  end
  fibers.each { |f| f.resume while f.alive? }
  ROUNDS.times { send(outside, CHUNK) }
end

threads = (0...THREADS).map { |t| Thread.new { thread_body(t) }.tap { |th| th.name = "spans-#{t}" } }
threads.each(&:join)
Otelprof.stop
puts "units #{JSON.generate(UNITS)}"
if MODE != "none"
  spans = OpenTelemetry::SDK.finished_spans.map do |s|
    {name: s.name, span: s.context.hex_span_id, root: s.parent_span_id == OpenTelemetry::Trace::INVALID_SPAN_ID,
     profile_id: s.attributes["pyroscope.profile.id"]}
  end
  puts "spans #{JSON.generate(spans)}"
end
puts "stats #{JSON.generate(Otelprof.stats)}"
