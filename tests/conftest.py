"""Shared fixtures for otelprof's integration tests: where the build is, and how to run a
workload under the profiler and read back what it wrote."""
import glob
import os
import resource
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
# The JVM tests' fixtures (the JDKs, the agent, the compiled workloads) are defined with their
# helpers in tests/jvm/jvmrun.py and made visible here: a tests/jvm/conftest.py would replace this
# module as `conftest` for every later `from conftest import ...` in the run.
sys.path.insert(0, os.path.join(ROOT, "tests", "jvm"))
from jvmrun import agent, classes, jdk, jdk17, jdk25  # noqa: E402,F401  (pytest fixtures)

BUILD = os.environ.get("OTELPROF_BUILD", os.path.join(ROOT, "build"))
BUILD_ASAN = os.environ.get("OTELPROF_BUILD_ASAN", os.path.join(ROOT, "build-asan"))


def lib_path(build=BUILD):
    return os.path.join(build, "lib", "libotelprof.so")


def bin_path(name, build=BUILD):
    return os.path.join(build, "bin", name)


class Run:
    """Result of one profiled run: exit status, output, rusage and the files written."""

    def __init__(self, proc_rc, stdout, stderr, cpu_s, out_dir, wall_s):
        self.rc = proc_rc
        self.stdout = stdout
        self.stderr = stderr
        self.cpu_s = cpu_s
        self.out_dir = out_dir
        self.wall_s = wall_s

    def files(self, pattern):
        return sorted(glob.glob(os.path.join(self.out_dir, pattern)))

    def folded(self):
        """{stack tuple root..leaf: count} from the whole-run folded file."""
        files = self.files("*.folded")
        assert len(files) == 1, f"expected one folded file, found {files}"
        stacks = {}
        with open(files[0]) as f:
            for line in f:
                stack, _, n = line.rstrip("\n").rpartition(" ")
                stacks[tuple(stack.split(";"))] = stacks.get(tuple(stack.split(";")), 0) + int(n)
        return stacks


def run_profiled(cmd, tmp_path, env=None, preload=True, build=BUILD, timeout=120, extra_preload=None):
    """Runs cmd with otelprof (LD_PRELOAD unless preload=False) writing into tmp_path/out."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    out_dir = str(tmp_path / "out")
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("OTELPROF_") or k.startswith("OTEL_"):
            del e[k]
    e["OTELPROF_OUTPUT_DIR"] = out_dir
    if preload:
        libs = ([extra_preload] if extra_preload else []) + [lib_path(build)]
        e["LD_PRELOAD"] = ":".join(libs)
    if env:
        e.update(env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        raise
    wall = time.monotonic() - t0
    # Tests run one child at a time, so the growth of RUSAGE_CHILDREN is this child's usage.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(p.returncode, out.decode(errors="replace"), err.decode(errors="replace"), cpu, out_dir, wall)


def check_sigprof_app(base, action, calls, cpu_ms, samples, what):
    """An application's own SIGPROF use under the profiler (tests/native/api_sigprof.c and
    tests/python/workloads/sigprof_app.py): its handler runs as often per CPU second as unprofiled
    (base, +-25%) when it arms its own timer, never otherwise; the profiler still samples (1.5 s of
    CPU at 10 ms is 150 samples)."""
    if action == "handler":
        # ITIMER_PROF advances by scheduler ticks (4 ms here), CPU time is exact: a tick that lands
        # while one of the profiler's short-lived threads runs charges a whole tick. Unloaded, 10
        # runs of the wall-mode case gave 0.991-1.005 of the unprofiled rate; under a load average
        # of ~5, 1.13 was seen. The defects this guards against (signals taken from the
        # application, or added to it) move the rate by half or more, so +-25% keeps them caught.
        rate = calls * 1000.0 / cpu_ms
        assert 0.75 * base <= rate <= 1.25 * base, (
            f"{what}: the application's handler ran {rate:.1f}/CPU-s, {base:.1f} unprofiled")
    else:
        assert calls == 0, f"{what}: the application's handler saw {calls} signals it never asked for"
    assert samples >= 100, f"{what}: the profiler took only {samples} samples"


def share(stacks, fn, among):
    """Fraction of samples whose stack contains fn, among samples containing any of `among`."""
    total = sum(n for s, n in stacks.items() if any(a in s for a in among))
    hit = sum(n for s, n in stacks.items() if fn in s)
    assert total > 0, "no samples in any of " + ",".join(among)
    return hit / total


@pytest.fixture(scope="session")
def build_dir():
    assert os.path.exists(lib_path()), f"{lib_path()} missing: build first (scripts/test.sh does)"
    return BUILD
