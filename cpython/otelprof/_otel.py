"""OpenTelemetry integration: publishes the active span as the thread's OTEP 4947 record on every
context attach and detach, and on every asyncio task step (the event loop switches tasks with
Context.run, never through attach/detach); plus a SpanProcessor for Grafana's traces-to-profiles.
Everything here is optional: without opentelemetry installed, samples simply carry no link."""
import contextvars

from . import _native

_span_key = None  # opentelemetry's "current-span" context key, looked up once
_runtime = None   # our ProfilingRuntimeContext once installed


def _key():
    global _span_key
    if _span_key is None:
        try:
            from opentelemetry.trace.propagation import _SPAN_KEY
        except Exception:
            return None
        _span_key = _SPAN_KEY
    return _span_key


def publish(ctx):
    """Makes the span of OpenTelemetry context ctx (or none) the calling thread's record."""
    span = None
    if ctx is not None:
        key = _key()
        if key is not None:
            span = ctx.get(key)
    if span is not None:
        sc = span.get_span_context()
        if sc is not None and sc.is_valid:
            _native.set_span(sc.trace_id.to_bytes(16, "big"), sc.span_id.to_bytes(8, "big"),
                             int(sc.trace_flags))
            return
    _native.set_span(None, None)


class ProfilingRuntimeContext:
    """A runtime context that delegates to another (contextvars by default) and republishes the
    span after every change. Selected by OTEL_PYTHON_CONTEXT=otelprof_context, or wrapped around
    the existing one by otelprof.start(). (Duck-typed: importing opentelemetry here would import
    it into programs that never use it.)"""

    def __init__(self, inner=None):
        if inner is None:
            from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
            inner = ContextVarsRuntimeContext()
        self._inner = inner

    def attach(self, context):
        token = self._inner.attach(context)
        publish(context)
        return token

    def get_current(self):
        return self._inner.get_current()

    def detach(self, token):
        self._inner.detach(token)
        # What is current now is the context before the matching attach.
        publish(self._inner.get_current())


def wrap_runtime_context(mod):
    """Called once opentelemetry.context is imported."""
    global _runtime
    rc = getattr(mod, "_RUNTIME_CONTEXT", None)
    if rc is None:
        return
    if not isinstance(rc, ProfilingRuntimeContext):
        rc = ProfilingRuntimeContext(rc)
        mod._RUNTIME_CONTEXT = rc
    _runtime = rc
    publish(rc.get_current())


def _otel_context_of(pyctx):
    """The OpenTelemetry context stored in contextvars.Context pyctx, without entering it."""
    rc = _runtime
    if rc is None:
        return None
    var = getattr(rc._inner, "_current_context", None)
    if isinstance(var, contextvars.ContextVar):
        return pyctx.get(var)
    return pyctx.run(rc.get_current)


def hook_asyncio(events):
    """Every asyncio callback (task steps included) runs through Handle._run in its own
    contextvars.Context: publish that context's span before it runs, and the loop's own after."""
    cls = events.Handle
    if getattr(cls._run, "_otelprof", False):
        return
    orig_run = cls._run

    def _run(self):
        rc = _runtime
        if rc is None:
            return orig_run(self)
        try:
            publish(_otel_context_of(self._context) if self._context is not None else rc.get_current())
        except Exception:
            pass
        try:
            return orig_run(self)
        finally:
            try:
                publish(rc.get_current())
            except Exception:
                pass

    _run._otelprof = True
    cls._run = _run


def hook_create_task(base_events):
    """An eager task (3.12+: asyncio.eager_task_factory) runs its first step inside create_task,
    in its own context, and asyncio returns to the caller's context in C when that step awaits:
    no handle runs in between, so the child's span would stay published while the caller goes on.
    Republish the caller's span once create_task returns."""
    cls = base_events.BaseEventLoop
    if getattr(cls.create_task, "_otelprof", False):
        return
    orig = cls.create_task

    def create_task(self, coro, *args, **kwargs):
        try:
            return orig(self, coro, *args, **kwargs)
        finally:
            rc = _runtime
            if rc is not None and self._task_factory is not None:
                try:
                    publish(rc.get_current())
                except Exception:
                    pass

    create_task._otelprof = True
    cls.create_task = create_task


# ---- traces to profiles ----------------------------------------------------------------------

_processor_cls = None


def __getattr__(name):
    # Built on first use so that importing otelprof never imports the OpenTelemetry SDK.
    global _processor_cls
    if name != "ProfileIdSpanProcessor":
        raise AttributeError(name)
    if _processor_cls is None:
        try:
            from opentelemetry.sdk.trace import SpanProcessor as base
        except Exception:
            base = object

        class ProfileIdSpanProcessor(base):
            """Sets pyroscope.profile.id (the hex span id) on local root spans, which Grafana's
            traces-to-profiles joins on: provider.add_span_processor(ProfileIdSpanProcessor())."""

            def on_start(self, span, parent_context=None):
                parent = getattr(span, "parent", None)
                if parent is None or parent.is_remote:
                    span.set_attribute("pyroscope.profile.id",
                                       format(span.get_span_context().span_id, "016x"))

            def on_end(self, span):
                pass

            def shutdown(self):
                pass

            def force_flush(self, timeout_millis=30000):
                return True

        _processor_cls = ProfileIdSpanProcessor
    return _processor_cls
