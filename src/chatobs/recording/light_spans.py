"""Light spans: what chatobs still records of a trace that head sampling dropped.

Metrics count every request, sampled or not, and tail rules (errors, slow turns, cost) can keep a dropped trace; both
need the spans chatobs itself makes (the request, LLM calls, MCP calls, decorated functions), but neither needs their
content, nor the spans of every other instrumentation. So when a trace is not sampled
(``CHATOBS_RECORD_UNSAMPLED=light``, the default) the sampler drops it outright (other instrumentations get OpenTelemetry's
no-op span) and chatobs's recorders get a :class:`LightSpan`: a plain object that keeps the span's attributes without
content (no message or tool payloads are built, encoded or masked) and, when it ends, hands one finished span to the
background pipeline, where metrics count it and the tail rules judge it like any other.

A light span's parent is the nearest chatobs span of its trace (a light span, else the request span of the chat
scope): the spans in between belong to other instrumentations and were not recorded, so a trace a tail rule keeps is
still one connected tree.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from .. import __version__
from ..core import semconv
from ..core.chat_scope import current, identity_attributes, scope_for_span

__all__ = ["LightSpan", "configure", "records_content", "start_span"]

# Attributes a light span never keeps: the payloads (messages, tool I/O) that make a span expensive to record.
OMITTED: frozenset[str] = frozenset(
    {
        semconv.GEN_AI_INPUT_MESSAGES,
        semconv.GEN_AI_OUTPUT_MESSAGES,
        semconv.GEN_AI_SYSTEM_INSTRUCTIONS,
        semconv.GEN_AI_TOOL_DEFINITIONS,
        semconv.GEN_AI_TOOL_CALL_ARGUMENTS,
        semconv.GEN_AI_TOOL_CALL_RESULT,
        semconv.INPUT,
        semconv.OUTPUT,
        *semconv.RAW_ATTRIBUTES,
    }
)
_MAX_EVENTS = 8
_PRIMITIVES = (str, bool, int, float)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_CHATOBS_SCOPE = InstrumentationScope("chatobs", __version__)

# Set by runtime.init(): the pipeline's on_end, the provider's resource; None = light spans off (DROP is all).
_sink: Any = None
_resource: Resource = Resource.get_empty()


def configure(sink: Any, resource: Resource | None) -> None:
    """Light spans on (``sink`` = where finished spans go) or off (``sink=None``)."""
    global _sink, _resource
    _sink = sink
    _resource = resource if resource is not None else Resource.get_empty()


def _valid(value: Any) -> bool:
    if isinstance(value, _PRIMITIVES):
        return True
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        return False
    kinds = {type(v) for v in value}  # OpenTelemetry: a sequence of one primitive type
    return len(kinds) <= 1 and all(k in _PRIMITIVES for k in kinds)


class LightSpan(trace.Span):
    """A span of an unsampled trace: attributes without content, status, exceptions; ``end`` sends it on."""

    __slots__ = (
        "_attrs",
        "_ctx",
        "_events",
        "_resource",
        "_sink",
        "_status",
        "end_time",
        "instrumentation_scope",
        "kind",
        "name",
        "parent",
        "start_time",
    )

    def __init__(
        self,
        ctx: SpanContext,
        parent: SpanContext | None,
        name: str,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        scope: InstrumentationScope = _CHATOBS_SCOPE,
        start_time: int | None = None,
    ) -> None:
        self._ctx = ctx
        self.parent = parent
        self.name = name
        self.kind = kind
        self._attrs: dict[str, Any] = {}
        self._events: list[Event] = []
        self._status = Status(StatusCode.UNSET)
        self.start_time = start_time if start_time is not None else time.time_ns()
        self.end_time: int | None = None
        self.instrumentation_scope = scope
        self._sink = _sink
        self._resource = _resource
        if attributes:
            self.set_attributes(attributes)

    # --- read access, as on the SDK's spans ------------------------------------------------------------------------------
    @property
    def attributes(self) -> Mapping[str, Any]:
        return self._attrs

    @property
    def status(self) -> Status:
        return self._status

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    @property
    def context(self) -> SpanContext:
        return self._ctx

    # --- the Span API -------------------------------------------------------------------------------------------------
    def get_span_context(self) -> SpanContext:
        return self._ctx

    def is_recording(self) -> bool:
        # True so the recorders' "is there anything to write to" checks pass; content is kept out by OMITTED and by
        # records_content(), which the recorders ask before building any.
        return self.end_time is None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self.end_time is None and key not in OMITTED and _valid(value):
            self._attrs[key] = list(value) if isinstance(value, tuple) else value

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self.end_time is None and len(self._events) < _MAX_EVENTS:
            self._events.append(
                Event(name, dict(attributes or {}), timestamp if timestamp is not None else time.time_ns())
            )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        pass

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            return
        if isinstance(status, Status):
            new = status
        else:
            new = Status(status, description if status is StatusCode.ERROR else None)
        if self._status.status_code is StatusCode.OK:
            return  # the spec: OK is final
        self._status = new

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # Errors are rare and are what a tail rule keeps a dropped trace for: record them as the SDK does.
        attrs: dict[str, Any] = {
            semconv.EXCEPTION_TYPE: type(exception).__qualname__,
            semconv.EXCEPTION_MESSAGE: str(exception),
            semconv.EXCEPTION_STACKTRACE: "".join(
                traceback.format_exception(type(exception), exception, exception.__traceback__)
            ),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        self.end_time = end_time if end_time is not None else time.time_ns()
        sink = self._sink
        if sink is None:
            return
        try:
            sink(self.finished())
        except Exception:  # noqa: BLE001 - never reaches the app; the pipeline counts its own drops
            pass

    def finished(self) -> ReadableSpan:
        return ReadableSpan(
            name=self.name,
            context=self._ctx,
            parent=self.parent,
            resource=self._resource,
            attributes=self._attrs,
            events=tuple(self._events),
            links=(),
            kind=self.kind,
            status=self._status,
            start_time=self.start_time,
            end_time=self.end_time,
            instrumentation_scope=self.instrumentation_scope,
        )

    def __repr__(self) -> str:
        return f"LightSpan({self.name!r}, trace_id=0x{self._ctx.trace_id:032x}, span_id=0x{self._ctx.span_id:016x})"


def records_content(ctx: otel_context.Context | None = None) -> bool:
    """Will a span started now (under ``ctx``) keep content? No inside a dropped trace (a light span or a non-recording
    parent that is not sampled): the recorders ask this before normalising and encoding messages."""
    parent = trace.get_current_span(ctx)
    if type(parent) is LightSpan:
        return False
    if parent.is_recording():
        return True
    pctx = parent.get_span_context()
    return not pctx.is_valid or pctx.trace_flags.sampled


def _parent_of(trace_id: int, ctx: otel_context.Context | None) -> SpanContext | None:
    parent = trace.get_current_span(ctx)
    pctx = parent.get_span_context()
    if type(parent) is LightSpan or not pctx.is_valid or pctx.is_remote:
        return pctx if pctx.is_valid else None
    # The current span belongs to an instrumentation whose spans this trace does not record: hang the light span on
    # the chat request span instead, so the kept tree has no hole.
    s = current(ctx) or current()
    if s is not None and s.span_id and s.trace_id and int(s.trace_id, 16) == trace_id:
        return SpanContext(trace_id, int(s.span_id, 16), is_remote=False, trace_flags=_UNSAMPLED)
    return pctx


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
    context: otel_context.Context | None = None,
    links: Sequence[Link] | None = None,
    tracer: trace.Tracer | None = None,
    scope: InstrumentationScope = _CHATOBS_SCOPE,
    start_time: int | None = None,
) -> trace.Span:
    """``tracer.start_span`` (default: chatobs's tracer), or a :class:`LightSpan` when the trace was not sampled."""
    if tracer is None:
        from ..runtime.wiring import get_tracer

        tracer = get_tracer()
    span = tracer.start_span(
        name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_time
    )
    if _sink is None or span.is_recording():
        return span
    sc = span.get_span_context()
    if not sc.is_valid:
        return span
    light = LightSpan(sc, _parent_of(sc.trace_id, context), name, kind, attributes, scope, start_time)
    s = scope_for_span(context)
    if s is not None:
        light.set_attributes(identity_attributes(s))
    return light
