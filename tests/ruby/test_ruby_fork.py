"""Ruby gem and forking: Process.fork (the child profiles itself under its own pid from the fork
on; nothing of the parent's is duplicated in it or lost from the parent), fork during frequent
profile closes, exec from a profiled child, Process.daemon."""
import glob
import os
import re
import time

import otlpcheck
from rbrun import otlp_samples, run_rb


def _samples(files):
    """Every sample of these OTLP files, each checked for conformance."""
    out = []
    assert files, "no OTLP files"
    for f in files:
        d = otlpcheck.load(f)
        assert otlpcheck.check(d, dupes=True, orphans=True) == [], f
        out.extend(otlpcheck.stacks(d))
    return out


def total(samples, fn):
    return sum(v for names, v, _ in samples if fn in names)


def test_fork_child_profiles_itself(tmp_path):
    r = run_rb(["forking.rb", "20"], tmp_path)
    assert r.rc == 0, r.stderr
    parent, child = map(int, re.search(r"pids parent (\d+) child (\d+)", r.stdout).groups())
    # The exec'd children all exited normally: no profiling signal reached the new image.
    assert re.search(r"exec_children (.*)", r.stdout).group(1).split(",") == ["0"] * 20, r.stdout
    otlp_samples(r)  # every file conforms
    p = _samples(glob.glob(os.path.join(r.out_dir, "*-%d-*.otlp.pb" % parent)))
    c = _samples(glob.glob(os.path.join(r.out_dir, "*-%d-*.otlp.pb" % child)))
    # Nothing of the parent's in the child's profiles, and the child's work in its own only.
    assert total(c, "Object#parent_work") == 0 and total(c, "Object#parent_after") == 0
    assert total(p, "Object#child_work") == 0
    # Nothing lost: each burnt its CPU in 10 ms samples (0.6 s, 0.3 s, 0.4 s). 10 runs: within
    # -1 .. +1 sample of that (standard deviation under 0.5); +-15% is 4.5 samples and more.
    for samples, fn, want in ((p, "Object#parent_work", 60), (p, "Object#parent_after", 30), (c, "Object#child_work", 40)):
        got = total(samples, fn)
        assert abs(got - want) <= 0.15 * want, (fn, got, want)


def test_daemon_profiles_under_its_new_pid(tmp_path):
    done = tmp_path / "daemon.pids"
    r = run_rb(["daemon.rb", str(done)], tmp_path)
    assert r.rc == 0, r.stderr
    deadline = time.monotonic() + 30
    while not done.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done.exists(), "the daemon did not finish"
    original, daemon = map(int, done.read_text().split())
    assert original != daemon
    time.sleep(0.2)
    before = _samples(glob.glob(os.path.join(r.out_dir, "*-%d-*.otlp.pb" % original)))
    after = _samples(glob.glob(os.path.join(r.out_dir, "*-%d-*.otlp.pb" % daemon)))
    # The original process wrote what it sampled before it ended inside Process.daemon; the
    # daemon profiled itself from there on (0.4 s each: 10 runs were within -1 .. 0 samples).
    assert abs(total(before, "Object#before_daemon") - 40) <= 6, before
    assert abs(total(after, "Object#in_daemon") - 40) <= 6, after
    assert total(after, "Object#before_daemon") == 0
