"""Native mode (LD_PRELOAD) end to end: shares, totals, wall time, outputs readable by their
consumers, and configuration errors that leave the host program running."""
import os
import shutil
import subprocess

import pytest

from conftest import bin_path, run_profiled, share
import otlpcheck

HOT, COLD = "burn_hot", "burn_cold"


def go_bin():
    return shutil.which("go") or ("/usr/local/go/bin/go" if os.path.exists("/usr/local/go/bin/go") else None)


def test_cpu_split_shares_and_totals(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_split"), "5"], tmp_path, env={"OTELPROF_INTERVAL": "10ms"})
    assert r.rc == 0, r.stderr
    assert "done" in r.stdout
    stacks = r.folded()
    hot = share(stacks, HOT, (HOT, COLD))
    assert abs(hot - 0.70) <= 0.03, f"burn_hot share {hot:.3f}"
    assert abs(share(stacks, COLD, (HOT, COLD)) - 0.30) <= 0.03
    samples = sum(stacks.values())
    sampled_cpu = samples * 0.010
    # The profiler's own threads use a little CPU too, which has no samples: compare with
    # the process total, allowing 10%.
    assert abs(sampled_cpu - r.cpu_s) <= 0.10 * r.cpu_s, f"{samples} samples vs {r.cpu_s:.3f}s CPU"


def test_multithreaded_split(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_multi"), "2", "4"], tmp_path)
    assert r.rc == 0, r.stderr
    stacks = r.folded()
    assert abs(share(stacks, HOT, (HOT, COLD)) - 0.70) <= 0.03
    samples = sum(stacks.values())
    assert abs(samples * 0.010 - r.cpu_s) <= 0.10 * r.cpu_s, f"{samples} samples vs {r.cpu_s:.3f}s CPU"


def test_wall_mode_shows_sleep(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_sleep"), "2"], tmp_path, env={"OTELPROF_MODE": "wall"})
    assert r.rc == 0, r.stderr
    stacks = r.folded()
    sleep = share(stacks, "do_sleep", ("do_sleep", "do_work"))
    assert 0.40 <= sleep <= 0.60, f"do_sleep share {sleep:.3f} (sleeps half the time)"
    # cpu mode on the same program sees (almost) no sleep.
    r2 = run_profiled([bin_path("prog_sleep"), "1"], tmp_path / "cpu", env={"OTELPROF_MODE": "cpu"})
    assert share(r2.folded(), "do_sleep", ("do_sleep", "do_work")) < 0.05


def test_outputs_are_readable(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_split"), "1.5"], tmp_path,
                     env={"OTEL_SERVICE_NAME": "split-svc", "OTELPROF_EXPORT_INTERVAL": "500ms"})
    assert r.rc == 0, r.stderr
    pid_files = r.files("split-svc-*.otlp.pb")
    assert len(pid_files) >= 2, "one OTLP file per export interval"
    names = set()
    for f in pid_files:
        data = otlpcheck.load(f)
        problems = otlpcheck.check(data, dupes=True, orphans=True)
        assert problems == [], f"{f}: {problems}"
        rp = data.resource_profiles[0]
        attrs = {kv.key: kv.value.string_value for kv in rp.resource.attributes}
        assert attrs["service.name"] == "split-svc"
        prof = rp.scope_profiles[0].profiles[0]
        st = data.dictionary.string_table
        assert st[prof.sample_type.type_strindex] == "samples"
        assert st[prof.period_type.type_strindex] == "cpu"
        assert prof.period == 10_000_000
        for stack, _value, link in otlpcheck.stacks(data):
            names.update(stack)
            assert link is None
    assert {HOT, COLD, "main"} <= names
    gz = r.files("split-svc-*.pb.gz")
    assert len(gz) == len(pid_files)
    go = go_bin()
    assert go, "go is needed to read pprof files (scripts/setup.sh installs it)"
    top = subprocess.run([go, "tool", "pprof", "-top", gz[0]], capture_output=True, text=True, timeout=300)
    assert top.returncode == 0, top.stderr
    assert HOT in top.stdout and COLD in top.stdout
    html = r.files("split-svc-*.html")
    assert len(html) == 1
    text = open(html[0], encoding="utf-8").read()
    assert HOT in text and "<script" in text
    assert "src=\"http" not in text and "href=\"http" not in text


BAD = [
    ("OTELPROF_MODE", "turbo"),
    ("OTELPROF_INTERVAL", "10parsecs"),
    ("OTELPROF_INTERVAL", "-5ms"),
    ("OTELPROF_EXPORT_INTERVAL", "never"),
    ("OTELPROF_FORMATS", "otlp,jpeg"),
    ("OTELPROF_MAX_DEPTH", "0"),
    ("OTELPROF_NATIVE_FRAMES", "maybe"),
    ("OTELPROF_LOG_LEVEL", "loud"),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue"),
    ("OTEL_SDK_DISABLED", "perhaps"),
    ("OTELPROF_MAX_MEMORY", "lots"),
]


@pytest.mark.parametrize("var,value", BAD)
def test_invalid_configuration_is_one_line_and_harmless(build_dir, tmp_path, var, value):
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={var: value})
    assert r.rc == 0 and "done" in r.stdout, "the host program must run to completion"
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("otelprof: error: ") and var in lines[0], lines[0]
    assert not os.path.exists(r.out_dir), "profiling must be off"


def test_sdk_disabled_means_off(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTEL_SDK_DISABLED": "true"})
    assert r.rc == 0 and r.stderr == ""
    assert not os.path.exists(r.out_dir)


def test_unwritable_output_dir_is_reported_not_fatal(build_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path,
                     env={"OTELPROF_OUTPUT_DIR": str(blocker / "sub")})
    assert r.rc == 0 and "done" in r.stdout
    errs = [l for l in r.stderr.splitlines() if l.startswith("otelprof: error:")]
    assert len(errs) == 1 and "OTELPROF_OUTPUT_DIR" in errs[0], r.stderr
