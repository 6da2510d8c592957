"""Local output hardening: file and directory modes whatever the umask, exclusive temporary files
that never follow a planted symlink, refusal of unsafe or unusable output directories at start,
and bounded, sanitised file names derived from the service name."""
import os
import shutil
import tempfile
import stat
import subprocess
import sys
import time

import pytest

from conftest import bin_path, lib_path, run_profiled

SVC = "safety"
FORMATS = ("folded", "html", "otlp.pb", "pb.gz")


def base_env(out_dir, **extra):
    e = {k: v for k, v in os.environ.items() if not k.startswith(("OTELPROF_", "OTEL_"))}
    e["OTELPROF_OUTPUT_DIR"] = str(out_dir)
    e["OTEL_SERVICE_NAME"] = SVC
    e.update(extra)
    return e


def errors(stderr):
    return [l for l in stderr.splitlines() if l.startswith("otelprof: error:")]


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def private_dir(path):
    path.mkdir(parents=True)
    os.chmod(path, 0o700)
    return path


def test_modes_ignore_the_umask(build_dir, tmp_path):
    out = tmp_path / "out" / "a" / "b"
    old = os.umask(0)
    try:
        r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path,
                         env={"OTELPROF_OUTPUT_DIR": str(out), "OTEL_SERVICE_NAME": SVC})
    finally:
        os.umask(old)
    assert r.rc == 0 and errors(r.stderr) == [], r.stderr
    # Every directory component the profiler created is private.
    for d in (tmp_path / "out", tmp_path / "out" / "a", out):
        assert mode(d) == 0o700, (d, oct(mode(d)))
    names = os.listdir(out)
    for fmt in FORMATS:
        files = [n for n in names if n.endswith("." + fmt)]
        assert files, (fmt, names)
        for n in files:
            assert mode(out / n) == 0o600, (n, oct(mode(out / n)))


# Runs in the child before the program: plants symlinks at the names the program will write
# (final names and the temporary names the profiler used to use, <final>.tmp.<pid>), then execs
# the program under the profiler. exec keeps the pid, so the names are known in advance.
PLANTER = r"""
import os, sys
out, victim, svc, preload, prog = sys.argv[1:6]
pid = os.getpid()
finals = [f"{svc}-{pid}.folded", f"{svc}-{pid}.html",
          f"{svc}-{pid}-0000.otlp.pb", f"{svc}-{pid}-0000.pb.gz"]
for n in finals:
    os.symlink(victim, os.path.join(out, n))
    os.symlink(victim, os.path.join(out, f"{n}.tmp.{pid}"))
env = dict(os.environ, LD_PRELOAD=preload)
os.execve(prog, [prog] + sys.argv[6:], env)
"""


