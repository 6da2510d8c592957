"""The profilers compared by bench/run: otelprof (native and CPython) and its peers, each able to
say why it cannot run here, to set itself up for one run, and to read its own output back."""
import glob
import gzip
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("OTELPROF_BUILD", os.path.join(ROOT, "build"))
GO = shutil.which("go") or "/usr/local/go/bin/go"


def parse_folded(path_glob, name_of=lambda f: f):
    stacks = {}
    for path in glob.glob(path_glob):
        for line in open(path, errors="replace"):
            stack, _, n = line.rstrip("\n").rpartition(" ")
            if not stack or not n.isdigit():
                continue
            key = tuple(name_of(f) for f in stack.split(";"))
            stacks[key] = stacks.get(key, 0) + int(n)
    return stacks


def pprof_traces(binary, profile, sample_index=None):
    """{stack root..leaf: samples} from `go tool pprof -traces` (any pprof or gperftools file)."""
    args = [GO, "tool", "pprof", "-traces"] + ([f"-sample_index={sample_index}"] if sample_index else [])
    args += ([binary] if binary else []) + [profile]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600).stdout
    stacks, period = {}, None
    for block in out.split("-----------+-------------------------------------------------------"):
        lines = [l for l in block.splitlines() if l.strip()]
        # Label lines ("thread id: ...") may precede the line that carries the value and leaf.
        at = next((i for i, l in enumerate(lines) if re.match(r"\s*[\d.]+(ns|us|µs|ms|s)?\s+\S", l)), None)
        if at is None:
            continue
        m = re.match(r"\s*(\S+)\s+(.*)$", lines[at])
        frames = [m.group(2).strip()] + [l.strip() for l in lines[at + 1:]]
        stacks[tuple(reversed(frames))] = stacks.get(tuple(reversed(frames)), 0) + _to_samples(m.group(1))
    return stacks


def _to_samples(v):
    """pprof -traces prints durations ("10ms", "1.20s") for CPU profiles: 10 ms = one sample."""
    m = re.match(r"([\d.]+)(ns|us|µs|ms|s)?$", v)
    num, unit = float(m.group(1)), m.group(2)
    scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, None: None}[unit]
    return int(round(num)) if scale is None else int(round(num * scale / 0.010))


class Profiler:
    name, rate, hz = "?", "100 Hz", 100

    def required(self):
        """Whether a row of this profiler without figures fails the harness."""
        return False

    def unavailable(self):
        return None

    def unavailable_for(self, workload):
        return self.unavailable()

    def env(self, workdir, workload):
        return {}

    def wrap(self, cmd, workdir, workload):
        return cmd

    def analyse(self, m, workload):
        return {}


class Otelprof(Profiler):
    name = "otelprof"

    def required(self):
        return True

    def unavailable(self):
        lib = os.path.join(BUILD, "lib", "libotelprof.so")
        return None if os.path.exists(lib) else f"{lib} not built"

    def env(self, workdir, workload):
        return {"LD_PRELOAD": os.path.join(BUILD, "lib", "libotelprof.so"), "OTELPROF_INTERVAL": "10ms",
                "OTELPROF_OUTPUT_DIR": os.path.join(workdir, "out"), "OTELPROF_LOG_LEVEL": "debug",
                "OTEL_SERVICE_NAME": "bench"}

    def analyse(self, m, workload):
        out = os.path.join(m.workdir, "out")
        stats = re.findall(r"stats: (.*)", m.stderr)
        kv = dict(re.findall(r"(\w+)=(\d+)", stats[-1])) if stats else {}
        samples = int(kv["taken"]) if "taken" in kv else None
        wire = sum(len(gzip.compress(open(f, "rb").read())) for f in glob.glob(os.path.join(out, "*.otlp.pb")))
        res = {"stacks": parse_folded(os.path.join(out, "*.folded")), "samples": samples,
               "wire_bytes_per_sample": wire / samples if samples else None,
               "p50_ns": int(kv["handler_ns_p50"]) if "handler_ns_p50" in kv else None,
               "p99_ns": int(kv["handler_ns_p99"]) if "handler_ns_p99" in kv else None}
        if kv.get("dropped", "0") != "0":
            res["note"] = f"dropped {kv['dropped']}"
        return res


