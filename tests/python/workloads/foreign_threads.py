"""Workload: threads that never go through threading. One started with _thread.start_new_thread,
one created in C (pthread_create through ctypes) that enters Python through the callback's
PyGILState_Ensure. Each burns CPU in a function of its own; prints "cpu <function> <seconds>"."""
import ctypes
import sys
import threading
import time
import _thread

import otelprof

SECS = float(sys.argv[1]) if len(sys.argv) > 1 else 1.5
otelprof.start(interval="10ms")
cpu = {}
done = threading.Event()


def burn(name):
    t0 = time.thread_time()
    end = t0 + SECS
    while time.thread_time() < end:
        sum(range(100))
    cpu[name] = time.thread_time() - t0


def raw_thread_fn():
    burn("raw_thread_fn")


def raw_entry():
    try:
        raw_thread_fn()
    finally:
        done.set()


def c_thread_fn():
    burn("c_thread_fn")


_thread.start_new_thread(raw_entry, ())

libc = ctypes.CDLL(None)
START = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p)


def c_entry(arg):
    c_thread_fn()
    return None


start = START(c_entry)
tid = ctypes.c_ulong()
assert libc.pthread_create(ctypes.byref(tid), None, start, None) == 0
libc.pthread_join(tid, None)  # ctypes lets the GIL go during the call
done.wait()
st = otelprof.stats()
otelprof.stop()
for name, secs in sorted(cpu.items()):
    print("cpu %s %.3f" % (name, secs))
print("stats python_threads_scanned %d" % st.get("python_threads_scanned", -1))
