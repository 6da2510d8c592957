"""Ruby gem: span context through the OpenTelemetry stand-in (tests/ruby/support/standin: the
API 1.8 context layout). 6 threads and 30 fibers (plus an Enumerator's fiber per thread), each in
its own span: every sample inside a span carries exactly it, none outside; the same with
OpenTelemetry loaded before or after start; no OpenTelemetry: no links, no error; the
pyroscope.profile.id span processor."""
import json
import re

import pytest

from rbrun import otlp_samples, run_rb


def printed(run, key):
    m = re.search(r"^%s (.*)$" % key, run.stdout, re.M)
    assert m, run.stdout + run.stderr
    return json.loads(m.group(1))


def unit_of(names, units):
    """The innermost work method on the stack (leaf first), or None."""
    for n in names:
        if n.startswith("Object#") and n[len("Object#"):] in units:
            return n[len("Object#"):]
    return None


@pytest.mark.parametrize("order", ["after", "before"])
def test_every_sample_carries_its_fibers_span(tmp_path, order):
    r = run_rb(["spans.rb"], tmp_path, env={"OTEL": order}, standin=True)
    assert r.rc == 0, r.stderr
    assert r.stderr == "", r.stderr
    units = printed(r, "units")
    assert len([u for u in units if re.fullmatch(r"work_t\d_f\d", u)]) == 30
    assert len([u for u in units if re.fullmatch(r"work_t\d", u)]) == 6
    spans = {tuple(v) for v in units.values() if v}
    assert len(spans) == 6 + 30 + 6 + 6, len(spans)  # thread, fiber, enumerator and child spans: all distinct
    samples = otlp_samples(r)
    seen, wrong = {}, []
    for names, value, link in samples:
        u = unit_of(names, units)
        if u is None:
            continue
        seen[u] = seen.get(u, 0) + value
        want = tuple(units[u]) if units[u] else None
        if link != want:
            wrong.append((u, link, want))
    assert wrong == [], wrong[:10]
    # Every unit was sampled (each burns ~32 ms of CPU at a 2 ms interval; the least sampled
    # unit of a run had 5 .. 12 samples in 10 runs, mean 9.6, standard deviation 2.1), so each
    # span was checked.
    assert set(seen) == set(units), sorted(set(units) - set(seen))
    # pyroscope.profile.id on local roots only (thread, fiber and enumerator spans), equal to
    # the span's own id; none on the child spans.
    finished = printed(r, "spans")
    roots = [s for s in finished if s["root"]]
    assert roots and all(s["profile_id"] == s["span"] for s in roots), roots[:3]
    assert all(s["profile_id"] is None for s in finished if not s["root"])
    stats = printed(r, "stats")
    assert stats["ctx_published"] > 0, stats


def test_without_opentelemetry_no_links(tmp_path):
    r = run_rb(["spans.rb"], tmp_path, env={"OTEL": "none"})
    assert r.rc == 0, r.stderr
    assert r.stderr == "", r.stderr
    samples = otlp_samples(r)
    assert sum(v for _, v, _ in samples) > 500
    assert all(link is None for _, _, link in samples)
    assert printed(r, "stats")["ctx_published"] == 0
