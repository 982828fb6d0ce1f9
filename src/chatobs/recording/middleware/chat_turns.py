"""The latest turn of each chat in this process: what a websocket or socket.io event of that chat joins.

An event a chat's browser sends over a socket (Open WebUI's ``events:chat``, an app's own socket.io events) arrives
outside any HTTP request, so on its own it has no trace. The chat's latest turn -- its request span and scope,
remembered here when the turn starts -- gives the event's handler a parent, so what it does lands in that turn.
Bounded: the oldest chats are forgotten first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from opentelemetry.trace import SpanContext

from ...core.chat_scope import ChatScope

MAX_CHATS = 4096

_latest: OrderedDict[str, tuple[SpanContext, ChatScope]] = OrderedDict()
_lock = threading.Lock()


def remember(scope: ChatScope, span_context: SpanContext) -> None:
    """Note ``span_context`` (a chat request's span) as the latest turn of ``scope``'s conversation."""
    conversation = scope.conversation_id
    if not conversation or not span_context.is_valid or not scope.chat_turn:
        return
    with _lock:
        _latest[conversation] = (span_context, scope)
        _latest.move_to_end(conversation)
        if len(_latest) > MAX_CHATS:
            _latest.popitem(last=False)


def latest(conversation_id: str) -> tuple[SpanContext, ChatScope] | None:
    with _lock:
        return _latest.get(conversation_id)


def clear() -> None:
    with _lock:
        _latest.clear()
