"""Helpers for the export tests: the real OpenTelemetry Collector (built by scripts/collector.sh),
a small loopback HTTP server that plays a failing collector, and a runner that measures how long
the profiled program's own work took."""
import gzip
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from opentelemetry.proto.profiles.v1development import profiles_pb2  # noqa: E402

BUILD = os.environ.get("OTELPROF_BUILD", os.path.join(ROOT, "build"))
LIB = os.path.join(BUILD, "lib", "libotelprof.so")
STDBUF = "/usr/libexec/coreutils/libstdbuf.so"


def bin_path(name):
    return os.path.join(BUILD, "bin", name)


def missing(why):
    """A component the tests need is absent: a failure under CI, a skip on a developer machine."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the real Collector ---------------------------------------------------------------------------

_binary = None


def collector_binary():
    """Path of the cached Collector build; builds it the first time (several minutes)."""
    global _binary
    if _binary is None:
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "collector.sh")],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=3600)
        path = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if r.returncode != 0 or not os.access(path, os.X_OK):
            missing("cannot build the OpenTelemetry Collector: " + r.stderr[-2000:])
        _binary = path
    return _binary


def collector_components(binary):
    f = os.path.join(os.path.dirname(binary), "components")
    return open(f).read().split() if os.path.exists(f) else ["otlp", "debug"]


class Collector:
    """One Collector process: otlp/http receiver on 127.0.0.1:port, debug exporter (detailed),
    and the file exporter writing what it received as length-prefixed protobuf."""

    def __init__(self, workdir, port=None, name="otelcol"):
        self.binary = collector_binary()
        self.has_file = "file" in collector_components(self.binary)
        self.port = port or free_port()
        self.dir = str(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.out = os.path.join(self.dir, name + "-received.pb")
        self.log = os.path.join(self.dir, name + ".log")
        self.config = os.path.join(self.dir, name + ".yaml")
        exporters = ["debug"] + (["file"] if self.has_file else [])
        with open(self.config, "w") as f:
            f.write(f"""receivers:
  otlp: {{ protocols: {{ http: {{ endpoint: "127.0.0.1:{self.port}" }} }} }}
exporters:
  debug: {{ verbosity: detailed }}
""")
            if self.has_file:
                f.write(f"  file: {{ path: \"{self.out}\", format: proto, flush_interval: 50ms }}\n")
            f.write(f"""service:
  telemetry: {{ metrics: {{ level: none }} }}
  pipelines: {{ profiles: {{ receivers: [otlp], exporters: [{", ".join(exporters)}] }} }}
""")
        self.proc = None

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([self.binary, "--config", self.config,
                                      "--feature-gates=service.profilesSupport"],
                                     stdout=logf, stderr=logf)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("collector exited: " + open(self.log).read()[-3000:])
            if "Everything is ready" in open(self.log, errors="replace").read():
                return self
            time.sleep(0.05)
        raise AssertionError("collector did not start: " + open(self.log).read()[-3000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def received(self, settle=1.0):
        """Every request the Collector received, as ProfilesData messages, in order."""
        time.sleep(settle)  # the file exporter flushes every 50 ms
        if not self.has_file:
            pytest.fail("the contrib file exporter did not build; see the collector build log")
        out = []
        if not os.path.exists(self.out):
            return out
        raw = open(self.out, "rb").read()
        off = 0
        while off + 4 <= len(raw):
            (n,) = struct.unpack(">I", raw[off:off + 4])
            d = profiles_pb2.ProfilesData()
            d.ParseFromString(raw[off + 4:off + 4 + n])
            out.append(d)
            off += 4 + n
        return out

    def debug_log(self):
        return open(self.log, errors="replace").read()


def attrs(data, kvs):
    """{key: string value} of a list of KeyValue, whether the sender put keys and values inline
    or (as the Collector does when it re-encodes) in the dictionary's string table."""
    st = data.dictionary.string_table
    out = {}
    for kv in kvs:
        key = kv.key or (st[kv.key_strindex] if kv.key_strindex else "")
        v = kv.value
        if v.HasField("string_value"):
            val = v.string_value
        elif v.HasField("string_value_strindex"):
            val = st[v.string_value_strindex]
        elif v.HasField("int_value"):
            val = str(v.int_value)
        else:
            val = str(v)
        out[key] = val
    return out


# ---- a failing collector ----------------------------------------------------------------------------

def rpc_status(code, message):
    """google.rpc.Status{code, message} as protobuf bytes."""
    m = message.encode()
    return bytes([0x08, code, 0x12]) + _varint(len(m)) + m


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


