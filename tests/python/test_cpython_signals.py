"""CPython: the profiling signal never reaches the application or an exec'ed image. Children
made by os.spawnv, os.fork + os.execv and subprocess with a preexec_fn survive wall mode at 1 ms
(CPython's own test_os SpawnTests too), and an application's own SIGPROF use (handler, its own
ITIMER_PROF, SIG_DFL, SIG_IGN, before or after otelprof.start) sees what it sees unprofiled while
the profiler keeps sampling."""
import os
import re

import pytest

from conftest import check_sigprof_app
from pyrun import WORKLOADS, run_py

ACTIONS = ["handler", "handler-notimer", "dfl", "ign"]


def app_run(tmp_path, action, when, env=None):
    r = run_py(["sigprof_app.py", action, when], tmp_path, env=env, timeout=60)
    assert r.rc == 0, f"{action} {when}: exit {r.rc}: {r.stderr[-2000:]}"
    m = re.search(r"calls (\d+) cpu_ms (\d+) samples (\d+)", r.stdout)
    assert m, f"{action} {when}: no result line: {r.stdout} {r.stderr[-2000:]}"
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def unprofiled_rate(tmp_path):
    """Measured right before the profiled run it is compared with (see tests/native/test_signals.py)."""
    calls, cpu_ms, _ = app_run(tmp_path / "unprofiled", "handler", "none")
    assert calls > 0 and cpu_ms > 0
    return calls * 1000.0 / cpu_ms


@pytest.mark.parametrize("mode", ["cpu", "wall"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("action", ACTIONS)
def test_application_sigprof(tmp_path, mode, when, action):
    what = f"{mode}, {action} {when} start"
    base = unprofiled_rate(tmp_path) if action == "handler" else None
    calls, cpu_ms, samples = app_run(tmp_path, action, when, env={"OTELPROF_MODE": mode})
    check_sigprof_app(base, action, calls, cpu_ms, samples, what)


def test_fork_exec_children_survive(tmp_path):
    """1,000 children (spawnv, fork + execv, subprocess with preexec_fn, in turn), each forked
    child running ~2 ms of Python before exec, under wall mode at 1 ms: none killed."""
    r = run_py(["-m", "otelprof", "run", "--mode", "wall", "--interval", "1ms", os.path.join(WORKLOADS, "forkexec.py"),
                "all", "1000"], tmp_path, timeout=300)
    assert r.rc == 0, r.stderr[-3000:]
    m = re.search(r"children (\d+) killed (\d+) failed (\d+)", r.stdout)
    assert m, r.stdout + r.stderr[-2000:]
    assert (int(m.group(2)), int(m.group(3))) == (0, 0), r.stdout + r.stderr[-3000:]


def test_cpython_spawn_tests_pass(tmp_path):
    """CPython's own test_os.SpawnTests under wall mode at 1 ms, three times."""
    for i in range(3):
        r = run_py(["-m", "otelprof", "run", "--mode", "wall", "--interval", "1ms", "-m", "unittest",
                    "test.test_os.SpawnTests"], tmp_path / f"run{i}", timeout=120)
        assert r.rc == 0 and re.search(r"^OK", r.stderr, re.M), r.stderr[-3000:]
        ran = re.search(r"Ran (\d+) tests", r.stderr)
        assert ran and int(ran.group(1)) >= 10, r.stderr[-3000:]
