"""Workload: hashlib on large buffers from several threads (the GIL is released while hashing)
next to a pure-Python thread; prints the thread CPU time spent in each calling function."""
import hashlib
import threading
import time

import otelprof

BUF = b"x" * (8 << 20)
spent = {"hash_worker": 0.0, "python_worker": 0.0}
lock = threading.Lock()


def hash_worker(rounds):
    t0 = time.thread_time()
    for _ in range(rounds):
        hashlib.sha256(BUF).digest()
    with lock:
        spent["hash_worker"] += time.thread_time() - t0


def python_worker(seconds):
    t0 = time.thread_time()
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += sum(range(100))
    with lock:
        spent["python_worker"] += time.thread_time() - t0


otelprof.start()
threads = [threading.Thread(target=hash_worker, args=(60,)) for _ in range(3)]
threads.append(threading.Thread(target=python_worker, args=(2.0,)))
for t in threads:
    t.start()
for t in threads:
    t.join()
st = otelprof.stats()
otelprof.stop()
print("cpu hash_worker %.3f python_worker %.3f" % (spent["hash_worker"], spent["python_worker"]))
