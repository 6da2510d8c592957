"""Workload: threads alternate two pure-Python functions, ~70/30 by CPU time, in chunks of random
length (so the split cannot phase-lock with the sampling period). Prints the CPU time measured in
each function; runs until the profiler has taken the number of samples given in argv[1]."""
import random
import sys
import threading
import time

import otelprof

TARGET = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
NTHREADS = 3
spent = {"heavy_fn": 0.0, "light_fn": 0.0}
lock = threading.Lock()
done = threading.Event()


def spin(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(200):
            x += i * i
    return x


def heavy_fn(seconds):
    return spin(seconds)


def light_fn(seconds):
    return spin(seconds)


def worker(seed):
    rnd = random.Random(seed)
    mine = {"heavy_fn": 0.0, "light_fn": 0.0}
    while not done.is_set():
        chunk = rnd.uniform(0.002, 0.03)
        for fn, share in ((heavy_fn, 0.7), (light_fn, 0.3)):
            t0 = time.thread_time()
            fn(chunk * share)
            mine[fn.__name__] += time.thread_time() - t0
    with lock:
        for k, v in mine.items():
            spent[k] += v


otelprof.start()
threads = [threading.Thread(target=worker, args=(i,), name="split-%d" % i) for i in range(NTHREADS)]
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
total = spent["heavy_fn"] + spent["light_fn"]
print("measured heavy_fn %.4f light_fn %.4f" % (spent["heavy_fn"] / total, spent["light_fn"] / total))
