"""Late attach: `jcmd <pid> JVMTI.agent_load libotelprof_jvmti.so "<options>"` profiles a JVM that
is already running: the threads already running are registered (their OS tids read through
HotSpot's exported layout), the classes already loaded get method ids, the profile is valid. A
second load, and a load with a bad option, say so in one line and the JVM runs on."""
import os
import subprocess
import time

import pytest

from jvmrun import clean_env, hs_err_files, otlpcheck, read_samples


def start_jvm(jdk, classes, tmp_path, args):
    os.makedirs(str(tmp_path), exist_ok=True)
    return subprocess.Popen([jdk.java, "-cp", classes, "Split"] + args, cwd=str(tmp_path), env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def jcmd(jdk, pid, *args):
    return subprocess.run([jdk.jcmd, str(pid)] + list(args), capture_output=True, text=True, timeout=60)


def wait_attachable(jdk, p):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert p.poll() is None, "the JVM ended early: " + p.stderr.read()
        if jcmd(jdk, p.pid, "VM.version").returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError("the JVM never accepted jcmd")


def agent_load(jdk, pid, agent, options):
    # jcmd splits its arguments at '=': the options go in quotes of their own.
    return jcmd(jdk, pid, "JVMTI.agent_load", agent, '"%s"' % options)


@pytest.fixture(scope="module")
def attached(jdk, agent, classes, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attach-" + jdk.name)
    out = str(tmp / "out")
    # 2 workers of 4 s CPU each; the agent joins about when they have started.
    p = start_jvm(jdk, classes, tmp, ["4", "2"])
    try:
        wait_attachable(jdk, p)
        time.sleep(0.5)
        first = agent_load(jdk, p.pid, agent, "output_dir=%s,log_level=debug" % out)
        again = agent_load(jdk, p.pid, agent, "output_dir=%s" % out)
        stdout, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return {"rc": p.returncode, "stdout": stdout, "stderr": stderr, "first": first, "again": again,
            "out": out, "tmp": tmp}


def test_attach_loads(attached):
    assert attached["first"].returncode == 0, attached["first"].stdout + attached["first"].stderr
    assert "return code: 0" in attached["first"].stdout, attached["first"].stdout
    assert attached["rc"] == 0, attached["stderr"][-3000:]
    assert attached["stdout"] == "result true\n", attached["stdout"]
    assert hs_err_files(attached["tmp"]) == []


def test_attach_profile(attached):
    files = sorted(f for f in os.listdir(attached["out"]) if f.endswith(".otlp.pb"))
    assert files, attached["stderr"][-3000:]
    samples = []
    for f in files:
        data = otlpcheck.load(os.path.join(attached["out"], f))
        assert otlpcheck.check(data, dupes=True, orphans=True) == []
        samples.extend(read_samples(data))
    workers = [s for s in samples if "Split.spin" in s.names]
    assert sum(s.value for s in workers) > 100, "few samples of the running workers"
    # Registered from the attaching thread, named from their next sample on (the OS name of a
    # Java-started thread is its Java name cut to 15 bytes: the same here).
    assert {s.attrs.get("thread.name") for s in workers} <= {"worker-0", "worker-1"}
    assert all(s.names[-1] == "java.lang.Thread.run" for s in workers)
    counters = {}
    for line in attached["stderr"].splitlines():
        if "adapter counters: " in line:
            counters = dict(kv.split("=") for kv in line.split("adapter counters: ", 1)[1].split(","))
    assert int(counters["threads_scanned"]) >= 2, counters  # both workers were already running
    assert int(counters["classes_prepared"]) > 300, counters  # the classes already loaded
    assert int(counters["thread_mismatch"]) == 0, counters


def test_attach_twice_says_so(attached):
    lines = [l for l in attached["stderr"].splitlines() if "already loaded" in l]
    assert len(lines) == 1, attached["stderr"][-3000:]
    assert attached["again"].returncode == 0, attached["again"].stdout


def test_attach_bad_option(jdk, agent, classes, tmp_path):
    p = start_jvm(jdk, classes, tmp_path, ["1.5", "1"])
    try:
        wait_attachable(jdk, p)
        r = agent_load(jdk, p.pid, agent, "interval=fast")
        stdout, stderr = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert r.returncode == 0, r.stdout + r.stderr
    assert p.returncode == 0 and stdout == "result true\n", stderr
    lines = [l for l in stderr.splitlines() if l.startswith("otelprof:")]
    assert len(lines) == 1 and 'interval="fast" is invalid' in lines[0], stderr