class Gperftools(Profiler):
    """gperftools' CPU profiler (ITIMER_PROF + its own unwinder), LD_PRELOADed."""
    name = "gperftools"
    LIB = "/usr/lib/x86_64-linux-gnu/libprofiler.so.0"

    def unavailable(self):
        if not os.path.exists(self.LIB) and os.geteuid() == 0 and shutil.which("apt-get"):
            # The harness installs its peers itself (Debian's gperftools).
            subprocess.run(["apt-get", "install", "-y", "-qq", "libgoogle-perftools-dev"],
                           capture_output=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if not os.path.exists(self.LIB):
            return "libprofiler.so missing (apt-get install libgoogle-perftools-dev failed)"
        return None if os.path.exists(GO) else "go (for pprof) missing"

    def env(self, workdir, workload):
        return {"LD_PRELOAD": self.LIB, "CPUPROFILE": os.path.join(workdir, "cpu.prof"),
                "CPUPROFILE_FREQUENCY": "100"}

    def analyse(self, m, workload):
        prof = os.path.join(m.workdir, "cpu.prof")
        if not os.path.exists(prof):
            return {"note": "no profile written"}
        stacks = pprof_traces(workload.cmd[0], prof)
        return {"stacks": stacks, "samples": sum(stacks.values()),
                "note": "signal path n/a (no self-metrics)"}


PEERS_NATIVE = [Gperftools]


# ---- Python -----------------------------------------------------------------------------------

def _python_frame_name(f):
    """'py_hot (py_workload.py:12)' -> 'py_hot'; qualified 'mod.py_hot' -> 'py_hot'."""
    f = f.split(" (", 1)[0].strip()
    return f.rsplit(".", 1)[-1]


class OtelprofPython(Profiler):
    name = "otelprof (cpython)"

    def required(self):
        return True

    def unavailable_for(self, workload):
        py = workload.python or sys.executable
        r = subprocess.run([py, "-c", "import otelprof._native"], capture_output=True)
        return None if r.returncode == 0 else f"CPython adapter not installed for {py} (pip install .)"

    def env(self, workdir, workload):
        return {"OTELPROF_INTERVAL": "10ms", "OTELPROF_OUTPUT_DIR": os.path.join(workdir, "out"),
                "OTELPROF_LOG_LEVEL": "debug", "OTEL_SERVICE_NAME": "bench"}

    def wrap(self, cmd, workdir, workload):
        return [cmd[0], "-m", "otelprof", "run", "--"] + cmd[1:]

    def analyse(self, m, workload):
        res = Otelprof.analyse(self, m, workload)
        res["stacks"] = {tuple(_python_frame_name(f) for f in s): n for s, n in res["stacks"].items()}
        return res


def _pip_tool(module, package):
    if importlib.util.find_spec(module) is None:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], capture_output=True, text=True)
        if r.returncode != 0:
            return f"pip install {package} failed: {r.stderr.strip().splitlines()[-1:]}"
    return None


class PySpy(Profiler):
    name = "py-spy record"
    nonblocking = False

    def unavailable(self):
        return _pip_tool("py_spy", "py-spy==0.4.3") if not shutil.which("py-spy") else None

    def wrap(self, cmd, workdir, workload):
        extra = ["--nonblocking"] if self.nonblocking else []
        return ["py-spy", "record", "-r", "100", "-f", "raw", "-o", os.path.join(workdir, "pyspy.txt")] + extra + ["--"] + cmd

    def analyse(self, m, workload):
        stacks = parse_folded(os.path.join(m.workdir, "pyspy.txt"), _python_frame_name)
        return {"stacks": stacks, "samples": sum(stacks.values()),
                "note": "out of process; signal path n/a"}


