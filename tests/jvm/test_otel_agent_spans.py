"""Spans under the real OpenTelemetry Java agent (2.33.1, with the jar as its extension): the
example service (examples/java/PriceService.java), auto-instrumented, is driven with /price and
/io requests from two client threads at once; every sample inside a request handler carries the
server span the agent exported for that request's route, every /price request has samples of its
own span, and nothing outside a request carries a span. One JVM for the module: the agent takes
about 10-20 s of CPU to start here."""
import collections
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

import pytest

import jvm_spans as js

EXAMPLE = os.path.join(js.ROOT, "examples", "java", "PriceService.java")
PRICE_REQUESTS, IO_REQUESTS = 8, 40


def exported_spans(stderr):
    """{span id: span} of every span the agent's logging-otlp exporter printed (OTLP JSON)."""
    out = {}
    for line in stderr.splitlines():
        i = line.find('{"resource"')
        if "OtlpJsonLoggingSpanExporter" not in line or i < 0:
            continue
        for ss in json.loads(line[i:])["scopeSpans"]:
            for s in ss["spans"]:
                s["attrs"] = {a["key"]: next(iter(a["value"].values())) for a in s.get("attributes", [])}
                out[s["spanId"]] = s
    return out


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=60) as resp:
        return resp.status, resp.read().decode()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    js.build_jar()
    home = js.jdk17()
    tmp = tmp_path_factory.mktemp("otel-agent")
    classes = str(tmp / "classes")
    r = subprocess.run([os.path.join(home, "bin", "javac"), "-d", classes, EXAMPLE],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert r.returncode == 0, r.stdout
    out_dir = str(tmp / "out")
    env = js.clean_env({"OTELPROF_OUTPUT_DIR": out_dir, "OTELPROF_FORMATS": "otlp,folded",
                        "OTEL_SERVICE_NAME": "price-service", "OTELPROF_EXPORT_INTERVAL": "2s",
                        "OTELPROF_INTERVAL": "5ms"})
    cmd = [os.path.join(home, "bin", "java"), "-agentpath:" + js.agent_lib(),
           "-javaagent:" + js.JAVAAGENT, "-Dotel.javaagent.extensions=" + js.JAR,
           "-Dotel.traces.exporter=logging-otlp", "-Dotel.metrics.exporter=none",
           "-Dotel.logs.exporter=none", "-Dotel.bsp.schedule.delay=100",
           "-cp", classes, "PriceService", "0"]
    p = subprocess.Popen(cmd, env=env, cwd=str(tmp), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    err_chunks = []
    reader = threading.Thread(target=lambda: err_chunks.append(p.stderr.read()), daemon=True)
    reader.start()
    try:
        line = p.stdout.readline()
        m = re.match(r"listening on port (\d+)", line)
        assert m, "no 'listening' line: %r" % line
        port = int(m.group(1))
        failures = []

        def client(paths):
            for path in paths:
                try:
                    status, _ = get(port, path)
                    if status != 200:
                        failures.append((path, status))
                except Exception as e:  # reported below, with the service's stderr
                    failures.append((path, repr(e)))

        # /price: 800 items x 20,000 paths, 200-400 ms of CPU each once compiled; /io beside it on another worker.
        price = threading.Thread(target=client, args=(["/price?items=800&n=%d" % i
                                                       for i in range(PRICE_REQUESTS)],))
        io = threading.Thread(target=client, args=(["/io?ms=10&n=%d" % i for i in range(IO_REQUESTS)],))
        price.start()
        io.start()
        price.join()
        io.join()
        time.sleep(0.5)  # the span exporter's batch delay is 100 ms
        client(["/quit"])
        rest, _ = p.communicate(timeout=60)
    except BaseException:
        p.kill()
        p.wait()
        raise
    reader.join(10)
    stderr = "".join(err_chunks)
    assert p.returncode == 0, stderr[-4000:]
    assert not failures, failures
    run = js.JvmRun(p, line + rest, stderr, out_dir)
    return run, exported_spans(stderr)


def server_spans(spans, path):
    return {sid: s for sid, s in spans.items() if s["kind"] == 2 and s["attrs"].get("url.path") == path}


def test_agent_exported_server_spans_with_profile_ids(service):
    _, spans = service
    price, io = server_spans(spans, "/price"), server_spans(spans, "/io")
    assert len(price) == PRICE_REQUESTS and len(io) == IO_REQUESTS, sorted(
        (s["name"], s["kind"]) for s in spans.values())
    # The extension's ProfileIdSpanProcessor: local roots carry their own id.
    for sid, s in list(price.items()) + list(io.items()):
        assert s["attrs"].get("pyroscope.profile.id") == sid, s["attrs"]


def test_agent_run_files_conform(service):
    js.check_files(service[0])


def test_samples_in_a_handler_carry_that_requests_server_span(service):
    run, spans = service
    routes = {"/price": server_spans(spans, "/price"), "/io": server_spans(spans, "/io")}
    per_span = collections.Counter()
    handler = {"/price": 0, "/io": 0}
    outside_linked = []
    for s in run.samples():
        if s.link is not None:
            # The service makes no spans of its own: whatever a sample carries is a server span
            # the agent exported (also for samples whose stack could not be walked).
            assert s.link[1] in spans and spans[s.link[1]]["kind"] == 2, (s.link, s.frames[:8])
        route = "/price" if s.has("PriceService.price") else "/io" if s.has("PriceService.io") else None
        if route:
            handler[route] += s.value
            assert s.link is not None, (route, s.frames[:8])
            span = routes[route].get(s.link[1])
            assert span is not None, ("%s handler sample linked to a span that is not one of the "
                                      "route's server spans" % route, s.link, spans.get(s.link[1]))
            assert span["traceId"] == s.link[0]
            per_span[s.link[1]] += s.value
        elif (s.link is not None and not s.frames[0].startswith("[")
              and not any("httpserver" in f or "opentelemetry" in f for f in s.frames)):
            # Inside an exchange the agent's own code runs in the span too; Java code anywhere
            # else must carry none (a scope close that did not restore would leak the span here).
            outside_linked.append((s.link, s.frames[:8]))
    # Every request has samples of its own span. 6 runs at 10 ms (before the interval became
    # 5 ms): 133-235 /price handler samples in all, the request with the fewest had 9-19; the
    # spread is the requests' own CPU time (JIT state, load), which has a floor: 800 items cost
    # >= ~90 ms of CPU fully compiled, >= ~18 samples at 5 ms, against a bound of 1.
    assert handler["/price"] >= 2 * PRICE_REQUESTS, handler
    missing = [sid for sid in routes["/price"] if per_span[sid] == 0]
    assert not missing, ("requests without samples of their span", missing, per_span)
    assert not outside_linked, outside_linked[:5]
