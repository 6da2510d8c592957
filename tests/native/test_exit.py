"""exit() while other threads run: the final profile is written, complete, by whichever exit
comes first, even when a second thread calls exit() or main returns while it is being written
(glibc then runs the remaining exit handlers and ends the process: the profiler registers its
handler twice so that the racing exit waits, bounded, for the writer)."""
import gzip
import os
import re

import pytest

import otlpcheck
from conftest import bin_path, run_profiled

RUNS = 3


def check_outputs(r, what):
    assert r.rc == 0, f"{what}: exit {r.rc}: {r.stderr[-2000:]}"
    assert not r.stderr.strip(), f"{what}: {r.stderr[-2000:]}"
    names = os.listdir(r.out_dir) if os.path.isdir(r.out_dir) else []
    assert not [n for n in names if ".tmp" in n], f"{what}: temporary files left: {names}"
    otlp = r.files("*.otlp.pb")
    assert otlp, f"{what}: no OTLP file: {names}"
    for f in otlp:
        problems = otlpcheck.check(otlpcheck.load(f))
        assert not problems, f"{what}: {f}: {problems}"
    pprof = r.files("*.pb.gz")
    assert pprof and all(gzip.open(f).read() for f in pprof), f"{what}: pprof missing or broken: {names}"
    folded = r.folded()
    assert sum(folded.values()) > 0, f"{what}: empty folded file"
    assert any("burn_forever" in s or "spin_cpu" in " ".join(s) for s in folded), f"{what}: no workload frames"
    html = r.files("*.html")
    assert len(html) == 1 and open(html[0]).read().rstrip().endswith("</html>"), f"{what}: HTML missing or cut"


@pytest.mark.parametrize("mode", ["cpu", "wall"])
@pytest.mark.parametrize("who", ["thread", "main", "race", "race3"])
def test_exit_from_one_of_64_threads_writes_the_profile(tmp_path, mode, who):
    """who: thread (a worker calls exit), main (main calls exit), race (a worker calls exit and
    main returns 20 ms later), race3 (and a second worker calls exit 10 ms after the first); the
    other threads burn CPU throughout, sampled at 1 ms."""
    for i in range(RUNS):
        r = run_profiled([bin_path("prog_exit_threads"), "64", who, "1"], tmp_path / f"run{i}",
                         env={"OTELPROF_MODE": mode, "OTELPROF_INTERVAL": "1ms"}, timeout=60)
        check_outputs(r, f"{mode} {who} run {i}")