class PySpyNonblocking(PySpy):
    name = "py-spy record --nonblocking"
    nonblocking = True


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every upload and keeps the bodies, standing in for a profiling backend."""
    bodies = []

    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        else:
            n = int(self.headers.get("Content-Length", "0") or 0)
            body = self.rfile.read(n) if n else b""
        _Sink.bodies.append((self.path, self.headers.get("Content-Type", ""), body))
        try:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
        except (BrokenPipeError, ConnectionResetError):
            pass  # an uploader in a process that is exiting need not hear back

    do_PUT = do_POST

    def _read_chunked(self):
        body = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return body
            body += self.rfile.read(size)
            self.rfile.readline()

    def log_message(self, *a):
        pass


def _start_sink():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def _multipart_parts(body):
    """(name, payload) of each part of a multipart/form-data body."""
    for m in re.finditer(rb'name="([^"]+)"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n', body):
        start = m.end()
        end = body.find(b"\r\n--", start)
        yield m.group(1).decode(errors="replace"), body[start:end if end >= 0 else len(body)]


def _pb_fields(buf):
    """(field number, wire type, value) of one protobuf message; LEN values as bytes."""
    i, n = 0, len(buf)

    def varint():
        nonlocal i
        v = s = 0
        while i < n:
            b = buf[i]
            i += 1
            v |= (b & 0x7F) << s
            s += 7
            if b < 0x80:
                return v
        raise ValueError("truncated varint")
    while i < n:
        key = varint()
        f, wt = key >> 3, key & 7
        if wt == 0:
            yield f, wt, varint()
        elif wt == 2:
            ln = varint()
            yield f, wt, buf[i:i + ln]
            i += ln
        elif wt == 1:
            i += 8
        elif wt == 5:
            i += 4
        else:
            raise ValueError("unknown wire type")


def _pyroscope_push_profiles(body):
    """raw_profile bytes of a Pyroscope PushRequest {series=1 {samples=2 {raw_profile=1}}}."""
    out = []
    try:
        for f, wt, series in _pb_fields(body):
            if f != 1 or wt != 2:
                continue
            for f2, wt2, sample in _pb_fields(series):
                if f2 != 2 or wt2 != 2:
                    continue
                for f3, wt3, raw in _pb_fields(sample):
                    if f3 == 1 and wt3 == 2:
                        out.append(raw)
    except ValueError:
        pass
    return out


def _pprof_from_bodies(workdir, sample_index=None):
    """Reads the pprof payloads of the uploads (gzip'd, zstd'd or plain; raw or multipart)."""
    stacks = {}
    n = 0
    for _path, _ctype, body in _Sink.bodies:
        for name, part in _multipart_parts(body):
            if not name.endswith(".pprof"):
                continue
            if part[:4] == b"\x28\xb5\x2f\xfd":
                import zstandard
                part = zstandard.ZstdDecompressor().decompressobj().decompress(part)
            p = os.path.join(workdir, f"upload{n}.pprof")
            n += 1
            open(p, "wb").write(part)
            for s, c in pprof_traces(None, p, sample_index).items():
                key = tuple(_python_frame_name(f) for f in s)
                stacks[key] = stacks.get(key, 0) + c
    if stacks:
        return stacks
    for i, (_path, _ctype, body) in enumerate(_Sink.bodies):
        if body[:3] == b"\x1f\x8b\x08":
            # A compressed request (e.g. a protobuf push) whose fields hold gzip'd pprof.
            try:
                body = gzip.decompress(body)
            except Exception:
                pass
        for j, start in enumerate(m.start() for m in re.finditer(b"\x1f\x8b\x08", body)):
            blob = body[start:]
            try:
                data = gzip.decompress(blob)
            except Exception:
                try:
                    import zlib
                    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    data = d.decompress(blob)
                except Exception:
                    continue
            p = os.path.join(workdir, f"upload{i}_{j}.pb")
            open(p, "wb").write(gzip.compress(data))
            for s, n in pprof_traces(None, p).items():
                key = tuple(_python_frame_name(f) for f in s)
                stacks[key] = stacks.get(key, 0) + n
    return stacks


class Pyroscope(Profiler):
    """Pyroscope's Python SDK (in-process), uploading to a local sink."""
    name = "pyroscope-io"

    def unavailable(self):
        return _pip_tool("pyroscope", "pyroscope-io==1.4.0")

    def env(self, workdir, workload):
        self.srv = _start_sink()
        _Sink.bodies = []
        return {"BENCH_PYROSCOPE_URL": f"http://127.0.0.1:{self.srv.server_address[1]}"}

    def wrap(self, cmd, workdir, workload):
        return [cmd[0], os.path.join(ROOT, "bench", "pyroscope_wrap.py")] + cmd[1:]

    def analyse(self, m, workload):
        self.srv.shutdown()
        stacks = {}
        for _path, _ctype, body in _Sink.bodies:
            text = body.decode(errors="replace")
            for line in text.splitlines():
                stack, _, n = line.rpartition(" ")
                if stack and n.isdigit():
                    key = tuple(_python_frame_name(f) for f in stack.split(";"))
                    stacks[key] = stacks.get(key, 0) + int(n)
        if not stacks:
            n = 0
            for _path, _ctype, body in _Sink.bodies:
                if body[:3] == b"\x1f\x8b\x08":
                    body = gzip.decompress(body)
                for raw in _pyroscope_push_profiles(body):
                    p = os.path.join(m.workdir, f"push{n}.pprof")
                    n += 1
                    open(p, "wb").write(raw)
                    for s, c in pprof_traces(None, p).items():
                        key = tuple(_python_frame_name(f) for f in s)
                        stacks[key] = stacks.get(key, 0) + c
        note = f"{len(_Sink.bodies)} uploads; signal path n/a"
        return {"stacks": stacks, "samples": sum(stacks.values()) or None, "note": note}


