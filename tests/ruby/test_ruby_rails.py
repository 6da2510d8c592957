"""Ruby gem in a Rails 6.1 application on Puma (examples/ruby/: cluster mode, 2 workers,
preload_app!), started by the Railtie, with the OpenTelemetry stand-in loaded: under a bounded
load on 127.0.0.1 every worker writes profiles under its own pid, every sample taken inside a
request carries that request's server span, and Puma does not warn about the profiler's thread."""
import glob
import os
import re
import signal
import subprocess
import threading
import time
import urllib.request

import otlpcheck
from conftest import ROOT
from rbrun import STANDIN, build_lib, ruby

EXAMPLE = os.path.join(ROOT, "examples", "ruby")


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=30) as resp:
        resp.read()
        return resp.status, {k.lower(): v for k, v in resp.headers.items()}


def test_puma_cluster_with_preload(tmp_path):
    lib = build_lib()
    port = free_port()
    out = str(tmp_path / "out")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "OTELPROF"))}
    env.update(PORT=str(port), OTELPROF_OUTPUT_DIR=out, OTELPROF_EXPORT_INTERVAL="1s")
    log = open(tmp_path / "puma.log", "w+")
    proc = subprocess.Popen([ruby(), "-I", lib, "-I", STANDIN, "-S", "puma", "-C", os.path.join(EXAMPLE, "puma.rb")],
                            cwd=str(tmp_path), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            text = open(log.name).read()
            if len(re.findall(r"Worker \d \(PID: \d+\) booted", text)) == 2:
                break
            assert proc.poll() is None, text
            time.sleep(0.1)
        else:
            raise AssertionError("Puma did not boot 2 workers:\n" + open(log.name).read())
        workers = {int(p) for p in re.findall(r"Worker \d \(PID: (\d+)\) booted", text)}
        master = int(re.search(r"Master PID: (\d+)", text).group(1))
        # A bounded load: 4 clients, 48 CPU-heavy requests and 16 waiting ones.
        urls = ["http://127.0.0.1:%d/cpu?n=25000" % port] * 48 + ["http://127.0.0.1:%d/io?ms=40" % port] * 16
        served, lock, errors = {}, threading.Lock(), []

        def client(k):
            for url in urls[k::4]:
                try:
                    status, h = get(url)
                    assert status == 200
                    with lock:
                        served.setdefault(int(h["x-pid"]), set()).add((h["x-trace-id"], h["x-span-id"]))
                except Exception as e:  # reported below, with the log
                    errors.append(repr(e))

        clients = [threading.Thread(target=client, args=(k,)) for k in range(4)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        assert not errors, errors[:3]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    text = open(log.name).read()
    # Puma ends a TERM'ed master by the signal once it shut down gracefully (at_exit handlers,
    # the profiler's last write among them, have run).
    assert proc.returncode in (0, -signal.SIGTERM), text
    assert "Goodbye!" in text, text
    assert set(served) <= workers and len(served) == 2, (served.keys(), workers)
    # No warning about our thread (Puma names the threads it found at boot; concurrent-ruby's
    # own, which Rails starts, may be among them).
    warned = [line for line in text.splitlines() if "Thread" in line and line.lstrip("[0123456789] ").startswith("!")]
    assert not any("otelprof" in line for line in warned), warned
    in_requests = 0
    for pid in sorted(workers | {master}):
        files = glob.glob(os.path.join(out, "example-rails-%d-*.otlp.pb" % pid))
        assert files, "no profiles from pid %d (%s)" % (pid, os.listdir(out))
        for f in files:
            d = otlpcheck.load(f)
            assert otlpcheck.check(d, dupes=True, orphans=True) == [], f
            for names, value, link in otlpcheck.stacks(d):
                if "WorkController#cpu" not in names:
                    continue
                assert pid in workers, ("a request in the master", names)
                assert link in served[pid], (pid, link)
                in_requests += value
    # 48 requests of ~20-60 ms of CPU each: 10 runs had 254 .. 381 samples inside requests
    # (mean 307, standard deviation 44); 100 is 4.7 deviations below.
    assert in_requests >= 100, in_requests
