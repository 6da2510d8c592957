"""Span links: with the OpenTelemetry SDK, every sample taken inside a span carries exactly that
span's ids (8 threads with nested spans; 50 concurrent asyncio tasks), and none outside."""
import re

import os

import pytest

from pyrun import otlp_samples, run_py

try:
    import opentelemetry.sdk.trace  # noqa: F401
except ImportError:
    if os.environ.get("CI"):
        raise  # CI installs tests/requirements.txt: a missing SDK is a failure, not a skip
    pytest.skip("opentelemetry-sdk not installed", allow_module_level=True)


def spans_of(run):
    return {fn: (t, s) for fn, t, s in re.findall(r"span (\w+) ([0-9a-f]{32}) ([0-9a-f]{16})", run.stdout)}


def check_exact(samples, spans, outside_fn):
    counts = {"inside": 0, "outside": 0, "other": 0}
    for names, value, link in samples:
        mine = [n for n in names if n in spans]
        if mine:
            # Leaf-most span function: the innermost span whose code runs.
            assert link == spans[mine[0]], (names, link, spans[mine[0]])
            counts["inside"] += value
        elif outside_fn in names:
            assert link is None, (names, link)
            counts["outside"] += value
        else:  # span plumbing, thread start: inside or outside a span, not checked
            counts["other"] += value
    return counts


def test_threads_nested_spans(tmp_path):
    r = run_py(["spans_threads.py"], tmp_path)
    assert r.rc == 0, r.stderr
    spans = spans_of(r)
    assert len(spans) == 8 * 13
    counts = check_exact(otlp_samples(r), spans, "outside_work")
    assert counts["inside"] >= 300 and counts["outside"] >= 20, counts


def test_asyncio_tasks_each_in_its_span(tmp_path):
    r = run_py(["spans_asyncio.py"], tmp_path)
    assert r.rc == 0, r.stderr
    spans = spans_of(r)
    assert len(spans) == 50
    counts = check_exact(otlp_samples(r), spans, "outside_work")
    assert counts["inside"] >= 300 and counts["outside"] >= 10, counts


def test_no_opentelemetry_no_links(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text(
        "import sys, time\n"
        "sys.modules['opentelemetry'] = None  # as if not installed\n"
        "import otelprof\n"
        "otelprof.start()\n"
        "end = time.thread_time() + 0.5\n"
        "while time.thread_time() < end:\n"
        "    pass\n")
    r = run_py([str(script)], tmp_path)
    assert r.rc == 0, r.stderr
    samples = otlp_samples(r)
    assert samples and all(link is None for _, _, link in samples)
