"""A CPython version the adapter does not support still installs and imports; start() raises one
clear error, and the launcher says so in one line and runs the program unprofiled, writing nothing.

Every CPython installed here (3.11, 3.12, 3.13) is supported, so the refusal is checked on a build
made for the purpose: the extension compiled, with the interpreter running these tests, as if for
CPython 3.14 (OTELPROF_TEST_VERSION_HEX, a macro only tests set: it selects the refusing branch of
cpython_internals.c's version ladder, the one a real 3.14 build takes, and the version start()
names). That keeps the refusal path itself under test, on every supported version, without an
unsupported interpreter; the real build on this interpreter is checked to be supported."""
import os
import subprocess
import sys

import pytest

import otelprof
from pyrun import ROOT, WORKLOADS, run_py

PRETEND = "3.14"
PRETEND_HEX = "0x030E00A0"  # 3.14.0a0
SUPPORTED = "3.11, 3.12, 3.13"


@pytest.fixture(scope="module")
def pretend_lib(tmp_path_factory):
    """otelprof built for PRETEND into a directory of its own (for PYTHONPATH), the package's
    .py files linked beside the extension."""
    out = str(tmp_path_factory.mktemp("pretend"))
    lib = os.path.join(out, "lib")
    env = dict(os.environ, CFLAGS=(os.environ.get("CFLAGS", "") + " -DOTELPROF_TEST_VERSION_HEX=" + PRETEND_HEX))
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", lib,
                        "--build-temp", os.path.join(out, "temp")], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    pkg = os.path.join(ROOT, "cpython", "otelprof")
    for f in os.listdir(pkg):
        if f.endswith(".py") and not os.path.exists(os.path.join(lib, "otelprof", f)):
            os.symlink(os.path.join(pkg, f), os.path.join(lib, "otelprof", f))
    return lib


def test_this_interpreter_is_supported():
    assert otelprof._native.supported() is True
    assert otelprof._native.SUPPORTED_VERSIONS == SUPPORTED


def test_launcher_runs_the_program_unprofiled_with_one_line(tmp_path, pretend_lib):
    r = run_py(["-m", "otelprof", "run", os.path.join(WORKLOADS, "show_argv.py"), "a", "b"], tmp_path,
               env={"PYTHONPATH": pretend_lib})
    assert r.rc == 0, r.stderr
    assert 'argv ["a", "b"]' in r.stdout, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert f"CPython {PRETEND} is not supported by this build (supported: {SUPPORTED})" in lines[0], lines
    assert "runs unprofiled" in lines[0], lines
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_start_raises_a_clear_error(tmp_path, pretend_lib):
    code = ("import otelprof\n"
            "assert otelprof.__file__.startswith(%r), otelprof.__file__\n"
            "try:\n    otelprof.start()\nexcept RuntimeError as e:\n    print('refused:', e)\n"
            "print('running', otelprof.is_running())\n") % pretend_lib
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(tmp_path),
                       env=dict(os.environ, PYTHONPATH=pretend_lib))
    assert r.returncode == 0, r.stderr
    assert f"refused: otelprof: CPython {PRETEND} is not supported" in r.stdout, r.stdout + r.stderr
    assert "running False" in r.stdout, r.stdout
