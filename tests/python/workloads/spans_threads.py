"""Workload: 8 threads, each in an outer span, running nested inner spans; every span runs a
function of its own (so a sample's stack names the span it must carry), with work outside any
span in between. Prints "span <function> <trace id> <span id>" per span."""
import threading
import time

import otelprof
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

otelprof.start(interval="5ms")
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("spans-test")
ROUNDS = 12
lines = []
lock = threading.Lock()


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


def make(name):
    ns = {"busy": busy}
    exec("def %s(s):\n    busy(s)\n" % name, ns)
    return ns[name]


def ids(span):
    sc = span.get_span_context()
    return "%032x %016x" % (sc.trace_id, sc.span_id)


def outside_work(s):
    busy(s)


def worker(n):
    outer_fn = make("outer_t%d" % n)
    with tracer.start_as_current_span("outer-%d" % n) as outer:
        with lock:
            lines.append("span %s %s" % (outer_fn.__name__, ids(outer)))
        for r in range(ROUNDS):
            outer_fn(0.004)
            inner_fn = make("inner_t%d_r%d" % (n, r))
            with tracer.start_as_current_span("inner-%d-%d" % (n, r)) as inner:
                with lock:
                    lines.append("span %s %s" % (inner_fn.__name__, ids(inner)))
                inner_fn(0.01)
            outer_fn(0.004)
    outside_work(0.02)


threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
outside_work(0.2)
for t in threads:
    t.join()
otelprof.stop()
print("\n".join(lines))
