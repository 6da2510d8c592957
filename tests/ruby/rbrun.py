"""Helpers for the Ruby gem's tests: build the extension (normal and AddressSanitizer) into
build/ruby*/, run a Ruby workload with it, and read back what it wrote."""
import os
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, run_profiled
import otlpcheck

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = os.path.join(HERE, "workloads")
SUPPORT = os.path.join(HERE, "support")
# The OpenTelemetry stand-in, loadable as "opentelemetry" and "opentelemetry/sdk".
STANDIN = os.path.join(SUPPORT, "standin")
GEM = os.path.join(ROOT, "ruby")


def missing(why):
    """A component the tests need is absent: a failure under CI, a skip on a developer machine."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


def ruby():
    path = shutil.which("ruby")
    if not path:
        missing("ruby not found: bash scripts/setup_ruby.sh installs it")
    return path


def libasan():
    return subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True,
                          check=True).stdout.strip()


_built = {}


def build_lib(sanitize=""):
    """Builds the extension into build/ruby[-asan]/ext and lays out a lib directory (the gem's
    lib/ copied, the extension beside it) for `ruby -I`; returns that directory."""
    if sanitize in _built:
        return _built[sanitize]
    ruby()
    top = os.path.join(BUILD, "ruby-asan" if sanitize else "ruby")
    ext, lib = os.path.join(top, "ext"), os.path.join(top, "lib")
    os.makedirs(ext, exist_ok=True)
    env = dict(os.environ, OTELPROF_SANITIZE=sanitize)
    for cmd in (["ruby", os.path.join(GEM, "ext", "otelprof", "extconf.rb")], ["make", "-j2", "V=0"]):
        r = subprocess.run(cmd, cwd=ext, env=env, capture_output=True, text=True)
        assert r.returncode == 0, "%s failed:\n%s\n%s" % (" ".join(cmd), r.stdout[-3000:], r.stderr[-3000:])
    # Copied, not linked: lib/otelprof.rb finds the extension by its own real path.
    shutil.copytree(os.path.join(GEM, "lib"), lib, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.so"))
    # Replaced by a rename, never rewritten in place: a Ruby still running may have it mapped.
    so = os.path.join(lib, "otelprof", "otelprof_native.so")
    shutil.copy2(os.path.join(ext, "otelprof_native.so"), so + ".tmp")
    os.replace(so + ".tmp", so)
    _built[sanitize] = lib
    return lib


def asan_env():
    # Ruby keeps memory until exit by design: leaks are not ours to report. Ruby gives each thread
    # an alternate signal stack of its own (malloc'ed), which ASan's thread exit would try to
    # unmap as if it were its own: ASan keeps none (use_sigaltstack=0).
    return {"LD_PRELOAD": libasan(),
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:halt_on_error=1:use_sigaltstack=0"}


def run_rb(args, tmp_path, env=None, timeout=240, asan=False, standin=False):
    """Runs `ruby -I<lib> args...` (a workload name expands to its file) with a clean OTEL_* env;
    with standin, the OpenTelemetry stand-in is on the load path."""
    lib = build_lib("address" if asan else "")
    e = dict(asan_env() if asan else {}, **(env or {}))
    args = list(args)
    if args and not args[0].startswith("-") and os.path.sep not in args[0] and args[0].endswith(".rb"):
        args[0] = os.path.join(WORKLOADS, args[0])
    inc = ["-I", lib] + (["-I", STANDIN] if standin else [])
    return run_profiled([ruby()] + inc + args, tmp_path, env=e, preload=False, timeout=timeout)


def otlp_samples(run, pattern="*.otlp.pb"):
    """Every sample of every OTLP file, after checking each file for conformance (duplicates and
    orphans included)."""
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


def measured(run):
    """The `measured k v k v ...` line a workload prints, as floats."""
    for line in run.stdout.splitlines():
        if line.startswith("measured "):
            parts = line.split()[1:]
            return {parts[i]: float(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    raise AssertionError("no measured line:\n" + run.stdout + run.stderr)
