"""Process-level behaviour: fork (os.fork, multiprocessing), gunicorn --preload workers, thread
churn at 1 kHz, and the same workloads under an AddressSanitizer build of the extension."""
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import run_profiled
from pyrun import ASAN_DIR, WORKLOADS, asan_build, otlp_samples, run_py


def folded_by_pid(run):
    out = {}
    for f in run.files("*.folded"):
        pid = int(re.search(r"-(\d+)\.folded$", f).group(1))
        stacks = {}
        for line in open(f):
            stack, _, n = line.rstrip("\n").rpartition(" ")
            stacks[stack] = stacks.get(stack, 0) + int(n)
        out[pid] = stacks
    return out


def test_fork_parent_and_children_profile_themselves(tmp_path):
    r = run_py(["forking.py"], tmp_path)
    assert r.rc == 0, r.stderr
    pids = {role: int(pid) for role, pid in re.findall(r"pid (\w+) (\d+)", r.stdout)}
    assert set(pids) == {"parent", "fork_child", "mp_child"}
    by_pid = folded_by_pid(r)
    own = {"parent": "parent_work", "fork_child": "fork_child_work", "mp_child": "mp_child_work"}
    for role, fn in own.items():
        stacks = by_pid.get(pids[role])
        assert stacks, "%s (pid %d) wrote no profile: %s" % (role, pids[role], r.files("*"))
        mine = sum(n for s, n in stacks.items() if fn in s.split(";"))
        assert mine >= 20, (role, stacks)
        for other_role, other_fn in own.items():
            if other_role != role and other_role != "parent":
                assert not any(other_fn in s.split(";") for s in stacks), (role, other_fn)
    otlp_samples(r)  # every process's OTLP file conforms


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_preload_workers(tmp_path):
    # `python -m gunicorn` with the interpreter under test: the gunicorn on PATH may be another
    # interpreter's, or a version manager's shell shim that python cannot run.
    if importlib.util.find_spec("gunicorn") is None:
        if os.environ.get("CI"):
            pytest.fail("gunicorn missing: scripts/setup.sh installs tests/requirements.txt")
        pytest.skip("gunicorn not installed")
    port = free_port()
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL", "OTELPROF_"))}
    env.update(OTELPROF_OUTPUT_DIR=str(out), PYTHONPATH=WORKLOADS, OTEL_SERVICE_NAME="gunicorn-app")
    if ASAN_DIR:
        from pyrun import asan_env
        env.update(asan_env(ASAN_DIR))
        env["PYTHONPATH"] = ASAN_DIR + os.pathsep + WORKLOADS
    master = subprocess.Popen([sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", "127.0.0.1:%d" % port,
                               "gunicorn_app:app"], env=env, cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        worker_pids = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(worker_pids) < 2:
            try:
                for _ in range(20):
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as resp:
                        worker_pids.add(int(resp.read()))
            except OSError:
                time.sleep(0.2)
        assert worker_pids, "no worker answered"
    finally:
        master.send_signal(signal.SIGTERM)
        _, err = master.communicate(timeout=60)
    assert master.returncode == 0, err.decode()[-2000:]
    files = {int(re.search(r"-(\d+)\.folded$", str(f)).group(1)): f for f in out.glob("*.folded")}
    assert master.pid in files, sorted(files)
    for pid in worker_pids:
        assert pid in files, "worker %d wrote no profile (files for %s)" % (pid, sorted(files))
    worked = sum(int(l.rsplit(" ", 1)[1]) for pid in worker_pids for l in open(files[pid])
                 if "request_work" in l)
    assert worked >= 5, worked


def test_thousand_short_lived_threads_at_1khz(tmp_path):
    r = run_py(["churn.py"], tmp_path)
    assert r.rc == 0, r.stderr
    m = re.search(r"threads (\d+) samples (\d+)", r.stdout)
    assert m and int(m.group(1)) == 1000 and int(m.group(2)) > 100, r.stdout
    otlp_samples(r)


def test_fork_while_profiles_close(tmp_path):
    """150 forks while profiles close every 100 ms and new code keeps appearing: the exporter
    names unpinned code without the GIL, so a thread that forks holding the GIL never waits on it
    forever."""
    r = run_py(["fork_during_closes.py", "150"], tmp_path, timeout=120)
    assert r.rc == 0, r.stderr[-2000:]
    m = re.search(r"forks (\d+) in ([0-9.]+) s", r.stdout)
    assert m and int(m.group(1)) == 150, r.stdout
    otlp_samples(r)


@pytest.fixture(scope="module")
def asan_lib(tmp_path_factory):
    if ASAN_DIR:
        return ASAN_DIR
    if not os.path.exists(subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                                         text=True).stdout.strip()):
        if os.environ.get("CI"):
            pytest.fail("libasan (gcc's AddressSanitizer runtime) is missing; CI must run these")
        pytest.skip("libasan not available")
    return asan_build(str(tmp_path_factory.mktemp("asan")))


@pytest.mark.parametrize("workload", ["churn.py", "spans_threads.py", "spans_asyncio.py", "forking.py", "code_churn.py", "foreign_threads.py", "native_merge.py", "idle_code.py", "frame_kinds.py"])
def test_under_asan(tmp_path, asan_lib, workload):
    r = run_py([workload], tmp_path, asan=asan_lib)
    assert r.rc == 0, r.stderr[-4000:]
    assert "AddressSanitizer" not in r.stderr, r.stderr[-4000:]
    otlp_samples(r)
