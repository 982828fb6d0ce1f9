"""One chat request's span and scope, shared by the ASGI and WSGI middleware.

Opens one SERVER span per request -- or joins the SERVER span OpenTelemetry's own ASGI/WSGI instrumentation already
opened, never two -- with the HTTP semantic-convention attributes, and attaches the chat scope so every span created
while the request is handled (by chatobs or any other instrumentation) carries the identity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ...core import semconv
from ...core.chat_scope import ChatScope, context_with_scope, identity_attributes, with_request_span
from ..feedback.token import safe_token_for
from ..light_spans import start_span
from ..tracer import get_tracer
from . import chat_turns, tracecontext
from .extract import RequestInfo, captured_headers


class RequestSpan:
    """Start with :meth:`open`; finish with :meth:`close` (exactly once, from the same context)."""

    __slots__ = ("feedback_token", "owned", "scope", "span", "token", "trace_id")

    def __init__(self) -> None:
        self.span: trace.Span | None = None
        self.owned = False
        self.token: object | None = None
        self.trace_id: str | None = None
        self.scope: ChatScope | None = None
        self.feedback_token: str | None = None  # sent beside the trace ID: what the feedback route asks for

    def open(
        self,
        info: RequestInfo,
        ids: Mapping[str, str],
        *,
        settings: Any,
        scheme: str,
        server: tuple[str, int | None] | None,
        client: str | None,
        http_version: str | None,
        query: str | None,
        chat_turn: bool = True,
    ) -> None:
        headers = info.headers
        current = trace.get_current_span()
        joined = current.is_recording() and getattr(current, "kind", None) == SpanKind.SERVER
        if joined:
            # OTel's ASGI/WSGI instrumentation is outermost and already opened the SERVER span: enrich it.
            parent_ctx = otel_context.get_current()
        else:
            parent_ctx = tracecontext.extract(
                headers.get("traceparent", ()), headers.get("tracestate", ()), headers.get("baggage", ())
            )
        attrs: dict[str, Any] = {
            semconv.CHAT_REQUEST: True,
            semconv.ROUTE: info.path,
            semconv.HTTP_REQUEST_METHOD: info.method,
            semconv.URL_PATH: info.path,
            semconv.URL_SCHEME: scheme,
        }
        if query:
            attrs[semconv.URL_QUERY] = query
        if server:
            attrs[semconv.SERVER_ADDRESS] = server[0]
            if server[1] is not None:
                attrs[semconv.SERVER_PORT] = server[1]
        if client:
            attrs[semconv.CLIENT_ADDRESS] = client
        if http_version:
            attrs[semconv.NETWORK_PROTOCOL_VERSION] = http_version
        ua = headers.get("user-agent")
        if ua:
            attrs[semconv.USER_AGENT_ORIGINAL] = ua[0]
        if settings.capture_headers:
            attrs.update(captured_headers(headers, settings.capture_headers))
        s = ChatScope(route=info.path, chat_turn=chat_turn, **ids)  # type: ignore[arg-type]  # ids: str identity fields only
        # The sampler and the scope processor read the scope from this context (identity is stamped on_start).
        ctx = context_with_scope(s, parent_ctx, settings.propagate_identity)
        if joined:
            span = current
            if span.is_recording():
                span.set_attributes({**attrs, **identity_attributes(s)})
        else:
            span = start_span(
                f"{info.method} {info.path}", context=ctx, kind=SpanKind.SERVER, attributes=attrs, tracer=get_tracer()
            )
            self.owned = True
            ctx = trace.set_span_in_context(span, ctx)
        sc = span.get_span_context()
        self.trace_id = format(sc.trace_id, "032x") if sc.is_valid else None
        self.scope = ChatScope(
            route=info.path,
            trace_id=self.trace_id,
            span_id=format(sc.span_id, "016x") if sc.is_valid else None,
            chat_turn=chat_turn,
            **ids,  # type: ignore[arg-type]  # ids: str identity fields only
        )
        if self.scope.conversation_id and chat_turn:
            chat_turns.remember(self.scope, sc)
        # The scope with trace/span IDs filled in replaces the one the span was started under (baggage is set).
        ctx = with_request_span(span, context_with_scope(self.scope, ctx, propagate_identity=False))
        self.span = span
        self.token = otel_context.attach(ctx)
        if chat_turn and self.trace_id and settings.feedback_token_header:
            self.feedback_token = safe_token_for(settings, span, self.scope.user_id)

    def set_status(self, status_code: int) -> None:
        span = self.span
        if span is None or not span.is_recording():
            return
        span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status_code)
        if status_code >= 500:
            span.set_attribute(semconv.ERROR_TYPE, str(status_code))
            span.set_status(Status(StatusCode.ERROR))

    def set_route(self, route: str | None, method: str) -> None:
        span = self.span
        if route and span is not None and span.is_recording():
            span.set_attributes({semconv.HTTP_ROUTE: route, semconv.ROUTE: route})
            if self.owned:
                span.update_name(f"{method} {route}")

    def record_exception(self, exc: BaseException) -> None:
        span = self.span
        if span is not None and span.is_recording():
            span.record_exception(exc)
            span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

    def close(self) -> None:
        if self.token is not None:
            try:
                otel_context.detach(self.token)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001 - a context switched under us must not break the response
                pass
            self.token = None
        if self.owned and self.span is not None:
            self.span.end()
            self.owned = False


def header_map(raw_headers: Sequence[tuple[bytes, bytes]]) -> dict[str, list[str]]:
    """ASGI headers as lower-case name -> values (latin-1, as HTTP/1.1 defines them)."""
    out: dict[str, list[str]] = {}
    for name, value in raw_headers:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out
