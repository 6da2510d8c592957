# Loaded through RUBYOPT by bench/ruby_rows.py: stackprof (Debian's ruby-stackprof) in CPU mode at
# 100 Hz for the whole process, its raw results written at exit into STACKPROF_OUT-<pid>.dump.
require "stackprof"

StackProf.start(mode: :cpu, interval: 10_000, raw: true)
at_exit do
  StackProf.stop
  StackProf.results("#{ENV.fetch("STACKPROF_OUT")}-#{Process.pid}.dump")
end
