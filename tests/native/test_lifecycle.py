"""Lifecycle regressions: restart keeps the run's files, stop cannot race registrations into
leaked timers, and wall-mode time of a thread that blocks the signal is not lost."""
import re

from conftest import bin_path, run_profiled
import otlpcheck


def test_restart_continues_files(build_dir, tmp_path):
    r = run_profiled([bin_path("api_lifecycle"), "restart"], tmp_path, preload=False)
    assert r.rc == 0, r.stderr
    stacks = r.folded()
    assert any("first_run" in s for s in stacks) and any("second_run" in s for s in stacks)
    otlp = r.files("*.otlp.pb")
    assert len(otlp) >= 2 and len(set(otlp)) == len(otlp)
    seqs = sorted(int(re.search(r"-(\d{4})\.otlp\.pb$", f).group(1)) for f in otlp)
    assert seqs == list(range(len(seqs))), "sequence numbers continue across the restart"


def test_stop_racing_registrations_leaves_no_timer(build_dir, tmp_path):
    r = run_profiled([bin_path("api_lifecycle"), "race"], tmp_path, preload=False, timeout=300)
    assert r.rc == 0, r.stderr
    assert re.search(r"timers (\d+)", r.stdout).group(1) == "0", r.stdout


def test_wall_time_of_a_thread_blocking_the_signal_is_kept(build_dir, tmp_path):
    r = run_profiled([bin_path("api_lifecycle"), "wallblock"], tmp_path, preload=False,
                     env={"OTELPROF_MODE": "wall"})
    assert r.rc == 0, r.stderr
    elapsed = int(re.search(r"elapsed_ms (\d+)", r.stdout).group(1)) * 1e6
    total = 0
    for f in r.files("*.otlp.pb"):
        data = otlpcheck.load(f)
        total += sum(v for _s, v, _l in otlpcheck.stacks(data))
    # Every nanosecond of the thread's wall time is charged somewhere (±15%: the start and end
    # of the run fall between ticks), including the second it spent with SIGPROF blocked.
    assert abs(total - elapsed) <= 0.15 * elapsed, (total, elapsed)
