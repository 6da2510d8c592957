"""The JVM tests' helpers and fixtures (tests/conftest.py imports the fixtures): which JDKs there
are, Java workloads compiled once into a cache, and a JVM run under the agent with its profile
read back.

JDKs: Debian's OpenJDK 17 (scripts/setup.sh installs it; missing, the tests fail under CI=true
and skip otherwise) and the Temurin 25 that comes with the machine image in /usr/lib/jvm (not from
apt: when absent its tests skip with the reason, under CI too)."""
import glob
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import otlpcheck  # noqa: E402

BUILD = os.environ.get("OTELPROF_BUILD", os.path.join(ROOT, "build"))
AGENT = os.path.join(BUILD, "lib", "libotelprof_jvmti.so")
WORKLOADS = os.path.join(HERE, "workloads")
JVM_DIR = "/usr/lib/jvm"


def missing(why):
    """A component the tests need is absent: a failure under CI, a skip on a developer machine."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


class Jdk:
    def __init__(self, name, home):
        self.name = name
        self.home = home
        self.java = os.path.join(home, "bin", "java")
        self.javac = os.path.join(home, "bin", "javac")
        self.jcmd = os.path.join(home, "bin", "jcmd")

    def __repr__(self):
        return self.name


def find_jdk17():
    for home in [os.path.join(JVM_DIR, "java-17-openjdk-amd64"), os.path.join(JVM_DIR, "java-17-openjdk-arm64")]:
        if os.access(os.path.join(home, "bin", "javac"), os.X_OK):
            return Jdk("jdk17", home)
    return None


def find_jdk25():
    for home in sorted(glob.glob(os.path.join(JVM_DIR, "temurin-25*"))):
        if os.access(os.path.join(home, "bin", "java"), os.X_OK):
            return Jdk("temurin25", home)
    return None


def jdk_or_skip(name):
    """The named JDK ("jdk17" or "temurin25"), else the test fails (JDK 17 under CI) or skips."""
    if name == "jdk17":
        jdk = find_jdk17()
        if not jdk:
            missing("Debian's OpenJDK 17 is not installed in %s (scripts/setup.sh installs openjdk-17-jdk)" % JVM_DIR)
        return jdk
    jdk = find_jdk25()
    if not jdk:
        pytest.skip("Temurin 25 is not in %s on this machine (it comes with the machine image, not from apt)" % JVM_DIR)
    return jdk


@pytest.fixture(scope="session")
def agent():
    assert os.path.exists(AGENT), f"{AGENT} missing: build first (scripts/build.sh)"
    return AGENT


@pytest.fixture(scope="session")
def jdk17():
    return jdk_or_skip("jdk17")


@pytest.fixture(scope="session")
def jdk25():
    return jdk_or_skip("temurin25")


@pytest.fixture(scope="session", params=["jdk17", "temurin25"])
def jdk(request):
    """Each JDK in turn (Temurin 25 skipped with the reason where absent)."""
    return jdk_or_skip(request.param)


def java_sources(src_dir=WORKLOADS):
    return sorted(glob.glob(os.path.join(src_dir, "**", "*.java"), recursive=True))


def compile_java(src_dir=WORKLOADS, classpath=None):
    """Compiles every .java under src_dir (for Java 17, so both JDKs run it) into a cache directory
    named after the sources' hash under build/test-cache/jvm; returns that directory. Compiled once
    per change of the sources, also across test runs."""
    jdk = find_jdk17() or find_jdk25()
    if not jdk:
        missing("no JDK to compile the Java workloads (scripts/setup.sh installs openjdk-17-jdk)")
    srcs = java_sources(src_dir)
    h = hashlib.sha256()
    for s in srcs:
        h.update(os.path.relpath(s, src_dir).encode())
        with open(s, "rb") as f:
            h.update(f.read())
    h.update((classpath or "").encode())
    out = os.path.join(BUILD, "test-cache", "jvm", h.hexdigest()[:16])
    if os.path.exists(os.path.join(out, ".done")):
        return out
    tmp = out + ".tmp.%d" % os.getpid()
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cmd = [jdk.javac, "--release", "17", "-d", tmp] + (["-cp", classpath] if classpath else []) + srcs
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, "javac failed:\n" + p.stderr
    open(os.path.join(tmp, ".done"), "w").close()
    try:
        os.rename(tmp, out)
    except OSError:  # another process compiled the same sources meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return out


@pytest.fixture(scope="session")
def classes():
    return compile_java()


class JavaRun:
    """One JVM run: exit status, output, CPU time, and what the agent wrote into out_dir."""

    def __init__(self, rc, stdout, stderr, cpu_s, wall_s, out_dir):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.cpu_s = cpu_s
        self.wall_s = wall_s
        self.out_dir = out_dir

    def files(self, pattern):
        return sorted(glob.glob(os.path.join(self.out_dir, pattern)))

    def value(self, key):
        """A `key=value` line the workload printed on stderr, as an int."""
        for line in self.stderr.splitlines():
            if line.startswith(key + "="):
                return int(line.split("=", 1)[1])
        raise AssertionError("%s= not printed; stderr:\n%s" % (key, self.stderr[-3000:]))

    def counters(self):
        """The adapter's counters from the last debug "adapter counters:" line (log_level=debug)."""
        found = {}
        for line in self.stderr.splitlines():
            if "adapter counters: " in line:
                found = dict(kv.split("=") for kv in line.split("adapter counters: ", 1)[1].split(","))
        return {k: int(v) for k, v in found.items()}

    def samples(self):
        """Every sample of every OTLP file (each checked by otlpcheck with its duplicate and
        orphan checks first), as Sample objects."""
        files = self.files("*.otlp.pb")
        assert files, "no OTLP file written; stderr:\n" + self.stderr[-3000:]
        out = []
        for f in files:
            data = otlpcheck.load(f)
            errors = otlpcheck.check(data, dupes=True, orphans=True)
            assert errors == [], "%s: %s" % (f, errors[:5])
            out.extend(read_samples(data))
        return out


