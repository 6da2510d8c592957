"""The agent never fails the JVM: bad options and variables are one line each naming the problem,
and the JVM runs unprofiled; -Xcheck:jni sees nothing to report; a fault inside the stack walk
costs that sample ([walk_fault]), never the JVM."""
import os

import pytest

from jvmrun import hs_err_files, run_java

# Split with 0.3 s of CPU on one worker: enough for a JVM start and a few samples.
SHORT = ["0.3", "1"]

BAD_OPTIONS = [
    ("mode=fast", 'mode="fast" is invalid: expected cpu, wall or off'),
    ("intervl=10ms", 'unknown option "intervl"'),
    ("interval", 'agent option "interval" has no value: expected key=value'),
    ("interval=0", 'interval="0" is invalid: expected a duration'),
    ("mode=cpu,formats=otlp,gif", 'formats="otlp,gif" is invalid'),
    ("max_depth=-1", 'max_depth="-1" is invalid: expected an integer between 1 and 2048'),
]


def otelprof_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("otelprof:")]


@pytest.mark.parametrize("options,message", BAD_OPTIONS, ids=[o for o, _ in BAD_OPTIONS])
def test_bad_option(jdk17, agent, classes, tmp_path, options, message):
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes, options=options)
    assert r.rc == 0 and r.stdout == "result true\n", r.stderr
    lines = otelprof_lines(r.stderr)
    assert len(lines) == 1, r.stderr
    assert message in lines[0] and lines[0].endswith("the JVM runs unprofiled"), lines[0]
    assert not os.path.exists(r.out_dir), "profiled despite the bad option"


def test_bad_variable(jdk17, agent, classes, tmp_path):
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes, env={"OTELPROF_INTERVAL": "soon"})
    assert r.rc == 0 and r.stdout == "result true\n", r.stderr
    lines = otelprof_lines(r.stderr)
    assert len(lines) == 1 and 'OTELPROF_INTERVAL="soon" is invalid' in lines[0], r.stderr


def test_output_dir_refused(jdk17, agent, classes, tmp_path):
    # A regular file where the directory should be: the core refuses it at start, in one line.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes, options="output_dir=%s/sub" % blocker)
    assert r.rc == 0 and r.stdout == "result true\n", r.stderr
    lines = otelprof_lines(r.stderr)
    assert len(lines) == 1 and str(blocker) in lines[0], r.stderr


def test_disabled(jdk17, agent, classes, tmp_path):
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes, env={"OTEL_SDK_DISABLED": "true"})
    assert r.rc == 0 and r.stdout == "result true\n" and otelprof_lines(r.stderr) == [], r.stderr
    assert not os.path.exists(r.out_dir)


def test_options_lists_and_env(jdk17, agent, classes, tmp_path):
    # A list value continues past its commas; the environment applies under the options.
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes,
                 options="formats=otlp,folded,resource_attributes=team=jvm,tier=test,interval=5ms",
                 env={"OTEL_SERVICE_NAME": "split-svc"})
    assert r.rc == 0 and otelprof_lines(r.stderr) == [], r.stderr
    names = sorted(os.listdir(r.out_dir))
    assert names and all(n.startswith("split-svc-") for n in names), names
    assert {n.rsplit(".", 1)[-1] for n in names} == {"pb", "folded"}, names  # no pprof, no html


def test_xcheck_jni_version_silent(jdk, agent, tmp_path):
    """`java -Xcheck:jni -agentpath:... -version` prints the version and nothing else."""
    plain = run_java(jdk, "-version", [], tmp_path / "plain", ".", agent=None, jvm_args=["-Xcheck:jni"])
    r = run_java(jdk, "-version", [], tmp_path / "agent", ".", jvm_args=["-Xcheck:jni"])
    assert r.rc == 0 and r.stdout == plain.stdout == "", r.stdout
    assert r.stderr == plain.stderr, r.stderr


def test_walk_fault_costs_only_the_sample(jdk, agent, classes, tmp_path):
    r = run_java(jdk, "Split", ["1", "1"], tmp_path, classes, options="log_level=debug",
                 env={"OTELPROF_JVM_TEST_WALK_FAULTS": "3"})
    assert r.rc == 0 and r.stdout == "result true\n", r.stderr[-3000:]
    assert hs_err_files(tmp_path) == []
    errors = [l for l in r.stderr.splitlines() if "walk errors:" in l]
    assert errors and "walk_fault:3" in errors[-1], r.stderr[-3000:]
    samples = r.samples()
    faults = [s for s in samples if s.names == ["[walk_fault]"]]
    assert faults, "no [walk_fault] sample"
    assert sum(s.value for s in samples if "Split.spin" in s.names) > 50  # sampling went on


def test_walk_fault_guard_off_under_xcheck(jdk17, agent, classes, tmp_path):
    # -Xcheck:jni checks the VM's SIGSEGV handler, so the guard stays off, says so at info level,
    # and the injected fault is not attempted.
    r = run_java(jdk17, "Split", SHORT, tmp_path, classes, options="log_level=info",
                 jvm_args=["-Xcheck:jni"], env={"OTELPROF_JVM_TEST_WALK_FAULTS": "3"})
    assert r.rc == 0 and r.stdout == "result true\n", r.stderr[-3000:]
    assert "crash guard off under -Xcheck:jni" in r.stderr
    assert "warning" not in r.stdout.lower()
