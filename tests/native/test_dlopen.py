"""Code unloaded before the profile closes: a program loops dlopen(libdlvictim.so) -> burn ~10 ms
in it -> dlclose. Symbolisation runs at profile close, when the library is usually gone; native
mode's dlclose wrapper keeps what each unload removed so those samples still carry the library's
function names. Also: the loop in wall mode at 1 ms never hangs."""
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import BUILD_ASAN, bin_path, lib_path, run_profiled

PROG = "prog_dlopen_loop"
CALLER = "call_victim"  # main-program frame every call into the library goes through
PREFIX = "dlvictim_"    # every function of the library
# What call_victim can have above it: it calls dlvictim_burn, which calls dlvictim_inner.
CHAINS = {("dlvictim_burn",), ("dlvictim_burn", "dlvictim_inner")}


def library_samples(stacks):
    """(named, unnamed, caller_leaf) samples of the library's code.

    A sample is the library's when its stack passes through call_victim and has frames beyond it
    (call_victim calls nothing else, and the library calls nothing outside itself): named when
    those frames are exactly a chain the code can make (burn, or burn -> inner), so a frame
    resolved against the wrong load of the library counts as unnamed. Samples without
    call_victim whose leaf is a dlvictim_ function or [unknown] (an unwind that stopped early)
    may be the library's too: counted named and unnamed respectively, so a broken unwind cannot
    raise the share. Samples with call_victim itself as the leaf are the main program's
    (caller_leaf, reported only)."""
    named = unnamed = caller_leaf = 0
    for stack, n in stacks.items():
        if CALLER in stack:
            beyond = stack[len(stack) - stack[::-1].index(CALLER):]
            if not beyond:
                caller_leaf += n
            elif tuple(beyond) in CHAINS:
                named += n
            else:
                unnamed += n
        elif stack[-1].startswith(PREFIX):
            named += n
        elif stack[-1] == "[unknown]":
            unnamed += n
    return named, unnamed, caller_leaf


def check_named(r, what):
    assert r.rc == 0, r.stderr[-4000:]
    iters = int(re.search(r"iterations (\d+)", r.stdout).group(1))
    assert iters >= 100, f"{what}: only {iters} dlopen/dlclose iterations"
    named, unnamed, caller_leaf = library_samples(r.folded())
    total = named + unnamed
    assert total >= 500, f"{what}: only {total} samples in the library"
    share = named / total
    assert share >= 0.95, (f"{what}: {share:.1%} of the library's {total} samples named "
                           f"({unnamed} unnamed, {caller_leaf} in {CALLER} itself, {iters} iterations)")
    return share


@pytest.mark.parametrize("mode,export_interval", [("cpu", "10s"), ("cpu", "1s"), ("wall", "10s"),
                                                  ("wall", "1s")])
def test_unloaded_library_keeps_its_names(build_dir, tmp_path, mode, export_interval):
    # 10s: one profile close, at exit, after the last dlclose; 1s: closes while the loop runs.
    env = {"OTELPROF_MODE": mode, "OTELPROF_INTERVAL": "1ms", "OTELPROF_EXPORT_INTERVAL": export_interval}
    r = run_profiled([bin_path(PROG), "4"], tmp_path, env=env, timeout=60)
    check_named(r, f"{mode} mode, export every {export_interval}")


def test_unloaded_library_under_asan_ubsan(tmp_path):
    """The dlclose wrapper and the retired-object list under the sanitizers, with a profile close
    every 500 ms (merging retirements while dlclose adds them): no report, no leak, names kept."""
    assert os.path.exists(lib_path(BUILD_ASAN)), "sanitizer build missing: scripts/build.sh --asan"
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    assert os.path.exists(asan), "libasan missing (gcc's sanitizer runtime)"
    env = {
        "OTELPROF_MODE": "cpu", "OTELPROF_INTERVAL": "1ms", "OTELPROF_EXPORT_INTERVAL": "500ms",
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=67",
    }
    r = run_profiled([bin_path(PROG, BUILD_ASAN), "4"], tmp_path, env=env, build=BUILD_ASAN,
                     extra_preload=asan, timeout=120)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    check_named(r, "cpu mode under ASan/UBSan")


RUNS, SECONDS, PARALLEL, TIMEOUT = 20, 10, 2, 60


def test_dlopen_loop_never_hangs(build_dir, tmp_path):
    """Acceptance: the loop in wall mode at 1 ms, 20 runs of 10 s, never hangs: a signal landing
    while its thread takes or releases the loader lock (inside dlopen or dlclose) must not make
    the unwinder wait for that lock. Burns of 0.05 ms put most of the time inside the loader
    (tens of thousands of dlopen/dlclose per run; 1 run in 8 hung before the lock-word guard).
    Two runs at a time; a run still going after 60 s counts as a hang."""
    env = {"OTELPROF_MODE": "wall", "OTELPROF_INTERVAL": "1ms"}

    def one(i):
        t0 = time.monotonic()
        try:
            r = run_profiled([bin_path(PROG), str(SECONDS), "0.05"], tmp_path / f"run{i:02d}", env=env,
                             timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            return i, "hang", time.monotonic() - t0
        if r.rc != 0:
            return i, f"exit {r.rc}: {r.stderr[-500:]}", r.wall_s
        if len(r.files("*.folded")) != 1 or not r.files("*.otlp.pb"):
            return i, "no profile written", r.wall_s
        if not re.search(r"iterations \d+", r.stdout):
            return i, "no iteration count printed", r.wall_s
        return i, "ok", r.wall_s

    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(one, range(RUNS)))
    bad = [(i, what, round(s, 1)) for i, what, s in results if what != "ok"]
    hangs = sum(1 for _, what, _ in results if what == "hang")
    assert not bad, f"{len(bad)} of {RUNS} runs failed ({hangs} hung past {TIMEOUT}s): {bad}"
