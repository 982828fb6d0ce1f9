"""The feedback route browsers call: ``POST {prefix}/feedback``, as an ASGI and a WSGI app.

    app.add_route("/_chatobs/feedback", chatobs.feedback_asgi_app, methods=["POST"])  # FastAPI / Starlette
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/_chatobs/feedback": chatobs.feedback_wsgi_app})  # Flask

Body: JSON ``{"trace_id", "value", "name"?, "comment"?, "token"?}`` (the token may come in the
``CHATOBS_FEEDBACK_TOKEN_HEADER`` header instead). Safe to expose: a rating needs the feedback token the turn's
response carried (genuine, for that trace, younger than ``CHATOBS_FEEDBACK_MAX_AGE_HOURS``, issued to the same user
when the turn knew its user), the body is at most ``CHATOBS_FEEDBACK_MAX_BODY_BYTES``, and each client address may
send ``CHATOBS_FEEDBACK_RATE_PER_MINUTE`` ratings (a token bucket per address, at most 4,096 addresses remembered).
Anything wrong is answered 400 with ``{"error": "<field>: <what was expected>"}``; too fast, 429.

Mount it under an excluded path (``/_chatobs/*`` is excluded by default), or the feedback request itself becomes a
traced chat turn.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ...core.guard import log_limited

__all__ = ["FeedbackRoute", "RateLimiter", "asgi_app", "wsgi_app"]

_MAX_CLIENTS = 4096
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


class RateLimiter:
    """A token bucket per client key (``rate_per_minute`` ratings, bursts of as many); memory bounded (LRU)."""

    def __init__(self, rate_per_minute: float, max_clients: int = _MAX_CLIENTS) -> None:
        self.capacity = max(1.0, rate_per_minute)
        self.refill_per_s = rate_per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, last refill)
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.refill_per_s)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return allowed


class FeedbackRoute:
    """What the ASGI and WSGI apps share: check one request and record its rating. Settings are read on first use
    (the app may mount the route before calling ``chatobs.init()``)."""

    def __init__(self, extractors: Sequence[Callable[..., Any]] = ()) -> None:
        self.extractors = tuple(extractors)
        self._lock = threading.Lock()
        self._ready: tuple[Any, Any, RateLimiter] | None = None

    def _setup(self) -> tuple[Any, Any, RateLimiter] | None:
        import chatobs  # the public init(), as the app would call it: the runtime sits above this layer

        from ..installed import runtime_or_none, settings_or_none

        ready = self._ready
        if ready is not None and ready[0] is settings_or_none():
            return ready
        from ..middleware.extract import IdentityReader

        with self._lock:
            if runtime_or_none() is None:
                chatobs.init()
            s = settings_or_none()
            if s is None or not s.active:
                return None
            if self._ready is None or self._ready[0] is not s:  # built again after shutdown() + init()
                limiter = RateLimiter(s.feedback_rate_per_minute)
                self._ready = (s, IdentityReader(s, self.extractors), limiter)
            return self._ready

    def max_body(self) -> int:
        from ..installed import settings_or_none

        return int(s.feedback_max_body_bytes) if (s := settings_or_none()) is not None else 8192

    def handle(
        self,
        method: str,
        path: str,
        headers: Mapping[str, Sequence[str]],
        body: bytes | None,
        client: str | None,
        raw: Any,
    ) -> tuple[int, dict[str, Any]]:
        if not (path in ("", "/") or path.rstrip("/").endswith("/feedback")):
            return 404, {"error": f"no such route {path!r}: POST {{prefix}}/feedback"}
        if method != "POST":
            return 405, {"error": f"method {method}: the feedback route takes POST with a JSON body"}
        ready = self._setup()
        if ready is None:
            return 503, {"error": "chatobs is disabled (CHATOBS_ENABLED=false)"}
        settings, identity, limiter = ready
        if not limiter.allow(client or "unknown"):
            return 429, {"error": "too many ratings from this client; try again in a minute"}
        if body is None:
            return 413, {"error": f"body: at most {self.max_body()} bytes"}
        try:
            return 200, self._record(settings, identity, headers, body, raw)
        except ValueError as exc:
            return 400, {"error": str(exc)}

    def _record(
        self, settings: Any, identity: Any, headers: Mapping[str, Sequence[str]], body: bytes, raw: Any
    ) -> dict[str, Any]:
        from ..middleware.extract import RequestInfo, parse_json_object
        from .record import check_trace_id, parse_rating, record
        from .token import key_for, verify

        data = parse_json_object(body)
        if data is None:
            raise ValueError('body: expected a JSON object {"trace_id": ..., "value": ..., "token": ...}')
        trace_id = check_trace_id(data.get("trace_id"))
        rating = parse_rating(
            data.get("value"),
            data.get("name", "user_feedback"),
            data.get("comment"),
            max_comment_chars=settings.feedback_max_comment_chars,
        )
        token = data.get("token")
        header = settings.feedback_token_header
        if token is None and header:
            values = headers.get(header.lower())
            token = values[0] if values else None
        # The rater's identity, read the way the middleware reads a chat turn's (headers, JWT claim, extractors).
        ids = identity.from_headers(headers)
        if identity.extractors and "user_id" not in ids:
            identity.from_extractors(RequestInfo(method="POST", path="", headers=headers, body=data, raw=raw), ids)
        user_id = ids.get("user_id")
        try:
            key = key_for(settings)
        except OSError as exc:  # an unusable agent directory: the log says what to fix, the caller gets no detail
            log_limited("feedback-key", "chatobs: feedback key unavailable: %s", exc)
            raise ValueError("token: cannot be checked on this server (see its log)") from None
        facts = verify(key, token, trace_id, user_id=user_id, max_age_s=settings.feedback_max_age_hours * 3600)
        span_id = record(
            trace_id,
            rating,
            parent_span_id=facts.span_id,
            trace_ms=facts.trace_ms,
            sampled=facts.sampled,
            user_id=user_id,
            conversation_id=ids.get("conversation_id"),
        )
        return {"status": "recorded", "trace_id": trace_id, "feedback_id": span_id}


def _json_body(status: int, payload: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    body = json.dumps(payload).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body))), ("cache-control", "no-store")]
    return f"{status} {_REASONS.get(status, '')}".strip(), headers, body


class FeedbackASGI:
    def __init__(self, route: FeedbackRoute) -> None:
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope.get("type") != "http":
            return
        from ..middleware.request import header_map

        path = scope.get("path", "")
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        headers = header_map(scope.get("headers", ()))
        body: bytes | None = b""
        if scope.get("method") == "POST":
            body = await _read_asgi(receive, self.route.max_body())
        client = scope.get("client")
        try:
            status, payload = self.route.handle(
                scope.get("method", "GET"), path, headers, body, client[0] if client else None, scope
            )
        except Exception as exc:  # noqa: BLE001 - a bug here must not become the app's 500 with a traceback
            log_limited("feedback-route", "chatobs: feedback route failed: %s: %s", type(exc).__name__, exc)
            status, payload = 400, {"error": "feedback could not be recorded"}
        _, out_headers, data = _json_body(status, payload)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in out_headers],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def _read_asgi(receive: Callable[..., Any], limit: int) -> bytes | None:
    """The body, or ``None`` when it is larger than ``limit`` (reading stops there)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class FeedbackWSGI:
    def __init__(self, route: FeedbackRoute) -> None:
        self.route = route

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        from ..middleware.wsgi import _environ_headers

        method = environ.get("REQUEST_METHOD", "GET")
        body: bytes | None = b""
        if method == "POST":
            body = _read_wsgi(environ, self.route.max_body())
        try:
            status, payload = self.route.handle(
                method,
                environ.get("PATH_INFO", ""),
                _environ_headers(environ),
                body,
                environ.get("REMOTE_ADDR"),
                environ,
            )
        except Exception as exc:  # noqa: BLE001
            log_limited("feedback-route", "chatobs: feedback route failed: %s: %s", type(exc).__name__, exc)
            status, payload = 400, {"error": "feedback could not be recorded"}
        line, headers, data = _json_body(status, payload)
        start_response(line, headers)
        return [data]


def _read_wsgi(environ: dict[str, Any], limit: int) -> bytes | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return b""
    if length > limit:
        return None
    stream = environ.get("wsgi.input")
    if stream is None or length <= 0:
        return b""
    return stream.read(length)


_shared = FeedbackRoute()
asgi_app = FeedbackASGI(_shared)
wsgi_app = FeedbackWSGI(_shared)
