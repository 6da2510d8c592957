"""Builds otelprof for CPython: the extension otelprof._native from the C core (core/src, less
native_mode.c, which interposes pthread_create for LD_PRELOAD use), the CPython adapter (cpython/)
and protobuf-c sources generated from proto/ at build time. OTELPROF_SANITIZE=address builds it
with AddressSanitizer (run Python with LD_PRELOAD=$(gcc -print-file-name=libasan.so))."""
import glob
import os
import shlex
import shutil
import subprocess

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
PROTOS = [
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/profiles/v1development/profiles.proto",
    "opentelemetry/proto/collector/profiles/v1development/profiles_service.proto",
    "opentelemetry/proto/processcontext/v1development/process_context.proto",
    "pprof/profile.proto",
]
PKGS = ["libprotobuf-c", "libunwind", "libcurl"]


def rel(p):
    return os.path.relpath(p, ROOT)


def pkg_config(flag, fallback):
    try:
        out = subprocess.run(["pkg-config", flag] + PKGS, check=True, capture_output=True, text=True).stdout
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
        for p in PROTOS:
            subprocess.run([protoc, "--c_out=" + gen, "-I" + os.path.join(ROOT, "proto"),
                            os.path.join(ROOT, "proto", p)], check=True)
        for ext in self.extensions:
            ext.include_dirs.append(gen)
            ext.sources += [os.path.join(gen, p[:-len(".proto")] + ".pb-c.c") for p in PROTOS]
        super().run()


def sources():
    core = [p for p in sorted(glob.glob(os.path.join(ROOT, "core", "src", "*.c")))
            if os.path.basename(p) not in ("native_mode.c", "native_dl.c", "native_exec.c")]
    return [rel(p) for p in core + sorted(glob.glob(os.path.join(ROOT, "cpython", "*.c")))]


cflags = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-Wno-missing-field-initializers",
          "-mtls-dialect=gnu2", "-fvisibility=hidden", "-fno-omit-frame-pointer"]
ldflags = ["-Wl,-z,nodelete"]  # atexit/pthread_atfork handlers point into the module
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
        include_dirs=[rel(os.path.join(ROOT, "core", "include")), rel(os.path.join(ROOT, "core", "src")),
                      rel(os.path.join(ROOT, "cpython"))],
        define_macros=[("_GNU_SOURCE", None), ("UNW_LOCAL_ONLY", None)],
        extra_compile_args=cflags + pkg_config("--cflags", []),
        extra_link_args=ldflags + pkg_config("--libs", ["-lprotobuf-c", "-lunwind", "-lcurl"])
        + ["-lz", "-lpthread", "-ldl", "-lrt"],
    )],
    cmdclass={"build_ext": BuildExt},
    entry_points={"opentelemetry_context": ["otelprof_context = otelprof._otel:ProfilingRuntimeContext"]},
)
