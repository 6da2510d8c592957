"""OTLP/HTTP export against collectors that fail: absent, hung, overloaded (503 + Retry-After),
rejecting (400), and failing 1,000 times in a row. In each the program's own work must finish as
fast as without profiling (within 10%), memory stays under the cap, and the outcome is counted.
Also: invalid exporter settings give one clear error line, and header values never reach the log."""
import os
import time

import pytest

from otelcol import (FaultServer, SilentServer, bin_path, free_port, rpc_status, run,
                     timed_against_baseline)
import otlpcheck

CMD = [bin_path("prog_split"), "2"]
CMD3 = [bin_path("prog_split"), "3"]
MAX_MEMORY = 16 << 20


def env_for(endpoint, **extra):
    e = {
        "OTEL_SERVICE_NAME": "fault-svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTELPROF_EXPORT_INTERVAL": "200ms",
        "OTELPROF_MAX_MEMORY": "16MiB",
        "OTELPROF_LOG_LEVEL": "debug",
    }
    e.update(extra)
    return e


def check_unaffected(r, tmp_path):
    """The host exited cleanly and the profiler stayed in its memory budget (the timing is checked
    by timed_against_baseline)."""
    assert r.rc == 0, r.stderr[-3000:]
    assert "done" in r.stdout
    print(f"own work (profiled, unprofiled) s: {getattr(r, 'timing', None)}; exit after work "
          f"{r.total_s - r.work_s:.3f}s; peak RSS {r.maxrss_kb} KiB")
    for line in r.stderr.splitlines():
        if "otelprof: debug: stats:" in line:
            st = dict(kv.split("=") for kv in line.split("stats:")[1].split())
            assert int(st["memory"]) <= MAX_MEMORY, line
    # Peak RSS of the whole process: the program is tiny, so this is mostly the profiler.
    assert r.maxrss_kb * 1024 <= MAX_MEMORY + (24 << 20), f"maxrss {r.maxrss_kb} KiB"
    assert not list(tmp_path.glob("run*/otelprof-out")), "no local files without OTELPROF_OUTPUT_DIR"


def test_collector_absent(tmp_path):
    def once(i):
        port = free_port()  # nothing listens: connection refused
        return run(CMD, tmp_path / f"run{i}", profile="preload", env=env_for(
            f"http://127.0.0.1:{port}", OTELPROF_EXPORT_RETRY_INITIAL="50ms",
            OTELPROF_EXPORT_RETRY_MAX_INTERVAL="200ms"))
    r = timed_against_baseline(CMD, tmp_path, once)
    check_unaffected(r, tmp_path)
    f = r.export_final()
    assert f["ok"] == 0 and f["fail_connect"] == f["attempts"] >= 5, f
    assert f["retries"] >= 4
    # At exit one attempt is made, it is refused, and the rest are dropped at once.
    assert r.total_s - r.work_s < 1.0, (r.total_s, r.work_s)
    assert f["drop_shutdown"] >= 1
    warns = [l for l in r.stderr.splitlines() if "OTLP export to" in l and "failed" in l]
    assert len(warns) == 1 and "connect" in warns[0].lower(), warns


def test_collector_never_answers(tmp_path):
    def once(i):
        srv = SilentServer()
        try:
            return run(CMD, tmp_path / f"run{i}", profile="preload", env=env_for(
                srv.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="400", OTELPROF_EXPORT_RETRY_INITIAL="50ms"))
        finally:
            srv.close()
    r = timed_against_baseline(CMD, tmp_path, once)
    check_unaffected(r, tmp_path)
    f = r.export_final()
    assert f["ok"] == 0 and f["fail_timeout"] >= 3, f
    # Each attempt gives up at the timeout: 2 s of work allows at most ~2/0.4 + 1 attempts.
    assert f["attempts"] <= 7, f
    # Shutdown waits at most one timeout for the hung collector.
    assert r.total_s - r.work_s < 0.4 + 0.5, (r.total_s, r.work_s)
    assert "no answer within the timeout" in r.stderr


def test_503_with_retry_after_then_200(tmp_path):

    def respond(n):
        if n < 2:
            return 503, {"Retry-After": "1", "Content-Type": "text/plain"}, b"busy"
        return 200, {"Content-Type": "application/x-protobuf"}, b""

    def once(i):
        srv = FaultServer(respond)
        try:
            r = run(CMD3, tmp_path / f"run{i}", profile="preload", env=env_for(
                srv.endpoint, OTELPROF_EXPORT_INTERVAL="500ms"))
        finally:
            srv.close()
        r.srv = srv
        return r
    r = timed_against_baseline(CMD3, tmp_path, once)
    check_unaffected(r, tmp_path)
    srv = r.srv
    reqs = srv.requests
    # The first profile was posted three times, a Retry-After second apart, then accepted.
    assert reqs[0]["body"] == reqs[1]["body"] == reqs[2]["body"]
    assert reqs[1]["t"] - reqs[0]["t"] >= 0.95 and reqs[2]["t"] - reqs[1]["t"] >= 0.95
    assert all(q["path"] == "/v1development/profiles" for q in reqs)
    assert reqs[0]["headers"]["Content-Type"] == "application/x-protobuf"
    f = r.export_final()
    assert f["fail_retryable"] == 2 and f["retries"] == 2 and f["drop_retries"] == 0, f
    # Everything arrives, and what we send passes the conformance checker.
    profiles = srv.profiles()[2:]
    assert len(profiles) == f["ok"] >= 4
    total = 0
    for d in profiles:
        assert otlpcheck.check(d, dupes=True, orphans=True) == []
        total += sum(v for _, v, _ in otlpcheck.stacks(d))
    assert abs(total - r.stats()["taken"]) <= 2


