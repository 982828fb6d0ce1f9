"""``ChatObsWSGIMiddleware``: the WSGI twin of the ASGI middleware (Flask, Django's WSGI handler, any WSGI app).

    app.wsgi_app = chatobs.ChatObsWSGIMiddleware(app.wsgi_app)

A JSON body up to ``CHATOBS_MAX_BODY_BYTES`` is read for IDs and handed back to the app through a stream that replays
it and then continues with the original input; the response iterable is passed on chunk by chunk and the span ends
when the server closes it (stream finished or client gone).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context

from ...core.guard import log_limited
from .extract import IdExtractor, MiddlewareBase, RequestInfo, is_json_content_type, parse_json_object
from .request import RequestSpan

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
ROUTE_ENVIRON_KEY = "chatobs.route"  # a WSGI framework may set the matched route template here


@dataclass
class ChatObsWSGIMiddleware(MiddlewareBase):
    """Trace every chat request of a WSGI app. Settings come from ``chatobs.init()`` (called here if needed)."""

    app: WSGIApp
    extractors: Sequence[IdExtractor] = ()
    settings: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._configure()
        self._trace_header = self._trace_header_name if self._active else ""
        self._token_header = self._token_header_name if self._active else ""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self._active or self._paths.excluded(environ.get("PATH_INFO", "")):
            return self.app(environ, start_response)
        request = RequestSpan()
        try:
            self._open(request, environ)
        except Exception as exc:  # noqa: BLE001 - serve the request untraced rather than fail it
            log_limited("wsgi-open", "chatobs: could not open the request span: %s: %s", type(exc).__name__, exc)
            request.close()
            return self.app(environ, start_response)

        trace_header, trace_id = self._trace_header, request.trace_id
        token_header, feedback_token = self._token_header, request.feedback_token

        def start_response_wrapper(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                request.set_status(int(status.split(" ", 1)[0]))
                if trace_header and trace_id:
                    headers = [*headers, (trace_header, trace_id)]
                    if token_header and feedback_token:
                        headers.append((token_header, feedback_token))
            except Exception as exc:  # noqa: BLE001
                log_limited("wsgi-start-response", "chatobs: could not annotate the response: %s", exc)
            return (
                start_response(status, headers, exc_info) if exc_info is not None else start_response(status, headers)
            )

        try:
            result = self.app(environ, start_response_wrapper)
        except BaseException as exc:
            request.record_exception(exc)
            _set_route(request, environ)
            request.close()
            raise
        # The request context stays attached only while the app's code runs; the iterable re-attaches it per chunk.
        token = request.token
        request.token = None
        otel_context.detach(token)  # type: ignore[arg-type]
        return _TracedIterable(result, request, environ)

    def _open(self, request: RequestSpan, environ: dict[str, Any]) -> None:
        headers = _environ_headers(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        ids = self._ids.from_headers(headers)
        body_obj = None
        if (
            self._max_body
            and self._ids.missing(ids)
            and method in _BODY_METHODS
            and is_json_content_type(environ.get("CONTENT_TYPE"))
        ):
            body_obj = self._peek_body(environ)
            self._ids.from_body(body_obj, ids)
        path = environ.get("PATH_INFO", "")
        info = RequestInfo(method=method, path=path, headers=headers, body=body_obj, raw=environ)
        if self._ids.extractors and self._ids.missing(ids):
            self._ids.from_extractors(info, ids)
        port = environ.get("SERVER_PORT")
        request.open(
            info,
            ids,
            settings=self.settings,
            scheme=environ.get("wsgi.url_scheme", "http"),
            server=(environ.get("SERVER_NAME", ""), int(port) if port and str(port).isdigit() else None),
            client=environ.get("REMOTE_ADDR"),
            http_version=(environ.get("SERVER_PROTOCOL") or "").removeprefix("HTTP/") or None,
            query=environ.get("QUERY_STRING") or None,
            chat_turn=self._routes.is_chat(method, path),
        )

    def _peek_body(self, environ: dict[str, Any]) -> dict[str, Any] | None:
        length_raw = environ.get("CONTENT_LENGTH")
        stream = environ.get("wsgi.input")
        if stream is None:
            return None
        try:
            length = int(length_raw) if length_raw else None
        except ValueError:
            return None
        if length is not None and length > self._max_body:
            return None
        if length is None and not environ.get("wsgi.input_terminated"):
            return None  # no length and no terminated input: reading could block, so do not read
        limit = self._max_body + 1 if length is None else length
        data = stream.read(limit)
        environ["wsgi.input"] = _ReplayStream(data, stream)
        if len(data) > self._max_body:
            return None
        return parse_json_object(data)


class _ReplayStream(io.RawIOBase):
    """The bytes chatobs read, then the rest of the original input."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data, self._head = self._head, b""
            return data + self._rest.read()
        if self._head:
            data, self._head = self._head[:size], self._head[size:]
            if len(data) < size:
                data += self._rest.read(size - len(data))
            return data
        return self._rest.read(size)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        if self._head:
            nl = self._head.find(b"\n")
            if nl >= 0 and (size is None or size < 0 or nl < size):
                line, self._head = self._head[: nl + 1], self._head[nl + 1 :]
                return line
        return super().readline(size if size is not None else -1)


class _TracedIterable:
    """Passes the app's chunks through one at a time, with the request context attached while each is produced."""

    def __init__(self, result: Iterable[bytes], request: RequestSpan, environ: dict[str, Any]) -> None:
        self._result = result
        self._request = request
        self._environ = environ
        from opentelemetry import trace

        from ...core.chat_scope import context_with_scope

        ctx = trace.set_span_in_context(request.span) if request.span is not None else otel_context.get_current()
        if request.scope is not None:
            ctx = context_with_scope(request.scope, ctx)
        self._ctx = ctx
        self._closed = False
        self._finished = False

    def __iter__(self) -> Iterator[bytes]:
        iterator = iter(self._result)
        while True:
            token = otel_context.attach(self._ctx)
            try:
                chunk = next(iterator)
            except StopIteration:
                # Some servers (and test clients) close late or never: the response is complete, so end the span now.
                self._finish()
                return
            except BaseException as exc:
                self._request.record_exception(exc)
                self._finish()
                raise
            finally:
                otel_context.detach(token)
            yield chunk

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            _set_route(self._request, self._environ)
            self._request.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._result, "close", None)
            if close is not None:
                token = otel_context.attach(self._ctx)
                try:
                    close()
                finally:
                    otel_context.detach(token)
        finally:
            self._finish()


def _set_route(request: RequestSpan, environ: dict[str, Any]) -> None:
    try:
        # Frameworks put the matched route here (the Flask extension does it in a before_request hook).
        request.set_route(environ.get(ROUTE_ENVIRON_KEY), environ.get("REQUEST_METHOD", "GET"))
    except Exception:  # noqa: BLE001
        pass


def _environ_headers(environ: dict[str, Any]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
            # WSGI servers join repeated headers with ", "; traceparent duplicates must stay visible as two values.
            headers[name] = [value] if name not in ("traceparent",) else [v for v in value.split(",") if v.strip()]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            headers[key.replace("_", "-").lower()] = [value]
    return headers
