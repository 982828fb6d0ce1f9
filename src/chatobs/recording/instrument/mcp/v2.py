"""mcp 2.x: the SDK makes the spans (client ``MCP send {method} {target}``, server ``{method} {target}``) and carries the
trace context in ``params._meta``. chatobs adds no span per call; it enriches the SDK's:

- client side, in ``JSONRPCDispatcher._write`` (the SDK's CLIENT span is the current span there): tool/prompt/resource
  attributes, the server's name and address, the baggage if the app's propagators left it out; in
  ``_resolve_pending`` (the response arrives while that span is still open): tool errors and the result; and at the
  span's end: ``chatobs.slow`` and the type of a timeout or cancellation.
- server side, a ``ServerMiddleware`` right inside the SDK's ``OpenTelemetryMiddleware`` (so its span is current):
  server identity, arguments/result, slowness, and the caller's baggage and chat scope attached for the handler.

The one span chatobs creates is ``MCP connect {server}`` around ``Client.__aenter__`` (transport start and handshake).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanKind

from ....core import semconv
from ...light_spans import start_span
from ._common import (
    STATE,
    Target,
    caller_attributes,
    describe_server,
    ensure_baggage,
    mark_failure,
    mark_slow,
    mark_traced_call,
    method_attributes,
    patch,
    patch_transports,
    server_context,
    stamp_identity,
    take_opening_target,
    tool_result,
    warn,
)

SDK_SCOPE = "mcp-python-sdk"  # instrumentation scope of the SDK's own spans (mcp/shared/_otel.py)

_servers: weakref.WeakSet[Any] = weakref.WeakSet()


def supported() -> bool:
    try:
        import mcp.server.runner
        import mcp.shared._otel
        import mcp.shared.jsonrpc_dispatcher  # noqa: F401
    except ImportError:
        return False
    return True


def _is_sdk_span(span: Span, kind: SpanKind) -> bool:
    scope = getattr(span, "instrumentation_scope", None)
    return scope is not None and scope.name == SDK_SCOPE and getattr(span, "kind", None) is kind and span.is_recording()


# --- client ------------------------------------------------------------------------------------------------------------
def _server_name(dispatcher: Any) -> str | None:
    ref = dispatcher.__dict__.get("_chatobs_session")
    session = ref() if ref is not None else None
    info = getattr(session, "server_info", None) if session is not None else None
    name = getattr(info, "name", None)
    return name if isinstance(name, str) else None


def _on_request_written(dispatcher: Any, message: Any) -> None:
    span = trace.get_current_span()
    if not _is_sdk_span(span, SpanKind.CLIENT):
        return
    method = message.method
    params: Mapping[str, Any] = message.params or {}
    attrs = method_attributes(method, params)
    target: Target | None = dispatcher.__dict__.get("_chatobs_target")
    if target is not None:
        attrs.update(target.attributes())
    name = _server_name(dispatcher)
    if name:
        attrs[semconv.MCP_SERVER_NAME] = name
    ref = dispatcher.__dict__.get("_chatobs_session")
    session = ref() if ref is not None else None
    version = getattr(session, "protocol_version", None) if session is not None else None
    if isinstance(version, str):
        attrs[semconv.MCP_PROTOCOL_VERSION] = version
    span.set_attributes(attrs)
    meta = params.get("_meta")
    if method == "tools/call" and isinstance(message.params, dict) and not isinstance(meta, dict):
        meta = message.params["_meta"] = {}  # the SDK injected no trace context (no propagator): the mark still goes
    if isinstance(meta, dict):
        ensure_baggage(meta)
        if method == "tools/call":
            mark_traced_call(meta)
    from mcp.shared.jsonrpc_dispatcher import coerce_request_id

    key = coerce_request_id(message.id)
    is_tool = method == "tools/call"
    if is_tool:
        dispatcher.__dict__.setdefault("_chatobs_calls", {})[key] = span
    _hook_end(span, dispatcher, key, is_tool)


def _hook_end(span: Any, dispatcher: Any, key: Any, is_tool: bool) -> None:
    """Run chatobs's end-of-call marks just before the SDK ends its span (after that it is read-only)."""
    original_end = span.end

    def end(end_time: int | None = None) -> None:
        try:
            calls = dispatcher.__dict__.get("_chatobs_calls")
            if calls is not None:
                calls.pop(key, None)
            if span.is_recording():
                mark_failure(span, _in_flight_cancel())
                if is_tool:
                    mark_slow(span, span.start_time, end_time)
        except Exception as exc:  # noqa: BLE001
            warn("client span end", exc)
        original_end(end_time)

    span.end = end


def _in_flight_cancel() -> BaseException | None:
    """The cancellation unwinding through the SDK's span, if any (OpenTelemetry does not record those)."""
    exc = sys.exc_info()[1]
    return exc if exc is not None and not isinstance(exc, Exception) else None