def test_400_not_retried_reported_once(tmp_path):
    msg = "profile rejected by policy: sample_type unsupported"

    def once(i):
        srv = FaultServer(lambda n: (400, {"Content-Type": "application/x-protobuf"}, rpc_status(3, msg)))
        try:
            r = run(CMD, tmp_path / f"run{i}", profile="preload", env=env_for(srv.endpoint))
        finally:
            srv.close()
        r.srv = srv
        return r
    r = timed_against_baseline(CMD, tmp_path, once)
    check_unaffected(r, tmp_path)
    srv = r.srv
    f = r.export_final()
    assert len(srv.requests) == f["attempts"] == f["fail_rejected"] == f["drop_rejected"] >= 5, f
    assert f["retries"] == 0
    # Each profile posted once (no retry), and the message logged once.
    bodies = [q["body"] for q in srv.requests]
    assert len(set(bodies)) == len(bodies)
    lines = [l for l in r.stderr.splitlines() if msg in l]
    assert len(lines) == 1 and "HTTP 400" in lines[0] and lines[0].startswith("otelprof: error:"), lines


def test_1000_consecutive_failures(tmp_path):
    """Refused connections cost the test harness no CPU, so what is measured is the profiler's own
    cost of failing about 600 times a second (backoff cut to 1-2 ms) while profiles pile up."""
    def once(i):
        return run(CMD3, tmp_path / f"run{i}", profile="preload", env=env_for(
            f"http://127.0.0.1:{free_port()}", OTELPROF_EXPORT_INTERVAL="100ms",
            OTELPROF_EXPORT_QUEUE_MAX="8KiB", OTELPROF_EXPORT_RETRY_INITIAL="1ms",
            OTELPROF_EXPORT_RETRY_MAX_INTERVAL="2ms", OTELPROF_EXPORT_RETRY_MAX_ELAPSED="10m"))
    r = timed_against_baseline(CMD3, tmp_path, once)
    check_unaffected(r, tmp_path)
    f = r.export_final()
    assert f["ok"] == 0 and f["fail_connect"] >= 1000, f
    # One profile retried the whole time; the others waited in the capped queue, oldest dropped.
    assert f["drop_queue_full"] >= 1, f
    for line in r.stderr.splitlines():
        if "otelprof: debug: stats:" in line:
            st = dict(kv.split("=") for kv in line.split("stats:")[1].split())
            assert int(st["export_queue_bytes"]) <= 8 << 10
    # A thousand failures, a handful of log lines.
    noisy = [l for l in r.stderr.splitlines() if l.startswith(("otelprof: warn:", "otelprof: error:"))]
    assert len(noisy) <= 3, noisy


def test_header_values_sent_never_logged(tmp_path):
    srv = FaultServer(lambda n: (401, {"Content-Type": "text/plain"}, b"bad token"))
    try:
        r = run([bin_path("prog_split"), "0.5"], tmp_path / "run", profile="preload", env=env_for(
            srv.endpoint, OTEL_EXPORTER_OTLP_HEADERS="api-key=sup3r%20s3cret,x-tenant=t1",
            OTEL_EXPORTER_OTLP_PROFILES_HEADERS="api-key=pr0files%2Ck3y"))
    finally:
        srv.close()
    assert r.rc == 0
    # The signal-specific list replaces the general one.
    h = srv.requests[0]["headers"]
    assert h["api-key"] == "pr0files,k3y" and "x-tenant" not in h
    assert h["Content-Encoding"] if "Content-Encoding" in h else True
    assert "pr0files" not in r.stderr and "sup3r" not in r.stderr
    assert "HTTP 401: bad token" in r.stderr


@pytest.mark.parametrize("var,value,expect", [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "gRPC is not supported"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "http:// or https://"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://host:99999", "port"),
    ("OTEL_EXPORTER_OTLP_PROFILES_ENDPOINT", "ftp://x", "http:// or https://"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer s3cr3t,broken", "entry 2"),
    ("OTEL_EXPORTER_OTLP_HEADERS", "k=%zz", "entry 1"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli", "gzip or none"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "milliseconds"),
])
def test_invalid_settings_one_error_line(tmp_path, var, value, expect):
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", var: value}
    r = run([bin_path("prog_split"), "0.3"], tmp_path / "run", profile="preload", env=env)
    assert r.rc == 0 and "done" in r.stdout, r.stderr
    errs = r.errors()
    assert len(errs) == 1 and r.stderr.strip() == errs[0], r.stderr
    assert var in errs[0] and expect in errs[0] and "profiling is off" in errs[0], errs[0]
    if "HEADERS" in var:
        assert "s3cr3t" not in r.stderr and "%zz" not in r.stderr
