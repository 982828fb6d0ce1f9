"""Gradio: the function behind an event (a ``gr.ChatInterface`` turn) runs in the trace of the request that submitted it.

Gradio answers ``queue/join`` at once and runs the function later, on a queue task started from the server's
startup context, so without help every LLM call in it is the root of its own trace, with no identity. chatobs keeps
the OpenTelemetry context current when the ``Event`` is created (inside ``queue/join``, under the middleware's request
span and scope) and runs the whole of ``Queue.process_events`` -- every step of a generator too, as they all run in
that one task -- under it, inside a ``gradio <api name>`` span that lasts as long as the work. Conversation = the
chat's ``session_hash``, user = ``gr.Request.username`` (Gradio auth), unless the request already named them.
Without the chatobs middleware (``demo.launch()``), that span is the turn's chat root, parented by the incoming
``traceparent`` of ``queue/join``.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ...core import semconv
from ...core.chat_scope import (
    ChatScope,
    context_with_scope,
    current,
    identity_attributes,
    request_span,
    with_request_span,
)
from ...core.guard import log_limited
from ..light_spans import start_span
from .stainless import cancel_when_imported, when_imported

if TYPE_CHECKING:
    from ...config import Settings

_MODULE = "gradio.queueing"
_CTX_ATTR = "_chatobs_context"
_propagate_identity = True

# Gradio attributes: which framework ran the turn and which of its functions.
GRADIO_FN = "gradio.fn"
GRADIO_EVENT_ID = "gradio.event_id"


def instrument(settings: Settings) -> bool:
    """Patch Gradio's queue now if the app imported Gradio, else as soon as it does (``init()`` never imports it)."""
    global _propagate_identity
    _propagate_identity = settings.propagate_identity
    when_imported(_MODULE, _patch)
    return True


def uninstrument() -> None:
    cancel_when_imported(_MODULE)
    module = sys.modules.get(_MODULE)
    if module is None:
        return
    for cls, name in ((module.Event, "__init__"), (module.Queue, "process_events")):
        original = getattr(getattr(cls, name), "__chatobs_original__", None)
        if original is not None:
            setattr(cls, name, original)


def _patch(module: Any) -> None:
    event_cls, queue_cls = module.Event, module.Queue
    if hasattr(queue_cls.process_events, "__chatobs_original__"):
        return
    original_init = event_cls.__init__
    original_process = queue_cls.process_events

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        # Runs inside queue/join: the context holds the submitting request's span and chat scope.
        try:
            setattr(self, _CTX_ATTR, otel_context.get_current())
            _label_request(self)
        except Exception as exc:  # noqa: BLE001 - never hurt the host app
            log_limited("gradio-event", "chatobs: could not read a Gradio event: %s: %s", type(exc).__name__, exc)

    async def process_events(self: Any, events: list[Any], batch: bool, begin_time: float, fn: Any) -> None:
        turn = _Turn.open(events, fn)
        try:
            await original_process(self, events, batch, begin_time, fn)
        except BaseException as exc:
            # A cancelled run (the user pressed stop, the client went away) is not a failure.
            if turn is not None and not isinstance(exc, asyncio.CancelledError):
                turn.fail(exc)
            raise
        finally:
            if turn is not None:
                turn.close()

    __init__.__chatobs_original__ = original_init  # type: ignore[attr-defined]
    process_events.__chatobs_original__ = original_process  # type: ignore[attr-defined]
    event_cls.__init__ = __init__
    queue_cls.process_events = process_events


def _label_request(event: Any) -> None:
    """Give the queue/join request span the conversation and user the run will have (it is still open here)."""
    base = current()
    span = request_span()
    if base is None or not span.is_recording():
        return
    ids = ChatScope(
        conversation_id=None if base.conversation_id else getattr(event, "session_hash", None) or None,
        user_id=None if base.user_id else getattr(event, "username", None) or None,
    )
    attrs = identity_attributes(ids)
    if attrs:
        span.set_attributes(attrs)


class _Turn:
    """The span and attached context of one queued run; opened and closed in the queue task itself, so the attach
    and detach always pair up (a generator's steps never switch contexts under it)."""

    __slots__ = ("span", "token")

    def __init__(self, span: trace.Span, token: object) -> None:
        self.span = span
        self.token = token

    @classmethod
    def open(cls, events: list[Any], fn: Any) -> _Turn | None:
        try:
            return cls._open(events, fn)
        except Exception as exc:  # noqa: BLE001 - never hurt the host app: run the event untraced
            log_limited("gradio-open", "chatobs: could not trace a Gradio event: %s: %s", type(exc).__name__, exc)
            return None

    @classmethod
    def _open(cls, events: list[Any], fn: Any) -> _Turn | None:
        if not events:
            return None
        event = events[0]
        ctx = getattr(event, _CTX_ATTR, None)
        if ctx is None:
            return None
        base = current(ctx)
        submitted = request_span(ctx)
        # Ended by now (queue/join answered at once), but still the parent: the run hangs under the chat request,
        # not under whatever framework span was current in the endpoint.
        has_request = base is not None and submitted.get_span_context().is_valid
        if has_request:
            ctx = trace.set_span_in_context(submitted, ctx)
        else:
            # No chatobs middleware in front of Gradio: continue the browser's/caller's trace, if it sent one.
            from ..middleware import tracecontext

            headers = getattr(getattr(event, "request", None), "headers", None)
            get = headers.getlist if headers is not None and hasattr(headers, "getlist") else (lambda name: ())
            ctx = tracecontext.extract(get("traceparent"), get("tracestate"), get("baggage"))
            base = current(ctx)
        base = base or ChatScope()
        session = getattr(event, "session_hash", None) or None
        username = getattr(event, "username", None) or None
        name = getattr(fn, "api_name", None) or getattr(getattr(fn, "fn", None), "__name__", None) or "event"
        s = replace(
            base,
            conversation_id=base.conversation_id or session,
            user_id=base.user_id or username,
            route=base.route or f"gradio:{name}",
        )
        ctx = context_with_scope(s, ctx, _propagate_identity)
        attrs: dict[str, Any] = {GRADIO_FN: str(name), GRADIO_EVENT_ID: str(getattr(event, "_id", ""))}
        if not has_request:
            attrs[semconv.CHAT_REQUEST] = True
            attrs[semconv.ROUTE] = s.route
        span = start_span(
            f"gradio {name}", context=ctx, kind=SpanKind.INTERNAL if has_request else SpanKind.SERVER, attributes=attrs
        )
        ctx = trace.set_span_in_context(span, ctx)
        if not has_request:
            sc = span.get_span_context()
            s = replace(s, trace_id=format(sc.trace_id, "032x"), span_id=format(sc.span_id, "016x"))
            ctx = with_request_span(span, context_with_scope(s, ctx, propagate_identity=False))
        return cls(span, otel_context.attach(ctx))

    def fail(self, exc: BaseException) -> None:
        try:
            if self.span.is_recording():
                self.span.record_exception(exc)
                self.span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
                self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        try:
            otel_context.detach(self.token)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            pass
        try:
            self.span.end()
        except Exception as exc:  # noqa: BLE001
            log_limited("gradio-close", "chatobs: could not end a Gradio span: %s", exc)
