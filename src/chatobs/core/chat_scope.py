"""The request scope: who and what a chat request is about, available anywhere while it is handled.

The scope lives in the OpenTelemetry context (itself a contextvar), so it follows ``await``, tasks the handler spawns,
``asyncio.to_thread`` and threads started with :func:`wrap` or OpenTelemetry's threading instrumentation.
Identity also travels in W3C ``baggage`` to downstream services and MCP servers (unless
``CHATOBS_PROPAGATE_IDENTITY=false``), under the same keys as the span attributes.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, TypeVar

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

from . import semconv

__all__ = ["BAGGAGE_KEYS", "ChatScope", "current", "identity_attributes", "inject", "request_span", "scope", "wrap"]

P = ParamSpec("P")
R = TypeVar("R")

_SCOPE_KEY = otel_context.create_key("chatobs-scope")
_REQUEST_SPAN_KEY = otel_context.create_key("chatobs-request-span")

# Baggage key -> ChatScope field. Keys are the span attribute names, so a downstream service can copy them as is.
BAGGAGE_KEYS: dict[str, str] = {
    semconv.GEN_AI_CONVERSATION_ID: "conversation_id",
    semconv.USER_ID: "user_id",
    semconv.TENANT_ID: "tenant_id",
}


@dataclass(frozen=True, slots=True)
class ChatScope:
    """Identity and trace context of one chat request. Immutable: use :func:`scope` to refine it."""

    conversation_id: str | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    message_id: str | None = None
    parent_message_id: str | None = None
    route: str | None = None
    trace_id: str | None = None  # 32 hex chars, the request's trace
    span_id: str | None = None  # 16 hex chars, the request's SERVER span
    chat_turn: bool = True  # False: a request outside CHATOBS_CHAT_ROUTES (counted in metrics, never stored)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def attributes(self) -> dict[str, str | bool]:
        """The span attributes this scope puts on every span created inside it."""
        return identity_attributes(self)


# Set by init() when CHATOBS_HASH_USER_IDS is on: the user ID as it may leave the process (spans, baggage, metrics).
# The scope itself keeps the real ID, for the app.
_user_id_out: Callable[[str], str] | None = None


def set_user_id_transform(fn: Callable[[str], str] | None) -> None:
    global _user_id_out
    _user_id_out = fn


def exported_user_id(user_id: str) -> str:
    fn = _user_id_out
    return fn(user_id) if fn is not None else user_id


def identity_attributes(s: ChatScope) -> dict[str, str | bool]:
    attrs: dict[str, str | bool] = {}
    if s.conversation_id:
        attrs[semconv.GEN_AI_CONVERSATION_ID] = s.conversation_id
        attrs[semconv.SESSION_ID] = s.conversation_id
    if s.user_id:
        attrs[semconv.USER_ID] = exported_user_id(s.user_id)
    if s.tenant_id:
        attrs[semconv.TENANT_ID] = s.tenant_id
    if s.message_id:
        attrs[semconv.MESSAGE_ID] = s.message_id
    if s.parent_message_id:
        attrs[semconv.PARENT_MESSAGE_ID] = s.parent_message_id
    if not s.chat_turn:
        attrs[semconv.CHAT_TURN] = False
    return attrs


def current(ctx: otel_context.Context | None = None) -> ChatScope | None:
    """The scope of the chat request being handled, or ``None`` outside one."""
    return otel_context.get_value(_SCOPE_KEY, ctx)  # type: ignore[return-value]


def scope_from_baggage(ctx: otel_context.Context | None = None) -> ChatScope | None:
    """A scope rebuilt from incoming ``baggage`` (how an MCP server or downstream service learns who it serves)."""
    values = otel_baggage.get_all(ctx)
    if not values:
        return None
    found: dict[str, Any] = {fname: str(values[key]) for key, fname in BAGGAGE_KEYS.items() if values.get(key)}
    return ChatScope(**found) if found else None


def scope_for_span(ctx: otel_context.Context | None = None) -> ChatScope | None:
    """The scope a span started under ``ctx`` belongs to: the chat scope (of ``ctx``, else the active one) or, in a
    process downstream of a chat app (an MCP server, another service), one rebuilt from incoming baggage."""
    return current(ctx) or current() or scope_from_baggage(ctx)


def context_with_scope(
    s: ChatScope, ctx: otel_context.Context | None = None, propagate_identity: bool = True
) -> otel_context.Context:
    """``ctx`` (default: current) with ``s`` set and, if ``propagate_identity``, its IDs added to the baggage."""
    ctx = otel_context.set_value(_SCOPE_KEY, s, ctx)
    if propagate_identity:
        for key, fname in BAGGAGE_KEYS.items():
            value = getattr(s, fname)
            if value:
                if fname == "user_id":
                    value = exported_user_id(value)
                ctx = otel_baggage.set_baggage(key, value, ctx)
    return ctx


@contextmanager
def scope(propagate_identity: bool | None = None, **ids: Any) -> Iterator[ChatScope]:
    """Open (or refine) a chat scope by hand, e.g. in a worker or a websocket message handler.

    ``with chatobs.scope(conversation_id="c1", user_id="u1"): ...`` -- unset fields are inherited from the enclosing scope.
    """
    base = current() or ChatScope()
    known = {k: v for k, v in ids.items() if k in ChatScope.__dataclass_fields__}
    extra = {k: v for k, v in ids.items() if k not in known}
    new = replace(base, **known, extra={**base.extra, **extra})
    if propagate_identity is None:
        from ..runtime.wiring import settings_or_none

        s = settings_or_none()
        propagate_identity = True if s is None else s.propagate_identity
    token = otel_context.attach(context_with_scope(new, propagate_identity=propagate_identity))
    try:
        yield new
    finally:
        otel_context.detach(token)


def wrap(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` bound to the current context (scope and active span), for running it in another thread or executor."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return ctx.copy().run(fn, *args, **kwargs)

    return run


def inject(carrier: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Add ``traceparent``, ``tracestate`` and ``baggage`` for the current span and scope to ``carrier`` (headers or
    MCP ``_meta``) and return it. For HTTP clients chatobs does not instrument."""
    carrier = {} if carrier is None else carrier
    propagate.inject(carrier)
    return carrier


def request_span(ctx: otel_context.Context | None = None) -> trace.Span:
    """The SERVER span of the chat request being handled (to mark it: feedback, edit, regenerate...), even where
    another span is current (FastAPI traces its endpoint); a non-recording span outside a request."""
    span = otel_context.get_value(_REQUEST_SPAN_KEY, ctx)
    return span if isinstance(span, trace.Span) else trace.INVALID_SPAN


def with_request_span(span: trace.Span, ctx: otel_context.Context) -> otel_context.Context:
    return otel_context.set_value(_REQUEST_SPAN_KEY, span, ctx)


def current_trace_id() -> str | None:
    """The current trace ID as 32 hex characters, or ``None`` when no span is recording."""
    sc = trace.get_current_span().get_span_context()
    return format(sc.trace_id, "032x") if sc.is_valid else None
