# Ruby benchmark workload: the example Rails app (examples/ruby: Puma cluster, 2 workers,
# preload_app!) under a bounded load. Boots Puma with this process's environment (so a profiler
# set up through it, RUBYOPT and variables, profiles the master and the workers), sends ARGV[0] requests to /cpu from 4
# clients on 127.0.0.1, stops Puma and prints the throughput.
require "net/http"
require "socket"

REQUESTS = Integer(ARGV[0] || 200)
ROOT = File.expand_path("../..", __dir__)

port = TCPServer.new("127.0.0.1", 0).then { |s| s.addr[1].tap { s.close } }
log = File.open(File.join(Dir.pwd, "puma.log"), "w")
# The app requires the gem (ruby/lib, built by the harness); its Railtie starts the profiler only
# in the otelprof rows (OTELPROF_AUTOSTART=true), never in the baseline's or a peer's.
env = {"PORT" => port.to_s, "OTELPROF_AUTOSTART" => ENV.fetch("OTELPROF_AUTOSTART", "false")}
puma = Process.spawn(env, RbConfig.ruby, "-I", File.join(ROOT, "ruby", "lib"), "-S", "puma", "-C",
                     File.join(ROOT, "examples", "ruby", "puma.rb"), out: log, err: log)
http = ->(path) { Net::HTTP.start("127.0.0.1", port, read_timeout: 60) { |h| h.get(path) } }
deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 120
begin
  http.call("/health")
rescue SystemCallError, EOFError, Net::ReadTimeout
  abort "rails_load: Puma did not start:\n#{File.read(log.path)}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
  sleep 0.1
  retry
end
t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
queue = Queue.new
REQUESTS.times { queue << "/cpu?n=20000" }
4.times { queue << nil }
clients = Array.new(4) do
  Thread.new do
    Net::HTTP.start("127.0.0.1", port, read_timeout: 60) do |h|
      while (path = queue.pop)
        res = h.get(path)
        raise "#{path}: #{res.code}" unless res.code == "200"
      end
    end
  end
end
clients.each(&:join)
elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
Process.kill("TERM", puma)
Process.wait(puma)
puts format("throughput %.1f req/s (%d requests in %.2f s)", REQUESTS / elapsed, REQUESTS, elapsed)
