"""The launcher (python -m otelprof run) hands the program its own command line: options of ours
come before the target only, and everything after the script's path or after -m MODULE reaches
the program unchanged, even when it looks like one of our options or like --help."""
import json
import os
import re

import pytest

import otlpcheck
from pyrun import WORKLOADS, run_py

PROGRAM_ARGS = ["-v", "--help", "--mode", "x", "arg"]


def seen_argv(run):
    m = re.search(r"^argv (.*)$", run.stdout, re.M)
    assert m, "the program did not run: " + run.stdout + run.stderr
    return json.loads(m.group(1))


def period_types(run):
    files = run.files("*.otlp.pb")
    assert files, "no OTLP files written: " + run.stderr
    out = set()
    for f in files:
        data = otlpcheck.load(f)
        st = data.dictionary.string_table
        for rp in data.resource_profiles:
            for sp in rp.scope_profiles:
                for prof in sp.profiles:
                    out.add(st[prof.period_type.type_strindex])
    return out


@pytest.mark.parametrize("how", ["module", "module_joined", "script", "script_after_dashes"])
def test_program_gets_its_arguments_unchanged(tmp_path, how):
    script = os.path.join(WORKLOADS, "show_argv.py")
    target = {"module": ["-m", "show_argv"], "module_joined": ["-mshow_argv"],
              "script": [script], "script_after_dashes": ["--", script]}[how]
    args = ["-m", "otelprof", "run", "--service-name", "launcher-args"] + target + PROGRAM_ARGS
    r = run_py(args, tmp_path, env={"PYTHONPATH": WORKLOADS})
    assert r.rc == 0, r.stdout + r.stderr
    assert seen_argv(r) == PROGRAM_ARGS
    assert "name __main__" in r.stdout
    # Ours (before the target) applied: the files carry the service name; the program's
    # "--help" did not print our help.
    assert r.files("launcher-args-*.folded"), r.stderr
    assert "python -m otelprof" not in r.stdout + r.stderr


def test_our_options_before_the_module_still_apply(tmp_path):
    r = run_py(["-m", "otelprof", "run", "--mode", "wall", "-m", "show_argv", "-v"], tmp_path,
               env={"PYTHONPATH": WORKLOADS})
    assert r.rc == 0, r.stdout + r.stderr
    assert seen_argv(r) == ["-v"]
    assert period_types(r) == {"wall"}
    # Wall mode samples the program while it sleeps (cpu mode would not see it at all).
    assert any("argv_sleeper" in stack for stack in r.folded()), r.folded()


def test_the_default_mode_is_cpu(tmp_path):
    """The counterpart of the test above: without --mode, the same run is a CPU profile."""
    r = run_py(["-m", "otelprof", "run", "-m", "show_argv", "--mode", "wall"], tmp_path,
               env={"PYTHONPATH": WORKLOADS})
    assert r.rc == 0, r.stdout + r.stderr
    assert seen_argv(r) == ["--mode", "wall"]
    # The program only sleeps: a CPU profile may have no samples (and no OTLP file) at all.
    if r.files("*.otlp.pb"):
        assert "wall" not in period_types(r)


@pytest.mark.parametrize("args, message", [
    (["--bogus", "show_argv.py"], "otelprof: unrecognized arguments: --bogus"),
    ([], "otelprof: run: name a script"),
    (["--mode"], "otelprof: argument --mode: expected one argument"),
    (["-m"], "otelprof: argument -m: expected one argument"),
])
def test_usage_errors_are_ours(tmp_path, args, message):
    r = run_py(["-m", "otelprof", "run"] + args, tmp_path, env={"PYTHONPATH": WORKLOADS})
    assert r.rc == 2, r.stdout + r.stderr
    assert message in r.stderr
    assert "argv " not in r.stdout


def test_bad_value_runs_unprofiled_with_our_prefix(tmp_path):
    r = run_py(["-m", "otelprof", "run", "--mode", "fast", "-m", "show_argv", "--mode", "fast"], tmp_path,
               env={"PYTHONPATH": WORKLOADS})
    assert r.rc == 0, r.stdout + r.stderr
    assert seen_argv(r) == ["--mode", "fast"]
    assert re.search(r"^otelprof: .*mode", r.stderr, re.M), r.stderr
