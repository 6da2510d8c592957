"""Stacks deeper than max_depth are cut at max_depth and counted, with native frames merged
(OTELPROF_NATIVE_FRAMES=1) as without them. The cut keeps the leaf side: the core keeps
max_depth frames, the oldest of which becomes the "[truncated]" marker, and every cut sample
adds one to stats()["dropped_truncated"]."""
import re
import sys

import pytest

from pyrun import otlp_samples, run_py

MAX_DEPTH = 2048


def run_deep(tmp_path, native, depth, via="python", secs=1.5):
    env = {"OTELPROF_MAX_DEPTH": str(MAX_DEPTH), "OTELPROF_NATIVE_FRAMES": "1" if native else "0"}
    r = run_py(["deep_recursion.py", str(depth), str(secs), via], tmp_path, env=env)
    assert r.rc == 0, r.stdout + r.stderr
    stats = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", r.stdout.split("stats ", 1)[-1])}
    assert "dropped_truncated" in stats, r.stdout
    return r, stats


def check_cut(r, stats, leaf_fn, step_fn):
    folded = r.folded()  # root first
    cut = {s: v for s, v in folded.items() if "[truncated]" in s}
    at_leaf = {s: v for s, v in folded.items() if leaf_fn in s}
    cut_samples = sum(cut.values())
    assert sum(at_leaf.values()) >= 100, (sum(at_leaf.values()), stats)
    # Every cut stack is exactly max_depth deep, its oldest kept frame being the marker, and
    # every stack that reached the bottom of the recursion was cut. (A sample taken on the way
    # down may be shallower, and whole.)
    assert {len(s) for s in cut} == {MAX_DEPTH}, sorted({len(s) for s in cut})[:5]
    assert all(s[0] == "[truncated]" and s.count("[truncated]") == 1 for s in cut), [s[:2] for s in cut][:5]
    assert all(s in cut for s in at_leaf), sorted(len(s) for s in at_leaf if s not in cut)[:5]
    assert all(step_fn in s for s in cut)
    # The leaf side is kept: the CPU was burnt in leaf_fn (or in C under it).
    assert sum(at_leaf.values()) >= 0.9 * cut_samples, (sum(at_leaf.values()), cut_samples)
    # Each cut sample counted once. stats() is read when the recursion has returned, so the
    # only difference can be samples still in flight at that moment.
    assert stats["dropped_truncated"] > 0
    assert abs(stats["dropped_truncated"] - cut_samples) <= max(3, cut_samples // 20), (stats, cut_samples)
    # The OTLP output holds the same cut stacks (leaf first there).
    otlp = [names for names, _, _ in otlp_samples(r) if "[truncated]" in names]
    assert otlp and {len(names) for names in otlp} == {MAX_DEPTH}
    assert all(names[-1] == "[truncated]" for names in otlp)
    return cut


@pytest.mark.parametrize("native", [True, False], ids=["native_frames", "python_frames"])
def test_deep_python_recursion_is_cut_at_max_depth_and_counted(tmp_path, native):
    r, stats = run_deep(tmp_path, native, 10000)
    check_cut(r, stats, "deep_leaf", "deep_step")
    if native:
        # The leaf sides of the two stacks still pair up (no fallback to Python frames only).
        assert stats["native_merge_fallback"] <= stats["samples_taken"] // 20, stats
        assert stats["native_merge_busy"] == 0, stats


def test_deep_native_stack_is_cut_at_max_depth_and_counted(tmp_path):
    """Python recursion through C (sorted's key callback): the native stack itself is deeper than
    max_depth, so the merge buffer of native frames is the one cut."""
    # 3.12 bounds C recursion by a fixed budget (1500 units, sys.setrecursionlimit does not raise
    # it) and each level here spends 3, so it stops near 500 levels; 480 levels still make a
    # native stack deeper than MAX_DEPTH.
    r, stats = run_deep(tmp_path, True, 600 if sys.version_info < (3, 12) else 480, via="c")
    cut = check_cut(r, stats, "deep_leaf", "deep_c_step")
    assert stats["native_merge_fallback"] <= stats["samples_taken"] // 20, stats
    # Interleaved, not Python frames alone: C frames of sorted sit between the Python levels,
    # all the way up to the cut.
    for s in cut:
        levels = [i for i, n in enumerate(s) if n == "deep_c_step"]
        assert len(levels) >= 100, s[-20:]
        assert all(any("sorted" in n for n in s[a:b]) for a, b in zip(levels, levels[1:])), s[-40:]


def test_stack_within_max_depth_is_whole(tmp_path):
    """A stack deeper than the old 256-frame merge buffers but within max_depth is kept whole,
    down to the native root, and not counted as cut."""
    r, stats = run_deep(tmp_path, True, 1500, secs=0.5)
    deep = {s: v for s, v in r.folded().items() if "deep_step" in s}
    assert sum(deep.values()) >= 30, stats
    assert stats["dropped_truncated"] == 0, stats
    assert all("[truncated]" not in s for s in deep)
    rooted = sum(v for s, v in deep.items() if s[0] == "_start")
    assert rooted >= 0.95 * sum(deep.values()), [s[:3] for s in deep][:5]
    assert all(s.count("deep_step") == 1500 for s in deep if "deep_leaf" in s)
