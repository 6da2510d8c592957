"""Export to the real OpenTelemetry Collector (built from Go modules by scripts/collector.sh): what
the Collector received is decoded and checked for the service name, the program's functions,
sample counts and span Links, with gzip and without, and across a Collector restart."""
import os
import re
import time

import pytest

import threading

from otelcol import Collector, attrs, bin_path, run, timed_against_baseline
import otlpcheck

HOT, COLD = "burn_hot", "burn_cold"


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path / "col").start()
    yield c
    c.stop()


def received_samples(datas):
    """(service names, [(stack, value, link)]) over every received request."""
    services, samples = set(), []
    for d in datas:
        for rp in d.resource_profiles:
            services.add(attrs(d, rp.resource.attributes).get("service.name"))
        samples += otlpcheck.stacks(d)
    return services, samples


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_native_mode_exports_to_collector(collector, tmp_path, compression):
    cmd = [bin_path("prog_split"), "2"]
    r = run(cmd, tmp_path / "run", profile="preload", env={
        "OTEL_SERVICE_NAME": "split-svc",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_COMPRESSION": compression,
        "OTELPROF_EXPORT_INTERVAL": "500ms",
        "OTELPROF_LOG_LEVEL": "debug",
    })
    assert r.rc == 0, r.stderr
    assert "done" in r.stdout
    final = r.export_final()
    datas = collector.received()
    assert len(datas) == final["ok"] >= 3, (len(datas), final)
    assert final["attempts"] == final["ok"] and final["retries"] == 0
    if compression == "gzip":
        assert final["bytes_sent"] < final["bytes_raw"], final
    else:
        assert final["bytes_sent"] == final["bytes_raw"], final
    services, samples = received_samples(datas)
    assert services == {"split-svc"}
    res = attrs(datas[0], datas[0].resource_profiles[0].resource.attributes)
    assert res["deployment.environment.name"] == "test"
    assert res["process.executable.name"] == "prog_split"
    names = set()
    for stack, _, link in samples:
        names.update(stack)
        assert link is None
    assert {HOT, COLD, "main"} <= names
    # Every sample taken arrived: the Collector's count equals the profiler's own (the counter is
    # read while the last samples may still be landing, hence the slack of a couple).
    total = sum(v for _, v, _ in samples)
    assert abs(total - r.stats()["taken"]) <= 2, (total, r.stats())
    # (The 70/30 split itself is the native tests' business; here: both arrived, in order.)
    hot = sum(v for s, v, _ in samples if HOT in s)
    cold = sum(v for s, v, _ in samples if COLD in s)
    assert hot > cold > 0, (hot, cold)
    # Profile metadata survives the Collector.
    d = datas[0]
    prof = d.resource_profiles[0].scope_profiles[0].profiles[0]
    st = d.dictionary.string_table
    assert (st[prof.sample_type.type_strindex], st[prof.sample_type.unit_strindex]) == ("samples", "count")
    assert st[prof.period_type.type_strindex] == "cpu" and prof.period == 10_000_000
    # With an endpoint and no OTELPROF_OUTPUT_DIR, nothing is written locally.
    assert not os.path.exists(tmp_path / "run" / "otelprof-out")
    # The debug exporter saw the same profiles.
    assert "burn_hot" in collector.debug_log()


def test_span_links_reach_collector(collector, tmp_path):
    r = run([bin_path("api_ctx")], tmp_path / "run", done_marker="thread 2", env={
        "OTEL_SERVICE_NAME": "ctx-svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTELPROF_LOG_LEVEL": "debug",
    })
    assert r.rc == 0, r.stderr
    spans = {n: (t, s, c) for n, t, s, c in
             re.findall(r"thread (\d) trace (\w+) span (\w+) child (\w+)", r.stdout)}
    assert set(spans) == {"1", "2"}
    services, samples = received_samples(collector.received())
    assert services == {"ctx-svc"}
    seen = {"inside": 0, "nested": 0, "outside": 0}
    for stack, value, link in samples:
        if "work_outside" in stack:
            assert link is None
            seen["outside"] += value
        for n in ("1", "2"):
            if f"work_inside_{n}" in stack:
                assert link == (spans[n][0], spans[n][1]), (n, link)
                seen["inside"] += value
        if "work_nested" in stack:
            n = "1" if link and link[1] == spans["1"][2] else "2"
            assert link == (spans[n][0], spans[n][2]), link
            seen["nested"] += value
    assert all(v >= 20 for v in seen.values()), seen


