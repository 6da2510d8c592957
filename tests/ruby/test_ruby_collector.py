"""Ruby gem exporting to the real OpenTelemetry Collector (tests/collector's fixture, built by
scripts/collector.sh): Ruby frames, the service name, the ruby frame type and the span links of
threads and fibers (through the OpenTelemetry stand-in) arrive over OTLP/HTTP."""
import os
import sys

import pytest

from conftest import ROOT
from rbrun import otlp_samples, run_rb
from test_ruby_spans import printed, unit_of

sys.path.insert(0, os.path.join(ROOT, "tests", "collector"))
from otelcol import Collector, attrs  # noqa: E402
import otlpcheck  # noqa: E402


@pytest.fixture
def collector(tmp_path):
    c = Collector(tmp_path / "col").start()
    yield c
    c.stop()


def test_ruby_exports_to_collector(collector, tmp_path):
    r = run_rb(["spans.rb"], tmp_path / "run", standin=True, env={
        "OTEL": "after",
        "OTEL_SERVICE_NAME": "rb-svc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTELPROF_EXPORT_INTERVAL": "500ms",
    })
    assert r.rc == 0, r.stderr
    units = printed(r, "units")
    stats = printed(r, "stats")
    assert stats["export_successes"] >= 1 and stats["export_successes"] == stats["export_attempts"], stats
    datas = collector.received()
    assert len(datas) == stats["export_successes"], (len(datas), stats)
    services, frame_types, seen, wrong = set(), set(), set(), []
    otlp_samples(r)  # the local copies (run_rb sets an output directory) conform
    for d in datas:
        for rp in d.resource_profiles:
            services.add(attrs(d, rp.resource.attributes).get("service.name"))
        st = d.dictionary.string_table
        for loc in d.dictionary.location_table[1:]:
            for a in loc.attribute_indices:
                kv = d.dictionary.attribute_table[a]
                if st[kv.key_strindex] == "profile.frame.type":
                    frame_types.add(kv.value.string_value or st[kv.value.string_value_strindex])
        for names, _, link in otlpcheck.stacks(d):
            u = unit_of(names, units)
            if u is None:
                continue
            seen.add(u)
            want = tuple(units[u]) if units[u] else None
            if link != want:
                wrong.append((u, link, want))
    assert services == {"rb-svc"}
    assert frame_types == {"ruby"}, frame_types
    assert wrong == [], wrong[:5]
    assert len([u for u in seen if "_f" in u]) == 30, sorted(seen)
