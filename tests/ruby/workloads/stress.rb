# Workload: ARGV[0] seconds of churn while the profiler samples every millisecond: threads started
# and ended all the time, fibers created and dropped, GC.compact in a loop, heavy allocation, code
# built with eval and dropped (frames whose iseqs die), OpenSSL key generation with the GVL
# released (walked while compaction runs), spans through the OpenTelemetry stand-in. Every task
# checks its result against one computed before profiling started; the workload prints how many
# ran and how many were wrong, and the process's RSS every second.
require "json"
require "openssl"
require "opentelemetry/sdk"
# STRESS_UNPROFILED=1: the same workload with the profiler never loaded.
PROFILED = !ENV["STRESS_UNPROFILED"]
require "otelprof" if PROFILED

SECONDS = Float(ARGV[0] || 20)
SEEDS = 64

# Ruby 3.1.2 can crash when GC.compact moves an object that a C function running without the GVL
# is using (seen with no profiler loaded in File.read and Zlib::Deflate.deflate; docs/RUBY.md).
# So the workload's own calls that release the GVL and use Ruby objects (reading a file) never
# overlap a compaction; the key generation below uses none while it runs without the GVL.
COMPACTING = Mutex.new

def rss_kb
  COMPACTING.synchronize { File.read("/proc/self/statm") }.split[1].to_i * 4
end

# A task: builds a structure from a seed, allocating plenty, and reduces it to a digest.
def task(seed)
  rnd = Random.new(seed)
  words = Array.new(2000) { rnd.rand(1 << 30).to_s(36) }
  table = words.each_with_index.to_h
  words.sort.each_slice(7).map { |s| s.join("-") }.sum { |s| table.fetch(s.split("-").first) + s.size }
end

# Random keys, so the check is that the key holds together: n = p q, and a signature verifies.
def keygen_task
  key = OpenSSL::PKey.generate_key("RSA", rsa_keygen_bits: 1024)
  key.p * key.q == key.n && key.verify("SHA256", key.sign("SHA256", "stress"), "stress")
end

EXPECT = (0...SEEDS).map { |s| task(s) }

OpenTelemetry::SDK.configure
TRACER = OpenTelemetry.tracer_provider.tracer("stress")
Otelprof.start(interval: ENV.fetch("STRESS_INTERVAL", "1ms")) if PROFILED

$stop = false
counts = Hash.new(0)
bad = Hash.new(0)
lock = Mutex.new
count = ->(kind, ok) { lock.synchronize { counts[kind] += 1; bad[kind] += 1 unless ok } }

workers = []
# Thread churn: short threads, each one task in a span.
workers << Thread.new do
  i = 0
  until $stop
    batch = 4.times.map do |k|
      seed = (i + k) % SEEDS
      Thread.new { TRACER.in_span("churn") { task(seed) == EXPECT[seed] } }
    end
    batch.each { |t| count.call(:thread, t.value) }
    i += 4
  end
end
# Fiber churn: fibers that yield midway, some dropped before they finish.
workers << Thread.new do
  i = 0
  until $stop
    seed = i % SEEDS
    f = Fiber.new do
      TRACER.in_span("fiber") do
        Fiber.yield :half
        task(seed) == EXPECT[seed]
      end
    end
    f.resume
    count.call(:fiber, f.resume) if i.even? # odd ones are dropped suspended
    i += 1
  end
end
# Compaction in a loop.
workers << Thread.new do
  until $stop
    COMPACTING.synchronize { GC.compact }
    count.call(:compact, true)
    sleep 0.02
  end
end
# Code built and dropped: each method is defined, run, and removed.
workers << Thread.new do
  i = 0
  until $stop
    name = "generated_#{i % SEEDS}"
    Object.class_eval("def #{name}(s) = task(s)", "generated.rb", i % SEEDS + 1)
    seed = i % SEEDS
    count.call(:eval, send(name, seed) == EXPECT[seed])
    Object.send(:remove_method, name)
    i += 1
  end
end
# CPU with the GVL released, walked while compactions run.
workers << Thread.new do
  count.call(:keygen, keygen_task) until $stop
end
# Heavy allocation on the main thread.
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
rss = [] # every second
i = 0
while (elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0) < SECONDS
  seed = i % SEEDS
  count.call(:alloc, task(seed) == EXPECT[seed])
  rss << rss_kb while rss.size <= elapsed
  i += 1
end
$stop = true
workers.each(&:join)
stats = PROFILED ? Otelprof.stats : {}
Otelprof.stop if PROFILED
puts "counts #{JSON.generate(counts)}"
puts "bad #{JSON.generate(bad)}"
puts "rss_kb #{JSON.generate(rss)}"
puts "stats #{JSON.generate(stats)}"
puts "final #{JSON.generate(PROFILED ? Otelprof.stats : {})}"
