#!/usr/bin/env python3
"""Conformance checker for a file holding one serialized OTLP ProfilesData (proto v1.10+)."""

import argparse
import sys

from opentelemetry.proto.profiles.v1development import profiles_pb2

__all__ = ["load", "check", "stacks", "main"]

# Tables in the dictionary, with the zero value each must hold at index 0.
_TABLES = (
    ("mapping_table", profiles_pb2.Mapping),
    ("location_table", profiles_pb2.Location),
    ("function_table", profiles_pb2.Function),
    ("link_table", profiles_pb2.Link),
    ("attribute_table", profiles_pb2.KeyValueAndUnit),
    ("stack_table", profiles_pb2.Stack),
)

_U64_MAX = (1 << 64) - 1


def load(path):
    """Reads one serialized ProfilesData from path."""
    with open(path, "rb") as f:
        raw = f.read()
    data = profiles_pb2.ProfilesData()
    data.ParseFromString(raw)
    return data


def _profiles(data):
    """Yields (path, profile) for every profile, path naming it like the error messages do."""
    for ri, rp in enumerate(data.resource_profiles):
        for si, sp in enumerate(rp.scope_profiles):
            for pi, prof in enumerate(sp.profiles):
                yield "resource_profiles[%d].scope_profiles[%d].profiles[%d]" % (ri, si, pi), prof


