"""Helpers for the background stages, which see finished (immutable) OTel spans and hand on changed copies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status

from . import semconv

_UNSET: Any = object()


def with_changes(
    span: ReadableSpan,
    *,
    attributes: Mapping[str, Any] | None = None,
    events: Sequence[Event] | None = None,
    status: Status | None = None,
    name: str | None = None,
    context: SpanContext | None = None,
) -> ReadableSpan:
    """A copy of ``span`` with some parts replaced; everything else (IDs, times, resource, links, scope) is kept."""
    return ReadableSpan(
        name=span.name if name is None else name,
        context=span.context if context is None else context,
        parent=span.parent,
        resource=span.resource,
        attributes=dict(span.attributes or {}) if attributes is None else dict(attributes),
        events=tuple(span.events) if events is None else tuple(events),
        links=tuple(span.links),
        kind=span.kind,
        status=span.status if status is None else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def trace_id_hex(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x") if span.context else ""


def span_id_hex(span: ReadableSpan) -> str:
    return format(span.context.span_id, "016x") if span.context else ""


def parent_id_hex(span: ReadableSpan) -> str | None:
    return format(span.parent.span_id, "016x") if span.parent else None


def is_chat_span(span: ReadableSpan) -> bool:
    """Part of a chat trace as LLM backends want it: the request span, GenAI/MCP spans, decorator spans and user
    feedback (which each LLM backend turns into a score)."""
    attrs = span.attributes or {}
    return bool(
        attrs.get(semconv.CHAT_REQUEST)
        or semconv.FEEDBACK in attrs
        or semconv.GEN_AI_OPERATION_NAME in attrs
        or semconv.MCP_METHOD_NAME in attrs
        or semconv.OBSERVATION_TYPE in attrs
    )


def is_chat_root(span: ReadableSpan) -> bool:
    return bool((span.attributes or {}).get(semconv.CHAT_REQUEST))


def owns_tool_call(span: ReadableSpan, attrs: Mapping[str, Any]) -> bool:
    """Whether this span is the one that counts an MCP ``tools/call`` (metrics, alerts): the CLIENT side, or the
    SERVER side when its caller was not a chatobs client. Decided from the span alone, so one call is counted once
    whether its two spans reach one process or two."""
    if attrs.get(semconv.MCP_METHOD_NAME) != "tools/call":
        return False
    return span.kind != SpanKind.SERVER or attrs.get(semconv.MCP_CALLER_TRACED) is not True


def attributes_of(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict, to read and never to change (it is the span's own storage).

    The per-span stages read a few keys of every span; through ``span.attributes`` (a read-only proxy of the SDK's
    ``BoundedAttributes``, whose lookups run in Python) each read costs several times a dict lookup.
    """
    raw = getattr(span, "_attributes", None)
    if type(raw) is dict:
        return raw
    inner = getattr(raw, "_dict", None)
    if type(inner) is dict:
        return inner
    return span.attributes or {}
