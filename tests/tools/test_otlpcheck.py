"""Tests for otlpcheck: a valid ProfilesData passes, and each rule broken alone is reported."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import otlpcheck  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb  # noqa: E402

TRACE = bytes(range(1, 17))
SPAN = bytes(range(0xA1, 0xA9))
T0 = 1_700_000_000_000_000_000
DUR = 10_000_000_000


def valid():
    """A small, fully conforming profile: two samples, one linked, one with a thread name."""
    data = pb.ProfilesData()
    d = data.dictionary
    d.string_table.extend(["", "samples", "count", "cpu", "nanoseconds", "main", "work", "app.c",
                           "/usr/bin/app", "profile.frame.type", "thread.name",
                           "process.executable.build_id.gnu"])
    s = {v: i for i, v in enumerate(d.string_table)}
    d.mapping_table.add()
    d.mapping_table.add(memory_start=0x400000, memory_limit=0x500000,
                        filename_strindex=s["/usr/bin/app"], attribute_indices=[3])
    d.function_table.add()
    d.function_table.add(name_strindex=s["main"], filename_strindex=s["app.c"], start_line=1)
    d.function_table.add(name_strindex=s["work"], filename_strindex=s["app.c"], start_line=9)
    d.location_table.add()
    loc = d.location_table.add(mapping_index=1, address=0x401000, attribute_indices=[1])
    loc.lines.add(function_index=1, line=3)
    loc = d.location_table.add(mapping_index=1, address=0x402000, attribute_indices=[1])
    loc.lines.add(function_index=2, line=10)
    d.link_table.add()
    d.link_table.add(trace_id=TRACE, span_id=SPAN)
    d.attribute_table.add()
    d.attribute_table.add(key_strindex=s["profile.frame.type"],
                          value=common_pb2.AnyValue(string_value="native"))
    d.attribute_table.add(key_strindex=s["thread.name"],
                          value=common_pb2.AnyValue(string_value="worker"))
    d.attribute_table.add(key_strindex=s["process.executable.build_id.gnu"],
                          value=common_pb2.AnyValue(string_value="abcdef"))
    d.stack_table.add()
    d.stack_table.add(location_indices=[2, 1])
    d.stack_table.add(location_indices=[1])

    rp = data.resource_profiles.add()
    rp.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="svc"))
    sp = rp.scope_profiles.add()
    sp.scope.name = "otelprof"
    prof = sp.profiles.add(time_unix_nano=T0, duration_nano=DUR, period=10_000_000,
                           profile_id=bytes(range(16)))
    prof.sample_type.type_strindex = s["samples"]
    prof.sample_type.unit_strindex = s["count"]
    prof.period_type.type_strindex = s["cpu"]
    prof.period_type.unit_strindex = s["nanoseconds"]
    prof.samples.add(stack_index=1, attribute_indices=[2], link_index=1, values=[5])
    prof.samples.add(stack_index=2, values=[3])
    return data


def profile(data):
    return data.resource_profiles[0].scope_profiles[0].profiles[0]


def errors_of(data, **kw):
    return otlpcheck.check(data, **kw)


def assert_reports(data, *needles):
    errs = errors_of(data)
    assert errs, "expected a violation"
    text = "\n".join(errs)
    for n in needles:
        assert n in text, "%r not in:\n%s" % (n, text)


def test_valid_passes():
    assert errors_of(valid()) == []


def test_stacks():
    got = otlpcheck.stacks(valid())
    assert got == [(["work", "main"], 5, (TRACE.hex(), SPAN.hex())), (["main"], 3, None)]


def test_cli(tmp_path, capsys):
    good = tmp_path / "good.pb"
    good.write_bytes(valid().SerializeToString())
    assert otlpcheck.main(["--check-dupes", "--check-orphans", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "OK: %s" % good
    data = valid()
    data.dictionary.string_table.append("orphan")
    bad = tmp_path / "bad.pb"
    bad.write_bytes(data.SerializeToString())
    # orphans are only looked for on request, as in profcheck
    assert otlpcheck.main([str(bad)]) == 0
    capsys.readouterr()
    assert otlpcheck.main(["--check-orphans", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["dictionary.string_table[12]: unreferenced entry"]
    junk = tmp_path / "junk.pb"
    junk.write_bytes(b"\xff\xff\xff")
    assert otlpcheck.main([str(junk)]) == 1


# ---- zero entries ---------------------------------------------------------------------------

def test_string_zero():
    data = valid()
    data.dictionary.string_table[0] = "x"
    assert_reports(data, "string_table[0]")


@pytest.mark.parametrize("table", ["mapping_table", "location_table", "function_table",
                                   "link_table", "attribute_table", "stack_table"])
def test_empty_table(table):
    data = valid()
    data.dictionary.ClearField(table)
    assert_reports(data, "dictionary.%s: empty" % table)


def test_nonzero_entries():
    cases = {
        "mapping_table": lambda d: setattr(d.mapping_table[0], "memory_start", 1),
        "location_table": lambda d: setattr(d.location_table[0], "address", 1),
        "function_table": lambda d: setattr(d.function_table[0], "start_line", 1),
        "attribute_table": lambda d: setattr(d.attribute_table[0], "key_strindex", 1),
        "stack_table": lambda d: d.stack_table[0].location_indices.append(1),
    }
    for table, mutate in cases.items():
        data = valid()
        mutate(data.dictionary)
        assert_reports(data, "dictionary.%s[0]: not the zero value" % table)


def test_link_zero_must_have_empty_ids():
    # zero-filled ids are not the zero value: the checker compares with the empty message
    data = valid()
    data.dictionary.link_table[0].trace_id = bytes(16)
    data.dictionary.link_table[0].span_id = bytes(8)
    assert_reports(data, "dictionary.link_table[0]: not the zero value")


# ---- duplicates -----------------------------------------------------------------------------

def test_duplicates():
    cases = {
        "string_table": lambda d: d.string_table.append("main"),
        "mapping_table": lambda d: d.mapping_table.append(d.mapping_table[1]),
        "location_table": lambda d: d.location_table.append(d.location_table[2]),
        "function_table": lambda d: d.function_table.append(d.function_table[1]),
        "link_table": lambda d: d.link_table.append(d.link_table[1]),
        "attribute_table": lambda d: d.attribute_table.append(d.attribute_table[2]),
        "stack_table": lambda d: d.stack_table.append(d.stack_table[2]),
    }
    for table, mutate in cases.items():
        data = valid()
        mutate(data.dictionary)
        n = len(getattr(data.dictionary, table)) - 1
        errs = errors_of(data, orphans=False)
        assert any(e.startswith("dictionary.%s[%d]: duplicates" % (table, n)) for e in errs), errs
        assert errors_of(data, dupes=False, orphans=False) == []


def test_attribute_order_does_not_hide_duplicate():
    data = valid()
    d = data.dictionary
    d.location_table[1].attribute_indices.append(2)
    dup = d.location_table.add()
    dup.CopyFrom(d.location_table[1])
    dup.attribute_indices[:] = list(reversed(dup.attribute_indices))
    assert any("location_table[3]: duplicates entry [1]" in e for e in errors_of(data, orphans=False))


def test_unmerged_samples():
    data = valid()
    profile(data).samples.add(stack_index=2, values=[1])
    assert_reports(data, "samples[2]: same stack, attributes and link as samples[1]")


# ---- orphans --------------------------------------------------------------------------------

def test_orphans():
    cases = {
        "string_table": lambda d: d.string_table.append("unused"),
        "mapping_table": lambda d: d.mapping_table.add(memory_start=1, memory_limit=2,
                                                        filename_strindex=8),
        "function_table": lambda d: d.function_table.add(name_strindex=5, start_line=77),
        "link_table": lambda d: d.link_table.add(trace_id=b"\x09" * 16, span_id=b"\x09" * 8),
        "attribute_table": lambda d: d.attribute_table.add(
            key_strindex=9, value=common_pb2.AnyValue(string_value="jvm")),
        "stack_table": lambda d: d.stack_table.add(location_indices=[1, 1]),
    }
    for table, mutate in cases.items():
        data = valid()
        mutate(data.dictionary)
        n = len(getattr(data.dictionary, table)) - 1
        assert errors_of(data) == ["dictionary.%s[%d]: unreferenced entry" % (table, n)], table
        assert errors_of(data, orphans=False) == []


def test_orphan_location_and_what_only_it_reaches():
    data = valid()
    d = data.dictionary
    d.string_table.append("lonely")
    d.function_table.add(name_strindex=len(d.string_table) - 1)
    loc = d.location_table.add()
    loc.lines.add(function_index=len(d.function_table) - 1)
    errs = errors_of(data)
    assert "dictionary.location_table[3]: unreferenced entry" in errs
    assert "dictionary.function_table[3]: unreferenced entry" in errs
    assert "dictionary.string_table[12]: unreferenced entry" in errs


# ---- indices --------------------------------------------------------------------------------

def test_index_ranges():
    cases = [
        (lambda data: setattr(profile(data).samples[0], "stack_index", 3), "stack_index"),
        (lambda data: setattr(profile(data).samples[0], "link_index", -1), "link_index"),
        (lambda data: profile(data).samples[1].attribute_indices.append(4), "attribute_indices[0]"),
        (lambda data: data.dictionary.stack_table[2].location_indices.append(3),
         "stack_table[2].location_indices[1]"),
        (lambda data: setattr(data.dictionary.location_table[1], "mapping_index", 2),
         "location_table[1].mapping_index"),
        (lambda data: setattr(data.dictionary.location_table[1].lines[0], "function_index", 3),
         "location_table[1].lines[0].function_index"),
        (lambda data: setattr(data.dictionary.function_table[1], "name_strindex", 99),
         "function_table[1].name_strindex"),
        (lambda data: setattr(data.dictionary.function_table[1], "system_name_strindex", 99),
         "function_table[1].system_name_strindex"),
        (lambda data: setattr(data.dictionary.function_table[2], "filename_strindex", 12),
         "function_table[2].filename_strindex"),
        (lambda data: setattr(data.dictionary.mapping_table[1], "filename_strindex", 12),
         "mapping_table[1].filename_strindex"),
        (lambda data: setattr(data.dictionary.attribute_table[1], "key_strindex", 50),
         "attribute_table[1].key_strindex"),
        (lambda data: setattr(data.dictionary.attribute_table[1], "unit_strindex", 50),
         "attribute_table[1].unit_strindex"),
        (lambda data: setattr(profile(data).sample_type, "type_strindex", 12),
         "sample_type.type_strindex"),
        (lambda data: setattr(profile(data).period_type, "unit_strindex", -3),
         "period_type.unit_strindex"),
        (lambda data: profile(data).attribute_indices.append(7), "profiles[0].attribute_indices[0]"),
    ]
    for mutate, where in cases:
        data = valid()
        mutate(data)
        errs = errors_of(data, dupes=False, orphans=False)
        assert any(where in e and "out of range" in e for e in errs), (where, errs)


def test_negative_lines():
    data = valid()
    data.dictionary.location_table[1].lines[0].line = -1
    assert_reports(data, "lines[0].line: -1 is negative")
    data = valid()
    data.dictionary.function_table[1].start_line = -2
    assert_reports(data, "function_table[1].start_line: -2 is negative")


def test_negative_column():
    data = valid()
    data.dictionary.location_table[2].lines[0].column = -4
    assert_reports(data, "location_table[2].lines[0].column: -4 is negative")


def test_bad_utf8_string_is_rejected(tmp_path, capsys):
    # proto3 strings must be UTF-8; a conforming reader refuses the whole file otherwise
    data = valid()
    data.dictionary.string_table[5] = "m\u00e9in"
    raw = data.SerializeToString()
    bad = tmp_path / "bad_utf8.pb"
    # same length, so only the encoding is wrong, not the framing
    bad.write_bytes(raw.replace("m\u00e9in".encode(), b"m\xff\xffin"))
    assert otlpcheck.main([str(bad)]) == 1
    assert "not a ProfilesData" in capsys.readouterr().out


def test_mapping_bounds():
    data = valid()
    data.dictionary.mapping_table[1].memory_limit = 0x400000
    assert_reports(data, "mapping_table[1]: memory_start")


# ---- attributes and links -------------------------------------------------------------------

def test_duplicate_attribute_key_in_list():
    data = valid()
    d = data.dictionary
    d.attribute_table.add(key_strindex=10, value=common_pb2.AnyValue(string_value="other"))
    profile(data).samples[0].attribute_indices.append(len(d.attribute_table) - 1)
    assert_reports(data, "samples[0].attribute_indices[1]: duplicate attribute key 'thread.name'")


def test_link_id_lengths():
    data = valid()
    data.dictionary.link_table[1].trace_id = TRACE[:8]
    assert_reports(data, "link_table[1].trace_id: length 8, want 16")
    data = valid()
    data.dictionary.link_table[1].span_id = SPAN + b"\x00"
    assert_reports(data, "link_table[1].span_id: length 9, want 8")


def test_resource_inline_keys():
    data = valid()
    kv = data.resource_profiles[0].resource.attributes.add(key_strindex=5)
    kv.value.string_value = "x"
    assert_reports(data, "uses key_strindex")
    data = valid()
    kv = data.resource_profiles[0].resource.attributes.add(key="k")
    kv.value.string_value_strindex = 5
    assert_reports(data, "uses string_value_strindex")
    data = valid()
    data.resource_profiles[0].resource.attributes.add(key="service.name")
    assert_reports(data, "duplicate key 'service.name'")


# ---- samples --------------------------------------------------------------------------------

def test_sample_without_values_or_timestamps():
    data = valid()
    del profile(data).samples[1].values[:]
    assert_reports(data, "samples[1]: neither values nor timestamps")


def test_values_only_needs_one_value():
    data = valid()
    profile(data).samples[1].values.append(4)
    assert_reports(data, "values-only sample carries 2 values, want 1")


def test_values_and_timestamps_lengths():
    data = valid()
    for s in profile(data).samples:
        s.timestamps_unix_nano.append(T0 + 1)
    profile(data).samples[0].values.append(1)
    errs = errors_of(data)
    assert errs == ["resource_profiles[0].scope_profiles[0].profiles[0].samples[0]: "
                    "2 values but 1 timestamps"], errs


def test_mixed_shapes():
    data = valid()
    s = profile(data).samples[1]
    del s.values[:]
    s.timestamps_unix_nano.append(T0 + 5)
    assert_reports(data, "samples[1]: shape timestamps_only differs from the profile's first "
                         "sample (values_only)")


def test_timestamps_only_profile_is_valid():
    data = valid()
    for s in profile(data).samples:
        del s.values[:]
        s.timestamps_unix_nano.extend([T0, T0 + DUR - 1])
    assert errors_of(data) == []
    assert [v for _, v, _ in otlpcheck.stacks(data)] == [2, 2]


@pytest.mark.parametrize("ts", [T0 - 1, T0 + DUR])
def test_timestamp_out_of_range(ts):
    data = valid()
    for s in profile(data).samples:
        s.timestamps_unix_nano.append(T0)
    profile(data).samples[0].timestamps_unix_nano[0] = ts
    assert_reports(data, "samples[0].timestamps_unix_nano[0]: %d outside" % ts)


def test_time_window_overflow():
    # time_unix_nano + duration_nano is uint64 arithmetic: past 2**64 the window wraps and every
    # timestamp falls outside it
    u64_max = (1 << 64) - 1
    data = valid()
    p = profile(data)
    p.time_unix_nano = u64_max - 100
    p.duration_nano = 1000
    for s in p.samples:
        del s.values[:]
        s.timestamps_unix_nano.append(u64_max - 50)
    errs = errors_of(data)
    assert ("resource_profiles[0].scope_profiles[0].profiles[0]: time_unix_nano %d + "
            "duration_nano 1000 overflows uint64" % (u64_max - 100)) in errs, errs
    assert any("samples[0].timestamps_unix_nano[0]: %d outside" % (u64_max - 50) in e
               for e in errs), errs
    # a window ending exactly at 2**64 - 1 does not wrap
    p.duration_nano = 100
    assert errors_of(data) == []


def test_original_payload_pairing():
    data = valid()
    profile(data).original_payload_format = "pprof"
    assert_reports(data, "original_payload_format and original_payload must be set together")
    data = valid()
    profile(data).original_payload = b"\x01"
    assert_reports(data, "original_payload_format and original_payload must be set together")
    data = valid()
    profile(data).original_payload_format = "pprof"
    profile(data).original_payload = b"\x01"
    assert errors_of(data) == []


def test_structure():
    data = valid()
    data.ClearField("resource_profiles")
    assert_reports(data, "resource_profiles: empty")
    data = valid()
    del data.resource_profiles[0].scope_profiles[0].profiles[:]
    assert_reports(data, "no profiles")
