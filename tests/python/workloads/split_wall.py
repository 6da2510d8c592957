"""Workload for wall mode: threads alternate a time.sleep-heavy function and a CPU-bound one in
random chunks; prints the wall time measured in each."""
import random
import sys
import threading
import time

import otelprof

TARGET = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
NTHREADS = 4
spent = {"sleepy_fn": 0.0, "busy_fn": 0.0}
lock = threading.Lock()
done = threading.Event()


def sleepy_fn(seconds):
    time.sleep(seconds)


def busy_fn(seconds):
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        for i in range(100):
            x += i
    return x


def worker(seed):
    rnd = random.Random(seed)
    mine = {"sleepy_fn": 0.0, "busy_fn": 0.0}
    while not done.is_set():
        for fn, lo, hi in ((sleepy_fn, 0.005, 0.04), (busy_fn, 0.002, 0.012)):
            t0 = time.monotonic()
            fn(rnd.uniform(lo, hi))
            mine[fn.__name__] += time.monotonic() - t0
    with lock:
        for k, v in mine.items():
            spent[k] += v


otelprof.start(mode="wall")
threads = [threading.Thread(target=worker, args=(i,), name="wall-%d" % i) for i in range(NTHREADS)]
for t in threads:
    t.start()
while otelprof.stats()["samples_taken"] < TARGET:
    time.sleep(0.1)
done.set()
for t in threads:
    t.join()
samples = otelprof.stats()["samples_taken"]
otelprof.stop()
print("samples %d" % samples)
total = spent["sleepy_fn"] + spent["busy_fn"]
print("measured sleepy_fn %.4f busy_fn %.4f" % (spent["sleepy_fn"] / total, spent["busy_fn"] / total))
