"""Workload (3.12+): eager tasks. Under asyncio.eager_task_factory a new task's first step runs at
once inside create_task, in the task's own context, and the caller resumes when that step awaits;
nothing passes through the event loop's handles on the way back. Each of 20 parent tasks runs in
its own span, creates a child task that enters a span of its own and then awaits, and goes on with
CPU work of its own: that work must carry the parent's span, not the child's. Prints
"span <function> <trace id> <span id>" per parent and per child."""
import asyncio
import random
import time

import otelprof
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

otelprof.start(interval="5ms")
trace.set_tracer_provider(TracerProvider())
tracer = trace.get_tracer("eager-test")
lines = []


def busy(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


def make(name):
    ns = {"busy": busy}
    exec("def %s(s):\n    busy(s)\n" % name, ns)
    return ns[name]


def record(fn, span):
    sc = span.get_span_context()
    lines.append("span %s %032x %016x" % (fn.__name__, sc.trace_id, sc.span_id))


async def child(n):
    fn = make("child_work_%d" % n)
    with tracer.start_as_current_span("child-%d" % n) as span:
        record(fn, span)
        await asyncio.sleep(0.001)  # the parent resumes here, the child's span still open
        for _ in range(5):
            fn(0.003)
            await asyncio.sleep(0.002)


async def parent(n):
    fn = make("parent_work_%d" % n)
    rnd = random.Random(n)
    with tracer.start_as_current_span("parent-%d" % n) as span:
        record(fn, span)
        for i in range(6):
            t = asyncio.get_running_loop().create_task(child(n * 100 + i))
            fn(rnd.uniform(0.002, 0.005))  # right after the child's eager first step
            await t


async def main():
    asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)
    await asyncio.gather(*(parent(i) for i in range(20)))


asyncio.run(main())
otelprof.stop()
print("\n".join(lines))