def test_local_files_too_when_output_dir_set(collector, tmp_path):
    out = tmp_path / "files"
    r = run([bin_path("prog_split"), "1"], tmp_path / "run", profile="preload", env={
        "OTEL_SERVICE_NAME": "both",
        "OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT": collector.endpoint + "/v1development/profiles",
        "OTELPROF_OUTPUT_DIR": str(out),
        "OTELPROF_EXPORT_INTERVAL": "500ms",
    })
    assert r.rc == 0, r.stderr
    assert list(out.glob("both-*.otlp.pb")) and list(out.glob("both-*.folded"))
    services, samples = received_samples(collector.received())
    assert services == {"both"} and samples


def test_collector_restarted_mid_run(tmp_path):
    """The Collector goes away for a second and comes back on the same port: profiles closed
    after it is back arrive, and the program's own work is not slowed."""
    cmd = [bin_path("prog_split"), "4"]
    cols = []

    def once(i):
        first = Collector(tmp_path / f"col{i}", name="first").start()
        second = Collector(tmp_path / f"col{i}", port=first.port, name="second")
        cols.extend([first, second])

        def restart():
            time.sleep(1.2)
            first.stop()
            time.sleep(1.0)
            second.start()

        t = threading.Thread(target=restart)
        t.start()
        try:
            r = run(cmd, tmp_path / f"run{i}", profile="preload", env={
                "OTEL_SERVICE_NAME": "restart-svc",
                "OTEL_EXPORTER_OTLP_ENDPOINT": first.endpoint,
                "OTELPROF_EXPORT_INTERVAL": "250ms",
                "OTELPROF_EXPORT_RETRY_INITIAL": "100ms",
                "OTELPROF_EXPORT_RETRY_MAX_INTERVAL": "200ms",
                "OTELPROF_LOG_LEVEL": "debug",
            })
        finally:
            t.join()
        r.cols = (first, second)
        return r

    try:
        r = timed_against_baseline(cmd, tmp_path, once)
        assert r.rc == 0, r.stderr
        first, second = r.cols
        before = first.received(settle=0)
        after = second.received()
        assert before, "profiles before the restart"
        assert len(after) >= 4, f"only {len(after)} profiles after the restart"
        services, samples = received_samples(after)
        assert services == {"restart-svc"} and any(HOT in s for s, _, _ in samples)
        final = r.export_final()
        assert final["fail_connect"] >= 1 and final["retries"] >= 1, final
        assert "recovered after" in r.stderr
    finally:
        for c in cols:
            c.stop()


def test_fork_child_exports_its_own_profiles(collector, tmp_path):
    """The sender thread does not survive fork: the child starts its own and its profiles arrive
    under its own pid, while the parent's keep arriving too."""
    r = run([bin_path("prog_fork")], tmp_path / "run", profile="preload", done_marker="parent", env={
        "OTEL_SERVICE_NAME": "fork-svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTELPROF_EXPORT_INTERVAL": "200ms",
    })
    assert r.rc == 0, r.stderr
    m = re.search(r"parent (\d+) child (\d+)", r.stdout)
    parent, child = m.groups()
    by_pid = {}
    for d in collector.received():
        pid = attrs(d, d.resource_profiles[0].resource.attributes)["process.pid"]
        for stack, value, _ in otlpcheck.stacks(d):
            for fn in ("parent_work", "child_work"):
                if fn in stack:
                    by_pid.setdefault(pid, {}).setdefault(fn, 0)
                    by_pid[pid][fn] += value
    assert by_pid.get(child, {}).get("child_work", 0) >= 20, by_pid
    assert by_pid.get(parent, {}).get("parent_work", 0) >= 20, by_pid
    assert "child_work" not in by_pid.get(parent, {}), by_pid


def test_cpython_adapter_exports_to_collector(collector, tmp_path):
    """The CPython adapter (pip install .) sends Python frames and span Links to the Collector."""
    import sys
    workload = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "python", "workloads", "spans_threads.py")
    r = run([sys.executable, workload], tmp_path / "run", done_marker="span ", env={
        "OTEL_SERVICE_NAME": "py-svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    })
    if r.rc != 0 and "No module named 'otelprof'" in r.stderr:
        from otelcol import missing
        missing("the CPython adapter is not installed (pip install .)")
    assert r.rc == 0, r.stderr
    spans = {}
    for fn, trace_id, span_id in re.findall(r"span (\w+) (\w{32}) (\w{16})", r.stdout):
        spans[fn] = (trace_id, span_id)
    assert len(spans) == 8 * 13
    services, samples = received_samples(collector.received())
    assert services == {"py-svc"}
    inside = 0
    for stack, value, link in samples:
        # The innermost span function on the stack names the span the sample must carry.
        own = next((f for f in stack if f in spans), None)
        if own:
            assert link == spans[own], (own, link)
            inside += value
        elif "outside_work" in stack:
            assert link is None
    assert inside >= 100, inside
