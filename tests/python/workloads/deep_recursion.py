"""Workload for stacks deeper than max_depth: recurses DEPTH levels deep and burns CPU at the
bottom for SECS seconds of thread CPU time, then prints the profiler's stats. VIA "python": plain
Python recursion (in 3.11 Python-to-Python calls do not grow the C stack, so the native stack
stays shallow); VIA "c": each level calls back through sorted(key=...), so the native stack
grows by several frames per level as well. Run under the environment's OTELPROF_* settings
(max_depth, native_frames)."""
import sys
import time

import otelprof

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
SECS = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
VIA = sys.argv[3] if len(sys.argv) > 3 else "python"
sys.setrecursionlimit(3 * DEPTH + 1000)


def deep_leaf(secs):
    end = time.thread_time() + secs
    while time.thread_time() < end:
        pass


def deep_step(n, secs):
    if n <= 1:
        deep_leaf(secs)
    else:
        deep_step(n - 1, secs)


def deep_c_step(n, secs):
    if n <= 1:
        deep_leaf(secs)
        return 0
    return sorted([n], key=lambda x: deep_c_step(n - 1, secs))[0]


otelprof.start(interval="10ms")
(deep_step if VIA == "python" else deep_c_step)(DEPTH, SECS)
st = otelprof.stats()
otelprof.stop()
print("stats " + " ".join("%s %d" % (k, st.get(k, 0)) for k in
                          ("samples_taken", "dropped_truncated", "native_merge_fallback", "native_merge_busy")))
