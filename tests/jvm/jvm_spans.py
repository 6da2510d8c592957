"""Helpers for the JVM span tests: the jar (built with Maven, its JUnit tests included), the JDKs,
the span workloads (tests/jvm/span_workloads/Span*.java, compiled once per JDK), a profiled JVM run,
and the samples of its OTLP files with their links and thread names."""
import glob
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tests", "collector"))

import otlpcheck  # noqa: E402
from jvmrun import BUILD, JVM_DIR, missing  # noqa: E402
from jvmrun import AGENT as AGENT_LIB  # noqa: E402

TARGET = os.path.join(ROOT, "target")
JAR = os.path.join(TARGET, "otelprof-jvm.jar")
JAVAAGENT = os.path.join(TARGET, "opentelemetry-javaagent.jar")
# Not tests/jvm/workloads: those compile without the OpenTelemetry SDK (jvmrun.py).
WORKLOADS = os.path.join(HERE, "span_workloads")


# ---- JDKs ---------------------------------------------------------------------------------------

def jdk17():
    for home in (os.environ.get("JAVA_HOME", ""), os.path.join(JVM_DIR, "java-17-openjdk-amd64")):
        if home and os.access(os.path.join(home, "bin", "javac"), os.X_OK) and "17" in _version(home):
            return home
    missing("no JDK 17 (Debian openjdk-17-jdk, installed by scripts/setup.sh)")


def jdk25():
    """Temurin 25 comes with the machine image, not from a package: its absence is a skip."""
    for home in sorted(glob.glob(os.path.join(JVM_DIR, "temurin-25*"))):
        if os.access(os.path.join(home, "bin", "javac"), os.X_OK):
            return home
    pytest.skip("Temurin 25 is not installed in %s (it comes with the machine image): the "
                "virtual-thread checks need JDK 21+" % JVM_DIR)


def _version(home):
    r = subprocess.run([os.path.join(home, "bin", "java"), "-version"], stderr=subprocess.PIPE,
                       stdout=subprocess.DEVNULL, text=True)
    return r.stderr


# ---- the jar ------------------------------------------------------------------------------------

_built = {}


