"""Benchmark workloads with a known CPU split between named functions, and a fixed amount of work
so that wall time measures the profiler's overhead."""
import hashlib
import os
import shutil
import subprocess
import sys
import time

from http_load import HttpLoad


class Workload:
    """driver: optional callable run beside each process (e.g. an HTTP load), see bench/run."""

    def __init__(self, name, cmd, split, cpu_bound=True, scaling=False, kind="native", driver=None):
        self.name, self.cmd, self.split = name, cmd, split
        self.cpu_bound, self.scaling, self.kind, self.driver = cpu_bound, scaling, kind, driver
        self.python = cmd[0] if kind == "python" else None  # the interpreter a Python row runs on


NATIVE_SPLIT = {"bench_hot": 0.70, "bench_cold": 0.30}


def _calibrate_native(binary):
    """Seconds of CPU per work unit of native_bench on this machine."""
    n = 2000
    for _ in range(6):
        t0 = time.monotonic()
        subprocess.run([binary, "1", "0", str(n)], capture_output=True, check=True)
        dt = time.monotonic() - t0
        if dt > 0.2:
            return dt / n
        n *= 4
    return dt / n


def native_workloads(build, quick):
    binary = os.path.join(build, "bin", "native_bench")
    unit = _calibrate_native(binary)
    target = 0.4 if quick else 3.0  # seconds of CPU per run

    def w(name, threads, depth, scaling=False, total=target):
        units = max(1, int(total / threads / unit))
        return Workload(name, [binary, str(threads), str(depth), str(units)], NATIVE_SPLIT, scaling=scaling)

    rows = [w("native 1 thread", 1, 0), w("native 8 threads", 8, 0), w("native recursion 200", 1, 200)]
    rows += [w(f"scale: {n} threads", n, 0, scaling=True) for n in (1, 8, 64, 512)]
    rows += [w(f"scale: depth {d}", 1, d, scaling=True) for d in (10, 100, 1000)]
    return rows


PY_SPLIT = {"py_hot": 0.70, "py_cold": 0.30}


def _calibrate_python(py, script):
    out = subprocess.run([py, script, "calibrate"], capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def python_workloads(root, quick):
    script = os.path.join(root, "bench", "py_workload.py")
    py = sys.executable
    py_unit, hash_unit = _calibrate_python(py, script)
    target = 0.5 if quick else 3.0  # seconds of CPU per run
    units = lambda per: str(max(1, int(target / per)))
    rows = [
        Workload("python 1 thread", [py, script, "single", units(py_unit)], PY_SPLIT, kind="python"),
        Workload("python 8 threads", [py, script, "threads", units(py_unit)], PY_SPLIT, kind="python"),
        Workload("python asyncio 200 tasks", [py, script, "asyncio", units(py_unit)], PY_SPLIT, kind="python"),
        Workload("python hashlib pool (GIL released)", [py, script, "hashlib", units(hash_unit)],
                 {"hash_hot": 0.70, "hash_cold": 0.30}, kind="python"),
    ]
    # The same single-thread and 8-thread rows on CPython 3.13 (its virtual environment from
    # scripts/python_versions.sh setup), beside py-spy. Missing outside CI: the rows say so.
    py13 = os.path.join(root, "build", "py3.13", "bin", "python")
    if os.path.exists(py13):
        unit13, _ = _calibrate_python(py13, script)
        rows += [Workload("python 3.13 1 thread", [py13, script, "single", units(unit13)], PY_SPLIT, kind="python"),
                 Workload("python 3.13 8 threads", [py13, script, "threads", units(unit13)], PY_SPLIT, kind="python")]
    elif os.environ.get("CI") == "true":
        raise RuntimeError(f"{py13} missing (scripts/python_versions.sh setup)")
    else:
        print(f"bench: {py13} missing: no CPython 3.13 rows (scripts/python_versions.sh setup)", file=sys.stderr)
    return rows


# ---- JVM --------------------------------------------------------------------------------------

JAVA_SPLIT = {"BenchSplit.hot": 0.70, "BenchSplit.cold": 0.30}
JVM_FLAGS = ["-Xms64m", "-Xmx256m"]  # the same heap in every run, so RSS differences are the profiler's


def find_jdk():
    """The JDK's home (JAVA_HOME, else the one javac on PATH belongs to), or None."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "javac")):
        return home
    javac = shutil.which("javac")
    return os.path.dirname(os.path.dirname(os.path.realpath(javac))) if javac else None


def _compile_java(jdk, sources, cache_root):
    """Compiles the sources once into a directory named for their content and the JDK."""
    h = hashlib.sha256(os.path.realpath(jdk).encode())
    for src in sources:
        h.update(open(src, "rb").read())
    out = os.path.join(cache_root, h.hexdigest()[:16])
    if not os.path.exists(os.path.join(out, ".done")):
        os.makedirs(out, exist_ok=True)
        subprocess.run([os.path.join(jdk, "bin", "javac"), "--release", "17", "-d", out] + sources,
                       check=True, capture_output=True)
        open(os.path.join(out, ".done"), "w").close()
    return out


def java_workloads(root, build, quick):
    """The JVM rows: one thread, 8 threads, and an HTTP service under a bounded load. Without a
    JDK there are none (and the harness says why), except under CI, where that is an error."""
    jdk = find_jdk()
    if not jdk:
        if os.environ.get("CI") == "true":
            raise RuntimeError("no JDK (javac) found: set JAVA_HOME or install openjdk-17-jdk")
        print("bench: no JDK (javac) found: no Java rows (set JAVA_HOME or install openjdk-17-jdk)",
              file=sys.stderr)
        return []
    src = os.path.join(root, "bench", "java")
    classes = _compile_java(jdk, [os.path.join(src, f) for f in ("BenchSplit.java", "BenchHttp.java")],
                            os.path.join(build, "bench-java"))
    java = [os.path.join(jdk, "bin", "java")] + JVM_FLAGS + ["-cp", classes]
    out = subprocess.run(java + ["BenchSplit", "calibrate"], capture_output=True, text=True, check=True)
    unit = float(out.stdout.split()[0])
    target = 0.4 if quick else 3.0  # seconds of CPU per run, the JVM's start not counted
    units = lambda total: str(max(1, int(total / unit)))
    # HTTP: ~5 ms of CPU per request from 4 keep-alive connections (the server's 4 workers).
    per_request = max(1, int(0.005 / unit))
    requests = max(20, int(target / (per_request * unit)))
    return [
        Workload("java 1 thread", java + ["BenchSplit", "single", units(target)], JAVA_SPLIT, kind="java"),
        Workload("java 8 threads", java + ["BenchSplit", "threads", units(target), "8"], JAVA_SPLIT, kind="java"),
        Workload(f"java HTTP service ({requests} requests)", java + ["BenchHttp"], JAVA_SPLIT, kind="java",
                 driver=HttpLoad(f"/work?units={per_request}", requests, 4)),
    ]
