"""Workload for native frames merged with Python frames: Python calls into C (sorted) which calls
back into Python (the key function), and Python calls C that burns CPU itself (hashlib)."""
import hashlib
import sys
import time

import otelprof

otelprof.start(interval="5ms", native_frames="1")


def keyfn(x):
    s = 0
    for i in range(300):
        s += i
    return s


def outer_fn(secs):
    end = time.thread_time() + secs
    while time.thread_time() < end:
        sorted(range(200), key=keyfn)


def hasher(secs):
    b = b"x" * (1 << 20)
    end = time.thread_time() + secs
    while time.thread_time() < end:
        hashlib.sha256(b).digest()


secs = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
outer_fn(secs)
hasher(secs / 2)
st = otelprof.stats()
otelprof.stop()
print("stats native_merge_fallback %d walk_ok %d" % (st["native_merge_fallback"], st["walk_ok"]))