class FaultServer:
    """Loopback HTTP server; `respond(n)` gives (status, headers dict, body) for the n-th request
    (0-based). Records every request's time, headers and (decompressed) body."""

    def __init__(self, respond):
        self.respond = respond
        self.requests = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                with outer.lock:
                    idx = len(outer.requests)
                    outer.requests.append({"t": time.monotonic(), "path": self.path,
                                           "headers": dict(self.headers), "body": body})
                status, headers, payload = outer.respond(idx)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def profiles(self):
        out = []
        for r in self.requests:
            d = profiles_pb2.ProfilesData()
            d.ParseFromString(r["body"])
            out.append(d)
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentServer:
    """Accepts connections and never answers (a hung collector)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except socket.timeout:
                pass
            except OSError:
                return

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def close(self):
        self.stop = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.sock.close()


# ---- running a profiled program ---------------------------------------------------------------------

class Run:
    def __init__(self, rc, stdout, stderr, work_s, total_s, maxrss_kb):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.work_s = work_s    # start until the program printed its last line of work
        self.total_s = total_s  # start until exit (includes the profiler's shutdown flush)
        self.maxrss_kb = maxrss_kb

    def stats(self):
        """The last debug "stats:" line as a dict of ints."""
        lines = [l for l in self.stderr.splitlines() if "otelprof: debug: stats:" in l]
        assert lines, "no stats line (OTELPROF_LOG_LEVEL=debug?):\n" + self.stderr[-2000:]
        return {k: int(v) for k, v in (kv.split("=") for kv in lines[-1].split("stats:")[1].split())}

    def export_final(self):
        lines = [l for l in self.stderr.splitlines() if "otelprof: debug: export final:" in l]
        assert len(lines) == 1, self.stderr[-3000:]
        return {k: int(v) for k, v in (kv.split("=") for kv in lines[0].split("final:")[1].split())}

    def errors(self):
        return [l for l in self.stderr.splitlines() if l.startswith("otelprof: error:")]


def run(cmd, cwd, env=None, profile=True, done_marker="done", timeout=120):
    """Runs cmd (LD_PRELOAD native mode unless profile=False or the program links the library) with
    only the given OTEL_*/OTELPROF_* variables, stdout line-buffered so the moment the work ends is
    seen, and returns a Run."""
    os.makedirs(str(cwd), exist_ok=True)
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("OTEL_", "OTELPROF_")) and k.lower() not in ("http_proxy", "https_proxy",
                                                                         "all_proxy", "no_proxy")}
    preload = [STDBUF] if os.path.exists(STDBUF) else []
    if profile == "preload":
        preload.append(LIB)
    e["LD_PRELOAD"] = ":".join(preload)
    e["_STDBUF_O"] = "L"
    if profile is False:
        e["OTEL_SDK_DISABLED"] = "true"
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(cwd))
    out_lines, last = [], [t0]
    err_chunks = []

    def read_out():
        for line in iter(p.stdout.readline, b""):
            out_lines.append(line.decode(errors="replace"))
            if done_marker in out_lines[-1]:
                last[0] = time.monotonic()

    def read_err():
        err_chunks.append(p.stderr.read())

    to, te = threading.Thread(target=read_out), threading.Thread(target=read_err)
    to.start()
    te.start()
    # Peak RSS from VmHWM, polled: rusage's maxrss would include the test runner's own pages
    # that the child had before exec.
    hwm = 0
    while True:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - t0 > timeout:
            p.kill()
            os.wait4(p.pid, 0)
            raise AssertionError(f"{cmd} did not finish in {timeout}s")
        time.sleep(0.005)
    total = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    to.join()
    te.join()
    return Run(p.returncode, "".join(out_lines), b"".join(err_chunks).decode(errors="replace"),
               last[0] - t0, total, hwm)


def timed_against_baseline(cmd, tmp_path, profiled, rounds=5, tolerance=0.10):
    """Runs profiled(i) -> Run and, next to it, cmd without profiling, in pairs, until the fastest
    profiled run's own work is within `tolerance` of the fastest unprofiled one (at least two
    pairs, at most `rounds`). Other load on the machine only ever adds time, so the fastest of
    each is the estimate least disturbed by it. Returns the last profiled Run (with .timing);
    fails listing every pair when the estimates never came within the tolerance."""
    pairs = []
    for i in range(rounds):
        b = run(cmd, tmp_path / f"baseline{i}", profile=False)
        assert b.rc == 0, b.stderr
        r = profiled(i)
        pairs.append((round(r.work_s, 3), round(b.work_s, 3)))
        best_p, best_b = min(p for p, _ in pairs), min(q for _, q in pairs)
        if i >= 1 and abs(best_p - best_b) <= tolerance * best_b:
            r.timing = pairs
            return r
    raise AssertionError(f"own work (profiled, unprofiled) in seconds, fastest never within "
                         f"{tolerance:.0%}: {pairs}")
