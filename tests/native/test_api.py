"""The C API end to end: span links from the OTEP 4947 thread context, the three capture models,
self-metrics, and fork."""
import re

import pytest

from conftest import bin_path, run_profiled
import otlpcheck


def otlp_samples(run):
    out = []
    for f in run.files("*.otlp.pb"):
        data = otlpcheck.load(f)
        assert otlpcheck.check(data, dupes=True, orphans=True) == []
        out.extend(otlpcheck.stacks(data))
    return out


def test_samples_carry_the_attached_span_and_only_it(build_dir, tmp_path):
    r = run_profiled([bin_path("api_ctx")], tmp_path, preload=False)
    assert r.rc == 0, r.stderr
    spans = {}
    for m in re.finditer(r"thread (\d) trace (\w+) span (\w+) child (\w+)", r.stdout):
        n, trace, span, child = m.groups()
        spans[n] = (trace, span, child)
    assert set(spans) == {"1", "2"}
    samples = otlp_samples(r)
    checked = {"inside": 0, "nested": 0, "outside": 0}
    for stack, value, link in samples:
        if "work_outside" in stack:
            assert link is None, f"sample outside any span carries {link}"
            checked["outside"] += value
        for n in ("1", "2"):
            if f"work_inside_{n}" in stack:
                assert link == (spans[n][0], spans[n][1]), f"thread {n}: {link}"
                checked["inside"] += value
        if "work_nested" in stack:
            assert link is not None and link[1] in (spans["1"][2], spans["2"][2])
            assert link[0] == (spans["1"][0] if link[1] == spans["1"][2] else spans["2"][0])
            checked["nested"] += value
    assert all(v >= 20 for v in checked.values()), checked


@pytest.mark.parametrize("model", ["a", "b", "c"])
def test_capture_models(build_dir, tmp_path, model):
    r = run_profiled([bin_path("api_models"), model], tmp_path, preload=False)
    assert r.rc == 0, r.stderr
    stacks = r.folded()
    alpha = stacks.get(("toy.main", "toy.alpha"), 0)
    beta = stacks.get(("toy.main", "toy.beta"), 0)
    assert alpha + beta == sum(stacks.values()), f"only toy frames expected: {stacks}"
    assert abs(alpha / (alpha + beta) - 2 / 3) <= 0.05, (alpha, beta)
    info = dict(re.findall(r"(\w+) (\d+)", r.stdout))
    if model in "ab":
        assert int(info["ucontext_seen"]) > 0, "walk() receives the signal's ucontext"
    if model == "b":
        assert int(info["off_thread_resolves"]) == 0, "model b resolves only on the adapter's thread"
    assert int(info["unresolved"]) == 0
    if model != "c":
        # Each sample counts 1 + its timer overruns, so counts can only exceed samples taken.
        assert alpha + beta >= int(info["samples_taken"]) > 0
    assert int(info["profiles_written"]) >= 1 and int(info["bytes_written"]) > 0
    if model != "c":
        assert int(info["signals"]) >= int(info["samples_taken"]) > 0
        assert 0 < int(info["handler_ns_max"]) and int(info["handler_ns_total"]) > 0
    # OTLP: toy frames carry file, line and the adapter's frame type.
    for f in r.files("*.otlp.pb"):
        data = otlpcheck.load(f)
        st = data.dictionary.string_table
        fnames = {st[fn.name_strindex]: st[fn.filename_strindex] for fn in data.dictionary.function_table[1:]}
        assert fnames.get("toy.alpha") == "toy.src"
        types = set()
        for loc in data.dictionary.location_table[1:]:
            for ai in loc.attribute_indices:
                kv = data.dictionary.attribute_table[ai]
                if st[kv.key_strindex] == "profile.frame.type":
                    types.add(kv.value.string_value)
        assert types == {"toy"}


def test_fork_child_profiles_itself(build_dir, tmp_path):
    r = run_profiled([bin_path("prog_fork")], tmp_path)
    assert r.rc == 0, r.stderr
    parent = int(re.search(r"parent (\d+)", r.stdout).group(1))
    child = int(re.search(r"child (\d+)", r.stdout).group(1))
    folded = {int(re.search(r"-(\d+)\.folded$", f).group(1)): f for f in r.files("*.folded")}
    assert set(folded) == {parent, child}, folded
    parent_text = open(folded[parent]).read()
    child_text = open(folded[child]).read()
    assert "parent_work" in parent_text and "child_work" not in parent_text
    assert "child_work" in child_text and "parent_work" not in child_text
    for f in r.files(f"*-{child}-*.otlp.pb"):
        data = otlpcheck.load(f)
        attrs = {kv.key: kv.value for kv in data.resource_profiles[0].resource.attributes}
        assert attrs["process.pid"].int_value == child or attrs["process.pid"].string_value == str(child)


def test_thread_name_set_through_the_api(build_dir, tmp_path):
    r = run_profiled([bin_path("api_thread_name")], tmp_path, preload=False)
    assert r.rc == 0, r.stderr
    assert "os_name api_thread_name" in r.stdout, "the OS thread keeps its name"
    names = set()
    for f in r.files("*.otlp.pb"):
        data = otlpcheck.load(f)
        st = data.dictionary.string_table
        names |= {kv.value.string_value for kv in data.dictionary.attribute_table[1:]
                  if st[kv.key_strindex] == "thread.name"}
    assert "a-much-longer-worker-name-01234" in names, names
