"""Python benchmark workloads: a fixed amount of work split 70/30 between py_hot and py_cold (or
hash_hot and hash_cold for the GIL-releasing hashlib pool).
    py_workload.py single|threads|asyncio|hashlib <seconds-of-work>"""
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


def _calibrate():
    t0 = time.process_time()
    py_hot(10000)
    py_cold(10000)
    return (time.process_time() - t0) / 10000  # seconds per n


def units_for(seconds):
    # One unit = py_hot(100) + py_cold(100).
    return max(1, int(seconds / (_calibrate() * 100)))


def single(seconds):
    for _ in range(units_for(seconds)):
        py_hot(100)
        py_cold(100)


def threads(seconds, n=8):
    units = units_for(seconds) // n
    def run():
        for _ in range(units):
            py_hot(100)
            py_cold(100)
    ts = [threading.Thread(target=run) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def run_asyncio(seconds, tasks=200):
    units = max(1, units_for(seconds) // tasks)

    async def task():
        for _ in range(units):
            py_hot(100)
            await asyncio.sleep(0)
            py_cold(100)
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


def hashlib_pool(seconds, workers=4):
    t0 = time.process_time()
    hash_hot()
    hash_cold()
    per = max(time.process_time() - t0, 1e-4)
    jobs = max(workers, int(seconds / per))

    def job(_):
        hash_hot()
        hash_cold()
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(job, range(jobs)))


if __name__ == "__main__":
    kind, secs = sys.argv[1], float(sys.argv[2])
    {"single": single, "threads": threads, "asyncio": run_asyncio, "hashlib": hashlib_pool}[kind](secs)
    print("ok")