class _Checker:
    def __init__(self, data, dupes, orphans):
        self.data = data
        self.d = data.dictionary
        self.dupes = dupes
        self.orphans = orphans
        self.errors = []

    def err(self, where, msg):
        self.errors.append("%s: %s" % (where, msg))

    def index(self, where, idx, table):
        """True when idx is a valid index into the named dictionary table."""
        n = len(getattr(self.d, table))
        if idx < 0 or idx >= n:
            self.err(where, "index %d out of range [0, %d) of %s" % (idx, n, table))
            return False
        return True

    def nonneg(self, where, v):
        if v < 0:
            self.err(where, "%d is negative" % v)

    def attr_indices(self, where, indices):
        """Indices in range, and no attribute key repeated within one list."""
        seen = {}
        for pos, ai in enumerate(indices):
            w = "%s[%d]" % (where, pos)
            if not self.index(w, ai, "attribute_table"):
                continue
            ks = self.d.attribute_table[ai].key_strindex
            if not self.index(w + ".key_strindex", ks, "string_table"):
                continue
            key = self.d.string_table[ks]
            if key in seen:
                self.err(w, "duplicate attribute key %r (also at [%d])" % (key, seen[key]))
            else:
                seen[key] = pos

    # ---- dictionary -------------------------------------------------------------------------

    def zero_entries(self):
        d = self.d
        if len(d.string_table) == 0:
            self.err("dictionary.string_table", "empty; index 0 must hold \"\"")
        elif d.string_table[0] != "":
            self.err("dictionary.string_table[0]", "must be \"\", got %r" % d.string_table[0])
        for name, cls in _TABLES:
            table = getattr(d, name)
            if len(table) == 0:
                self.err("dictionary.%s" % name, "empty; index 0 must hold the zero value")
            elif table[0] != cls():
                self.err("dictionary.%s[0]" % name, "not the zero value: %s" %
                         str(table[0]).replace("\n", " ").strip())

    def tables(self):
        d = self.d
        for i, m in enumerate(d.mapping_table):
            w = "dictionary.mapping_table[%d]" % i
            self.index(w + ".filename_strindex", m.filename_strindex, "string_table")
            self.attr_indices(w + ".attribute_indices", m.attribute_indices)
            if not (m.memory_start == 0 and m.memory_limit == 0) and m.memory_start >= m.memory_limit:
                self.err(w, "memory_start 0x%x must be below memory_limit 0x%x" %
                         (m.memory_start, m.memory_limit))
        for i, loc in enumerate(d.location_table):
            w = "dictionary.location_table[%d]" % i
            self.index(w + ".mapping_index", loc.mapping_index, "mapping_table")
            self.attr_indices(w + ".attribute_indices", loc.attribute_indices)
            for j, line in enumerate(loc.lines):
                lw = "%s.lines[%d]" % (w, j)
                self.index(lw + ".function_index", line.function_index, "function_table")
                self.nonneg(lw + ".line", line.line)
                self.nonneg(lw + ".column", line.column)
        for i, f in enumerate(d.function_table):
            w = "dictionary.function_table[%d]" % i
            for field in ("name_strindex", "system_name_strindex", "filename_strindex"):
                self.index("%s.%s" % (w, field), getattr(f, field), "string_table")
            self.nonneg(w + ".start_line", f.start_line)
        for i, link in enumerate(d.link_table):
            if i == 0:
                continue
            w = "dictionary.link_table[%d]" % i
            if len(link.trace_id) != 16:
                self.err(w + ".trace_id", "length %d, want 16" % len(link.trace_id))
            if len(link.span_id) != 8:
                self.err(w + ".span_id", "length %d, want 8" % len(link.span_id))
        for i, a in enumerate(d.attribute_table):
            w = "dictionary.attribute_table[%d]" % i
            self.index(w + ".key_strindex", a.key_strindex, "string_table")
            self.index(w + ".unit_strindex", a.unit_strindex, "string_table")
        for i, s in enumerate(d.stack_table):
            for j, li in enumerate(s.location_indices):
                self.index("dictionary.stack_table[%d].location_indices[%d]" % (i, j), li,
                           "location_table")

    def duplicates(self):
        d = self.d

        def report(table, keys):
            first = {}
            for i, k in enumerate(keys):
                if k in first:
                    self.err("dictionary.%s[%d]" % (table, i), "duplicates entry [%d]" % first[k])
                else:
                    first[k] = i

        report("string_table", list(d.string_table))
        # Attribute lists compare as sets: their order carries no meaning.
        report("mapping_table", [(m.memory_start, m.memory_limit, m.file_offset, m.filename_strindex,
                                  tuple(sorted(m.attribute_indices))) for m in d.mapping_table])
        report("location_table", [(l.mapping_index, l.address,
                                   tuple((x.function_index, x.line, x.column) for x in l.lines),
                                   tuple(sorted(l.attribute_indices))) for l in d.location_table])
        report("function_table", [(f.name_strindex, f.system_name_strindex, f.filename_strindex,
                                   f.start_line) for f in d.function_table])
        report("link_table", [(l.trace_id, l.span_id) for l in d.link_table])
        report("attribute_table", [(a.key_strindex, a.unit_strindex,
                                    a.value.SerializeToString(deterministic=True)
                                    if a.HasField("value") else None) for a in d.attribute_table])
        report("stack_table", [tuple(s.location_indices) for s in d.stack_table])

    def orphans_check(self):
        """Every entry other than the zero one must be reachable from some profile. Reachability
        is followed transitively, so an unreferenced location does not keep its function alive."""
        d = self.d
        # The zero entry counts as referenced (when the table has one at all).
        refs = {name: set(range(min(1, len(getattr(d, name)))))
                for name in ("string_table", "mapping_table", "location_table", "function_table",
                             "link_table", "attribute_table", "stack_table")}

        def mark(table, idx):
            n = len(getattr(d, table))
            if 0 <= idx < n:
                refs[table].add(idx)
                return True
            return False

        for _, prof in _profiles(self.data):
            for vt in (prof.sample_type, prof.period_type):
                mark("string_table", vt.type_strindex)
                mark("string_table", vt.unit_strindex)
            for ai in prof.attribute_indices:
                mark("attribute_table", ai)
            for s in prof.samples:
                mark("stack_table", s.stack_index)
                mark("link_table", s.link_index)
                for ai in s.attribute_indices:
                    mark("attribute_table", ai)
        for si in list(refs["stack_table"]):
            for li in d.stack_table[si].location_indices:
                mark("location_table", li)
        for li in list(refs["location_table"]):
            loc = d.location_table[li]
            mark("mapping_table", loc.mapping_index)
            for ai in loc.attribute_indices:
                mark("attribute_table", ai)
            for line in loc.lines:
                mark("function_table", line.function_index)
        for mi in list(refs["mapping_table"]):
            m = d.mapping_table[mi]
            mark("string_table", m.filename_strindex)
            for ai in m.attribute_indices:
                mark("attribute_table", ai)
        for fi in list(refs["function_table"]):
            f = d.function_table[fi]
            for v in (f.name_strindex, f.system_name_strindex, f.filename_strindex):
                mark("string_table", v)
        for ai in list(refs["attribute_table"]):
            a = d.attribute_table[ai]
            mark("string_table", a.key_strindex)
            mark("string_table", a.unit_strindex)
        for table, seen in refs.items():
            for i in range(len(getattr(d, table))):
                if i not in seen:
                    self.err("dictionary.%s[%d]" % (table, i), "unreferenced entry")

    # ---- profiles ---------------------------------------------------------------------------

    def resources(self):
        if not self.data.resource_profiles:
            self.err("resource_profiles", "empty")
        for ri, rp in enumerate(self.data.resource_profiles):
            w = "resource_profiles[%d]" % ri
            if not rp.scope_profiles:
                self.err(w, "no scope_profiles")
            for si, sp in enumerate(rp.scope_profiles):
                if not sp.profiles:
                    self.err("%s.scope_profiles[%d]" % (w, si), "no profiles")
            # Receivers such as Pyroscope ignore the strindex forms: keys and values go inline.
            keys = {}
            for ai, kv in enumerate(rp.resource.attributes):
                aw = "%s.resource.attributes[%d]" % (w, ai)
                if kv.key_strindex:
                    self.err(aw, "uses key_strindex; send the key inline")
                if not kv.key:
                    self.err(aw, "empty key")
                elif kv.key in keys:
                    self.err(aw, "duplicate key %r (also at [%d])" % (kv.key, keys[kv.key]))
                else:
                    keys[kv.key] = ai
                if kv.value.WhichOneof("value") == "string_value_strindex":
                    self.err(aw, "uses string_value_strindex; send string_value inline")

    def profile(self, where, prof):
        self.attr_indices(where + ".attribute_indices", prof.attribute_indices)
        for name in ("sample_type", "period_type"):
            vt = getattr(prof, name)
            self.index("%s.%s.type_strindex" % (where, name), vt.type_strindex, "string_table")
            self.index("%s.%s.unit_strindex" % (where, name), vt.unit_strindex, "string_table")
        if bool(prof.original_payload_format) != bool(prof.original_payload):
            self.err(where, "original_payload_format and original_payload must be set together")
        start, end = prof.time_unix_nano, prof.time_unix_nano + prof.duration_nano
        if end > _U64_MAX:
            # Both fields are uint64; profcheck adds them in uint64, so its window end wraps and
            # every timestamp then lies outside it. Report the cause once, and check timestamps
            # against the wrapped end as profcheck does.
            self.err(where, "time_unix_nano %d + duration_nano %d overflows uint64" %
                     (prof.time_unix_nano, prof.duration_nano))
            end &= _U64_MAX
        shape = None
        identities = {}
        for i, s in enumerate(prof.samples):
            w = "%s.samples[%d]" % (where, i)
            self.index(w + ".stack_index", s.stack_index, "stack_table")
            self.index(w + ".link_index", s.link_index, "link_table")
            self.attr_indices(w + ".attribute_indices", s.attribute_indices)
            for j, ts in enumerate(s.timestamps_unix_nano):
                if not start <= ts < end:
                    self.err("%s.timestamps_unix_nano[%d]" % (w, j),
                             "%d outside [%d, %d)" % (ts, start, end))
            nv, nt = len(s.values), len(s.timestamps_unix_nano)
            if nv and nt:
                this = "values_and_timestamps"
                if nv != nt:
                    self.err(w, "%d values but %d timestamps" % (nv, nt))
            elif nv:
                this = "values_only"
                if nv != 1:
                    self.err(w, "values-only sample carries %d values, want 1" % nv)
            elif nt:
                this = "timestamps_only"
            else:
                self.err(w, "neither values nor timestamps")
                this = "empty"
            if shape is None:
                shape = this
            elif this != shape:
                self.err(w, "shape %s differs from the profile's first sample (%s)" % (this, shape))
            if self.dupes:
                ident = (s.stack_index, frozenset(s.attribute_indices), s.link_index)
                if ident in identities:
                    self.err(w, "same stack, attributes and link as samples[%d]: merge them" %
                             identities[ident])
                else:
                    identities[ident] = i

    def run(self):
        self.resources()
        self.zero_entries()
        self.tables()
        for where, prof in _profiles(self.data):
            self.profile(where, prof)
        if self.dupes:
            self.duplicates()
        if self.orphans:
            self.orphans_check()
        return self.errors


