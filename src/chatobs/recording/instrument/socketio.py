"""python-socketio: a handler triggered by a socket.io event of a chat runs in that chat's latest turn.

A socket.io event (Open WebUI's ``events:chat``, an app's own ``emit("message", {"chat_id": ...})``) arrives on the
long-lived socket.io connection, outside any HTTP request: whatever its handler does would have no parent span.
chatobs wraps ``AsyncServer._trigger_event`` (the one place every handler is called from) and, when the event's data
names a chat -- a top-level ``chat_id`` or one of ``CHATOBS_CONVERSATION_FIELDS`` -- runs the handler with that
chat's latest turn as parent (its request span, remembered by the middleware) and the chat's scope. No span is made
for the event itself: a typing indicator or a read receipt is not a turn, and would stretch the turn's duration.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from contextvars import Token
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from ...core.chat_scope import ChatScope, context_with_scope, current
from ...core.guard import log_limited
from ..middleware import chat_turns
from .stainless import cancel_when_imported, when_imported

if TYPE_CHECKING:
    from ...config import Settings

_MODULE = "socketio.async_server"
_MARK = "__chatobs_original__"
_fields: tuple[str, ...] = ("chat_id", "conversation_id")
_propagate_identity = True


def instrument(settings: Settings) -> bool:
    global _fields, _propagate_identity
    _fields = tuple(dict.fromkeys(("chat_id", *settings.conversation_fields)))
    _propagate_identity = settings.propagate_identity
    when_imported(_MODULE, _patch)
    return True


def uninstrument() -> None:
    cancel_when_imported(_MODULE)
    module = sys.modules.get(_MODULE)
    if module is not None:
        original = getattr(module.AsyncServer._trigger_event, _MARK, None)
        if original is not None:
            module.AsyncServer._trigger_event = original


def _patch(module: Any) -> None:
    cls = module.AsyncServer
    original = cls._trigger_event
    if hasattr(original, _MARK):
        return

    async def _trigger_event(self: Any, event: str, namespace: str, *args: Any) -> Any:
        token = _enter(event, args)
        try:
            return await original(self, event, namespace, *args)
        finally:
            if token is not None:
                otel_context.detach(token)

    setattr(_trigger_event, _MARK, original)
    cls._trigger_event = _trigger_event


def _chat_of(args: tuple[Any, ...]) -> str | None:
    for arg in args[1:]:  # args[0] is the sid
        if isinstance(arg, Mapping):
            for name in _fields:
                value = arg.get(name)
                if isinstance(value, str) and value and len(value) <= 256 and value.isprintable():
                    return value
    return None


def _enter(event: str, args: tuple[Any, ...]) -> Token[otel_context.Context] | None:
    try:
        conversation = _chat_of(args)
        if conversation is None:
            return None
        found = chat_turns.latest(conversation)
        base = current() or ChatScope()
        if found is None:
            # No turn of this chat seen here yet: the handler still knows whose chat it serves.
            s = replace(base, conversation_id=conversation, route=f"socket.io:{event}")
            return otel_context.attach(context_with_scope(s, propagate_identity=_propagate_identity))
        span_context, turn = found
        s = replace(turn, user_id=turn.user_id or base.user_id)
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_context), otel_context.get_current())
        return otel_context.attach(context_with_scope(s, ctx, _propagate_identity))
    except Exception as exc:  # noqa: BLE001 - never hurt the host app: the handler runs as it would without chatobs
        log_limited("socketio-event", "chatobs: could not read a socket.io event: %s: %s", type(exc).__name__, exc)
        return None
