"""The signal path makes no system call per sample in steady state: the tid and the OS thread
name are cached per thread (the name is re-read once per thread per profile period), and a process
that writes files never maps libcurl."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import bin_path, lib_path, run_profiled


def _strace():
    path = shutil.which("strace")
    if not path and os.environ.get("CI") == "true":
        pytest.fail("strace missing (bash scripts/setup.sh installs it)")
    if not path:
        pytest.skip("strace missing")
    return path


def _calls(summary):
    """{syscall: calls} from `strace -c` output."""
    out = {}
    for line in summary.splitlines():
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors], syscall
        if len(f) >= 5 and re.fullmatch(r"[\d.]+", f[0]) and f[3].isdigit():
            out[f[-1]] = int(f[3])
    return out


def test_no_gettid_or_prctl_per_sample(build_dir, tmp_path):
    strace = _strace()
    trace = str(tmp_path / "strace.txt")
    # 4 threads burning 1.5 s of CPU each at 10 ms: ~600 samples; two profile periods.
    # strace itself is not profiled: the library is preloaded into the traced program only.
    r = run_profiled([strace, "-f", "-qq", "-c", "-o", trace, "-e", "trace=gettid,prctl",
                      "-E", "LD_PRELOAD=" + lib_path(), bin_path("prog_multi"), "1.5", "4"], tmp_path,
                     preload=False,
                     env={"OTELPROF_INTERVAL": "10ms", "OTELPROF_EXPORT_INTERVAL": "1s",
                          "OTELPROF_LOG_LEVEL": "debug"})
    assert r.rc == 0, r.stderr
    taken = [int(m) for m in re.findall(r"stats: taken=(\d+)", r.stderr)]
    assert taken and taken[-1] >= 300, r.stderr[-2000:]
    calls = _calls(open(trace).read())
    # Before the caches: a gettid and a prctl in every sample. Now: one gettid per thread, a few
    # prctl per thread (one per naming period) and the start-up's own.
    per_sample = (calls.get("gettid", 0) + calls.get("prctl", 0)) / taken[-1]
    assert per_sample < 0.15, (calls, taken[-1])


def test_libcurl_mapped_only_with_an_endpoint(build_dir, tmp_path):
    probe = "grep -c libcurl /proc/$$/maps || true"
    files = run_profiled(["/bin/sh", "-c", probe], tmp_path / "files")
    assert files.rc == 0 and files.stdout.strip() == "0", (files.stdout, files.stderr)
    # With an endpoint the sender loads it (nothing listens there: the export fails and is
    # reported, the program is unaffected).
    sent = run_profiled(["/bin/sh", "-c", probe], tmp_path / "otlp",
                        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000"})
    assert sent.rc == 0 and int(sent.stdout.strip()) >= 1, (sent.stdout, sent.stderr)