def _make_write(original: Any) -> Any:
    from mcp_types import JSONRPCRequest

    async def _write(self: Any, message: Any, metadata: Any = None) -> None:
        if STATE.settings is not None and type(message) is JSONRPCRequest:
            try:
                _on_request_written(self, message)
            except Exception as exc:  # noqa: BLE001
                warn("client span", exc)
        return await original(self, message, metadata)

    return _write


def _make_resolve_pending(original: Any) -> Any:
    from mcp.shared.jsonrpc_dispatcher import coerce_request_id

    def _resolve_pending(self: Any, request_id: Any, outcome: Any) -> None:
        calls = self.__dict__.get("_chatobs_calls")
        if calls and request_id is not None:
            try:
                span = calls.pop(coerce_request_id(request_id), None)
                if span is not None and isinstance(outcome, dict) and span.is_recording():
                    tool_result(span, outcome)
            except Exception as exc:  # noqa: BLE001
                warn("tool result", exc)
        return original(self, request_id, outcome)

    return _resolve_pending


def _make_session_init(original: Any) -> Any:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        try:
            dispatcher = getattr(self, "_dispatcher", None)
            if dispatcher is not None and hasattr(dispatcher, "__dict__"):
                dispatcher.__dict__["_chatobs_session"] = weakref.ref(self)
                target = take_opening_target()  # a bare ClientSession over a transport opened just before
                if target is not None:
                    dispatcher.__dict__.setdefault("_chatobs_target", target)
        except Exception as exc:  # noqa: BLE001
            warn("session", exc)

    return __init__


def _make_build_session(original: Any) -> Any:
    async def _build_session(self: Any, exit_stack: Any) -> Any:
        session = await original(self, exit_stack)
        try:
            target = describe_server(self.server)
            dispatcher = getattr(session, "_dispatcher", None)
            if target is not None and dispatcher is not None and hasattr(dispatcher, "__dict__"):
                dispatcher.__dict__["_chatobs_target"] = target  # what the user passed wins over the transport's
        except Exception as exc:  # noqa: BLE001
            warn("session", exc)
        return session

    return _build_session


def _make_client_enter(original: Any) -> Any:
    async def __aenter__(self: Any) -> Any:
        if STATE.settings is None:
            return await original(self)
        try:
            from ....runtime.wiring import get_tracer

            target = describe_server(self.server)
            label = target.label if target is not None else "server"
            attrs: dict[str, Any] = {semconv.OBSERVATION_TYPE: "mcp"}
            if target is not None:
                attrs.update(target.attributes())
            cm = get_tracer().start_as_current_span(f"MCP connect {label}", kind=SpanKind.CLIENT, attributes=attrs)
            span = cm.__enter__()
        except Exception as exc:  # noqa: BLE001
            warn("connect span", exc)
            return await original(self)
        try:
            result = await original(self)
        except BaseException:
            cm.__exit__(*sys.exc_info())
            raise
        try:
            session = getattr(self, "_session", None)
            info = getattr(session, "server_info", None)
            server_name = getattr(info, "name", None)
            if isinstance(server_name, str):
                span.set_attribute(semconv.MCP_SERVER_NAME, server_name)
            version = getattr(session, "protocol_version", None)
            if isinstance(version, str):
                span.set_attribute(semconv.MCP_PROTOCOL_VERSION, version)
        except Exception as exc:  # noqa: BLE001
            warn("connect span", exc)
        cm.__exit__(None, None, None)
        return result

    return __aenter__


# --- server ------------------------------------------------------------------------------------------------------------
class ChatObsServerMiddleware:
    """Runs right inside the SDK's ``OpenTelemetryMiddleware``: enriches its SERVER span and hands the caller's
    identity (from ``params._meta`` baggage) to the handler's context."""

    chatobs_middleware = True

    def __init__(self, server_name: str | None) -> None:
        self.server_name = server_name

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        settings = STATE.settings
        if settings is None or ctx.request_id is None:
            return await call_next(ctx)
        token = None
        span: Span | None = None
        method = ctx.method
        try:
            current_span = trace.get_current_span()
            span = current_span if _is_sdk_span(current_span, SpanKind.SERVER) else None
            new_ctx, s, _ = server_context(ctx.meta, with_parent=False)
            token = otel_context.attach(new_ctx)
            if span is not None:
                attrs = method_attributes(method, ctx.params)
                attrs.update(_server_attributes(ctx, settings.mcp_server_name or self.server_name))
                if method == "tools/call":
                    attrs.update(caller_attributes(ctx.meta))
                span.set_attributes(attrs)
                stamp_identity(span, s)
        except Exception as exc:  # noqa: BLE001
            warn("server span", exc)
        try:
            result = await call_next(ctx)
        finally:
            if token is not None:
                otel_context.detach(token)
            if span is not None and method == "tools/call":
                try:
                    mark_slow(span, getattr(span, "start_time", None))
                except Exception as exc:  # noqa: BLE001
                    warn("server span", exc)
        if (
            span is not None
            and method == "tools/call"
            and STATE.settings is not None
            and STATE.settings.capture_tool_io
        ):
            try:
                wire = (
                    result
                    if isinstance(result, Mapping)
                    else result.model_dump(by_alias=True, mode="json", exclude_none=True)
                )
                tool_result(span, wire)
            except Exception as exc:  # noqa: BLE001
                warn("server span", exc)
        return result


