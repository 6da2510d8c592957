# Workload: Process.daemon. Burns before_daemon, becomes a daemon (the original process exits
# inside daemon), burns in_daemon and writes its pid into ARGV[0] when done.
require "otelprof"

def thread_cpu = Process.clock_gettime(Process::CLOCK_THREAD_CPUTIME_ID)

def spin(seconds)
  finish = thread_cpu + seconds
  x = 0
  x += 1 while thread_cpu < finish
  x
end

def before_daemon(s) = spin(s)
def in_daemon(s) = spin(s)

Otelprof.start
before_daemon(0.4)
original = Process.pid
Process.daemon(false, true) # chdir to /, keep stdout and stderr
in_daemon(0.4)
Otelprof.stop
File.write(ARGV[0] + ".tmp", "#{original} #{Process.pid}\n")
File.rename(ARGV[0] + ".tmp", ARGV[0])
