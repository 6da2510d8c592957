# Workload: 4 threads compress a large buffer with Zlib::Deflate.deflate, which runs with the GVL
# released: their CPU burns in C while no Ruby code runs on them. Prints each thread's CPU time
# (compress_worker's, all of it) once ARGV[0] seconds of it have been burnt.
require "otelprof"
require "zlib"

SECONDS = Float(ARGV[0] || 2.0)
NTHREADS = 4

def thread_cpu
  Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
end

def compress_worker(data, seconds)
  t0 = thread_cpu
  n = 0
  while thread_cpu - t0 < seconds
    Zlib::Deflate.deflate(data, Zlib::BEST_COMPRESSION)
    n += 1
  end
  [thread_cpu, n]
end

rnd = Random.new(7)
# Compressible but not trivially: words from a small alphabet.
data = Array.new(400_000) { rnd.rand(36**3).to_s(36) }.join(" ")
Otelprof.start
threads = NTHREADS.times.map do |i|
  Thread.new { compress_worker(data, SECONDS / NTHREADS) }.tap { |t| t.name = "deflate-#{i}" }
end
results = threads.map(&:value)
Otelprof.stop
puts format("measured deflate_cpu %.4f calls %d", results.sum { |c, _| c }, results.sum { |_, n| n })
