"""The HTML flame graph renders in a real (headless) browser without script errors."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    # A CI image that lost its browser must fail loudly rather than pass by skipping.
    if os.environ.get("CI"):
        pytest.fail("no chromium in PATH; the flame graph check needs it under CI")
    pytest.skip("chromium not installed")


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Builds the folded unit test and keeps the pages it writes."""
    if not shutil.which("gcc"):
        pytest.skip("gcc not installed")
    exe = tmp_path_factory.mktemp("bin") / "test_folded"
    src = ROOT / "core" / "src"
    subprocess.run(
        ["gcc", "-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror",
         "-I", str(ROOT / "core" / "include"), "-I", str(src),
         str(ROOT / "tests" / "unit" / "test_folded.c"), str(src / "folded.c"),
         str(src / "flamegraph_html.c"), str(src / "intern.c"), "-o", str(exe)],
        check=True)
    out = subprocess.run([str(exe)], env=dict(os.environ, TEST_FOLDED_KEEP="1"),
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"output kept in (\S+)", out)
    assert m, out
    yield Path(m.group(1))
    shutil.rmtree(m.group(1), ignore_errors=True)


def render(page, fragment=""):
    """Returns (DOM after scripts ran, console lines) for page#fragment."""
    profile = Path(os.environ.get("TMPDIR", "/tmp")) / f"fg-profile-{os.getpid()}"
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--window-size=1200,800", "--dump-dom", page.as_uri() + fragment]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    console = [l for l in r.stderr.splitlines() if ":CONSOLE" in l or "Uncaught" in l]
    return r.stdout, console


def test_renders_without_errors(pages):
    dom, console = render(pages / "flame.html")
    assert console == []
    assert 'data-rendered="true"' in dom
    boxes = re.search(r'data-boxes="(\d+)"', dom)
    assert boxes and int(boxes.group(1)) >= 9  # all + the 8 frames of the test profile
    assert "26 samples, 8 stacks" in dom


def test_search_finds_frames_by_their_original_names(pages):
    # main;foo 3 + main;foo;bar 12 of 26 samples; foo under foo is not counted twice.
    dom, console = render(pages / "flame.html", "#q=foo")
    assert console == []
    assert "Matched: 57.69% (15 samples)" in dom
    # The escaped "x</script><b>y</b>" frame decodes back to its name in the page.
    dom, console = render(pages / "flame.html", "#q=%3C%2Fscript%3E%3Cb%3E")
    assert console == []
    assert "Matched: 3.85% (1 samples)" in dom


@pytest.mark.parametrize("name", ["empty.html", "tree.html", "cap.html"])
def test_other_pages_render(pages, name):
    dom, console = render(pages / name)
    assert console == []
    assert 'data-rendered="true"' in dom