def _server_attributes(ctx: Any, name: str | None) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if name:
        attrs[semconv.MCP_SERVER_NAME] = name
    request = getattr(ctx, "request", None)
    url = getattr(request, "url", None)
    if url is not None:
        attrs[semconv.NETWORK_TRANSPORT] = "tcp"
        attrs[semconv.NETWORK_PROTOCOL_NAME] = "http"
        if url.hostname:
            attrs[semconv.SERVER_ADDRESS] = url.hostname
        if url.port:
            attrs[semconv.SERVER_PORT] = url.port
        headers = getattr(request, "headers", None)
        session_id = headers.get("mcp-session-id") if headers is not None else None
        if session_id:
            attrs[semconv.MCP_SESSION_ID] = session_id
    else:
        attrs[semconv.NETWORK_TRANSPORT] = "pipe"
    return attrs


def install_server(server: Any) -> None:
    """Put the chatobs middleware into ``server.middleware`` (low-level ``Server`` or ``MCPServer``), once."""
    lowlevel = getattr(server, "_lowlevel_server", server)
    if lowlevel in _servers:
        return
    chain = getattr(lowlevel, "middleware", None)
    if not isinstance(chain, list):
        return
    if not any(getattr(m, "chatobs_middleware", False) for m in chain):
        from mcp.server._otel import OpenTelemetryMiddleware

        index = next((i + 1 for i, m in enumerate(chain) if isinstance(m, OpenTelemetryMiddleware)), 0)
        chain.insert(index, ChatObsServerMiddleware(getattr(lowlevel, "name", None)))
    _servers.add(lowlevel)


def _make_compose(original: Any) -> Any:
    def _compose_server_middleware(self: Any, inner: Any) -> Any:
        if STATE.settings is not None:
            try:
                install_server(self.server)
            except Exception as exc:  # noqa: BLE001
                warn("server middleware", exc)
        return original(self, inner)

    return _compose_server_middleware


# --- spans of unsampled traces ----------------------------------------------------------------------------------------
def _make_otel_span(original: Any) -> Any:
    """The SDK's span helper, starting its span through chatobs.recording.light_spans: the same SDK span when the trace is sampled,
    a light span (attributes, no content) when head sampling dropped it, so MCP metrics and tail rules still see every
    call."""
    from mcp.shared import _otel

    sdk_scope = InstrumentationScope(SDK_SCOPE)

    @contextmanager
    def otel_span(
        name: str,
        *,
        kind: SpanKind,
        attributes: dict[str, Any] | None = None,
        context: Any = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> Iterator[Span]:
        span = start_span(
            name, kind=kind, attributes=attributes, context=context, tracer=_otel._tracer, scope=sdk_scope
        )
        with trace.use_span(
            span, end_on_exit=True, record_exception=record_exception, set_status_on_exception=set_status_on_exception
        ):
            yield span

    return otel_span


def instrument() -> None:
    from mcp.client import client as client_module
    from mcp.client import session as session_module
    from mcp.server import runner
    from mcp.shared import jsonrpc_dispatcher

    patch(jsonrpc_dispatcher.JSONRPCDispatcher, "_write", _make_write)
    patch(jsonrpc_dispatcher.JSONRPCDispatcher, "_resolve_pending", _make_resolve_pending)
    patch(session_module.ClientSession, "__init__", _make_session_init)
    patch(client_module.Client, "_build_session", _make_build_session)
    patch(client_module.Client, "__aenter__", _make_client_enter)
    patch(runner.ServerRunner, "_compose_server_middleware", _make_compose)
    patch(jsonrpc_dispatcher, "otel_span", _make_otel_span)
    from mcp.server import _otel as server_otel

    patch(server_otel, "otel_span", _make_otel_span)
    patch_transports()


def uninstrument() -> None:
    for server in list(_servers):
        chain = getattr(server, "middleware", None)
        if isinstance(chain, list):
            chain[:] = [m for m in chain if not getattr(m, "chatobs_middleware", False)]
    _servers.clear()
