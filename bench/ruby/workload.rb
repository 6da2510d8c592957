# Ruby benchmark workloads: a fixed amount of work split 70/30 between rb_hot and rb_cold.
#   workload.rb single|threads <units>
#   workload.rb calibrate          prints seconds of CPU per unit, for the harness
# The harness calibrates once, without a profiler, and passes a unit count: a workload that timed
# itself would do less work under a profiler and hide the overhead. The split is 70/30 by
# construction (7n and 3n iterations of the same loop).

N = 20_000 # iterations per unit of rb_cold / 3: one unit is rb_hot(N) + rb_cold(N)

def rb_hot(n)
  x = 0
  i = 0
  while i < 7 * n
    x = (x * 31 + i) & 0xFFFFFFFF
    i += 1
  end
  x
end

def rb_cold(n)
  x = 0
  i = 0
  while i < 3 * n
    x = (x * 31 + i) & 0xFFFFFFFF
    i += 1
  end
  x
end

def unit
  rb_hot(N)
  rb_cold(N)
end

def single(units)
  units.times { unit }
end

def threads(units, n = 8)
  per = [1, units / n].max
  Array.new(n) { Thread.new { per.times { unit } } }.each(&:join)
end

case ARGV[0]
when "calibrate"
  units = 20
  t0 = Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)
  single(units)
  puts (Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID) - t0) / units
when "single" then single(Integer(ARGV[1]))
when "threads" then threads(Integer(ARGV[1]))
else abort "usage: workload.rb single|threads <units> | calibrate"
end
