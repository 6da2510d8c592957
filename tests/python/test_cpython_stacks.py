"""CPython adapter: CPU and wall shares, CPU burnt with the GIL released, names/files/lines,
threads, the OTLP output's conformance, and the packaging and API surface."""
import json
import re
import subprocess
import sys

import pytest

import otelprof
from pyrun import otlp_samples, run_py, share


def measured(run, name):
    m = re.search(r"measured .*", run.stdout)
    assert m, run.stdout + run.stderr
    vals = dict(re.findall(r"(\w+) ([0-9.]+)", m.group(0)))
    return float(vals[name])


def test_cpu_split_70_30(tmp_path):
    r = run_py(["split_cpu.py", "2100"], tmp_path, env={"OTELPROF_INTERVAL": "10ms"})
    assert r.rc == 0, r.stderr
    samples = otlp_samples(r)
    got, total = share(samples, "heavy_fn", ["heavy_fn", "light_fn"])
    want = measured(r, "heavy_fn")
    assert total >= 2000, total
    assert abs(want - 0.7) < 0.02, want  # the workload itself kept its 70/30 split
    assert abs(got - want) <= 0.03, (got, want, total)
    # Function, file and line of the leaf frame reach the profile.
    folded = r.folded()
    assert any(s[-2:] == ("heavy_fn", "spin") for s in folded), list(folded)[:5]


def test_wall_sleep_share(tmp_path):
    r = run_py(["split_wall.py", "2100"], tmp_path)
    assert r.rc == 0, r.stderr
    samples = otlp_samples(r)
    got, total = share(samples, "sleepy_fn", ["sleepy_fn", "busy_fn"])
    want = measured(r, "sleepy_fn")
    assert int(re.search(r"samples (\d+)", r.stdout).group(1)) >= 2000, r.stdout  # values are ns here
    assert abs(got - want) <= 0.03, (got, want, total)


def test_gil_released_cpu_goes_to_the_calling_frame(tmp_path):
    r = run_py(["hashing.py"], tmp_path, env={"OTELPROF_INTERVAL": "10ms"})
    assert r.rc == 0, r.stderr
    cpu = dict(re.findall(r"(\w+_worker) ([0-9.]+)", r.stdout))
    samples = otlp_samples(r)
    hashed = sum(v for names, v, _ in samples if "hash_worker" in names)
    expect = float(cpu["hash_worker"]) / 0.010
    # Samples x interval estimates the CPU time spent hashing, GIL or not.
    assert hashed >= 0.85 * expect and hashed <= 1.15 * expect, (hashed, expect)


def test_names_files_lines(tmp_path):
    script = tmp_path / "names.py"
    script.write_text(
        "import otelprof, time\n"
        "class Shape:\n"
        "    def area(self):\n"
        "        end = time.thread_time() + 1.0\n"
        "        while time.thread_time() < end:\n"
        "            pass\n"
        "otelprof.start()\n"
        "Shape().area()\n")
    r = run_py([str(script)], tmp_path)
    assert r.rc == 0, r.stderr
    from otlpcheck import load
    data = load(r.files("*.otlp.pb")[0])
    d = data.dictionary
    st = d.string_table
    found = {}
    for loc in d.location_table[1:]:
        for line in loc.lines:
            fn = d.function_table[line.function_index]
            found.setdefault(st[fn.name_strindex], set()).add((st[fn.filename_strindex], fn.start_line, line.line))
    assert "Shape.area" in found, found.keys()
    files = {f for f, _, _ in found["Shape.area"]}
    assert files == {str(script)}
    assert {s for _, s, _ in found["Shape.area"]} == {3}
    assert {l for _, _, l in found["Shape.area"]} <= {4, 5, 6} and {l for _, _, l in found["Shape.area"]} & {5, 6}


