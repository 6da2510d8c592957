"""Workload: a code object that runs, then sits idle for several profile closes, then runs again.
Prints the code object's reference count at each stage: pinned (+1), unpinned after idling (back
to its own count), pinned again once it runs again."""
import sys
import time

import otelprof

otelprof.start(interval="5ms", export_interval="200ms")


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


ns = {"busy": busy}
exec("def idle_fn(s):\n    busy(s)\n", ns)
fn = ns["idle_fn"]
code = fn.__code__
base = sys.getrefcount(code)
fn(0.1)
time.sleep(0.1)  # the pinner runs every 10 ms while codes wait
first = sys.getrefcount(code)
busy(1.2)  # six closes without idle_fn
idle = sys.getrefcount(code)
fn(0.1)
time.sleep(0.1)
again = sys.getrefcount(code)
st = otelprof.stats()
otelprof.stop()
print("refs base %d pinned %d idle %d again %d" % (base, first, idle, again))
print("stats codes_unpinned %d" % st["codes_unpinned"])
