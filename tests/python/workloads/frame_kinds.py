"""Workload for the kinds of frames 3.13's walk tells apart: a class whose __init__ the interpreter
specializes (CALL_ALLOC_AND_ENTER_INIT pushes a trampoline frame of its own under __init__),
generators run from Python and from C, closures (a prologue before the first RESUME) and
__del__ run from a deallocation. argv: seconds, native_frames (0/1). Prints the walk counters."""
import sys
import time

import otelprof

otelprof.start(interval="2ms", native_frames=sys.argv[2] if len(sys.argv) > 2 else "0")


class Point:
    def __init__(self, x):
        s = 0
        for i in range(200):
            s += i * x
        self.s = s


class Noted:
    def __del__(self):
        sum(range(200))


def squares(n):
    for i in range(n):
        yield i * i


def make_closure(k):
    cell = [k]

    def closed(v):
        return v + cell[0]
    return closed


def kinds_loop(secs):
    end = time.thread_time() + secs
    add = make_closure(3)
    while time.thread_time() < end:
        for x in range(20):
            Point(x)
        total = 0
        for v in squares(200):
            total += add(v)
        sum(squares(200))
        Noted()


kinds_loop(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
st = otelprof.stats()
otelprof.stop()
print("stats " + " ".join("%s %d" % (k, st[k]) for k in
                          ("walk_ok", "walk_inconsistent", "walk_unreadable", "frames_not_code",
                           "native_merge_fallback")))
