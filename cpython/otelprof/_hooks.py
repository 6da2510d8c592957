"""Hooks into the host program: thread start and end, OpenTelemetry context changes, asyncio
task steps and multiprocessing children. Each is installed once, and modules imported after
start() are hooked as they are imported."""
import importlib.abc
import importlib.util
import sys
import threading

from . import _native

_threads_installed = False
_post_import = {}  # module name -> callbacks run once it is imported


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Runs callbacks right after a watched module executes, whoever imports it."""

    def find_spec(self, name, path=None, target=None):
        if name not in _post_import:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_module(module):
            real_exec(module)
            for cb in _post_import.pop(name, ()):
                cb(module)

        # Patch this spec's loader instance only (each import gets its own loader object).
        loader.exec_module = exec_module
        return spec


_finder = _PostImportFinder()


def when_imported(name, callback):
    mod = sys.modules.get(name)
    if mod is not None:
        callback(mod)
        return
    _post_import.setdefault(name, []).append(callback)
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)


# ---- threads ----------------------------------------------------------------------------------

def install_threads():
    """Every threading.Thread registers as it starts and unregisters as it ends. _delete runs in
    the ending thread itself, also for threads that were already running at start()."""
    global _threads_installed
    if _threads_installed:
        return
    _threads_installed = True
    cls = threading.Thread
    orig_bootstrap_inner = cls._bootstrap_inner
    orig_delete = cls._delete

    def _bootstrap_inner(self):
        try:
            _native.thread_started(self.name)
        except Exception:  # never break the host's thread over profiling
            pass
        return orig_bootstrap_inner(self)

    def _delete(self):
        try:
            _native.thread_stopped()
        except Exception:
            pass
        return orig_delete(self)

    cls._bootstrap_inner = _bootstrap_inner
    cls._delete = _delete


# ---- OpenTelemetry, asyncio, multiprocessing ---------------------------------------------------

def install_context():
    from . import _otel
    when_imported("opentelemetry.context", _otel.wrap_runtime_context)
    when_imported("asyncio.events", _otel.hook_asyncio)
    if sys.version_info >= (3, 12):
        when_imported("asyncio.base_events", _otel.hook_create_task)
    when_imported("multiprocessing.process", _hook_multiprocessing)


def _hook_multiprocessing(mod):
    """multiprocessing's fork children leave through os._exit, skipping atexit: write their final
    profile when the child's process body returns."""
    cls = mod.BaseProcess
    if getattr(cls._bootstrap, "_otelprof", False):
        return
    orig = cls._bootstrap

    def _bootstrap(self, *args, **kwargs):
        try:
            return orig(self, *args, **kwargs)
        finally:
            try:
                import otelprof
                otelprof.stop()
            except Exception:
                pass

    _bootstrap._otelprof = True
    cls._bootstrap = _bootstrap