class Ddtrace(Profiler):
    """Datadog's in-process profiler, uploading to a local sink in place of the agent."""
    name = "ddtrace profiler"
    rate = "default"

    def unavailable(self):
        return _pip_tool("ddtrace", "ddtrace==4.16.0") or _pip_tool("zstandard", "zstandard")

    def env(self, workdir, workload):
        self.srv = _start_sink()
        _Sink.bodies = []
        return {"DD_PROFILING_ENABLED": "true", "DD_TRACE_ENABLED": "false",
                "DD_TRACE_AGENT_URL": f"http://127.0.0.1:{self.srv.server_address[1]}",
                "DD_PROFILING_UPLOAD_INTERVAL": "1", "DD_SERVICE": "bench",
                "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false", "DD_REMOTE_CONFIGURATION_ENABLED": "false"}

    def wrap(self, cmd, workdir, workload):
        return ["ddtrace-run"] + cmd

    def analyse(self, m, workload):
        self.srv.shutdown()
        stacks = _pprof_from_bodies(m.workdir, "cpu-samples")
        return {"stacks": stacks, "samples": sum(stacks.values()) or None,
                "note": f"{len(_Sink.bodies)} uploads; its rate is adaptive, not settable to 100 Hz"}


PEERS_PYTHON = [PySpy, PySpyNonblocking, Pyroscope, Ddtrace]


# ---- JVM --------------------------------------------------------------------------------------

CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "otelprof", "bench")
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"


def _in_ci():
    return os.environ.get("CI") == "true"


def maven_jar(coords):
    """(path of the jar group:artifact:version, None), fetched once into the cache with Maven, or
    (None, why not)."""
    _group, artifact, version = coords.split(":")
    dest = os.path.join(CACHE, f"{artifact}-{version}")
    jar = os.path.join(dest, f"{artifact}-{version}.jar")
    if os.path.exists(jar):
        return jar, None
    if not shutil.which("mvn"):
        return None, "mvn missing (Debian maven) to fetch " + coords
    os.makedirs(dest, exist_ok=True)
    # Run where there is no pom.xml, so Maven resolves only the artifact.
    r = subprocess.run(["mvn", "-B", "-q", f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={coords}",
                        f"-DoutputDirectory={dest}"], cwd=dest, capture_output=True, text=True, timeout=600)
    if r.returncode != 0 or not os.path.exists(jar):
        last = (r.stdout + r.stderr).strip().splitlines()[-1:] or [""]
        return None, f"mvn could not fetch {coords}: {last[0][:200]}"
    return jar, None


def java_frame_name(f):
    """'java/lang/Thread.run' or 'java.lang.Thread.run_[j]' -> 'java.lang.Thread.run'."""
    f = f.replace("/", ".")
    return re.sub(r"_\[[a-z0-9]\]$", "", f)


def insert_jvm_options(cmd, options):
    """The java command with options placed right after the launcher."""
    return [cmd[0]] + options + cmd[1:]


class OtelprofJava(Profiler):
    name = "otelprof (jvm)"
    LIB = os.path.join(BUILD, "lib", "libotelprof_jvmti.so")

    def required(self):
        # Until a JDK build produces the agent, a run outside CI says so instead of failing.
        return _in_ci() or os.path.exists(self.LIB)

    def unavailable(self):
        return None if os.path.exists(self.LIB) else f"{self.LIB} not built (scripts/build.sh with a JDK)"

    def wrap(self, cmd, workdir, workload):
        opts = f"interval=10ms,output_dir={os.path.join(workdir, 'out')},log_level=debug,service_name=bench"
        return insert_jvm_options(cmd, [f"-agentpath:{self.LIB}={opts}"])

    def analyse(self, m, workload):
        res = Otelprof.analyse(self, m, workload)
        res["stacks"] = {tuple(java_frame_name(f) for f in s): n for s, n in res["stacks"].items()}
        return res


class AsyncProfiler(Profiler):
    """async-profiler 4.6 from Maven Central (the plain jar embeds linux-x64/libasyncProfiler.so)."""
    name = "async-profiler 4.6"
    COORDS = "tools.profiler:async-profiler:4.6"

    def required(self):
        return _in_ci()

    def unavailable(self):
        jar, why = maven_jar(self.COORDS)
        if why:
            return why
        self.lib = os.path.join(os.path.dirname(jar), "linux-x64", "libasyncProfiler.so")
        if not os.path.exists(self.lib):
            with zipfile.ZipFile(jar) as z:
                z.extract("linux-x64/libasyncProfiler.so", os.path.dirname(jar))
        return None

    def wrap(self, cmd, workdir, workload):
        out = os.path.join(workdir, "ap.collapsed")
        return insert_jvm_options(cmd, [f"-agentpath:{self.lib}=start,event=cpu,interval=10ms,file={out}"])

    def analyse(self, m, workload):
        stacks = parse_folded(os.path.join(m.workdir, "ap.collapsed"), java_frame_name)
        return {"stacks": stacks, "samples": sum(stacks.values()) or None,
                "note": "signal path n/a (no self-metrics)"}