def check(data, dupes=True, orphans=True):
    """Returns one line per violation; an empty list means the data conforms."""
    return _Checker(data, dupes, orphans).run()


def stacks(data):
    """Every sample of every profile as (function names leaf first, value, link), where value is
    the sum of the sample's values (or its timestamp count) and link is (trace_id hex, span_id hex)
    or None. Indices are assumed valid: run check() first."""
    d = data.dictionary
    out = []
    for _, prof in _profiles(data):
        for s in prof.samples:
            names = []
            for li in d.stack_table[s.stack_index].location_indices:
                for line in d.location_table[li].lines:
                    names.append(d.string_table[d.function_table[line.function_index].name_strindex])
            value = sum(s.values) if s.values else len(s.timestamps_unix_nano)
            link = None
            if s.link_index:
                lk = d.link_table[s.link_index]
                link = (lk.trace_id.hex(), lk.span_id.hex())
            out.append((names, value, link))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--check-dupes", "-check-dupes", action="store_true",
                    help="report duplicate dictionary entries and unmerged samples")
    ap.add_argument("--check-orphans", "-check-orphans", action="store_true",
                    help="report dictionary entries no profile reaches")
    ap.add_argument("file")
    args = ap.parse_args(argv)
    try:
        data = load(args.file)
    except Exception as e:  # a parse failure is a violation too, not a crash
        print("%s: not a ProfilesData: %s" % (args.file, e))
        return 1
    errors = check(data, dupes=args.check_dupes, orphans=args.check_orphans)
    for e in errors:
        print(e)
    if errors:
        return 1
    print("OK: %s" % args.file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
