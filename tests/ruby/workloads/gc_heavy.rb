# Workload: allocates garbage in a loop and collects it (full GCs, which take most of its CPU),
# so that its samples show "(garbage collection)". Prints the GC's own count of its time.
require "otelprof"

def make_garbage
  Array.new(20_000) { |i| "s#{i}" * 2 }
end

def collect
  GC.start(full_mark: true, immediate_sweep: true)
end

Otelprof.start
gc0 = GC.stat(:time)
t0 = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
keep = Array.new(200) { make_garbage } # a heap the full GCs must mark
while Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - t0 < 1.5
  make_garbage
  collect
end
gc_ms = GC.stat(:time) - gc0
cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID) - t0
Otelprof.stop
puts format("measured gc_s %.4f cpu %.4f kept %d", gc_ms / 1000.0, cpu, keep.size)
