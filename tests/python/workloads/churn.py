"""Workload: 1,000 short-lived threads (50 alive at a time) under the profiler at 1 kHz."""
import threading
import time

import otelprof


def short_life(n):
    end = time.thread_time() + 0.002 + (n % 5) * 0.001
    while time.thread_time() < end:
        sum(range(20))
    if n % 3 == 0:
        time.sleep(0.001)


otelprof.start(interval="1ms")
started = 0
while started < 1000:
    batch = [threading.Thread(target=short_life, args=(started + i,)) for i in range(50)]
    for t in batch:
        t.start()
    for t in batch:
        t.join()
    started += len(batch)
st = otelprof.stats()
otelprof.stop()
print("threads %d samples %d walk_inconsistent %d walk_unreadable %d" % (
    started, st["samples_taken"], st["walk_inconsistent"], st["walk_unreadable"]))
