"""Workload: Python threads running inside subinterpreters (isolated ones from 3.12: their own
allocator and GIL; a legacy one on 3.11), created and destroyed while the profiler samples every thread at 1 ms and
closes a profile every 100 ms, then the main interpreter runs on for several closes (when idle
code would be unpinned). Prints the profiler's stats."""
import sys
import threading
import time

if sys.version_info >= (3, 13):
    import _interpreters as interpreters
elif sys.version_info >= (3, 12):
    import _xxsubinterpreters as interpreters
else:
    interpreters = None  # 3.11's isolated ones cannot start threads: a legacy one (_testcapi)

import otelprof

# Runs in the subinterpreter: code objects of its own, on a thread it starts (whose thread state
# is the subinterpreter's), then the thread is joined and the interpreter destroyed.
SUB = """
import threading, time

def sub_busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))

t = threading.Thread(target=sub_busy, args=(0.25,))
t.start()
t.join()
"""


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


otelprof.start(interval="1ms", export_interval="100ms")
for _ in range(4):
    if interpreters:
        interp = interpreters.create()
        interpreters.run_string(interp, SUB)
        interpreters.destroy(interp)
    else:
        import _testcapi
        assert _testcapi.run_in_subinterp(SUB) == 0
busy(0.6)
st = otelprof.stats()
otelprof.stop()
print("subinterpreters done, walk_subinterpreter %d" % st["walk_subinterpreter"])
sys.stdout.flush()
