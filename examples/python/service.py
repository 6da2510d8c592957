"""Example service for the CPython adapter: an "orders" service instrumented with the
OpenTelemetry SDK. Worker threads handle requests (pricing in Python, hashing in C with the GIL
released) and an asyncio loop serves inventory lookups, every request inside its own span.

    python -m otelprof run --service-name orders -- examples/python/service.py [seconds]
"""
import asyncio
import hashlib
import json
import random
import sys
import threading
import time

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

try:
    import otelprof
    PROCESSORS = [otelprof.ProfileIdSpanProcessor()]  # pyroscope.profile.id on root spans
except ImportError:
    PROCESSORS = []

provider = TracerProvider()
for p in PROCESSORS:
    provider.add_span_processor(p)
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("orders")
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
PAYLOAD = random.Random(1).randbytes(1 << 20)


def price_order(items):
    total = 0.0
    for sku, qty in items:
        base = sum((sku * k) % 97 for k in range(2000)) / 100.0
        total += base * qty
    return round(total, 2)


def sign_receipt(order_id):
    digest = hashlib.sha256(PAYLOAD + str(order_id).encode())
    for _ in range(20):
        digest = hashlib.sha256(digest.digest() + PAYLOAD)
    return digest.hexdigest()


def render(order):
    return json.dumps(order, sort_keys=True)


def handle_order(order_id, rnd):
    with tracer.start_as_current_span("POST /orders") as span:
        span.set_attribute("order.id", order_id)
        items = [(rnd.randrange(1, 500), rnd.randrange(1, 4)) for _ in range(rnd.randrange(1, 6))]
        with tracer.start_as_current_span("price"):
            total = price_order(items)
        with tracer.start_as_current_span("sign"):
            receipt = sign_receipt(order_id)
        time.sleep(rnd.uniform(0.001, 0.01))  # the database
        return render({"id": order_id, "total": total, "receipt": receipt})


def order_worker(n, deadline):
    rnd = random.Random(n)
    i = 0
    while time.monotonic() < deadline:
        handle_order(n * 100000 + i, rnd)
        i += 1


def check_stock(sku):
    return sum(hash((sku, k)) & 7 for k in range(3000))


async def inventory_request(sku):
    with tracer.start_as_current_span("GET /inventory") as span:
        span.set_attribute("sku", sku)
        for _ in range(3):
            check_stock(sku)
            await asyncio.sleep(0.002)  # another service


async def inventory_server(deadline):
    sku = 0
    while time.monotonic() < deadline:
        await asyncio.gather(*(inventory_request(sku + k) for k in range(10)))
        sku += 10


def main():
    deadline = time.monotonic() + SECONDS
    workers = [threading.Thread(target=order_worker, args=(n, deadline), name="orders-%d" % n)
               for n in range(3)]
    for t in workers:
        t.start()
    loop_thread = threading.Thread(target=lambda: asyncio.run(inventory_server(deadline)),
                                   name="inventory-loop")
    loop_thread.start()
    for t in workers + [loop_thread]:
        t.join()
    print("orders service: done")


if __name__ == "__main__":
    main()