def test_line_decoder_matches_the_interpreter():
    import dis
    import inspect
    from otelprof import _native
    checked = 0
    for mod in (subprocess, re, dis, inspect):
        codes = [mod.__loader__.get_code(mod.__name__)]
        while codes:
            co = codes.pop()
            codes.extend(c for c in co.co_consts if hasattr(c, "co_code"))
            for start, end, line in co.co_lines():
                for off in range(start, end, 2):
                    want = line
                    got = _native._code_line(co, off)
                    if want is not None and want > 0:  # 0: artificial (shown as the first line)
                        assert got == want, (co.co_qualname, off, got, want)
                        checked += 1
    assert checked > 10000


CODE_DEATHS = r"""
import ctypes, time, types
import otelprof
def dealloc():  # PyCodeObject's type's tp_dealloc: the sixth word of PyTypeObject
    return ctypes.c_void_p.from_address(id(types.CodeType) + 6 * ctypes.sizeof(ctypes.c_void_p)).value
before = dealloc()
otelprof.start(interval="10ms")
for i in range(300):
    ns = {}  # apart from the globals: no cycle, so f and its code die at the del
    exec("def f():\n    end = time.thread_time() + 0.003\n    while time.thread_time() < end: pass\n",
         {"time": time}, ns)
    ns["f"]()
    del ns
dead = otelprof.stats()["codes_dead"]
wrapped = dealloc() != before
otelprof.stop()
print("wrapped %d dead %d" % (wrapped, dead))
"""