class Frame:
    def __init__(self, name, file, line, kind):
        self.name, self.file, self.line, self.kind = name, file, line, kind

    def __repr__(self):
        return "%s(%s:%d)[%s]" % (self.name, self.file, self.line, self.kind)


class Sample:
    def __init__(self, frames, value, attrs, link):
        self.frames = frames  # leaf first
        self.value = value
        self.attrs = attrs
        self.link = link

    @property
    def names(self):
        return [f.name for f in self.frames]


def read_samples(data):
    d = data.dictionary
    s = d.string_table

    def attrs_of(indices):
        out = {}
        for i in indices:
            kv = d.attribute_table[i]
            v = kv.value
            out[s[kv.key_strindex]] = v.string_value if v.HasField("string_value") else v.int_value
        return out

    samples = []
    for rp in data.resource_profiles:
        for sp in rp.scope_profiles:
            for prof in sp.profiles:
                for smp in prof.samples:
                    frames = []
                    for li in d.stack_table[smp.stack_index].location_indices:
                        loc = d.location_table[li]
                        kind = attrs_of(loc.attribute_indices).get("profile.frame.type", "")
                        for line in loc.lines:
                            fn = d.function_table[line.function_index]
                            frames.append(Frame(s[fn.name_strindex], s[fn.filename_strindex], line.line, kind))
                    value = sum(smp.values) if smp.values else len(smp.timestamps_unix_nano)
                    link = None
                    if smp.link_index:
                        lk = d.link_table[smp.link_index]
                        link = (lk.trace_id.hex(), lk.span_id.hex())
                    samples.append(Sample(frames, value, attrs_of(smp.attribute_indices), link))
    return samples


def agent_arg(agent_path, out_dir, options=""):
    opts = "output_dir=" + out_dir + ("," + options if options else "")
    return "-agentpath:%s=%s" % (agent_path, opts)


def clean_env(env=None):
    e = {k: v for k, v in os.environ.items() if not (k.startswith("OTELPROF_") or k.startswith("OTEL_"))}
    e.pop("JAVA_TOOL_OPTIONS", None)
    e.pop("JDK_JAVA_OPTIONS", None)
    if env:
        e.update(env)
    return e


def run_java(jdk, main, args, tmp_path, classpath, options="", jvm_args=(), env=None, agent=AGENT,
             timeout=300):
    """Runs `java [jvm_args] -agentpath:<agent>=output_dir=<tmp>/out,<options> -cp classpath main
    args` (no agent with agent=None) with the OTEL_*/OTELPROF_* environment cleared (env adds to it)
    and returns a JavaRun. CPU time is the child's (tests run one JVM at a time)."""
    tmp_path = str(tmp_path)
    os.makedirs(tmp_path, exist_ok=True)
    out_dir = os.path.join(tmp_path, "out")
    cmd = [jdk.java] + list(jvm_args)
    if agent:
        cmd.append(agent_arg(agent, out_dir, options))
    cmd += ["-cp", classpath, main] + [str(a) for a in args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=clean_env(env),
                       timeout=timeout)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return JavaRun(p.returncode, p.stdout, p.stderr, cpu, wall, out_dir)


def hs_err_files(directory):
    return glob.glob(os.path.join(str(directory), "hs_err_pid*.log"))