def _jdk_tool(name):
    from workloads import find_jdk
    jdk = find_jdk()
    return os.path.join(jdk, "bin", name) if jdk else None


def jfr_stacks(path, event="jdk.ExecutionSample"):
    """{stack root..leaf: samples} of one event type in a JFR file, read by the JDK's jfr tool."""
    r = subprocess.run([_jdk_tool("jfr"), "print", "--json", "--stack-depth", "256", "--events", event, path],
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return {}
    stacks = {}
    for ev in json.loads(r.stdout)["recording"]["events"]:
        frames = (ev["values"].get("stackTrace") or {}).get("frames") or []
        key = tuple(java_frame_name(f"{f['method']['type']['name']}.{f['method']['name']}") for f in reversed(frames))
        stacks[key] = stacks.get(key, 0) + 1
    return stacks


def jfr_event_count(path, event):
    """How many events of a type a JFR file holds (from `jfr summary`), or None."""
    r = subprocess.run([_jdk_tool("jfr"), "summary", path], capture_output=True, text=True, timeout=600)
    m = re.search(rf"^\s*{re.escape(event)}\s+(\d+)", r.stdout, re.M)
    return int(m.group(1)) if m else None


class Ddprof(Profiler):
    """Datadog's Java profiler library (an async-profiler fork), loaded as a JVM agent."""
    name = "ddprof 1.22.0"
    COORDS = "com.datadoghq:ddprof:1.22.0"
    ENTRY = "META-INF/native-libs/linux-x64/libjavaProfiler.so"

    def unavailable(self):
        jar, why = maven_jar(self.COORDS)
        if why:
            return why
        self.lib = os.path.join(os.path.dirname(jar), self.ENTRY)
        if not os.path.exists(self.lib):
            with zipfile.ZipFile(jar) as z:
                z.extract(self.ENTRY, os.path.dirname(jar))
        return None

    def wrap(self, cmd, workdir, workload):
        out = os.path.join(workdir, "dd.jfr")
        return insert_jvm_options(cmd, [f"-agentpath:{self.lib}=start,cpu=10ms,file={out}"])

    def analyse(self, m, workload):
        # Its JFR has an empty string pool, which the JDK's reader refuses: counts, no stacks.
        n = jfr_event_count(os.path.join(m.workdir, "dd.jfr"), "datadog.ExecutionSample")
        return {"samples": n, "note": "stacks n/a (its JFR is unreadable by the JDK's jfr); signal path n/a"}


class PyroscopeJava(Profiler):
    """Grafana Pyroscope's Java agent (async-profiler inside), uploading JFR to a local sink."""
    name = "pyroscope agent 2.9.2"
    COORDS = "io.pyroscope:agent:2.9.2"

    def unavailable(self):
        self.jar, why = maven_jar(self.COORDS)
        return why

    def env(self, workdir, workload):
        self.srv = _start_sink()
        _Sink.bodies = []
        return {"PYROSCOPE_SERVER_ADDRESS": f"http://127.0.0.1:{self.srv.server_address[1]}",
                "PYROSCOPE_APPLICATION_NAME": "bench", "PYROSCOPE_PROFILER_EVENT": "cpu",
                "PYROSCOPE_PROFILING_INTERVAL": "10ms", "PYROSCOPE_UPLOAD_INTERVAL": "1s",
                "PYROSCOPE_FORMAT": "jfr"}

    def wrap(self, cmd, workdir, workload):
        return insert_jvm_options(cmd, [f"-javaagent:{self.jar}"])

    def analyse(self, m, workload):
        self.srv.shutdown()
        stacks = {}
        for i, (_path, _ctype, body) in enumerate(_Sink.bodies):
            for name, part in _multipart_parts(body):
                if name != "jfr":
                    continue
                p = os.path.join(m.workdir, f"upload{i}.jfr")
                open(p, "wb").write(gzip.decompress(part) if part[:2] == b"\x1f\x8b" else part)
                for s, n in jfr_stacks(p).items():
                    stacks[s] = stacks.get(s, 0) + n
        return {"stacks": stacks, "samples": sum(stacks.values()) or None,
                "note": f"{len(_Sink.bodies)} uploads; signal path n/a"}


PEERS_JAVA = [AsyncProfiler, Ddprof, PyroscopeJava]
