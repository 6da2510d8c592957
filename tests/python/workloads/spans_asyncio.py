"""Workload: 50 concurrent asyncio tasks, each inside its own span, alternating CPU work (a
function of its own) with awaits, plus a task working outside any span. Prints
"span <function> <trace id> <span id>" per task."""
import asyncio
import random
import time

import otelprof
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

otelprof.start(interval="5ms")
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("asyncio-test")
lines = []


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


def make(name):
    ns = {"busy": busy}
    exec("def %s(s):\n    busy(s)\n" % name, ns)
    return ns[name]


def outside_work(s):
    busy(s)


async def task(n):
    fn = make("task_work_%d" % n)
    rnd = random.Random(n)
    with tracer.start_as_current_span("task-%d" % n) as span:
        sc = span.get_span_context()
        lines.append("span %s %032x %016x" % (fn.__name__, sc.trace_id, sc.span_id))
        for _ in range(15):
            fn(rnd.uniform(0.001, 0.006))
            await asyncio.sleep(rnd.uniform(0, 0.004))


async def outside():
    for _ in range(60):
        outside_work(0.002)
        await asyncio.sleep(0.001)


async def main():
    await asyncio.gather(outside(), *(task(i) for i in range(50)))


asyncio.run(main())
otelprof.stop()
print("\n".join(lines))
