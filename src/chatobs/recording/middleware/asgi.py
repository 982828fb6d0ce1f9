"""``ChatObsMiddleware``: pure ASGI, so it works with FastAPI, Starlette and any ASGI app, streams untouched.

    app.add_middleware(chatobs.ChatObsMiddleware)
    app.add_middleware(chatobs.ChatObsMiddleware, extractors=[lambda req: {"user_id": req.raw["user"].id}])

HTTP requests get one SERVER span and a chat scope; the response carries ``X-Trace-Id``. A JSON body is read for IDs
up to ``CHATOBS_MAX_BODY_BYTES`` and replayed to the app unchanged; a larger or non-JSON body is never read by
chatobs. Response messages are passed on as they come (SSE and chunked responses are never buffered); the span ends
when the app returns -- the stream finished or the client went away. WebSocket connections keep the scope for their
lifetime; on a chat websocket (``WS`` in ``CHATOBS_CHAT_ROUTES``) each message is a turn (see ``ws_turns``); the
lifespan ``shutdown`` flushes chatobs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context

from ...core.chat_scope import ChatScope, context_with_scope
from ...core.guard import log_limited
from .extract import IdExtractor, MiddlewareBase, RequestInfo, is_json_content_type, parse_json_object
from .request import RequestSpan, header_map
from .ws_turns import MessageTurns, is_engineio

logger = logging.getLogger("chatobs")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass
class ChatObsMiddleware(MiddlewareBase):
    """Trace every chat request of an ASGI app. Settings come from ``chatobs.init()`` (called here if needed)."""

    app: ASGIApp
    extractors: Sequence[IdExtractor] = ()
    settings: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._configure()
        if self._active:
            name = self._trace_header_name
            self._trace_header = name.lower().encode("latin-1") if name else b""
            token_name = self._token_header_name
            self._token_header = token_name.lower().encode("latin-1") if token_name else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._active:
            await self.app(scope, receive, send)
            return
        kind = scope.get("type")
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
        else:
            await self.app(scope, receive, send)

    # --- HTTP -----------------------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if self._paths.excluded(path):
            await self.app(scope, receive, send)
            return
        request = RequestSpan()
        # _open may read the body before it fails: the app must then get the replaying receive, not the drained one.
        receiver = [receive]
        try:
            await self._open(request, scope, receiver)
        except Exception as exc:  # noqa: BLE001 - never hurt the host app: serve it untraced
            log_limited("asgi-open", "chatobs: could not open the request span: %s: %s", type(exc).__name__, exc)
            request.close()
            await self.app(scope, receiver[0], send)
            return
        receive = receiver[0]

        trace_header = self._trace_header
        trace_id = (request.trace_id or "").encode("latin-1")
        token_header = self._token_header
        feedback_token = (request.feedback_token or "").encode("latin-1")

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                try:
                    request.set_status(message.get("status", 200))
                    if trace_header and trace_id:
                        headers = list(message.get("headers", ()))
                        headers.append((trace_header, trace_id))
                        if token_header and feedback_token:
                            headers.append((token_header, feedback_token))
                        message["headers"] = headers
                except Exception as exc:  # noqa: BLE001
                    log_limited("asgi-send", "chatobs: could not annotate the response: %s", exc)
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            # A cancelled request (client gone) is not a server error; anything else is recorded and re-raised as is.
            if not isinstance(exc, asyncio.CancelledError):
                try:
                    request.record_exception(exc)
                except Exception:  # noqa: BLE001
                    pass
            raise
        finally:
            try:
                route = scope.get("route")
                request.set_route(
                    getattr(route, "path_format", None) or getattr(route, "path", None), scope.get("method", "GET")
                )
            except Exception:  # noqa: BLE001
                pass
            request.close()

    async def _open(self, request: RequestSpan, scope: Scope, receiver: list[Receive]) -> None:
        """Read identity (headers, then a small JSON body) and open the span; ``receiver[0]`` becomes the receive
        the app must use."""
        headers = header_map(scope.get("headers", ()))
        method = scope.get("method", "GET")
        ids = self._ids.from_headers(headers)
        body_obj = None
        if (
            self._max_body
            and self._ids.missing(ids)
            and method in _BODY_METHODS
            and is_json_content_type(_first(headers, "content-type"))
        ):
            body_obj = await self._peek_body(headers, receiver)
            self._ids.from_body(body_obj, ids)
        info = RequestInfo(method=method, path=scope.get("path", ""), headers=headers, body=body_obj, raw=scope)
        if self._ids.extractors and self._ids.missing(ids):
            self._ids.from_extractors(info, ids)
        server = scope.get("server")
        client = scope.get("client")
        query = scope.get("query_string", b"")
        request.open(
            info,
            ids,
            settings=self.settings,
            scheme=scope.get("scheme", "http"),
            server=(server[0], server[1]) if server else None,
            client=client[0] if client else None,
            http_version=scope.get("http_version"),
            query=query.decode("latin-1") if query else None,
            chat_turn=self._routes.is_chat(method, scope.get("path", "")),
        )

    async def _peek_body(self, headers: dict[str, list[str]], receiver: list[Receive]) -> dict[str, Any] | None:
        """Read the body up to the limit and hand the app a ``receive`` that replays it, then continues live."""
        length = _first(headers, "content-length")
        if length is not None:
            try:
                if int(length) > self._max_body:
                    return None
            except ValueError:
                return None
        receive = receiver[0]
        chunks: list[Message] = []
        receiver[0] = _replaying(chunks, receive)
        size = 0
        complete = False
        while size <= self._max_body:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break  # e.g. http.disconnect: replay it to the app as is
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                complete = True
                break
        if complete and size <= self._max_body:
            return parse_json_object(b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request"))
        return None

    # --- WebSocket and lifespan -------------------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = None
        turns = None
        try:
            path = scope.get("path", "")
            if not self._paths.excluded(path):
                headers = header_map(scope.get("headers", ()))
                ids = self._ids.from_headers(headers)
                s = ChatScope(route=path, **ids)  # type: ignore[arg-type]  # ids: str identity fields only
                token = otel_context.attach(context_with_scope(s, propagate_identity=self.settings.propagate_identity))
                if self._routes.is_chat("WS", path) and not is_engineio(scope):
                    turns = MessageTurns(scope, s, self._ids, self._max_body, self.settings.propagate_identity)
                    receive = turns.receive(receive)
        except Exception as exc:  # noqa: BLE001
            log_limited("asgi-websocket", "chatobs: could not open the websocket scope: %s", exc)
        try:
            await self.app(scope, receive, send)
        finally:
            if turns is not None:
                turns.end()
            if token is not None:
                try:
                    otel_context.detach(token)
                except Exception:  # noqa: BLE001 - a context switched under us must not break the connection
                    pass

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            if message.get("type") == "lifespan.shutdown.complete":
                # Flush before the server exits; in a thread so the event loop keeps serving what remains.
                import chatobs  # the public shutdown(), as the app would call it

                try:
                    await asyncio.to_thread(chatobs.shutdown)
                except Exception as exc:  # noqa: BLE001
                    log_limited("lifespan", "chatobs: shutdown at lifespan end failed: %s", exc)
            await send(message)

        return lifespan_send


def _first(headers: dict[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _replaying(pending: list[Message], receive: Receive) -> Receive:
    """Hands out ``pending`` (filled by the caller as it reads) first, then the live ``receive``."""

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
