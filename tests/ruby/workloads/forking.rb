# Workload: Process.fork. The parent burns parent_work, forks a child that burns child_work and
# exits normally, and burns parent_after once the child is gone; then it forks CHILDREN children
# that each burn briefly and exec /bin/true (no profiling signal may reach the new image), while
# profiles close every 100 ms (forks land during closes). Prints the pids and the exec'd
# children's exit statuses.
require "otelprof"

CHILDREN = Integer(ARGV[0] || 20)

def thread_cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)

def spin(seconds)
  finish = thread_cpu + seconds
  x = 0
  x += 1 while thread_cpu < finish
  x
end

def parent_work(s) = spin(s)
def parent_after(s) = spin(s)
def child_work(s) = spin(s)
def exec_child_work(s) = spin(s)

Otelprof.start(export_interval: "100ms")
parent_work(0.6)
child = fork do
  child_work(0.4)
end
Process.wait(child)
raise "child failed: #{$?.inspect}" unless $?.success?
parent_after(0.3)
statuses = CHILDREN.times.map do
  pid = fork do
    exec_child_work(0.02)
    exec("/bin/true")
  end
  Process.wait(pid)
  $?.termsig ? "signal#{$?.termsig}" : $?.exitstatus.to_s
end
Otelprof.stop
puts "pids parent #{Process.pid} child #{child}"
puts "exec_children #{statuses.join(",")}"
