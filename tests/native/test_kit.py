"""The adapter kit's services, through a toy adapter (tests/native/api_kit.c): fork callbacks
in their defined order, blocking the profiling signal for a critical section, starting an
adapter thread the way the core starts its own, walk error causes, the adapter's counters and its
memory in the core's budget."""
import os
import re

import pytest

from conftest import BUILD, BUILD_ASAN, bin_path, lib_path, run_profiled


def kit(tmp_path, part, env=None, build=BUILD):
    if build != BUILD:
        assert os.path.exists(lib_path(build)), f"{build} missing: scripts/build.sh --asan"
        env = dict({"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=66",
                    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=67"}, **(env or {}))
    r = run_profiled([bin_path("api_kit", build), part], tmp_path, env=env, preload=False, timeout=60)
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr[-4000:]
    assert r.rc == 0, r.stderr[-2000:]
    return r


def test_fork_callbacks_run_in_order_also_after_stop(build_dir, tmp_path):
    r = kit(tmp_path, "fork")
    events = [l.split() for l in r.stdout.splitlines()]
    parent_pid = None
    for rnd in ("1", "2"):
        mine = [e for e in events if e[1] == rnd]
        names = [e[0] for e in mine]
        assert sorted(names) == ["child", "parent", "prepare"], (rnd, r.stdout)
        prepare, parent, child = (next(e for e in mine if e[0] == n) for n in ("prepare", "parent", "child"))
        assert names.index("prepare") < names.index("parent"), r.stdout
        assert prepare[3] == parent[3] and child[3] != parent[3], r.stdout  # pids
        parent_pid = parent_pid or parent[3]
        assert parent[3] == parent_pid
        if rnd == "1":
            # Running: the parent still has its thread; the child's callback runs after the core
            # forgot the parent's threads (the restart registers the forking thread later).
            assert int(prepare[5]) >= 1 and int(parent[5]) >= 1, r.stdout
            assert int(child[5]) == 0, r.stdout


def test_signal_block_keeps_samples_out_of_the_critical_section(build_dir, tmp_path):
    r = kit(tmp_path, "block", env={"OTELPROF_INTERVAL": "10ms"})
    m = re.search(r"walks_blocked (\d+) walks_open (\d+)", r.stdout)
    assert m, r.stdout
    # 0.4 s of CPU each side at 10 ms: ~40 walks outside (fewer signals under load: expirations
    # fold into one signal's overrun); the one signal left pending from the
    # blocked part is taken after restore (outside).
    assert int(m.group(1)) == 0 and int(m.group(2)) >= 10, r.stdout


def test_adapter_thread_is_named_and_never_signalled(build_dir, tmp_path):
    r = kit(tmp_path, "spawn")
    assert "spawned blocked 1 name kit-helper" in r.stdout, r.stdout


def test_walk_error_causes_keep_the_time_as_error_frames(build_dir, tmp_path):
    """0.3 s of CPU with walk() failing for a declared cause, 0.3 s for an undeclared one, 0.3 s
    of good walks, at 10 ms: the declared cause's ~30 samples stay in the profile under the
    frame "[gc_active]" and are counted by cause; the undeclared ones are dropped as walk_failed."""
    r = kit(tmp_path, "walkerr", env={"OTELPROF_INTERVAL": "10ms"})
    m = re.search(r"walk_errors (\d+) walk_failed (\d+) taken (\d+) name (\S+)", r.stdout)
    assert m, r.stdout
    errors, failed, taken, name = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)
    assert name == "gc_active"
    # Counters count signals; a loaded machine folds expirations into one signal's weight
    # (1 + overrun), so the profile's weights, not the counts, equal the CPU time (30 intervals).
    assert errors >= 5 and failed >= 5, r.stdout
    stacks = r.folded()
    in_error = sum(n for s, n in stacks.items() if s[-1] == "[gc_active]")
    assert in_error >= errors and 25 <= in_error <= 35, (in_error, errors, stacks)
    assert 25 <= sum(n for s, n in stacks.items() if s[-1] == "kit_frame") <= 35, stacks


@pytest.mark.parametrize("build", ["plain", "asan"])
def test_adapter_data_is_read_back_in_the_signal_handler(build_dir, tmp_path, build):
    """Three threads register with data pointing at their own thread-local marker: every walk
    finds its own thread's data (none missing, none another thread's); a conditional unregister
    with another thread's data leaves the thread, with its own removes it; a fork child finds the
    forking thread's data under its new tid; stop removes it all."""
    r = kit(tmp_path, "data", env={"OTELPROF_INTERVAL": "10ms"}, build=BUILD_ASAN if build == "asan" else BUILD)
    out = r.stdout
    m = re.search(r"data ok (\d+) bad (\d+) missing (\d+)", out)
    assert m, out
    # 0.9 s of CPU over three threads at 10 ms: ~90 walks; a loaded machine folds expirations.
    assert int(m.group(1)) >= 20 and int(m.group(2)) == 0 and int(m.group(3)) == 0, out
    for line in ("replace 1", "if_new 1", "listed 3 count_after_join 1", "unregister_if_other 0",
                 "unregister_if_same 1 gone 1", "child data 1 old_tid 0", "after_stop -1"):
        assert line in out, (line, out)


@pytest.mark.parametrize("build", ["plain", "asan"])
def test_frame_lifetime_epochs_release_ids_only_once_named(build_dir, tmp_path, build):
    """Every sample hands the core a new id and keeps the epoch read after handing it over. The
    core must never ask about an id (resolve()) after declaring its epoch released, must release
    as profiles close (100 ms), and must release everything at stop."""
    r = kit(tmp_path, "epoch", env={"OTELPROF_INTERVAL": "2ms", "OTELPROF_EXPORT_INTERVAL": "100ms"},
            build=BUILD_ASAN if build == "asan" else BUILD)
    m = re.search(r"epoch resolved (\d+) early (\d+) closes (\d+) released (\d+) all_released (\d)", r.stdout)
    assert m, r.stdout
    resolved, early, closes, released, everything = (int(g) for g in m.groups())
    # 1.2 s of CPU: ~120 submitted ids and a few hundred sampled ones, ~12 closes.
    assert resolved >= 100 and early == 0, r.stdout
    assert closes >= 3 and closes - 2 <= released <= closes, r.stdout
    assert everything == 1, r.stdout
def debug_lines(r, what):
    return [l.split(what, 1)[1].strip() for l in r.stderr.splitlines() if ("otelprof: debug: " + what) in l]


@pytest.mark.parametrize("build", ["plain", "asan"])
def test_adapter_counters_reach_the_api_and_the_debug_stats_line(build_dir, tmp_path, build):
    """walk() counts its walks and frames in the adapter's own array; the core reports them by
    index and name (otelprof_stats_counter) and at every close in the debug "adapter counters:"
    line, zeros included; the last line, written by the final close, has the values read after
    stop."""
    r = kit(tmp_path, "counters", env={"OTELPROF_INTERVAL": "10ms", "OTELPROF_MAX_MEMORY": "2MiB",
                                       "OTELPROF_LOG_LEVEL": "debug"},
            build=BUILD_ASAN if build == "asan" else BUILD)
    counters = [(int(i), n, int(v)) for i, n, v in re.findall(r"counter (\d+) (\S+) (\d+)", r.stdout)]
    assert [(i, n) for i, n, _ in counters] == [(0, "kit_walks"), (1, "kit_frames"), (2, "kit_idle")], r.stdout
    values = {n: v for _, n, v in counters}
    # 0.3 s of CPU at 10 ms; one frame per walk; the idle counter is never touched.
    assert values["kit_walks"] >= 5 and values["kit_frames"] == values["kit_walks"], values
    assert values["kit_idle"] == 0
    assert "out_of_range -1 -1" in r.stdout, r.stdout
    lines = debug_lines(r, "adapter counters:")
    assert lines and len(lines) == len(debug_lines(r, "stats:")), r.stderr[-3000:]
    assert lines[-1] == "kit_walks=%d,kit_frames=%d,kit_idle=0" % (values["kit_walks"], values["kit_frames"]), lines


@pytest.mark.parametrize("build", ["plain", "asan"])
def test_adapter_memory_is_counted_and_capped(build_dir, tmp_path, build):
    """The adapter's 256 KiB of fixed memory and its reservations count in memory_bytes, a
    reservation past max_memory is refused and reserves nothing, and reservations outlive stop
    (the last run's cap still holds them) until released."""
    r = kit(tmp_path, "counters", env={"OTELPROF_INTERVAL": "10ms", "OTELPROF_MAX_MEMORY": "2MiB"},
            build=BUILD_ASAN if build == "asan" else BUILD)
    m = re.search(r"memory (.*)", r.stdout)
    assert m, r.stdout
    f = {k: int(v) for k, v in re.findall(r"(\w+) (-?\d+)", m.group(0))}
    kib = 1024
    assert f["cap"] == 2048 * kib
    assert f["running"] >= 256 * kib, f  # the fixed bytes, besides the ring
    assert f["fits"] == 0 and f["with"] >= 256 * kib + 64 * kib, f
    assert f["past"] == -1 and f["after_refusal"] <= f["cap"], f
    assert f["stopped"] == 64 * kib, f  # only the reservation is left after stop
    assert f["over"] == -1 and f["exact"] == 0 and f["full"] == f["cap"], f
    assert f["released"] == 0, f


@pytest.mark.parametrize("build", ["plain", "asan"])
def test_start_refuses_adapter_memory_that_leaves_too_little(build_dir, tmp_path, build):
    """An adapter's fixed memory comes out of max_memory; when less than 1 MiB is left (or it
    is larger than max_memory) start fails with ENOMEM and one line naming max_memory, leaving
    the profiler stopped; too many counters fail with EINVAL and one line; exactly 1 MiB left
    starts."""
    r = kit(tmp_path, "refuse", build=BUILD_ASAN if build == "asan" else BUILD)
    m = re.search(r"refuse (.*)", r.stdout)
    assert m, r.stdout
    f = {k: int(v) for k, v in re.findall(r"(\w+) (-?\d+)", m.group(1))}
    assert f["over"] == f["enomem"] and f["huge"] == f["enomem"], f
    assert f["running"] == 0
    assert f["counters"] == f["einval"], f
    assert f["fits"] == 0 and f["held"] >= 3 << 20 and f["held"] <= 4 << 20, f
    assert f["stopped"] == 0, f
    errors = [l for l in r.stderr.splitlines() if l.startswith("otelprof: error:")]
    assert len(errors) == 3, r.stderr
    assert all("max_memory" in l for l in errors[:2]) and "counters" in errors[2], errors
    assert "3145729" in errors[0], errors


def test_native_mode_starts_at_the_smallest_max_memory(build_dir, tmp_path):
    """No adapter, no fixed memory: 1 MiB, the least max_memory accepted, still profiles."""
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path,
                     env={"OTELPROF_MAX_MEMORY": "1MiB", "OTELPROF_LOG_LEVEL": "debug"})
    assert r.rc == 0 and "done" in r.stdout, r.stderr[-2000:]
    assert "otelprof: error" not in r.stderr, r.stderr[-2000:]
    assert sum(r.folded().values()) >= 10
    assert not debug_lines(r, "adapter counters:"), "native mode has no adapter counters"
