"""Workload: code objects that die right after they ran. Each round compiles a new function
(its own name, same size, so the allocator hands the next one the freed address), runs it for
about 2 ms of CPU inside a span of its own, and drops it, so it dies before it can be pinned.
A sample must be named by the function that ran, never by a later one at the same address; its
span link tells which one ran. Prints "span <function> <trace id> <span id>" per round and
"stats codes_dead <n> ..."."""
import sys
import time

import otelprof
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 600
otelprof.start(interval="1ms")
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("code-churn")
lines = []


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


def ids(span):
    sc = span.get_span_context()
    return "%032x %016x" % (sc.trace_id, sc.span_id)


for r in range(rounds):
    name = "churn_%05d" % r
    ns = {"busy": busy}
    exec("def %s(s):\n    busy(s)\n" % name, ns)
    fn = ns.pop(name)  # no cycle through the globals: the code dies with the function
    del ns
    with tracer.start_as_current_span(name) as span:
        lines.append("span %s %s" % (name, ids(span)))
        fn(0.002)
    del fn

busy(0.05)
st = otelprof.stats()
otelprof.stop()
print("\n".join(lines))
print("stats codes_dead %d codes_pinned %d codes_named_unpinned %d"
      % (st.get("codes_dead", 0), st.get("codes_pinned", 0), st.get("codes_named_unpinned", 0)))