def test_code_deaths_from_a_watcher_on_3_12(tmp_path):
    """Code objects that die before they are pinned are learnt of from a code watcher on 3.12+
    (PyCode_Type is left alone) and from the wrapped deallocator before."""
    r = run_py(["-c", CODE_DEATHS], tmp_path)
    assert r.rc == 0, r.stderr
    m = re.search(r"wrapped (\d) dead (\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert int(m.group(1)) == (sys.version_info < (3, 12)), r.stdout
    assert int(m.group(2)) >= 20, r.stdout  # the deaths were seen


def test_api_errors_and_stats():
    with pytest.raises(ValueError, match="mode"):
        otelprof.start(mode="bogus")
    with pytest.raises(ValueError, match="interval"):
        otelprof.start(interval="soon")
    assert otelprof.is_running() is False
    assert otelprof.stop() is False
    st = otelprof.stats()
    assert "samples_taken" in st and "dropped_ring_full" in st and "walk_inconsistent" in st


CPYTHON_COUNTERS = ["walk_ok", "walk_no_frames", "walk_unreadable", "walk_inconsistent", "no_thread_state",
                    "code_cache_full", "codes_pinned", "codes_dead", "codes_unpinned", "codes_named_unpinned",
                    "dead_names_full", "python_threads_full", "python_threads_scanned",
                    "native_merge_fallback", "native_merge_busy", "frames_not_code", "ctx_published"]


def test_adapter_counters_in_the_debug_stats_line(tmp_path):
    """The adapter's counters are the core's adapter counters: every profile close logs them
    in the debug "adapter counters:" line, in order, with the values stats() reports (after stop
    nothing counts any more, so the final close's line equals stats())."""
    code = ("import json, time, otelprof\n"
            "otelprof.start(interval='5ms', export_interval='300ms')\n"
            "def counted_work():\n"
            "    end = time.thread_time() + 0.8\n"
            "    while time.thread_time() < end:\n"
            "        sum(range(100))\n"
            "counted_work()\n"
            "otelprof.stop()\n"
            "print('stats ' + json.dumps(otelprof.stats()))\n")
    r = run_py(["-c", code], tmp_path, env={"OTELPROF_LOG_LEVEL": "debug"})
    assert r.rc == 0, r.stderr[-3000:]
    st = json.loads(r.stdout.split("stats ", 1)[1])
    lines = [l.split("adapter counters:", 1)[1].strip() for l in r.stderr.splitlines()
             if "otelprof: debug: adapter counters:" in l]
    assert len(lines) >= 2, r.stderr[-3000:]
    last = [kv.split("=") for kv in lines[-1].split(",")]
    assert [k for k, _ in last] == CPYTHON_COUNTERS, lines[-1]
    assert {k: int(v) for k, v in last} == {k: st[k] for k in CPYTHON_COUNTERS}, (lines[-1], st)
    assert st["walk_ok"] >= 50 and st["codes_pinned"] >= 1, st


def test_context_manager_and_disabled(tmp_path):
    out = tmp_path / "cm"
    with otelprof.Profiler(output_dir=str(out), formats=["folded"]) as p:
        assert otelprof.is_running()
        end = __import__("time").thread_time() + 0.3
        while __import__("time").thread_time() < end:
            pass
        assert p.stats()["samples_taken"] > 0
    assert not otelprof.is_running()
    assert list(out.glob("*.folded"))
    assert otelprof.start(disabled=True) is False


@pytest.mark.parametrize("how", ["script", "module"])
def test_launcher(tmp_path, how):
    script = tmp_path / "prog_launch.py"
    script.write_text(
        "import sys, time\n"
        "def launched_work():\n"
        "    end = time.thread_time() + 0.5\n"
        "    while time.thread_time() < end:\n"
        "        pass\n"
        "if __name__ == '__main__':\n"
        "    assert sys.argv[1:] == ['a1', '--flag'], sys.argv\n"
        "    launched_work()\n")
    if how == "script":
        args = ["-m", "otelprof", "run", "--mode", "wall", "--", str(script), "a1", "--flag"]
        env = None
    else:
        args = ["-m", "otelprof", "run", "--service-name", "launched", "-m", "prog_launch", "a1", "--flag"]
        env = {"PYTHONPATH": str(tmp_path)}
    r = run_py(args, tmp_path, env=env)
    assert r.rc == 0, r.stderr
    assert any("launched_work" in s for s in r.folded()), r.folded()
    if how == "module":
        assert r.files("launched-*.folded")


def test_launcher_bad_option_runs_unprofiled(tmp_path):
    script = tmp_path / "p.py"
    script.write_text("print('ran')\n")
    r = run_py(["-m", "otelprof", "run", "--mode", "fast", "--", str(script)], tmp_path)
    assert r.rc == 0 and "ran" in r.stdout
    assert "OTELPROF_MODE" in r.stderr or "mode" in r.stderr


def test_threads_outside_threading_are_found(tmp_path):
    """A _thread.start_new_thread thread and a C thread entering Python through PyGILState_Ensure
    are found by the periodic scan (within 100 ms of starting) and sampled by their own CPU."""
    r = run_py(["foreign_threads.py", "1.5"], tmp_path, env={"OTELPROF_INTERVAL": "10ms"})
    assert r.rc == 0, r.stderr
    cpu = {k: float(v) for k, v in re.findall(r"cpu (\w+) ([0-9.]+)", r.stdout)}
    assert set(cpu) == {"raw_thread_fn", "c_thread_fn"}, r.stdout
    assert int(re.search(r"python_threads_scanned (\d+)", r.stdout).group(1)) >= 2, r.stdout
    samples = otlp_samples(r)
    for fn, secs in cpu.items():
        got = sum(v for names, v, _ in samples if fn in names)
        expect = secs / 0.010
        # Up to 100 ms pass before the scan finds a thread: at least 85% of its CPU is seen.
        assert 0.85 * expect <= got <= 1.10 * expect, (fn, got, expect)


def test_native_frames_merged_with_python_frames(tmp_path):
    """OTELPROF_NATIVE_FRAMES=1: each interpreter frame of the native stack is replaced by the
    Python frames it ran, so C between Python levels and C under a Python leaf keep their place."""
    r = run_py(["native_merge.py", "1.0"], tmp_path)
    assert r.rc == 0, r.stderr
    fallback, ok = map(int, re.search(r"native_merge_fallback (\d+) walk_ok (\d+)", r.stdout).groups())
    assert ok >= 200 and fallback <= ok // 20, r.stdout  # merged, bar a few odd samples
    folded = r.folded()  # root first
    def pos(stack, pred):
        return next((i for i, n in enumerate(stack) if pred(n)), -1)
    callback = merged = hashing = under_hash = 0
    for stack, v in folded.items():
        if "outer_fn" in stack:
            assert "_PyEval_EvalFrameDefault" not in stack, stack
        if "keyfn" in stack:
            callback += v
            o, s, k = stack.index("outer_fn"), pos(stack, lambda n: "sorted" in n), stack.index("keyfn")
            merged += v if 0 <= o < s < k else 0
        if "hasher" in stack:
            hashing += v
            under_hash += v if pos(stack, lambda n: "sha256" in n.lower()) > stack.index("hasher") else 0
    assert callback >= 100 and merged >= 0.9 * callback, (merged, callback)
    assert hashing >= 50 and under_hash >= 0.9 * hashing, (under_hash, hashing)
    # The native root (the loader's entry point) is below the Python frames, except in the few
    # samples that fell back (counted above), which keep only the leaf side.
    python = sum(v for stack, v in folded.items() if "outer_fn" in stack)
    rooted = sum(v for stack, v in folded.items() if "outer_fn" in stack and stack[0] == "_start")
    assert rooted >= 0.95 * python, (rooted, python, [s[:3] for s in folded][:5])


def test_idle_code_is_unpinned_and_repinned(tmp_path):
    """Pinning holds only code in use: a code object not sampled for three profile closes gets its
    reference back, and is pinned (and named) again when it runs again."""
    r = run_py(["idle_code.py"], tmp_path)
    assert r.rc == 0, r.stderr
    base, pinned, idle, again = map(int, re.search(r"refs base (\d+) pinned (\d+) idle (\d+) again (\d+)",
                                                   r.stdout).groups())
    assert (pinned, idle, again) == (base + 1, base, base + 1), r.stdout
    assert int(re.search(r"codes_unpinned (\d+)", r.stdout).group(1)) >= 1
    samples = otlp_samples(r)
    named = sum(v for names, v, _ in samples if "idle_fn" in names)
    assert named >= 25, named  # 0.2 s at 5 ms, both runs
    assert not any("[unknown]" in names for names, _, _ in samples), samples


@pytest.mark.parametrize("native", ["0", "1"])
def test_frame_kinds_show_as_the_program_wrote_them(tmp_path, native):
    """Specialized __init__ calls, generators, closures and __del__: each Python frame shows once,
    under its caller. 3.13 pushes a trampoline frame (code named `__init__`, no line) between a
    caller and a specialized __init__: it is incomplete by _co_firsttraceable and never shown. With
    native frames, each interpreter frame pairs with one run."""
    r = run_py(["frame_kinds.py", "1.0", native], tmp_path)
    assert r.rc == 0, r.stderr
    st = dict((k, int(v)) for k, v in re.findall(r"(\w+) (\d+)", r.stdout.split("stats ", 1)[1]))
    assert st["walk_ok"] >= 100, st
    assert st["frames_not_code"] == 0, st
    assert st["walk_inconsistent"] + st["walk_unreadable"] <= st["walk_ok"] // 20, st
    if native == "1":
        assert st["native_merge_fallback"] <= st["walk_ok"] // 20, st
    init = seen = 0
    for stack, v in r.folded().items():
        assert "__init__" not in stack, stack  # the trampoline frame's own name
        if "kinds_loop" not in stack:
            continue
        seen += v
        py = [n for n in stack[stack.index("kinds_loop"):] if n in
              ("kinds_loop", "Point.__init__", "squares", "make_closure.<locals>.closed", "Noted.__del__")]
        assert len(py) <= 2 and py[0] == "kinds_loop", stack
        if native == "1":
            assert "_PyEval_EvalFrameDefault" not in stack, stack
        init += v if "Point.__init__" in py else 0
    assert seen > 0 and init >= 0.3 * seen, (init, seen)