def build_jar():
    """Builds target/otelprof-jvm.jar with Maven once per session, JUnit tests included (a failing
    unit test fails every test that needs the jar), and returns the surefire summary lines."""
    if "log" not in _built:
        if not shutil.which("mvn"):
            missing("mvn is not installed (Debian maven, installed by scripts/setup.sh)")
        env = dict(os.environ, JAVA_HOME=jdk17())
        r = subprocess.run(["mvn", "-B", "-q", "-f", os.path.join(ROOT, "pom.xml"), "package"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                           timeout=900)
        if r.returncode != 0:
            pytest.fail("mvn package failed:\n" + r.stdout[-6000:])
        _built["log"] = r.stdout
    for f in (JAR, JAVAAGENT, os.path.join(TARGET, "sdk-classpath.txt")):
        assert os.path.exists(f), f + " missing after mvn package"
    return _built["log"]


def agent_lib():
    if not os.path.exists(AGENT_LIB):
        pytest.fail(AGENT_LIB + " missing: build first (scripts/build.sh)")
    return AGENT_LIB


def sdk_classpath():
    """The OpenTelemetry API and SDK jars an application using the SDK directly has."""
    build_jar()
    return open(os.path.join(TARGET, "sdk-classpath.txt")).read().strip()


def classes_without_services():
    """The jar's classes without its META-INF/services files (as a fat jar that drops them would
    have): the wrapper then comes only from an explicit Otelprof.install()."""
    build_jar()
    out = os.path.join(BUILD, "jvm-spans", "classes-noservices")
    if not os.path.isdir(out):
        tmp = out + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with zipfile.ZipFile(JAR) as z:
            for name in z.namelist():
                if not name.startswith("META-INF/services/"):
                    z.extract(name, tmp)
        os.rename(tmp, out)
    return out


def workloads(home):
    """Compiles tests/jvm/span_workloads/Span*.java with the JDK at home (once per session) against the
    SDK and the jar; returns the class directory."""
    key = ("workloads", home)
    if key not in _built:
        out = os.path.join(BUILD, "jvm-spans", os.path.basename(home))
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        srcs = sorted(glob.glob(os.path.join(WORKLOADS, "Span*.java")))
        r = subprocess.run([os.path.join(home, "bin", "javac"), "-d", out, "-cp",
                            sdk_classpath() + ":" + JAR] + srcs,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert r.returncode == 0, r.stdout
        _built[key] = out
    return _built[key]


# ---- running a JVM ------------------------------------------------------------------------------

class JvmRun:
    def __init__(self, proc, stdout, stderr, out_dir):
        self.rc = proc.returncode
        self.stdout = stdout
        self.stderr = stderr
        self.out_dir = out_dir

    def otlp_files(self):
        return sorted(glob.glob(os.path.join(self.out_dir, "*.otlp.pb")))

    def profiles(self):
        files = self.otlp_files()
        assert files, "no OTLP files in %s; stderr:\n%s" % (self.out_dir, self.stderr[-3000:])
        return [otlpcheck.load(f) for f in files]

    def samples(self):
        out = []
        for d in self.profiles():
            out += samples(d)
        return out

    def lines(self, prefix):
        return [l.split()[1:] for l in self.stdout.splitlines() if l.startswith(prefix + " ")]


def clean_env(extra=None):
    """The test runner's environment without any OTEL_*/OTELPROF_* variable, plus extra."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTELPROF_"))
         and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "java_tool_options")}
    e.update(extra or {})
    return e


def run_jvm(home, args, tmp_path, env=None, agent=True, agent_options="", timeout=300, stdin=None):
    """Runs java (from home) with the native agent (unless agent=False) writing into tmp_path/out;
    the agent is configured through the environment (env), like any otelprof process."""
    out_dir = os.path.join(str(tmp_path), "out")
    os.makedirs(str(tmp_path), exist_ok=True)
    cmd = [os.path.join(home, "bin", "java")]
    if agent:
        cmd.append("-agentpath:" + agent_lib() + ("=" + agent_options if agent_options else ""))
    cmd += args
    e = clean_env({"OTELPROF_OUTPUT_DIR": out_dir, "OTELPROF_FORMATS": "otlp,folded"})
    e.update(env or {})
    p = subprocess.Popen(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                         cwd=str(tmp_path), text=True)
    try:
        out, err = p.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise AssertionError("%s did not finish in %ds:\n%s" % (cmd, timeout, err[-3000:]))
    return JvmRun(p, out, err, out_dir)


# ---- reading profiles ---------------------------------------------------------------------------

class Sample:
    __slots__ = ("frames", "value", "link", "attrs")

    def __init__(self, frames, value, link, attrs):
        self.frames = frames  # function names, leaf first
        self.value = value
        self.link = link      # (trace id hex, span id hex) or None
        self.attrs = attrs    # sample attributes, e.g. thread.name

    def has(self, fn):
        return any(f == fn or f.endswith("." + fn) for f in self.frames)

    def count(self, fn):
        return sum(1 for f in self.frames if f == fn or f.endswith("." + fn))


def samples(data):
    """Every sample of one ProfilesData (checked with otlpcheck first) as Sample objects."""
    d = data.dictionary
    st = d.string_table
    out = []
    for rp in data.resource_profiles:
        for sp in rp.scope_profiles:
            for prof in sp.profiles:
                for s in prof.samples:
                    names = []
                    for li in d.stack_table[s.stack_index].location_indices:
                        for line in d.location_table[li].lines:
                            names.append(st[d.function_table[line.function_index].name_strindex])
                    value = sum(s.values) if s.values else len(s.timestamps_unix_nano)
                    link = None
                    if s.link_index:
                        lk = d.link_table[s.link_index]
                        link = (lk.trace_id.hex(), lk.span_id.hex())
                    attrs = {}
                    for ai in s.attribute_indices:
                        kv = d.attribute_table[ai]
                        attrs[st[kv.key_strindex]] = kv.value.string_value or kv.value.int_value
                    out.append(Sample(names, value, link, attrs))
    return out


def check_files(run):
    """Every OTLP file of the run passes the conformance checker, duplicate and orphan checks on."""
    files = run.otlp_files()
    assert files, "no OTLP files; stderr:\n" + run.stderr[-3000:]
    for f in files:
        errors = otlpcheck.check(otlpcheck.load(f), dupes=True, orphans=True)
        assert not errors, "%s:\n%s" % (f, "\n".join(errors[:20]))
    return files
