"""Chat turns over a plain websocket: each message the client sends to a chat websocket is one turn, one trace.

A chat app that talks over a websocket (``await ws.receive_text()``, call the model, ``await ws.send_text(...)``)
has no HTTP request per turn, so without this every LLM call it makes is the root of its own trace. The middleware
hands the app a ``receive`` that opens a SERVER span (``WS /path``, the turn's chat root) when a message arrives and
makes it current in the task that received it; the turn ends when the app asks for the next message or the socket
closes. Identity: the handshake's (headers, bearer JWT), then the message's own top-level JSON fields (a text
message up to ``CHATOBS_MAX_BODY_BYTES``), like a request body. Engine.IO connections (socket.io, ``?EIO=``) are
left alone: their messages are protocol packets, their events are handled by the ``socketio`` integration.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from ...core import semconv
from ...core.chat_scope import ChatScope, context_with_scope, with_request_span
from ...core.guard import log_limited
from ..light_spans import start_span
from ..tracer import get_tracer
from . import chat_turns
from .extract import IdentityReader, parse_json_object

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


def is_engineio(scope: MutableMapping[str, Any]) -> bool:
    query = scope.get("query_string", b"") or b""
    return b"EIO=" in query


class MessageTurns:
    """The turns of one websocket connection. ``receive(original)`` is what the app gets."""

    __slots__ = ("_attrs", "_base", "_ids", "_max_body", "_name", "_propagate", "_span")

    def __init__(
        self,
        scope: MutableMapping[str, Any],
        base: ChatScope,
        ids: IdentityReader,
        max_body: int,
        propagate_identity: bool,
    ) -> None:
        path = scope.get("path", "")
        self._base = base
        self._ids = ids
        self._max_body = max_body
        self._propagate = propagate_identity
        self._name = f"WS {path}"
        self._attrs: dict[str, Any] = {
            semconv.CHAT_REQUEST: True,
            semconv.ROUTE: path,
            semconv.URL_PATH: path,
            semconv.URL_SCHEME: scope.get("scheme", "ws"),
            "network.protocol.name": "websocket",
        }
        self._span: trace.Span | None = None

    def receive(self, original: Receive) -> Receive:
        async def receive() -> Message:
            self.end()  # asking for the next message: the previous turn's own work is done
            message = await original()
            if message.get("type") == "websocket.receive":
                try:
                    self._start(message)
                except Exception as exc:  # noqa: BLE001 - never hurt the host app: the message goes on untraced
                    log_limited("ws-turn", "chatobs: could not open a websocket turn: %s: %s", type(exc).__name__, exc)
            return message

        return receive

    def _start(self, message: Message) -> None:
        found: dict[str, str] = {}
        text = message.get("text")
        raw = text.encode("utf-8", "replace") if isinstance(text, str) else message.get("bytes")
        if raw and self._max_body and len(raw) <= self._max_body and self._ids.missing(found):
            self._ids.from_body(parse_json_object(raw), found)
        base = self._base
        s = replace(base, **{k: v for k, v in found.items() if not getattr(base, k)})  # type: ignore[arg-type]
        # A new trace per message: the handshake's context holds the scope and baggage, no span.
        ctx = context_with_scope(s, otel_context.Context(), self._propagate)
        span = start_span(self._name, context=ctx, kind=SpanKind.SERVER, attributes=self._attrs, tracer=get_tracer())
        sc = span.get_span_context()
        if sc.is_valid:
            s = replace(s, trace_id=format(sc.trace_id, "032x"), span_id=format(sc.span_id, "016x"))
            chat_turns.remember(s, sc)
        ctx = with_request_span(span, context_with_scope(s, trace.set_span_in_context(span, ctx), False))
        # Not detached: the app may read the next message from another task; the connection's own detach (in the
        # middleware) restores the context it started with.
        otel_context.attach(ctx)
        self._span = span

    def end(self) -> None:
        span, self._span = self._span, None
        if span is not None:
            try:
                span.end()
            except Exception as exc:  # noqa: BLE001
                log_limited("ws-turn-end", "chatobs: could not end a websocket turn: %s", exc)
