"""otelprof: always-on, in-process CPU and wall-clock profiler whose samples carry the active
OpenTelemetry span, written as OTLP Profiles, pprof, folded stacks and HTML flame graphs.

    import otelprof
    otelprof.start(mode="cpu", service_name="checkout")   # or: with otelprof.Profiler(...):
    ...
    otelprof.stop()                                       # also runs at interpreter exit

Options mirror the environment variables (``OTELPROF_MODE`` -> ``mode``, ``OTEL_SERVICE_NAME`` ->
``service_name``, ...); a variable is used when its option is not given. Durations take "10ms",
"100us", "1s" or a number of milliseconds.
"""
import atexit
import functools
import os
import sys
import threading

from . import _native, _hooks

__all__ = ["start", "stop", "flush", "stats", "is_running", "Profiler", "ProfileIdSpanProcessor"]

# Short names that stand for the core's longer option names.
_ALIASES = {"endpoint": "otlp_endpoint", "headers": "otlp_headers", "compression": "otlp_compression",
            "timeout": "otlp_timeout", "protocol": "otlp_protocol"}

_lock = threading.Lock()
_process_hooks_installed = False
_started_pid = None


def _text(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join("%s=%s" % kv for kv in value.items())
    if value is None:
        raise ValueError("otelprof: option %s: None is not a value (leave it out instead)" % key)
    return str(value)


def _register_existing_threads():
    for t in threading.enumerate():
        # A foreign thread seen through threading (_DummyThread) never runs Thread._delete, so its
        # end would go unnoticed: it is not sampled.
        if isinstance(t, threading._DummyThread):
            continue
        native_id = getattr(t, "native_id", None)
        if native_id is not None and t.ident is not None:
            _native.register_thread(native_id, t.ident)


def _install_process_hooks():
    global _process_hooks_installed
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    atexit.register(_at_exit)
    os.register_at_fork(after_in_child=_after_fork_child)
    _wrap_exec()


def _wrap_exec():
    # Every os.exec* function, and os.spawn*, end in os.execv or os.execve (looked up in os's
    # namespace at call time). No profiling signal may be pending when the new image starts: its
    # default action for the signal is to terminate.
    for name in ("execv", "execve"):
        orig = getattr(os, name)
        if getattr(orig, "_otelprof", False):
            continue

        def wrapper(*args, _orig=orig, **kwargs):
            _native.exec_prepare()
            try:
                return _orig(*args, **kwargs)
            finally:
                _native.exec_failed()  # reached only when exec failed

        functools.update_wrapper(wrapper, orig)
        wrapper._otelprof = True
        setattr(os, name, wrapper)


def _at_exit():
    try:
        stop()
    finally:
        _native.python_exiting()


def _after_fork_child():
    # Restart the core under the child's pid, then the adapter's pinner thread (neither survives
    # fork, and neither may be started inside fork itself). Not in a subprocess child (forked for
    # preexec_fn): it only runs that function and execs, and a profiler started there would leave
    # signals pending across the exec.
    if _native.is_running() and not _in_subprocess_child():
        _native.after_fork_child()


def _in_subprocess_child():
    caller = sys._getframe(2) if hasattr(sys, "_getframe") else None
    return (caller is not None and caller.f_code.co_name == "_execute_child"
            and caller.f_globals.get("__name__") == "subprocess")


def start(**options):
    """Starts profiling this process. Returns False when configuration disables profiling
    (``OTEL_SDK_DISABLED=true`` or ``mode="off"``), True otherwise. Raises ValueError for an
    invalid option, RuntimeError when already started or on an unsupported interpreter."""
    global _started_pid
    opts = {}
    for key, value in options.items():
        opts[_ALIASES.get(key, key)] = _text(key, value)
    with _lock:
        if not _native.start(opts):
            return False
        _started_pid = os.getpid()
        _install_process_hooks()
        _hooks.install_threads()
        _register_existing_threads()
        _hooks.install_context()
        return True


def stop():
    """Stops profiling, writes the final profile. Returns False when it was not running."""
    with _lock:
        return _native.stop()


def flush():
    """Closes the current profile and writes it now (the profiler keeps running)."""
    return _native.flush()


def is_running():
    return _native.is_running()


def stats():
    """Self-metrics: samples taken and dropped (by reason), handler time, threads, files written,
    memory, and the CPython adapter's own counters."""
    return _native.stats()


class Profiler:
    """Context manager: profiles the block (``with otelprof.Profiler(mode="wall"): ...``)."""

    def __init__(self, **options):
        self.options = options
        self.enabled = False

    def __enter__(self):
        self.enabled = start(**self.options)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            stop()
        return False

    def stats(self):
        return stats()


def __getattr__(name):
    if name == "ProfileIdSpanProcessor":
        from . import _otel
        return _otel.ProfileIdSpanProcessor
    raise AttributeError(name)
