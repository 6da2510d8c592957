"""Python benchmark workloads: a fixed amount of work split 70/30 between py_hot and py_cold (or
hash_hot and hash_cold for the GIL-releasing hashlib pool).
    py_workload.py single|threads|asyncio|hashlib <units>
    py_workload.py calibrate      prints seconds of CPU per unit of each kind, for the harness
The harness calibrates once, without a profiler, and passes a unit count: a workload that timed
itself would do less work under a profiler and hide the overhead. Each call loops long enough
(N iterations) that its fixed call cost is negligible and the split is 70/30 by construction."""
import asyncio
import hashlib
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor


def py_hot(n):
    x = 0
    for i in range(7 * n):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def py_cold(n):
    x = 0
    for i in range(3 * n):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


N = 20000  # iterations per unit of py_cold / 3: one unit is py_hot(N) + py_cold(N)


def unit():
    py_hot(N)
    py_cold(N)


def single(units):
    for _ in range(units):
        unit()


def threads(units, n=8):
    per = max(1, units // n)

    def run():
        for _ in range(per):
            unit()
    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def run_asyncio(units, tasks=200, steps=10):
    # The same total work as `units` units, spread over the tasks in steps with awaits between.
    n = max(1, units * N // (tasks * steps))

    async def task():
        for _ in range(steps):
            py_hot(n)
            await asyncio.sleep(0)
            py_cold(n)
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(task() for _ in range(tasks)))
    asyncio.run(main())


BUF = b"x" * (1 << 20)


def hash_hot():
    for _ in range(7):
        hashlib.sha256(BUF).digest()


def hash_cold():
    for _ in range(3):
        hashlib.sha256(BUF).digest()


def hash_job(_=None):
    hash_hot()
    hash_cold()


def hashlib_pool(units, workers=4):
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(hash_job, range(units)))


def calibrate():
    """Seconds of CPU per unit: Python loops, and hashlib jobs."""
    t0 = time.process_time()
    for _ in range(20):
        unit()
    py = (time.process_time() - t0) / 20
    t0 = time.process_time()
    for _ in range(10):
        hash_job()
    print(py, (time.process_time() - t0) / 10)


if __name__ == "__main__":
    if sys.argv[1] == "calibrate":
        calibrate()
        sys.exit(0)
    kind, units = sys.argv[1], int(sys.argv[2])
    {"single": single, "threads": threads, "asyncio": run_asyncio, "hashlib": hashlib_pool}[kind](units)
    print("ok")
