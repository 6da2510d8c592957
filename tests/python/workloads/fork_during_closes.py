"""Workload: forks while profiles close every 100 ms and new code keeps appearing (so a close often
has to name code the pinner has not pinned yet). The exporter must never wait for the GIL: the
forking thread holds it while fork() waits for the exporter's close to finish."""
import os
import sys
import time

import otelprof

otelprof.start(interval="1ms", export_interval="100ms")


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 150
t0 = time.monotonic()
for r in range(rounds):
    ns = {"busy": busy}
    exec("def fresh_%d(s):\n    busy(s)\n" % r, ns)
    ns["fresh_%d" % r](0.003)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
st = otelprof.stats()
otelprof.stop()
print("forks %d in %.1f s named_unpinned %d" % (rounds, time.monotonic() - t0, st["codes_named_unpinned"]))
