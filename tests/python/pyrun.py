"""Helpers for the CPython adapter's tests: run a workload under the interpreter that has
otelprof installed, and read back what it wrote."""
import os
import subprocess
import sys

from conftest import run_profiled
import otlpcheck

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")


ROOT = os.path.dirname(os.path.dirname(HERE))
# OTELPROF_PY_ASAN=<dir>: every workload runs the ASan build in <dir> (see asan_build()).
ASAN_DIR = os.environ.get("OTELPROF_PY_ASAN", "")


def libasan():
    return subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()


def asan_env(lib_dir):
    return {"PYTHONPATH": lib_dir, "LD_PRELOAD": libasan(),
            # CPython itself keeps memory until exit by design: leaks are not ours to report.
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1"}


def asan_build(out_dir):
    """Builds otelprof._native with AddressSanitizer into out_dir/lib (the package's .py files are
    linked beside it); returns that directory, for PYTHONPATH."""
    lib = os.path.join(out_dir, "lib")
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", lib,
                    "--build-temp", os.path.join(out_dir, "temp")], cwd=ROOT, check=True,
                   env=dict(os.environ, OTELPROF_SANITIZE="address"), capture_output=True)
    pkg = os.path.join(ROOT, "cpython", "otelprof")
    for f in os.listdir(pkg):
        if f.endswith(".py") and not os.path.exists(os.path.join(lib, "otelprof", f)):
            os.symlink(os.path.join(pkg, f), os.path.join(lib, "otelprof", f))
    return lib


def run_py(args, tmp_path, env=None, timeout=240, python=None, asan=None):
    """Runs `python args...` (a workload name expands to its file) with a clean OTEL_* env; with
    asan (or OTELPROF_PY_ASAN) set to an ASan build directory, under AddressSanitizer."""
    asan = asan or ASAN_DIR
    if asan:
        env = dict(asan_env(asan), **(env or {}))
        if "PYTHONPATH" in (env or {}) and env["PYTHONPATH"] != asan:
            env["PYTHONPATH"] = asan + os.pathsep + env["PYTHONPATH"]
    args = list(args)
    if args and not args[0].startswith("-") and not os.path.sep in args[0] and args[0].endswith(".py"):
        args[0] = os.path.join(WORKLOADS, args[0])
    return run_profiled([python or sys.executable] + args, tmp_path, env=env, preload=False, timeout=timeout)


def otlp_samples(run, pattern="*.otlp.pb"):
    """Every sample of every OTLP file, after checking each file for conformance."""
    out = []
    files = run.files(pattern)
    assert files, "no OTLP files written: " + run.stderr
    for f in files:
        data = otlpcheck.load(f)
        errors = otlpcheck.check(data, dupes=True, orphans=True)
        assert errors == [], "%s: %s" % (f, errors[:5])
        out.extend(otlpcheck.stacks(data))
    return out


def share(samples, fn, among):
    total = sum(v for names, v, _ in samples if any(a in names for a in among))
    hit = sum(v for names, v, _ in samples if fn in names)
    assert total > 0, "no samples in any of %s" % (among,)
    return hit / total, total