def test_planted_symlinks_are_not_followed(build_dir, tmp_path):
    out = private_dir(tmp_path / "out")
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    r = subprocess.run([sys.executable, "-c", PLANTER, str(out), str(victim), SVC, lib_path(),
                        bin_path("prog_split"), "0.3"],
                       env=base_env(out), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "done" in r.stdout, r.stderr
    assert victim.read_text() == "precious\n", "a write followed a planted symlink"
    for fmt in FORMATS:
        finals = [n for n in os.listdir(out) if n.endswith("." + fmt)]
        assert finals, (fmt, os.listdir(out))
        for n in finals:
            p = out / n
            # rename() replaced the symlink at the final name with the profiler's own file.
            assert stat.S_ISREG(os.lstat(p).st_mode) and mode(p) == 0o600, n


def refused(r, path, reason):
    assert r.rc == 0 and "done" in r.stdout, "the host program must keep running"
    errs = errors(r.stderr)
    assert len(errs) == 1, r.stderr
    assert str(path) in errs[0] and reason in errs[0], errs[0]


def test_symlinked_output_dir_is_refused(build_dir, tmp_path):
    real = private_dir(tmp_path / "real")
    link = tmp_path / "out"
    os.symlink(real, link)
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTELPROF_OUTPUT_DIR": str(link)})
    refused(r, link, "symbolic link")
    assert os.listdir(real) == [], "nothing may be written through the link"


@pytest.mark.parametrize("perm", [0o777, 0o770, 0o702])
def test_shared_dir_without_sticky_bit_is_refused(build_dir, tmp_path, perm):
    out = private_dir(tmp_path / "out")
    os.chmod(out, perm)
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTELPROF_OUTPUT_DIR": str(out)})
    refused(r, out, "sticky")
    assert os.listdir(out) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory to another user")
def test_shared_dir_of_another_user_is_refused(build_dir, tmp_path):
    out = private_dir(tmp_path / "out")
    os.chmod(out, 0o1777)
    os.chown(out, 65534, 65534)
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTELPROF_OUTPUT_DIR": str(out)})
    refused(r, out, "owned by uid 65534")
    assert os.listdir(out) == []


def test_own_sticky_shared_dir_is_accepted(build_dir, tmp_path):
    out = private_dir(tmp_path / "out")
    os.chmod(out, 0o1777)
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTELPROF_OUTPUT_DIR": str(out)})
    assert r.rc == 0 and errors(r.stderr) == [], r.stderr
    assert r.files("*.folded") and r.files("*.otlp.pb")


def unusable(tmp_path, kind):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    return {"file": blocker, "under_file": blocker / "sub", "read_only": "/proc"}[kind]


@pytest.mark.parametrize("kind", ["file", "under_file", "read_only"])
def test_unusable_dir_is_reported_at_start(build_dir, tmp_path, kind):
    """The error comes before main() starts and long before the first export (10 s), so a run
    killed after half a second has already reported it."""
    out = unusable(tmp_path, kind)
    p = subprocess.Popen([bin_path("prog_started"), "5"], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=base_env(out, LD_PRELOAD=lib_path()))
    time.sleep(0.5)
    p.kill()
    _out, err = p.communicate(timeout=30)
    lines = err.splitlines()
    errs = errors(err)
    assert len(errs) == 1 and str(out) in errs[0] and "OTELPROF_OUTPUT_DIR" in errs[0], err
    assert "started" in lines and lines.index(errs[0]) < lines.index("started"), err


def test_unusable_dir_keeps_host_running(build_dir, tmp_path):
    out = unusable(tmp_path, "file")
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTELPROF_OUTPUT_DIR": str(out)})
    refused(r, out, "not a directory")
    assert (tmp_path / "file").read_text() == "x"


def test_service_name_cannot_hide_or_escape(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path, env={"OTEL_SERVICE_NAME": "../escape"})
    assert r.rc == 0 and errors(r.stderr) == [], r.stderr
    names = os.listdir(r.out_dir)
    assert names and all(not n.startswith(".") and "/" not in n for n in names), names
    assert not [n for n in os.listdir(tmp_path) if "escape" in n], os.listdir(tmp_path)
    assert r.files("*escape*.folded"), names


def service_part(name):
    # <service>-<pid>.folded
    return name[: name.rindex("-")]


def test_long_service_names_are_bounded_and_distinct(build_dir, tmp_path):
    parts = []
    for i, last in enumerate("xy"):
        svc = "s" * 299 + last
        r = run_profiled([bin_path("prog_split"), "0.3"], tmp_path / str(i),
                         env={"OTEL_SERVICE_NAME": svc})
        assert r.rc == 0 and errors(r.stderr) == [], r.stderr
        for fmt in FORMATS:
            assert r.files("*." + fmt), (fmt, os.listdir(r.out_dir))
        folded = os.path.basename(r.files("*.folded")[0])
        assert len(service_part(folded)) <= 64, folded
        assert all(len(n) < 128 for n in os.listdir(r.out_dir))
        parts.append(service_part(folded))
    assert parts[0] != parts[1], "names differing past the cap must stay distinct"


def needs_root():
    if os.geteuid() != 0:
        assert os.environ.get("CI") != "true", "these tests switch users and need root"
        pytest.skip("needs root to switch users")


def test_privilege_dropping_worker_reports_its_lost_profile(build_dir, tmp_path):
    """A worker that switches from root to another user cannot write into the 0700 root-owned
    directory: the profile is reported lost once, naming the file and the reason (the documented
    remedies are below and in docs/CONFIGURATION.md)."""
    needs_root()
    r = run_profiled([bin_path("prog_setuid"), "65534", "0.5"], tmp_path)
    assert r.rc == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("otelprof:")]
    assert len(lines) == 1, r.stderr
    assert "cannot write" in lines[0] and "Permission denied" in lines[0] and r.out_dir in lines[0], lines
    assert os.listdir(r.out_dir) == []


def test_privilege_dropping_worker_writes_into_its_own_directory(build_dir, tmp_path):
    """The documented set-up: a 0700 directory owned by the worker user, made before start."""
    needs_root()
    base = tempfile.mkdtemp(prefix="otelprof-worker-")  # under /tmp: reachable by the worker user
    try:
        os.chmod(base, 0o755)
        out = os.path.join(base, "out")
        os.mkdir(out, 0o700)
        os.chown(out, 65534, 65534)
        r = run_profiled([bin_path("prog_setuid"), "65534", "0.5"], tmp_path, env={"OTELPROF_OUTPUT_DIR": out})
        assert r.rc == 0 and "otelprof:" not in r.stderr, r.stderr
        files = os.listdir(out)
        assert any(f.endswith(".otlp.pb") for f in files) and any(f.endswith(".folded") for f in files), files
        assert all(os.stat(os.path.join(out, f)).st_uid == 65534 for f in files)
        folded = [f for f in files if f.endswith(".folded")][0]
        assert "worker_work" in open(os.path.join(out, folded)).read()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_relative_dir_is_fixed_at_start(build_dir, tmp_path):
    """A relative OTELPROF_OUTPUT_DIR names a directory under the working directory at start, also
    after the program changes directory (test runners and daemons do) and in a child forked there:
    every profile lands in it, none in the directory the program moved to. Before, the path was
    taken against whatever the working directory was at each write, so profiles spread over the
    directories the program visited and were lost when it removed them."""
    elsewhere = private_dir(tmp_path / "elsewhere")
    r = run_profiled([bin_path("prog_chdir"), str(elsewhere)], tmp_path,
                     env={"OTELPROF_OUTPUT_DIR": "out", "OTELPROF_EXPORT_INTERVAL": "150ms",
                          "OTEL_SERVICE_NAME": SVC})
    assert r.rc == 0 and errors(r.stderr) == [], r.stderr
    parent, child = (int(w) for w in r.stdout.split()[1::2])
    assert os.listdir(elsewhere) == []
    names = os.listdir(tmp_path / "out")
    for pid in (parent, child):
        assert f"{SVC}-{pid}.folded" in names, (pid, names)
    # 0.6 s of CPU at a 150 ms export interval closes several profiles while in the other directory.
    per_interval = [n for n in names if n.startswith(f"{SVC}-{parent}-") and n.endswith(".otlp.pb")]
    assert len(per_interval) >= 3, names
