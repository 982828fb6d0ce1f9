"""Framework noise: the internal spans web frameworks open only because a tracer provider exists.

FastAPI (0.165+) opens ``fastapi.dependencies``, ``fastapi.endpoint``, ``fastapi.serialization`` and
``fastapi.background_task`` spans under its server span; OpenTelemetry's ASGI instrumentation opens ``http send`` and
``http receive`` spans. Unless ``CHATOBS_FRAMEWORK_SPANS=true``, chatobs's tracer provider hands those frameworks a
tracer that keeps their SERVER spans and, for every other span, creates nothing: the span "started" is the current
one, so whatever runs inside (an LLM call, the app's own spans, an outgoing request's ``traceparent``) belongs to the
framework's server span, as if the framework had not opened it.

The head sampler cannot do this: it is not told the instrumentation scope, and a DROP would give everything inside
the endpoint an unsampled parent (dropping the LLM spans and telling downstream services not to sample).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util import types

__all__ = ["FRAMEWORK_SCOPES", "ChatTracerProvider", "configure"]

# Instrumentation scopes of web frameworks and their OpenTelemetry instrumentations.
FRAMEWORK_SCOPES: frozenset[str] = frozenset(
    {
        "fastapi",
        "starlette",
        "opentelemetry.instrumentation.asgi",
        "opentelemetry.instrumentation.wsgi",
        "opentelemetry.instrumentation.fastapi",
        "opentelemetry.instrumentation.starlette",
        "opentelemetry.instrumentation.flask",
        "opentelemetry.instrumentation.django",
        "opentelemetry.instrumentation.falcon",
        "opentelemetry.instrumentation.pyramid",
        "opentelemetry.instrumentation.tornado",
        "opentelemetry.instrumentation.aiohttp_server",
    }
)

# Set by runtime.init()/shutdown(); read per span because frameworks cache their tracer across init()/shutdown().
_keep = True


def configure(keep_framework_spans: bool) -> None:
    global _keep
    _keep = keep_framework_spans


class _FrameworkTracer(trace.Tracer):
    """A framework's tracer: SERVER spans as usual, other spans only with ``CHATOBS_FRAMEWORK_SPANS``."""

    __slots__ = ("_tracer",)

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        if _keep or kind is SpanKind.SERVER:
            return self._tracer.start_span(
                name, context, kind, attributes, links, start_time, record_exception, set_status_on_exception
            )
        # The caller ends what it gets: hand it a non-recording stand-in carrying the parent's identity.
        return trace.NonRecordingSpan(trace.get_current_span(context).get_span_context())

    @contextmanager
    def start_as_current_span(  # type: ignore[override]  # a contextmanager, as the SDK's is in use
        self,
        name: str,
        context: otel_context.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        if _keep or kind is SpanKind.SERVER:
            with self._tracer.start_as_current_span(
                name,
                context,
                kind,
                attributes,
                links,
                start_time,
                record_exception,
                set_status_on_exception,
                end_on_exit,
            ) as span:
                yield span
            return
        # The current span stays current (nothing to attach): what the framework sets on "its" span (an error type,
        # a status) lands on the server span, which FastAPI marks the same way; the span is not ended here.
        parent = trace.get_current_span(context)
        if context is None:
            yield parent
            return
        with trace.use_span(parent, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield parent


class ChatTracerProvider(TracerProvider):
    """The SDK provider chatobs installs when the app has none; frameworks get a :class:`_FrameworkTracer`."""

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace.Tracer:
        tracer = super().get_tracer(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)
        if instrumenting_module_name in FRAMEWORK_SCOPES and not isinstance(tracer, trace.NoOpTracer):
            return _FrameworkTracer(tracer)
        return tracer
