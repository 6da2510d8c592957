#!/usr/bin/env python3
"""Fixed cost of profiling a short process: the CPU time (user + system) that otelprof adds to a
program that does almost nothing, i.e. its start-up and exit work (loading, arming, the final
profile and its files), measured interleaved with and without it.

    python3 bench/fixed_cost.py [--runs N] [--endpoint URL]

Rows: `LD_PRELOAD=libotelprof.so /bin/true`, and CPython `-c pass` with `import otelprof;
otelprof.start()` against `-c pass` (when the package is importable). With --endpoint the
profiles go to that OTLP endpoint instead of files. Prints the median extra CPU ms per row. (No
RSS figure: a child's peak RSS includes the forked parent's pages before exec.)"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("OTELPROF_BUILD", os.path.join(ROOT, "build"))
LIB = os.path.join(BUILD, "lib", "libotelprof.so")


def run(cmd, env):
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"fixed_cost: {cmd} failed ({status})")
    return ru.ru_utime + ru.ru_stime


def row(name, base_cmd, prof_cmd, prof_env, runs):
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTELPROF_", "OTEL_"))}
    env = dict(base_env, **prof_env)
    cpu_a, cpu_b = [], []
    for _ in range(runs):  # interleaved: A B A B ...
        cpu_a.append(run(base_cmd, base_env))
        cpu_b.append(run(prof_cmd, env))
    extra = [(b - a) * 1000 for a, b in zip(cpu_a, cpu_b)]
    print(f"| {name} | {statistics.median(cpu_a) * 1000:.1f} | {statistics.median(extra):+.1f} "
          f"[{min(extra):+.1f} .. {max(extra):+.1f}] |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--endpoint", help="OTLP/HTTP endpoint (profiles sent, not written)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        env = {"OTELPROF_OUTPUT_DIR": out}
        if args.endpoint:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = args.endpoint
        print("| process | CPU ms without (median) | extra CPU ms with otelprof (median [min .. max]) |")
        print("|---|---|---|")
        row("native `/bin/true`", ["/bin/true"], ["/bin/true"], dict(env, LD_PRELOAD=LIB), args.runs)
        py = sys.executable
        if subprocess.run([py, "-c", "import otelprof"], capture_output=True).returncode == 0:
            row(f"python {sys.version.split()[0]} `-c pass`", [py, "-c", "pass"],
                [py, "-c", "import otelprof; otelprof.start()"], env, args.runs)
        else:
            print(f"(python row skipped: otelprof is not importable by {py})")


if __name__ == "__main__":
    main()
