"""A CPython version the adapter does not support yet (3.13 for now, installed into its own venv by
scripts/python_versions.sh) still installs and imports; start() raises one clear error, and the
launcher says so in one line and runs the program unprofiled, writing nothing."""
import os
import subprocess

import pytest

from pyrun import WORKLOADS, run_py

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UNSUPPORTED = "3.13"


def interpreter(version):
    venv = os.path.join(ROOT, "build", "py" + version, "bin", "python")
    if not os.path.exists(venv):
        if os.environ.get("CI") == "true":
            pytest.fail(f"no CPython {version} venv: scripts/setup.sh (scripts/python_versions.sh setup) makes it")
        pytest.skip(f"no CPython {version} venv (scripts/python_versions.sh setup)")
    return venv


def test_launcher_runs_the_program_unprofiled_with_one_line(tmp_path):
    py = interpreter(UNSUPPORTED)
    r = run_py(["-m", "otelprof", "run", os.path.join(WORKLOADS, "show_argv.py"), "a", "b"], tmp_path, python=py)
    assert r.rc == 0, r.stderr
    assert 'argv ["a", "b"]' in r.stdout, r.stdout + r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert f"CPython {UNSUPPORTED} is not supported by this build (supported: 3.11, 3.12)" in lines[0], lines
    assert "runs unprofiled" in lines[0], lines
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_start_raises_a_clear_error(tmp_path):
    py = interpreter(UNSUPPORTED)
    code = ("import otelprof\n"
            "try:\n    otelprof.start()\nexcept RuntimeError as e:\n    print('refused:', e)\n"
            "print('running', otelprof.is_running())\n")
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert f"refused: otelprof: CPython {UNSUPPORTED} is not supported" in r.stdout, r.stdout + r.stderr
    assert "running False" in r.stdout, r.stdout
