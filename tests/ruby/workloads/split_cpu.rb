# Workload: threads alternate two pure-Ruby methods, ~70/30 by CPU time, in chunks of random
# length (so the split cannot phase-lock with the sampling period). Prints the CPU time each
# method took and each worker thread's total; runs until the profiler took ARGV[0] samples.
require "otelprof"

TARGET = Integer(ARGV[0] || 2000)
NTHREADS = 3

def thread_cpu
  Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)
end

def spin(seconds)
  finish = thread_cpu + seconds
  x = 0
  while thread_cpu < finish
    200.times { |i| x += i * i }
  end
  x
end

def heavy_fn(seconds) = spin(seconds)
def light_fn(seconds) = spin(seconds)

def worker(seed, stop, out)
  rnd = Random.new(seed)
  mine = {heavy_fn: 0.0, light_fn: 0.0}
  until stop[0]
    chunk = rnd.rand(0.002..0.03)
    [[:heavy_fn, 0.7], [:light_fn, 0.3]].each do |fn, part|
      t0 = thread_cpu
      send(fn, chunk * part)
      mine[fn] += thread_cpu - t0
    end
  end
  out << [mine, thread_cpu]
end

Otelprof.start
stop = [false]
results = Queue.new
threads = NTHREADS.times.map { |i| Thread.new { worker(i, stop, results) }.tap { |t| t.name = "split-#{i}" } }
sleep 0.1 while Otelprof.stats[:samples_taken] < TARGET
stop[0] = true
threads.each(&:join)
samples = Otelprof.stats[:samples_taken]
Otelprof.stop
spent = {heavy_fn: 0.0, light_fn: 0.0}
cpu = 0.0
NTHREADS.times do
  mine, total = results.pop
  mine.each { |k, v| spent[k] += v }
  cpu += total
end
sum = spent.values.sum
puts "samples #{samples}"
puts format("measured heavy_fn %.4f light_fn %.4f worker_cpu %.4f", spent[:heavy_fn] / sum, spent[:light_fn] / sum, cpu)
