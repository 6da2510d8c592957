"""Builds otelprof for CPython: the extension otelprof._native from the C core, the CPython adapter
(cpython/) and protobuf-c sources generated from proto/ at build time. What the core is made of
(sources, protos, include dirs, defines, flags, libraries) comes from core/build.txt, the one
definition CMakeLists.txt reads too; this file adds only the adapter's files and flags.
OTELPROF_SANITIZE=address builds it with AddressSanitizer (run Python with
LD_PRELOAD=$(gcc -print-file-name=libasan.so))."""
import glob
import os
import re
import shlex
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(ROOT, "core", "build.txt")


def read_manifest(path):
    """core/build.txt: `key = values` lines, an indented line continues the previous key, `#`
    starts a comment. Returns {key: [values]}."""
    keys, key = {}, None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if line[0].isspace() and key:
                keys[key] += line.split()
                continue
            key, eq, values = line.partition("=")
            key = key.rstrip()
            if not eq or not re.fullmatch("[a-z_]+", key) or key in keys:
                raise SystemExit("otelprof: %s:%d: expected `key = values` (each key once)" % (path, n))
            keys[key] = values.split()
    return keys


CORE = read_manifest(MANIFEST)


def core_one(key):
    if len(CORE.get(key, [])) != 1:
        raise SystemExit("otelprof: core/build.txt: %s takes one value" % key)
    return CORE[key][0]


def core_files(key):
    """The files a file-list key's globs name, absolute, each pattern's expansion sorted."""
    out = []
    for pattern in CORE.get(key, []):
        found = sorted(p for p in glob.glob(os.path.join(ROOT, pattern)) if os.path.isfile(p))
        if not found:
            raise SystemExit("otelprof: core/build.txt: %s (%s) names no file" % (pattern, key))
        out += [p for p in found if p not in out]
    return out


def rel(p):
    return os.path.relpath(p, ROOT)


def pkg_config(flag, fallback):
    # Headers-only modules (pkg_config_headers) give their --cflags and are never linked.
    mods = CORE["pkg_config"] + (CORE.get("pkg_config_headers", []) if flag == "--cflags" else [])
    try:
        out = subprocess.run(["pkg-config", flag] + mods, check=True, capture_output=True,
                             text=True).stdout
        return shlex.split(out)
    except (OSError, subprocess.CalledProcessError):
        return fallback


class BuildExt(build_ext):
    """Generates the protobuf-c sources into the build directory before compiling."""

    def run(self):
        protoc = shutil.which("protoc-c")
        if not protoc:
            raise SystemExit("otelprof: protoc-c not found: install protobuf-c-compiler "
                             "(bash scripts/setup.sh installs every build dependency)")
        gen = os.path.join(os.path.abspath(self.build_temp), "gen")
        os.makedirs(gen, exist_ok=True)
        proto_dir = os.path.join(ROOT, core_one("proto_dir"))
        for p in CORE["protos"]:
            subprocess.run([protoc, "--c_out=" + gen, "-I" + proto_dir, os.path.join(proto_dir, p)],
                           check=True)
        for ext in self.extensions:
            ext.include_dirs.append(gen)
            ext.sources += [os.path.join(gen, p[:-len(".proto")] + ".pb-c.c") for p in CORE["protos"]]
        super().run()


def sources():
    preload = core_files("preload_sources")   # only the LD_PRELOAD library carries these
    core = [p for p in core_files("sources") if p not in preload]
    return [rel(p) for p in core + sorted(glob.glob(os.path.join(ROOT, "cpython", "*.c")))]


def define(d):
    name, eq, value = d.partition("=")
    return (name, value if eq else None)


# The core's flags, then the adapter's own (they apply to the whole extension, core included):
# CPython's structs are initialised partially, and frame pointers are kept.
cflags = (["-std=" + core_one("c_std")] + CORE["cflags"] + ["-fvisibility=" + core_one("visibility")]
          + ["-Wno-missing-field-initializers", "-fno-omit-frame-pointer"])
ldflags = list(CORE["ldflags"])
sanitize = os.environ.get("OTELPROF_SANITIZE", "")
if sanitize:
    cflags += ["-fsanitize=" + sanitize, "-O1", "-g"]
    ldflags += ["-fsanitize=" + sanitize]

setup(
    name="otelprof",
    version="0.1.0",
    description="Always-on in-process profiler with OpenTelemetry span links (OTLP Profiles)",
    package_dir={"": "cpython"},
    packages=["otelprof"],
    python_requires=">=3.8",
    ext_modules=[Extension(
        "otelprof._native",
        sources=sources(),
        include_dirs=[rel(os.path.join(ROOT, d)) for d in CORE["include_dirs"] + CORE["private_include_dirs"]]
        + [rel(os.path.join(ROOT, "cpython"))],
        define_macros=[define(d) for d in CORE["defines"]],
        extra_compile_args=cflags + pkg_config("--cflags", []),
        extra_link_args=ldflags + pkg_config("--libs", ["-l" + lib for lib in CORE["pkg_config_libs"]])
        + ["-l" + lib for lib in CORE["system_libs"]],
    )],
    cmdclass={"build_ext": BuildExt},
    entry_points={"opentelemetry_context": ["otelprof_context = otelprof._otel:ProfilingRuntimeContext"]},
)
