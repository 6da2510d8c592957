# Workload (wall mode): one thread alternates sleeping and spinning, ~60/40 by wall time, in
# chunks of random length. Prints the wall time each took; runs until ARGV[0] samples.
require "otelprof"

TARGET = Integer(ARGV[0] || 1000)

def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def sleepy_fn(seconds) = sleep(seconds)

def busy_fn(seconds)
  finish = now + seconds
  x = 0
  x += 1 while now < finish
  x
end

Otelprof.start(mode: :wall)
rnd = Random.new(3)
spent = {sleepy_fn: 0.0, busy_fn: 0.0}
while Otelprof.stats[:samples_taken] < TARGET
  chunk = rnd.rand(0.005..0.05)
  [[:sleepy_fn, 0.6], [:busy_fn, 0.4]].each do |fn, part|
    t0 = now
    send(fn, chunk * part)
    spent[fn] += now - t0
  end
end
samples = Otelprof.stats[:samples_taken]
Otelprof.stop
sum = spent.values.sum
puts "samples #{samples}"
puts format("measured sleepy_fn %.4f busy_fn %.4f", spent[:sleepy_fn] / sum, spent[:busy_fn] / sum)
