"""Workload: profiles, then forks with os.fork() and with multiprocessing (fork start method);
each process burns CPU in a function of its own. Prints "pid <role> <pid>"."""
import multiprocessing
import os
import sys
import time

import otelprof


def burn(seconds):
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        sum(range(50))


def parent_work():
    burn(0.5)


def fork_child_work():
    burn(0.5)


def mp_child_work():
    burn(0.5)


otelprof.start()
print("pid parent %d" % os.getpid(), flush=True)
parent_work()
pid = os.fork()
if pid == 0:
    print("pid fork_child %d" % os.getpid(), flush=True)
    fork_child_work()
    sys.exit(0)  # a normal exit: atexit writes the child's final profile
ctx = multiprocessing.get_context("fork")
p = ctx.Process(target=mp_child_work)
p.start()
print("pid mp_child %d" % p.pid, flush=True)
parent_work()
p.join()
_, status = os.waitpid(pid, 0)
assert status == 0 and p.exitcode == 0, (status, p.exitcode)
otelprof.stop()
