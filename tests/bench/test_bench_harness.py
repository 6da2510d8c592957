"""The benchmark harness's own parts that its quick run cannot show to be right: reading the Java
profilers' frame names, the load driver's failure path, and the upload sink's chunked bodies."""
import http.client
import importlib.machinery
import importlib.util
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import peers  # noqa: E402
from http_load import HttpLoad  # noqa: E402


def load_run():
    loader = importlib.machinery.SourceFileLoader("bench_run", os.path.join(ROOT, "bench", "run"))
    spec = importlib.util.spec_from_loader("bench_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_java_frame_names_of_every_profiler_compare_equal():
    # async-profiler writes slashes and, when annotating, a frame-type suffix; otelprof dots.
    assert peers.java_frame_name("java/lang/Thread.run") == "java.lang.Thread.run"
    assert peers.java_frame_name("BenchSplit.hot_[j]") == "BenchSplit.hot"
    assert peers.java_frame_name("BenchSplit.cold_[i]") == "BenchSplit.cold"
    assert peers.java_frame_name("Unsafe_Park") == "Unsafe_Park"


def test_share_error_of_a_java_split(tmp_path):
    run = load_run()
    f = tmp_path / "ap.collapsed"
    f.write_text("Thread.run;BenchSplit.work;BenchSplit.hot 66\n"
                 "java/lang/Thread.run;BenchSplit.work;BenchSplit.cold_[j] 34\n"
                 "java/lang/Thread.run;GC_active 50\n")
    stacks = peers.parse_folded(str(f), peers.java_frame_name)
    # 66/100 against 70%: 4 pp; stacks without either method (GC) are not in the denominator.
    assert abs(run.share_error_pp(stacks, {"BenchSplit.hot": 0.7, "BenchSplit.cold": 0.3}) - 4.0) < 1e-9


def test_server_that_never_listens_is_killed_and_reported(tmp_path):
    run = load_run()
    pid_file = tmp_path / "pid"
    sleeper = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    t0 = time.monotonic()
    m = run.run_once([sys.executable, "-c", sleeper], run.base_env(), str(tmp_path),
                     driver=HttpLoad("/work", 10, 2, start_timeout=1))
    assert time.monotonic() - t0 < 20
    assert run.driver_failed(m) == "the server never printed its port"
    # The sleeper ran under time(1): killing time(1) alone would have left it running.
    pid = int(pid_file.read_text())
    for _ in range(100):
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the server (pid {pid}) still runs")


def test_server_that_exits_at_once_is_reported(tmp_path):
    run = load_run()
    m = run.run_once([sys.executable, "-c", "pass"], run.base_env(), str(tmp_path),
                     driver=HttpLoad("/work", 10, 2, start_timeout=30))
    assert m.rc == 0 and run.driver_failed(m) == "the server never printed its port"


def test_sink_reads_chunked_uploads():
    srv = peers._start_sink()
    peers._Sink.bodies = []
    try:
        body = [b"--b\r\n", b"x" * 70000, b"\r\n--b--\r\n"]
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        conn.request("POST", "/ingest", body=iter(body), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        srv.shutdown()
    assert peers._Sink.bodies[0][2] == b"".join(body)
