"""The own x86-64 unwinder (OTELPROF_UNWINDER=own) end to end: the same shares and totals as with
libunwind, every walk done by it (no fallback, none cut short), and code loaded and unloaded in
a loop (its tables rebuilt while samples land), also under the sanitizers.
tests/unit/test_unwind_own.c compares its frames with libunwind's one by one."""
import os
import re
import subprocess

from conftest import BUILD_ASAN, bin_path, lib_path, run_profiled, share
from test_dlopen import PROG as DLOPEN_PROG, check_named

OWN = {"OTELPROF_UNWINDER": "own", "OTELPROF_LOG_LEVEL": "debug"}


def unwind_counts(stderr):
    lines = re.findall(r"unwind: (own=.*)", stderr)
    assert lines, stderr[-2000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1])}


def test_split_shares_and_totals(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_split"), "4"], tmp_path, env=dict(OWN, OTELPROF_INTERVAL="10ms"))
    assert r.rc == 0, r.stderr[-2000:]
    stacks = r.folded()
    # As tests/native/test_native_mode.py asks of libunwind's stacks.
    assert abs(share(stacks, "burn_hot", ("burn_hot", "burn_cold")) - 0.70) <= 0.03
    samples = sum(stacks.values())
    assert abs(samples * 0.010 - r.cpu_s) <= 0.10 * r.cpu_s, (samples, r.cpu_s)
    # Every sample walked to the program's first frame.
    assert all(s[0] == "_start" for s in stacks), [s for s in stacks if s[0] != "_start"][:5]
    c = unwind_counts(r.stderr)
    assert c["own"] >= samples and c["fallback"] == 0 and c["ended_rule"] == 0 and c["ended_bounds"] == 0, c


def test_threads(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_multi"), "2", "4"], tmp_path, env=OWN)
    assert r.rc == 0, r.stderr[-2000:]
    stacks = r.folded()
    assert abs(share(stacks, "burn_hot", ("burn_hot", "burn_cold")) - 0.70) <= 0.03
    c = unwind_counts(r.stderr)
    # Threads register on themselves (pthread_create's wrapper), with their stack's bounds.
    assert c["own"] >= 300 and c["fallback"] == 0 and c["ended_rule"] == 0 and c["ended_bounds"] == 0, c


def test_dlopen_loop_rebuilds_tables(build_dir, tmp_path):
    env = dict(OWN, OTELPROF_INTERVAL="1ms", OTELPROF_EXPORT_INTERVAL="1s")
    r = run_profiled([bin_path(DLOPEN_PROG), "4"], tmp_path, env=env, timeout=60)
    check_named(r, "own unwinder")
    assert len(re.findall(r"unwind tables: ", r.stderr)) >= 10, "tables rebuilt as the library comes and goes"
    c = unwind_counts(r.stderr)
    assert c["fallback"] == 0 and c["ended_rule"] == 0, c


def test_dlopen_loop_under_asan_ubsan(tmp_path):
    assert os.path.exists(lib_path(BUILD_ASAN)), "sanitizer build missing: scripts/build.sh --asan"
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = dict(OWN, OTELPROF_INTERVAL="1ms", OTELPROF_EXPORT_INTERVAL="500ms",
               ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66",
               UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=67")
    r = run_profiled([bin_path(DLOPEN_PROG, BUILD_ASAN), "4"], tmp_path, env=env, build=BUILD_ASAN,
                     extra_preload=asan, timeout=120)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    check_named(r, "own unwinder under ASan/UBSan")
